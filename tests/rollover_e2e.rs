//! Rollover over real sockets: the simulator ends model sessions at 2.5 s as the service does at
//! its limit (`session_expired`), voxgate retires them after 1 s — only at a turn boundary — and
//! switches to the next — opened in the background half a session earlier — told the
//! conversation so far. Across turn after turn the JSON-RPC client never
//! sees `closed` or an error; it sees each switch on codex's timeline as realtimeSessionClosed
//! {ended} + realtimeSessionStarted items between turns, never inside a reply.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn model_sessions_roll_over_between_turns_and_the_conversation_never_notices() {
    let h = harness_with(
        |sim| {
            sim.realtime = true;
            sim.max_session_ms = 2500;
        },
        |cfg| cfg.upstream.max_session_secs = 1,
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "version": "v2"}))
        .await;
    c.notification("thread/realtime/started").await;

    let mut rollovers = 0;
    let mut in_reply = false;
    let mut switching = false;
    for turn in 0..20 {
        if rollovers >= 2 {
            break;
        }
        c.request(
            "thread/realtime/appendText",
            json!({"threadId": "t", "text": format!("turn {turn}")}),
        )
        .await;
        loop {
            let m: Value = c.next_message().await;
            let method = m["method"].as_str().unwrap_or_default();
            assert!(
                !matches!(method, "thread/realtime/closed" | "thread/realtime/error"),
                "the conversation noticed: {m}"
            );
            let item = &m["params"]["item"];
            match (method, item["type"].as_str()) {
                ("thread/realtime/item/completed", Some("realtimeSessionClosed")) => {
                    assert_eq!(item["outcome"], "ended", "{m}");
                    assert!(!in_reply, "a switch inside a reply: {m}");
                    switching = true;
                    rollovers += 1;
                }
                ("thread/realtime/item/completed", Some("realtimeSessionStarted")) => {
                    switching = false
                }
                ("thread/realtime/transcript/delta", _) => {
                    assert!(!switching, "speech while switching: {m}");
                    in_reply = true;
                }
                ("thread/realtime/transcript/done", _)
                    if m["params"]["text"] == format!("You said: turn {turn}") =>
                {
                    in_reply = false;
                    break;
                }
                _ => {}
            }
        }
    }
    assert!(rollovers >= 2, "{rollovers} rollovers");
    assert!(!switching, "the last switch completed");

    // Each successor was opened before its predecessor closed (make-before-break: the switch
    // costs no handshake), and was told the conversation so far as history.
    let mut connections = 0;
    let mut history = Vec::new();
    let mut open = std::collections::BTreeSet::new();
    while connections < 2 || history.is_empty() {
        match frames.next().await {
            voxgate::simulator::SimRecord::Connected { conn, .. } => {
                connections += 1;
                open.insert(conn);
                if connections >= 2 {
                    assert!(
                        open.len() >= 2,
                        "the successor {conn} opened only after its predecessor closed"
                    );
                }
            }
            voxgate::simulator::SimRecord::Disconnected { conn } => {
                open.remove(&conn);
            }
            voxgate::simulator::SimRecord::Frame { text, .. } if connections >= 2 => {
                let f: Value = serde_json::from_str(&text).expect("json");
                if f["previous_item_id"].is_string() {
                    history.push(f["item"]["content"][0]["text"].clone());
                }
            }
            _ => {}
        }
    }
    assert_eq!(history[0], "[USER] turn 0", "{history:?}");
}
