//! AMQP 1.0 type system: one `Value` enum with an encoder and a decoder.
//! Owns the byte layout of primitive, compound and described values; knows nothing of frames.

mod decode;
mod encode;

use encode::{encode, symbolic_descriptor};

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
    /// An array that claims more elements than its bytes can hold.
    #[error("an array claims {0} elements, more than its bytes can hold")]
    BadCount(usize),
    /// A descriptor that is neither a ulong nor a symbol, which AMQP reserves.
    #[error("a descriptor must be a ulong or a symbol")]
    ReservedDescriptor,
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
        decode::value(input)
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
        roundtrip(Value::Array(vec![Value::Null; 3]));
        roundtrip(Value::Array(vec![Value::Double(1.5), Value::Double(-2.0)]));
        roundtrip(Value::Array(vec![
            Value::List(vec![Value::Int(1)]),
            Value::List(Vec::new()),
        ]));
        roundtrip(Value::Array(vec![Value::Array(vec![Value::sym("x")])]));
        let d = |v| Value::Described(Box::new(Value::Ulong(0x70)), Box::new(v));
        roundtrip(Value::Array(vec![d(Value::Long(1)), d(Value::Long(2))]));
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

    #[test]
    fn descriptors_other_than_ulong_or_symbol_are_refused_as_amqp_reserves_them() {
        let described_by_binary = [0x00, 0xa0, 0x00, 0x40];
        assert_eq!(
            Value::decode(&described_by_binary),
            Err(DecodeError::ReservedDescriptor)
        );
        let nested = [0x00, 0x00, 0x53, 0x01, 0x40, 0x40];
        assert_eq!(Value::decode(&nested), Err(DecodeError::ReservedDescriptor));
        assert!(Value::decode(&[0x00, 0xa3, 0x01, b'x', 0x40]).is_ok());
    }

    #[test]
    fn values_of_different_types_are_written_as_a_list_not_a_garbled_array() {
        let mixed = Value::Array(vec![Value::Int(1), Value::str("x")]);
        let (back, _) = Value::decode(&mixed.to_bytes()).expect("decodes");
        assert_eq!(back, Value::List(vec![Value::Int(1), Value::str("x")]));
    }

    #[test]
    fn an_array_of_four_billion_nulls_is_refused_without_allocating_them() {
        let bytes = [0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40];
        assert_eq!(
            Value::decode(&bytes),
            Err(DecodeError::BadCount(u32::MAX as usize))
        );
        let mut many = Vec::new();
        for _ in 0..100 {
            many.extend([0xe0, 2, 0xff, 0x40]);
        }
        let mut nested = vec![0xd0, 0, 0, 0, 0, 0, 0, 0, 100];
        nested.extend(many);
        assert!(
            matches!(Value::decode(&nested), Err(DecodeError::BadCount(_))),
            "a hundred arrays of 255 nulls in 400 bytes exceed the input's budget"
        );
        let mut described = vec![0xf0, 0, 0, 1, 0, 0, 0, 0, 2, 0x00, 0xb1, 0, 0, 1, 0];
        described.extend(std::iter::repeat_n(b'x', 256));
        described.extend([0x40, 0x40]);
        assert!(
            Value::decode(&described).is_err(),
            "a huge descriptor copied per element"
        );
    }
}
