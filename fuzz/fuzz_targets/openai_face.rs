#![no_main]
//! Fuzz target `openai_face`: see `voxgate::fuzz::openai_face` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::openai_face(data));
