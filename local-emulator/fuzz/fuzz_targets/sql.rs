//! Fuzz target: `local_emulator::fuzzing::sql` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| local_emulator::fuzzing::sql(data));
