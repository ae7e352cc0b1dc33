//! The codex CLI (npm, pinned) as a client of voxgate's OpenAI-compatible face: `codex
//! app-server` with `experimental_realtime_ws_base_url` pointing at voxgate runs
//! `thread/realtime/start` (v2 and v1 on `/v1/realtime`, v3 on `/v1/live`) through voxgate to
//! the simulator. codex does its own delegation, so voxgate runs with `[openai] delegation =
//! false`: on v1/v2 its tools pass through; on v3 delegations reach codex as GPT-Live
//! `delegation.created` and its answers come back as `delegation.context.append`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn codex_bin() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/node_modules");
    let native = root.join("@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
    if native.exists() {
        return Some(native);
    }
    assert!(
        std::env::var("CI").is_err(),
        "codex CLI missing in CI: run `npm ci --prefix e2e`"
    );
    eprintln!("SKIPPING codex-as-client e2e: run `npm ci --prefix e2e`");
    None
}

/// Run a text turn through codex (start, appendText, stop) with voxgate as its realtime
/// upstream; the notifications codex sent its client (audio left out), or None when codex is
/// not installed.
async fn run_codex_realtime(version: &str) -> Option<Vec<Value>> {
    let bin = codex_bin()?;
    let h = harness_with(|_| {}, |cfg| cfg.openai.delegation = false).await;
    let mut records = h.sim.records();
    // codex's own model (its delegations' turns): a scripted Responses server. codex refuses
    // realtime unless its model provider names an `env_key`.
    let responses = common::responses_server::ResponsesServer::start(vec![
        common::responses_server::Reply::Messages(vec!["There are 3 files.".into()]),
    ])
    .await;
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("codex-client-{version}-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("config.toml"),
        format!(
            r#"model = "scripted-model"
model_provider = "scripted"
approval_policy = "never"
sandbox_mode = "read-only"
experimental_realtime_ws_base_url = "http://{}/v1"

[realtime]
version = "{version}"

[model_providers.scripted]
name = "scripted"
base_url = "{}"
wire_api = "responses"
env_key = "SCRIPTED_PROVIDER_KEY"
request_max_retries = 0
stream_max_retries = 0
"#,
            h.addr,
            responses.base_url()
        ),
    )
    .expect("config");
    let mut child = tokio::process::Command::new(bin)
        .args(["app-server", "--listen", "ws://127.0.0.1:0"])
        .env("CODEX_HOME", &home)
        .env("OPENAI_API_KEY", "sk-codex-as-client")
        .env("SCRIPTED_PROVIDER_KEY", "sk-scripted")
        .env("RUST_LOG", "warn")
        .current_dir(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("codex app-server");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = tokio::time::timeout(WAIT * 3, lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("open");
        if let Some(i) = line.find("listening on: ") {
            break line[i + "listening on: ".len()..].trim().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("codex ws");
    let mut next_id = 0;
    let mut call =
        async |ws: &mut tokio_tungstenite::WebSocketStream<_>, method: &str, params: Value| {
            next_id += 1;
            ws.send(Message::text(
                json!({"id": next_id, "method": method, "params": params}).to_string(),
            ))
            .await
            .expect("send");
            next_id
        };
    let mut seen = Vec::new();
    let until = async |ws: &mut tokio_tungstenite::WebSocketStream<_>,
                       seen: &mut Vec<Value>,
                       pred: &dyn Fn(&Value) -> bool|
           -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT * 2, ws.next())
                .await
                .expect("codex message in time")
                .expect("open")
                .expect("frame");
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            assert!(
                v["method"] != "thread/realtime/error",
                "codex reported a realtime error: {v}"
            );
            if v.get("id").is_none() && v["method"] != "thread/realtime/outputAudio/delta" {
                seen.push(v.clone());
            }
            if pred(&v) {
                return v;
            }
        }
    };
    let id = call(&mut ws, "initialize", json!({"clientInfo": {"name": "voxgate-e2e", "version": "1"}, "capabilities": {"experimentalApi": true}})).await;
    until(&mut ws, &mut seen, &|v| v["id"] == id).await;
    let id = call(&mut ws, "thread/start", json!({})).await;
    let started = until(&mut ws, &mut seen, &|v| v["id"] == id).await;
    let thread = started["result"]["thread"]["id"]
        .as_str()
        .expect("thread id")
        .to_owned();
    call(
        &mut ws,
        "thread/realtime/start",
        json!({"threadId": thread, "outputModality": "audio"}),
    )
    .await;
    let rt_started = until(&mut ws, &mut seen, &|v| {
        v["method"] == "thread/realtime/started"
    })
    .await;
    assert_eq!(rt_started["params"]["version"], version);
    call(
        &mut ws,
        "thread/realtime/appendText",
        json!({"threadId": thread, "text": "hello voxgate"}),
    )
    .await;
    let done = until(&mut ws, &mut seen, &|v| {
        v["method"] == "thread/realtime/transcript/done" && v["params"]["role"] == "assistant"
    })
    .await;
    assert_eq!(done["params"]["text"], "You said: hello voxgate");
    if version == "v3" {
        // Speakable text (`session.context.append` on the speakable channel) is said…
        call(
            &mut ws,
            "thread/realtime/appendSpeech",
            json!({"threadId": thread, "text": "the build is green"}),
        )
        .await;
        until(&mut ws, &mut seen, &|v| {
            v["method"] == "thread/realtime/transcript/done"
                && v["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("the build is green"))
        })
        .await;
        // …and a delegation goes to codex (GPT-Live `client` mode, as voxgate runs with
        // `[openai] delegation = false`): codex does the work on its own model and the model
        // behind voxgate speaks what codex found.
        call(
            &mut ws,
            "thread/realtime/appendText",
            json!({"threadId": thread, "text": "delegate: count the files"}),
        )
        .await;
        let request = tokio::time::timeout(WAIT * 3, responses.next_request())
            .await
            .expect("codex ran the delegation on its model");
        assert!(
            common::responses_server::input_texts(&request)
                .iter()
                .any(|t| t.contains("count the files")),
            "{request}"
        );
        until(&mut ws, &mut seen, &|v| {
            v["method"] == "thread/realtime/transcript/done"
                && v["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("There are 3 files."))
        })
        .await;
        let metrics = voxgate::metrics::render();
        assert!(
            metrics.contains(r#"voxgate_sessions_started_total{face="live_ws"} 1"#),
            "codex came in through the /v1/live face"
        );
    }
    call(&mut ws, "thread/realtime/stop", json!({"threadId": thread})).await;
    let closed = until(&mut ws, &mut seen, &|v| {
        v["method"] == "thread/realtime/closed"
    })
    .await;
    assert_eq!(closed["params"]["reason"], "requested");

    // voxgate reached the simulator with the right wire version.
    let mut path = None;
    while let Ok(Ok(r)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), records.recv()).await
    {
        if let voxgate::simulator::SimRecord::Connected { path_and_query, .. } = r {
            path = Some(path_and_query);
            break;
        }
    }
    let path = path.expect("voxgate connected upstream");
    assert_eq!(
        path.contains("intent=quicksilver"),
        version == "v1",
        "{path}"
    );
    Some(seen)
}

/// The realtime notifications of a conversation as a client renders them: method, and for
/// timeline items their type, role, text and outcome (ids and timestamps differ by nature).
fn timeline_shape(notifications: &[Value]) -> Vec<String> {
    notifications
        .iter()
        .filter(|v| {
            v["method"].as_str().is_some_and(|m| {
                m.starts_with("thread/realtime/")
                    && m != "thread/realtime/itemAdded"
                    && m != "thread/realtime/outputAudio/delta"
            })
        })
        .map(|v| {
            let p = &v["params"];
            let item = &p["item"];
            format!(
                "{} {} {} {} {} {}",
                v["method"].as_str().unwrap_or_default(),
                item["type"].as_str().unwrap_or_default(),
                item["role"]
                    .as_str()
                    .or(p["role"].as_str())
                    .unwrap_or_default(),
                item["text"]
                    .as_str()
                    .or(p["text"].as_str())
                    .unwrap_or_default(),
                item["outcome"]
                    .as_str()
                    .or(p["reason"].as_str())
                    .unwrap_or_default(),
                p["delta"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// codex runs a v2 session through voxgate; then the same conversation on voxgate's own JSON-RPC
/// face must give its client what codex gave its own: the same timeline, in the same order.
#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn codex_runs_a_v2_realtime_session_through_voxgate_and_voxgate_emits_codexs_timeline() {
    let Some(codex) = run_codex_realtime("v2").await else {
        return;
    };
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    let mut ours = Vec::new();
    let mut collect_until = async |c: &mut RpcClient, pred: &dyn Fn(&Value) -> bool| loop {
        let v = c.next_message().await;
        if v.get("id").is_some() {
            continue;
        }
        let done = pred(&v);
        ours.push(v);
        if done {
            return;
        }
    };
    collect_until(&mut c, &|v| v["method"] == "thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "hello voxgate"}),
    )
    .await;
    collect_until(&mut c, &|v| {
        v["method"] == "thread/realtime/transcript/done" && v["params"]["role"] == "assistant"
    })
    .await;
    c.request("thread/realtime/stop", json!({"threadId": "t"}))
        .await;
    collect_until(&mut c, &|v| v["method"] == "thread/realtime/closed").await;
    let (want, got) = (timeline_shape(&codex), timeline_shape(&ours));
    assert!(
        want.iter().any(|l| l.contains("item/transcript/delta")),
        "codex streamed a transcript item: {want:#?}"
    );
    assert_eq!(got, want, "voxgate's timeline differs from codex's");
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn codex_runs_a_v1_realtime_session_through_voxgate() {
    run_codex_realtime("v1").await;
}

/// codex 0.169 with `[realtime] version = "v3"` opens voxgate's `/v1/live` (its frameless
/// GPT-Live dialect): text, speech and a delegation voxgate's agent runs.
#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn codex_runs_a_v3_realtime_session_through_voxgates_live_face() {
    run_codex_realtime("v3").await;
}

/// codex 0.169's generated JSON schema (`generate-json-schema --experimental`), written once per
/// test process.
fn codex_schema_dir(bin: &std::path::Path) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("codex-schema-{}", std::process::id()));
        let status = std::process::Command::new(bin)
            .args([
                "app-server",
                "generate-json-schema",
                "--experimental",
                "--out",
            ])
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run codex");
        assert!(status.success(), "codex generate-json-schema");
        out
    })
    .clone()
}

/// The `required` list of one definition in codex 0.169's generated JSON schema.
fn codex_schema_required(bin: &std::path::Path, definition: &str) -> Vec<String> {
    let out = codex_schema_dir(bin);
    for dir in [out.clone(), out.join("v1"), out.join("v2")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let def = if v["title"] == definition {
                v.clone()
            } else {
                v["definitions"][definition].clone()
            };
            if let Some(req) = def["required"].as_array() {
                return req
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect();
            }
        }
    }
    panic!("no {definition} in codex's schema");
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn initialize_answers_what_codex_requires_and_takes_null_opt_outs() {
    let Some(bin) = codex_bin() else { return };
    let required = codex_schema_required(&bin, "InitializeResponse");
    assert!(required.contains(&"codexHome".to_owned()), "{required:?}");
    let h = harness().await;
    let mut c = RpcClient::connect(h.addr).await;
    let r = c
        .request(
            "initialize",
            json!({"clientInfo": {"name": "codex-like", "version": "0.169.0"},
                "capabilities": {"experimentalApi": true, "optOutNotificationMethods": null}}),
        )
        .await;
    let result = &r["result"];
    for field in &required {
        assert!(result.get(field).is_some(), "missing {field}: {r}");
    }
    assert!(
        result["codexHome"]
            .as_str()
            .is_some_and(|p| p.starts_with('/')),
        "{r}"
    );
}
