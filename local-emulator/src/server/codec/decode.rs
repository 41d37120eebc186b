//! Reading values, with every length checked against what is left.

use super::{DecodeError, Value};

/// Decodes one value from the front of `input`: the value and the bytes it took.
pub(super) fn value(input: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut r = Reader {
        buf: input,
        pos: 0,
        budget: input.len() + MAX_ZERO_WIDTH_ELEMENTS,
    };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Array elements the input may still produce: its length plus a few thousand of zero
    /// width, so what decoding allocates stays proportional to the input.
    budget: usize,
}

const MAX_DEPTH: usize = 64;

/// How many elements an array may claim beyond the bytes it has (elements of zero width).
const MAX_ZERO_WIDTH_ELEMENTS: usize = 4096;

/// The largest descriptor an array may give its elements (a ulong or a symbol is far less).
const MAX_ARRAY_DESCRIPTOR: usize = 256;

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
            let d = self.descriptor(depth)?;
            let v = self.value(depth + 1)?;
            return Ok(Value::Described(Box::new(d), Box::new(v)));
        }
        self.with_ctor(ctor, depth)
    }

    /// A descriptor: AMQP reserves every type but ulong and symbol.
    fn descriptor(&mut self, depth: usize) -> Result<Value, DecodeError> {
        match self.value(depth + 1)? {
            d @ (Value::Ulong(_) | Value::Symbol(_)) => Ok(d),
            _ => Err(DecodeError::ReservedDescriptor),
        }
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
                // Elements of zero width (null, true, uint 0, an empty list) take no bytes, so
                // the count alone could ask for billions of values: the whole input may make
                // no more elements than its length plus a few thousand.
                self.budget = self
                    .budget
                    .checked_sub(count)
                    .ok_or(DecodeError::BadCount(count))?;
                if count > self.buf.len() - self.pos && count > MAX_ZERO_WIDTH_ELEMENTS {
                    return Err(DecodeError::BadCount(count));
                }
                let mut elem = self.u8()?;
                let mut descriptor = None;
                if elem == 0x00 {
                    let start = self.pos;
                    let d = self.descriptor(depth)?;
                    // Each element gets a copy of the descriptor: keep it descriptor-sized.
                    if self.pos - start > MAX_ARRAY_DESCRIPTOR {
                        return Err(DecodeError::BadCount(count));
                    }
                    descriptor = Some(d);
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
