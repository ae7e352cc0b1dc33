#![no_main]
//! Fuzz target `rpc_message`: see `voxgate::fuzz::rpc_message` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::rpc_message(data));
