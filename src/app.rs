//! `AppState`: what every face shares — the validated config, the session registry, the agent
//! core, the shared media port, and the resolved upstream (the in-process simulator when
//! `[upstream] kind = "simulator"`). Every start goes one way: `prepare` validates the params
//! once, `launch` builds the session's core and reactor I/O from them and starts it.

use crate::agent::AgentCore;
use crate::config::{AgentKind, Config, UpstreamKind};
use crate::engine::EngineConfig;
use crate::media::call::{CallMedia, MediaTimeouts};
use crate::media::shards::MediaShards;
use crate::protocol::ModelVersion;
use crate::protocol::rpc::{StartParams, Transport};
use crate::protocol::session_config::{self, OutputModality, SessionMode, SessionSettings};
use crate::session::core::{ClientSide, CoreConfig, SessionCore};
use crate::session::outbox::OutboxLimits;
use crate::session::reactor::SessionIo;
use crate::session::registry::SessionKind;
use crate::session::{Face, Sessions};
use crate::simulator::Simulator;
use crate::upstream::{UpstreamRequest, url};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod socket_faces;
pub use socket_faces::SocketRefused;

/// Why a WebRTC start failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Offer(crate::media::call::OfferError),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Upstream(crate::upstream::call::CallCreateError),
}

pub use crate::config::WebrtcMode;

/// An answered WebRTC start.
#[derive(Debug, Clone)]
pub struct WebrtcStart {
    pub answer: String,
    /// The model service's call id (passthrough).
    pub upstream_call_id: Option<String>,
    /// The thread the conversation runs on.
    pub thread_id: String,
}

/// How a session's client is reached.
/// A call id from a client, before it goes into an upstream URL: the service's ids are short
/// and plain (`rtc_…`), and anything else is refused by name.
fn check_call_id(call_id: &str) -> Result<(), String> {
    let plain = call_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if call_id.is_empty() || call_id.len() > 128 || !plain {
        let shown: String = call_id.chars().take(64).collect();
        return Err(format!(
            "transport existingCall needs the call id the model service gave (letters, digits, \
             `_` and `-`, at most 128): got {shown:?}"
        ));
    }
    Ok(())
}

enum Launch {
    /// JSON-RPC subscribers of the thread.
    Rpc,
    /// JSON-RPC subscribers of a call negotiated with the model service elsewhere (codex's
    /// `existingCall`): the model socket is the call's sideband.
    RpcOnCall,
    /// A WebRTC caller voxgate terminates: its media, its route on the shared port, the answer.
    Relay {
        media: Box<CallMedia>,
        route: (
            crate::media::shards::MediaRoute,
            tokio::sync::mpsc::Receiver<crate::media::shards::Datagram>,
        ),
        answer: String,
    },
    /// A WebRTC caller connected to the model's own calls endpoint (voxgate rides the sideband).
    Passthrough {
        answer: String,
        call: Option<crate::upstream::call::UpstreamCall>,
    },
    /// A GPT-Live-dialect websocket client (`/v1/live`, `/v1/live/sessions`).
    Live {
        socket: Box<axum::extract::ws::WebSocket>,
        codec: crate::session::live_codec::LiveCodec,
        delegation: bool,
    },
    /// An OpenAI-protocol websocket client and the session it configured.
    OpenAi {
        socket: Box<axum::extract::ws::WebSocket>,
        session: serde_json::Value,
        delegation: bool,
    },
}

/// What a session's face decides about it.
struct ClientPlan {
    face: Face,
    side: ClientSide,
    socket: Option<axum::extract::ws::WebSocket>,
    media: Option<(
        crate::media::shards::MediaRoute,
        tokio::sync::mpsc::Receiver<crate::media::shards::Datagram>,
    )>,
    answer: Option<String>,
    session_update: serde_json::Value,
    delegation: bool,
    upstream_call: Option<crate::upstream::call::UpstreamCall>,
}

/// voxgate's acknowledgement sentences: the configured wording, the defaults elsewhere.
fn acks(cfg: &crate::config::AckConfig) -> crate::engine::Acks {
    let d = crate::engine::Acks::default();
    let pick = |o: &Option<String>, d: String| o.clone().unwrap_or(d);
    crate::engine::Acks {
        completed: pick(&cfg.completed, d.completed),
        steering: pick(&cfg.steering, d.steering),
        no_message: pick(&cfg.no_message, d.no_message),
        failed: pick(&cfg.failed, d.failed),
        cancelled: pick(&cfg.cancelled, d.cancelled),
        nothing_to_delegate: pick(&cfg.nothing_to_delegate, d.nothing_to_delegate),
    }
}

/// The instant every relay call's 20 ms pacing grid starts from, so all their ticks coincide.
fn media_grid() -> std::time::Instant {
    static GRID: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *GRID.get_or_init(std::time::Instant::now)
}

/// Where a start came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `thread/realtime/start` on a JSON-RPC connection: the thread's subscribers hold it.
    Rpc,
    /// `POST /v1/realtime/calls`: the caller's media holds it.
    HttpCall,
}

/// The bearer voxgate presents to its embedded simulator.
const EMBEDDED_SIMULATOR_KEY: &str = "sk-voxgate-embedded-simulator";

struct Prepared {
    /// The principal (API key id) the session belongs to.
    owner: String,
    /// The session ends when its thread's last JSON-RPC subscriber leaves (no slot is held by
    /// nobody).
    held_by_subscribers: bool,
    permit: Option<crate::auth::SessionPermit>,
    model: String,
    session_id: String,
    settings: SessionSettings,
    api_key: Option<String>,
    agent: Arc<dyn AgentCore>,
    /// Playback-aware input gating for a relay call.
    input_gate: Option<crate::engine::input_gate::GateConfig>,
}

pub struct AppState {
    pub cfg: Arc<Config>,
    pub sessions: Arc<Sessions>,
    /// API keys, client secrets and per-key limits for every face.
    pub auth: crate::auth::Auth,
    /// Agent backends by kind; `[agent] kind` is the default, a start may pick another.
    pub agents: HashMap<AgentKind, Arc<dyn AgentCore>>,
    /// Base URL of the model (the embedded simulator's when it is used).
    pub upstream_base: String,
    /// Held to keep the in-process simulator running.
    pub simulator: Option<Simulator>,
    /// The UDP port every relay call's media shares.
    pub media: MediaShards,
    prompt_template: String,
    next_conn: AtomicU64,
    http: reqwest::Client,
    /// Set when shutdown began: no new sessions, running ones may finish.
    draining: AtomicBool,
    /// Open JSON-RPC websocket connections; set to close them (after what they owe is written)
    /// when the server stops. Upgraded sockets outlive axum's graceful shutdown.
    connections: tokio::sync::watch::Sender<crate::rpc::connections::Connections>,
    /// This node's place in a cluster (`[cluster] redis_url`), set once it listens.
    pub(crate) cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl AppState {
    /// Build the shared state; starts the in-process simulator when configured.
    pub async fn build(cfg: Config) -> std::io::Result<Arc<Self>> {
        let agents = crate::agent::backends(&cfg.agent);
        Self::with_agents(cfg, agents).await
    }

    pub async fn with_agents(
        cfg: Config,
        agents: HashMap<AgentKind, Arc<dyn AgentCore>>,
    ) -> std::io::Result<Arc<Self>> {
        crate::metrics::init();
        let (simulator, upstream_base) = match cfg.upstream.kind {
            UpstreamKind::Simulator => {
                let sim =
                    Simulator::start(([127, 0, 0, 1], 0).into(), cfg.simulator.clone()).await?;
                let base = sim.base_url();
                tracing::info!(addr = %sim.addr, "embedded realtime simulator running");
                (Some(sim), base)
            }
            UpstreamKind::Openai => (None, cfg.upstream.base_url.clone()),
        };
        let w = &cfg.webrtc;
        let shards = match w.media_shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let media =
            MediaShards::start(w.bind_ip, w.udp_port, w.public_ip, shards).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "could not open the media port {}:{} ([webrtc] bind_ip, udp_port): {e}",
                        w.bind_ip, w.udp_port
                    ),
                )
            })?;
        tracing::info!(addr = %media.local_addr(), advertised = %media.advertised_addr(), shards,
            "media port open for relay calls");
        Ok(Arc::new(Self {
            media,
            prompt_template: cfg.prompt_template(),
            auth: crate::auth::Auth::new(&cfg.auth),
            // A thread's record outlives its conversation by the detach grace (at least a minute).
            sessions: Sessions::with_retention(Duration::from_secs(
                cfg.session.detach_grace_secs.max(60),
            )),
            cfg: Arc::new(cfg),
            agents,
            upstream_base,
            simulator,
            next_conn: AtomicU64::new(1),
            http: reqwest::Client::new(),
            draining: AtomicBool::new(false),
            connections: tokio::sync::watch::Sender::new(Default::default()),
            cluster: std::sync::OnceLock::new(),
        }))
    }

    /// Stop accepting sessions (shutdown began); `/readyz` reports it from now on.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        crate::metrics::DRAINING.set(1);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Count a JSON-RPC websocket connection while it lives.
    pub fn connection_slot(&self) -> crate::rpc::connections::ConnectionSlot {
        self.connections.send_modify(|c| c.open += 1);
        crate::rpc::connections::ConnectionSlot::new(self.connections.clone())
    }

    /// The server stopped: every JSON-RPC websocket connection writes what it still owes (the
    /// drain's `closed` notifications), says goodbye (1001) and ends; resolves when they have,
    /// or after `within`.
    pub async fn close_connections(&self, within: Duration) {
        self.connections.send_modify(|c| c.closing = true);
        let mut rx = self.connections.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|c| c.open == 0)).await;
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Validate a start and work out everything a session needs, without starting it.
    fn prepare(&self, p: &StartParams) -> Result<Prepared, String> {
        let version = p.version.unwrap_or(self.cfg.upstream.version);
        if p.output_modality == OutputModality::Text && version != ModelVersion::V2 {
            return Err("text realtime output modality requires realtime v2".into());
        }
        if version == ModelVersion::V3
            && p.mode.unwrap_or(self.cfg.session.mode) == SessionMode::Transcription
        {
            return Err("transcription sessions require realtime v2".into());
        }
        let voice = session_config::resolve_voice(
            version,
            p.voice.as_deref(),
            self.cfg.upstream.voice.as_deref(),
        )?;
        let agent_kind = p.agent.unwrap_or(self.cfg.agent.kind);
        let agent = self.agents.get(&agent_kind).cloned().ok_or_else(|| {
            format!(
                "agent backend `{}` is not configured (set [agent.{}] in the config)",
                agent_kind.as_str(),
                agent_kind.as_str()
            )
        })?;
        let api_key = match self.cfg.upstream.kind {
            // The embedded simulator wants a bearer as the service does (its calls endpoint
            // refuses a call without one); any value will do, and it never leaves the process.
            UpstreamKind::Simulator => Some(EMBEDDED_SIMULATOR_KEY.to_owned()),
            UpstreamKind::Openai => Some(
                self.cfg
                    .upstream
                    .resolve_api_key()
                    .ok_or_else(|| "realtime conversation requires API key auth".to_owned())?,
            ),
        };
        let instructions = session_config::resolve_instructions(
            &p.prompt,
            self.cfg.session.prompt_override.as_deref(),
            &self.prompt_template,
            self.cfg
                .session
                .startup_context
                .as_deref()
                .filter(|_| p.include_startup_context != Some(false)),
        );
        let model = p.model.clone().unwrap_or_else(|| match version {
            ModelVersion::V3 => self.cfg.upstream.live_model.clone(),
            ModelVersion::V1 | ModelVersion::V2 => self.cfg.upstream.model.clone(),
        });
        let settings = SessionSettings {
            version,
            mode: p.mode.unwrap_or(self.cfg.session.mode),
            output_modality: p.output_modality,
            instructions,
            voice,
            model: model.clone(),
        };
        Ok(Prepared {
            owner: String::new(),
            held_by_subscribers: false,
            permit: None,
            model,
            session_id: p
                .realtime_session_id
                .clone()
                .unwrap_or_else(|| p.thread_id.clone()),
            settings,
            api_key,
            agent,
            input_gate: self
                .cfg
                .session
                .gate(p.input_gating.unwrap_or(self.cfg.session.input_gating)),
        })
    }

    /// Build the session's core and reactor I/O from a prepared start, and start it.
    fn launch(&self, thread_id: &str, prep: Prepared, url: String, client: Launch) {
        let prep_held_by_subscribers = prep.held_by_subscribers;
        let owner = prep.owner.clone();
        let version = prep.settings.version;
        // The model socket joins a call's sideband: the call's model session outlives a lost
        // sideband, and the call may still be settling upstream.
        let sideband = matches!(client, Launch::Passthrough { .. } | Launch::RpcOnCall);
        // A GPT-Live sideband joins a session that has started: it updates it (no model).
        let first_frame = if sideband && version == ModelVersion::V3 {
            let mut session = session_config::session_object(&prep.settings);
            if let Some(o) = session.as_object_mut() {
                o.remove("model");
            }
            serde_json::json!({"type": "session.update", "session": session})
        } else {
            session_config::session_update(&prep.settings)
        };
        let standard = |face| ClientPlan {
            face,
            side: ClientSide::Notifications,
            socket: None,
            media: None,
            answer: None,
            session_update: first_frame.clone(),
            delegation: true,
            upstream_call: None,
        };
        let ClientPlan {
            face,
            side,
            socket,
            media,
            answer,
            session_update,
            delegation,
            upstream_call,
        } = match client {
            Launch::Rpc | Launch::RpcOnCall => standard(Face::Rpc),
            Launch::Relay {
                media,
                route,
                answer,
            } => ClientPlan {
                side: ClientSide::relay(*media),
                media: Some(route),
                answer: Some(answer),
                ..standard(Face::WebrtcRelay)
            },
            Launch::Passthrough { answer, call } => ClientPlan {
                answer: Some(answer),
                upstream_call: call,
                ..standard(Face::WebrtcPassthrough)
            },
            Launch::Live {
                socket,
                codec,
                delegation,
            } => ClientPlan {
                side: ClientSide::Live(codec),
                socket: Some(*socket),
                delegation,
                ..standard(Face::LiveWs)
            },
            Launch::OpenAi {
                socket,
                session,
                delegation,
            } => ClientPlan {
                side: ClientSide::openai(delegation),
                socket: Some(*socket),
                session_update: serde_json::json!({"type": "session.update", "session": session}),
                delegation,
                ..standard(Face::OpenaiWs)
            },
        };
        // A sideband join retries with backoff (the call may still be settling upstream).
        let connect_attempts = if sideband {
            self.cfg.upstream.sideband_join_attempts.max(1)
        } else {
            1
        };
        let relay = face == Face::WebrtcRelay;
        let queue = self.cfg.upstream.audio_queue_frames;
        let model_limits = OutboxLimits {
            // A frame of 20 ms audio is ~1.3 KB on the wire.
            audio_limit: queue.max(1) * 1400,
            ..OutboxLimits::default()
        };
        let core = SessionCore::new(
            CoreConfig {
                face,
                engine: EngineConfig {
                    version,
                    realtime_session_id: prep.session_id.clone(),
                    session_update,
                    acks: acks(&self.cfg.session.acks),
                    local_playout: relay,
                    delegation,
                    // JSON-RPC subscribers follow its contract (an error ends the conversation);
                    // OpenAI-protocol clients get errors as the service sends them and go on.
                    errors_end_session: prep_held_by_subscribers,
                    // A passthrough call's model session outlives a lost sideband: rejoining it
                    // must not tell it its own conversation again.
                    replay: crate::engine::memory::ReplayBudget {
                        items: if sideband {
                            0
                        } else {
                            self.cfg.upstream.replay_items
                        },
                        chars: self.cfg.upstream.replay_chars,
                    },
                    input_gate: prep.input_gate,
                },
                task_timeout: Duration::from_secs(self.cfg.agent.task_timeout_secs),
                max_duration: prep.permit.as_ref().and_then(|p| p.max_duration),
                answer,
                model_limits,
                client_limits: OutboxLimits {
                    stall: Duration::from_secs(self.cfg.server.client_stall_secs),
                    ..OutboxLimits::default()
                },
                model_idle: match self.cfg.upstream.idle_timeout_secs {
                    0 => None,
                    secs => Some(Duration::from_secs(secs)),
                },
                reconnect: crate::session::reconnect::ReconnectPolicy {
                    attempts: self.cfg.upstream.reconnect_attempts,
                    backoff: Duration::from_millis(self.cfg.upstream.reconnect_backoff_ms),
                },
                // A passthrough call's model session is the call itself: it cannot be swapped.
                rollover_after: match self.cfg.upstream.max_session_secs {
                    0 => None,
                    _ if face == Face::WebrtcPassthrough => None,
                    secs => Some(Duration::from_secs(secs)),
                },
                detach_grace: prep_held_by_subscribers
                    .then(|| Duration::from_secs(self.cfg.session.detach_grace_secs)),
            },
            side,
            std::time::Instant::now(),
        );
        let io = SessionIo {
            thread_id: thread_id.to_owned(),
            upstream: UpstreamRequest {
                url,
                api_key: prep.api_key,
                session_id: prep.session_id,
                version,
                connect_timeout: Duration::from_millis(self.cfg.upstream.connect_timeout_ms),
                connect_attempts,
                connect_backoff: Duration::from_millis(self.cfg.upstream.sideband_join_backoff_ms),
            },
            agent: prep.agent,
            client: socket,
            media,
            permit: prep.permit,
            upstream_call,
        };
        let kind = match face {
            Face::WebrtcRelay | Face::WebrtcPassthrough => SessionKind::Call,
            Face::Rpc | Face::OpenaiWs | Face::LiveWs => SessionKind::Conversation,
        };
        self.sessions
            .start(&owner, kind, core, io, queue, prep_held_by_subscribers);
    }

    fn model_url(&self, prep: &Prepared) -> Result<String, String> {
        url::realtime_ws_url(
            &self.upstream_base,
            prep.settings.version,
            Some(&prep.model),
            None,
            &self.cfg.upstream.extra_query,
        )
    }

    /// Validate a websocket start and launch the session. `Err` is a setup failure message for an
    /// `error` notification (no `closed`).
    pub fn start_conversation(
        &self,
        p: StartParams,
        owner: &str,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(), String> {
        if let Some(Transport::Webrtc { .. }) = p.transport {
            return Err("a webrtc start needs its offer answered first".into());
        }
        let mut prep = self.prepare(&p)?;
        prep.permit = permit;
        prep.owner = owner.to_owned();
        prep.held_by_subscribers = true;
        if let Some(Transport::ExistingCall { call_id }) = &p.transport {
            check_call_id(call_id)?;
            // A call voxgate runs belongs to its owner: another key may not ride its sideband
            // (told as the service tells an unknown call, revealing nothing).
            if self.sessions.call(None, call_id).is_some()
                && self.sessions.call(Some(owner), call_id).is_none()
            {
                return Err(format!(
                    "the realtime service refused the call (HTTP 404): no call `{call_id}`"
                ));
            }
            let url = url::realtime_ws_url(
                &self.upstream_base,
                prep.settings.version,
                None,
                Some(call_id),
                &self.cfg.upstream.extra_query,
            )?;
            self.launch(&p.thread_id, prep, url, Launch::RpcOnCall);
            return Ok(());
        }
        let url = self.model_url(&prep)?;
        self.launch(&p.thread_id, prep, url, Launch::Rpc);
        Ok(())
    }

    /// Answer a WebRTC offer. Relay: voxgate terminates WebRTC and bridges to the model's
    /// websocket. Passthrough: the offer goes to the model's calls endpoint and voxgate joins the
    /// call's sideband in the background. Announces `started` then `thread/realtime/sdp`.
    /// An HTTP call in passthrough is named after the upstream call; a JSON-RPC start's call
    /// ends when its thread's last subscriber leaves.
    pub async fn start_webrtc(
        &self,
        mut p: StartParams,
        offer: &str,
        mode: WebrtcMode,
        origin: Origin,
        owner: &str,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<WebrtcStart, CallError> {
        let adopt_call_id = origin == Origin::HttpCall;
        let mut prep = self.prepare(&p).map_err(CallError::Setup)?;
        prep.permit = permit;
        prep.held_by_subscribers = origin == Origin::Rpc;
        prep.owner = owner.to_owned();
        let version = prep.settings.version;
        let answer = match mode {
            WebrtcMode::Relay => {
                let url = self.model_url(&prep).map_err(CallError::Setup)?;
                let ufrag = crate::media::call::new_ufrag();
                let w = &self.cfg.webrtc;
                let (answer, media) = CallMedia::accept(
                    offer,
                    self.media.local_addr(),
                    self.media.advertised_addr(),
                    ufrag,
                    media_grid(),
                    MediaTimeouts {
                        connect: Duration::from_secs(w.connect_timeout_secs),
                        silence: Duration::from_secs(w.silence_timeout_secs),
                        ice_grace: Duration::from_secs(self.cfg.session.detach_grace_secs),
                    },
                    std::time::Instant::now(),
                )
                .map_err(CallError::Offer)?;
                let route = self.media.register(media.ufrag());
                self.launch(
                    &p.thread_id,
                    prep,
                    url,
                    Launch::Relay {
                        media: Box::new(media),
                        route,
                        answer: answer.clone(),
                    },
                );
                WebrtcStart {
                    answer,
                    upstream_call_id: None,
                    thread_id: p.thread_id.clone(),
                }
            }
            WebrtcMode::Passthrough => {
                let mut session = session_config::session_object(&prep.settings);
                session["model"] = prep.model.as_str().into();
                let created = if version == ModelVersion::V3 {
                    crate::upstream::call::create_live_session(
                        &self.http,
                        &self.upstream_base,
                        prep.api_key.as_deref(),
                        offer,
                        &session,
                    )
                    .await
                } else {
                    crate::upstream::call::create_call(
                        &self.http,
                        &self.upstream_base,
                        prep.api_key.as_deref(),
                        offer,
                        Some(&session),
                    )
                    .await
                };
                let (answer, call_id) = created.map_err(CallError::Upstream)?;
                if adopt_call_id {
                    p.thread_id = call_id.clone();
                }
                let upstream_key = prep.api_key.clone();
                let url = url::realtime_ws_url(
                    &self.upstream_base,
                    version,
                    None,
                    Some(&call_id),
                    &self.cfg.upstream.extra_query,
                )
                .map_err(CallError::Setup)?;
                self.launch(
                    &p.thread_id,
                    prep,
                    url,
                    Launch::Passthrough {
                        answer: answer.clone(),
                        // GPT-Live's session ends with the sideband's `session.close`.
                        call: (version != ModelVersion::V3).then(|| {
                            crate::upstream::call::UpstreamCall {
                                http: self.http.clone(),
                                base_url: self.upstream_base.clone(),
                                api_key: upstream_key,
                                call_id: call_id.clone(),
                            }
                        }),
                    },
                );
                WebrtcStart {
                    answer,
                    upstream_call_id: Some(call_id),
                    thread_id: p.thread_id.clone(),
                }
            }
        };
        Ok(answer)
    }
}
