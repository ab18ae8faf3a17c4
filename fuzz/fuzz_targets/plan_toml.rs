//! Fuzz target `plan_toml`: feeds arbitrary bytes to `chatload::fuzzing::plan_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::plan_toml(data));
