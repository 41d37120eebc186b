//! Fuzz target: `local_emulator::fuzzing::codec` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| local_emulator::fuzzing::codec(data));
