//! Fuzz target `stamps`: feeds arbitrary bytes to `chatload::fuzzing::stamps`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::stamps(data));
