//! A `/v1/realtime` client that reads nothing at all, over a real socket, with
//! `[server] client_stall_secs = 1`: once nothing has been taken for that long its session ends,
//! it is counted, its slot is free, and its connection is closed (code 1008 "client stopped
//! reading" if it ever reads that far).

mod common;

use common::{WAIT, harness_with, slow_reader_asking_for};
use futures_util::StreamExt;
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
    let mut slow = slow_reader_asking_for(h.addr, 2000).await;

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
