//! Pure protocol types and serde for every face voxgate speaks: JSON-RPC `thread/realtime/*`
//! (`rpc`), the realtime model's three wire versions (`model_v1`, `model_v2`, `model_v3` = GPT-Live, normalized
//! in `model`)
//! and the per-version session configuration. No tokio, no I/O.

pub mod choices;
pub mod model;
pub mod model_v1;
pub mod model_v2;
pub mod model_v3;
pub mod rpc;
pub mod session_config;

pub use model::{AudioChunk, ModelEvent, ModelFrame, ModelVersion, SkipReason, TextRole};
