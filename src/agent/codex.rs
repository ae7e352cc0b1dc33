//! The `codex` agent core: a real codex app-server over its JSON-RPC websocket. One connection is
//! shared by all sessions (requests multiplexed by id, notifications routed by codex thread id)
//! and re-opened when it drops; tasks in flight then end as failed. A task maps the realtime
//! thread to a codex thread (resumed when it exists there, else started), runs `turn/start` with
//! the delegation text, forwards each completed `agentMessage` item, steers with `turn/steer`,
//! cancels with `turn/interrupt`, and ends on `turn/completed`. Approval requests are answered
//! by policy (decline by default) and reported to the model as a message. Each `turn/start`
//! names its realtime thread and delegation in `responsesapiClientMetadata`; when the realtime
//! conversation ends, its codex thread is unsubscribed (codex unloads it; a later conversation
//! resumes it).

use super::{AgentCore, AgentTask, AgentUpdate, TaskHandle, TaskIo};
use crate::config::{ApprovalPolicy, CodexAgentConfig};
use crate::engine::TaskOutcome;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
pub const CONNECTION_LOST: &str = "the codex app-server connection was lost";

pub struct CodexAgent {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: CodexAgentConfig,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// Realtime thread id → codex thread id.
    threads: Mutex<HashMap<String, String>>,
}

/// What the reader routes to the task running on a codex thread.
#[derive(Debug)]
enum Notice {
    Notification { method: String, params: Value },
    Approval(String),
    Lost,
}

/// Messages queued toward the codex app-server, and notices toward one task, before the
/// connection (or that task's route) counts as stuck and is given up.
const CODEX_QUEUE: usize = 1024;

struct Conn {
    out: mpsc::Sender<String>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    routes: Mutex<HashMap<String, mpsc::Sender<Notice>>>,
    /// Codex threads loaded on this connection.
    loaded: Mutex<HashSet<String>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(r) = lock(&self.reader).take() {
            r.abort();
        }
    }
}

impl CodexAgent {
    pub fn new(cfg: CodexAgentConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                cfg,
                conn: tokio::sync::Mutex::new(None),
                threads: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl AgentCore for CodexAgent {
    fn start(&self, task: AgentTask) -> TaskHandle {
        let (handle, io) = TaskHandle::pair(task.handoff_id.clone());
        tokio::spawn(run(self.shared.clone(), task, io));
        handle
    }

    /// Unsubscribe from the conversation's codex thread (codex unloads a thread nobody is
    /// subscribed to). The realtime → codex mapping stays: a later conversation on the thread
    /// resumes the same codex thread, with its history.
    fn conversation_ended(&self, thread_id: &str) {
        let Some(codex_thread) = lock(&self.shared.threads).get(thread_id).cloned() else {
            return;
        };
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let conn = shared.conn.lock().await.clone();
            let Some(conn) = conn.filter(|c| c.alive.load(Ordering::Acquire)) else {
                return;
            };
            if !lock(&conn.loaded).remove(&codex_thread) {
                return;
            }
            if let Err(m) = conn
                .request("thread/unsubscribe", json!({"threadId": codex_thread}))
                .await
            {
                tracing::debug!(message = %m, "codex thread/unsubscribe failed");
            }
        });
    }
}

impl Conn {
    async fn open(cfg: &CodexAgentConfig) -> Result<Arc<Conn>, String> {
        let timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let (ws, _) = tokio::time::timeout(
            timeout,
            tokio_tungstenite::connect_async_with_config(cfg.url.as_str(), None, true),
        )
        .await
        .map_err(|_| format!("timed out after {timeout:?}"))?
        .map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<String>(CODEX_QUEUE);
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let conn = Arc::new(Conn {
            out: out_tx,
            pending: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            reader: Mutex::new(None),
        });
        let weak = Arc::downgrade(&conn);
        let policy = cfg.approvals;
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Some(conn) = weak.upgrade() else { return };
                conn.on_message(text.as_str(), policy);
            }
            if let Some(conn) = weak.upgrade() {
                conn.on_lost();
            }
        });
        *lock(&conn.reader) = Some(reader);
        let init = json!({
            "clientInfo": {"name": "voxgate", "title": "voxgate realtime gateway", "version": env!("CARGO_PKG_VERSION")},
            "capabilities": {"experimentalApi": true}
        });
        conn.request("initialize", init).await?;
        conn.notify("initialized", Value::Null);
        Ok(conn)
    }

    /// Queue a message for the app-server; false when the connection is gone or so far behind
    /// that its queue is full (then it is treated as lost).
    fn send(&self, v: Value) -> bool {
        match self.out.try_send(v.to_string()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("codex app-server is not reading; giving the connection up");
                self.on_lost();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn notify(&self, method: &str, params: Value) {
        let mut msg = json!({"method": method});
        if !params.is_null() {
            msg["params"] = params;
        }
        self.send(msg);
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        self.request_traced(method, params, None).await
    }

    /// A request carrying the W3C trace it belongs to (codex's `trace` field), if any.
    async fn request_traced(
        &self,
        method: &str,
        params: Value,
        traceparent: Option<&str>,
    ) -> Result<Value, String> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(CONNECTION_LOST.into());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(tp) = traceparent {
            msg["trace"] = json!({"traceparent": tp});
        }
        if !self.send(msg) {
            lock(&self.pending).remove(&id);
            return Err(CONNECTION_LOST.into());
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(CONNECTION_LOST.into()),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(format!(
                    "codex app-server did not answer {method} within {REQUEST_TIMEOUT:?}"
                ))
            }
        }
    }

    fn route(&self, codex_thread: &str, tx: mpsc::Sender<Notice>) {
        lock(&self.routes).insert(codex_thread.to_owned(), tx);
    }

    /// Remove this task's route (a newer task on the same codex thread keeps its own).
    fn unroute(&self, codex_thread: &str, tx: &mpsc::Sender<Notice>) {
        let mut routes = lock(&self.routes);
        if routes.get(codex_thread).is_some_and(|t| t.same_channel(tx)) {
            routes.remove(codex_thread);
        }
    }

    /// Hand a notice to the task on `thread`. A task whose queue is full is not keeping up with
    /// what codex sends: its route is dropped, and it ends as if the connection were lost.
    fn deliver(&self, thread: Option<&str>, notice: Notice) {
        let mut routes = lock(&self.routes);
        let Some(thread) = thread else { return };
        let full = matches!(
            routes.get(thread).map(|tx| tx.try_send(notice)),
            Some(Err(mpsc::error::TrySendError::Full(_)))
        );
        if full {
            tracing::warn!("a codex task fell behind its notifications; ending it");
            routes.remove(thread);
        }
    }

    fn on_message(&self, text: &str, policy: ApprovalPolicy) {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            tracing::debug!("ignoring a non-object message from the codex app-server");
            return;
        };
        let method = msg.get("method").and_then(Value::as_str);
        let id = msg.get("id").cloned();
        match (method, id) {
            (None, Some(id)) => {
                let Some(id) = id.as_u64() else { return };
                let result = match msg.get("error") {
                    Some(e) => Err(e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("codex request failed")
                        .to_owned()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                if let Some(tx) = lock(&self.pending).remove(&id) {
                    let _ = tx.send(result);
                }
            }
            (Some(method), Some(id)) => {
                let params = msg.get("params").cloned().unwrap_or(Value::Null);
                let (reply, note) = answer_server_request(method, &params, policy);
                self.send(match reply {
                    Ok(result) => json!({"id": id, "result": result}),
                    Err(message) => {
                        json!({"id": id, "error": {"code": -32601, "message": message}})
                    }
                });
                if let Some(note) = note {
                    self.deliver(
                        params.get("threadId").and_then(Value::as_str),
                        Notice::Approval(note),
                    );
                }
            }
            (Some(method), None) => {
                let params = msg.get("params").cloned().unwrap_or(Value::Null);
                let thread = params
                    .get("threadId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.deliver(
                    thread.as_deref(),
                    Notice::Notification {
                        method: method.to_owned(),
                        params,
                    },
                );
            }
            (None, None) => {}
        }
    }

    fn on_lost(&self) {
        self.alive.store(false, Ordering::Release);
        for (_, tx) in lock(&self.pending).drain() {
            let _ = tx.send(Err(CONNECTION_LOST.into()));
        }
        for (_, tx) in lock(&self.routes).drain() {
            // A full queue is dropped with its sender: the task sees the route close, as lost.
            let _ = tx.try_send(Notice::Lost);
        }
        tracing::warn!("codex app-server connection lost; the next task reconnects");
    }
}

/// The reply to a server-initiated request, and what to tell the model about it.
fn answer_server_request(
    method: &str,
    params: &Value,
    policy: ApprovalPolicy,
) -> (Result<Value, String>, Option<String>) {
    let accept = policy == ApprovalPolicy::Accept;
    let verb = if accept { "Approved" } else { "Declined" };
    let command = match params.get("command") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    match method {
        "item/commandExecution/requestApproval" => (
            Ok(json!({"decision": if accept { "accept" } else { "decline" }})),
            Some(format!("{verb} the agent's request to run `{command}`.")),
        ),
        "item/fileChange/requestApproval" => (
            Ok(json!({"decision": if accept { "accept" } else { "decline" }})),
            Some(format!("{verb} the agent's request to change files.")),
        ),
        "execCommandApproval" => (
            Ok(json!({"decision": if accept { "approved" } else { "denied" }})),
            Some(format!("{verb} the agent's request to run `{command}`.")),
        ),
        "applyPatchApproval" => (
            Ok(json!({"decision": if accept { "approved" } else { "denied" }})),
            Some(format!("{verb} the agent's request to change files.")),
        ),
        other => (
            Err(format!("voxgate does not handle {other}")),
            Some(format!("Declined the agent's {other} request.")),
        ),
    }
}

impl Shared {
    async fn connection(&self) -> Result<Arc<Conn>, String> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.alive.load(Ordering::Acquire)) {
            return Ok(c.clone());
        }
        let c = Conn::open(&self.cfg)
            .await
            .map_err(|e| format!("cannot reach the codex app-server at {}: {e}", self.cfg.url))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The codex thread for a realtime thread: known and loaded, resumed, or started.
    async fn thread_for(&self, conn: &Conn, realtime_thread: &str) -> Result<String, String> {
        let known = lock(&self.threads).get(realtime_thread).cloned();
        let candidate = known.clone().unwrap_or_else(|| realtime_thread.to_owned());
        if lock(&conn.loaded).contains(&candidate) {
            return Ok(candidate);
        }
        let resumed = conn
            .request("thread/resume", json!({"threadId": candidate}))
            .await;
        let id = match resumed
            .as_ref()
            .ok()
            .and_then(|r| r.pointer("/thread/id"))
            .and_then(Value::as_str)
        {
            Some(id) => id.to_owned(),
            None => {
                let mut params = json!({});
                if let Some(cwd) = &self.cfg.cwd {
                    params["cwd"] = cwd.as_str().into();
                }
                let started = conn.request("thread/start", params).await?;
                started
                    .pointer("/thread/id")
                    .and_then(Value::as_str)
                    .ok_or("codex thread/start returned no thread id")?
                    .to_owned()
            }
        };
        lock(&conn.loaded).insert(id.clone());
        lock(&self.threads).insert(realtime_thread.to_owned(), id.clone());
        Ok(id)
    }
}

fn text_input(text: &str) -> Value {
    json!([{"type": "text", "text": text}])
}

async fn run(shared: Arc<Shared>, task: AgentTask, mut io: TaskIo) {
    let outcome = drive(&shared, &task, &mut io).await;
    let _ = io.updates.send(AgentUpdate::End(outcome)).await;
}

async fn drive(shared: &Shared, task: &AgentTask, io: &mut TaskIo) -> TaskOutcome {
    let setup = async {
        let conn = shared.connection().await?;
        let thread = shared.thread_for(&conn, &task.thread_id).await?;
        Ok::<_, String>((conn, thread))
    };
    let (conn, thread) = tokio::select! {
        _ = &mut io.cancel => return TaskOutcome::Cancelled,
        r = setup => match r {
            Ok(v) => v,
            Err(m) => return TaskOutcome::Failed(m),
        },
    };
    let (tx, mut notices) = mpsc::channel(CODEX_QUEUE);
    conn.route(&thread, tx.clone());
    let outcome = run_turn(&conn, &thread, task, io, &mut notices).await;
    conn.unroute(&thread, &tx);
    outcome
}

async fn run_turn(
    conn: &Conn,
    thread: &str,
    task: &AgentTask,
    io: &mut TaskIo,
    notices: &mut mpsc::Receiver<Notice>,
) -> TaskOutcome {
    let started = conn
        .request_traced(
            "turn/start",
            json!({"threadId": thread, "input": text_input(&task.text),
                // Carried into codex's Responses requests (`x-codex-turn-metadata`).
                "responsesapiClientMetadata": {"origin": "voxgate",
                    "voxgate_thread_id": task.thread_id, "voxgate_handoff_id": task.handoff_id}}),
            task.traceparent.as_deref(),
        )
        .await;
    let turn_id = match started
        .as_ref()
        .map(|r| r.pointer("/turn/id").and_then(Value::as_str))
    {
        Ok(Some(id)) => id.to_owned(),
        Ok(None) => return TaskOutcome::Failed("codex turn/start returned no turn id".into()),
        Err(m) => return TaskOutcome::Failed(format!("codex refused the turn: {m}")),
    };
    let mut cancelled = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut io.cancel, if !cancelled => {
                cancelled = true;
                deadline = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
                if let Err(m) = conn.request("turn/interrupt", json!({"threadId": thread, "turnId": turn_id})).await {
                    tracing::warn!(message = %m, "codex turn/interrupt failed");
                    return TaskOutcome::Cancelled;
                }
            }
            _ = grace => return TaskOutcome::Cancelled,
            Some(text) = io.steer.recv() => {
                let params = json!({"threadId": thread, "expectedTurnId": turn_id, "input": text_input(&text)});
                if let Err(m) = conn.request("turn/steer", params).await {
                    tracing::warn!(message = %m, "codex turn/steer failed");
                }
            }
            notice = notices.recv() => match notice {
                None | Some(Notice::Lost) => return TaskOutcome::Failed(CONNECTION_LOST.into()),
                Some(Notice::Approval(note)) => {
                    let _ = io.updates.send(AgentUpdate::Message(note)).await;
                }
                Some(Notice::Notification { method, params }) => {
                    if params.get("turnId").and_then(Value::as_str).is_some_and(|t| t != turn_id) {
                        continue;
                    }
                    match method.as_str() {
                        "item/completed" => {
                            let item = &params["item"];
                            let text = item["text"].as_str().filter(|t| !t.is_empty());
                            if let (true, Some(text)) = (item["type"] == "agentMessage", text) {
                                let _ = io.updates.send(AgentUpdate::Message(text.to_owned())).await;
                            }
                        }
                        "turn/completed" if params.pointer("/turn/id").and_then(Value::as_str) == Some(turn_id.as_str()) => {
                            return match params.pointer("/turn/status").and_then(Value::as_str) {
                                Some("completed") => TaskOutcome::Completed,
                                Some("interrupted") => TaskOutcome::Cancelled,
                                _ => TaskOutcome::Failed(
                                    params
                                        .pointer("/turn/error/message")
                                        .and_then(Value::as_str)
                                        .unwrap_or("the codex turn failed")
                                        .to_owned(),
                                ),
                            };
                        }
                        _ => {}
                    }
                }
            },
        }
    }
}
