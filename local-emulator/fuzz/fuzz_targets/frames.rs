//! Fuzz target: `local_emulator::fuzzing::frames` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| local_emulator::fuzzing::frames(data));
