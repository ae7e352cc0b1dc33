//! `RpcLink`: one client JSON-RPC connection's channel to another node, for the threads that
//! node owns. The link is a JSON-RPC websocket to the owner's `/rpc`, vouched for as the
//! client's key: requests on those threads go through unchanged (ids included) and whatever
//! the owner sends back — responses, the thread's notifications — lands in the client's own
//! outbound queue, so the client sees one connection. Dropping the link closes it, and the
//! owner unsubscribes it as for any connection that leaves.

use super::Cluster;
use crate::auth::Principal;
use crate::session::Outbound;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// The id of the link's own `initialize`, whose response the client never sees.
const LINK_INIT_ID: &str = "voxgate-cluster-link-init";

/// Requests waiting to go to the owner; a client that outruns the link waits (bounded).
const LINK_QUEUE: usize = 256;

pub struct RpcLink {
    tx: mpsc::Sender<String>,
    closed: Arc<AtomicBool>,
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
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                match msg {
                    Message::Text(t) => {
                        if is_link_init_reply(t.as_str()) {
                            continue;
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
        });
        Ok(Self {
            tx,
            closed,
            writer,
            reader,
        })
    }

    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }

    /// Hand one request to the owner. `false`: the link is gone.
    pub async fn send(&self, text: &str) -> bool {
        self.is_open() && self.tx.send(text.to_owned()).await.is_ok()
    }
}

fn is_link_init_reply(text: &str) -> bool {
    // Cheap check first: only the link's own init reply carries this id.
    text.contains(LINK_INIT_ID)
        && serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|v| v.get("id").and_then(|i| i.as_str()) == Some(LINK_INIT_ID))
}
