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
    // The opening within the deadline; pings and pongs before it are no opening.
    let deadline = tokio::time::Instant::now() + wait;
    let first = loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => break other,
        }
    };
    let first = match first {
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

/// `POST /v1/live/sessions` (GPT-Live over WebRTC): `{"session": {…}, "transport": {"type":
/// "webrtc", "sdp": offer}}`, answered `201 {"session": {"id"}, "transport": {"type": "webrtc",
/// "sdp": answer}}` with `Location: /v1/realtime/calls/{id}` (hang up there). The call is
/// voxgate's as any `/v1/realtime/calls` call (`[webrtc] mode`); its data channel carries the
/// model's own events.
pub async fn create_webrtc(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    use crate::http::calls::{api_error, auth_error};
    use axum::http::{StatusCode, header};
    let principal = match app.caller(&headers, true).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    let limit = app.cfg.webrtc.max_offer_bytes + 64 * 1024;
    let wait = Duration::from_secs(app.cfg.server.request_timeout_secs);
    let bytes = match tokio::time::timeout(wait, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the request exceeds {limit} bytes"),
                None,
            );
        }
        Err(_) => {
            return api_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request did not arrive within {}s", wait.as_secs()),
                None,
            );
        }
    };
    let request = match live_webrtc_request(&app, &bytes) {
        Ok(r) => r,
        Err((code, message, param)) => {
            return api_error(StatusCode::BAD_REQUEST, code, message, param);
        }
    };
    let permit = match app.admit(&principal).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    let session = request.session.or_else(|| principal.bound_session.clone());
    let started = match crate::http::calls::place_call(
        &app,
        &principal,
        permit,
        &request.sdp,
        session.as_ref(),
        app.cfg.webrtc.mode,
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let body = serde_json::json!({"session": {"id": started.thread_id},
        "transport": {"type": "webrtc", "sdp": started.answer}});
    (
        StatusCode::CREATED,
        [(
            header::LOCATION,
            format!("/v1/realtime/calls/{}", started.thread_id),
        )],
        axum::Json(body),
    )
        .into_response()
}

struct LiveWebrtcRequest {
    sdp: String,
    /// The session in the shape voxgate's calls take (instructions, voice, model).
    session: Option<serde_json::Value>,
}

type BadRequest = (&'static str, String, Option<&'static str>);

/// Read a GPT-Live WebRTC session request: the offer and the session, checked as the
/// websocket face checks `session.start` (strict fields, `client` delegation); a voice or model
/// the upstream's version lacks gives way to its default.
fn live_webrtc_request(app: &AppState, bytes: &[u8]) -> Result<LiveWebrtcRequest, BadRequest> {
    use serde_json::Value;
    let req: Value = serde_json::from_slice(bytes).map_err(|_| {
        (
            "invalid_json",
            "the request body is not JSON".to_owned(),
            None,
        )
    })?;
    if req["transport"]["type"] != "webrtc" {
        return Err((
            "invalid_transport",
            "`transport.type` must be \"webrtc\" (websocket clients open GET /v1/live/sessions)"
                .to_owned(),
            Some("transport.type"),
        ));
    }
    let sdp = req["transport"]["sdp"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or((
            "missing_required_parameter",
            "Missing required parameter: 'transport.sdp'.".to_owned(),
            Some("transport.sdp"),
        ))?
        .to_owned();
    let Some(session) = req.get("session").filter(|s| !s.is_null()) else {
        return Ok(LiveWebrtcRequest { sdp, session: None });
    };
    let opening = serde_json::json!({"type": "session.start", "session": session}).to_string();
    let o = parse_opening(LiveDialect::GptLive, &opening)
        .map_err(|e| (e.code, e.message, Some("session")))?;
    let version = app.cfg.upstream.version;
    let mut out = serde_json::json!({});
    // No instructions and no history: voxgate's default prompt.
    if o.instructions.is_some() || !o.initial_items.is_empty() {
        let mut instructions = o.instructions.unwrap_or_default();
        crate::protocol::session_config::append_conversation_so_far(
            &mut instructions,
            &o.initial_items,
        );
        out["instructions"] = instructions.into();
    }
    if let Some(voice) = o
        .voice
        .filter(|v| crate::protocol::session_config::voices(version).contains(&v.as_str()))
    {
        out["audio"] = serde_json::json!({"output": {"voice": voice}});
    }
    if let Some(model) = o
        .model
        .filter(|_| version == crate::protocol::ModelVersion::V3)
    {
        out["model"] = model.into();
    }
    Ok(LiveWebrtcRequest {
        sdp,
        session: Some(out),
    })
}

/// `GET /v1/live/sessions/{id}/attach`: GPT-Live's sideband onto a call voxgate runs (the
/// caller's own), as `/v1/realtime?call_id=` is: the model's events of the call, client events
/// through the engine's rules.
pub async fn attach(
    State(app): State<Arc<AppState>>,
    axum::extract::Path(session_id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let principal = match app.caller(&headers, true).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    crate::http::realtime::sideband_upgrade(&app, &headers, &principal, &session_id, ws).await
}
