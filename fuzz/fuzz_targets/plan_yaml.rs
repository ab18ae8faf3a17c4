//! Fuzz target `plan_yaml`: feeds arbitrary bytes to `chatload::fuzzing::plan_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatload::fuzzing::plan_yaml(data));
