//! The axum router: `/rpc` (JSON-RPC websocket), `/v1/realtime` (OpenAI protocol), `/v1/live`
//! and `/v1/live/sessions` (GPT-Live dialects), `/v1/realtime/calls` (WebRTC offers and
//! hang-up), `/` (demo page), `/healthz` (process up), `/readyz` (accepting sessions), `/metrics`. Handlers are thin; all shared state is the one [`AppState`].

pub mod calls;
pub mod cors;
pub mod head_deadline;
pub mod ice_restart;
pub mod ice_servers;
pub mod live;
pub mod realtime;
pub mod secrets;
pub mod threads;
pub mod tls;

use crate::app::AppState;
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

pub use crate::upstream::ws::WS_READ_BUFFER;

pub fn router(app: Arc<AppState>) -> Router {
    let cors = cors::layer(&app.cfg.server.cors_origins);
    let router = Router::new()
        .route("/rpc", get(crate::rpc::ws::upgrade))
        .route("/v1/realtime", get(realtime::upgrade))
        .route("/v1/live", get(live::frameless))
        .route(
            "/v1/live/sessions",
            get(live::sessions).post(live::create_webrtc),
        )
        .route("/v1/live/sessions/{session_id}/attach", get(live::attach))
        .route("/v1/realtime/calls", axum::routing::post(calls::create))
        .route("/v1/realtime/ice_servers", get(ice_servers::list))
        .route(
            "/v1/realtime/client_secrets",
            axum::routing::post(secrets::create),
        )
        .route(
            "/v1/realtime/calls/{call_id}",
            axum::routing::delete(calls::hangup).patch(ice_restart::renegotiate),
        )
        .route(
            "/v1/realtime/calls/{call_id}/hangup",
            axum::routing::post(calls::hangup),
        )
        .route(
            "/v1/threads/{thread_id}/transcript",
            get(threads::transcript),
        )
        .route("/", get(demo_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app);
    match cors {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// Ready while accepting sessions; 503 once draining for shutdown, or (in a cluster with
/// `on_store_down = "refuse"`) while the cluster store cannot be reached.
async fn readyz(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    if app.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    match app.cluster() {
        Some(c) if c.store_up() => (StatusCode::OK, "ready\ncluster store: reachable\n"),
        Some(_) if app.cfg.cluster.on_store_down == crate::config::OnStoreDown::Refuse => (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster store: unreachable (new sessions refused)\n",
        ),
        Some(_) => (
            StatusCode::OK,
            "ready\ncluster store: unreachable (new sessions under this node's limits)\n",
        ),
        None => (StatusCode::OK, "ready\n"),
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
        && let Err(e) = app.caller(&headers, false).await
    {
        return calls::auth_error(e);
    }
    crate::metrics::render().into_response()
}

/// The demo page: a call with the microphone, the live transcript, the agent's work, hang-up.
/// It is told what it talks to (the simulator or a model service) and whether calls need a key.
async fn demo_page(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
) -> axum::response::Html<String> {
    let upstream = match app.cfg.upstream.kind {
        crate::config::UpstreamKind::Simulator => "simulator",
        crate::config::UpstreamKind::Openai => "openai",
    };
    let auth = match app.auth.mode() {
        crate::config::AuthMode::Keys => "keys",
        _ => "none",
    };
    axum::response::Html(
        include_str!("static/index.html")
            .replacen("{{UPSTREAM}}", upstream, 1)
            .replacen("{{AUTH}}", auth, 1),
    )
}

/// Serve `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, None, app, shutdown).await
}

/// Serve `app` on `listener`, over TLS when given an acceptor, until `shutdown` resolves.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let head_limit = std::time::Duration::from_secs(app.cfg.server.request_timeout_secs);
    let router = router(app);
    match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor, head_limit)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            let listener = head_deadline::HeadDeadlineListener::new(listener, head_limit);
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
