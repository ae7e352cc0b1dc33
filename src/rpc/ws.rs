//! JSON-RPC over websocket at `GET /rpc`: one text frame per message. The inbound loop and the
//! outbound writer are separate tasks, so a full outbound queue never blocks reading. A client's
//! close is answered with a close frame; a message over the limit closes with 1009, a client too
//! slow for its notifications with 1008, the server stopping with 1001 — each after what is
//! already queued for the client is written.

use super::RpcConnection;
use crate::app::AppState;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;

pub async fn upgrade(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // JSON-RPC is for app-servers: API keys only, never client secrets.
    let principal = match app.caller(&headers, false).await {
        Ok(p) => p,
        Err(e) => return crate::http::calls::auth_error(e),
    };
    let max = app.cfg.server.max_frame_bytes;
    ws.read_buffer_size(crate::http::WS_READ_BUFFER)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(app, socket, principal))
}

async fn serve(app: Arc<AppState>, socket: WebSocket, principal: crate::auth::Principal) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) =
        mpsc::channel::<crate::session::Outbound>(app.cfg.server.outbound_queue);
    let (close_tx, mut close_rx) = tokio::sync::oneshot::channel::<Option<CloseFrame>>();
    let slot = app.connection_slot();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                frame = &mut close_rx => {
                    // What is queued goes first (a drain's `closed`), then the close frame that
                    // completes the handshake (or says why we close); bounded by the caller.
                    while let Ok(msg) = out_rx.try_recv() {
                        if sink.send(Message::text(msg.as_ref())).await.is_err() {
                            return;
                        }
                    }
                    let _ = sink.send(Message::Close(frame.unwrap_or(None))).await;
                    break;
                }
                msg = out_rx.recv() => match msg {
                    Some(msg) => {
                        if sink.send(Message::text(msg.as_ref())).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
            }
        }
        let _ = sink.close().await;
    });
    let mut conn = RpcConnection::new(app, out_tx, principal, "websocket");
    let kill = conn.kill_signal();
    let closing = slot.closing();
    tokio::pin!(closing);
    let farewell = loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => conn.handle_text(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => conn.handle_binary().await,
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => break read_failure(e),
                Some(Ok(_)) => {}
            },
            _ = kill.notified() => break Some(CloseFrame {
                code: 1008,
                reason: "too slow reading notifications".into(),
            }),
            () = &mut closing => break Some(CloseFrame {
                code: 1001,
                reason: "voxgate is shutting down".into(),
            }),
        }
    };
    // The close goes out before the connection's queue closes under the writer.
    let _ = close_tx.send(farewell);
    drop(conn);
    let mut writer = writer;
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        // A peer that reads nothing does not get to hold the writer.
        writer.abort();
    }
}

/// The close frame for a read that failed: 1009 for a message over the limit. (axum's
/// tungstenite is another major version than ours, so the capacity error is known by its text.)
fn read_failure(e: axum::Error) -> Option<CloseFrame> {
    let text = e.to_string();
    text.starts_with("Space limit exceeded")
        .then(|| CloseFrame {
            code: 1009,
            reason: "message too big".into(),
        })
}
