//! Media for WebRTC calls voxgate terminates (relay mode): the Opus codec at the model's 24 kHz,
//! the `PlayoutClock` that paces downlink audio and knows the played position, the checks an SDP
//! offer must pass (`offer`), `CallMedia` (one call's sans-IO str0m peer) and `MediaShards` (the
//! one UDP port every call's media shares).

pub mod call;
pub mod codec;
pub mod offer;
pub mod playout;
pub mod shards;
