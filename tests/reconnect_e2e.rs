//! Upstream reconnect over real sockets: the simulator drops its socket in the middle of a reply
//! (no close frame). The JSON-RPC client keeps its thread — it sees the old model session closed
//! as failed and a new one started, never `closed` — and hears the next reply; the new model
//! session was given the session config and the conversation so far. When every reconnect is
//! refused, the conversation ends with `error` + `closed{error}` after the configured attempts.
//! An OpenAI-protocol client that opted into voxgate's events is told of the switch.

mod common;

use common::*;
use serde_json::{Value, json};

async fn started_thread(h: &Harness) -> RpcClient {
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "version": "v2"}))
        .await;
    c.notification("thread/realtime/started").await;
    c
}

async fn say(c: &mut RpcClient, text: &str) {
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": text}),
    )
    .await;
}

/// Items the client was told, until one of `ty`; fails on `closed`.
async fn item_until(c: &mut RpcClient, ty: &str) -> Value {
    loop {
        let m = c.next_message().await;
        assert_ne!(m["method"], "thread/realtime/closed", "no closed: {m}");
        // codex's timeline: the item as completed.
        if m["method"] == "thread/realtime/item/completed" && m["params"]["item"]["type"] == ty {
            return m["params"]["item"].clone();
        }
    }
}

#[tokio::test]
async fn a_dropped_model_is_reopened_with_the_conversation_replayed_and_the_thread_goes_on() {
    let h = harness_with(|_| {}, |cfg| cfg.upstream.reconnect_backoff_ms = 50).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = started_thread(&h).await;
    say(&mut c, "remember the number 42").await;
    let done = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(done["text"], "You said: remember the number 42");

    say(&mut c, "drop: this reply is cut short").await;
    let lost = item_until(&mut c, "realtimeSessionClosed").await;
    assert_eq!(lost["outcome"], "failed", "{lost}");
    let back = item_until(&mut c, "realtimeSessionStarted").await;
    assert_ne!(
        back["realtimeSessionId"], lost["realtimeSessionId"],
        "{back}"
    );

    // The new model session: the session config first, then the conversation so far.
    frames.next_connected().await;
    frames.next_connected().await;
    let update: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(update["type"], "session.update");
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        assert_eq!(f["type"], "conversation.item.create", "{f}");
        assert!(
            f["previous_item_id"].is_string(),
            "inserted as history: {f}"
        );
        replayed.push((
            f["item"]["role"].as_str().unwrap_or_default().to_owned(),
            f["item"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    assert_eq!(
        replayed,
        [
            (
                "user".to_owned(),
                "[USER] remember the number 42".to_owned()
            ),
            (
                "assistant".to_owned(),
                "You said: remember the number 42".to_owned()
            ),
            (
                "user".to_owned(),
                "[USER] drop: this reply is cut short".to_owned()
            ),
        ]
    );

    // The conversation goes on in the new session.
    say(&mut c, "are you back").await;
    let done = loop {
        let d = c.notification("thread/realtime/transcript/done").await;
        if d["text"] == "You said: are you back" {
            break d;
        }
    };
    assert_eq!(done["role"], "assistant");
    assert_eq!(h.app.sessions.running_count(), 1);
}

#[tokio::test]
async fn when_every_reconnect_is_refused_the_conversation_ends_with_an_error() {
    let h = harness_with(
        |sim| sim.refuse_after_drop = 10,
        |cfg| {
            cfg.upstream.reconnect_attempts = 2;
            cfg.upstream.reconnect_backoff_ms = 50;
        },
    )
    .await;
    let mut c = started_thread(&h).await;
    say(&mut c, "drop: going away").await;
    let err = c.notification("thread/realtime/error").await;
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("2 attempts to reopen it failed"),
        "{message}"
    );
    let closed = c.notification("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "error");
}

#[tokio::test]
async fn an_openai_client_that_opted_in_is_told_the_model_session_changed_and_goes_on() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let h = harness_with(|_| {}, |cfg| cfg.upstream.reconnect_backoff_ms = 50).await;
    let url = format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let item = |text: &str| {
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}})
        .to_string()
    };
    ws.send(Message::text(
        r#"{"type":"voxgate.subscribe_agent_events"}"#,
    ))
    .await
    .expect("send");
    ws.send(Message::text(item("drop: going away")))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    let seen = std::cell::RefCell::new(Vec::<Value>::new());
    let next_of = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, ty: &str| -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("event in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                assert_ne!(v["type"], "error", "{v}");
                seen.borrow_mut().push(v.clone());
                if v["type"] == ty {
                    return v;
                }
            }
        }
    };
    let resumed = next_of(&mut ws, "voxgate.session.resumed").await;
    assert!(resumed["realtime_session_id"].is_string(), "{resumed}");
    ws.send(Message::text(item("still here")))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    loop {
        let done = next_of(&mut ws, "response.output_audio_transcript.done").await;
        if done["transcript"] == "You said: still here" {
            break;
        }
    }
    // One conversation: the successor's own announcements and the replayed history are not
    // passed on.
    let seen = seen.borrow();
    let created = seen
        .iter()
        .filter(|v| v["type"] == "session.created")
        .count();
    assert_eq!(created, 1, "one session.created");
    assert!(
        !seen.iter().any(|v| v["item"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("item_vg_s"))),
        "no replayed history item reaches the client"
    );
}

/// A model socket that goes away on a timer, whatever is being said (`[simulator]
/// drop_after_ms`): every model session is lost after 400 ms, and the conversation still
/// answers turn after turn, each new model session told what came before.
#[tokio::test]
async fn a_model_that_keeps_dropping_its_socket_never_ends_the_conversation() {
    let h = harness_with(
        |sim| sim.drop_after_ms = 400,
        |cfg| cfg.upstream.reconnect_backoff_ms = 20,
    )
    .await;
    let mut c = started_thread(&h).await;
    let mut lost = 0;
    for turn in 0..4 {
        say(&mut c, &format!("turn {turn}")).await;
        let done = c.notification("thread/realtime/transcript/done").await;
        assert_eq!(done["text"], format!("You said: turn {turn}"));
        // Past this model session's 400 ms: it is lost, its successor told the conversation.
        loop {
            let m = c.next_message().await;
            assert_ne!(m["method"], "thread/realtime/closed", "{m}");
            let item = &m["params"]["item"];
            if m["method"] != "thread/realtime/item/completed" {
                continue;
            }
            if item["type"] == "realtimeSessionClosed" {
                assert_eq!(item["outcome"], "failed", "{m}");
                lost += 1;
            }
            if item["type"] == "realtimeSessionStarted" {
                break;
            }
        }
    }
    assert!(lost >= 4, "{lost} sessions lost");
}
