//! Fuzz target `result_json`: feeds arbitrary bytes to `chatload::fuzzing::result_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::result_json(data));
