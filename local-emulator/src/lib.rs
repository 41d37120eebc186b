//! The local emulator: Azure Service Bus and Event Hubs over AMQP 1.0, and a webhook sink,
//! for tests, demos and development without the cloud.
//!
//! ```no_run
//! # async fn demo() -> Result<(), local_emulator::StartError> {
//! let emu = local_emulator::Emulator::builder().amqp_port(0).start().await?;
//! println!("{}", emu.connection_string());
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod admin;
pub mod broker;
pub mod config;
mod emulator;
pub mod faults;
pub mod fuzzing;
pub mod http;
pub mod server;
pub mod sink;
pub mod tls;

pub use emulator::{
    Emulator, EmulatorBuilder, RunningEmulator, StartError, DEFAULT_KEY, DEFAULT_KEY_NAME,
};
