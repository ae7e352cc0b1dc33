//! The `webhook` agent backend against a real HTTP receiver on loopback: signature, NDJSON order,
//! malformed lines, errors, steering, cancel and timeout.

mod common;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use common::*;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};
use voxgate::agent::webhook::WebhookAgent;
use voxgate::agent::{AgentCore, AgentTask, AgentUpdate};
use voxgate::config::WebhookAgentConfig;
use voxgate::engine::TaskOutcome;

const SECRET: &str = "whsec-test";

#[derive(Clone)]
enum Reply {
    Lines(Vec<String>),
    /// First lines now, the rest after the notify.
    Hold(Vec<String>, Arc<Notify>, Vec<String>),
}

struct Receiver {
    script: Mutex<VecDeque<Reply>>,
    seen: mpsc::UnboundedSender<(Value, bool)>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    // Verify exactly as a receiver would: HMAC-SHA256 over the raw body with the shared secret.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let verified = headers
        .get("x-voxgate-signature")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    let _ = r.seen.send((
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
    ));
    let reply = r
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Reply::Lines(vec![r#"{"type":"done"}"#.into()]));
    let body = match reply {
        Reply::Lines(lines) => {
            Body::from(lines.iter().map(|l| format!("{l}\n")).collect::<String>())
        }
        Reply::Hold(first, release, rest) => {
            let a = futures_util::stream::once(async move {
                Ok::<_, std::convert::Infallible>(Bytes::from(
                    first.iter().map(|l| format!("{l}\n")).collect::<String>(),
                ))
            });
            let b = futures_util::stream::once(async move {
                release.notified().await;
                Ok::<_, std::convert::Infallible>(Bytes::from(
                    rest.iter().map(|l| format!("{l}\n")).collect::<String>(),
                ))
            });
            Body::from_stream(futures_util::StreamExt::chain(a, b))
        }
    };
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .expect("response")
}

struct Hook {
    url: String,
    seen: mpsc::UnboundedReceiver<(Value, bool)>,
    _task: tokio::task::JoinHandle<()>,
}

async fn hook(script: Vec<Reply>) -> Hook {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Arc::new(Receiver {
        script: Mutex::new(script.into()),
        seen: tx,
    });
    let app = Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Hook {
        url,
        seen: rx,
        _task: task,
    }
}

impl Hook {
    fn agent(&self) -> WebhookAgent {
        WebhookAgent::new(&WebhookAgentConfig {
            url: self.url.clone(),
            secret: Some(SECRET.into()),
            secret_env: None,
        })
    }
    async fn next_post(&mut self) -> (Value, bool) {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("post in time")
            .expect("receiver alive")
    }
}

fn task(text: &str) -> AgentTask {
    AgentTask {
        thread_id: "thread-1".into(),
        handoff_id: "call_1".into(),
        text: text.into(),
        traceparent: None,
    }
}
fn msg(t: &str) -> String {
    json!({"type": "message", "text": t}).to_string()
}

#[tokio::test]
async fn signed_post_and_progress_in_order() {
    let mut hook = hook(vec![Reply::Lines(vec![
        msg("one"),
        msg("two"),
        msg("three"),
        r#"{"type":"done"}"#.into(),
    ])])
    .await;
    let mut h = hook
        .agent()
        .start(task("<realtime_delegation>x</realtime_delegation>"));
    let (msgs, outcome) = collect_task(&mut h).await;
    assert_eq!(msgs, vec!["one", "two", "three"]);
    assert_eq!(outcome, TaskOutcome::Completed);
    let (body, verified) = hook.next_post().await;
    assert!(verified, "signature must verify");
    assert_eq!(
        body,
        json!({"threadId": "thread-1", "handoffId": "call_1", "text": "<realtime_delegation>x</realtime_delegation>", "steer": false})
    );
}

#[tokio::test]
async fn malformed_line_fails_the_task_clearly() {
    let hook = hook(vec![Reply::Lines(vec![
        msg("ok"),
        "this is not json".into(),
        msg("never"),
    ])])
    .await;
    let (msgs, outcome) = collect_task(&mut hook.agent().start(task("x"))).await;
    assert_eq!(msgs, vec!["ok"]);
    assert_eq!(
        outcome,
        TaskOutcome::Failed("the webhook sent a line that is not JSON: this is not json".into())
    );
}

#[tokio::test]
async fn error_line_and_missing_done_fail_the_task() {
    let hook1 = hook(vec![Reply::Lines(vec![
        r#"{"type":"error","message":"repo not found"}"#.into(),
    ])])
    .await;
    let (_, outcome) = collect_task(&mut hook1.agent().start(task("x"))).await;
    assert_eq!(outcome, TaskOutcome::Failed("repo not found".into()));
    let hook2 = hook(vec![Reply::Lines(vec![msg("partial")])]).await;
    let (_, outcome) = collect_task(&mut hook2.agent().start(task("x"))).await;
    assert_eq!(
        outcome,
        TaskOutcome::Failed("the webhook stream ended without a done line".into())
    );
}

#[tokio::test]
async fn unsigned_when_no_secret_and_http_errors_fail() {
    let mut hook = hook(vec![]).await;
    let agent = WebhookAgent::new(&WebhookAgentConfig {
        url: hook.url.clone(),
        secret: None,
        secret_env: None,
    });
    collect_task(&mut agent.start(task("x"))).await;
    let (_, verified) = hook.next_post().await;
    assert!(!verified);
    let bad = WebhookAgent::new(&WebhookAgentConfig {
        url: format!("{}/missing", hook.url),
        secret: None,
        secret_env: None,
    });
    let (_, outcome) = collect_task(&mut bad.start(task("x"))).await;
    assert_eq!(
        outcome,
        TaskOutcome::Failed("the webhook returned HTTP 404".into())
    );
}

#[tokio::test]
async fn steering_posts_with_steer_true_and_forwards_its_messages() {
    let release = Arc::new(Notify::new());
    let mut hook = hook(vec![
        Reply::Hold(
            vec![msg("started")],
            release.clone(),
            vec![msg("finished"), r#"{"type":"done"}"#.into()],
        ),
        Reply::Lines(vec![msg("noted the change"), r#"{"type":"done"}"#.into()]),
    ])
    .await;
    let mut h = hook.agent().start(task("first"));
    assert_eq!(
        tokio::time::timeout(WAIT, h.next()).await.expect("in time"),
        AgentUpdate::Message("started".into())
    );
    hook.next_post().await;
    h.steer("second thought".into());
    let (steer_body, verified) = hook.next_post().await;
    assert!(verified);
    assert_eq!(steer_body["steer"], true);
    assert_eq!(steer_body["text"], "second thought");
    assert_eq!(
        tokio::time::timeout(WAIT, h.next()).await.expect("in time"),
        AgentUpdate::Message("noted the change".into())
    );
    release.notify_one();
    let (msgs, outcome) = collect_task(&mut h).await;
    assert_eq!(msgs, vec!["finished"]);
    assert_eq!(outcome, TaskOutcome::Completed);
}

#[tokio::test]
async fn cancel_ends_a_running_webhook_task() {
    let release = Arc::new(Notify::new());
    let mut hook = hook(vec![Reply::Hold(vec![], release, vec![])]).await;
    let mut h = hook.agent().start(task("x"));
    hook.next_post().await;
    h.cancel();
    assert_eq!(collect_task(&mut h).await.1, TaskOutcome::Cancelled);
}

#[tokio::test]
async fn webhook_task_timeout_resolves_the_call_in_a_session() {
    let release = Arc::new(Notify::new());
    let hook = hook(vec![Reply::Hold(vec![msg("working")], release, vec![])]).await;
    let url = hook.url.clone();
    let h = harness_with(
        |_| {},
        move |cfg| {
            cfg.agent.kind = voxgate::config::AgentKind::Webhook;
            cfg.agent.webhook.url = url;
            cfg.agent.task_timeout_secs = 1;
        },
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio"}))
        .await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: long job"}),
    )
    .await;
    let mut seen = Vec::new();
    let output = loop {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        if f["item"]["type"] == "function_call_output" {
            break f;
        }
        seen.push(f);
    };
    assert!(
        seen.iter()
            .any(|f| f["item"]["content"][0]["text"] == "[BACKEND] working"),
        "{seen:?}"
    );
    assert_eq!(
        output["item"]["output"],
        "The background agent could not finish the task: timed out after 1s"
    );
}

/// GPT-Live (v3) upstream: the model's delegation goes to the webhook; its progress lines are
/// silent context (`session.thinking.append`) and its result is said
/// (`session.commentary.append`), both naming the delegation.
#[tokio::test]
async fn a_v3_delegation_runs_on_the_webhook_and_answers_the_gpt_live_way() {
    let mut hook = hook(vec![Reply::Lines(vec![
        msg("looking"),
        msg("3 files"),
        r#"{"type":"done"}"#.into(),
    ])])
    .await;
    let url = hook.url.clone();
    let h = harness_with(
        |_| {},
        move |cfg| {
            cfg.agent.kind = voxgate::config::AgentKind::Webhook;
            cfg.agent.webhook.url = url;
            cfg.agent.webhook.secret = Some(SECRET.into());
        },
    )
    .await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "version": "v3"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: count the files"}),
    )
    .await;
    let (post, verified) = hook.next_post().await;
    assert!(verified, "signed");
    assert!(
        post["text"]
            .as_str()
            .is_some_and(|t| t.contains("count the files")),
        "{post}"
    );
    let delegation_id = post["handoffId"].as_str().expect("handoff id").to_owned();
    let mut thinking = Vec::new();
    let commentary = loop {
        let f: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
        match f["type"].as_str() {
            Some("session.thinking.append") => thinking.push(f),
            Some("session.commentary.append") if f["delegation_id"] == delegation_id.as_str() => {
                break f;
            }
            _ => {}
        }
    };
    let contents: Vec<&str> = thinking
        .iter()
        .filter(|f| f["delegation_id"] == delegation_id.as_str())
        .filter_map(|f| f["content"].as_str())
        .collect();
    assert!(
        contents.contains(&"looking") && contents.contains(&"3 files"),
        "{thinking:?}"
    );
    assert!(commentary["content"].is_string(), "{commentary}");
    // The model says it: the person hears a reply.
    loop {
        let done = c.notification("thread/realtime/transcript/done").await;
        if done["role"] == "assistant" && done["text"].as_str().is_some_and(|t| !t.is_empty()) {
            break;
        }
    }
}
