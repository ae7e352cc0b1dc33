//! `GET /v1/realtime?model=…`: the OpenAI-compatible websocket face. A stock OpenAI realtime
//! client speaks its protocol to voxgate as to the service: voxgate opens the model socket, passes
//! client events up (through the engine's rules: `response.create` queue, voxgate's tools added to
//! `session.update`) and model events down, answering its own delegation tools server-side so the
//! client never sees them. Unknown events and fields pass through untouched both ways.
//! `GET /v1/realtime?call_id=rtc_…` is a sideband onto a call voxgate runs.

use crate::app::AppState;
use crate::http::calls::api_error;
use crate::session::Delivery;
use crate::session::reactor::SessionCommand;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(serde::Deserialize)]
pub struct RealtimeQuery {
    model: Option<String>,
    /// `quicksilver` selects the v1 wire protocol, as on the service.
    intent: Option<String>,
    call_id: Option<String>,
}

pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    Query(q): Query<RealtimeQuery>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let principal = match app.caller(&headers, true).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    if let Some(call_id) = q.call_id {
        return sideband_upgrade(&app, &headers, &principal, &call_id, ws).await;
    }
    let max = app.cfg.server.max_frame_bytes;
    let permit = match app.admit(&principal).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    ws.read_buffer_size(crate::http::WS_READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(app, socket, q.model, q.intent, principal, permit))
        .into_response()
}

/// A sideband onto a call (`/v1/realtime?call_id=…`, GPT-Live's `/v1/live/sessions/{id}/attach`):
/// the caller's own calls only (an operator's: any), run here or on another cluster node;
/// anything else is "not found".
pub async fn sideband_upgrade(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    principal: &crate::auth::Principal,
    call_id: &str,
    ws: WebSocketUpgrade,
) -> Response {
    let max = app.cfg.server.max_frame_bytes;
    // Only the caller's own calls (an operator's: any), and only calls: never a JSON-RPC or
    // OpenAI-protocol conversation. Anything else is "not found".
    let Some(call) = app.sessions.call(principal.scope(), call_id) else {
        if let Some(peer) = owner_sideband(app, headers, principal, call_id).await {
            return ws
                .read_buffer_size(crate::http::WS_READ_BUFFER)
                .max_message_size(max)
                .max_frame_size(max)
                .on_upgrade(move |socket| crate::cluster::forward::splice(socket, peer))
                .into_response();
        }
        return api_error(
            StatusCode::NOT_FOUND,
            "call_not_found",
            "no such active call",
            Some("call_id"),
        );
    };
    ws.read_buffer_size(crate::http::WS_READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| sideband(socket, call))
        .into_response()
}

/// A sideband onto a call another cluster node runs: a websocket to that node's sideband, to
/// be spliced to the client's (`None`: no node runs it, or its node cannot be reached).
async fn owner_sideband(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    principal: &crate::auth::Principal,
    call_id: &str,
) -> Option<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let cluster = app.cluster()?;
    if headers.contains_key(crate::cluster::AUTH_HEADER) || !crate::http::calls::plain_id(call_id) {
        return None;
    }
    let crate::cluster::Route::Remote { url, .. } =
        cluster.route_call(principal.scope(), call_id).await
    else {
        return None;
    };
    crate::metrics::CLUSTER_FORWARDED
        .with_label_values(&["sideband"])
        .inc();
    let path = format!("/v1/realtime?call_id={call_id}");
    match crate::cluster::forward::connect_ws(cluster, &url, &path, principal).await {
        Ok(peer) => Some(peer),
        Err(e) => {
            tracing::warn!(error = %e, "the node running the call refused or did not answer its sideband");
            None
        }
    }
}

fn error_event(message: &str) -> String {
    json!({"type": "error", "error": {"type": "invalid_request_error", "code": "session_failed",
        "message": message, "param": null}})
    .to_string()
}

async fn serve(
    app: Arc<AppState>,
    socket: WebSocket,
    model: Option<String>,
    intent: Option<String>,
    principal: crate::auth::Principal,
    permit: crate::auth::SessionPermit,
) {
    let thread_id = format!("ws_{:016x}", rand::random::<u64>());
    // The session's reactor owns the socket from here on.
    match app.start_openai_session(
        &thread_id,
        model,
        intent.as_deref() == Some("quicksilver"),
        Box::new(socket),
        Some(&principal),
        Some(permit),
    ) {
        Ok(()) => tracing::info!(%thread_id, "openai-protocol client connected"),
        Err(refused) => {
            let (mut socket, message) = *refused;
            let _ = socket.send(Message::text(error_event(&message))).await;
            let _ = socket.close().await;
        }
    }
}

/// A sideband onto a call voxgate runs (relay or passthrough), as OpenAI's sideband works: it
/// observes every model event of the call and may send client events (session updates, tool
/// answers), which go through the engine's rules. Leaving does not end the call.
async fn sideband(socket: WebSocket, call: crate::session::SessionSender) {
    let (mut sink, stream) = socket.split();
    let (out_tx, out_rx) = mpsc::channel::<Arc<str>>(1024);
    if call.send(SessionCommand::AttachObserver(out_tx)).await == Delivery::NotRunning {
        let _ = sink
            .send(Message::text(error_event("the call has ended")))
            .await;
        return;
    }
    tracing::info!("sideband attached");
    pump(&call, sink, stream, out_rx).await.abort();
    tracing::info!("sideband detached");
}

type WsSink = futures_util::stream::SplitSink<WebSocket, Message>;
type WsStream = futures_util::stream::SplitStream<WebSocket>;

/// Carry one sideband socket: model events for it from `out` to the socket (a writer task,
/// returned), its client events into the call's session (through the engine's rules) until it
/// leaves or the session ends.
async fn pump(
    call: &crate::session::SessionSender,
    mut sink: WsSink,
    mut stream: WsStream,
    mut out: mpsc::Receiver<Arc<str>>,
) -> tokio::task::JoinHandle<()> {
    let writer = tokio::spawn(async move {
        while let Some(text) = out.recv().await {
            if sink.send(Message::text(text.as_ref())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(t) => {
                let delivered = call.send(SessionCommand::ClientText(t.to_string())).await;
                if delivered == Delivery::NotRunning {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    writer
}
