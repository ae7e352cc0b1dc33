//! The GPT-Live faces: `GET /v1/live?model=…` speaks codex 0.169's frameless realtime v3 (codex
//! with `[realtime] version = "v3"` and `experimental_realtime_ws_base_url` at voxgate's `/v1`
//! opens it), `GET /v1/live/sessions` speaks GPT-Live's session events. The client's opening
//! event (`session.update` / `session.start`) is read here, within the request timeout; the
//! conversation then runs in a session reactor like any other, its client's events and the
//! conversation's notifications translated by `session::live_codec`. Auth and admission are
//! those of `/v1/realtime`: an API key or an `ek_` client secret, counted against the key.

use crate::app::AppState;
use crate::session::live_codec::{LiveDialect, LiveError, parse_opening};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

#[derive(serde::Deserialize)]
pub struct LiveQuery {
    model: Option<String>,
}

/// `GET /v1/live`: codex's frameless dialect.
pub async fn frameless(
    app: State<Arc<AppState>>,
    q: Query<LiveQuery>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(app, q, headers, ws, LiveDialect::Frameless).await
}

/// `GET /v1/live/sessions`: GPT-Live's session events.
pub async fn sessions(
    app: State<Arc<AppState>>,
    q: Query<LiveQuery>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(app, q, headers, ws, LiveDialect::GptLive).await
}

async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(q): Query<LiveQuery>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
    dialect: LiveDialect,
) -> Response {
    let principal = match app.caller(&headers, true).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    let permit = match app.admit(&principal).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    let max = app.cfg.server.max_frame_bytes;
    ws.read_buffer_size(crate::http::WS_READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(app, socket, dialect, q.model, principal, permit))
        .into_response()
}

/// Tell the client why, and close (1008: it broke the protocol; 1011: voxgate could not start).
async fn refuse(mut socket: WebSocket, error: LiveError, code: u16) {
    let _ = socket.send(Message::text(error.to_event())).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: error.code.into(),
        })))
        .await;
}

async fn serve(
    app: Arc<AppState>,
    mut socket: WebSocket,
    dialect: LiveDialect,
    model: Option<String>,
    principal: crate::auth::Principal,
    permit: crate::auth::SessionPermit,
) {
    let wait = Duration::from_secs(app.cfg.server.request_timeout_secs.max(1));
    let first = match tokio::time::timeout(wait, socket.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(Message::Binary(_)))) => {
            let e = LiveError {
                code: "invalid_event",
                message: "events are JSON text frames".into(),
            };
            return refuse(socket, e, 1003).await;
        }
        Ok(_) => return,
        Err(_) => {
            let e = LiveError {
                code: "session_not_started",
                message: format!(
                    "no `{}` within {}s of connecting",
                    dialect.opening(),
                    wait.as_secs()
                ),
            };
            return refuse(socket, e, 1008).await;
        }
    };
    let mut opening = match parse_opening(dialect, first.as_str()) {
        Ok(o) => o,
        Err(e) => return refuse(socket, e, 1008).await,
    };
    opening.model = opening.model.or(model);
    let thread_id = format!("live_{:016x}", rand::random::<u64>());
    match app.start_live_session(
        &thread_id,
        dialect,
        opening,
        Box::new(socket),
        Some(&principal),
        Some(permit),
    ) {
        Ok(()) => tracing::info!(%thread_id, ?dialect, "gpt-live client connected"),
        Err(refused) => {
            let (socket, message) = *refused;
            let e = LiveError {
                code: "session_failed",
                message,
            };
            refuse(socket, e, 1011).await;
        }
    }
}
