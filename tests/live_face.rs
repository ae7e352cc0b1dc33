//! voxgate's GPT-Live faces over real websockets: codex 0.169's frameless dialect on
//! `/v1/live` and GPT-Live's session events on `/v1/live/sessions`, in front of a v2 or a v3
//! model (the simulator). The opening event comes first and `session.started` answers it; text
//! and audio turns come back as the dialect's transcript and audio events; delegation runs on
//! voxgate's agent core and is heard, never seen; a bad event is answered with an `error`
//! event and the conversation goes on.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use voxgate::protocol::ModelVersion;
use voxgate::simulator::SimRecord;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct LiveClient {
    ws: Ws,
    /// Audio events seen (not returned by `next`).
    audio: usize,
}

impl LiveClient {
    async fn connect(addr: std::net::SocketAddr, path: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
            .await
            .expect("live face upgrades");
        Self { ws, audio: 0 }
    }
    async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }
    /// The next non-audio event; None when the socket closed (with its close code).
    async fn next(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("an event in time");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("events are JSON");
                    let ty = v["type"].as_str().unwrap_or_default();
                    if ty == "output_audio.delta" || ty == "session.output_audio.delta" {
                        self.audio += 1;
                        continue;
                    }
                    return Ok(v);
                }
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                _ => return Err(None),
            }
        }
    }
    async fn until(&mut self, ty: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let v = self.next().await.expect("open");
            if v["type"] == ty {
                return (v, seen);
            }
            seen.push(v);
        }
    }
    /// The text of the next assistant turn (frameless `turn.done`).
    async fn assistant_turn(&mut self) -> String {
        loop {
            let (done, _) = self.until("turn.done").await;
            if done["turn"]["role"] == "assistant" {
                return done["turn"]["transcript"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
    }
}

fn upstream(version: ModelVersion) -> impl FnOnce(&mut voxgate::config::Config) {
    move |cfg| cfg.upstream.version = version
}

async fn frameless_text_turn(version: ModelVersion) {
    let h = harness_with(|_| {}, upstream(version)).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = LiveClient::connect(h.addr, "/v1/live?model=gpt-live-1-codex").await;
    c.send(
        json!({"type": "session.update", "session": {"instructions": "Be brief.",
        "audio": {"output": {"voice": "cove"}}, "delegation": {"type": "client"}}}),
    )
    .await;
    // codex refuses anything before session.started.
    let started = c.next().await.expect("open");
    assert_eq!(started["type"], "session.started", "{started}");
    assert!(
        started["session"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("live_"))
    );
    let SimRecord::Connected { path_and_query, .. } = frames.next_connected().await else {
        unreachable!()
    };
    let expected_path = match version {
        ModelVersion::V3 => "/v1/live/sessions",
        _ => "/v1/realtime?model=gpt-realtime-1.5",
    };
    assert_eq!(path_and_query, expected_path);
    let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(
        first["session"]["instructions"], "Be brief.",
        "the client's instructions reach the model"
    );

    c.send(json!({"type": "session.context.append",
        "content": [{"type": "input_text", "text": "hello voxgate"}]}))
        .await;
    let (added, _) = c.until("output_transcript.added").await;
    assert_eq!(added["item"]["type"], "output_transcript");
    assert!(added["item"]["id"].is_string() && added["item"]["text"].is_string());
    assert_eq!(c.assistant_turn().await, "You said: hello voxgate");
    assert!(c.audio > 0, "the model's audio reached the client");

    c.send(json!({"type": "session.close"})).await;
    let (closed, _) = c.until("session.closed").await;
    assert_eq!(closed["reason"], "client_closed");
    assert_eq!(c.next().await, Err(Some(1000)));
}

#[tokio::test]
async fn a_frameless_client_gets_session_started_first_then_transcript_items_turns_and_audio() {
    frameless_text_turn(ModelVersion::V2).await;
}

#[tokio::test]
async fn the_frameless_face_works_in_front_of_a_gpt_live_model_too() {
    frameless_text_turn(ModelVersion::V3).await;
}

#[tokio::test]
async fn a_spoken_turn_comes_back_as_input_and_output_transcripts() {
    let h = harness().await;
    let mut c = LiveClient::connect(h.addr, "/v1/live").await;
    c.send(json!({"type": "session.update", "session": {}}))
        .await;
    c.until("session.started").await;
    let mut audio = pcm(600, true);
    audio.extend(pcm(900, false));
    for chunk in audio.chunks(960) {
        c.send(json!({"type": "input_audio.append", "audio": b64(chunk)}))
            .await;
    }
    let (input, _) = c.until("input_transcript.added").await;
    assert_eq!(input["item"]["type"], "input_transcript");
    loop {
        let (done, _) = c.until("turn.done").await;
        if done["turn"]["role"] == "user" {
            assert_eq!(done["turn"]["transcript"], "hello from the microphone");
            break;
        }
    }
    assert!(!c.assistant_turn().await.is_empty());
}

#[tokio::test]
async fn delegation_runs_on_voxgates_agent_and_is_heard_never_seen() {
    for version in [ModelVersion::V2, ModelVersion::V3] {
        let h = harness_with(|_| {}, upstream(version)).await;
        let mut c = LiveClient::connect(h.addr, "/v1/live").await;
        c.send(json!({"type": "session.update", "session": {}}))
            .await;
        c.until("session.started").await;
        c.send(json!({"type": "session.context.append",
            "content": [{"type": "input_text", "text": "delegate: check the build"}]}))
            .await;
        let mut seen = Vec::new();
        loop {
            let v = c.next().await.expect("open");
            let done = v["type"] == "turn.done"
                && v["turn"]["transcript"]
                    .as_str()
                    .is_some_and(|t| t.contains("Done: ") && t.ends_with("check the build"));
            seen.push(v);
            if done {
                break;
            }
        }
        for v in &seen {
            let ty = v["type"].as_str().unwrap_or_default();
            assert!(
                !ty.contains("delegation") && !ty.contains("function") && ty != "error",
                "{version:?}: the client saw the plumbing: {v}"
            );
        }
    }
}

#[tokio::test]
async fn bad_events_get_error_events_and_the_conversation_goes_on() {
    let h = harness().await;
    let mut c = LiveClient::connect(h.addr, "/v1/live").await;
    c.send(json!({"type": "session.update", "session": {}}))
        .await;
    c.until("session.started").await;
    let cases = [
        ("{not json".to_owned(), "invalid_json"),
        ("[1,2]".to_owned(), "invalid_event"),
        (
            json!({"type": "response.create"}).to_string(),
            "unknown_event",
        ),
        (
            json!({"type": "input_audio.append", "audio": "abc"}).to_string(),
            "invalid_audio",
        ),
        (
            json!({"type": "input_audio.append", "audio": "AAAA"}).to_string(),
            "invalid_audio",
        ),
        (
            json!({"type": "input_audio.append"}).to_string(),
            "missing_audio",
        ),
        (
            json!({"type": "session.context.append"}).to_string(),
            "missing_content",
        ),
        (
            json!({"type": "delegation.context.append", "delegation_item_id": "d1",
                "content": [{"type": "input_text", "text": "x"}]})
            .to_string(),
            "unknown_delegation",
        ),
        (
            json!({"type": "session.update", "session": {}}).to_string(),
            "session_already_started",
        ),
    ];
    for (event, code) in cases {
        c.ws.send(Message::text(event.clone())).await.expect("send");
        let err = c.next().await.expect("still open");
        assert_eq!(err["type"], "error", "{event}");
        assert_eq!(err["error"]["code"], code, "{event}: {err}");
    }
    // An attacker-chosen type is bounded in the message.
    c.send(json!({"type": format!("x{}", "y".repeat(5000))}))
        .await;
    let err = c.next().await.expect("open");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() < 200)
    );
    // Nothing was lost: the conversation answers.
    c.send(json!({"type": "session.context.append",
        "content": [{"type": "input_text", "text": "still here"}]}))
        .await;
    assert_eq!(c.assistant_turn().await, "You said: still here");
}

#[tokio::test]
async fn a_wrong_opening_is_refused_with_an_error_and_1008() {
    let h = harness().await;
    for (path, opening, code) in [
        (
            "/v1/live",
            json!({"type": "input_audio.append", "audio": ""}),
            "session_not_started",
        ),
        (
            "/v1/live/sessions",
            json!({"type": "session.update", "session": {}}),
            "session_not_started",
        ),
        (
            "/v1/live/sessions",
            json!({"type": "session.start", "session": {"tools": []}}),
            "unknown_parameter",
        ),
        (
            "/v1/live",
            json!({"type": "session.update", "session": {"delegation": {"type": "responses"}}}),
            "unsupported_delegation",
        ),
        (
            "/v1/live",
            json!({"type": "session.update", "session": "x"}),
            "invalid_session",
        ),
    ] {
        let mut c = LiveClient::connect(h.addr, path).await;
        c.send(opening.clone()).await;
        let err = c.next().await.expect("an error event first");
        assert_eq!(err["error"]["code"], code, "{path} {opening}: {err}");
        assert_eq!(c.next().await, Err(Some(1008)), "{path} {opening}");
    }
    assert_eq!(
        h.app.sessions.running_count(),
        0,
        "no conversation was started"
    );
}

#[tokio::test]
async fn a_gpt_live_client_speaks_session_events_through_voxgate() {
    for version in [ModelVersion::V2, ModelVersion::V3] {
        let h = harness_with(|_| {}, upstream(version)).await;
        let mut frames = SimFrames::new(&h.sim);
        let mut c = LiveClient::connect(h.addr, "/v1/live/sessions").await;
        c.send(
            json!({"type": "session.start", "session": {"model": "gpt-live-1",
            "instructions": "Be brief.", "audio": {"output": {"voice": "cove"}},
            "delegation": {"type": "client"},
            "initial_items": [{"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "my name is Ada"}]}]}}),
        )
        .await;
        let started = c.next().await.expect("open");
        assert_eq!(started["type"], "session.started", "{started}");
        frames.next_connected().await;
        let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        // The conversation so far is told to the model after the instructions; a voice the
        // model's palette lacks gives way to its default.
        assert_eq!(
            first["session"]["instructions"],
            "Be brief.\n\n<conversation_so_far>\nuser: my name is Ada\n</conversation_so_far>"
        );
        let voice = &first["session"]["audio"]["output"]["voice"];
        match version {
            ModelVersion::V3 => assert_eq!(voice, "cove"),
            _ => assert_eq!(voice, "marin"),
        }
        c.send(json!({"type": "session.context.append",
            "content": [{"type": "input_text", "text": "hello"}]}))
            .await;
        let (delta, _) = c.until("session.output_transcript.delta").await;
        assert!(delta["delta"].is_string());
        c.send(
            json!({"type": "session.commentary.append", "content": "say this",
            "delegation_id": null}),
        )
        .await;
        loop {
            let (d, _) = c.until("session.output_transcript.delta").await;
            if d["delta"].as_str().is_some_and(|t| t.contains("this")) {
                break;
            }
        }
        assert!(c.audio > 0);
        c.send(json!({"type": "session.close"})).await;
        let (closed, _) = c.until("session.closed").await;
        assert_eq!(closed["reason"], "client_closed");
    }
}

#[tokio::test]
async fn a_client_that_never_opens_is_told_and_closed() {
    let h = harness_with(|_| {}, |cfg| cfg.server.request_timeout_secs = 1).await;
    let mut c = LiveClient::connect(h.addr, "/v1/live").await;
    let err = c.next().await.expect("an error event");
    assert_eq!(err["error"]["code"], "session_not_started");
    assert_eq!(c.next().await, Err(Some(1008)));
}

#[tokio::test]
async fn the_live_faces_need_a_key_in_keys_mode() {
    let h = harness_with(
        |_| {},
        |cfg| {
            one_key(cfg, "k1", "vk-live-face-key-000000");
        },
    )
    .await;
    for path in ["/v1/live", "/v1/live/sessions"] {
        let err = tokio_tungstenite::connect_async(format!("ws://{}{path}", h.addr))
            .await
            .expect_err("refused without a key");
        let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
            panic!("{path}: {err}")
        };
        assert_eq!(resp.status(), 401, "{path}");
    }
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/v1/live", h.addr),
    )
    .expect("request");
    req.headers_mut().insert(
        "authorization",
        "Bearer vk-live-face-key-000000".parse().expect("header"),
    );
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("with the key");
    let mut c = LiveClient { ws, audio: 0 };
    c.send(json!({"type": "session.update", "session": {}}))
        .await;
    c.until("session.started").await;
}

#[tokio::test]
async fn a_bad_gpt_live_webrtc_request_gets_a_clear_400_and_takes_no_slot() {
    let h = harness().await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/live/sessions", h.addr);
    let offer = relay_offer();
    for (body, code) in [
        ("{not json".to_owned(), "invalid_json"),
        (
            json!({"transport": {"type": "websocket"}}).to_string(),
            "invalid_transport",
        ),
        (
            json!({"transport": {"type": "webrtc"}}).to_string(),
            "missing_required_parameter",
        ),
        (
            json!({"session": {"tools": []}, "transport": {"type": "webrtc", "sdp": offer}})
                .to_string(),
            "unknown_parameter",
        ),
        (
            json!({"transport": {"type": "webrtc", "sdp": "v=0\r\nnot an offer"}}).to_string(),
            "invalid_offer",
        ),
    ] {
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.expect("json error");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(
            !v.to_string().contains("a=ice-ufrag"),
            "the SDP is never echoed"
        );
    }
    assert_eq!(h.app.sessions.running_count(), 0);
    // Attaching to a session that is not the caller's (or not there) is "not found".
    let err = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/live/sessions/rtc_0000000000000000ffffffff/attach",
        h.addr
    ))
    .await
    .expect_err("no such call");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("{err}")
    };
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn with_client_delegation_the_client_does_the_work_and_the_model_speaks_its_result() {
    for version in [ModelVersion::V2, ModelVersion::V3] {
        let h = harness_with(
            |_| {},
            |cfg| {
                cfg.upstream.version = version;
                cfg.openai.delegation = false;
            },
        )
        .await;
        let mut c = LiveClient::connect(h.addr, "/v1/live").await;
        c.send(json!({"type": "session.update", "session": {"delegation": {"type": "client"}}}))
            .await;
        c.until("session.started").await;
        c.send(json!({"type": "session.context.append",
            "content": [{"type": "input_text", "text": "delegate: check the build"}]}))
            .await;
        let (created, _) = c.until("delegation.created").await;
        let item = &created["item"];
        assert_eq!(item["type"], "delegation", "{version:?}: {created}");
        assert_eq!(item["target"], "client");
        assert!(
            item["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("check the build")),
            "{version:?}: {created}"
        );
        let id = item["id"].as_str().expect("delegation id").to_owned();
        // Not the running delegation: refused, nothing changes.
        c.send(
            json!({"type": "delegation.context.append", "delegation_item_id": "nope",
            "content": [{"type": "input_text", "text": "x"}]}),
        )
        .await;
        let (err, _) = c.until("error").await;
        assert_eq!(err["error"]["code"], "unknown_delegation");
        c.send(
            json!({"type": "delegation.context.append", "delegation_item_id": id,
            "content": [{"type": "input_text", "text": "Looking at the CI now."}]}),
        )
        .await;
        c.send(
            json!({"type": "delegation.context.append", "delegation_item_id": id,
            "content": [{"type": "input_text",
                "text": "\"Agent Final Message\":\n\nThe build is green."}]}),
        )
        .await;
        loop {
            let turn = c.assistant_turn().await;
            if turn.contains("The build is green.") {
                break;
            }
        }
        // The task is over: a late append is refused.
        c.send(
            json!({"type": "delegation.context.append", "delegation_item_id": id,
            "content": [{"type": "input_text", "text": "late"}]}),
        )
        .await;
        let (err, _) = c.until("error").await;
        assert_eq!(err["error"]["code"], "unknown_delegation");
    }
}

#[tokio::test]
async fn a_client_delegation_without_a_done_ends_when_the_client_goes_quiet() {
    let h = harness_with(|_| {}, |cfg| cfg.openai.delegation = false).await;
    let mut c = LiveClient::connect(h.addr, "/v1/live").await;
    c.send(json!({"type": "session.update", "session": {}}))
        .await;
    c.until("session.started").await;
    c.send(json!({"type": "session.context.append",
        "content": [{"type": "input_text", "text": "delegate: count the files"}]}))
        .await;
    let (created, _) = c.until("delegation.created").await;
    let id = created["item"]["id"].as_str().expect("id").to_owned();
    // As codex sends it: no channel, no marker, and nothing after.
    c.send(
        json!({"type": "delegation.context.append", "delegation_item_id": id,
        "content": [{"type": "input_text", "text": "There are 3 files."}]}),
    )
    .await;
    loop {
        if c.assistant_turn().await.contains("There are 3 files.") {
            break;
        }
    }
}

#[tokio::test]
async fn a_ping_before_the_opening_is_no_opening() {
    let h = harness().await;
    let mut c = LiveClient::connect(h.addr, "/v1/live").await;
    c.ws.send(Message::Ping(vec![1, 2, 3].into()))
        .await
        .expect("ping");
    c.send(json!({"type": "session.update", "session": {}}))
        .await;
    let started = c.next().await.expect("open");
    assert_eq!(started["type"], "session.started", "{started}");
}
