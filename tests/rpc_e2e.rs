//! JSON-RPC `thread/realtime/*` end to end: a real websocket client → voxgate → a real websocket
//! to the simulator on loopback, asserting the exact frames the model receives.

mod common;

use common::*;
use serde_json::{Value, json};
use voxgate::protocol::ModelVersion;
use voxgate::protocol::session_config::{
    OutputModality, SessionMode, SessionSettings, session_update,
};
use voxgate::simulator::SimRecord;

fn start_params(thread: &str) -> Value {
    json!({"threadId": thread, "outputModality": "audio", "prompt": "Be brief."})
}

#[tokio::test]
async fn start_v2_connects_with_headers_sends_session_update_then_started() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t1", "outputModality": "text", "prompt": "Be brief.", "voice": "cedar"})).await;

    let SimRecord::Connected {
        path_and_query,
        authorization,
        session_id,
        user_agent,
        has_openai_beta,
        ..
    } = frames.next_connected().await
    else {
        unreachable!()
    };
    assert_eq!(path_and_query, "/v1/realtime?model=gpt-realtime-1.5");
    assert_eq!(
        authorization.as_deref(),
        Some("Bearer sk-test-upstream-key")
    );
    assert_eq!(session_id.as_deref(), Some("t1"));
    assert!(user_agent.unwrap_or_default().starts_with("voxgate/"));
    assert!(!has_openai_beta);

    let expected = session_update(&SessionSettings {
        version: ModelVersion::V2,
        mode: SessionMode::Conversational,
        output_modality: OutputModality::Text,
        instructions: "Be brief.".into(),
        voice: "cedar".into(),
        model: "gpt-realtime-1.5".into(),
    });
    let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(first, expected);
    assert_eq!(first["session"]["output_modalities"], json!(["text"]));
    assert_eq!(first["session"]["audio"]["output"]["voice"], "cedar");

    let started = c.notification("thread/realtime/started").await;
    assert_eq!(
        started,
        json!({"threadId": "t1", "realtimeSessionId": "t1", "sessionId": "t1", "version": "v2"})
    );
}

#[tokio::test]
async fn start_v1_uses_quicksilver_query_and_v1_session_update() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(
        json!({"threadId": "t1", "outputModality": "audio", "prompt": null, "version": "v1",
        "voice": "juniper", "sessionId": "legacy-id"}),
    )
    .await;
    let SimRecord::Connected {
        path_and_query,
        session_id,
        ..
    } = frames.next_connected().await
    else {
        unreachable!()
    };
    assert_eq!(
        path_and_query,
        "/v1/realtime?intent=quicksilver&model=gpt-realtime-1.5"
    );
    assert_eq!(session_id.as_deref(), Some("legacy-id"));
    assert_eq!(
        frames.next_frame().await,
        r#"{"type":"session.update","session":{"type":"quicksilver","instructions":"","audio":{"input":{"format":{"type":"audio/pcm","rate":24000}},"output":{"voice":"juniper"}}}}"#
    );
    let started = c.notification("thread/realtime/started").await;
    assert_eq!(started["realtimeSessionId"], "legacy-id");
    assert_eq!(started["sessionId"], "legacy-id");
    assert_eq!(started["version"], "v1");
}

#[tokio::test]
async fn append_audio_and_text_reach_the_model_as_exact_frames() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    frames.next_frame().await; // session.update
    let audio = b64(&pcm(20, false));
    let r = c
        .request("thread/realtime/appendAudio", json!({"threadId": "t1",
            "audio": {"data": audio, "sampleRate": 24000, "numChannels": 1, "samplesPerChannel": 480}}))
        .await;
    assert_eq!(r["result"], json!({}));
    assert_eq!(
        frames.next_frame().await,
        format!(r#"{{"type":"input_audio_buffer.append","audio":"{audio}"}}"#)
    );
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello there"}),
    )
    .await;
    assert_eq!(
        frames.next_frame().await,
        r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"[USER] hello there"}]}}"#
    );
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "note", "role": "assistant"}),
    )
    .await;
    let frame = frames.frames_until_type("conversation.item.create").await;
    assert_eq!(
        frame.last().map(String::as_str),
        Some(
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"note"}]}}"#
        )
    );
}

#[tokio::test]
async fn model_reply_streams_transcripts_and_audio_notifications() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello"}),
    )
    .await;
    let (seen, done) = c.methods_until("thread/realtime/transcript/done").await;
    assert_eq!(
        done,
        json!({"threadId": "t1", "role": "assistant", "text": "You said: hello"})
    );
    assert!(
        seen.contains(&"thread/realtime/transcript/delta".to_owned()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"thread/realtime/outputAudio/delta".to_owned()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"thread/realtime/itemAdded".to_owned()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn output_audio_notification_has_the_audio_shape() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hi"}),
    )
    .await;
    let n = c.notification("thread/realtime/outputAudio/delta").await;
    let audio = &n["audio"];
    assert_eq!(audio["sampleRate"], 24000);
    assert_eq!(audio["numChannels"], 1);
    assert!(
        audio["itemId"]
            .as_str()
            .is_some_and(|s| s.starts_with("item_")),
        "{n}"
    );
    assert!(!audio["data"].as_str().unwrap_or_default().is_empty());
}

#[tokio::test]
async fn delegate_request_runs_the_embedded_agent_and_resolves_the_call() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "delegate: find the <big> file"}),
    )
    .await;

    let mut handoff = c.notification("thread/realtime/itemAdded").await;
    while handoff["item"]["type"] != "handoff_request" {
        handoff = c.notification("thread/realtime/itemAdded").await;
    }
    let item = &handoff["item"];
    assert_eq!(item["input_transcript"], "find the <big> file");
    assert!(
        item["handoff_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("call_"))
    );
    assert_eq!(
        item["active_transcript"],
        json!([{"role": "user", "text": "find the <big> file"}])
    );

    let seen = frames.frames_until_type("response.create").await;
    let model_frames: Vec<Value> = seen
        .iter()
        .map(|f| serde_json::from_str(f).expect("json"))
        .collect();
    let backend: Vec<&Value> = model_frames
        .iter()
        .filter(|f| {
            f["item"]["type"] == "message"
                && f["item"]["content"][0]["text"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("[USER]"))
        })
        .collect();
    // One progress message and the final reply, each as a [BACKEND] user item.
    assert_eq!(backend.len(), 2, "{model_frames:#?}");
    assert_eq!(
        backend[0]["item"]["content"][0]["text"],
        "[BACKEND] Working on it (1/1): find the <big> file"
    );
    assert_eq!(
        backend[1]["item"]["content"][0]["text"],
        "[BACKEND] Done: find the <big> file"
    );
    let outputs: Vec<&Value> = model_frames
        .iter()
        .filter(|f| f["item"]["type"] == "function_call_output")
        .collect();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["item"]["call_id"], item["handoff_id"]);
    assert_eq!(
        seen.last().map(String::as_str),
        Some(r#"{"type":"response.create"}"#)
    );
    // The model then speaks the result.
    let mut done = c.notification("thread/realtime/transcript/done").await;
    while !done["text"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Here is what I found")
    {
        done = c.notification("thread/realtime/transcript/done").await;
    }
}

#[tokio::test]
async fn stop_closes_with_requested_and_idle_stop_still_answers() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    let r = c
        .request("thread/realtime/stop", json!({"threadId": "t1"}))
        .await;
    assert_eq!(r["result"], json!({}));
    assert_eq!(
        c.notification("thread/realtime/closed").await,
        json!({"threadId": "t1", "reason": "requested"})
    );
    frames.next_disconnected().await;
    let r = c
        .request("thread/realtime/stop", json!({"threadId": "idle"}))
        .await;
    assert_eq!(r["result"], json!({}));
    assert_eq!(
        c.notification("thread/realtime/closed").await,
        json!({"threadId": "idle", "reason": "requested"})
    );
}

#[tokio::test]
async fn upstream_close_ends_with_transport_closed() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "close: now"}),
    )
    .await;
    let (seen, closed) = c.methods_until("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "transport_closed");
    assert!(!seen.contains(&"thread/realtime/error".to_owned()));
}

#[tokio::test]
async fn upstream_error_event_gives_error_then_closed_error() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "fail: boom"}),
    )
    .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err,
        json!({"threadId": "t1", "message": "Simulated failure: boom"})
    );
    // codex's timeline closes the model session as failed, then `closed{error}`.
    for method in [
        "thread/realtime/item/started",
        "thread/realtime/item/completed",
    ] {
        let item = c.next_message().await;
        assert_eq!(item["method"], method, "{item}");
        assert_eq!(item["params"]["item"]["type"], "realtimeSessionClosed");
        assert_eq!(item["params"]["item"]["outcome"], "failed");
    }
    let next = c.next_message().await;
    assert_eq!(
        next,
        json!({"method": "thread/realtime/closed", "params": {"threadId": "t1", "reason": "error"}})
    );
}

/// As codex does: a second start on a running thread closes the conversation it replaces
/// (`closed{requested}`, counted as closed) before the new one is started.
#[tokio::test]
async fn second_start_closes_the_replaced_conversation_first() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    let closed_before = closed_count("requested");
    c.start(json!({"threadId": "t1", "outputModality": "audio", "version": "v1"}))
        .await;
    let (seen, closed) = c.methods_until("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "requested");
    assert!(
        !seen.contains(&"thread/realtime/started".to_owned()),
        "the new conversation started before the old one closed: {seen:?}"
    );
    let started = c.notification("thread/realtime/started").await;
    assert_eq!(started["version"], "v1");
    assert_eq!(closed_count("requested"), closed_before + 1);
    frames.next_disconnected().await;
    // The new conversation works.
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hi"}),
    )
    .await;
    let done = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(done["text"], "You said: hi");
}

fn closed_count(reason: &str) -> u64 {
    voxgate::metrics::SESSIONS_CLOSED
        .with_label_values(&["rpc", reason])
        .get()
}

#[tokio::test]
async fn opt_out_methods_are_never_sent() {
    let h = harness().await;
    let mut c = RpcClient::ready_with(
        h.addr,
        json!({"experimentalApi": true, "optOutNotificationMethods": ["thread/realtime/transcript/delta", "thread/realtime/outputAudio/delta"]}),
    )
    .await;
    c.start(start_params("t1")).await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello"}),
    )
    .await;
    let (seen, _) = c.methods_until("thread/realtime/transcript/done").await;
    assert!(
        !seen
            .iter()
            .any(|m| m == "thread/realtime/transcript/delta"
                || m == "thread/realtime/outputAudio/delta"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn every_subscribed_connection_gets_the_thread_notifications() {
    let h = harness().await;
    let mut a = RpcClient::ready(h.addr).await;
    let mut b = RpcClient::ready(h.addr).await;
    a.start(start_params("shared")).await;
    a.notification("thread/realtime/started").await;
    // b subscribes by calling a thread-scoped method.
    b.request(
        "thread/realtime/appendText",
        json!({"threadId": "shared", "text": "from b"}),
    )
    .await;
    assert_eq!(
        a.notification("thread/realtime/transcript/done").await["text"],
        "You said: from b"
    );
    assert_eq!(
        b.notification("thread/realtime/transcript/done").await["text"],
        "You said: from b"
    );
    a.request("thread/realtime/stop", json!({"threadId": "shared"}))
        .await;
    assert_eq!(
        b.notification("thread/realtime/closed").await["reason"],
        "requested"
    );
}

#[tokio::test]
async fn list_voices_answers_exactly_what_codex_0169_answers() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c.request("thread/realtime/listVoices", json!({})).await;
    // Read off `codex app-server` 0.169.0 (e2e/node_modules) for the same request.
    assert_eq!(
        r["result"],
        json!({"voices": {
            "v1": ["juniper", "maple", "spruce", "ember", "vale", "breeze", "arbor", "sol", "cove"],
            "v2": ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"],
            "v3": ["juniper", "maple", "spruce", "ember", "vale", "breeze", "arbor", "sol", "cove",
                "aube", "bubbie", "haetsal", "hanul", "himari", "leher", "miko", "neer", "porto",
                "rindo", "rio", "rivage", "selva", "sonna", "tinta", "viola"],
            "defaultV1": "cove", "defaultV2": "marin"
        }})
    );
}

#[tokio::test]
async fn simulator_upstream_kind_runs_in_process_without_api_key() {
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.upstream.kind = voxgate::config::UpstreamKind::Simulator;
            cfg.upstream.api_key = None;
        },
    )
    .await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello"}),
    )
    .await;
    assert_eq!(
        c.notification("thread/realtime/transcript/done").await["text"],
        "You said: hello"
    );
}

#[tokio::test]
async fn an_idle_model_that_answers_pings_keeps_its_conversation() {
    let h = harness_with(|_| {}, |c| c.upstream.idle_timeout_secs = 1).await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "idle", "outputModality": "text"}))
        .await;
    c.notification("thread/realtime/started").await;
    // Three idle timeouts pass with nothing said: the pings are answered.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    assert!(h.app.sessions.is_running("anonymous", "idle"));
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "idle", "text": "still there?"}),
    )
    .await;
    let done = c.notification("thread/realtime/transcript/done").await;
    assert!(
        done["text"]
            .as_str()
            .is_some_and(|t| t.contains("still there?")),
        "{done}"
    );
}

/// A codex client's first calls: `thread/start` mints a thread (codex's id shape and fields) and
/// tells its creator `thread/started`; realtime runs on it; another connection of the same key
/// rejoins it with `thread/resume` (and hears it from then on); `thread/unsubscribe` answers
/// codex's statuses.
#[tokio::test]
async fn thread_start_resume_and_unsubscribe_as_codex_answers_them() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    let r = c.request("thread/start", json!({"model": "ignored"})).await;
    let thread = &r["result"]["thread"];
    let id = thread["id"].as_str().expect("a thread id").to_owned();
    let shape = id.split('-').map(str::len).collect::<Vec<_>>();
    assert_eq!(shape, [8, 4, 4, 4, 12], "a UUID: {id}");
    assert_eq!(&id[14..15], "7", "version 7: {id}");
    assert_eq!(thread["status"], json!({"type": "idle"}));
    for field in [
        "approvalPolicy",
        "approvalsReviewer",
        "cwd",
        "model",
        "modelProvider",
        "sandbox",
    ] {
        assert!(r["result"].get(field).is_some(), "{field}: {r}");
    }
    let started = c.notification("thread/started").await;
    assert_eq!(started["thread"]["id"], id.as_str());

    c.start(json!({"threadId": id, "outputModality": "text"}))
        .await;
    c.notification("thread/realtime/started").await;

    let mut other = RpcClient::ready(h.addr).await;
    let resumed = other
        .request("thread/resume", json!({"threadId": id}))
        .await;
    assert_eq!(resumed["result"]["thread"]["id"], id.as_str(), "{resumed}");
    assert_eq!(resumed["result"]["thread"]["status"]["type"], "active");
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": id, "text": "hello"}),
    )
    .await;
    let done = other.notification("thread/realtime/transcript/done").await;
    assert_eq!(done["text"], "You said: hello");

    let missing = other
        .request("thread/resume", json!({"threadId": "no-such-thread"}))
        .await;
    assert_eq!(missing["error"]["code"], -32600);
    assert_eq!(
        missing["error"]["message"],
        "thread not found: no-such-thread"
    );
    let status = |r: Value| r["result"]["status"].as_str().unwrap_or("?").to_owned();
    assert_eq!(
        status(
            other
                .request("thread/unsubscribe", json!({"threadId": id}))
                .await
        ),
        "unsubscribed"
    );
    assert_eq!(
        status(
            other
                .request("thread/unsubscribe", json!({"threadId": id}))
                .await
        ),
        "notSubscribed"
    );
    assert_eq!(
        status(
            other
                .request("thread/unsubscribe", json!({"threadId": "nope"}))
                .await
        ),
        "notLoaded"
    );
    // A thread nothing ran on, left by its only subscriber, is gone: `thread/closed`.
    let fresh = other.request("thread/start", json!({})).await;
    let fresh = fresh["result"]["thread"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    other.notification("thread/started").await;
    assert_eq!(
        status(
            other
                .request("thread/unsubscribe", json!({"threadId": fresh}))
                .await
        ),
        "unsubscribed"
    );
    let closed = other.notification("thread/closed").await;
    assert_eq!(closed, json!({"threadId": fresh}));
    assert!(!h.app.sessions.knows("anonymous", &fresh));
}

/// `appendSpeech`: text the model says now — told as a backend message with a response asked
/// for, exactly as codex sends it.
#[tokio::test]
async fn append_speech_has_the_model_say_the_text() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    let r = c
        .request(
            "thread/realtime/appendSpeech",
            json!({"threadId": "t1", "text": "Please hold on."}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "{r}");
    let sent = frames.frames_until_type("response.create").await;
    let item: Value = serde_json::from_str(&sent[sent.len() - 2]).expect("json");
    assert_eq!(
        item,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "[BACKEND] Please hold on."}]}})
    );
    let done = c.notification("thread/realtime/transcript/done").await;
    assert!(
        done["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("Please hold on.")),
        "{done}"
    );
    let unknown = c
        .request(
            "thread/realtime/appendSpeech",
            json!({"threadId": "nope", "text": "x"}),
        )
        .await;
    assert_eq!(unknown["error"]["message"], "thread not found: nope");
}

/// A start that asks for what voxgate does not do is answered `{}` and refused with an `error`
/// naming it (codex's way), and nothing starts; `includeStartupContext: false` is carried out.
#[tokio::test]
async fn unsupported_start_options_are_refused_by_name_and_startup_context_can_be_left_out() {
    let h = harness_with(
        |_| {},
        |cfg| cfg.session.startup_context = Some("the project is voxgate".into()),
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    for (params, named) in [
        (
            json!({"threadId": "t", "outputModality": "audio", "version": "v3",
                "delegationAckFiller": true}),
            "`delegationAckFiller`",
        ),
        (
            json!({"threadId": "t", "outputModality": "audio", "codexResponsesAsItems": true}),
            "`codexResponsesAsItems`",
        ),
        (
            json!({"threadId": "t", "outputModality": "audio", "clientManagedHandoffs": true}),
            "`clientManagedHandoffs`",
        ),
    ] {
        c.start(params).await;
        let (seen, err) = c.methods_until("thread/realtime/error").await;
        assert!(
            err["message"].as_str().is_some_and(|m| m.contains(named)),
            "{err}"
        );
        assert!(!seen.contains(&"thread/realtime/started".to_owned()));
    }
    assert!(!h.app.sessions.is_running("anonymous", "t"));
    c.start(json!({"threadId": "t", "outputModality": "audio",
        "includeStartupContext": false, "clientManagedHandoffs": false, "voiceSessionId": "vs-1"}))
        .await;
    c.notification("thread/realtime/started").await;
    let update: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    let instructions = update["session"]["instructions"]
        .as_str()
        .unwrap_or_default();
    assert!(!instructions.is_empty(), "{update}");
    assert!(
        !instructions.contains("the project is voxgate"),
        "the startup context was left out: {instructions}"
    );
    // By default it is in, wrapped as codex wraps it.
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    let update = loop {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        if f["type"] == "session.update" {
            break f;
        }
    };
    let instructions = update["session"]["instructions"]
        .as_str()
        .unwrap_or_default();
    assert!(
        instructions.contains("<startup_context>\nthe project is voxgate\n</startup_context>"),
        "{instructions}"
    );
}

/// Notifications go to a thread's subscribers only: another connection of the same key that
/// never touched the thread hears nothing; and one subscriber leaving leaves the others (and
/// the conversation) untouched.
#[tokio::test]
async fn only_subscribers_hear_a_thread_and_one_leaving_leaves_the_others_untouched() {
    let h = harness().await;
    let mut a = RpcClient::ready(h.addr).await;
    let mut bystander = RpcClient::ready(h.addr).await;
    a.start(start_params("t1")).await;
    a.notification("thread/realtime/started").await;
    let mut b = RpcClient::ready(h.addr).await;
    let r = b.request("thread/resume", json!({"threadId": "t1"})).await;
    assert!(r.get("result").is_some(), "{r}");
    a.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "one"}),
    )
    .await;
    assert_eq!(
        b.notification("thread/realtime/transcript/done").await["text"],
        "You said: one"
    );
    a.notification("thread/realtime/transcript/done").await;
    bystander.barrier().await;
    bystander.assert_nothing_else();
    // B goes away; A and the conversation go on.
    drop(b);
    a.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "two"}),
    )
    .await;
    loop {
        let done = a.notification("thread/realtime/transcript/done").await;
        if done["text"] == "You said: two" {
            break;
        }
    }
    assert!(h.app.sessions.is_running("anonymous", "t1"));
}

/// The `model` start param names the model the upstream session is opened with.
#[tokio::test]
async fn the_model_start_param_reaches_the_upstream() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "m", "outputModality": "audio", "model": "gpt-test-model"}))
        .await;
    c.notification("thread/realtime/started").await;
    let voxgate::simulator::SimRecord::Connected { path_and_query, .. } =
        frames.next_connected().await
    else {
        unreachable!()
    };
    assert!(
        path_and_query.contains("model=gpt-test-model"),
        "{path_and_query}"
    );
}

/// appendSpeech right after a spoken turn's reply is answered, every time (its response.create
/// may have to wait for that reply's response to end).
#[tokio::test]
async fn append_speech_right_after_a_spoken_reply_is_answered_every_time() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(start_params("t1")).await;
    c.notification("thread/realtime/started").await;
    for round in 0..10 {
        for (ms, loud) in [(300u64, true), (300, true), (700, false)] {
            c.request(
                "thread/realtime/appendAudio",
                json!({"threadId": "t1", "audio": {"data": b64(&pcm(ms, loud)), "sampleRate": 24000, "numChannels": 1}}),
            )
            .await;
        }
        loop {
            let d = c.notification("thread/realtime/transcript/done").await;
            if d["role"] == "assistant" {
                break;
            }
        }
        c.request(
            "thread/realtime/appendSpeech",
            json!({"threadId": "t1", "text": format!("hold {round}")}),
        )
        .await;
        loop {
            let d = c.notification("thread/realtime/transcript/done").await;
            if d["role"] == "assistant" {
                assert!(
                    d["text"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("hold {round}")),
                    "round {round}: {d}"
                );
                break;
            }
        }
    }
}
