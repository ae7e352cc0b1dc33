//! JSON-RPC over stdio (`voxgate rpc --stdio`): newline-delimited JSON on stdin/stdout, logs on
//! stderr. Same connection logic as the websocket face.

use super::RpcConnection;
use crate::app::AppState;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

pub async fn serve(app: Arc<AppState>) -> std::io::Result<()> {
    let (out_tx, mut out_rx) =
        mpsc::channel::<crate::session::Outbound>(app.cfg.server.outbound_queue);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(msg) = out_rx.recv().await {
            if stdout.write_all(msg.as_bytes()).await.is_err()
                || stdout.write_all(b"\n").await.is_err()
                || stdout.flush().await.is_err()
            {
                break;
            }
        }
    });
    // stdio is a local process the operator started: it acts with default limits.
    let principal = crate::auth::Principal {
        key_id: "stdio".into(),
        limits: crate::config::KeyLimits::default(),
        bound_session: None,
        via_secret: false,
    };
    let mut conn = RpcConnection::new(app.clone(), out_tx, principal);
    let kill = conn.kill_signal();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(l) if l.trim().is_empty() => {}
                Some(l) => conn.handle_text(&l).await,
                None => break,
            },
            _ = kill.notified() => break,
        }
    }
    app.sessions.stop_all();
    drop(conn);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    Ok(())
}
