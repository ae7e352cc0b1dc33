#![no_main]
//! Fuzz target `model_event`: see `voxgate::fuzz::model_event` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::model_event(data));
