#![no_main]
//! Fuzz target `webhook_ndjson`: see `voxgate::fuzz::webhook_ndjson` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::webhook_ndjson(data));
