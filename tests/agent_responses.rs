//! The `responses` agent backend against a scripted Responses server on loopback (streamed SSE).

mod common;

use common::responses_server::{Reply, ResponsesServer, input_texts};
use common::*;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Notify;
use voxgate::agent::responses::ResponsesAgent;
use voxgate::agent::{AgentCore, AgentTask};
use voxgate::config::ResponsesAgentConfig;
use voxgate::engine::TaskOutcome;

fn agent(server: &ResponsesServer) -> ResponsesAgent {
    ResponsesAgent::new(ResponsesAgentConfig {
        base_url: server.base_url(),
        model: "scripted-model".into(),
        api_key_env: "VOXGATE_TEST_UNSET_KEY".into(),
        instructions: Some("Be useful.".into()),
        max_history_items: 40,
    })
}

fn task(thread: &str, handoff: &str, text: &str) -> AgentTask {
    AgentTask {
        thread_id: thread.into(),
        handoff_id: handoff.into(),
        text: text.into(),
        traceparent: None,
    }
}
#[tokio::test]
async fn each_output_message_is_progress_and_the_request_is_streamed() {
    let server = ResponsesServer::start(vec![Reply::Messages(vec![
        "Looking.".into(),
        "Found 3 files.".into(),
    ])])
    .await;
    let mut h = agent(&server).start(task(
        "t",
        "h1",
        "<realtime_delegation>count</realtime_delegation>",
    ));
    let (msgs, outcome) = collect_task(&mut h).await;
    assert_eq!(msgs, vec!["Looking.", "Found 3 files."]);
    assert_eq!(outcome, TaskOutcome::Completed);
    let req = server.next_request().await;
    assert_eq!(req["model"], "scripted-model");
    assert_eq!(req["stream"], true);
    assert_eq!(req["instructions"], "Be useful.");
    assert_eq!(
        input_texts(&req),
        vec!["<realtime_delegation>count</realtime_delegation>"]
    );
}

#[tokio::test]
async fn a_second_task_on_the_thread_carries_the_history() {
    let server = ResponsesServer::start(vec![
        Reply::Messages(vec!["The build is green.".into()]),
        Reply::Messages(vec!["Deployed.".into()]),
    ])
    .await;
    let a = agent(&server);
    collect_task(&mut a.start(task("t", "h1", "check the build"))).await;
    let (msgs, _) = collect_task(&mut a.start(task("t", "h2", "then deploy it"))).await;
    assert_eq!(msgs, vec!["Deployed."]);
    server.next_request().await;
    let second = server.next_request().await;
    assert_eq!(
        input_texts(&second),
        vec!["check the build", "The build is green.", "then deploy it"]
    );
    assert_eq!(second["input"][1]["role"], "assistant");
    // Another thread starts clean.
    collect_task(&mut a.start(task("other", "h3", "fresh"))).await;
    assert_eq!(input_texts(&server.next_request().await), vec!["fresh"]);
}

#[tokio::test]
async fn http_500_fails_the_task_with_the_status() {
    let server = ResponsesServer::start(vec![Reply::Status(500)]).await;
    let (msgs, outcome) = collect_task(&mut agent(&server).start(task("t", "h", "x"))).await;
    assert!(msgs.is_empty());
    let TaskOutcome::Failed(m) = outcome else {
        panic!("expected failure, got {outcome:?}")
    };
    assert!(m.contains("HTTP 500"), "{m}");
}

#[tokio::test]
async fn cancel_mid_stream_ends_cancelled() {
    let release = Arc::new(Notify::new());
    let server =
        ResponsesServer::start(vec![Reply::Hold(release.clone(), vec!["late".into()])]).await;
    let mut h = agent(&server).start(task("t", "h", "x"));
    server.next_request().await;
    h.cancel();
    let (msgs, outcome) = collect_task(&mut h).await;
    assert!(msgs.is_empty());
    assert_eq!(outcome, TaskOutcome::Cancelled);
}

#[tokio::test]
async fn steering_during_a_stream_becomes_a_follow_up_request() {
    let release = Arc::new(Notify::new());
    let server = ResponsesServer::start(vec![
        Reply::Hold(release.clone(), vec!["first part".into()]),
        Reply::Messages(vec!["second part".into()]),
    ])
    .await;
    let mut h = agent(&server).start(task("t", "h", "do a"));
    server.next_request().await;
    h.steer("also b".into());
    release.notify_one();
    let (msgs, outcome) = collect_task(&mut h).await;
    assert_eq!(msgs, vec!["first part", "second part"]);
    assert_eq!(outcome, TaskOutcome::Completed);
    assert_eq!(
        input_texts(&server.next_request().await),
        vec!["do a", "first part", "also b"]
    );
}

async fn delegated_harness(server: &ResponsesServer, timeout_secs: u64) -> Harness {
    let base = server.base_url();
    harness_with(
        |_| {},
        move |cfg| {
            cfg.agent.responses.base_url = base;
            cfg.agent.responses.api_key_env = "VOXGATE_TEST_UNSET_KEY".into();
            cfg.agent.task_timeout_secs = timeout_secs;
        },
    )
    .await
}
#[tokio::test]
async fn a_session_can_choose_the_responses_backend_and_gets_backend_progress() {
    let server = ResponsesServer::start(vec![Reply::Messages(vec!["Found 3 files.".into()])]).await;
    let h = delegated_harness(&server, 60).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "agent": "responses"}))
        .await;
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: count the files"}),
    )
    .await;
    let (seen, output) = until_function_output(&mut frames).await;
    assert!(
        seen.iter()
            .any(|f| f["item"]["content"][0]["text"] == "[BACKEND] Found 3 files."),
        "{seen:?}"
    );
    assert!(
        output["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("finished"))
    );
    assert_eq!(frames.next_frame().await, r#"{"type":"response.create"}"#);
    let req = server.next_request().await;
    assert_eq!(
        input_texts(&req),
        vec![
            "<realtime_delegation>\n  <input>count the files</input>\n  <transcript_delta>user: count the files</transcript_delta>\n</realtime_delegation>"
        ]
    );
}

#[tokio::test]
async fn responses_task_timeout_resolves_the_call() {
    let release = Arc::new(Notify::new());
    let server = ResponsesServer::start(vec![Reply::Hold(release, vec![])]).await;
    let h = delegated_harness(&server, 1).await;
    let mut frames = SimFrames::new(&h.sim);
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "agent": "responses"}))
        .await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t", "text": "delegate: slow"}),
    )
    .await;
    let (_, output) = until_function_output(&mut frames).await;
    assert_eq!(
        output["item"]["output"],
        "The background agent could not finish the task: timed out after 1s"
    );
}

#[tokio::test]
async fn an_unconfigured_backend_is_a_setup_error() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t", "outputModality": "audio", "agent": "codex"}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert_eq!(
        err["message"],
        "agent backend `codex` is not configured (set [agent.codex] in the config)"
    );
}
