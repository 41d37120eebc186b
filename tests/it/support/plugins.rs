//! Test components of the WIT world `herald:plugin@1.0.0`: hand-written in WebAssembly text
//! (`tests/plugins/component.wat.in`) to exercise the sandbox without a language runtime.

/// The frame every test component shares.
const FRAME: &str = include_str!("../../plugins/component.wat.in");

/// Answers `{}`.
pub const TRIVIAL: &str = "(call $ok (i32.const 16) (i32.const 2))";
/// Answers its input.
pub const ECHO: &str = "(call $ok (local.get $in) (local.get $in_len))";
/// Refuses with "refused by the test component".
pub const REFUSE: &str = "(call $err (i32.const 64) (i32.const 29))";
/// Never returns.
pub const SPIN: &str = "(loop $l (br $l)) unreachable";
/// Grows its memory without bound.
pub const HOG: &str = "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) unreachable";
/// Traps at once.
pub const TRAP: &str = "unreachable";

/// The binary component whose `handle` runs `body`.
pub fn component(body: &str) -> Vec<u8> {
    wat::parse_str(FRAME.replace("@HANDLE@", body)).expect("test component parses")
}
