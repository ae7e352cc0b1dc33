//! The `responses` agent core: any OpenAI Responses-compatible endpoint, streamed over SSE with
//! reqwest. Each completed output message is one progress message. The thread's earlier
//! delegations and answers are kept as input history so follow-ups make sense. Steering text
//! that arrives while a response streams is sent as a follow-up request in the same task.

use super::stream::SseParser;
use super::{AgentCore, AgentTask, AgentUpdate, TaskHandle, TaskIo};
use crate::config::ResponsesAgentConfig;
use crate::engine::TaskOutcome;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct ResponsesAgent {
    cfg: ResponsesAgentConfig,
    http: reqwest::Client,
    /// Input items per realtime thread: earlier delegations and the agent's answers.
    history: Arc<Mutex<HashMap<String, Vec<Value>>>>,
}

impl ResponsesAgent {
    pub fn new(cfg: ResponsesAgentConfig) -> Self {
        Self {
            cfg,
            http: reqwest::Client::new(),
            history: Arc::default(),
        }
    }
}

impl AgentCore for ResponsesAgent {
    fn start(&self, task: AgentTask) -> TaskHandle {
        let (handle, io) = TaskHandle::pair(task.handoff_id.clone());
        let run = Run {
            cfg: self.cfg.clone(),
            http: self.http.clone(),
            history: self.history.clone(),
            api_key: std::env::var(&self.cfg.api_key_env)
                .ok()
                .filter(|k| !k.is_empty()),
        };
        tokio::spawn(run.task(task, io));
        handle
    }
}

struct Run {
    cfg: ResponsesAgentConfig,
    http: reqwest::Client,
    history: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    api_key: Option<String>,
}

fn user_item(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// The text of a completed output message item, if it is one.
fn message_text(item: &Value) -> Option<String> {
    if item.get("type").and_then(Value::as_str) != Some("message") {
        return None;
    }
    let text: String = item
        .get("content")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect();
    (!text.is_empty()).then_some(text)
}

enum StreamEnd {
    Completed,
    Failed(String),
    Cancelled,
}

impl Run {
    fn history_with(&self, thread: &str, item: Value) -> Vec<Value> {
        let mut map = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = map.entry(thread.to_owned()).or_default();
        h.push(item);
        let excess = h.len().saturating_sub(self.cfg.max_history_items.max(1));
        h.drain(..excess);
        h.clone()
    }

    fn remember(&self, thread: &str, item: Value) {
        let mut map = self
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(thread.to_owned()).or_default().push(item);
    }

    async fn task(self, task: AgentTask, mut io: TaskIo) {
        let mut next_input = Some(task.text.clone());
        let outcome = loop {
            let Some(text) = next_input.take() else {
                break TaskOutcome::Completed;
            };
            let input = self.history_with(&task.thread_id, user_item(&text));
            match self
                .one_response(&task.thread_id, input, task.traceparent.as_deref(), &mut io)
                .await
            {
                StreamEnd::Completed => {}
                StreamEnd::Failed(m) => break TaskOutcome::Failed(m),
                StreamEnd::Cancelled => break TaskOutcome::Cancelled,
            }
            // Steering that arrived meanwhile becomes the next request of this task.
            let mut steers = Vec::new();
            while let Ok(s) = io.steer.try_recv() {
                steers.push(s);
            }
            if !steers.is_empty() {
                next_input = Some(steers.join("\n\n"));
            }
        };
        let _ = io.updates.send(AgentUpdate::End(outcome)).await;
    }

    async fn one_response(
        &self,
        thread: &str,
        input: Vec<Value>,
        traceparent: Option<&str>,
        io: &mut TaskIo,
    ) -> StreamEnd {
        let url = format!("{}/responses", self.cfg.base_url.trim_end_matches('/'));
        let mut body =
            json!({"model": self.cfg.model, "input": input, "stream": true, "store": false});
        if let Some(i) = &self.cfg.instructions {
            body["instructions"] = i.as_str().into();
        }
        let mut req = self.http.post(&url).json(&body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = tokio::select! {
            _ = &mut io.cancel => return StreamEnd::Cancelled,
            r = req.send() => r,
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                return StreamEnd::Failed(format!(
                    "cannot reach the Responses endpoint: {}",
                    e.without_url()
                ));
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let detail: String = text.chars().take(300).collect();
            return StreamEnd::Failed(format!(
                "the Responses endpoint returned HTTP {}: {detail}",
                status.as_u16()
            ));
        }
        let mut stream = resp.bytes_stream();
        let mut sse = SseParser::default();
        loop {
            let chunk = tokio::select! {
                _ = &mut io.cancel => return StreamEnd::Cancelled,
                c = stream.next() => c,
            };
            let events = match chunk {
                Some(Ok(bytes)) => sse.push(&bytes),
                Some(Err(e)) => {
                    return StreamEnd::Failed(format!(
                        "the Responses stream broke: {}",
                        e.without_url()
                    ));
                }
                None => {
                    let last = sse.finish().into_iter().collect::<Vec<_>>();
                    if last.is_empty() {
                        return StreamEnd::Failed(
                            "the Responses stream ended before response.completed".into(),
                        );
                    }
                    last
                }
            };
            for data in events {
                if data.trim() == "[DONE]" {
                    return StreamEnd::Completed;
                }
                let Ok(ev) = serde_json::from_str::<Value>(&data) else {
                    return StreamEnd::Failed(
                        "the Responses stream sent an event that is not JSON".into(),
                    );
                };
                match ev.get("type").and_then(Value::as_str).unwrap_or("") {
                    "response.output_item.done" => {
                        let Some(item) = ev.get("item") else { continue };
                        if let Some(text) = message_text(item) {
                            self.remember(thread, json!({"role": "assistant", "content": [{"type": "output_text", "text": text}]}));
                            if io.updates.send(AgentUpdate::Message(text)).await.is_err() {
                                return StreamEnd::Cancelled;
                            }
                        }
                    }
                    "response.completed" => return StreamEnd::Completed,
                    "response.failed" | "response.incomplete" | "error" => {
                        let msg = ev
                            .pointer("/response/error/message")
                            .or_else(|| ev.pointer("/error/message"))
                            .or_else(|| ev.get("message"))
                            .and_then(Value::as_str)
                            .unwrap_or("the response failed");
                        return StreamEnd::Failed(msg.to_owned());
                    }
                    _ => {}
                }
            }
        }
    }
}
