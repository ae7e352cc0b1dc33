//! Adapters toward the realtime model. `url` builds the websocket URL; `ws` opens the model's
//! websocket for a session's reactor; `call` creates calls on the model's calls endpoint.

pub mod call;
pub mod url;
pub mod ws;

pub use ws::{ModelSocket, UpstreamRequest};
