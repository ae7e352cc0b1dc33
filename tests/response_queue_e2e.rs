//! The one-active-response rule over real sockets, as a stock OpenAI client meets it: its
//! `response.create` sent while the model is still answering waits, then reaches the model byte
//! for byte — `instructions`, `conversation: "none"`, `metadata` and all.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_deferred_response_create_reaches_the_model_exactly_as_sent() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let url = format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let words: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    let item = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": words.join(" ")}]}});
    ws.send(Message::text(item.to_string()))
        .await
        .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    // Wait until the model is answering, then ask for an out-of-band response.
    tokio::time::timeout(WAIT, async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && serde_json::from_str::<Value>(t.as_str()).expect("json")["type"]
                    == "response.created"
            {
                return;
            }
        }
        panic!("the socket ended");
    })
    .await
    .expect("response.created in time");
    let create = r#"{"type":"response.create","event_id":"evt_9","response":{"conversation":"none","instructions":"Classify the topic in one word.","metadata":{"purpose":"topic"},"output_modalities":["text"]}}"#;
    ws.send(Message::text(create)).await.expect("send");
    let asked = frames.frames_until_type("response.create").await;
    assert_eq!(
        asked.last().map(String::as_str),
        Some(r#"{"type":"response.create"}"#),
        "the client's own first response.create"
    );
    let seen = frames.frames_until_type("response.create").await;
    assert_eq!(seen.last().map(String::as_str), Some(create));
}
