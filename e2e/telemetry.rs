//! OpenTelemetry end to end: the real `voxgate serve` binary with `[telemetry] otlp_endpoint`
//! pointed at an OTLP/HTTP receiver this test runs (it decodes the protobuf export requests with
//! the OpenTelemetry protocol's own types), a JSON-RPC client that sends a W3C `trace` with its
//! start, and a webhook agent that records the `traceparent` it is called with. The request span
//! joins the client's trace, the conversation's span is its child, and the agent is called inside
//! that trace. Without an exporter, the agent is called with the client's own `traceparent`.

#[path = "../tests/common/mod.rs"]
mod common;

use axum::body::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone)]
struct SpanSeen {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attrs: HashMap<String, String>,
    service: String,
}

type Spans = Arc<Mutex<Vec<SpanSeen>>>;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An OTLP/HTTP traces receiver on an ephemeral port; what it received.
async fn otlp_receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                assert_eq!(
                    headers.get("content-type").and_then(|v| v.to_str().ok()),
                    Some("application/x-protobuf")
                );
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut seen = store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref()?.value.clone())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s,
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let attrs = span
                            .attributes
                            .iter()
                            .filter_map(|kv| {
                                let v = match kv.value.as_ref()?.value.as_ref()? {
                                    AnyValue::StringValue(s) => s.clone(),
                                    AnyValue::IntValue(i) => i.to_string(),
                                    AnyValue::BoolValue(b) => b.to_string(),
                                    other => format!("{other:?}"),
                                };
                                Some((kv.key.clone(), v))
                            })
                            .collect();
                        seen.push(SpanSeen {
                            name: span.name,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            attrs,
                            service: service.clone(),
                        });
                    }
                }
                // An empty ExportTraceServiceResponse.
                (axum::http::StatusCode::OK, Vec::new())
            }
        }),
    );
    (format!("http://{}", serve_here(app).await), spans)
}

/// Serve `app` on an ephemeral loopback port; its address.
async fn serve_here(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A webhook agent that answers every task at once and records each call's `traceparent`.
async fn webhook() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let calls: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let store = calls.clone();
    let app = axum::Router::new().route(
        "/agent",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(
                        headers
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    );
                "{\"type\":\"message\",\"text\":\"the build is green\"}\n{\"type\":\"done\"}\n"
            }
        }),
    );
    (format!("http://{}/agent", serve_here(app).await), calls)
}

/// The real binary (with `env` added) and a webhook agent: a JSON-RPC client starts a
/// conversation with a W3C `trace`, has it delegate once and stops it. The gateway (still
/// running) and the `traceparent` of each call the webhook got.
async fn traced_delegation(env: &[(&str, &str)]) -> (tokio::process::Child, Vec<Option<String>>) {
    let (hook, calls) = webhook().await;
    let mut gw = voxgate_bin(env!("CARGO_BIN_EXE_voxgate"));
    gw.args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .env("VOXGATE_AGENT__KIND", "webhook")
        .env("VOXGATE_AGENT__WEBHOOK__URL", &hook);
    let mut gw = gw.spawn().expect("spawn voxgate");
    let mut lines = BufReader::new(gw.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("listening in time")
            .expect("read")
            .expect("voxgate exited");
        if let Some(a) = line.strip_prefix("voxgate listening on ") {
            break a.trim().to_owned();
        }
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/rpc"))
        .await
        .expect("connect");
    let mut next_id = 0;
    let mut request = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, mut msg: Value| {
        next_id += 1;
        msg["id"] = next_id.into();
        ws.send(Message::text(msg.to_string())).await.expect("send");
    };
    let until = async |ws: &mut tokio_tungstenite::WebSocketStream<_>,
                       pred: &dyn Fn(&Value) -> bool| {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(Ok(Message::Text(t))) = ws.next().await {
                    let v: Value = serde_json::from_str(t.as_str()).expect("json");
                    if pred(&v) {
                        return v;
                    }
                }
            }
        })
        .await
        .expect("in time")
    };
    request(&mut ws, json!({"method": "initialize", "params": {"clientInfo": {"name": "otel-test", "version": "1"},
        "capabilities": {"experimentalApi": true}}})).await;
    until(&mut ws, &|v| v["id"] == 1).await;
    request(
        &mut ws,
        json!({"method": "thread/realtime/start",
        "params": {"threadId": "t1", "outputModality": "text"},
        "trace": {"traceparent": format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")}}),
    )
    .await;
    until(&mut ws, &|v| v["method"] == "thread/realtime/started").await;
    request(
        &mut ws,
        json!({"method": "thread/realtime/appendText",
        "params": {"threadId": "t1", "text": "delegate: check the build"}}),
    )
    .await;
    until(&mut ws, &|v| {
        v["method"] == "thread/realtime/transcript/done"
            && v["params"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("the build is green"))
    })
    .await;
    request(
        &mut ws,
        json!({"method": "thread/realtime/stop", "params": {"threadId": "t1"}}),
    )
    .await;
    until(&mut ws, &|v| v["method"] == "thread/realtime/closed").await;

    let calls = calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    (gw, calls)
}

#[tokio::test]
async fn spans_reach_an_otlp_receiver_in_the_callers_trace_and_the_agent_is_called_in_it() {
    let (otlp, spans) = otlp_receiver().await;
    let (_gw, calls) = traced_delegation(&[
        ("VOXGATE_TELEMETRY__OTLP_ENDPOINT", &otlp),
        ("VOXGATE_TELEMETRY__EXPORT_INTERVAL_MS", "100"),
        ("VOXGATE_TELEMETRY__SERVICE_NAME", "voxgate-e2e"),
    ])
    .await;
    // The exporter sends batches every 100 ms: wait (bounded) for both spans.
    let find = |name: &str| {
        spans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|s| s.name == name)
            .cloned()
    };
    let (start, session) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let (Some(a), Some(b)) = (find("thread/realtime/start"), find("realtime.session")) {
                return (a, b);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the spans reached the receiver; it has: {:?}",
            spans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        )
    });
    assert_eq!(
        start.trace_id, CLIENT_TRACE,
        "the request joined the client's trace"
    );
    assert_eq!(start.parent, CLIENT_SPAN, "{start:?}");
    assert_eq!(start.service, "voxgate-e2e");
    assert_eq!(
        start.attrs.get("transport").map(String::as_str),
        Some("websocket"),
        "{start:?}"
    );
    assert_eq!(
        start.attrs.get("client").map(String::as_str),
        Some("otel-test"),
        "{start:?}"
    );
    assert!(start.attrs.contains_key("connection"), "{start:?}");
    assert_eq!(
        start.attrs.get("rpc.system").map(String::as_str),
        Some("jsonrpc")
    );
    assert_eq!(session.trace_id, CLIENT_TRACE, "{session:?}");
    assert_eq!(
        session.parent, start.span_id,
        "the conversation is the start's child"
    );
    let init = find("initialize").expect("every request has its span");
    assert_ne!(
        init.trace_id, CLIENT_TRACE,
        "a request without a trace starts its own"
    );
    // The agent was called inside the conversation's trace.
    assert_eq!(
        calls,
        vec![Some(format!("00-{CLIENT_TRACE}-{}-01", session.span_id))],
        "the webhook got the conversation's traceparent"
    );
}

#[tokio::test]
async fn without_an_exporter_the_agent_is_called_in_the_callers_own_trace() {
    // No `[telemetry]`: voxgate takes no part in the trace, so it hands the caller's
    // `traceparent` on unchanged (W3C Trace Context), and the agent's work still joins it.
    let (_gw, calls) = traced_delegation(&[]).await;
    assert_eq!(
        calls,
        vec![Some(format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))],
        "the webhook got the caller's traceparent"
    );
}
