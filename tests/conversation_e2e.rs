//! Spoken turns, barge-in and v1 handoffs end to end against the simulator.

mod common;

use common::*;
use serde_json::{Value, json};

async fn append(c: &mut RpcClient, thread: &str, pcm_bytes: &[u8]) {
    let r = c
        .request(
            "thread/realtime/appendAudio",
            json!({"threadId": thread,
            "audio": {"data": b64(pcm_bytes), "sampleRate": 24000, "numChannels": 1}}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "{r}");
}

#[tokio::test]
async fn spoken_turn_gives_speech_started_user_transcript_and_a_reply() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    for _ in 0..5 {
        append(&mut c, "t", &pcm(100, true)).await;
    }
    for _ in 0..6 {
        append(&mut c, "t", &pcm(100, false)).await;
    }
    let speech = c.notification("thread/realtime/itemAdded").await;
    assert_eq!(speech["item"]["type"], "input_audio_buffer.speech_started");
    assert!(speech["item"]["item_id"].is_string());
    let mut done = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(
        done,
        json!({"threadId": "t", "role": "user", "text": "hello from the microphone"})
    );
    done = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(done["role"], "assistant");
    assert_eq!(done["text"], "You said: hello from the microphone");
}

#[tokio::test]
async fn barge_in_truncates_at_received_audio_and_the_model_accepts_it() {
    // Real-time pacing: the reply takes seconds, so the user can interrupt it.
    let h = harness_with(
        |sim| {
            sim.realtime = true;
            sim.chunk_ms = 50;
        },
        |_| {},
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t",
        "text": "tell me a long story about the sea and the ships and the wind and the rain"}),
    )
    .await;
    let first = c.notification("thread/realtime/outputAudio/delta").await;
    let item_id = first["audio"]["itemId"]
        .as_str()
        .expect("item id")
        .to_owned();
    append(&mut c, "t", &pcm(100, true)).await;

    let seen = frames.frames_until_type("conversation.item.truncate").await;
    let truncate: Value = serde_json::from_str(seen.last().expect("frame")).expect("json");
    assert_eq!(truncate["item_id"], item_id.as_str());
    assert_eq!(truncate["content_index"], 0);
    let end_ms = truncate["audio_end_ms"].as_u64().expect("ms");
    assert!(end_ms >= 50, "at least one chunk was received: {end_ms}");
    // The simulator validates audio_end_ms against what it sent; a violation would be an error
    // event and close the conversation. A later turn proves the conversation is intact.
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "short"}),
    )
    .await;
    let (seen, done) = c.methods_until("thread/realtime/transcript/done").await;
    assert!(
        !seen
            .iter()
            .any(|m| m == "thread/realtime/error" || m == "thread/realtime/closed"),
        "{seen:?}"
    );
    let _ = done;
}

#[tokio::test]
async fn v1_handoff_appends_agent_messages_with_final_prefix() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "version": "v1"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: check the build"}),
    )
    .await;
    let mut item = c.notification("thread/realtime/itemAdded").await;
    while item["item"]["type"] != "handoff_request" {
        item = c.notification("thread/realtime/itemAdded").await;
    }
    let handoff_id = item["item"]["handoff_id"].as_str().expect("id").to_owned();
    let mut appends = Vec::new();
    while appends.len() < 2 {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        if f["type"] == "conversation.handoff.append" {
            appends.push(f);
        }
    }
    assert_eq!(
        appends[0],
        json!({"type": "conversation.handoff.append", "handoff_id": handoff_id,
            "output_text": "\"Agent Final Message\":\n\nWorking on it (1/1): check the build"})
    );
    assert_eq!(
        appends[1]["output_text"],
        "\"Agent Final Message\":\n\nDone: check the build"
    );
    // v1 never sends response.create.
    let mut done = c.notification("thread/realtime/transcript/done").await;
    while !done["text"]
        .as_str()
        .unwrap_or_default()
        .starts_with("Agent update: Done")
    {
        done = c.notification("thread/realtime/transcript/done").await;
    }
}

#[tokio::test]
async fn remain_silent_is_answered_with_empty_output_and_no_response() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "silent: not for you"}),
    )
    .await;
    let seen = frames.frames_until_type("conversation.item.create").await;
    let seen = if seen.last().is_some_and(|f| f.contains("[USER]")) {
        frames.frames_until_type("conversation.item.create").await
    } else {
        seen
    };
    let out: Value = serde_json::from_str(seen.last().expect("frame")).expect("json");
    assert_eq!(out["item"]["type"], "function_call_output");
    assert_eq!(out["item"]["output"], "");
    // Nothing else is sent until the next client action: the next frame is our own text.
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "marker"}),
    )
    .await;
    let next = frames.next_frame().await;
    assert!(next.contains("[USER] marker"), "{next}");
}

#[tokio::test]
async fn upstream_pings_are_answered_with_pongs() {
    let h = harness().await;
    let mut rx = h.sim.records();
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "ping: are you there"}),
    )
    .await;
    loop {
        let r = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("pong in time")
            .expect("record");
        if matches!(r, voxgate::simulator::SimRecord::Pong { .. }) {
            break;
        }
    }
}

#[tokio::test]
async fn upstream_binary_frame_is_an_error_and_closes_with_error() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "binary: please"}),
    )
    .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(err["message"], "unexpected binary realtime websocket event");
    assert_eq!(
        c.notification("thread/realtime/closed").await["reason"],
        "error"
    );
}

#[tokio::test]
async fn delegated_task_timeout_still_resolves_the_call() {
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.agent.task_timeout_secs = 1;
            cfg.agent.embedded.delay_ms = 60_000;
        },
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: slow job"}),
    )
    .await;
    let mut output = None;
    while output.is_none() {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        if f["item"]["type"] == "function_call_output" {
            output = Some(f);
        }
    }
    let output = output.expect("function output");
    assert_eq!(
        output["item"]["output"],
        "The background agent could not finish the task: timed out after 1s"
    );
    assert_eq!(frames.next_frame().await, r#"{"type":"response.create"}"#);
}

#[tokio::test]
async fn a_task_that_ends_after_its_conversation_is_recorded_and_spoken_in_the_next_one() {
    let h = harness_with(|_| {}, |cfg| cfg.agent.embedded.delay_ms = 300).await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: summarize the report"}),
    )
    .await;
    loop {
        let item = c.notification("thread/realtime/itemAdded").await;
        if item["item"]["type"] == "handoff_request" {
            break;
        }
    }
    // The caller hangs up while the agent still works.
    c.request("thread/realtime/stop", json!({"threadId": "t"}))
        .await;
    c.notification("thread/realtime/closed").await;
    // The still-subscribed client hears the late result, and the thread's record keeps it.
    let late = loop {
        let item = c.notification("thread/realtime/itemAdded").await;
        if item["item"]["type"] == "agentLateResult" {
            break item["item"].clone();
        }
    };
    assert!(
        late["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{late}"
    );
    let read = c
        .request("thread/realtime/transcript/read", json!({"threadId": "t"}))
        .await;
    let turns = read["result"]["turns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        turns
            .iter()
            .any(|t| t["role"] == "agent" && t["text"] == late["text"]),
        "{read}"
    );
    // The caller comes back to the thread: the new conversation's model is told the result and
    // speaks it.
    let mut frames = SimFrames::new(&h.sim);
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    let told = late_result_frame(&mut frames).await;
    assert!(
        told.contains(late["text"].as_str().unwrap_or("?")),
        "{told}"
    );
    frames.frames_until_type("response.create").await;
    let spoken = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(spoken["role"], "assistant", "{spoken}");
}

/// The model frame that tells a conversation of a task an earlier one left running.
async fn late_result_frame(frames: &mut SimFrames) -> String {
    loop {
        let f = frames.next_frame().await;
        if f.contains("finished after the call it was asked in had ended") {
            return f;
        }
    }
}

#[tokio::test]
async fn a_late_result_goes_to_the_conversation_already_running_on_the_thread() {
    let h = harness_with(|_| {}, |cfg| cfg.agent.embedded.delay_ms = 500).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: summarize the report"}),
    )
    .await;
    loop {
        let item = c.notification("thread/realtime/itemAdded").await;
        if item["item"]["type"] == "handoff_request" {
            break;
        }
    }
    c.request("thread/realtime/stop", json!({"threadId": "t"}))
        .await;
    c.notification("thread/realtime/closed").await;
    // Back on the thread before the task finishes: its result comes into this conversation.
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    let told = late_result_frame(&mut frames).await;
    assert!(told.contains("[BACKEND]"), "{told}");
    let spoken = c.notification("thread/realtime/transcript/done").await;
    assert_eq!(spoken["role"], "assistant", "{spoken}");
}
