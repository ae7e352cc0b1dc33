//! The agent-core face (protocol.md §6): a delegated task `{thread_id, handoff_id, text}` yields
//! messages and then one end; new text for a running task steers it. Backends implement
//! [`AgentCore`]; `embedded` is the offline default, `codex`, `responses` and `webhook` forward
//! to real agent cores.

pub mod codex;
pub mod embedded;
pub mod responses;
pub mod stream;
pub mod webhook;

use crate::engine::TaskOutcome;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTask {
    pub thread_id: String,
    pub handoff_id: String,
    pub text: String,
    /// The conversation's W3C `traceparent` when telemetry is on: backends carry it on
    /// (codex's `trace`, HTTP `traceparent`) so the agent's work joins the trace.
    pub traceparent: Option<String>,
}

/// Steers queued for a task before more are dropped.
pub const STEER_QUEUE: usize = 32;

/// What a running task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUpdate {
    Message(String),
    End(TaskOutcome),
}

/// The backend's side of a task: read steers, watch for cancel, send updates.
pub struct TaskIo {
    pub steer: mpsc::Receiver<String>,
    pub cancel: oneshot::Receiver<()>,
    pub updates: mpsc::Sender<AgentUpdate>,
}

/// The session's side of a task.
pub struct TaskHandle {
    pub handoff_id: String,
    steer: mpsc::Sender<String>,
    cancel: Option<oneshot::Sender<()>>,
    updates: mpsc::Receiver<AgentUpdate>,
}

impl TaskHandle {
    /// A connected handle/io pair for a backend to run.
    pub fn pair(handoff_id: String) -> (TaskHandle, TaskIo) {
        let (steer_tx, steer_rx) = mpsc::channel(STEER_QUEUE);
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let (upd_tx, upd_rx) = mpsc::channel(64);
        (
            TaskHandle {
                handoff_id,
                steer: steer_tx,
                cancel: Some(cancel_tx),
                updates: upd_rx,
            },
            TaskIo {
                steer: steer_rx,
                cancel: cancel_rx,
                updates: upd_tx,
            },
        )
    }

    /// Pass new text to the running task. A backend that has not taken [`STEER_QUEUE`] steers
    /// is not listening: further ones are dropped (logged).
    pub fn steer(&self, text: String) {
        if self.steer.try_send(text).is_err() {
            tracing::warn!(handoff_id = %self.handoff_id, "agent backend is not taking steers; dropped one");
        }
    }

    pub fn cancel(&mut self) {
        if let Some(c) = self.cancel.take() {
            let _ = c.send(());
        }
    }

    /// Next update; a backend that vanished without an end counts as failed.
    pub async fn next(&mut self) -> AgentUpdate {
        self.updates.recv().await.unwrap_or_else(|| {
            AgentUpdate::End(TaskOutcome::Failed(
                "the agent backend stopped without finishing".into(),
            ))
        })
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A place delegated tasks run.
pub trait AgentCore: Send + Sync + 'static {
    /// Start `task`; the backend spawns its own work and reports through the returned handle.
    fn start(&self, task: AgentTask) -> TaskHandle;

    /// The realtime conversation on `thread_id` ended and no task of it runs any more: a backend
    /// that holds something for the thread between tasks lets go of it now.
    fn conversation_ended(&self, _thread_id: &str) {}
}

/// The `<input>` text of a delegation, unescaped (for backends that want the plain request).
pub fn delegation_input(text: &str) -> String {
    let inner = text
        .split_once("<input>")
        .and_then(|(_, rest)| rest.split_once("</input>"))
        .map(|(input, _)| input)
        .unwrap_or(text);
    inner
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Build every backend the config makes available, keyed by kind.
pub fn backends(
    cfg: &crate::config::AgentConfig,
) -> std::collections::HashMap<crate::config::AgentKind, std::sync::Arc<dyn AgentCore>> {
    use crate::config::AgentKind;
    use std::sync::Arc;
    let mut map: std::collections::HashMap<AgentKind, Arc<dyn AgentCore>> =
        std::collections::HashMap::new();
    map.insert(
        AgentKind::Embedded,
        Arc::new(embedded::EmbeddedAgent::new(cfg.embedded.clone())),
    );
    map.insert(
        AgentKind::Responses,
        Arc::new(responses::ResponsesAgent::new(cfg.responses.clone())),
    );
    if !cfg.codex.url.is_empty() {
        map.insert(
            AgentKind::Codex,
            Arc::new(codex::CodexAgent::new(cfg.codex.clone())),
        );
    }
    if !cfg.webhook.url.is_empty() {
        map.insert(
            AgentKind::Webhook,
            Arc::new(webhook::WebhookAgent::new(&cfg.webhook)),
        );
    }
    map
}
