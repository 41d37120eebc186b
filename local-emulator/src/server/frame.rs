//! Frames: the 8-byte header, the performative and the payload; and the performatives the
//! broker sends, each written with every one of its fields (some clients read them by position).

use super::codec::{DecodeError, Value};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frame type of AMQP frames.
pub const AMQP: u8 = 0;
/// Frame type of SASL frames.
pub const SASL: u8 = 1;

/// Descriptor codes of the performatives and the types inside them.
pub mod code {
    #![allow(missing_docs)]
    pub const OPEN: u64 = 0x10;
    pub const BEGIN: u64 = 0x11;
    pub const ATTACH: u64 = 0x12;
    pub const FLOW: u64 = 0x13;
    pub const TRANSFER: u64 = 0x14;
    pub const DISPOSITION: u64 = 0x15;
    pub const DETACH: u64 = 0x16;
    pub const END: u64 = 0x17;
    pub const CLOSE: u64 = 0x18;
    pub const ERROR: u64 = 0x1d;
    pub const ACCEPTED: u64 = 0x24;
    pub const REJECTED: u64 = 0x25;
    pub const RELEASED: u64 = 0x26;
    pub const MODIFIED: u64 = 0x27;
    pub const SOURCE: u64 = 0x28;
    pub const TARGET: u64 = 0x29;
    pub const SASL_MECHANISMS: u64 = 0x40;
    pub const SASL_INIT: u64 = 0x41;
    pub const SASL_OUTCOME: u64 = 0x44;
}

/// One frame read from the wire.
#[derive(Debug)]
pub struct Frame {
    /// 0 for AMQP, 1 for SASL.
    pub kind: u8,
    /// The channel (session) number.
    pub channel: u16,
    /// The performative; `None` for an empty (heartbeat) frame.
    pub body: Option<Value>,
    /// Bytes after the performative (transfer payload).
    pub payload: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The socket failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A frame larger than the negotiated maximum.
    #[error("frame of {size} bytes exceeds the negotiated maximum of {max}")]
    TooLarge {
        /// The announced size.
        size: u32,
        /// The negotiated maximum.
        max: u32,
    },
    /// A header that cannot be a frame.
    #[error("malformed frame header (size {size}, data offset {doff})")]
    Malformed {
        /// The announced size.
        size: u32,
        /// The announced data offset.
        doff: u8,
    },
    /// A performative that does not decode.
    #[error("malformed performative: {0}")]
    Decode(#[from] DecodeError),
}

/// Reads one frame, refusing any larger than `max`.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: u32) -> Result<Frame, FrameError> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let size = check_header(&head, max)?;
    let mut rest = vec![0u8; size - 8];
    r.read_exact(&mut rest).await?;
    parse(&head, &rest)
}

/// Decodes the first frame of `buf`: the frame and the bytes it took.
pub fn decode_frame(buf: &[u8], max: u32) -> Result<(Frame, usize), FrameError> {
    let truncated = || FrameError::Io(std::io::ErrorKind::UnexpectedEof.into());
    let head: [u8; 8] = buf
        .get(..8)
        .ok_or_else(truncated)?
        .try_into()
        .map_err(|_| truncated())?;
    let size = check_header(&head, max)?;
    let rest = buf.get(8..size).ok_or_else(truncated)?;
    Ok((parse(&head, rest)?, size))
}

/// The frame size a header announces, checked against `max` and the data offset.
fn check_header(head: &[u8; 8], max: u32) -> Result<usize, FrameError> {
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let doff = head[4];
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if size < 8 || doff < 2 || u32::from(doff) * 4 > size {
        return Err(FrameError::Malformed { size, doff });
    }
    Ok(size as usize)
}

fn parse(head: &[u8; 8], rest: &[u8]) -> Result<Frame, FrameError> {
    let body_start = head[4] as usize * 4 - 8;
    let body = &rest[body_start..];
    let channel = u16::from_be_bytes([head[6], head[7]]);
    if body.is_empty() {
        return Ok(Frame {
            kind: head[5],
            channel,
            body: None,
            payload: Vec::new(),
        });
    }
    let (perf, used) = Value::decode(body)?;
    Ok(Frame {
        kind: head[5],
        channel,
        body: Some(perf),
        payload: body[used..].to_vec(),
    })
}

/// Appends one frame carrying `body` and `payload` to `out`.
pub fn write_frame(out: &mut Vec<u8>, kind: u8, channel: u16, body: &Value, payload: &[u8]) {
    let start = out.len();
    out.extend([0, 0, 0, 0, 2, kind]);
    out.extend(channel.to_be_bytes());
    body.encode(out);
    out.extend(payload);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// The 8 bytes of an empty frame, sent as a heartbeat.
pub const EMPTY_FRAME: [u8; 8] = [0, 0, 0, 8, 2, 0, 0, 0];

/// An AMQP error (`amqp:error`), all three fields.
pub fn error(condition: &str, description: &str) -> Value {
    Value::described_list(
        code::ERROR,
        vec![
            Value::sym(condition),
            Value::str(description),
            Value::Map(Vec::new()),
        ],
    )
}

/// `open`, all ten fields.
pub fn open(container: &str, max_frame: u32, channel_max: u16) -> Value {
    Value::described_list(
        code::OPEN,
        vec![
            Value::str(container),
            Value::str("localhost"),
            Value::Uint(max_frame),
            Value::Ushort(channel_max),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Map(Vec::new()),
        ],
    )
}

/// `begin`, all eight fields.
pub fn begin(remote_channel: u16, next_outgoing_id: u32, window: u32) -> Value {
    Value::described_list(
        code::BEGIN,
        vec![
            Value::Ushort(remote_channel),
            Value::Uint(next_outgoing_id),
            Value::Uint(window),
            Value::Uint(window),
            Value::Uint(u32::MAX),
            Value::Null,
            Value::Null,
            Value::Map(Vec::new()),
        ],
    )
}

/// The broker's side of an attach, all fourteen fields.
pub struct AttachReply<'a> {
    /// Link name, as the client chose it.
    pub name: &'a str,
    /// The broker's handle for the link.
    pub handle: u32,
    /// `true` when the broker is the receiver.
    pub role_receiver: bool,
    /// Sender settle mode (echoed).
    pub snd_settle_mode: u8,
    /// Receiver settle mode (echoed).
    pub rcv_settle_mode: u8,
    /// Source terminus (or null when refusing as the sender).
    pub source: Value,
    /// Target terminus (or null when refusing as the receiver).
    pub target: Value,
    /// Largest message the broker takes or sends on the link.
    pub max_message_size: u64,
    /// Link properties (Service Bus's session lock expiry).
    pub properties: Vec<(Value, Value)>,
}

/// `attach`, all fourteen fields.
pub fn attach(a: AttachReply<'_>) -> Value {
    Value::described_list(
        code::ATTACH,
        vec![
            Value::str(a.name),
            Value::Uint(a.handle),
            Value::Bool(a.role_receiver),
            Value::Ubyte(a.snd_settle_mode),
            Value::Ubyte(a.rcv_settle_mode),
            a.source,
            a.target,
            Value::Null,
            Value::Bool(false),
            if a.role_receiver {
                Value::Null
            } else {
                Value::Uint(0)
            },
            Value::Ulong(a.max_message_size),
            Value::Null,
            Value::Null,
            Value::Map(a.properties),
        ],
    )
}

/// Pads a terminus (source or target) to its full field count.
pub fn full_terminus(t: &Value, fields: usize) -> Value {
    match t {
        Value::Described(d, v) => {
            let mut items = v.as_seq().map(<[Value]>::to_vec).unwrap_or_default();
            items.resize(fields, Value::Null);
            Value::Described(d.clone(), Box::new(Value::List(items)))
        }
        other => other.clone(),
    }
}

/// Link-level part of a flow.
pub struct LinkFlow {
    /// The broker's handle.
    pub handle: u32,
    /// The link's delivery count.
    pub delivery_count: u32,
    /// Credit granted (or remaining).
    pub link_credit: u32,
    /// Messages available (sender side).
    pub available: u32,
    /// Drain flag echoed.
    pub drain: bool,
}

/// `flow`, all eleven fields.
pub fn flow(next_incoming: u32, window: u32, next_outgoing: u32, link: Option<LinkFlow>) -> Value {
    let (h, dc, lc, av, dr) = match link {
        Some(l) => (
            Value::Uint(l.handle),
            Value::Uint(l.delivery_count),
            Value::Uint(l.link_credit),
            Value::Uint(l.available),
            Value::Bool(l.drain),
        ),
        None => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Bool(false),
        ),
    };
    Value::described_list(
        code::FLOW,
        vec![
            Value::Uint(next_incoming),
            Value::Uint(window),
            Value::Uint(next_outgoing),
            Value::Uint(window),
            h,
            dc,
            lc,
            av,
            dr,
            Value::Bool(false),
            Value::Map(Vec::new()),
        ],
    )
}

/// `transfer`, all eleven fields.
pub fn transfer(handle: u32, delivery_id: u32, tag: &[u8], settled: bool, more: bool) -> Value {
    Value::described_list(
        code::TRANSFER,
        vec![
            Value::Uint(handle),
            Value::Uint(delivery_id),
            Value::Binary(tag.to_vec()),
            Value::Uint(0),
            Value::Bool(settled),
            Value::Bool(more),
            Value::Null,
            Value::Null,
            Value::Bool(false),
            Value::Bool(false),
            Value::Bool(false),
        ],
    )
}

/// `disposition`, all six fields.
pub fn disposition(
    role_receiver: bool,
    first: u32,
    last: u32,
    settled: bool,
    state: Value,
) -> Value {
    Value::described_list(
        code::DISPOSITION,
        vec![
            Value::Bool(role_receiver),
            Value::Uint(first),
            Value::Uint(last),
            Value::Bool(settled),
            state,
            Value::Bool(false),
        ],
    )
}

/// The `accepted` outcome.
pub fn accepted() -> Value {
    Value::described_list(code::ACCEPTED, Vec::new())
}

/// The `rejected` outcome with its error.
pub fn rejected(err: Value) -> Value {
    Value::described_list(code::REJECTED, vec![err])
}

/// `detach`, all three fields.
pub fn detach(handle: u32, closed: bool, err: Option<Value>) -> Value {
    Value::described_list(
        code::DETACH,
        vec![
            Value::Uint(handle),
            Value::Bool(closed),
            err.unwrap_or(Value::Null),
        ],
    )
}

/// `end` with its error field.
pub fn end(err: Option<Value>) -> Value {
    Value::described_list(code::END, vec![err.unwrap_or(Value::Null)])
}

/// `close` with its error field.
pub fn close(err: Option<Value>) -> Value {
    Value::described_list(code::CLOSE, vec![err.unwrap_or(Value::Null)])
}

/// `sasl-mechanisms` offering ANONYMOUS and PLAIN.
pub fn sasl_mechanisms() -> Value {
    Value::described_list(
        code::SASL_MECHANISMS,
        vec![Value::Array(vec![
            Value::sym("ANONYMOUS"),
            Value::sym("PLAIN"),
        ])],
    )
}

/// `sasl-outcome`, both fields.
pub fn sasl_outcome(code_: u8) -> Value {
    Value::described_list(code::SASL_OUTCOME, vec![Value::Ubyte(code_), Value::Null])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_frame_reads_back_with_its_payload() {
        let mut out = Vec::new();
        write_frame(
            &mut out,
            AMQP,
            3,
            &transfer(1, 2, &[9; 16], false, false),
            b"xyz",
        );
        let f = read_frame(&mut out.as_slice(), 1024).await.expect("frame");
        assert_eq!(f.channel, 3);
        assert_eq!(f.payload, b"xyz");
        let body = f.body.expect("body");
        assert_eq!(body.descriptor_code(), Some(code::TRANSFER));
        assert_eq!(body.field(2).as_bytes().map(<[u8]>::len), Some(16));
    }

    #[tokio::test]
    async fn oversize_and_malformed_headers_are_refused() {
        let big = [0u8, 1, 0, 0, 2, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut &big[..], 1024).await,
            Err(FrameError::TooLarge { .. })
        ));
        let bad = [0u8, 0, 0, 8, 9, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut &bad[..], 1024).await,
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn performatives_carry_every_field() {
        assert_eq!(
            open("c", 1, 1).inner().as_seq().map(<[Value]>::len),
            Some(10)
        );
        assert_eq!(begin(0, 0, 1).inner().as_seq().map(<[Value]>::len), Some(8));
        assert_eq!(
            flow(0, 0, 0, None).inner().as_seq().map(<[Value]>::len),
            Some(11)
        );
        assert_eq!(
            transfer(0, 0, &[], true, false)
                .inner()
                .as_seq()
                .map(<[Value]>::len),
            Some(11)
        );
    }
}
