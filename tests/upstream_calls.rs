//! Passthrough call creation against a real HTTP server standing in for the model service's
//! calls endpoint: 5xx and 429 are retried with backoff (three attempts in all), other errors
//! are not, and a success without a usable `Location` is a clear error. Over JSON-RPC a failed
//! create is an `error` and no `closed` (no call ever existed).

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A calls endpoint that answers each POST with the next scripted (status, Location) and counts.
async fn scripted(replies: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Mutex<usize>>) {
    let seen = Arc::new(Mutex::new(0usize));
    let script = Arc::new(Mutex::new(replies.into_iter()));
    let counter = seen.clone();
    let app = axum::Router::new().route(
        "/v1/realtime/calls",
        axum::routing::post(move || {
            let (script, counter) = (script.clone(), counter.clone());
            async move {
                *counter.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                let next = script.lock().unwrap_or_else(|e| e.into_inner()).next();
                let (status, location) = next.unwrap_or((500, None));
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let body = if status.is_success() {
                    "v=0 (answer)".to_owned()
                } else {
                    json!({"error": {"message": "scripted trouble"}}).to_string()
                };
                let mut resp = (status, body).into_response();
                if let Some(l) = location {
                    resp.headers_mut()
                        .insert("location", l.parse().expect("header"));
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen)
}

async fn create(base: &str) -> Result<(String, String), voxgate::upstream::call::CallCreateError> {
    voxgate::upstream::call::create_call(
        &reqwest::Client::new(),
        base,
        Some("sk-test"),
        &relay_offer(),
        None,
    )
    .await
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_until_the_call_is_created() {
    let (base, seen) = scripted(vec![
        (503, None),
        (429, None),
        (201, Some("/v1/realtime/calls/rtc_scripted1")),
    ])
    .await;
    let (answer, call_id) = create(&base).await.expect("created on the third attempt");
    assert_eq!(
        (answer.as_str(), call_id.as_str()),
        ("v=0 (answer)", "rtc_scripted1")
    );
    assert_eq!(*seen.lock().expect("count"), 3);
}

#[tokio::test]
async fn retries_end_after_three_attempts_and_client_errors_are_not_retried() {
    let (base, seen) = scripted(vec![(500, None), (500, None), (500, None), (500, None)]).await;
    let err = create(&base).await.expect_err("fails");
    assert_eq!(err.status, Some(500));
    assert!(err.message.contains("scripted trouble"), "{err}");
    assert_eq!(*seen.lock().expect("count"), 3);

    let (base, seen) = scripted(vec![(400, None)]).await;
    let err = create(&base).await.expect_err("fails");
    assert_eq!(err.status, Some(400));
    assert_eq!(*seen.lock().expect("count"), 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_created_call_without_a_usable_location_is_a_clear_error() {
    let (base, _) = scripted(vec![(201, None)]).await;
    let err = create(&base).await.expect_err("no Location");
    assert_eq!(err.message, "realtime call response missing Location");
    let (base, _) = scripted(vec![(201, Some("/v1/realtime/calls/not-an-id"))]).await;
    let err = create(&base).await.expect_err("no call id");
    assert!(err.message.contains("does not contain a call id"), "{err}");
}

#[tokio::test]
async fn a_failed_call_create_over_json_rpc_is_an_error_and_no_closed() {
    let h = harness().await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(
        json!({"threadId": "pt", "outputModality": "audio", "prompt": "sim:fail500",
        "webrtcMode": "passthrough", "transport": {"type": "webrtc", "sdp": relay_offer()}}),
    )
    .await;
    let (seen, err) = c.methods_until("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 500")),
        "{err}"
    );
    assert!(
        !seen.contains(&"thread/realtime/sdp".to_owned()),
        "{seen:?}"
    );
    c.barrier().await;
    c.assert_nothing_else();
    assert!(!h.app.sessions.is_running("anonymous", "pt"));
}

/// The sideband join of a passthrough call is retried as configured
/// (`[upstream] sideband_join_attempts`), then the call fails: `error`, then `closed{error}`.
#[tokio::test]
async fn a_refused_sideband_join_is_tried_as_often_as_configured() {
    let h = harness_with(
        |sim| sim.reject_sideband = true,
        |cfg| {
            cfg.upstream.sideband_join_attempts = 2;
            cfg.upstream.sideband_join_backoff_ms = 10;
        },
    )
    .await;
    let mut records = h.sim.records();
    let mut c = RpcClient::ready(h.addr).await;
    c.start(
        json!({"threadId": "sb", "outputModality": "audio", "webrtcMode": "passthrough",
        "transport": {"type": "webrtc", "sdp": relay_offer()}}),
    )
    .await;
    c.notification("thread/realtime/sdp").await;
    c.notification("thread/realtime/error").await;
    assert_eq!(
        c.notification("thread/realtime/closed").await["reason"],
        "error"
    );
    let mut joins = 0;
    while let Ok(r) = records.try_recv() {
        if let voxgate::simulator::SimRecord::Connected { path_and_query, .. } = r
            && path_and_query.contains("call_id=")
        {
            joins += 1;
        }
    }
    assert_eq!(joins, 2);
}

/// Hanging up a passthrough call hangs it up upstream too (the caller's media goes to the
/// service directly: it must end there), as it does when the conversation ends any other way.
#[tokio::test]
async fn a_passthrough_hang_up_is_forwarded_to_the_upstream_call() {
    let h = harness().await;
    let mut records = h.sim.records();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/realtime/calls?mode=passthrough",
            h.addr
        ))
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned();
    let call_id = location.rsplit('/').next().expect("id").to_owned();
    let hung = reqwest::Client::new()
        .delete(format!("http://{}{location}", h.addr))
        .send()
        .await
        .expect("delete");
    assert_eq!(hung.status().as_u16(), 200);
    let upstream = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(voxgate::simulator::SimRecord::CallHungUp { call_id }) = records.recv().await
            {
                return call_id;
            }
        }
    })
    .await
    .expect("the upstream call was hung up");
    assert_eq!(upstream, call_id);
}

#[tokio::test]
async fn an_existing_call_is_joined_over_its_sideband_and_its_conversation_runs() {
    let h = harness().await;
    let mut frames = SimFrames::new(&h.sim);
    // A call negotiated with the service by someone else (a browser with a client secret).
    let (_answer, call_id) = create(&h.sim.base_url()).await.expect("call created");
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t1", "outputModality": "audio",
        "transport": {"type": "existingCall", "callId": call_id}}))
        .await;
    let path = loop {
        if let voxgate::simulator::SimRecord::Connected { path_and_query, .. } =
            frames.next_connected().await
        {
            break path_and_query;
        }
    };
    assert_eq!(path, format!("/v1/realtime?call_id={call_id}"));
    c.notification("thread/realtime/started").await;
    c.request(
        "thread/realtime/appendText",
        json!({"threadId": "t1", "text": "hello call"}),
    )
    .await;
    loop {
        let done = c.notification("thread/realtime/transcript/done").await;
        if done["role"] == "assistant" {
            assert_eq!(done["text"], "You said: hello call");
            break;
        }
    }
    c.request("thread/realtime/stop", json!({"threadId": "t1"}))
        .await;
    assert_eq!(
        c.notification("thread/realtime/closed").await["reason"],
        "requested"
    );
}

#[tokio::test]
async fn an_existing_call_the_service_does_not_know_is_an_error_naming_it() {
    let h = harness_with(
        |_| {},
        |cfg| {
            cfg.upstream.sideband_join_attempts = 2;
            cfg.upstream.sideband_join_backoff_ms = 10;
        },
    )
    .await;
    let mut c = RpcClient::ready(h.addr).await;
    c.start(json!({"threadId": "t1", "outputModality": "audio",
        "transport": {"type": "existingCall", "callId": "rtc_nobody"}}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("404")),
        "{err}"
    );
    // An id that cannot be a call id never reaches the service.
    c.start(json!({"threadId": "t2", "outputModality": "audio",
        "transport": {"type": "existingCall", "callId": "rtc_1?x=1&y"}}))
        .await;
    let err = c.notification("thread/realtime/error").await;
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("existingCall needs the call id")),
        "{err}"
    );
}
