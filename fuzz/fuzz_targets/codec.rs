//! Fuzz target `codec`: feeds arbitrary bytes to `chatload::fuzzing::codec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::codec(data));
