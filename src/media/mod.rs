//! Media for WebRTC calls voxgate terminates (relay mode): the Opus codec at the model's 24 kHz,
//! the `PlayoutClock` that paces downlink audio and knows the played position, and the str0m peer.

pub mod codec;
pub mod peer;
pub mod playout;
