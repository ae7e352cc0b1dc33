//! Realtime v3 (GPT-Live) end to end: a JSON-RPC client starts a `version: "v3"` conversation,
//! voxgate speaks GPT-Live to the simulator over a real websocket (`/v1/live/sessions`,
//! `session.start` first, context and audio appends, client-mode delegation answered with
//! thinking and commentary) and codex's timeline to the client, with a turn ending per reply
//! although GPT-Live never says a turn is done.

mod common;

use common::*;
use serde_json::{Value, json};
use voxgate::simulator::SimRecord;

fn frame_type(f: &str) -> String {
    serde_json::from_str::<Value>(f)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn assistant_done(c: &mut RpcClient) -> String {
    loop {
        let done = c.notification("thread/realtime/transcript/done").await;
        if done["role"] == "assistant" {
            return done["text"].as_str().unwrap_or_default().to_owned();
        }
    }
}

#[tokio::test]
async fn a_v3_conversation_speaks_gpt_live_upstream_and_codexs_timeline_to_the_client() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(
        json!({"threadId": "t1", "outputModality": "audio", "version": "v3",
        "prompt": "Be brief."}),
    )
    .await;
    let SimRecord::Connected { path_and_query, .. } = frames.next_connected().await else {
        unreachable!()
    };
    assert_eq!(path_and_query, "/v1/live/sessions");
    let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(
        first,
        json!({"type": "session.start", "session": {"model": "gpt-live-1",
            "instructions": "Be brief.", "audio": {"output": {"voice": "cove"}},
            "delegation": {"type": "client"}}})
    );
    let started = c.notification("thread/realtime/started").await;
    assert_eq!(started["version"], "v3");

    // A typed turn: told as context, answered, and the reply's turn ends by itself.
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello"}),
    )
    .await;
    assert_eq!(
        frames.next_frame().await,
        r#"{"type":"session.context.append","content":[{"type":"input_text","text":"hello"}]}"#
    );
    assert_eq!(assistant_done(&mut c).await, "You said: hello");

    // A spoken turn: audio appends, the user's turn ends when the model answers.
    for (ms, loud) in [(300, true), (300, true), (700, false)] {
        c.request(
            "thread/realtime/appendAudio",
            json!({"threadId": "t1", "audio": {"data": b64(&pcm(ms, loud)), "sampleRate": 24000,
                "numChannels": 1}}),
        )
        .await;
    }
    let (user, _) = c.until("thread/realtime/transcript/done").await;
    assert_eq!(
        user,
        json!({"threadId": "t1", "role": "user", "text": "hello from the microphone"})
    );
    assert_eq!(
        assistant_done(&mut c).await,
        "You said: hello from the microphone"
    );

    // Delegation: GPT-Live hands the work over; the embedded agent's progress goes back as
    // thinking, its result as commentary naming the delegation, which the model then says.
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "delegate: check the weather"}),
    )
    .await;
    let mut handoff = c.notification("thread/realtime/itemAdded").await;
    while handoff["item"]["type"] != "handoff_request" {
        handoff = c.notification("thread/realtime/itemAdded").await;
    }
    let delegation = handoff["item"]["handoff_id"].clone();
    assert!(delegation.as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        handoff["item"]["input_transcript"],
        "delegate: check the weather"
    );
    let seen = frames.frames_until_type("session.commentary.append").await;
    let sent: Vec<Value> = seen
        .iter()
        .map(|f| serde_json::from_str(f).expect("json"))
        .collect();
    let thinking: Vec<&Value> = sent
        .iter()
        .filter(|f| f["type"] == "session.thinking.append")
        .collect();
    assert_eq!(thinking.len(), 2, "{sent:#?}");
    assert!(thinking.iter().all(|t| t["delegation_id"] == delegation));
    assert_eq!(thinking[1]["content"], "Done: delegate: check the weather");
    let commentary = sent.last().expect("commentary");
    assert_eq!(commentary["delegation_id"], delegation);
    assert!(
        assistant_done(&mut c)
            .await
            .starts_with("Here is what I found. Done:")
    );

    // appendSpeech: commentary of no delegation, said as given.
    c.request(
        "thread/realtime/appendSpeech",
        json!({"threadId": "t1", "text": "Please hold on."}),
    )
    .await;
    assert_eq!(
        frames.next_frame().await,
        r#"{"type":"session.commentary.append","content":"Please hold on.","delegation_id":null}"#
    );
    assert_eq!(assistant_done(&mut c).await, "Please hold on.");

    c.request("thread/realtime/stop", json!({"threadId": "t1"}))
        .await;
    assert_eq!(
        c.notification("thread/realtime/closed").await["reason"],
        "requested"
    );
    // Nothing of the v2 wire ever went to GPT-Live.
    let all: Vec<String> = seen.iter().map(|f| frame_type(f)).collect();
    assert!(
        all.iter().all(|t| t.starts_with("session.")),
        "only GPT-Live events: {all:?}"
    );
}

#[tokio::test]
async fn a_v3_start_with_a_v2_only_option_is_refused_with_a_reason() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t1", "outputModality": "text", "version": "v3"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("requires realtime v2")),
        "{err}"
    );
    c.start(
        json!({"threadId": "t2", "outputModality": "audio", "version": "v3",
        "voice": "marin"}),
    )
    .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("not supported for v3") && m.contains("viola")),
        "{err}"
    );
}

#[tokio::test]
async fn a_v3_passthrough_call_is_created_as_a_live_session_and_closed_over_its_sideband() {
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.webrtc.mode = voxgate::config::WebrtcMode::Passthrough;
            cfg.upstream.version = voxgate::protocol::ModelVersion::V3;
        },
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned)
        .expect("location");
    assert!(
        resp.text().await.expect("answer").starts_with("v=0"),
        "the service's answer"
    );
    // The offer went to GPT-Live's sessions endpoint with the session config, as JSON.
    let (session, live_id) = loop {
        if let SimRecord::CallOffer {
            session, call_id, ..
        } = frames.next().await
        {
            break (session.expect("session"), call_id.expect("id"));
        }
    };
    assert_eq!(session["model"], "gpt-live-1");
    assert_eq!(session["delegation"], json!({"type": "client"}));
    assert!(location.ends_with(&live_id), "{location} names {live_id}");
    // voxgate attaches to the session's sideband and updates it (it has started: no model).
    let SimRecord::Connected { path_and_query, .. } = frames.next_connected().await else {
        unreachable!()
    };
    assert_eq!(
        path_and_query,
        format!("/v1/live/sessions/{live_id}/attach")
    );
    let update: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(update["type"], "session.update");
    assert_eq!(update["session"].get("model"), None);
    assert_eq!(update["session"]["audio"]["output"]["voice"], "cove");
    // Hanging up through voxgate ends the GPT-Live session: `session.close` on the sideband.
    let resp = http
        .delete(format!("http://{}{location}", h.addr))
        .send()
        .await
        .expect("delete");
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        frames
            .frames_until_type("session.close")
            .await
            .last()
            .map(String::as_str),
        Some(r#"{"type":"session.close"}"#)
    );
}

/// How a GPT-Live conversation ends, as codex's clients see it: the service closing the
/// session is `closed{transport_closed}` (after `realtimeSessionClosed`), a service error is
/// `error` then `closed{error}`.
#[tokio::test]
async fn v3_close_reasons_follow_what_ended_the_session() {
    for (text, reason) in [
        ("close: now", "transport_closed"),
        ("fail: broken", "error"),
    ] {
        let h = harness_with(|_| {}, |cfg| cfg.upstream.reconnect_attempts = 0).await;
        let mut c = RpcClient::ready(h.addr).await;
        c.start(json!({"threadId": "t", "outputModality": "audio", "version": "v3"}))
            .await;
        c.notification("thread/realtime/started").await;
        c.request(
            "thread/realtime/appendText",
            json!({"threadId": "t", "text": text}),
        )
        .await;
        let (closed, before) = c.until("thread/realtime/closed").await;
        assert_eq!(closed["reason"], reason, "{text}: {before:#?}");
        let methods: Vec<&str> = before.iter().filter_map(|v| v["method"].as_str()).collect();
        if reason == "error" {
            assert!(
                methods.contains(&"thread/realtime/error"),
                "{text}: {methods:?}"
            );
        }
        assert!(
            before
                .iter()
                .any(|v| v["params"]["item"]["type"] == "realtimeSessionClosed"),
            "{text}: {methods:?}"
        );
    }
}
