//! Fuzz target: `herald::fuzzing::filters` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald::fuzzing::filters(data));
