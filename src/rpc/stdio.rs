//! JSON-RPC over stdio (`voxgate rpc --stdio`): newline-delimited JSON on stdin/stdout, logs on
//! stderr. Same connection logic as the websocket face. A line that is not UTF-8 (like one that
//! is not JSON) is logged and dropped unanswered, as codex does, and the connection goes on; at
//! end of input every session is stopped and its `closed` written before the process exits.

use super::RpcConnection;
use crate::app::AppState;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
        admin: false,
    };
    let mut conn = RpcConnection::new(app.clone(), out_tx, principal, "stdio");
    let kill = conn.kill_signal();
    // A line longer than the message limit is read no further than the limit (plus one byte to
    // know it is longer): the rest up to its newline is skipped.
    let limit = app.cfg.server.max_message_bytes;
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        tokio::select! {
            read = read_line(&mut stdin, &mut line, limit) => match read? {
                None => break,
                Some(()) => match std::str::from_utf8(&line) {
                    Ok(l) if l.trim().is_empty() => {}
                    Ok(l) => conn.handle_text(l).await,
                    // Cut at the limit, a long line may end inside a character: it is too long.
                    Err(_) if line.len() > limit => {
                        conn.handle_text(&String::from_utf8_lossy(&line)).await;
                    }
                    Err(_) => conn.handle_invalid_utf8().await,
                },
            },
            _ = kill.notified() => break,
        }
    }
    // End of input: every session ends, and its `closed` reaches stdout before we leave.
    app.sessions.stop_all();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), app.sessions.wait_idle()).await;
    drop(conn);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
    Ok(())
}

/// Read one line (without its newline) into `line`, keeping at most `limit + 1` bytes of it;
/// `None` at end of input.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<()>> {
    let mut kept = (&mut *r).take(limit as u64 + 1);
    let n = kept.read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > limit {
        // Over the limit: drop the rest of the line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = (&mut *r)
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)
                .await?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(()))
}
