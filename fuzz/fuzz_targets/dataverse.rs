//! Fuzz target: `herald::fuzzing::dataverse` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| herald::fuzzing::dataverse(data));
