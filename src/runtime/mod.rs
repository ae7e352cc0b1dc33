//! The runtime between the faces and the engine: the registry of running conversations by
//! thread (`sessions`), who listens to each thread (`subscribers`) and the one task per session
//! that drives an [`crate::engine::Engine`] (`session_task`).

pub mod face;
pub mod session_task;
pub mod sessions;
pub mod subscribers;

pub use face::Face;
pub use session_task::SessionSpec;
pub use sessions::Sessions;
pub use subscribers::{Outbound, Subscriber, ThreadSubscribers};
