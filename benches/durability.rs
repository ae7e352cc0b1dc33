//! Issue 12's figures, on loopback in one process (voxgate, its embedded simulator as the model,
//! a JSON-RPC websocket client; one clock):
//! - reconnect: the simulator drops its socket mid-reply (`drop:`), 20 times; from the client
//!   learning of the loss (`realtimeSessionClosed{failed}`) to `realtimeSessionStarted`, and to
//!   the first audio of a reply from the new model session (default `reconnect_backoff_ms`);
//! - rollover: model sessions retired every second at a turn boundary (the user pauses 100 ms
//!   between turns), 20 times; the switch time
//!   (`realtimeSessionClosed{ended}` to `realtimeSessionStarted`), during which input waits;
//! - memory per detached conversation: RSS growth with 200 conversations detached, per one.
//!
//! Run: `cargo bench --bench durability`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use voxgate::app::AppState;
use voxgate::config::{Config, SimulatorConfig, UpstreamKind};
use voxgate::simulator::Simulator;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

async fn gateway(sim_cfg: SimulatorConfig, tweak: impl FnOnce(&mut Config)) -> (Simulator, String) {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), sim_cfg)
        .await
        .expect("simulator");
    let mut cfg = Config::default();
    cfg.upstream.kind = UpstreamKind::Openai;
    cfg.upstream.base_url = sim.base_url();
    cfg.upstream.api_key = Some("sk-bench".into());
    tweak(&mut cfg);
    let app = AppState::build(cfg).await.expect("app");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { voxgate::http::serve(l, app, std::future::pending()).await });
    (sim, format!("ws://{addr}/rpc"))
}

async fn client(url: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    send(&mut ws, json!({"id": 0, "method": "initialize", "params": {"clientInfo": {"name": "bench", "version": "1"}, "capabilities": {"experimentalApi": true}}})).await;
    until(&mut ws, |v| v["id"] == 0).await;
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            if pred(&v) {
                return v;
            }
        }
    }
}

fn item_is(v: &Value, ty: &str) -> bool {
    v["method"] == "thread/realtime/itemAdded" && v["params"]["item"]["type"] == ty
}

async fn say(ws: &mut Ws, thread: &str, text: &str) {
    send(ws, json!({"id": 1, "method": "thread/realtime/appendText", "params": {"threadId": thread, "text": text}})).await;
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kb() -> u64 {
    voxgate::loadtest::sysmon::rss_kb(std::process::id()).unwrap_or(0)
}

async fn reconnects() {
    let (_sim, url) = gateway(SimulatorConfig::default(), |_| {}).await;
    let mut ws = client(&url).await;
    send(&mut ws, json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "r", "outputModality": "audio"}})).await;
    until(&mut ws, |v| v["method"] == "thread/realtime/started").await;
    let (mut gap, mut to_audio) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        say(&mut ws, "r", "drop: this reply is cut").await;
        until(&mut ws, |v| item_is(v, "realtimeSessionClosed")).await;
        let lost = Instant::now();
        until(&mut ws, |v| item_is(v, "realtimeSessionStarted")).await;
        gap.push(lost.elapsed().as_secs_f64() * 1e3);
        say(&mut ws, "r", "hello again").await;
        until(&mut ws, |v| {
            v["method"] == "thread/realtime/outputAudio/delta"
        })
        .await;
        to_audio.push(lost.elapsed().as_secs_f64() * 1e3);
        until(&mut ws, |v| {
            v["method"] == "thread/realtime/transcript/done"
                && v["params"]["text"] == "You said: hello again"
        })
        .await;
    }
    println!(
        "reconnect (20 drops, backoff 250 ms): loss -> new session p50 {:.1} ms p99 {:.1} ms; loss -> first audio p50 {:.1} ms p99 {:.1} ms",
        pct(&mut gap, 0.5),
        pct(&mut gap, 0.99),
        pct(&mut to_audio, 0.5),
        pct(&mut to_audio, 0.99)
    );
}

async fn rollovers() {
    let (_sim, url) = gateway(SimulatorConfig::default(), |cfg| {
        cfg.upstream.max_session_secs = 1;
    })
    .await;
    let mut ws = client(&url).await;
    send(&mut ws, json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "o", "outputModality": "audio"}})).await;
    until(&mut ws, |v| v["method"] == "thread/realtime/started").await;
    let mut switch = Vec::new();
    let mut turn = 0;
    while switch.len() < 20 {
        turn += 1;
        // The user's pause between turns: the turn boundary a rollover waits for.
        tokio::time::sleep(Duration::from_millis(100)).await;
        say(&mut ws, "o", &format!("turn {turn}")).await;
        let v = until(&mut ws, |v| {
            item_is(v, "realtimeSessionClosed")
                || v["params"]["text"] == format!("You said: turn {turn}")
        })
        .await;
        if item_is(&v, "realtimeSessionClosed") {
            let at = Instant::now();
            until(&mut ws, |v| item_is(v, "realtimeSessionStarted")).await;
            switch.push(at.elapsed().as_secs_f64() * 1e3);
            until(&mut ws, |v| {
                v["params"]["text"] == format!("You said: turn {turn}")
            })
            .await;
        }
    }
    println!(
        "rollover (20 switches at turn boundaries): switch p50 {:.2} ms p99 {:.2} ms",
        pct(&mut switch, 0.5),
        pct(&mut switch, 0.99)
    );
}

async fn detached_memory() {
    const N: usize = 200;
    let (_sim, url) = gateway(SimulatorConfig::default(), |cfg| {
        cfg.session.detach_grace_secs = 600;
    })
    .await;
    let mut ws = client(&url).await;
    // Warm up allocator pools with one conversation that comes and goes.
    send(&mut ws, json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "warm", "outputModality": "audio"}})).await;
    until(&mut ws, |v| v["method"] == "thread/realtime/started").await;
    send(
        &mut ws,
        json!({"id": 3, "method": "thread/realtime/stop", "params": {"threadId": "warm"}}),
    )
    .await;
    until(&mut ws, |v| v["method"] == "thread/realtime/closed").await;
    let before = rss_kb();
    for i in 0..N {
        send(&mut ws, json!({"id": 10 + i, "method": "thread/realtime/start", "params": {"threadId": format!("d{i}"), "outputModality": "audio"}})).await;
    }
    let mut started = 0;
    while started < N {
        until(&mut ws, |v| v["method"] == "thread/realtime/started").await;
        started += 1;
    }
    drop(ws);
    let detached = voxgate::metrics::SESSIONS_DETACHED.clone();
    let t0 = Instant::now();
    while detached.get() < N as i64 && t0.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = rss_kb();
    println!(
        "memory: {} conversations detached; RSS grew {} KiB, {:.1} KiB per conversation (voxgate and the in-process simulator's session)",
        detached.get(),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / N as f64
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        reconnects().await;
        rollovers().await;
        detached_memory().await;
    });
}
