//! The AMQP 1.0 side: codec, frames, connections, sessions, links, SASL, CBS, management.

pub mod codec;
pub mod frame;
