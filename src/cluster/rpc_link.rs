//! `RpcLink`: one client JSON-RPC connection's channel to another node, for the threads that
//! node owns. The link is a JSON-RPC websocket to the owner's `/rpc`, vouched for as the
//! client's key: requests on those threads go through unchanged (ids included) and whatever
//! the owner sends back — responses, the thread's notifications — lands in the client's own
//! outbound queue, so the client sees one connection. Dropping the link closes it, and the
//! owner unsubscribes it as for any connection that leaves. If the owner goes away instead
//! (killed, or its socket lost), every thread the link carried that had not closed is told
//! `thread/realtime/error` and `thread/realtime/closed` (reason `error`), as the owner would
//! have said to a direct connection, so the client is never left waiting on a dead thread.

use super::Cluster;
use crate::auth::Principal;
use crate::protocol::rpc::{CloseReason, Notification};
use crate::session::Outbound;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// The id of the link's own `initialize`, whose response the client never sees.
const LINK_INIT_ID: &str = "voxgate-cluster-link-init";

/// Requests waiting to go to the owner; a client that outruns the link waits (bounded).
const LINK_QUEUE: usize = 256;

/// Threads a link remembers carrying (a client that names more starts over: the oldest are no
/// longer told of the owner's end).
const LINK_THREADS: usize = 256;

/// The threads a link carried that have not closed.
type Carried = Arc<Mutex<HashSet<String>>>;

pub struct RpcLink {
    tx: mpsc::Sender<String>,
    closed: Arc<AtomicBool>,
    threads: Carried,
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RpcLink {
    fn drop(&mut self) {
        // The writer closes the socket when its queue closes; the reader goes with it.
        self.reader.abort();
        let _ = &self.writer;
    }
}

impl RpcLink {
    /// Open a link to the node at `base` for the client `p` (its notification opt-outs
    /// `opt_out`), delivering into `out`. A peer that closes the link for a client too slow to
    /// read fires `kill`, as the owner would for a direct connection.
    pub async fn open(
        cluster: &Cluster,
        base: &str,
        p: &Principal,
        opt_out: Vec<String>,
        out: mpsc::Sender<Outbound>,
        kill: Arc<Notify>,
    ) -> Result<Self, String> {
        crate::metrics::CLUSTER_FORWARDED
            .with_label_values(&["rpc_link"])
            .inc();
        let socket = super::forward::connect_ws(cluster, base, "/rpc", p).await?;
        let (mut sink, mut stream) = socket.split();
        let init = serde_json::json!({
            "id": LINK_INIT_ID,
            "method": "initialize",
            "params": {
                "clientInfo": {"name": "voxgate-cluster", "version": env!("CARGO_PKG_VERSION")},
                "capabilities": {"experimentalApi": true, "optOutNotificationMethods": opt_out},
            },
        });
        sink.send(Message::text(init.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        let (tx, mut rx) = mpsc::channel::<String>(LINK_QUEUE);
        let closed = Arc::new(AtomicBool::new(false));
        let writer_closed = closed.clone();
        let writer = tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            writer_closed.store(true, Ordering::SeqCst);
            let _ = sink.close().await;
        });
        let reader_closed = closed.clone();
        let threads: Carried = Arc::default();
        let carried = threads.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Text(t) => {
                        if is_link_init_reply(t.as_str()) {
                            continue;
                        }
                        if let Some(thread) = closed_thread(t.as_str()) {
                            lock(&carried).remove(&thread);
                        }
                        if out.send(Arc::from(t.as_str())).await.is_err() {
                            break;
                        }
                    }
                    Message::Close(frame) => {
                        if frame.is_some_and(|f| u16::from(f.code) == 1008) {
                            kill.notify_one();
                        }
                        break;
                    }
                    _ => {}
                }
            }
            reader_closed.store(true, Ordering::SeqCst);
            // The owner went away (a link this side drops is aborted before it gets here).
            let orphans: Vec<String> = lock(&carried).drain().collect();
            if !orphans.is_empty() {
                tracing::warn!(
                    threads = orphans.len(),
                    "the node holding threads of this connection went away"
                );
            }
            for thread in orphans {
                for n in [
                    Notification::Error {
                        message: "the node running this conversation went away".into(),
                    },
                    Notification::Closed {
                        reason: CloseReason::Error,
                    },
                ] {
                    let text = n.to_wire(&thread, crate::protocol::rpc::now_ms());
                    if out.send(Arc::from(text)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Self {
            tx,
            closed,
            threads,
            writer,
            reader,
        })
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// Hand one request on `thread` to the owner. `false`: the link is gone.
    pub async fn send(&self, thread: &str, text: &str) -> bool {
        {
            let mut threads = lock(&self.threads);
            if threads.len() >= LINK_THREADS && !threads.contains(thread) {
                threads.clear();
            }
            threads.insert(thread.to_owned());
        }
        self.is_open() && self.tx.send(text.to_owned()).await.is_ok()
    }
}

fn lock(threads: &Carried) -> std::sync::MutexGuard<'_, HashSet<String>> {
    threads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The thread a `thread/realtime/closed` notification closes (cheap check first: most frames
/// are audio and transcript deltas).
fn closed_thread(text: &str) -> Option<String> {
    if !text.contains("thread/realtime/closed") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    (v.get("method")?.as_str()? == "thread/realtime/closed")
        .then(|| {
            v.get("params")?
                .get("threadId")?
                .as_str()
                .map(str::to_owned)
        })
        .flatten()
}

fn is_link_init_reply(text: &str) -> bool {
    // Cheap check first: only the link's own init reply carries this id.
    text.contains(LINK_INIT_ID)
        && serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|v| v.get("id").and_then(|i| i.as_str()) == Some(LINK_INIT_ID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_notification_names_the_thread_it_closes() {
        let closed = Notification::Closed {
            reason: CloseReason::Requested,
        }
        .to_wire("t1", 1);
        assert_eq!(closed_thread(&closed).as_deref(), Some("t1"));
        let said = Notification::TranscriptDone {
            role: crate::protocol::rpc::TranscriptRole::Assistant,
            text: "thread/realtime/closed".into(),
        }
        .to_wire("t2", 1);
        assert_eq!(closed_thread(&said), None, "a transcript quoting it");
        assert_eq!(closed_thread("not json thread/realtime/closed"), None);
    }
}
