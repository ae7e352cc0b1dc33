//! Shared harness for the end-to-end tests: a simulator on loopback, voxgate's HTTP face on an
//! ephemeral port, and a JSON-RPC websocket client with bounded waits.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};
use voxgate::app::AppState;
use voxgate::config::{Config, UpstreamKind};
use voxgate::simulator::{SimRecord, Simulator};

pub mod responses_server;

pub const WAIT: Duration = Duration::from_secs(10);
pub const API_KEY: &str = "sk-test-upstream-key";

pub struct Harness {
    pub sim: Simulator,
    pub app: Arc<AppState>,
    pub addr: std::net::SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Config pointing at a separately started simulator as a "real" upstream with an API key.
pub fn test_config(sim: &Simulator) -> Config {
    let mut cfg = Config::default();
    cfg.upstream.kind = UpstreamKind::Openai;
    cfg.upstream.base_url = sim.base_url();
    cfg.upstream.api_key = Some(API_KEY.into());
    cfg.upstream.connect_timeout_ms = 5_000;
    cfg.agent.embedded.delay_ms = 20;
    cfg
}

/// Keys mode with one plain key (`id`, the key itself): what a test of a keyed face needs.
pub fn one_key(cfg: &mut Config, id: &str, key: &str) {
    cfg.auth.mode = voxgate::config::AuthMode::Keys;
    cfg.auth.keys = vec![voxgate::config::ApiKeyConfig {
        id: id.into(),
        sha256: hex::encode(voxgate::auth::sha256(key)),
        limits: Default::default(),
        admin: false,
    }];
}

pub async fn harness() -> Harness {
    harness_with(|_| {}, |_| {}).await
}

/// A harness with the simulator and gateway configs adjusted.
pub async fn harness_with(
    tweak_sim: impl FnOnce(&mut voxgate::config::SimulatorConfig),
    tweak: impl FnOnce(&mut Config),
) -> Harness {
    let mut sim_cfg = voxgate::config::SimulatorConfig::default();
    tweak_sim(&mut sim_cfg);
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), sim_cfg)
        .await
        .expect("simulator binds");
    let mut cfg = test_config(&sim);
    tweak(&mut cfg);
    let app = AppState::build(cfg).await.expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app2 = app.clone();
    let server = tokio::spawn(async move {
        let _ = voxgate::http::serve(listener, app2, std::future::pending()).await;
    });
    Harness {
        sim,
        app,
        addr,
        server,
    }
}

pub struct RpcClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: i64,
    pending: VecDeque<Value>,
}

impl RpcClient {
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async(format!("ws://{addr}/rpc")),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        Self {
            ws,
            next_id: 1,
            pending: VecDeque::new(),
        }
    }

    /// Connect with `Authorization: Bearer <key>` and initialize with experimentalApi.
    pub async fn ready_as(addr: std::net::SocketAddr, key: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/rpc")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut c = Self {
            ws,
            next_id: 1,
            pending: VecDeque::new(),
        };
        let r = c
            .request(
                "initialize",
                json!({"clientInfo": {"name": "test", "version": "1"},
                    "capabilities": {"experimentalApi": true}}),
            )
            .await;
        assert!(r.get("result").is_some(), "initialize failed: {r}");
        c
    }

    /// Connect and initialize with experimentalApi.
    pub async fn ready(addr: std::net::SocketAddr) -> Self {
        Self::ready_with(addr, json!({"experimentalApi": true})).await
    }

    pub async fn ready_with(addr: std::net::SocketAddr, caps: Value) -> Self {
        let mut c = Self::connect(addr).await;
        let r = c
            .request(
                "initialize",
                json!({"clientInfo": {"name": "test", "version": "1"}, "capabilities": caps}),
            )
            .await;
        assert!(r.get("result").is_some(), "initialize failed: {r}");
        c
    }

    pub async fn send_raw(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("message in time")
                .expect("socket open")
                .expect("frame");
            if let Message::Text(t) = msg {
                let mut v: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                // Every notification is stamped as codex stamps its own; the tests compare the
                // rest exactly.
                if v.get("method").is_some() && v.get("id").is_none() {
                    let stamp = v.as_object_mut().and_then(|o| o.remove("emittedAtMs"));
                    assert!(
                        stamp
                            .as_ref()
                            .and_then(Value::as_u64)
                            .is_some_and(|ms| ms > 0),
                        "a notification without emittedAtMs: {v}"
                    );
                }
                return v;
            }
        }
    }

    /// Send a request and wait for its response (notifications meanwhile are kept).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(json!({"id": id, "method": method, "params": params}).to_string())
            .await;
        self.response_to(json!(id)).await
    }

    pub async fn response_to(&mut self, id: Value) -> Value {
        loop {
            let v = self.recv().await;
            if v.get("method").is_some() {
                self.pending.push_back(v);
            } else if v.get("id") == Some(&id) {
                return v;
            } else {
                panic!("unexpected response {v} while waiting for id {id}");
            }
        }
    }

    /// Next response or notification of any kind.
    pub async fn next_message(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        self.recv().await
    }

    /// The next notification with `method`; others before it are returned in order too.
    pub async fn until(&mut self, method: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let v = self.next_message().await;
            if v.get("method").and_then(Value::as_str) == Some(method) {
                return (v["params"].clone(), skipped);
            }
            skipped.push(v);
        }
    }

    pub async fn notification(&mut self, method: &str) -> Value {
        self.until(method).await.0
    }

    /// Collect notifications until `method` arrives; returns (methods seen, that notification).
    pub async fn methods_until(&mut self, method: &str) -> (Vec<String>, Value) {
        let (params, skipped) = self.until(method).await;
        let methods = skipped
            .iter()
            .filter_map(|v| v["method"].as_str().map(str::to_owned))
            .collect();
        (methods, params)
    }

    pub async fn start(&mut self, params: Value) {
        let r = self.request("thread/realtime/start", params).await;
        assert_eq!(r["result"], json!({}), "start reply: {r}");
    }

    /// A ping that round-trips through the server, proving everything before it was processed.
    pub async fn barrier(&mut self) {
        let r = self.request("thread/realtime/listVoices", json!({})).await;
        assert!(r.get("result").is_some());
    }

    /// Nothing arrived but what was awaited (call after `barrier`).
    pub fn assert_nothing_else(&self) {
        assert!(self.pending.is_empty(), "unexpected: {:?}", self.pending);
    }
}

/// Frames the simulator receives, in order, with bounded waits.
pub struct SimFrames {
    rx: broadcast::Receiver<SimRecord>,
}

impl SimFrames {
    pub fn new(sim: &Simulator) -> Self {
        Self { rx: sim.records() }
    }

    pub async fn next(&mut self) -> SimRecord {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("simulator record in time")
            .expect("record")
    }

    pub async fn next_connected(&mut self) -> SimRecord {
        loop {
            let r = self.next().await;
            if matches!(r, SimRecord::Connected { .. }) {
                return r;
            }
        }
    }

    /// The next frame received by the simulator (any connection).
    pub async fn next_frame(&mut self) -> String {
        loop {
            if let SimRecord::Frame { text, .. } = self.next().await {
                return text;
            }
        }
    }

    /// Frames until one whose `type` is `ty`; returns all frames seen including it.
    pub async fn frames_until_type(&mut self, ty: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let f = self.next_frame().await;
            let is = serde_json::from_str::<Value>(&f)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                == Some(ty.to_owned());
            seen.push(f);
            if is {
                return seen;
            }
        }
    }

    pub async fn next_disconnected(&mut self) -> u64 {
        loop {
            if let SimRecord::Disconnected { conn } = self.next().await {
                return conn;
            }
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `ms` of PCM16 24 kHz mono: a loud square-ish wave (speech for the VAD) or silence.
pub fn pcm(ms: u64, loud: bool) -> Vec<u8> {
    let n = ms * 24;
    let mut out = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let s: i16 = if loud {
            if (i / 30) % 2 == 0 { 8000 } else { -8000 }
        } else {
            0
        };
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A 48 kHz mono WAV of speech-like audio: 0.8 s of an amplitude-modulated harmonic buzz (loud
/// enough for the simulator's VAD, with a voice-like spectrum), then 2.2 s of silence.
pub fn write_speech_wav(path: &std::path::Path) {
    let rate = 48_000u32;
    let total = rate * 3;
    let mut pcm = Vec::with_capacity(total as usize * 2);
    for i in 0..total {
        let t = f64::from(i) / f64::from(rate);
        let s = if t < 0.8 {
            let env = (t * 6.0 * std::f64::consts::TAU).sin().abs() * 0.6 + 0.4;
            let v: f64 = (1..6)
                .map(|h| (t * 180.0 * f64::from(h) * std::f64::consts::TAU).sin() / f64::from(h))
                .sum();
            v * env * 9000.0
        } else {
            0.0
        };
        pcm.extend_from_slice(&(s as i16).to_le_bytes());
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    wav.extend_from_slice(&pcm);
    std::fs::write(path, wav).expect("write wav");
}

/// Simulator frames up to the next `function_call_output` (returned separately).
pub async fn until_function_output(frames: &mut SimFrames) -> (Vec<Value>, Value) {
    let mut seen = Vec::new();
    loop {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        if f["item"]["type"] == "function_call_output" {
            return (seen, f);
        }
        seen.push(f);
    }
}

/// Every message of an agent task, then how it ended (bounded waits).
pub async fn collect_task(
    h: &mut voxgate::agent::TaskHandle,
) -> (Vec<String>, voxgate::engine::TaskOutcome) {
    let mut msgs = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, h.next())
            .await
            .expect("agent update in time")
        {
            voxgate::agent::AgentUpdate::Message(m) => msgs.push(m),
            voxgate::agent::AgentUpdate::End(o) => return (msgs, o),
        }
    }
}

/// The real `voxgate` binary (only for test targets Cargo builds it for), with no `VOXGATE_*`
/// or `OPENAI_API_KEY` from the environment, stdout piped, killed with its handle.
pub fn voxgate_bin(exe: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(exe);
    for (k, _) in std::env::vars() {
        if k.starts_with("VOXGATE_") {
            c.env_remove(k);
        }
    }
    c.env_remove("OPENAI_API_KEY")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    c
}

/// The Python the e2e clients run on: python3, or the project venv build.rs set up (e2e/.venv).
pub const PYTHON: &str = env!("VOXGATE_E2E_PYTHON");

/// Whether the e2e Python can import `module` (an e2e client's dependency). Missing locally: a
/// SKIPPING note and false; missing in CI (`CI` set): a failure, since `.ci/run` installs it.
pub fn python_module(module: &str, suite: &str) -> bool {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "{module} missing in CI: pip install -r e2e/requirements.txt"
        );
        eprintln!(
            "SKIPPING {suite} e2e: {module} not installed (pip install -r e2e/requirements.txt)"
        );
    }
    ok
}

/// The JSON summary an e2e client prints as its last stdout line (panics with both streams).
pub fn client_summary(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|_| {
        panic!(
            "client printed no summary; stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// An SDP offer from a str0m peer (Opus audio and the `oai-events` channel), as a browser sends.
pub fn relay_offer() -> String {
    voxgate::media::call::install_crypto();
    let mut rtc = str0m::RtcConfig::new().build(std::time::Instant::now());
    let candidate = str0m::Candidate::host(([127, 0, 0, 1], 9).into(), "udp").expect("candidate");
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    change.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendRecv,
        None,
        None,
        None,
    );
    change.add_channel("oai-events".into());
    let (offer, _) = change.apply().expect("offer");
    offer.to_sdp_string()
}

/// An OpenAI-protocol client on `/v1/realtime` with a 4 KiB receive buffer (the kernel absorbs
/// little of what it does not read) that has asked the model to say `words` words (200 ms of
/// audio each, sent by the simulator as fast as it can).
pub async fn slow_reader_asking_for(
    addr: std::net::SocketAddr,
    words: usize,
) -> WebSocketStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/v1/realtime?model=gpt-realtime");
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("upgrade");
    let words: Vec<String> = (0..words).map(|i| format!("w{i}")).collect();
    let item = json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": words.join(" ")}]}});
    slow.send(Message::text(item.to_string()))
        .await
        .expect("send");
    slow.send(Message::text(r#"{"type":"response.create"}"#))
        .await
        .expect("send");
    slow
}

/// This process's resident memory in KiB (voxgate and the simulator run in it).
pub fn rss_kb() -> u64 {
    voxgate::loadtest::sysmon::rss_kb(std::process::id()).unwrap_or(0)
}

/// A gateway serving TLS with a fresh self-signed certificate (for localhost and 127.0.0.1):
/// the harness, the certificate's PEM and its file, and the TLS address.
pub async fn tls_gateway(
    tweak: impl FnOnce(&mut voxgate::config::Config),
) -> (Harness, String, std::path::PathBuf, std::net::SocketAddr) {
    let h = harness_with(|_| {}, tweak).await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "tls-{}-{}",
        std::process::id(),
        rand_u64()
    ));
    let (id, path) =
        voxgate::http::tls::dev_self_signed(&["localhost".into(), "127.0.0.1".into()], &dir)
            .expect("certificate");
    let pem = std::fs::read_to_string(&path).expect("pem");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = h.app.clone();
    tokio::spawn(async move {
        let _ = voxgate::http::serve_with(listener, Some(id.acceptor), app, std::future::pending())
            .await;
    });
    (h, pem, path, addr)
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Run the Node client `e2e/clients/<script>` (from e2e/, where its packages are) with `args`,
/// within two minutes; its JSON summary line.
pub async fn node_client(script: &str, args: &[&std::ffi::OsStr]) -> Value {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(format!("{root}/e2e/clients/{script}"))
            .args(args)
            .current_dir(format!("{root}/e2e"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the node client finishes in time")
    .expect("run node");
    client_summary(&out)
}
