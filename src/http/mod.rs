//! The axum router: `/rpc` (JSON-RPC websocket), `/v1/realtime/calls` (WebRTC offers and
//! hang-up), `/healthz`, `/metrics`. Handlers are thin; all shared state is the one [`AppState`].

pub mod calls;

use crate::app::AppState;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/rpc", get(crate::rpc::ws::upgrade))
        .route("/v1/realtime/calls", axum::routing::post(calls::create))
        .route(
            "/v1/realtime/calls/{call_id}",
            axum::routing::delete(calls::hangup),
        )
        .route(
            "/v1/realtime/calls/{call_id}/hangup",
            axum::routing::post(calls::hangup),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(|| async { crate::metrics::render() }))
        .with_state(app)
}

/// Serve `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
