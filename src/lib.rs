//! voxgate: a realtime voice gateway. Layers, top to bottom: `cli`/`config` (app), `http` + `rpc`
//! (faces), `session` (the sans-IO session core, its reactor task and the registry), `engine` (sans-IO
//! conversation state machine), `protocol` (pure wire types), and the adapters `upstream`,
//! `agent` and `simulator`.

pub mod agent;
pub mod app;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod loadtest;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod rpc;
pub mod session;
pub mod simulator;
pub mod telemetry;
pub mod upstream;
