//! The AMQP 1.0 side: codec, frames, connections, sessions, links, SASL, CBS, management.
//! I/O and encodings only; entity state lives in [`crate::broker`].

pub mod cbs;
pub mod codec;
pub mod connection;
pub mod context;
pub mod frame;
pub mod management;
pub mod message;
pub mod quirks;
pub mod session;
