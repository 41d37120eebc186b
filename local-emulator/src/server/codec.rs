//! AMQP 1.0 type system: one `Value` enum with an encoder and a decoder.
//! Owns the byte layout of primitive, compound and described values; knows nothing of frames.

use thiserror::Error;

/// An AMQP 1.0 value as it travels on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `ubyte`.
    Ubyte(u8),
    /// `ushort`.
    Ushort(u16),
    /// `uint`.
    Uint(u32),
    /// `ulong`.
    Ulong(u64),
    /// `byte`.
    Byte(i8),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `decimal32/64/128`, kept as raw bytes with its constructor.
    Decimal(u8, Vec<u8>),
    /// `char`.
    Char(char),
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// `uuid` in RFC byte order.
    Uuid([u8; 16]),
    /// `binary`.
    Binary(Vec<u8>),
    /// `string`.
    String(String),
    /// `symbol`.
    Symbol(String),
    /// `list`.
    List(Vec<Value>),
    /// `map`, in wire order.
    Map(Vec<(Value, Value)>),
    /// `array`: every element shares one constructor.
    Array(Vec<Value>),
    /// A described value: descriptor and value.
    Described(Box<Value>, Box<Value>),
}

/// Why bytes could not be decoded into a [`Value`].
#[derive(Debug, Error, PartialEq)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("input ended inside a value")]
    Truncated,
    /// A constructor byte this decoder does not know.
    #[error("unknown constructor 0x{0:02x}")]
    UnknownConstructor(u8),
    /// A string or symbol that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A `char` outside Unicode.
    #[error("invalid char")]
    InvalidChar,
    /// Nesting deeper than the decoder allows.
    #[error("values nested too deeply")]
    TooDeep,
}

impl Value {
    /// A symbol from a string slice.
    pub fn sym(s: &str) -> Value {
        Value::Symbol(s.to_owned())
    }
    /// A string from a string slice.
    pub fn str(s: &str) -> Value {
        Value::String(s.to_owned())
    }
    /// A described list with a numeric descriptor, the shape of every performative.
    pub fn described_list(code: u64, fields: Vec<Value>) -> Value {
        Value::Described(Box::new(Value::Ulong(code)), Box::new(Value::List(fields)))
    }
    /// The numeric descriptor code of a described value, if it has one.
    pub fn descriptor_code(&self) -> Option<u64> {
        match self {
            Value::Described(d, _) => match d.as_ref() {
                Value::Ulong(c) => Some(*c),
                Value::Symbol(s) => symbolic_descriptor(s),
                _ => None,
            },
            _ => None,
        }
    }
    /// The value inside a described value, or the value itself.
    pub fn inner(&self) -> &Value {
        match self {
            Value::Described(_, v) => v,
            v => v,
        }
    }
    /// Field `i` of a (described) list; `Null` when absent.
    pub fn field(&self, i: usize) -> &Value {
        match self.inner() {
            Value::List(items) => items.get(i).unwrap_or(&Value::Null),
            _ => &Value::Null,
        }
    }
    /// Text of a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self.inner() {
            Value::String(s) | Value::Symbol(s) => Some(s),
            _ => None,
        }
    }
    /// Any integer as `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self.inner() {
            Value::Ubyte(v) => Some(v.into()),
            Value::Ushort(v) => Some(v.into()),
            Value::Uint(v) => Some(v.into()),
            Value::Ulong(v) => i64::try_from(v).ok(),
            Value::Byte(v) => Some(v.into()),
            Value::Short(v) => Some(v.into()),
            Value::Int(v) => Some(v.into()),
            Value::Long(v) | Value::Timestamp(v) => Some(v),
            _ => None,
        }
    }
    /// A non-negative integer as `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64().and_then(|v| u64::try_from(v).ok())
    }
    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self.inner() {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// Entries of a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self.inner() {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// Elements of a list or an array.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self.inner() {
            Value::List(v) | Value::Array(v) => Some(v),
            _ => None,
        }
    }
    /// Bytes of a binary.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.inner() {
            Value::Binary(b) => Some(b),
            _ => None,
        }
    }
    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// Map lookup by string or symbol key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    /// Encodes this value, appending to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(self, out)
    }
    /// Encodes this value into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode(self, &mut out);
        out
    }
    /// Decodes one value from the front of `input`, returning it and the bytes consumed.
    pub fn decode(input: &[u8]) -> Result<(Value, usize), DecodeError> {
        let mut r = Reader { buf: input, pos: 0 };
        let v = r.value(0)?;
        Ok((v, r.pos))
    }
}

/// Descriptor codes for the symbolic names clients sometimes use instead of numbers.
fn symbolic_descriptor(s: &str) -> Option<u64> {
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

fn encode(v: &Value, out: &mut Vec<u8>) {
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

fn variable(out: &mut Vec<u8>, small: u8, large: u8, bytes: &[u8]) {
    if bytes.len() < 256 {
        out.extend([small, bytes.len() as u8]);
    } else {
        out.push(large);
        out.extend((bytes.len() as u32).to_be_bytes());
    }
    out.extend(bytes);
}

fn compound(out: &mut Vec<u8>, small: u8, large: u8, count: usize, body: &[u8]) {
    if body.len() + 1 < 256 && count < 256 {
        out.extend([small, (body.len() + 1) as u8, count as u8]);
    } else {
        out.push(large);
        out.extend(((body.len() + 4) as u32).to_be_bytes());
        out.extend((count as u32).to_be_bytes());
    }
    out.extend(body);
}

/// Arrays use the widest fixed constructor of their element type, so every element shares it.
fn encode_array(items: &[Value], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    let ctor = match items.first() {
        None => 0x40,
        Some(Value::Symbol(_)) => 0xb3,
        Some(Value::String(_)) => 0xb1,
        Some(Value::Binary(_)) => 0xb0,
        Some(Value::Uuid(_)) => 0x98,
        Some(Value::Timestamp(_)) => 0x83,
        Some(Value::Long(_)) => 0x81,
        Some(Value::Ulong(_)) => 0x80,
        Some(Value::Int(_)) => 0x71,
        Some(Value::Uint(_)) => 0x70,
        Some(Value::Bool(_)) => 0x56,
        Some(_) => 0x40,
    };
    for item in items {
        match item {
            Value::Symbol(s) | Value::String(s) => {
                body.extend((s.len() as u32).to_be_bytes());
                body.extend(s.as_bytes())
            }
            Value::Binary(b) => {
                body.extend((b.len() as u32).to_be_bytes());
                body.extend(b)
            }
            Value::Uuid(u) => body.extend(u),
            Value::Timestamp(n) | Value::Long(n) => body.extend(n.to_be_bytes()),
            Value::Ulong(n) => body.extend(n.to_be_bytes()),
            Value::Int(n) => body.extend(n.to_be_bytes()),
            Value::Uint(n) => body.extend(n.to_be_bytes()),
            Value::Bool(b) => body.push(u8::from(*b)),
            _ => {}
        }
    }
    out.push(0xf0);
    out.extend(((body.len() + 5) as u32).to_be_bytes());
    out.extend((items.len() as u32).to_be_bytes());
    out.push(ctor);
    out.extend(body);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const MAX_DEPTH: usize = 64;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
    fn len(&mut self, wide: bool) -> Result<usize, DecodeError> {
        Ok(if wide {
            self.u32()? as usize
        } else {
            self.u8()? as usize
        })
    }
    fn text(&mut self, wide: bool) -> Result<String, DecodeError> {
        let n = self.len(wide)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let ctor = self.u8()?;
        if ctor == 0x00 {
            if depth > MAX_DEPTH {
                return Err(DecodeError::TooDeep);
            }
            let d = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            return Ok(Value::Described(Box::new(d), Box::new(v)));
        }
        self.with_ctor(ctor, depth)
    }

    fn with_ctor(&mut self, ctor: u8, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(match ctor {
            0x40 => Value::Null,
            0x41 => Value::Bool(true),
            0x42 => Value::Bool(false),
            0x56 => Value::Bool(self.u8()? != 0),
            0x50 => Value::Ubyte(self.u8()?),
            0x60 => Value::Ushort(u16::from_be_bytes(self.arr()?)),
            0x43 => Value::Uint(0),
            0x52 => Value::Uint(self.u8()?.into()),
            0x70 => Value::Uint(self.u32()?),
            0x44 => Value::Ulong(0),
            0x53 => Value::Ulong(self.u8()?.into()),
            0x80 => Value::Ulong(u64::from_be_bytes(self.arr()?)),
            0x51 => Value::Byte(self.u8()? as i8),
            0x61 => Value::Short(i16::from_be_bytes(self.arr()?)),
            0x54 => Value::Int((self.u8()? as i8).into()),
            0x71 => Value::Int(i32::from_be_bytes(self.arr()?)),
            0x55 => Value::Long((self.u8()? as i8).into()),
            0x81 => Value::Long(i64::from_be_bytes(self.arr()?)),
            0x72 => Value::Float(f32::from_be_bytes(self.arr()?)),
            0x82 => Value::Double(f64::from_be_bytes(self.arr()?)),
            0x74 => Value::Decimal(ctor, self.take(4)?.to_vec()),
            0x84 => Value::Decimal(ctor, self.take(8)?.to_vec()),
            0x94 => Value::Decimal(ctor, self.take(16)?.to_vec()),
            0x73 => Value::Char(char::from_u32(self.u32()?).ok_or(DecodeError::InvalidChar)?),
            0x83 => Value::Timestamp(i64::from_be_bytes(self.arr()?)),
            0x98 => Value::Uuid(self.arr()?),
            0xa0 | 0xb0 => {
                let n = self.len(ctor == 0xb0)?;
                Value::Binary(self.take(n)?.to_vec())
            }
            0xa1 | 0xb1 => Value::String(self.text(ctor == 0xb1)?),
            0xa3 | 0xb3 => Value::Symbol(self.text(ctor == 0xb3)?),
            0x45 => Value::List(Vec::new()),
            0xc0 | 0xd0 | 0xc1 | 0xd1 => {
                let wide = ctor >= 0xd0;
                let _size = self.len(wide)?;
                let count = self.len(wide)?;
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                if ctor & 0x01 == 0 {
                    Value::List(items)
                } else {
                    let mut entries = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        entries.push((k, v));
                    }
                    Value::Map(entries)
                }
            }
            0xe0 | 0xf0 => {
                let wide = ctor == 0xf0;
                let _size = self.len(wide)?;
                let count = self.len(wide)?;
                let mut elem = self.u8()?;
                let mut descriptor = None;
                if elem == 0x00 {
                    descriptor = Some(self.value(depth + 1)?);
                    elem = self.u8()?;
                }
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    let v = self.with_ctor(elem, depth + 1)?;
                    items.push(match &descriptor {
                        Some(d) => Value::Described(Box::new(d.clone()), Box::new(v)),
                        None => v,
                    });
                }
                Value::Array(items)
            }
            other => return Err(DecodeError::UnknownConstructor(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Value) {
        let bytes = v.to_bytes();
        let (back, used) = Value::decode(&bytes).expect("decodes");
        assert_eq!(back, v);
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn every_kind_of_value_survives_a_roundtrip() {
        roundtrip(Value::Null);
        roundtrip(Value::Bool(true));
        roundtrip(Value::Uint(70000));
        roundtrip(Value::Ulong(3));
        roundtrip(Value::Int(-5));
        roundtrip(Value::Long(1 << 40));
        roundtrip(Value::Timestamp(1_700_000_000_000));
        roundtrip(Value::Uuid([7; 16]));
        roundtrip(Value::str(&"x".repeat(300)));
        roundtrip(Value::Array(vec![Value::sym("a"), Value::sym("b")]));
        roundtrip(Value::Array(vec![Value::Uuid([1; 16])]));
        roundtrip(Value::Map(vec![(
            Value::sym("k"),
            Value::List(vec![Value::Null; 300]),
        )]));
        roundtrip(Value::described_list(
            0x10,
            vec![Value::str("c"), Value::Null],
        ));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = Value::str("hello").to_bytes();
        for n in 0..bytes.len() {
            assert!(Value::decode(&bytes[..n]).is_err());
        }
        assert_eq!(
            Value::decode(&[0xff]),
            Err(DecodeError::UnknownConstructor(0xff))
        );
    }
}
