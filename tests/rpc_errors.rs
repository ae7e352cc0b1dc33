//! The JSON-RPC error matrix of protocol.md §1 and bad input: each case gets its exact error, and
//! the connection (and other sessions) keep working afterwards.

mod common;

use common::*;
use serde_json::{Value, json};

fn error_of(r: &Value) -> (i64, String) {
    (
        r["error"]["code"].as_i64().unwrap_or_default(),
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn requests_before_initialize_are_not_initialized() {
    let h = harness().await;
    let mut c = RpcClient::connect(h.addr).await;
    let r = c.request("thread/realtime/listVoices", json!({})).await;
    assert_eq!(error_of(&r), (-32600, "Not initialized".into()));
    let r = c.request("no/such", json!({})).await;
    assert_eq!(error_of(&r), (-32600, "Not initialized".into()));
}

#[tokio::test]
async fn second_initialize_is_already_initialized() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c
        .request(
            "initialize",
            json!({"clientInfo": {"name": "x", "version": "1"}}),
        )
        .await;
    assert_eq!(error_of(&r), (-32600, "Already initialized".into()));
}

#[tokio::test]
async fn realtime_methods_require_experimental_api() {
    let h = harness().await;
    let mut c = RpcClient::ready_with(h.addr, json!({})).await;
    for method in [
        "thread/realtime/start",
        "thread/realtime/appendAudio",
        "thread/realtime/appendText",
        "thread/realtime/stop",
        "thread/realtime/listVoices",
    ] {
        let r = c.request(method, json!({"threadId": "t"})).await;
        assert_eq!(
            error_of(&r),
            (
                -32600,
                format!("{method} requires experimentalApi capability")
            )
        );
    }
}

#[tokio::test]
async fn unknown_method_is_method_not_found() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c.request("thread/realtime/dance", json!({})).await;
    assert_eq!(error_of(&r).0, -32601);
    assert!(error_of(&r).1.contains("thread/realtime/dance"));
}

#[tokio::test]
async fn bad_params_are_invalid_request_with_detail() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c
        .request("thread/realtime/start", json!({"outputModality": "audio"}))
        .await;
    let (code, msg) = error_of(&r);
    assert_eq!(code, -32600);
    assert!(
        msg.starts_with("Invalid request: ") && msg.contains("threadId"),
        "{msg}"
    );
    let r = c
        .request(
            "thread/realtime/start",
            json!({"threadId": "t", "outputModality": "smell"}),
        )
        .await;
    assert!(error_of(&r).1.starts_with("Invalid request: "), "{r}");
    let r = c
        .request(
            "thread/realtime/appendText",
            json!({"threadId": 5, "text": "x"}),
        )
        .await;
    assert!(error_of(&r).1.starts_with("Invalid request: "), "{r}");
}

fn unanswerable(reason: &str) -> u64 {
    voxgate::metrics::RPC_UNANSWERABLE
        .with_label_values(&[reason])
        .get()
}

/// A message whose request id cannot be read gets no response — codex 0.169's way: its
/// request id is a string or an integer, so `"id": null` would break typed codex clients. It
/// is counted (and logged), and the connection goes on.
#[tokio::test]
async fn bad_json_is_dropped_unanswered_and_the_connection_survives() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let before = unanswerable("malformed");
    c.send_raw("{not json").await;
    c.barrier().await;
    c.assert_nothing_else();
    assert_eq!(unanswerable("malformed"), before + 1);
}

#[tokio::test]
async fn non_object_json_is_dropped_unanswered_and_one_with_an_id_gets_its_error() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let before = unanswerable("malformed");
    c.send_raw("[1,2,3]").await;
    c.send_raw("42").await;
    c.barrier().await;
    c.assert_nothing_else();
    assert_eq!(unanswerable("malformed"), before + 2);
    // With a readable id, the error goes back under it.
    c.send_raw(r#"{"id": 77, "method": 5}"#).await;
    let r = c.response_to(json!(77)).await;
    assert_eq!(
        error_of(&r),
        (-32600, "Invalid request: `method` must be a string".into())
    );
}

#[tokio::test]
async fn bad_voice_is_an_error_notification_without_closed() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "voice": "cove"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err["message"],
        "realtime voice `cove` is not supported for v2; supported voices: alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar"
    );
    c.barrier().await;
    c.request("thread/realtime/stop", json!({"threadId": "other"}))
        .await;
    // The only closed we see is the one for the explicit stop of another thread.
    let (seen, closed) = c.methods_until("thread/realtime/closed").await;
    assert_eq!(closed["threadId"], "other");
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test]
async fn text_output_on_v1_is_refused() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "text", "version": "v1"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err["message"],
        "text realtime output modality requires realtime v2"
    );
}

#[tokio::test]
async fn real_upstream_without_api_key_is_refused() {
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.upstream.api_key = None;
            cfg.upstream.api_key_env = "VOXGATE_TEST_KEY_THAT_IS_NOT_SET".into();
        },
    )
    .await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err["message"],
        "realtime conversation requires API key auth"
    );
}

#[tokio::test]
async fn connect_failure_is_an_error_without_closed() {
    // A port that was bound and released: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let h = harness_with(
        |_| {},
        |cfg| cfg.upstream.base_url = format!("http://127.0.0.1:{port}/v1"),
    )
    .await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("failed to connect to the realtime model"),
        "{err}"
    );
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "x"}),
    )
    .await;
    let (seen, err) = c.methods_until("thread/realtime/error").await;
    assert_eq!(err["message"], "conversation is not running");
    assert!(!seen.contains(&"thread/realtime/closed".to_owned()));
}

#[tokio::test]
async fn append_to_an_unknown_thread_is_thread_not_found_as_codex_answers() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c
        .request(
            "thread/realtime/appendAudio",
            json!({"threadId": "none",
            "audio": {"data": b64(&pcm(10, false)), "sampleRate": 24000, "numChannels": 1}}),
        )
        .await;
    assert_eq!(error_of(&r), (-32600, "thread not found: none".into()));
    let r = c
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "none", "text": "hi"}),
        )
        .await;
    assert_eq!(error_of(&r), (-32600, "thread not found: none".into()));
}

#[tokio::test]
async fn invalid_base64_audio_is_rejected_and_the_session_keeps_working() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    let r = c
        .request(
            "thread/realtime/appendAudio",
            json!({"threadId": "t",
            "audio": {"data": "***not base64***", "sampleRate": 24000, "numChannels": 1}}),
        )
        .await;
    let (code, msg) = error_of(&r);
    assert_eq!(code, -32600);
    assert!(msg.contains("not valid base64"), "{msg}");
    let r = c
        .request(
            "thread/realtime/appendAudio",
            json!({"threadId": "t",
            "audio": {"data": b64(&pcm(10, false)), "sampleRate": 48000, "numChannels": 2}}),
        )
        .await;
    assert!(error_of(&r).1.contains("24000 Hz mono"), "{r}");
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "still here"}),
    )
    .await;
    assert_eq!(
        c.notification("thread/realtime/transcript/done").await["text"],
        "You said: still here"
    );
}

#[tokio::test]
async fn ten_megabyte_frame_gets_an_error_and_other_sessions_continue() {
    let h = harness().await;
    let mut other = RpcClient::ready(h.addr).await;
    other
        .start(json!({"threadId": "other", "outputModality": "audio"}))
        .await;
    other.notification("thread/realtime/started").await;

    let mut c = RpcClient::ready(h.addr).await;
    let big = format!(
        r#"{{"id":99,"method":"thread/realtime/appendText","params":{{"threadId":"t","text":"{}"}}}}"#,
        "a".repeat(10 * 1024 * 1024)
    );
    c.send_raw(big).await;
    // Its id is read (nothing else of it kept): the error goes back under it.
    let r = c.response_to(json!(99)).await;
    let (code, msg) = error_of(&r);
    assert_eq!(code, -32600);
    assert!(msg.contains("exceeds the limit"), "{msg}");
    c.barrier().await;

    other
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "other", "text": "ok"}),
        )
        .await;
    assert_eq!(
        other.notification("thread/realtime/transcript/done").await["text"],
        "You said: ok"
    );
}

#[tokio::test]
async fn trace_field_is_accepted_on_requests() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.send_raw(
        json!({"id": 7, "method": "thread/realtime/listVoices", "params": {},
            "trace": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
        .to_string(),
    )
    .await;
    assert!(c.response_to(json!(7)).await.get("result").is_some());
    c.send_raw(json!({"jsonrpc": "2.0", "id": 8, "method": "thread/realtime/listVoices", "trace": {"traceparent": "garbage"}}).to_string()).await;
    assert!(c.response_to(json!(8)).await.get("result").is_some());
}

#[tokio::test]
async fn an_offer_over_the_limit_is_refused_on_the_rpc_path_too() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let sdp = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    c.start(json!({"threadId": "big", "outputModality": "audio",
        "transport": {"type": "webrtc", "sdp": sdp}}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err["message"],
        format!(
            "the offer exceeds {} bytes",
            h.app.cfg.webrtc.max_offer_bytes
        )
    );
    assert!(!h.app.sessions.is_running("anonymous", "big"));
}
