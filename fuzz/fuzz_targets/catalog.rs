//! Fuzz target: `herald::fuzzing::catalog` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald::fuzzing::catalog(data));
