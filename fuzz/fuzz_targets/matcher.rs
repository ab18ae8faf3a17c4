//! Fuzz target `matcher`: feeds arbitrary bytes to `chatload::fuzzing::matcher`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::matcher(data));
