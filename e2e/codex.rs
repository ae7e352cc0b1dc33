//! The `codex` agent backend against a real codex app-server (the CLI from the npm registry,
//! pinned in e2e/package.json and installed by .ci/run), whose model provider is a scripted
//! Responses server on loopback. Nothing leaves the machine.

#[path = "../tests/common/mod.rs"]
mod common;

use common::responses_server::{Reply, ResponsesServer, input_texts};
use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

fn codex_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("VOXGATE_CODEX_BIN") {
        return Some(PathBuf::from(p));
    }
    // The native binary (not the node launcher), so killing it really ends the app-server.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/node_modules");
    let native = root.join("@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
    let launcher = root.join(".bin/codex");
    [native, launcher].into_iter().find(|p| p.exists())
}

/// The codex binary, or `None` (with a loud note) outside CI; in CI a missing codex fails.
fn require_codex() -> Option<PathBuf> {
    let bin = codex_bin();
    if bin.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "codex CLI missing in CI: run `npm ci --prefix e2e`"
        );
        eprintln!("SKIPPING codex e2e: codex CLI not installed (run `npm ci --prefix e2e`)");
    }
    bin
}

struct CodexServer {
    child: Child,
    url: String,
}

async fn spawn_codex(bin: &PathBuf, responses_base: &str) -> CodexServer {
    spawn_codex_with(bin, responses_base, "never", "ws://127.0.0.1:0").await
}

async fn spawn_codex_with(
    bin: &PathBuf,
    responses_base: &str,
    approval: &str,
    listen: &str,
) -> CodexServer {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "codex-home-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&home).expect("codex home");
    std::fs::write(
        home.join("config.toml"),
        format!(
            r#"model = "scripted-model"
model_provider = "scripted"
approval_policy = "{approval}"
sandbox_mode = "read-only"

[model_providers.scripted]
name = "scripted"
base_url = "{responses_base}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#
        ),
    )
    .expect("config.toml");
    let mut child = Command::new(bin)
        .args(["app-server", "--listen", listen])
        .env("CODEX_HOME", &home)
        .env("RUST_LOG", "warn")
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn codex app-server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = tokio::time::timeout(WAIT * 3, lines.next_line())
            .await
            .expect("codex prints its address in time")
            .expect("read stderr")
            .expect("codex app-server exited before listening");
        if let Some(i) = line.find("listening on: ") {
            break line[i + "listening on: ".len()..].trim().to_owned();
        }
    };
    // Keep draining stderr so codex never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    CodexServer { child, url }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn gateway(codex: &CodexServer, timeout_secs: u64) -> Harness {
    let url = codex.url.clone();
    harness_with(
        |_| {},
        move |cfg| {
            cfg.agent.kind = voxgate::config::AgentKind::Codex;
            cfg.agent.codex.url = url;
            cfg.agent.task_timeout_secs = timeout_secs;
        },
    )
    .await
}
fn delegation(text: &str) -> String {
    format!(
        "<realtime_delegation>\n  <input>{text}</input>\n  <transcript_delta>user: {text}</transcript_delta>\n</realtime_delegation>"
    )
}

async fn start(c: &mut RpcClient, thread: &str) {
    c.start(json!({"threadId": thread, "outputModality": "audio"}))
        .await;
    c.notification("thread/realtime/started").await;
}

async fn say(c: &mut RpcClient, thread: &str, text: &str) {
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": thread, "text": text}),
    )
    .await;
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn delegation_becomes_a_codex_turn_and_its_message_returns_as_backend() {
    let Some(bin) = require_codex() else { return };
    let responses =
        ResponsesServer::start(vec![Reply::Messages(vec!["There are 3 files.".into()])]).await;
    let codex = spawn_codex(&bin, &responses.base_url()).await;
    let h = gateway(&codex, 120).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: count the files").await;

    let req = responses.next_request().await;
    assert!(
        input_texts(&req).contains(&delegation("count the files")),
        "codex's model request carries the exact delegation text as user input: {:#?}",
        input_texts(&req)
    );
    let (seen, output) = until_function_output(&mut frames).await;
    assert!(
        seen.iter()
            .any(|f| f["item"]["content"][0]["text"] == "[BACKEND] There are 3 files."),
        "{seen:#?}"
    );
    assert!(
        output["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("finished")),
        "{output}"
    );
    assert_eq!(frames.next_frame().await, r#"{"type":"response.create"}"#);
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn second_delegation_while_the_turn_runs_arrives_as_a_steer() {
    let Some(bin) = require_codex() else { return };
    let release = Arc::new(Notify::new());
    let responses = ResponsesServer::start(vec![
        Reply::Hold(release.clone(), vec!["Counted the files.".into()]),
        Reply::Messages(vec!["Also listed the tests.".into()]),
    ])
    .await;
    let codex = spawn_codex(&bin, &responses.base_url()).await;
    let h = gateway(&codex, 120).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: count the files").await;
    responses.next_request().await;

    say(&mut c, "t", "delegate: also list the tests").await;
    let (_, steer_ack) = until_function_output(&mut frames).await;
    assert!(
        steer_ack["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("already working")),
        "{steer_ack}"
    );
    release.notify_one();

    // codex folds the steer into the running turn: its next model request carries the text.
    let second = responses.next_request().await;
    assert!(
        input_texts(&second)
            .iter()
            .any(|t| t.contains("also list the tests")),
        "{:#?}",
        input_texts(&second)
    );
    let (seen, done) = until_function_output(&mut frames).await;
    let backend: Vec<&Value> = seen
        .iter()
        .filter(|f| {
            f["item"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[BACKEND]"))
        })
        .collect();
    let texts: Vec<&str> = backend
        .iter()
        .filter_map(|f| f["item"]["content"][0]["text"].as_str())
        .collect();
    // codex may restart its sampling with the steered input, so the held first answer can be
    // superseded; the answer to the steered turn must come back.
    assert!(
        texts.contains(&"[BACKEND] Also listed the tests."),
        "{seen:#?}"
    );
    assert_ne!(done["item"]["call_id"], steer_ack["item"]["call_id"]);
    assert!(
        done["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("finished")),
        "{done}"
    );
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn killing_the_app_server_mid_task_fails_the_task_and_the_session_keeps_running() {
    let Some(bin) = require_codex() else { return };
    let release = Arc::new(Notify::new());
    let responses = ResponsesServer::start(vec![Reply::Hold(release, vec![])]).await;
    let mut codex = spawn_codex(&bin, &responses.base_url()).await;
    let h = gateway(&codex, 120).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: a long job").await;
    responses.next_request().await;
    codex.child.kill().await.expect("kill codex");

    let (_, output) = until_function_output(&mut frames).await;
    assert_eq!(
        output["item"]["output"],
        "The background agent could not finish the task: the codex app-server connection was lost"
    );
    say(&mut c, "t", "are you still there").await;
    let mut done = c.notification("thread/realtime/transcript/done").await;
    while done["text"] != "You said: are you still there" {
        done = c.notification("thread/realtime/transcript/done").await;
    }

    // The app-server comes back on the same address: the next task reconnects by itself.
    responses.push(Reply::Messages(vec!["Back again.".into()]));
    let _codex2 = spawn_codex_with(&bin, &responses.base_url(), "never", &codex.url).await;
    say(&mut c, "t", "delegate: try again").await;
    let (seen, output) = until_function_output(&mut frames).await;
    assert!(
        seen.iter()
            .any(|f| f["item"]["content"][0]["text"] == "[BACKEND] Back again."),
        "{output}"
    );
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn approval_requests_are_declined_and_reported_to_the_model() {
    let Some(bin) = require_codex() else { return };
    let marker =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("approval-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let args = json!({"cmd": format!("touch {}", marker.display()), "sandbox_permissions": "require_escalated",
        "justification": "needs to write a file"})
    .to_string();
    let responses = ResponsesServer::start(vec![
        Reply::FunctionCall("exec_command".into(), args),
        Reply::Messages(vec!["I was not allowed to run it.".into()]),
    ])
    .await;
    let codex = spawn_codex_with(
        &bin,
        &responses.base_url(),
        "on-request",
        "ws://127.0.0.1:0",
    )
    .await;
    let h = gateway(&codex, 120).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: create the file").await;
    let (seen, output) = until_function_output(&mut frames).await;
    let backend: Vec<&str> = seen
        .iter()
        .filter_map(|f| f["item"]["content"][0]["text"].as_str())
        .filter(|t| t.starts_with("[BACKEND]"))
        .collect();
    assert!(
        backend.iter().any(
            |t| t.starts_with("[BACKEND] Declined the agent's request to run `")
                && t.contains("touch")
        ),
        "{backend:#?}"
    );
    assert!(
        backend.contains(&"[BACKEND] I was not allowed to run it."),
        "{backend:#?}"
    );
    assert!(
        output["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("finished")),
        "{output}"
    );
    assert!(!marker.exists(), "the declined command must not have run");
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn stop_interrupts_the_turn_and_the_codex_thread_stays_usable() {
    let Some(bin) = require_codex() else { return };
    let release = Arc::new(Notify::new());
    let responses = ResponsesServer::start(vec![Reply::Hold(release, vec![])]).await;
    let codex = spawn_codex(&bin, &responses.base_url()).await;
    let h = gateway(&codex, 120).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: a long job").await;
    responses.next_request().await;
    c.request("thread/realtime/stop", json!({"threadId": "t"}))
        .await;
    assert_eq!(
        c.notification("thread/realtime/closed").await["reason"],
        "requested"
    );

    responses.push(Reply::Messages(vec!["Fresh answer.".into()]));
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: a short job").await;
    let (seen, output) = until_function_output(&mut frames).await;
    assert!(
        seen.iter()
            .any(|f| f["item"]["content"][0]["text"] == "[BACKEND] Fresh answer."),
        "{output}"
    );
    assert!(
        output["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("finished")),
        "{output}"
    );
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn codex_task_timeout_resolves_the_call() {
    let Some(bin) = require_codex() else { return };
    let release = Arc::new(Notify::new());
    let responses = ResponsesServer::start(vec![Reply::Hold(release, vec![])]).await;
    let codex = spawn_codex(&bin, &responses.base_url()).await;
    let h = gateway(&codex, 2).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "t").await;
    say(&mut c, "t", "delegate: a long job").await;
    let (_, output) = until_function_output(&mut frames).await;
    assert_eq!(
        output["item"]["output"],
        "The background agent could not finish the task: timed out after 2s"
    );
}

/// A websocket proxy in front of codex that records what voxgate sends it.
struct WireTap {
    url: String,
    sent: Arc<std::sync::Mutex<Vec<Value>>>,
    more: Arc<Notify>,
}

async fn tap(codex_url: &str) -> WireTap {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let more = Arc::new(Notify::new());
    let (upstream, log, told) = (codex_url.to_owned(), sent.clone(), more.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (upstream, log, told) = (upstream.clone(), log.clone(), told.clone());
            tokio::spawn(async move {
                let Ok(client) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Ok((server, _)) = tokio_tungstenite::connect_async(upstream.as_str()).await
                else {
                    return;
                };
                let (mut c_tx, mut c_rx) = client.split();
                let (mut s_tx, mut s_rx) = server.split();
                let up = async {
                    while let Some(Ok(m)) = c_rx.next().await {
                        if let Some(v) = m
                            .to_text()
                            .ok()
                            .and_then(|t| serde_json::from_str::<Value>(t).ok())
                        {
                            log.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                            told.notify_waiters();
                        }
                        if s_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async {
                    while let Some(Ok(m)) = s_rx.next().await {
                        if c_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    WireTap { url, sent, more }
}

impl WireTap {
    /// The first message with `method` voxgate sent, waiting (bounded) for it.
    async fn first(&self, method: &str) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let more = self.more.notified();
                if let Some(v) = self.sent(method).into_iter().next() {
                    return v;
                }
                more.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("voxgate sent codex no {method}"))
    }

    fn sent(&self, method: &str) -> Vec<Value> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|v| v["method"] == method)
            .cloned()
            .collect()
    }
}

/// Each delegation's `turn/start` names its realtime thread and handoff (codex carries it into
/// its Responses request), and when the conversation ends voxgate unsubscribes from its codex
/// thread (seen on the wire between voxgate and codex).
#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn turns_carry_voxgate_metadata_and_an_ended_conversation_unsubscribes_its_codex_thread() {
    let Some(bin) = require_codex() else { return };
    let (responses, _codex, wire, h) = tapped_codex_gateway(&bin).await;
    let mut c = RpcClient::ready(h.addr).await;
    start(&mut c, "meta").await;
    say(&mut c, "meta", "delegate: tidy up").await;
    let req = responses.next_request().await;
    assert!(
        req.to_string().contains("voxgate_handoff_id"),
        "the turn's metadata reaches codex's model request: {req}"
    );
    let turn = wire.sent("turn/start").pop().expect("a turn/start");
    let metadata = &turn["params"]["responsesapiClientMetadata"];
    assert_eq!(metadata["voxgate_thread_id"], "meta", "{turn}");
    assert!(metadata["voxgate_handoff_id"].is_string(), "{turn}");
    let codex_thread = turn["params"]["threadId"].clone();
    // The task ends; then the conversation.
    model_says(&mut c, "Done.").await;
    c.request("thread/realtime/stop", json!({"threadId": "meta"}))
        .await;
    c.notification("thread/realtime/closed").await;
    let unsubscribed = wire.first("thread/unsubscribe").await;
    assert_eq!(
        Some(unsubscribed["params"]["threadId"].clone()),
        Some(codex_thread)
    );
}

/// With telemetry on, a delegated task's `turn/start` carries the conversation's W3C trace in
/// codex's `trace` field: the client's trace id, voxgate's conversation span as the parent.
#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn a_codex_turn_carries_the_conversations_trace() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let Some(bin) = require_codex() else { return };
    // This test's process exports its spans to a collector that is not there: what matters is
    // the trace context voxgate hands on, not the export.
    let telemetry = voxgate::config::TelemetryConfig {
        otlp_endpoint: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    };
    let (layer, _exporter) = voxgate::telemetry::layer::<tracing_subscriber::Registry>(&telemetry)
        .expect("telemetry layer")
        .expect("an endpoint is set");
    let _ = tracing_subscriber::registry().with(layer).try_init();
    let (_responses, _codex, wire, h) = tapped_codex_gateway(&bin).await;
    let mut c = RpcClient::ready(h.addr).await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    c.send_raw(
        json!({"id": 900, "method": "thread/realtime/start",
            "params": {"threadId": "traced", "outputModality": "audio"},
            "trace": {"traceparent": format!("00-{trace_id}-b7ad6b7169203331-01")}})
        .to_string(),
    )
    .await;
    c.notification("thread/realtime/started").await;
    say(&mut c, "traced", "delegate: tidy up").await;
    let turn = wire.first("turn/start").await;
    let tp = turn["trace"]["traceparent"].as_str().unwrap_or_default();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{turn}");
    assert_eq!(
        parts[1], trace_id,
        "codex's turn is in the client's trace: {turn}"
    );
    assert_ne!(
        parts[2], "b7ad6b7169203331",
        "its parent is voxgate's span: {turn}"
    );
    assert!(
        wire.sent("thread/start")
            .iter()
            .chain(wire.sent("thread/resume").iter())
            .all(|m| m.get("trace").is_none()),
        "only the task's turn carries it"
    );
    // codex takes the traced request: the turn runs and its answer comes back.
    model_says(&mut c, "Done.").await;
}

/// A codex app-server answering "Done." from a scripted Responses provider, behind a wire tap,
/// and a gateway delegating to it through the tap.
async fn tapped_codex_gateway(bin: &PathBuf) -> (ResponsesServer, CodexServer, WireTap, Harness) {
    let responses = ResponsesServer::start(vec![Reply::Messages(vec!["Done.".into()])]).await;
    let codex = spawn_codex(bin, &responses.base_url()).await;
    let wire = tap(&codex.url).await;
    let url = wire.url.clone();
    let h = harness_with(
        |_| {},
        move |cfg| {
            cfg.agent.kind = voxgate::config::AgentKind::Codex;
            cfg.agent.codex.url = url;
            cfg.agent.task_timeout_secs = 120;
        },
    )
    .await;
    (responses, codex, wire, h)
}

/// Read notifications until the model's transcript contains `text`.
async fn model_says(c: &mut RpcClient, text: &str) {
    loop {
        let m = c.next_message().await;
        if m["method"] == "thread/realtime/transcript/done"
            && m["params"]["text"]
                .as_str()
                .is_some_and(|t| t.contains(text))
        {
            return;
        }
    }
}
