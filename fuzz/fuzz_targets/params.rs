//! Fuzz target: `herald::fuzzing::params` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald::fuzzing::params(data));
