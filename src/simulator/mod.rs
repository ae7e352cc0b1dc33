//! The embedded realtime model: the server side of v1, v2 and v3 (GPT-Live, `live`) over websocket, used in-process by
//! default (`[upstream] kind = "simulator"`) and standalone (`voxgate simulate`). `conversation`
//! holds the sans-IO behaviour; `server` the socket plumbing and a record of what it received
//! (tests assert exact frames through it).

pub mod audio;
pub mod calls;
pub mod conversation;
pub mod live;
pub mod peer;
pub mod server;

pub use server::{SimRecord, Simulator};
