//! Adapters toward the realtime model. `url` builds the websocket URL; `ws` is the full-duplex
//! websocket client that turns frames into [`UpstreamEvent`]s and sends what the engine asks.

pub mod call;
pub mod url;
pub mod ws;

pub use ws::{UpstreamEvent, UpstreamLink, UpstreamRequest};
