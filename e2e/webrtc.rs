//! WebRTC relay end to end with a real peer: aiortc (PyPI, installed by .ci/run) posts an offer to
//! `/v1/realtime/calls`, speaks Opus over RTP, hears the model's Opus answer, talks on the
//! `oai-events` data channel, and hangs up. voxgate bridges to the simulator over websocket.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

async fn run_client(base: &str, extra: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/clients/aiortc_call.py");
    let wav = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aiortc-speech.wav");
    if !wav.exists() {
        let tmp = wav.with_extension(format!("{}.tmp", std::process::id()));
        write_speech_wav(&tmp);
        let _ = std::fs::rename(&tmp, &wav);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(PYTHON)
            .arg(script)
            .args(["--base", base])
            .arg("--wav")
            .arg(&wav)
            .args(extra)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("aiortc client finishes in time")
    .expect("run python3");
    client_summary(&out)
}

/// An aiortc caller that stays on its call until released: its Location as soon as the call
/// exists, and its summary once released (it hangs up then).
struct HeldCaller {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    location: String,
    release: std::path::PathBuf,
}

impl HeldCaller {
    async fn spawn(addr: std::net::SocketAddr, name: &str, extra: &[&str]) -> Self {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let release = dir.join(format!("{name}-release-{}", std::process::id()));
        let _ = std::fs::remove_file(&release);
        let wav = dir.join(format!("aiortc-speech-{name}.wav"));
        write_speech_wav(&wav);
        let mut child = tokio::process::Command::new(PYTHON)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/e2e/clients/aiortc_call.py"
            ))
            .args(["--base", &format!("http://{addr}"), "--announce"])
            .args(extra)
            .arg("--wav")
            .arg(&wav)
            .arg("--hold-until-file")
            .arg(&release)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn aiortc");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let location = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("location in time")
                .expect("read")
                .expect("client printed its location");
            if let Some(l) = line.strip_prefix("LOCATION ") {
                break l.to_owned();
            }
        };
        Self {
            child,
            lines,
            location,
            release,
        }
    }

    /// Release the caller and read its summary.
    async fn finish(mut self) -> Value {
        std::fs::write(&self.release, b"go").expect("release");
        let mut last = String::new();
        while let Some(line) = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("client ends in time")
            .expect("read")
        {
            last = line;
        }
        let _ = self.child.wait().await;
        serde_json::from_str(&last).expect("summary")
    }
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn aiortc_caller_speaks_and_hears_the_model_over_opus() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let s = run_client(&format!("http://{}", h.addr), &[]).await;
    assert_eq!(s["post_status"], 201, "{s}");
    assert_eq!(s["content_type"], "application/sdp");
    assert!(
        s["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("/v1/realtime/calls/rtc_")),
        "{s}"
    );
    assert_eq!(s["spoken_reply"], true, "{s}");
    let types: Vec<&str> = s["event_types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "session.updated",
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "output_audio_buffer.started",
        "response.done",
    ] {
        assert!(types.contains(&expected), "missing {expected} in {types:?}");
    }
    assert!(
        !types.contains(&"response.output_audio.delta"),
        "audio travels by RTP, not the data channel"
    );
    // The simulator spoke "You said: hello from the microphone": 6 words x 200 ms = 1200 ms of
    // audio. The caller decoded about that much non-silent audio (the last frame is padded).
    let heard_ms = s["audio"]["loud_frames"].as_u64().unwrap_or(0) * 20;
    assert!(
        (1100..=1300).contains(&heard_ms),
        "heard {heard_ms} ms of the model's 1200 ms: {s}"
    );
    assert_eq!(s["delete_status"], 200);
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn delegation_runs_server_side_and_the_caller_never_sees_the_plumbing() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let s = run_client(
        &format!("http://{}", h.addr),
        &["--delegate", "delegate: check the weather"],
    )
    .await;
    assert_eq!(s["delegated_reply"], true, "{s}");
    let events: Vec<Value> =
        serde_json::from_str(s["events_json"].as_str().unwrap_or("[]")).expect("events");
    for e in &events {
        let item_type = e["item"]["type"].as_str().unwrap_or("");
        assert!(
            !item_type.starts_with("function_call"),
            "tool plumbing leaked: {e}"
        );
        assert!(
            !e["item"].to_string().contains("[BACKEND]"),
            "backend items leaked: {e}"
        );
        assert!(
            !e["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("response.function_call_arguments"),
            "{e}"
        );
        let tools = e["session"]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            tools
                .iter()
                .all(|t| t["name"] != "background_agent" && t["name"] != "remain_silent"),
            "{e}"
        );
    }
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn barge_in_flushes_playout_and_truncates_at_the_played_position() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    let s = run_client(&format!("http://{}", h.addr), &["--barge-in"]).await;
    assert_eq!(
        s["cleared"], true,
        "output_audio_buffer.cleared reached the caller: {s}"
    );
    let seen = frames.frames_until_type("conversation.item.truncate").await;
    let truncate: Value = serde_json::from_str(seen.last().expect("frame")).expect("json");
    let end = truncate["audio_end_ms"].as_u64().expect("ms");
    // The simulator sent the whole 1200 ms reply at once; only what was played is kept.
    assert!(
        (100..1200).contains(&end),
        "truncated at the played position, not the received one: {end}"
    );
    // The caller received exactly the reply's frames voxgate played before the flush (RTP packets,
    // counted once the barge-in turn ended): the truncation equals that within a frame, plus one
    // in flight on the wire.
    let received_ms = s["audio"]["packets_at_clear"]
        .as_u64()
        .expect("RTP packets received at the flush")
        * 20;
    assert!(
        end.abs_diff(received_ms) <= 40,
        "truncate at {end} ms, the caller received {received_ms} ms of audio"
    );
    let events: Vec<Value> =
        serde_json::from_str(s["events_json"].as_str().unwrap_or("[]")).expect("events");
    assert!(
        !events.iter().any(|e| e["type"] == "error"),
        "the model accepted the truncation"
    );
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn rpc_start_with_webrtc_transport_announces_started_then_sdp() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let s = run_client(&format!("http://{}", h.addr), &["--rpc"]).await;
    let n: Vec<&str> = s["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let started = n
        .iter()
        .position(|m| *m == "thread/realtime/started")
        .expect("started");
    let sdp = n
        .iter()
        .position(|m| *m == "thread/realtime/sdp")
        .expect("sdp");
    assert_eq!(sdp, started + 1, "sdp right after started: {n:?}");
    assert_eq!(
        n.iter()
            .filter(|m| **m == "thread/realtime/started")
            .count(),
        1,
        "{n:?}"
    );
    assert_eq!(s["assistant_text"], "You said: hello from the microphone");
    assert!(s["audio"]["loud_frames"].as_u64().unwrap_or(0) >= 10, "{s}");
    assert_eq!(s["closed_reason"], "requested");
    assert!(
        !n.contains(&"thread/realtime/outputAudio/delta"),
        "audio goes by RTP: {n:?}"
    );
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn passthrough_forwards_the_offer_and_delegates_over_the_sideband() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let mut records = h.sim.records();
    let s = run_client(
        &format!("http://{}", h.addr),
        &[
            "--webrtc-mode",
            "passthrough",
            "--delegate",
            "delegate: check the weather",
        ],
    )
    .await;
    assert_eq!(s["post_status"], 201, "{s}");
    let location = s["location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with("/v1/realtime/calls/rtc_sim"),
        "voxgate's Location names the upstream call: {s}"
    );
    assert_eq!(s["spoken_reply"], true, "{s}");
    assert!(
        s["audio"]["loud_frames"].as_u64().unwrap_or(0) >= 10,
        "the simulator's RTP audio was heard: {s}"
    );
    assert_eq!(
        s["delegated_reply"], true,
        "the sideband resolved the call: {s}"
    );
    assert_eq!(s["delete_status"], 200);

    // voxgate joined the call's sideband and spoke first with session.update.
    let call_id = location.rsplit('/').next().unwrap_or_default().to_owned();
    let mut sideband_conn = None;
    let mut first_frame = None;
    let mut offer_parts = Vec::new();
    let mut offer_session = None;
    while let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), records.recv()).await {
        match r {
            voxgate::simulator::SimRecord::CallOffer { parts, session, .. } => {
                offer_parts = parts;
                offer_session = session;
            }
            voxgate::simulator::SimRecord::Connected {
                conn,
                path_and_query,
                ..
            } if path_and_query == format!("/v1/realtime?call_id={call_id}") => {
                sideband_conn = Some(conn)
            }
            voxgate::simulator::SimRecord::Frame { conn, text }
                if Some(conn) == sideband_conn && first_frame.is_none() =>
            {
                first_frame = Some(text);
                break;
            }
            _ => {}
        }
    }
    assert!(sideband_conn.is_some(), "no sideband join seen");
    assert_eq!(
        offer_parts,
        vec![
            ("sdp".to_owned(), "application/sdp".to_owned()),
            ("session".to_owned(), "application/json".to_owned())
        ]
    );
    let session = offer_session.expect("the offer carried the session");
    assert_eq!(session["type"], "realtime");
    assert_eq!(session["model"], "gpt-realtime-1.5");
    assert!(session.get("id").is_none(), "{session}");
    assert_eq!(session["tools"][0]["name"], "background_agent");
    let first: Value = serde_json::from_str(&first_frame.expect("a sideband frame")).expect("json");
    assert_eq!(first["type"], "session.update");
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn rpc_start_in_passthrough_gets_started_sdp_and_sideband_transcripts() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let s = run_client(
        &format!("http://{}", h.addr),
        &["--rpc", "--webrtc-mode", "passthrough"],
    )
    .await;
    let n: Vec<&str> = s["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let started = n
        .iter()
        .position(|m| *m == "thread/realtime/started")
        .expect("started");
    assert_eq!(n.get(started + 1), Some(&"thread/realtime/sdp"), "{n:?}");
    assert_eq!(
        s["assistant_text"], "You said: hello from the microphone",
        "transcripts come over the sideband"
    );
    assert_eq!(s["closed_reason"], "requested");
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_caller_that_never_connects_ends_the_session_with_a_clear_reason() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness_with(|_| {}, |cfg| cfg.webrtc.connect_timeout_secs = 1).await;
    let s = run_client(&format!("http://{}", h.addr), &["--rpc", "--abandon"]).await;
    assert_eq!(
        s["error"], "the WebRTC caller went away: ICE/DTLS did not connect within 1s",
        "{s}"
    );
    assert_eq!(s["closed_reason"], "error");
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn stop_during_a_slow_sideband_join_cancels_it_cleanly() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness_with(|sim| sim.sideband_delay_ms = 3_000, |_| {}).await;
    let mut records = h.sim.records();
    let s = run_client(
        &format!("http://{}", h.addr),
        &["--rpc", "--webrtc-mode", "passthrough", "--stop-after-sdp"],
    )
    .await;
    assert_eq!(s["closed_reason"], "requested", "{s}");
    let n: Vec<&str> = s["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!n.contains(&"thread/realtime/error"), "{n:?}");
    // The join was abandoned: the simulator never gets a sideband frame.
    while let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(4), records.recv()).await {
        if let voxgate::simulator::SimRecord::Frame { text, .. } = r {
            panic!("a sideband frame arrived after stop: {text}");
        }
    }
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_failed_sideband_join_is_an_error_then_closed_error() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness_with(|sim| sim.reject_sideband = true, |_| {}).await;
    let s = run_client(
        &format!("http://{}", h.addr),
        &["--rpc", "--webrtc-mode", "passthrough", "--abandon"],
    )
    .await;
    assert!(
        s["error"].as_str().is_some_and(|e| e.contains("HTTP 403")),
        "{s}"
    );
    assert_eq!(s["closed_reason"], "error");
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_sideband_observes_a_relay_call_and_can_update_its_session() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let caller = HeldCaller::spawn(h.addr, "sideband", &[]).await;
    let location = caller.location.clone();
    let call_id = location.rsplit('/').next().unwrap_or_default().to_owned();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/realtime?call_id={call_id}", h.addr))
            .await
            .expect("sideband connects");
    ws.send(Message::text(r#"{"type":"session.update","session":{"type":"realtime","instructions":"Sideband was here."}}"#))
        .await
        .expect("send");
    let mut seen = Vec::new();
    let mut updated = false;
    while !(updated && seen.iter().any(|t| t == "response.done")) {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "session.updated" && v["session"]["instructions"] == "Sideband was here." {
            // voxgate's tools were added to the sideband's update too.
            assert!(
                v["session"]["tools"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t["name"] == "background_agent")),
                "{v}"
            );
            updated = true;
        }
        seen.push(v["type"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        seen.iter()
            .any(|t| t == "input_audio_buffer.speech_started"),
        "the sideband sees the caller's turn: {seen:?}"
    );
    // Leaving the sideband does not end the call; hang-up does.
    drop(ws);
    let s = caller.finish().await;
    assert_eq!(
        s["delete_status"], 200,
        "the call was still up after the sideband left: {s}"
    );
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_caller_is_told_at_once_when_its_call_is_hung_up_or_the_model_goes_away() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness().await;
    let base = format!("http://{}", h.addr);
    for (end, reason) in [("hangup", "requested"), ("model", "transport_closed")] {
        let s = run_client(&base, &["--end", end]).await;
        assert_eq!(s["spoken_reply"], true, "{s}");
        // Told on the data channel, with the reason, long before aiortc's own ~30 s timeout.
        assert_eq!(s["end_told"], true, "{end}: {s}");
        assert_eq!(s["end_event"]["reason"], reason, "{end}: {s}");
        assert!(s["end_told_after_s"].as_f64().is_some(), "{s}");
    }
}

/// Rollover with a real caller and audio flowing: model sessions are retired after 3 s (the
/// simulator itself would end them at 5 s, as the service does at its cap) over a conversation
/// of several spoken turns. The caller never learns of it but by the opt-in
/// `voxgate.session.resumed`; no switch falls inside a turn; every reply plays without a dropout
/// (no gap over 100 ms between frames at the caller), including the replies that were playing
/// while the model session behind them changed; each new model session is told the conversation.
#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn rollover_during_a_spoken_conversation_keeps_the_callers_audio_continuous() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness_with(
        |sim| {
            sim.max_session_ms = 5000;
            // Every turn a plain one (the default script delegates on the second).
            sim.spoken_script = vec!["hello from the microphone".into()];
        },
        |cfg| cfg.upstream.max_session_secs = 3,
    )
    .await;
    // Every model session and the history items it is told, read while the call runs.
    let mut records = h.sim.records();
    let watch = tokio::spawn(async move {
        let (mut sessions, mut history) = (0usize, Vec::<String>::new());
        loop {
            match records.recv().await {
                Ok(voxgate::simulator::SimRecord::Connected { .. }) => sessions += 1,
                Ok(voxgate::simulator::SimRecord::Frame { text, .. })
                    if text.contains("\"previous_item_id\"") =>
                {
                    history.push(text)
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return (sessions, history),
            }
        }
    });
    // More turns for the figure in BENCHMARKS.md (ROLLOVER_TURNS=25).
    let turns: usize = std::env::var("ROLLOVER_TURNS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(7);
    let s = run_client(
        &format!("http://{}", h.addr),
        &[
            "--turns",
            &turns.to_string(),
            "--voxgate-events",
            "--timeout",
            "20",
        ],
    )
    .await;
    eprintln!("continuity: {}", s["continuity"]);
    eprintln!("{}", rollover_gap_figure(&s["continuity"]));
    assert!(s.get("turns_error").is_none(), "{s}");
    assert_eq!(s["turns_heard"], turns, "{s}");
    let types: Vec<&str> = s["event_types"]
        .as_array()
        .expect("types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !types.contains(&"voxgate.session.closed") && !types.contains(&"error"),
        "the caller noticed: {types:?}"
    );
    let c = &s["continuity"];
    assert!(c["rollovers"].as_u64().unwrap_or(0) >= 2, "{c}");
    assert_eq!(c["rollovers_inside_a_turn"], 0, "{c}");
    let replies = c["replies"].as_array().expect("replies");
    assert_eq!(replies.len(), turns, "{c}");
    for r in replies {
        assert!(
            r["frames"].as_u64().unwrap_or(0) >= 50,
            "a whole reply: {r}"
        );
        let gap = r["max_gap_ms"].as_f64().unwrap_or(f64::MAX);
        assert!(gap <= 100.0, "a dropout of {gap} ms at the caller: {r}");
    }
    assert!(
        replies.iter().any(|r| r["rollover"] == true),
        "a switch happened while a reply played: {c}"
    );
    assert_eq!(s["delete_status"], 200);
    drop(h);
    let (sessions, history) = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .expect("the simulator's records end")
        .expect("watcher");
    assert!(sessions >= 3, "{sessions} model sessions");
    assert!(
        history.iter().any(|f| f.contains(r#""role":"user""#)
            && f.contains(r#""text":"hello from the microphone""#))
            && history
                .iter()
                .any(|f| f.contains(r#""text":"You said: hello from the microphone""#)),
        "the successors were told the conversation: {history:?}"
    );
}

/// The caller-side figure: frame gaps within replies that played across a model-session switch.
fn rollover_gap_figure(c: &Value) -> String {
    let replies = c["replies"].as_array().cloned().unwrap_or_default();
    let across: Vec<&Value> = replies.iter().filter(|r| r["rollover"] == true).collect();
    let mut gaps: Vec<f64> = across
        .iter()
        .flat_map(|r| r["gaps_ms"].as_array().cloned().unwrap_or_default())
        .filter_map(|g| g.as_f64())
        .collect();
    gaps.sort_by(f64::total_cmp);
    let at = |q: f64| {
        gaps.get(((gaps.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    };
    format!(
        "rollover gaps at the caller: {} replies, {} across a switch ({} rollovers), \
         frame gap p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        replies.len(),
        across.len(),
        c["rollovers"],
        at(0.5),
        at(0.99),
        gaps.last().copied().unwrap_or(f64::NAN)
    )
}

/// Passthrough on the default offline set-up (the embedded simulator as the model service, no
/// API key anywhere): the caller's offer is forwarded, the caller hears the reply, and the call's
/// delegation is answered over the sideband.
#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn passthrough_works_on_the_default_offline_setup() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let mut cfg = voxgate::config::Config::default();
    cfg.agent.embedded.delay_ms = 20;
    let app = voxgate::app::AppState::build(cfg)
        .await
        .expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = voxgate::http::serve(listener, app, std::future::pending()).await;
    });
    let s = run_client(
        &format!("http://{addr}"),
        &[
            "--webrtc-mode",
            "passthrough",
            "--delegate",
            "delegate: check the weather",
        ],
    )
    .await;
    server.abort();
    assert_eq!(s["post_status"], 201, "{s}");
    assert_eq!(s["spoken_reply"], true, "{s}");
    assert_eq!(s["delegated_reply"], true, "{s}");
    assert_eq!(s["delete_status"], 200, "{s}");
}

/// A GPT-Live WebRTC caller: `POST /v1/live/sessions` (JSON) in front of a GPT-Live model,
/// heard over Opus; `…/{id}/attach` observes the call's model events; hang-up at the Location.
#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_gpt_live_webrtc_caller_is_answered_and_its_call_can_be_attached() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let h = harness_with(
        |_| {},
        |cfg| cfg.upstream.version = voxgate::protocol::ModelVersion::V3,
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let caller = HeldCaller::spawn(h.addr, "live-attach", &["--live"]).await;
    let location = caller.location.clone();
    let call_id = location.rsplit('/').next().unwrap_or_default().to_owned();
    assert!(
        location.starts_with("/v1/realtime/calls/rtc_"),
        "{location}"
    );
    // The caller's session reached the GPT-Live model: its instructions and voice.
    frames.next_connected().await;
    let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(first["type"], "session.start", "{first}");
    assert_eq!(first["session"]["instructions"], "Be brief.");
    assert_eq!(first["session"]["audio"]["output"]["voice"], "cove");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/v1/live/sessions/{call_id}/attach",
        h.addr
    ))
    .await
    .expect("attach connects");
    let mut seen = Vec::new();
    while !seen.iter().any(|t| t == "session.output_transcript.delta") {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        seen.push(v["type"].as_str().unwrap_or_default().to_owned());
    }
    drop(ws);
    let s = caller.finish().await;
    assert_eq!(s["post_status"], 201, "{s}");
    assert_eq!(s["session_id"], call_id.as_str(), "{s}");
    assert_eq!(s["spoken_reply"], true, "{s}");
    assert!(s["audio"]["loud_frames"].as_u64().unwrap_or(0) > 10, "{s}");
    assert_eq!(s["delete_status"], 200, "{s}");
}
