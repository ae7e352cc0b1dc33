//! The axum router: `/rpc` (JSON-RPC websocket), `/healthz`, `/metrics`. Handlers are thin; all
//! shared state is the one [`AppState`].

use crate::app::AppState;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/rpc", get(crate::rpc::ws::upgrade))
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
