#![no_main]
//! Fuzz target `offer_form`: see `voxgate::fuzz::offer_form` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::offer_form(data));
