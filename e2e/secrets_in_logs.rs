//! Secrets never reach the logs, at any level: the real binary runs with `RUST_LOG=trace` (JSON
//! logs), an upstream API key, client API keys and a minted client secret, through the JSON-RPC
//! and OpenAI-compatible faces with a delegation; then the whole log is searched for them.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

const WAIT: Duration = Duration::from_secs(20);
const UPSTREAM_KEY: &str = "sk-upstream-SECRET-7f3a9c";
const CLIENT_KEY: &str = "sk-client-SECRET-b81e42";

async fn addr_line(child: &mut tokio::process::Child, prefix: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("open");
        if let Some(rest) = line.strip_prefix(prefix) {
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return rest.trim().to_owned();
        }
    }
}

async fn open_ws(
    url: &str,
    bearer: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {bearer}")).expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

#[tokio::test]
async fn no_secret_appears_in_trace_logs() {
    let bin = env!("CARGO_BIN_EXE_voxgate");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let log_path = dir.join(format!("secrets-log-{}.jsonl", std::process::id()));
    let mut sim = tokio::process::Command::new(bin)
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("simulator");
    let sim_addr = addr_line(&mut sim, "simulator listening on").await;
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut gw = tokio::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
        .env("RUST_LOG", "trace")
        .env("OPENAI_API_KEY", UPSTREAM_KEY)
        .env("VOXGATE_UPSTREAM__KIND", "openai")
        .env(
            "VOXGATE_UPSTREAM__BASE_URL",
            format!("http://{sim_addr}/v1"),
        )
        .env("VOXGATE_AUTH__MODE", "keys")
        .env("VOXGATE_AUTH__KEYS_ENV", "VOXGATE_TEST_CLIENT_KEYS")
        .env("VOXGATE_TEST_CLIENT_KEYS", CLIENT_KEY)
        .env("VOXGATE_AGENT__EMBEDDED__DELAY_MS", "10")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("gateway");
    let addr = addr_line(&mut gw, "voxgate listening on").await;

    // Mint a client secret and run an OpenAI-protocol session with it, including a delegation.
    let secret: Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/realtime/client_secrets"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"expires_after": {"seconds": 60}}))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let ek = secret["value"].as_str().expect("ek").to_owned();
    let mut rt = open_ws(&format!("ws://{addr}/v1/realtime?model=m"), &ek).await;
    rt.send(Message::text(
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "delegate: check the logs"}]}})
        .to_string(),
    ))
    .await
    .expect("send");
    rt.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    loop {
        let msg = tokio::time::timeout(WAIT, rt.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        if t.as_str().contains("Here is what I found")
            && t.as_str().contains("response.output_audio_transcript.done")
        {
            break;
        }
    }
    drop(rt);
    // And a JSON-RPC session with the API key.
    let mut rpc = open_ws(&format!("ws://{addr}/rpc"), CLIENT_KEY).await;
    for msg in [
        json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}, "capabilities": {"experimentalApi": true}}}),
        json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "t", "outputModality": "text"}}),
        json!({"id": 3, "method": "thread/realtime/appendText", "params": {"threadId": "t", "text": "hello"}}),
    ] {
        rpc.send(Message::text(msg.to_string()))
            .await
            .expect("send");
    }
    loop {
        let msg = tokio::time::timeout(WAIT, rpc.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg
            && t.as_str().contains("thread/realtime/transcript/done")
            && t.as_str().contains("assistant")
        {
            break;
        }
    }
    drop(rpc);
    gw.kill().await.expect("stop gateway");
    let logs = std::fs::read_to_string(&log_path).expect("read logs");
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "trace logging was on:\n{logs}"
    );
    for (what, secret) in [
        ("upstream key", UPSTREAM_KEY),
        ("client key", CLIENT_KEY),
        ("client secret", ek.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
    // Not even a recognisable fragment of the keys.
    assert!(!logs.contains("SECRET-7f3a9c") && !logs.contains("SECRET-b81e42"));
}
