//! JSON-RPC over websocket at `GET /rpc`: one text frame per message. The inbound loop and the
//! outbound writer are separate tasks, so a full outbound queue never blocks reading.

use super::RpcConnection;
use crate::app::AppState;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
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
    let principal = match app
        .auth
        .authenticate(crate::auth::bearer(&headers).as_deref(), false)
    {
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
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(Message::text(msg.as_ref())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut conn = RpcConnection::new(app, out_tx, principal);
    let kill = conn.kill_signal();
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => conn.handle_text(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => conn.handle_binary().await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = kill.notified() => break,
        }
    }
    drop(conn);
    writer.abort();
}
