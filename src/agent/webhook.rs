//! The `webhook` agent core: each task is POSTed as JSON `{threadId, handoffId, text, steer}` to a
//! configured URL, signed with HMAC-SHA256 in `X-Voxgate-Signature: sha256=<hex>` when a secret is
//! set; the reply body is NDJSON: `{"type":"message","text"}` lines, then `{"type":"done"}` or
//! `{"type":"error","message"}`. Steering POSTs again with `steer: true`; messages in that reply
//! are forwarded too. Malformed lines fail the task with a clear message.

use super::stream::LineSplitter;
use super::{AgentCore, AgentTask, AgentUpdate, TaskHandle, TaskIo};
use crate::config::WebhookAgentConfig;
use crate::engine::TaskOutcome;
use futures_util::StreamExt;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const SIGNATURE_HEADER: &str = "x-voxgate-signature";

pub struct WebhookAgent {
    url: String,
    secret: Option<String>,
    http: reqwest::Client,
}

impl WebhookAgent {
    pub fn new(cfg: &WebhookAgentConfig) -> Self {
        Self {
            url: cfg.url.clone(),
            secret: cfg.resolve_secret(),
            http: reqwest::Client::new(),
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body): what a receiver recomputes to verify the sender.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl AgentCore for WebhookAgent {
    fn start(&self, task: AgentTask) -> TaskHandle {
        let (handle, io) = TaskHandle::pair(task.handoff_id.clone());
        let post = Poster {
            url: self.url.clone(),
            secret: self.secret.clone(),
            http: self.http.clone(),
        };
        tokio::spawn(run(post, task, io));
        handle
    }
}

#[derive(Clone)]
struct Poster {
    url: String,
    secret: Option<String>,
    http: reqwest::Client,
}

/// One parsed NDJSON line.
#[derive(Debug, PartialEq)]
pub(crate) enum Line {
    Message(String),
    Done,
    Error(String),
}

pub(crate) fn parse_line(line: &str) -> Result<Line, String> {
    let shown: String = line.chars().take(120).collect();
    let v: Value = serde_json::from_str(line)
        .map_err(|_| format!("the webhook sent a line that is not JSON: {shown}"))?;
    match v.get("type").and_then(Value::as_str) {
        Some("message") => v
            .get("text")
            .and_then(Value::as_str)
            .map(|t| Line::Message(t.to_owned()))
            .ok_or_else(|| format!("the webhook sent a message line without text: {shown}")),
        Some("done") => Ok(Line::Done),
        Some("error") => Ok(Line::Error(
            v.get("message")
                .and_then(Value::as_str)
                .unwrap_or("the webhook reported an error")
                .to_owned(),
        )),
        _ => Err(format!("the webhook sent a line of unknown type: {shown}")),
    }
}

impl Poster {
    async fn post(
        &self,
        task: &AgentTask,
        text: &str,
        steer: bool,
    ) -> Result<reqwest::Response, String> {
        let body = json!({"threadId": task.thread_id, "handoffId": task.handoff_id, "text": text, "steer": steer})
            .to_string();
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/x-ndjson");
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
        if let Some(tp) = &task.traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot reach the webhook: {}", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the webhook returned HTTP {}",
                resp.status().as_u16()
            ));
        }
        Ok(resp)
    }
}

/// Read an NDJSON reply, sending each parsed line (or the error ending it) to `lines`.
async fn pump(resp: reqwest::Response, lines: mpsc::Sender<Result<Line, String>>) {
    let mut stream = resp.bytes_stream();
    let mut splitter = LineSplitter::default();
    loop {
        let batch = match stream.next().await {
            Some(Ok(bytes)) => splitter.push(&bytes),
            Some(Err(e)) => {
                let _ = lines
                    .send(Err(format!(
                        "the webhook stream broke: {}",
                        e.without_url()
                    )))
                    .await;
                return;
            }
            None => {
                if let Some(last) = splitter.finish() {
                    let _ = lines.send(parse_line(&last)).await;
                }
                return;
            }
        };
        if splitter.overflowed() {
            let message = format!(
                "the webhook sent a line longer than {} bytes",
                super::stream::MAX_LINE
            );
            let _ = lines.send(Err(message)).await;
            return;
        }
        for l in batch.iter().filter(|l| !l.trim().is_empty()) {
            let parsed = parse_line(l);
            let stop = parsed.is_err();
            if lines.send(parsed).await.is_err() || stop {
                return;
            }
        }
    }
}

async fn run(post: Poster, task: AgentTask, mut io: TaskIo) {
    let outcome = tokio::select! {
        _ = &mut io.cancel => TaskOutcome::Cancelled,
        o = drive(&post, &task, &mut io.steer, &io.updates) => o,
    };
    let _ = io.updates.send(AgentUpdate::End(outcome)).await;
}

async fn drive(
    post: &Poster,
    task: &AgentTask,
    steer: &mut mpsc::Receiver<String>,
    updates: &mpsc::Sender<AgentUpdate>,
) -> TaskOutcome {
    let resp = match post.post(task, &task.text, false).await {
        Ok(r) => r,
        Err(m) => return TaskOutcome::Failed(m),
    };
    let (main_tx, mut main_rx) = mpsc::channel(64);
    let main = tokio::spawn(pump(resp, main_tx));
    let _abort_main = AbortOnDrop(main);
    let (steer_tx, mut steer_rx) = mpsc::channel::<Result<Line, String>>(64);
    let mut steer_pumps = Vec::new();
    loop {
        tokio::select! {
            line = main_rx.recv() => match line {
                Some(Ok(Line::Message(t))) => {
                    if updates.send(AgentUpdate::Message(t)).await.is_err() {
                        return TaskOutcome::Cancelled;
                    }
                }
                Some(Ok(Line::Done)) => return TaskOutcome::Completed,
                Some(Ok(Line::Error(m))) => return TaskOutcome::Failed(m),
                Some(Err(m)) => return TaskOutcome::Failed(m),
                None => return TaskOutcome::Failed("the webhook stream ended without a done line".into()),
            },
            Some(text) = steer.recv() => match post.post(task, &text, true).await {
                Ok(resp) => steer_pumps.push(AbortOnDrop(tokio::spawn(pump(resp, steer_tx.clone())))),
                Err(m) => tracing::warn!(message = %m, "webhook steering request failed"),
            },
            Some(line) = steer_rx.recv() => match line {
                Ok(Line::Message(t)) => {
                    let _ = updates.send(AgentUpdate::Message(t)).await;
                }
                Ok(_) => {}
                Err(m) => tracing::warn!(message = %m, "webhook steering reply was malformed"),
            },
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn lines_parse_or_explain() {
        assert_eq!(
            parse_line(r#"{"type":"message","text":"hi"}"#),
            Ok(Line::Message("hi".into()))
        );
        assert_eq!(parse_line(r#"{"type":"done"}"#), Ok(Line::Done));
        assert_eq!(
            parse_line(r#"{"type":"error","message":"no"}"#),
            Ok(Line::Error("no".into()))
        );
        assert!(parse_line("nope").unwrap_err().contains("not JSON"));
        assert!(
            parse_line(r#"{"type":"message"}"#)
                .unwrap_err()
                .contains("without text")
        );
        assert!(
            parse_line(r#"{"type":"dance"}"#)
                .unwrap_err()
                .contains("unknown type")
        );
    }
}
