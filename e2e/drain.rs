//! The real binary's operator surface: `/metrics` counters move as a session runs, `/readyz`
//! flips to 503 the moment SIGTERM starts the drain while `/healthz` stays up, new sessions are
//! refused during the drain, running ones are closed with `requested` after the grace period,
//! a WebRTC caller is told on its data channel when the drain ends its call, and a second signal
//! exits at once.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

const WAIT: Duration = Duration::from_secs(20);

async fn spawn_serve(grace_secs: u64) -> (Child, SocketAddr) {
    spawn_serve_logging(grace_secs, "info").await
}

async fn spawn_serve_logging(grace_secs: u64, rust_log: &str) -> (Child, SocketAddr) {
    let mut c = voxgate_bin(env!("CARGO_BIN_EXE_voxgate"));
    c.env("RUST_LOG", rust_log)
        .env("VOXGATE_SERVER__DRAIN_GRACE_SECS", grace_secs.to_string())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn voxgate");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("listening line in time")
            .expect("read")
            .expect("voxgate exited before listening");
        if let Some(a) = line.strip_prefix("voxgate listening on ") {
            break a.trim().parse().expect("addr");
        }
    };
    (child, addr)
}

/// A server log printed if the test panics.
struct DumpOnPanic(std::sync::Arc<std::sync::Mutex<String>>);

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- voxgate's log ---\n{log}");
        }
    }
}

/// (status code, body) of a plain HTTP request.
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    )
}

/// The value of the sample line starting with `series` (exact labels) in a metrics page.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args(["-s", sig, &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -s {sig} failed");
}

/// Poll `/readyz` until it answers `want` (bounded).
async fn readyz_becomes(addr: SocketAddr, want: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if http(addr, "GET", "/readyz").await.0 == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("voxgate exited in time")
        .expect("wait")
}

#[tokio::test]
async fn metrics_move_as_a_session_runs() {
    let (_child, addr) = spawn_serve(30).await;
    let before = http(addr, "GET", "/metrics").await.1;
    assert_eq!(
        sample(&before, r#"voxgate_sessions_active{face="rpc"}"#),
        0.0
    );
    for name in [
        "voxgate_audio_frames_total",
        "voxgate_handoffs_started_total",
        "voxgate_handoffs_ended_total",
        "voxgate_response_create_total",
        "voxgate_truncations_total",
        "voxgate_agent_task_seconds",
        "voxgate_processing_seconds",
        "voxgate_upstream_connect_seconds",
        "voxgate_draining",
    ] {
        assert!(before.contains(name), "{name} missing from /metrics");
    }

    let mut c = RpcClient::ready(addr).await;
    c.start(json!({"threadId": "m1", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    for _ in 0..25 {
        c.request(
            "thread/realtime/appendAudio",
            json!({"threadId": "m1", "audio": {"data": b64(&pcm(20, true)), "sampleRate": 24000,
                "numChannels": 1, "samplesPerChannel": 480}}),
        )
        .await;
    }
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "m1", "text": "delegate: count the files"}),
    )
    .await;
    // The delegated task's result is spoken back once it finished.
    loop {
        let t = c.notification("thread/realtime/transcript/done").await;
        if t["text"]
            .as_str()
            .is_some_and(|t| t.contains("Done: count the files"))
        {
            break;
        }
    }
    let during = http(addr, "GET", "/metrics").await.1;
    assert_eq!(
        sample(&during, r#"voxgate_sessions_active{face="rpc"}"#),
        1.0
    );
    assert_eq!(
        sample(&during, r#"voxgate_sessions_started_total{face="rpc"}"#),
        1.0
    );
    assert!(sample(&during, r#"voxgate_audio_frames_total{direction="in"}"#) >= 25.0);
    assert!(sample(&during, r#"voxgate_audio_frames_total{direction="out"}"#) > 0.0);
    assert_eq!(sample(&during, "voxgate_handoffs_started_total"), 1.0);
    assert_eq!(
        sample(
            &during,
            r#"voxgate_handoffs_ended_total{outcome="finished"}"#
        ),
        1.0
    );
    assert!(
        sample(
            &during,
            r#"voxgate_response_create_total{disposition="sent"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &during,
            r#"voxgate_processing_seconds_count{direction="to_model"}"#
        ) >= 25.0
    );
    assert_eq!(
        sample(&during, "voxgate_upstream_connect_seconds_count"),
        1.0
    );

    c.request("thread/realtime/stop", json!({"threadId": "m1"}))
        .await;
    let closed = c.notification("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "requested");
    c.barrier().await;
    let after = http(addr, "GET", "/metrics").await.1;
    assert_eq!(
        sample(&after, r#"voxgate_sessions_active{face="rpc"}"#),
        0.0
    );
    assert_eq!(
        sample(
            &after,
            r#"voxgate_sessions_closed_total{face="rpc",reason="requested"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn sigterm_drains_then_closes_running_sessions_after_the_grace_period() {
    // The session is shown carrying on (a reply) before the 8 s grace ends it. Its log, with
    // every model frame, is shown if the test fails: the reply went missing in 3 of 8 loaded
    // full-suite runs and in one CI run, cause not found yet.
    let (mut child, addr) = spawn_serve_logging(8, "info,voxgate::session=trace").await;
    let stderr = child.stderr.take().expect("stderr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let _dump = DumpOnPanic(seen.clone());
    let sink = seen.clone();
    let log = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut all = sink.lock().unwrap_or_else(|e| e.into_inner());
            all.push_str(&l);
            all.push('\n');
        }
        sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
    });
    assert_eq!(http(addr, "GET", "/readyz").await, (200, "ready\n".into()));
    let mut c = RpcClient::ready(addr).await;
    c.start(json!({"threadId": "d1", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;

    signal(&child, "TERM");
    readyz_becomes(addr, 503).await;
    assert_eq!(http(addr, "GET", "/healthz").await, (200, "ok\n".into()));
    let metrics = http(addr, "GET", "/metrics").await.1;
    assert_eq!(sample(&metrics, "voxgate_draining"), 1.0);

    // New sessions are refused on every face; the running one carries on.
    c.start(json!({"threadId": "d2", "outputModality": "audio"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down")),
        "{err}"
    );
    let (status, body) = http(addr, "POST", "/v1/realtime/calls").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"draining\""), "{body}");
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "d1", "text": "still here?"}),
    )
    .await;
    c.notification("thread/realtime/transcript/done").await;

    // After the grace period the running session is closed with `requested`, and voxgate exits.
    let closed = c.notification("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "requested");
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "exit status {status}");
    let log = tokio::time::timeout(WAIT, log)
        .await
        .expect("log in time")
        .expect("log task");
    assert!(
        log.lines()
            .any(|l| l.contains("drain grace period over") && l.contains("\"thread_id\":\"d1\"")),
        "no per-session drain line in:\n{log}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let (mut child, addr) = spawn_serve(600).await;
    let mut c = RpcClient::ready(addr).await;
    c.start(json!({"threadId": "s1", "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
    signal(&child, "TERM");
    readyz_becomes(addr, 503).await;
    signal(&child, "INT");
    // The grace period is 10 minutes: exiting within WAIT proves the second signal cut it short.
    let status = wait_exit(&mut child).await;
    assert_eq!(status.code(), Some(130));
}

#[cfg_attr(
    not(voxgate_e2e_aiortc),
    ignore = "needs aiortc: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn a_webrtc_caller_is_told_at_once_when_the_drain_ends_its_call() {
    if !python_module("aiortc", "WebRTC") {
        return;
    }
    let (mut child, addr) = spawn_serve(0).await;
    let tmp = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let wav = tmp.join(format!("drain-speech-{}.wav", std::process::id()));
    write_speech_wav(&wav);
    let ready = tmp.join(format!("drain-ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/clients/aiortc_call.py");
    let caller = tokio::process::Command::new(PYTHON)
        .arg(script)
        .args(["--base", &format!("http://{addr}"), "--end", "drain"])
        .arg("--wav")
        .arg(&wav)
        .arg("--ready-file")
        .arg(&ready)
        .kill_on_drop(true)
        .output();
    let caller = tokio::spawn(caller);
    // Once the caller is in its call and has heard the reply, voxgate is shut down.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the caller never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "TERM");
    let out = tokio::time::timeout(Duration::from_secs(90), caller)
        .await
        .expect("caller finishes in time")
        .expect("join")
        .expect("run python3");
    let s = client_summary(&out);
    assert_eq!(s["spoken_reply"], true, "{s}");
    // Told on the data channel, with the reason, before the peer went away.
    assert_eq!(s["end_told"], true, "{s}");
    assert_eq!(s["end_event"]["reason"], "requested", "{s}");
    assert!(s["end_peer_closed_after_s"].as_f64().is_some(), "{s}");
    assert!(wait_exit(&mut child).await.success());
}
