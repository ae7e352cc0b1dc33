#![no_main]
//! Fuzz target `sdp_offer`: see `voxgate::fuzz::sdp_offer` for what it feeds and what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| voxgate::fuzz::sdp_offer(data));
