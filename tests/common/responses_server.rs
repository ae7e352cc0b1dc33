//! A scripted OpenAI Responses-compatible server on loopback for agent-backend tests: each
//! `POST …/responses` takes the next scripted reply (streamed as SSE) and records the request body.
#![allow(dead_code)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};

#[derive(Clone)]
pub enum Reply {
    /// One assistant message item per string, then `response.completed`.
    Messages(Vec<String>),
    /// Send `response.created`, wait for the notify, then the messages and `response.completed`.
    Hold(Arc<Notify>, Vec<String>),
    /// An HTTP error status with a JSON error body.
    Status(u16),
    /// One function call item (name, JSON arguments), then `response.completed`.
    FunctionCall(String, String),
}

struct Inner {
    script: Mutex<VecDeque<Reply>>,
    requests: mpsc::UnboundedSender<Value>,
}

pub struct ResponsesServer {
    pub addr: std::net::SocketAddr,
    inner: Arc<Inner>,
    requests: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ResponsesServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {}\n\n",
                e["type"].as_str().unwrap_or(""),
                e
            )
        })
        .collect()
}

fn message_events(texts: &[String]) -> Vec<Value> {
    let mut evs = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        evs.push(json!({"type": "response.output_item.done", "output_index": i, "item": {
            "type": "message", "role": "assistant", "id": format!("msg_{i}"), "status": "completed",
            "content": [{"type": "output_text", "text": t, "annotations": []}]
        }}));
    }
    evs.push(json!({"type": "response.completed", "response": {"id": "resp_scripted", "status": "completed",
        "usage": {"input_tokens": 1, "input_tokens_details": null, "output_tokens": 1,
            "output_tokens_details": null, "total_tokens": 2}}}));
    evs
}

async fn respond(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = inner.requests.send(parsed);
    let reply = inner
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(|| Reply::Messages(vec!["ok".into()]));
    let created = json!({"type": "response.created", "response": {"id": "resp_scripted", "status": "in_progress"}});
    let sse_response = |body: Body| {
        Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(body)
            .expect("response")
    };
    match reply {
        Reply::Messages(texts) => {
            let mut evs = vec![created];
            evs.extend(message_events(&texts));
            sse_response(Body::from(sse(&evs)))
        }
        Reply::Hold(release, texts) => {
            let first = futures_util::stream::once(async move {
                Ok::<_, std::convert::Infallible>(Bytes::from(sse(&[created])))
            });
            let rest = futures_util::stream::once(async move {
                release.notified().await;
                Ok::<_, std::convert::Infallible>(Bytes::from(sse(&message_events(&texts))))
            });
            sse_response(Body::from_stream(futures_util::StreamExt::chain(
                first, rest,
            )))
        }
        Reply::FunctionCall(name, arguments) => {
            let mut evs = vec![created];
            evs.push(json!({"type": "response.output_item.done", "output_index": 0, "item": {
                "type": "function_call", "id": "fc_scripted", "call_id": "call_scripted", "status": "completed",
                "name": name, "arguments": arguments
            }}));
            evs.extend(message_events(&[]));
            sse_response(Body::from(sse(&evs)))
        }
        Reply::Status(code) => Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"error": {"message": "scripted failure", "type": "server_error"}})
                    .to_string(),
            ))
            .expect("response"),
    }
}

impl ResponsesServer {
    pub async fn start(script: Vec<Reply>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            script: Mutex::new(script.into()),
            requests: tx,
        });
        let app = Router::new()
            .route("/v1/responses", axum::routing::post(respond))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            inner,
            requests: tokio::sync::Mutex::new(rx),
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.inner
            .script
            .lock()
            .expect("script lock")
            .push_back(reply);
    }

    /// The next request body received (bounded wait).
    pub async fn next_request(&self) -> Value {
        tokio::time::timeout(super::WAIT * 3, self.requests.lock().await.recv())
            .await
            .expect("responses request in time")
            .expect("server alive")
    }
}

/// Every `input_text` string in a Responses request's `input`.
pub fn input_texts(req: &Value) -> Vec<String> {
    req["input"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_owned))
        .collect()
}
