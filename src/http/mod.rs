//! The axum router: `/rpc` (JSON-RPC websocket), `/v1/realtime/calls` (WebRTC offers and
//! hang-up), `/` (demo page), `/healthz` (process up), `/readyz` (accepting sessions), `/metrics`. Handlers are thin; all shared state is the one [`AppState`].

pub mod calls;
pub mod realtime;
pub mod secrets;

use crate::app::AppState;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

pub use crate::upstream::ws::WS_READ_BUFFER;

pub fn router(app: Arc<AppState>) -> Router {
    Router::new()
        .route("/rpc", get(crate::rpc::ws::upgrade))
        .route("/v1/realtime", get(realtime::upgrade))
        .route("/v1/realtime/calls", axum::routing::post(calls::create))
        .route(
            "/v1/realtime/client_secrets",
            axum::routing::post(secrets::create),
        )
        .route(
            "/v1/realtime/calls/{call_id}",
            axum::routing::delete(calls::hangup),
        )
        .route(
            "/v1/realtime/calls/{call_id}/hangup",
            axum::routing::post(calls::hangup),
        )
        .route("/", get(demo_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Ready while accepting sessions; 503 once draining for shutdown.
async fn readyz(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
) -> (axum::http::StatusCode, &'static str) {
    if app.is_draining() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (axum::http::StatusCode::OK, "ready\n")
    }
}

/// Prometheus metrics: behind an API key in keys mode unless `[server] metrics_public`.
async fn metrics(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if app.auth.mode() == crate::config::AuthMode::Keys
        && !app.cfg.server.metrics_public
        && let Err(e) = app
            .auth
            .authenticate(crate::auth::bearer(&headers).as_deref(), false)
    {
        return calls::auth_error(e);
    }
    crate::metrics::render().into_response()
}

/// The demo page: a call with the microphone, the live transcript, the agent's work, hang-up.
async fn demo_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("static/index.html"))
}

/// Serve `app` on `listener` until `shutdown` resolves, then wait for open requests. A client
/// must finish its request headers within `[server] header_timeout_secs` (slow-header clients
/// hold no connection for long); bodies are bounded where they are read.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let header_timeout = std::time::Duration::from_secs(app.cfg.server.header_timeout_secs);
    let router = router(app);
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Every accepted socket sends at once: with Nagle on, a small frame written behind
        // another (an RPC reply, then an audio notification) waits for the client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        tracing::trace!(%peer, "connection accepted");
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
