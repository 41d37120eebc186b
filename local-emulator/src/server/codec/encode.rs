//! Writing values: the smallest encoding of each primitive, compound and array.

use super::Value;

/// Descriptor codes for the symbolic names clients sometimes use instead of numbers.
pub(super) fn symbolic_descriptor(s: &str) -> Option<u64> {
    match s {
        "apache.org:selector-filter:string" => Some(0x0000_468C_0000_0004),
        "amqp:data:binary" => Some(0x75),
        "amqp:amqp-value:*" => Some(0x77),
        "amqp:application-properties:map" => Some(0x74),
        "amqp:properties:list" => Some(0x73),
        "amqp:message-annotations:map" => Some(0x72),
        "amqp:header:list" => Some(0x70),
        _ => None,
    }
}

pub(super) fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0x40),
        Value::Bool(true) => out.push(0x41),
        Value::Bool(false) => out.push(0x42),
        Value::Ubyte(b) => out.extend([0x50, *b]),
        Value::Ushort(n) => {
            out.push(0x60);
            out.extend(n.to_be_bytes())
        }
        Value::Uint(0) => out.push(0x43),
        Value::Uint(n) if *n < 256 => out.extend([0x52, *n as u8]),
        Value::Uint(n) => {
            out.push(0x70);
            out.extend(n.to_be_bytes())
        }
        Value::Ulong(0) => out.push(0x44),
        Value::Ulong(n) if *n < 256 => out.extend([0x53, *n as u8]),
        Value::Ulong(n) => {
            out.push(0x80);
            out.extend(n.to_be_bytes())
        }
        Value::Byte(n) => out.extend([0x51, *n as u8]),
        Value::Short(n) => {
            out.push(0x61);
            out.extend(n.to_be_bytes())
        }
        Value::Int(n) if (-128..128).contains(n) => out.extend([0x54, *n as i8 as u8]),
        Value::Int(n) => {
            out.push(0x71);
            out.extend(n.to_be_bytes())
        }
        Value::Long(n) if (-128..128).contains(n) => out.extend([0x55, *n as i8 as u8]),
        Value::Long(n) => {
            out.push(0x81);
            out.extend(n.to_be_bytes())
        }
        Value::Float(f) => {
            out.push(0x72);
            out.extend(f.to_be_bytes())
        }
        Value::Double(f) => {
            out.push(0x82);
            out.extend(f.to_be_bytes())
        }
        Value::Decimal(c, b) => {
            out.push(*c);
            out.extend(b)
        }
        Value::Char(c) => {
            out.push(0x73);
            out.extend((*c as u32).to_be_bytes())
        }
        Value::Timestamp(t) => {
            out.push(0x83);
            out.extend(t.to_be_bytes())
        }
        Value::Uuid(u) => {
            out.push(0x98);
            out.extend(u)
        }
        Value::Binary(b) => variable(out, 0xa0, 0xb0, b),
        Value::String(s) => variable(out, 0xa1, 0xb1, s.as_bytes()),
        Value::Symbol(s) => variable(out, 0xa3, 0xb3, s.as_bytes()),
        Value::List(items) if items.is_empty() => out.push(0x45),
        Value::List(items) => {
            let mut body = Vec::new();
            items.iter().for_each(|i| encode(i, &mut body));
            compound(out, 0xc0, 0xd0, items.len(), &body)
        }
        Value::Map(entries) => {
            let mut body = Vec::new();
            for (k, v) in entries {
                encode(k, &mut body);
                encode(v, &mut body);
            }
            compound(out, 0xc1, 0xd1, entries.len() * 2, &body)
        }
        Value::Array(items) => encode_array(items, out),
        Value::Described(d, v) => {
            out.push(0x00);
            encode(d, out);
            encode(v, out);
        }
    }
}

pub(super) fn variable(out: &mut Vec<u8>, small: u8, large: u8, bytes: &[u8]) {
    if bytes.len() < 256 {
        out.extend([small, bytes.len() as u8]);
    } else {
        out.push(large);
        out.extend((bytes.len() as u32).to_be_bytes());
    }
    out.extend(bytes);
}

pub(super) fn compound(out: &mut Vec<u8>, small: u8, large: u8, count: usize, body: &[u8]) {
    if body.len() + 1 < 256 && count < 256 {
        out.extend([small, (body.len() + 1) as u8, count as u8]);
    } else {
        out.push(large);
        out.extend(((body.len() + 4) as u32).to_be_bytes());
        out.extend((count as u32).to_be_bytes());
    }
    out.extend(body);
}

/// Arrays use the widest fixed constructor of their element type, so every element shares it
/// (described elements share their descriptor too). Values of different types cannot be an
/// AMQP array: they are written as a list rather than garbled.
pub(super) fn encode_array(items: &[Value], out: &mut Vec<u8>) {
    let first = items.first();
    if let Some(f) = first {
        if !items.iter().all(|i| same_type(i, f)) {
            return encode(&Value::List(items.to_vec()), out);
        }
    }
    let mut body = Vec::new();
    array_body(items, &mut body);
    out.push(0xf0);
    out.extend(((body.len() + 4) as u32).to_be_bytes());
    out.extend((items.len() as u32).to_be_bytes());
    out.extend(body);
}

/// Whether two values can be elements of one array.
fn same_type(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Described(d1, v1), Value::Described(d2, v2)) => d1 == d2 && same_type(v1, v2),
        (Value::Decimal(c1, _), Value::Decimal(c2, _)) => c1 == c2,
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(p), Some(q)) => same_type(p, q),
            _ => true,
        },
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// The descriptor (for described elements), the element constructor and the elements.
fn array_body(items: &[Value], body: &mut Vec<u8>) {
    let inner = |v: &Value| match v {
        Value::Described(_, x) => x.as_ref().clone(),
        x => x.clone(),
    };
    if let Some(Value::Described(d, _)) = items.first() {
        body.push(0x00);
        encode(d, body);
    }
    let first = items.first().map(inner);
    let ctor = match &first {
        None | Some(Value::Null) => 0x40,
        Some(Value::Bool(_)) => 0x56,
        Some(Value::Ubyte(_)) => 0x50,
        Some(Value::Ushort(_)) => 0x60,
        Some(Value::Uint(_)) => 0x70,
        Some(Value::Ulong(_)) => 0x80,
        Some(Value::Byte(_)) => 0x51,
        Some(Value::Short(_)) => 0x61,
        Some(Value::Int(_)) => 0x71,
        Some(Value::Long(_)) => 0x81,
        Some(Value::Float(_)) => 0x72,
        Some(Value::Double(_)) => 0x82,
        Some(Value::Decimal(c, _)) => *c,
        Some(Value::Char(_)) => 0x73,
        Some(Value::Timestamp(_)) => 0x83,
        Some(Value::Uuid(_)) => 0x98,
        Some(Value::Binary(_)) => 0xb0,
        Some(Value::String(_)) => 0xb1,
        Some(Value::Symbol(_)) => 0xb3,
        Some(Value::List(_)) => 0xd0,
        Some(Value::Map(_)) => 0xd1,
        Some(Value::Array(_)) => 0xf0,
        Some(Value::Described(..)) => 0x40,
    };
    body.push(ctor);
    for item in items {
        element(&inner(item), body);
    }
}

/// One array element without its constructor.
fn element(v: &Value, body: &mut Vec<u8>) {
    let sized = |body: &mut Vec<u8>, count: usize, inner: Vec<u8>| {
        body.extend(((inner.len() + 4) as u32).to_be_bytes());
        body.extend((count as u32).to_be_bytes());
        body.extend(inner);
    };
    match v {
        Value::Null | Value::Described(..) => {}
        Value::Bool(b) => body.push(u8::from(*b)),
        Value::Ubyte(n) => body.push(*n),
        Value::Byte(n) => body.push(*n as u8),
        Value::Ushort(n) => body.extend(n.to_be_bytes()),
        Value::Short(n) => body.extend(n.to_be_bytes()),
        Value::Uint(n) => body.extend(n.to_be_bytes()),
        Value::Int(n) => body.extend(n.to_be_bytes()),
        Value::Float(f) => body.extend(f.to_be_bytes()),
        Value::Char(c) => body.extend((*c as u32).to_be_bytes()),
        Value::Ulong(n) => body.extend(n.to_be_bytes()),
        Value::Long(n) | Value::Timestamp(n) => body.extend(n.to_be_bytes()),
        Value::Double(f) => body.extend(f.to_be_bytes()),
        Value::Decimal(_, b) => body.extend(b),
        Value::Uuid(u) => body.extend(u),
        Value::Binary(b) => {
            body.extend((b.len() as u32).to_be_bytes());
            body.extend(b)
        }
        Value::String(s) | Value::Symbol(s) => {
            body.extend((s.len() as u32).to_be_bytes());
            body.extend(s.as_bytes())
        }
        Value::List(items) => {
            let mut inner = Vec::new();
            items.iter().for_each(|i| encode(i, &mut inner));
            sized(body, items.len(), inner)
        }
        Value::Map(entries) => {
            let mut inner = Vec::new();
            for (k, v) in entries {
                encode(k, &mut inner);
                encode(v, &mut inner);
            }
            sized(body, entries.len() * 2, inner)
        }
        Value::Array(items) => {
            let mut inner = Vec::new();
            array_body(items, &mut inner);
            sized(body, items.len(), inner)
        }
    }
}
