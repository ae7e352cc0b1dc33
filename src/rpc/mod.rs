//! The JSON-RPC app-server face: `connection` holds one connection's protocol state and method
//! dispatch (initialize, capabilities, the five `thread/realtime/*` methods, the error matrix);
//! `ws` and `stdio` are its two transports, each with separate inbound and outbound tasks.

pub mod connection;
pub mod connections;
pub mod request;
pub mod start_options;
pub mod stdio;
pub mod trace;
pub mod ws;

pub use connection::RpcConnection;
