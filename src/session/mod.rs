//! The session layer, built like str0m one level up: a conversation is a sans-IO
//! [`core::SessionCore`] (engine, the face's codec, relay media, every deadline) driven by one
//! [`reactor`] task that owns its sockets. [`registry::Sessions`] maps thread ids to running
//! sessions and their JSON-RPC [`subscribers`]; [`plan`] turns validated start parameters into
//! what a session starts with, once.

pub mod client;
pub mod core;
pub mod detach;
pub mod face;
mod late;
pub mod live_codec;
pub mod outbox;
pub mod reactor;
pub mod reconnect;
pub mod record;
pub mod registry;
pub mod subscribers;

#[cfg(test)]
mod tests;

pub use face::Face;
pub use registry::{Delivery, SessionSender, Sessions};
pub use subscribers::{Outbound, Subscriber, ThreadSubscribers};
