//! `RpcConnection`: one JSON-RPC connection's state (initialized, capabilities, opt-outs) and the
//! dispatch of its requests. Responses go through the connection's bounded outbound queue;
//! thread notifications reach it as a subscriber. Transport-free.

use super::request::ClientRequest;
use super::trace;
use crate::app::AppState;
use crate::engine::ClientCommand;
use crate::protocol::rpc::{self as p, Incoming, Notification, RpcError};
use crate::protocol::session_config::{self};
use crate::protocol::{AudioChunk, ModelVersion};
use crate::session::reactor::SessionCommand;
use crate::session::{Delivery, Outbound, SessionSender, Subscriber};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

pub struct RpcConnection {
    id: u64,
    /// `websocket` or `stdio`, for the request spans.
    transport: &'static str,
    /// The client's name from `initialize` (bounded), for the request spans.
    client: String,
    app: Arc<AppState>,
    out: mpsc::Sender<Outbound>,
    kill: Arc<Notify>,
    initialized: bool,
    experimental: bool,
    opt_out: Arc<HashSet<String>>,
    principal: crate::auth::Principal,
    /// Sessions this connection streams audio to, held so a frame takes no registry lock.
    audio_to: HashMap<String, SessionSender>,
    /// In a cluster: links to the nodes holding threads this connection uses elsewhere (by
    /// node), and which node each such thread is on.
    links: HashMap<String, crate::cluster::rpc_link::RpcLink>,
    remote_threads: HashMap<String, String>,
}

/// Threads a connection keeps a session handle for at most (more: the cache starts over).
const AUDIO_SENDERS: usize = 64;

impl RpcConnection {
    pub fn new(
        app: Arc<AppState>,
        out: mpsc::Sender<Outbound>,
        principal: crate::auth::Principal,
        transport: &'static str,
    ) -> Self {
        Self {
            id: app.next_conn_id(),
            transport,
            client: String::new(),
            app,
            out,
            kill: Arc::new(Notify::new()),
            initialized: false,
            experimental: false,
            opt_out: Arc::new(HashSet::new()),
            principal,
            audio_to: HashMap::new(),
            links: HashMap::new(),
            remote_threads: HashMap::new(),
        }
    }

    /// Signalled when this connection is too slow and must be closed.
    pub fn kill_signal(&self) -> Arc<Notify> {
        self.kill.clone()
    }

    async fn send(&self, text: String) {
        let _ = self.out.send(Arc::from(text)).await;
    }

    async fn reply(&self, id: &Value, result: Result<Value, RpcError>) {
        let text = match result {
            Ok(v) => p::response_ok(id, v),
            Err(e) => p::response_err(id, &e),
        };
        self.send(text).await;
    }

    /// Handle one inbound message (a websocket text frame or a stdio line).
    pub async fn handle_text(&mut self, text: &str) {
        let limit = self.app.cfg.server.max_message_bytes;
        if text.len() > limit {
            let err = RpcError::invalid_params(format!(
                "message of {} bytes exceeds the limit of {limit} bytes",
                text.len()
            ));
            return match p::peek_id(text) {
                Some(id) => self.reply(&id, Err(err)).await,
                None => self.unanswerable("too_large", &err),
            };
        }
        match p::parse_incoming(text) {
            Err((Value::Null, err)) => self.unanswerable("malformed", &err),
            Err((id, err)) => self.reply(&id, Err(err)).await,
            Ok(Incoming::Response) => {}
            Ok(Incoming::Notification { method, .. }) => {
                tracing::debug!(%method, "ignoring client notification");
            }
            Ok(Incoming::Request {
                id,
                method,
                params,
                trace,
            }) => {
                if self.forwarded_to_owner(&method, &params, text).await {
                    return;
                }
                let meta = trace::RequestMeta {
                    transport: self.transport,
                    connection: self.id,
                    client: &self.client,
                };
                let span = trace::request_span(&method, trace.as_ref(), &meta);
                let caller = trace::caller_trace(trace.as_ref()).map(|t| t.header());
                let result = crate::telemetry::for_caller(
                    caller.clone(),
                    self.dispatch(&method, params).instrument(span.clone()),
                )
                .await;
                match result {
                    Ok((value, after)) => {
                        self.reply(&id, Ok(value)).await;
                        if let Some(after) = after {
                            // Still the request's work (a start's conversation is its child).
                            crate::telemetry::for_caller(
                                caller,
                                self.after_reply(after).instrument(span),
                            )
                            .await;
                        }
                    }
                    Err(e) => self.reply(&id, Err(e)).await,
                }
            }
        }
    }

    /// In a cluster, a request on a thread another node holds goes to that node over this
    /// connection's link to it, unchanged; its answer and the thread's notifications come back
    /// the same way. `true`: forwarded (nothing more to do here).
    async fn forwarded_to_owner(&mut self, method: &str, params: &Value, text: &str) -> bool {
        let Some(cluster) = self.app.cluster().cloned() else {
            return false;
        };
        // Requests this connection may not make yet get their error here.
        if !self.initialized
            || (ClientRequest::is_realtime_method(method) && !self.experimental)
            || method == p::METHOD_INITIALIZE
        {
            return false;
        }
        let Some(thread_id) = params.get("threadId").and_then(Value::as_str) else {
            return false;
        };
        if self.app.sessions.knows(&self.principal.key_id, thread_id) {
            self.remote_threads.remove(thread_id);
            return false;
        }
        let node = match self.remote_threads.get(thread_id) {
            Some(node) if self.links.get(node).is_some_and(|l| l.is_open()) => node.clone(),
            _ => {
                let crate::cluster::Route::Remote { node, url } = cluster
                    .route_thread(&self.principal.key_id, thread_id)
                    .await
                else {
                    return false;
                };
                if !self.links.get(&node).is_some_and(|l| l.is_open()) {
                    let opt_out = self.opt_out.iter().cloned().collect();
                    match crate::cluster::rpc_link::RpcLink::open(
                        &cluster,
                        &url,
                        &self.principal,
                        opt_out,
                        self.out.clone(),
                        self.kill.clone(),
                    )
                    .await
                    {
                        Ok(link) => {
                            self.links.insert(node.clone(), link);
                        }
                        Err(e) => {
                            tracing::warn!(%node, error = %e, "the node holding the thread could not be reached");
                            return false;
                        }
                    }
                }
                if self.remote_threads.len() >= AUDIO_SENDERS {
                    self.remote_threads.clear();
                }
                self.remote_threads
                    .insert(thread_id.to_owned(), node.clone());
                node
            }
        };
        match self.links.get(&node) {
            Some(link) => link.send(thread_id, text).await,
            None => false,
        }
    }

    /// In a cluster, say now that this node holds `thread_id` (before the client hears of it).
    async fn claim(&self, thread_id: &str) {
        if let Some(cluster) = self.app.cluster() {
            cluster
                .claim_thread(&self.principal.key_id, thread_id)
                .await;
        }
    }

    /// A message that is not UTF-8 cannot be JSON: dropped unanswered, the connection goes on.
    pub async fn handle_invalid_utf8(&mut self) {
        let err = RpcError::new(
            p::PARSE_ERROR,
            "Parse error: the message is not valid UTF-8",
        );
        self.unanswerable("not_utf8", &err);
    }

    /// Binary frames carry nothing this face understands.
    pub async fn handle_binary(&mut self) {
        let err = RpcError::invalid_params("binary frames are not supported; send JSON text");
        self.unanswerable("binary", &err);
    }

    /// A message whose request id cannot be known gets no response, as codex 0.169 answers it:
    /// codex's request id is a string or an integer, so `"id": null` would break its typed
    /// clients. The error is logged (its text is voxgate's, bounded) and counted; the connection
    /// goes on.
    fn unanswerable(&self, reason: &'static str, err: &RpcError) {
        crate::metrics::RPC_UNANSWERABLE
            .with_label_values(&[reason])
            .inc();
        let shown: String = err.message.chars().take(200).collect();
        tracing::warn!(conn = self.id, reason, code = err.code, message = ?shown,
            "a JSON-RPC message with no usable id was dropped unanswered");
    }

    fn subscribe(&self, thread_id: &str) {
        self.app.sessions.subscribe(
            &self.principal.key_id,
            thread_id,
            Subscriber {
                conn_id: self.id,
                tx: self.out.clone(),
                opt_out: self.opt_out.clone(),
                kill: self.kill.clone(),
            },
        );
    }

    async fn dispatch(
        &mut self,
        method: &str,
        params: Value,
    ) -> Result<(Value, Option<After>), RpcError> {
        if method == p::METHOD_INITIALIZE && self.initialized {
            return Err(RpcError::new(p::INVALID_REQUEST, "Already initialized"));
        }
        if method != p::METHOD_INITIALIZE && !self.initialized {
            return Err(RpcError::new(p::INVALID_REQUEST, "Not initialized"));
        }
        if ClientRequest::is_realtime_method(method) && !self.experimental {
            return Err(RpcError::new(
                p::INVALID_REQUEST,
                format!("{method} requires experimentalApi capability"),
            ));
        }
        match ClientRequest::decode(method, params)? {
            ClientRequest::Initialize(init) => {
                let caps = init.capabilities.unwrap_or_default();
                self.experimental = caps.experimental_api;
                self.opt_out = Arc::new(caps.opt_out_notification_methods.into_iter().collect());
                self.initialized = true;
                self.client = init
                    .client_info
                    .name
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect();
                let version: String = init
                    .client_info
                    .version
                    .chars()
                    .take(32)
                    .flat_map(char::escape_debug)
                    .collect();
                tracing::info!(client = %self.client.escape_debug(), %version, "rpc client initialized");
                Ok((p::initialize_result(&codex_home()), None))
            }
            ClientRequest::Start(params) => {
                self.subscribe(&params.thread_id);
                self.claim(&params.thread_id).await;
                Ok((json!({}), Some(After::Start(params))))
            }
            ClientRequest::StartRefused { thread_id, message } => {
                self.subscribe(&thread_id);
                Ok((json!({}), Some(After::Refused { thread_id, message })))
            }
            ClientRequest::AppendAudio { thread_id, chunk } => {
                self.known_thread(&thread_id)?;
                self.subscribe(&thread_id);
                let d = self.append_audio(&thread_id, chunk);
                Ok((json!({}), not_running(d, thread_id)))
            }
            ClientRequest::AppendText(params) => {
                self.known_thread(&params.thread_id)?;
                self.subscribe(&params.thread_id);
                let cmd = ClientCommand::AppendText {
                    text: params.text,
                    role: params.role.unwrap_or_default(),
                };
                let d = self
                    .app
                    .sessions
                    .send_command(
                        &self.principal.key_id,
                        &params.thread_id,
                        SessionCommand::Client(cmd),
                    )
                    .await;
                Ok((json!({}), not_running(d, params.thread_id)))
            }
            ClientRequest::Stop(params) => {
                self.subscribe(&params.thread_id);
                Ok((json!({}), Some(After::Stop(params.thread_id))))
            }
            ClientRequest::ListVoices => Ok((list_voices(), None)),
            ClientRequest::AppendSpeech(params) => {
                self.known_thread(&params.thread_id)?;
                self.subscribe(&params.thread_id);
                let cmd = ClientCommand::AppendSpeech(params.text);
                let d = self
                    .app
                    .sessions
                    .send_command(
                        &self.principal.key_id,
                        &params.thread_id,
                        SessionCommand::Client(cmd),
                    )
                    .await;
                Ok((json!({}), not_running(d, params.thread_id)))
            }
            ClientRequest::ThreadStart => {
                let id = p::new_thread_id();
                self.subscribe(&id);
                self.claim(&id).await;
                let (created_at, running) = self
                    .app
                    .sessions
                    .thread_state(&self.principal.key_id, &id)
                    .unwrap_or((p::now_ms() / 1000, false));
                let thread = p::thread_object(&id, &codex_home(), created_at, running);
                let result =
                    p::thread_result(thread.clone(), &codex_home(), &self.app.cfg.upstream.model);
                Ok((result, Some(After::ThreadStarted(thread))))
            }
            ClientRequest::ThreadResume(params) => {
                let Some((created_at, running)) = self
                    .app
                    .sessions
                    .thread_state(&self.principal.key_id, &params.thread_id)
                else {
                    return Err(RpcError::new(
                        p::INVALID_REQUEST,
                        format!("thread not found: {}", params.thread_id),
                    ));
                };
                // Rejoining the thread reattaches a detached conversation (what was missed
                // first).
                self.subscribe(&params.thread_id);
                let thread =
                    p::thread_object(&params.thread_id, &codex_home(), created_at, running);
                Ok((
                    p::thread_result(thread, &codex_home(), &self.app.cfg.upstream.model),
                    None,
                ))
            }
            ClientRequest::ThreadUnsubscribe(params) => {
                let (status, unloaded) = self.app.sessions.unsubscribe(
                    &self.principal.key_id,
                    &params.thread_id,
                    self.id,
                );
                let closed = unloaded.then(|| After::ThreadClosed(params.thread_id));
                Ok((json!({"status": status.as_str()}), closed))
            }
            ClientRequest::ReadTranscript(params) => {
                match self
                    .app
                    .sessions
                    .transcript(&self.principal.key_id, &params.thread_id)
                {
                    Some(t) => Ok((serde_json::to_value(t).unwrap_or_default(), None)),
                    None => Err(RpcError::new(
                        p::INVALID_REQUEST,
                        format!("thread not found: {}", params.thread_id),
                    )),
                }
            }
        }
    }

    /// Appending to a thread this key never had is codex's -32600 `thread not found: <id>` (a
    /// thread that exists but runs no conversation answers `{}` and an `error` notification).
    fn known_thread(&self, thread_id: &str) -> Result<(), RpcError> {
        if self.audio_to.contains_key(thread_id)
            || self.app.sessions.knows(&self.principal.key_id, thread_id)
        {
            return Ok(());
        }
        Err(RpcError::new(
            p::INVALID_REQUEST,
            format!("thread not found: {thread_id}"),
        ))
    }

    /// Hand a frame to the thread's session through the cached handle, refreshed from the
    /// registry only when the thread's session is new or gone.
    fn append_audio(&mut self, thread_id: &str, chunk: AudioChunk) -> Delivery {
        let cached = self
            .audio_to
            .get(thread_id)
            .filter(|s| s.is_running())
            .cloned();
        let sender = match cached {
            Some(s) => s,
            None => {
                let Some(s) = self.app.sessions.sender(&self.principal.key_id, thread_id) else {
                    self.audio_to.remove(thread_id);
                    return Delivery::NotRunning;
                };
                if self.audio_to.len() >= AUDIO_SENDERS {
                    self.audio_to.clear();
                }
                self.audio_to.insert(thread_id.to_owned(), s.clone());
                s
            }
        };
        sender.append_audio(chunk)
    }

    /// Work that must follow the `{}` reply (fire-and-forget semantics).
    async fn after_reply(&self, after: After) {
        match after {
            After::ThreadClosed(thread_id) => {
                let n = json!({"method": "thread/closed", "params": {"threadId": thread_id},
                    "emittedAtMs": p::now_ms()});
                self.send(n.to_string()).await;
            }
            After::Refused { thread_id, message } => {
                tracing::info!(%message, "refusing a start");
                self.app.sessions.notify(
                    &self.principal.key_id,
                    &thread_id,
                    &Notification::Error { message },
                );
            }
            After::ThreadStarted(thread) => {
                let n = json!({"method": "thread/started", "params": {"thread": thread},
                    "emittedAtMs": p::now_ms()});
                self.send(n.to_string()).await;
            }
            After::Start(params) => {
                let thread_id = params.thread_id.clone();
                if let Some(voice_session) = &params.voice_session_id {
                    // Client text: bounded, and escaped by `?`.
                    let shown: String = voice_session.chars().take(64).collect();
                    tracing::info!(
                        voice_session_id = ?shown,
                        "starting a conversation for the client's voice session"
                    );
                }
                let permit = match self.app.admit(&self.principal).await {
                    Ok(p) => p,
                    Err(e) => {
                        self.app.sessions.notify(
                            &self.principal.key_id,
                            &thread_id,
                            &Notification::Error { message: e.message },
                        );
                        return;
                    }
                };
                if let Some(p::Transport::Webrtc { sdp }) = &params.transport
                    && sdp.len() > self.app.cfg.webrtc.max_offer_bytes
                {
                    let message = format!(
                        "the offer exceeds {} bytes",
                        self.app.cfg.webrtc.max_offer_bytes
                    );
                    drop(permit);
                    self.app.sessions.notify(
                        &self.principal.key_id,
                        &thread_id,
                        &Notification::Error { message },
                    );
                    return;
                }
                if let Some(p::Transport::Webrtc { sdp }) = params.transport.clone() {
                    tracing::info!(%thread_id, offer = %crate::media::call::describe_offer(&sdp), "webrtc start");
                    let mode = params.webrtc_mode.unwrap_or(self.app.cfg.webrtc.mode);
                    if let Err(e) = self
                        .app
                        .start_webrtc(
                            *params,
                            &sdp,
                            mode,
                            crate::app::Origin::Rpc,
                            &self.principal.key_id,
                            Some(permit),
                        )
                        .await
                    {
                        let message = e.to_string();
                        self.app.sessions.notify(
                            &self.principal.key_id,
                            &thread_id,
                            &Notification::Error { message },
                        );
                    }
                    return;
                }
                // A call another cluster node runs for another key is as unknown as a local one.
                if let Some(p::Transport::ExistingCall { call_id }) = &params.transport
                    && !self.principal.admin
                    && let Some(cluster) = self.app.cluster()
                    && cluster
                        .call_of_another_key(call_id, &self.principal.key_id)
                        .await
                {
                    let message = format!(
                        "the realtime service refused the call (HTTP 404): no call `{call_id}`"
                    );
                    self.app.sessions.notify(
                        &self.principal.key_id,
                        &thread_id,
                        &Notification::Error { message },
                    );
                    return;
                }
                if let Err(message) =
                    self.app
                        .start_conversation(*params, &self.principal.key_id, Some(permit))
                {
                    tracing::info!(%thread_id, %message, "realtime start refused");
                    self.app.sessions.notify(
                        &self.principal.key_id,
                        &thread_id,
                        &Notification::Error { message },
                    );
                }
            }
            After::Stop(thread_id) => self.app.sessions.stop(&self.principal.key_id, &thread_id),
            After::NotRunning(thread_id) => self.app.sessions.notify(
                &self.principal.key_id,
                &thread_id,
                &Notification::Error {
                    message: "conversation is not running".into(),
                },
            ),
        }
    }
}

impl Drop for RpcConnection {
    fn drop(&mut self) {
        self.app.sessions.unsubscribe_all(self.id);
    }
}

enum After {
    Start(Box<p::StartParams>),
    /// `thread/started` for the thread just created, to the connection that created it.
    ThreadStarted(Value),
    /// `thread/closed`: the thread this connection left is gone (nothing ran on it, nobody
    /// else is on it).
    ThreadClosed(String),
    /// A start voxgate will not carry out: the `error` that says why.
    Refused {
        thread_id: String,
        message: String,
    },
    Stop(String),
    NotRunning(String),
}

fn not_running(d: Delivery, thread_id: String) -> Option<After> {
    (d == Delivery::NotRunning).then_some(After::NotRunning(thread_id))
}

/// voxgate keeps no codex home of its own: `$CODEX_HOME` when set, else the working directory
/// (codex requires an absolute path).
fn codex_home() -> String {
    std::env::var_os("CODEX_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| std::path::PathBuf::from("/"))
        .display()
        .to_string()
}

fn list_voices() -> Value {
    json!({"voices": {
        "v1": session_config::voices(ModelVersion::V1),
        "v2": session_config::voices(ModelVersion::V2),
        "v3": session_config::voices(ModelVersion::V3),
        "defaultV1": session_config::DEFAULT_V1_VOICE,
        "defaultV2": session_config::DEFAULT_V2_VOICE,
    }})
}
