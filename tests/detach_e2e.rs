//! Conversations that outlive their JSON-RPC client, over real sockets: the client leaves, the
//! conversation detaches and runs on; a client of the same key that acts on the thread within the
//! grace period is given what was missed, in order, then live events; with nobody back it ends
//! after the grace and frees everything. One test, so the process-wide metrics it reads are its
//! own under `cargo test` too.

mod common;

use common::{RpcClient, WAIT, harness_with};
use serde_json::json;
use std::time::Duration;
use voxgate::metrics;

async fn until(what: &str, cond: impl Fn() -> bool) {
    let held = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(held.is_ok(), "{what} never happened");
}

#[tokio::test]
async fn a_conversation_outlives_its_client_for_the_grace_and_replays_what_was_missed() {
    let h = harness_with(
        |sim| sim.realtime = true,
        |cfg| cfg.session.detach_grace_secs = 4,
    )
    .await;
    let detached = || metrics::SESSIONS_DETACHED.get();

    // A starts a thread, asks for a ten-word reply (two seconds of paced speech), and leaves.
    let mut a = RpcClient::ready(h.addr).await;
    a.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    a.notification("thread/realtime/started").await;
    a.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "one two three four five six seven eight nine ten"}),
    )
    .await;
    drop(a);
    until("the conversation detaching", || detached() == 1).await;
    assert_eq!(h.app.sessions.running_count(), 1, "it runs on, detached");
    // The whole reply is spoken while nobody listens: 12 words, two audio deltas each.
    until("the reply being spoken to nobody", || {
        metrics::TO_CLIENT.frames.get() >= 24
    })
    .await;

    // B acts on the thread: first what A missed, in order, then the conversation goes on.
    let mut b = RpcClient::ready(h.addr).await;
    b.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "again"}),
    )
    .await;
    // The first reply's words were all said while B was not there: B hears them only replayed,
    // in order, before the live reply to "again".
    let mut deltas = String::new();
    loop {
        let n = b.next_message().await;
        match n["method"].as_str() {
            Some("thread/realtime/transcript/delta") => {
                deltas.push_str(n["params"]["delta"].as_str().unwrap_or_default());
            }
            Some("thread/realtime/transcript/done")
                if n["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("again")) =>
            {
                break;
            }
            _ => {}
        }
    }
    assert!(
        deltas.starts_with("You said: one two three four five six seven eight nine ten"),
        "replayed first, in order: {deltas:?}"
    );
    assert!(
        metrics::REPLAY_DROPPED.get() > 0,
        "audio older than the replay window was dropped"
    );
    assert_eq!(detached(), 0, "reattached");
    assert_eq!(
        metrics::SESSIONS_STARTED.with_label_values(&["rpc"]).get(),
        1,
        "one conversation throughout"
    );

    // B leaves too and nobody comes back: the conversation ends after the grace.
    drop(b);
    let idle = tokio::time::timeout(WAIT, h.app.sessions.wait_idle()).await;
    assert!(idle.is_ok(), "{} running", h.app.sessions.running_count());
    assert_eq!(detached(), 0);
    assert_eq!(
        metrics::SESSIONS_ACTIVE.with_label_values(&["rpc"]).get(),
        0
    );
}
