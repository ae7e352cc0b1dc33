//! A `/v1/realtime` client that reads nothing at all, over a real socket, with
//! `[server] client_stall_secs = 1`: once nothing has been taken for that long its session ends,
//! it is counted, its slot is free, and its connection is closed (code 1008 "client stopped
//! reading" if it ever reads that far).

mod common;

use common::{WAIT, harness_with};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use voxgate::metrics;

/// Poll a condition on the process's metrics until it holds (bounded).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let held = tokio::time::timeout(WAIT * 3, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(held.is_ok(), "{what} never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_disconnected_and_its_session_ends() {
    let h = harness_with(|_| {}, |cfg| cfg.server.client_stall_secs = 1).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(h.addr).await.expect("connect");
    let url = format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr);
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade");
    let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
    let item = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": words.join(" ")}]}});
    slow.send(Message::text(item.to_string()))
        .await
        .expect("send");

    let active = || {
        metrics::SESSIONS_ACTIVE
            .with_label_values(&["openai_ws"])
            .get()
    };
    until("the session starting", || active() == 1).await;
    until("the stalled client being cut", || {
        metrics::SOCKETS_CLOSED_SLOW.get() >= 1
    })
    .await;
    until("the session ending", || active() == 0).await;

    // The client reads at last: what the kernel held, then the end of the connection.
    let mut close = None;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(msg) = slow.next().await {
            match msg {
                Ok(Message::Close(frame)) => close = frame,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection was still open");
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
        assert_eq!(frame.reason.as_str(), "client stopped reading");
    }
}
