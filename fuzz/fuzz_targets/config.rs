//! Fuzz target: `herald::fuzzing::config` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald::fuzzing::config(data));
