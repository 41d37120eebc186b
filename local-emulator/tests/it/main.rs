//! The emulator's integration tests: official SDKs (Python, JavaScript and Rust) and raw frames against
//! the emulator started in-process on free ports.

mod node_sdks;
mod python_sdks;
mod rust_sdks;
mod security;
mod state;
mod support;
mod wire;
