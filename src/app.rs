//! `AppState`: what every face shares — the validated config, the session registry, the agent
//! core, and the resolved upstream (the in-process simulator when `[upstream] kind =
//! "simulator"`). `start_conversation` turns validated start params into a running session.

use crate::agent::AgentCore;
use crate::config::{AgentKind, Config, UpstreamKind};
use crate::engine::EngineConfig;
use crate::protocol::ModelVersion;
use crate::protocol::rpc::{StartParams, Transport};
use crate::protocol::session_config::{self, OutputModality, SessionSettings};
use crate::runtime::session_task::CallLink;
use crate::runtime::{Face, SessionSpec, Sessions};
use crate::simulator::Simulator;
use crate::upstream::{UpstreamRequest, url};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Why a WebRTC start failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Offer(crate::media::peer::OfferError),
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

struct Prepared {
    permit: Option<crate::auth::SessionPermit>,
    model: String,
    session_id: String,
    settings: SessionSettings,
    api_key: Option<String>,
    agent: Arc<dyn AgentCore>,
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
    prompt_template: String,
    next_conn: AtomicU64,
    http: reqwest::Client,
    /// Set when shutdown began: no new sessions, running ones may finish.
    draining: AtomicBool,
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
        Ok(Arc::new(Self {
            prompt_template: cfg.prompt_template(),
            auth: crate::auth::Auth::new(&cfg.auth),
            cfg: Arc::new(cfg),
            sessions: Sessions::new(),
            agents,
            upstream_base,
            simulator,
            next_conn: AtomicU64::new(1),
            http: reqwest::Client::new(),
            draining: AtomicBool::new(false),
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

    /// Admit a new session for `p`: refused while draining, else the key's limits decide.
    pub fn admit(
        &self,
        p: &crate::auth::Principal,
    ) -> Result<crate::auth::SessionPermit, crate::auth::AuthError> {
        if self.is_draining() {
            return Err(crate::auth::AuthError {
                status: 503,
                code: "draining",
                message: "voxgate is shutting down and accepts no new sessions; retry on another instance"
                    .into(),
            });
        }
        self.auth.admit(p)
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Validate a start and work out everything a session needs, without starting it.
    fn prepare(&self, p: &StartParams) -> Result<Prepared, String> {
        let version = p.version.unwrap_or(self.cfg.upstream.version);
        if p.output_modality == OutputModality::Text && version == ModelVersion::V1 {
            return Err("text realtime output modality requires realtime v2".into());
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
            UpstreamKind::Simulator => None,
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
            self.cfg.session.startup_context.as_deref(),
        );
        let settings = SessionSettings {
            version,
            mode: p.mode.unwrap_or(self.cfg.session.mode),
            output_modality: p.output_modality,
            instructions,
            voice,
        };
        Ok(Prepared {
            permit: None,
            model: p
                .model
                .clone()
                .unwrap_or_else(|| self.cfg.upstream.model.clone()),
            session_id: p
                .realtime_session_id
                .clone()
                .unwrap_or_else(|| p.thread_id.clone()),
            settings,
            api_key,
            agent,
        })
    }

    /// Launch a prepared session toward `url`.
    fn launch(
        &self,
        thread_id: &str,
        prep: Prepared,
        url: String,
        call: Option<CallLink>,
        webrtc: bool,
    ) {
        let version = prep.settings.version;
        let face = match (webrtc, call.is_some()) {
            (false, _) => Face::Rpc,
            (true, true) => Face::WebrtcRelay,
            (true, false) => Face::WebrtcPassthrough,
        };
        let spec = SessionSpec {
            thread_id: thread_id.to_owned(),
            face,
            engine: EngineConfig {
                version,
                realtime_session_id: prep.session_id.clone(),
                session_update: session_config::session_update(&prep.settings),
                acks: self.cfg.session.acks.to_acks(),
                local_playout: call.is_some(),
                delegation: true,
            },
            upstream: UpstreamRequest {
                url,
                api_key: prep.api_key,
                session_id: prep.session_id,
                version,
                connect_timeout: Duration::from_millis(self.cfg.upstream.connect_timeout_ms),
                audio_queue: self.cfg.upstream.audio_queue_frames,
                // Calls keep raw events for their data channel and for sideband observers.
                keep_raw: webrtc,
                // A sideband join retries with backoff (the call may still be settling upstream).
                connect_attempts: if webrtc && call.is_none() { 5 } else { 1 },
            },
            agent: prep.agent,
            task_timeout: Duration::from_secs(self.cfg.agent.task_timeout_secs),
            announce_started: !webrtc,
            call,
            openai_client: None,
            permit: prep.permit,
        };
        self.sessions
            .start(spec, self.cfg.upstream.audio_queue_frames);
    }

    /// Start a session for an OpenAI-protocol websocket client (`GET /v1/realtime?model=…`):
    /// raw events both ways, voxgate's delegation added when `[openai] delegation` is on.
    pub fn start_openai_session(
        &self,
        thread_id: &str,
        model: Option<String>,
        v1: bool,
        out: tokio::sync::mpsc::Sender<String>,
        principal: Option<&crate::auth::Principal>,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(), String> {
        let version = if v1 {
            ModelVersion::V1
        } else {
            ModelVersion::V2
        };
        let p: StartParams = serde_json::from_value(serde_json::json!({
            "threadId": thread_id, "outputModality": "audio", "model": model, "version": version,
        }))
        .map_err(|e| e.to_string())?;
        let prep = self.prepare(&p)?;
        let url = self.model_url(&prep)?;
        let delegation =
            self.cfg.openai.delegation && principal.is_none_or(|p| p.limits.delegation);
        // The client configures its own session (or a client secret's bound one); voxgate only
        // adds its tools (or nothing).
        let session_type = if v1 { "quicksilver" } else { "realtime" };
        let mut session = principal
            .and_then(|p| p.bound_session.clone())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({"type": session_type}));
        if delegation && !v1 {
            session["tools"] = session_config::delegation_tools();
            session["tool_choice"] = "auto".into();
        }
        let spec = SessionSpec {
            thread_id: thread_id.to_owned(),
            face: Face::OpenaiWs,
            engine: EngineConfig {
                version,
                realtime_session_id: prep.session_id.clone(),
                session_update: serde_json::json!({"type": "session.update", "session": session}),
                acks: self.cfg.session.acks.to_acks(),
                local_playout: false,
                delegation,
            },
            upstream: UpstreamRequest {
                url,
                api_key: prep.api_key,
                session_id: prep.session_id,
                version,
                connect_timeout: Duration::from_millis(self.cfg.upstream.connect_timeout_ms),
                audio_queue: self.cfg.upstream.audio_queue_frames,
                keep_raw: true,
                connect_attempts: 1,
            },
            agent: prep.agent,
            task_timeout: Duration::from_secs(self.cfg.agent.task_timeout_secs),
            announce_started: true,
            call: None,
            openai_client: Some(out),
            permit,
        };
        self.sessions
            .start(spec, self.cfg.upstream.audio_queue_frames);
        Ok(())
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
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(), String> {
        if let Some(Transport::Webrtc { .. }) = p.transport {
            return Err("a webrtc start needs its offer answered first".into());
        }
        let mut prep = self.prepare(&p)?;
        prep.permit = permit;
        let url = self.model_url(&prep)?;
        self.launch(&p.thread_id, prep, url, None, false);
        Ok(())
    }

    /// Answer a WebRTC offer. Relay: voxgate terminates WebRTC and bridges to the model's
    /// websocket. Passthrough: the offer goes to the model's calls endpoint and voxgate joins the
    /// call's sideband in the background. Announces `started` then `thread/realtime/sdp`.
    /// With `adopt_call_id` (HTTP calls in passthrough) the thread is named after the upstream call.
    pub async fn start_webrtc(
        &self,
        mut p: StartParams,
        offer: &str,
        mode: WebrtcMode,
        adopt_call_id: bool,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<WebrtcStart, CallError> {
        let mut prep = self.prepare(&p).map_err(CallError::Setup)?;
        prep.permit = permit;
        let version = prep.settings.version;
        let session_id = prep.session_id.clone();
        let answer = match mode {
            WebrtcMode::Relay => {
                let (answer, setup) = crate::media::peer::accept_offer(
                    offer,
                    self.cfg.webrtc.bind_ip,
                    self.cfg.webrtc.public_ip,
                )
                .map_err(CallError::Offer)?;
                let url = self.model_url(&prep).map_err(CallError::Setup)?;
                let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(4096);
                let (evt_tx, evt_rx) = tokio::sync::mpsc::channel(1024);
                let played = Arc::new(crate::media::peer::PlayedPosition::default());
                self.launch(
                    &p.thread_id,
                    prep,
                    url,
                    Some(CallLink {
                        commands: cmd_tx,
                        events: evt_rx,
                        played: played.clone(),
                    }),
                    true,
                );
                let w = &self.cfg.webrtc;
                tokio::spawn(crate::media::peer::run(
                    setup,
                    cmd_rx,
                    evt_tx,
                    played,
                    Duration::from_secs(w.connect_timeout_secs),
                    Duration::from_secs(w.silence_timeout_secs),
                ));
                WebrtcStart {
                    answer,
                    upstream_call_id: None,
                    thread_id: p.thread_id.clone(),
                }
            }
            WebrtcMode::Passthrough => {
                let mut session = session_config::session_object(&prep.settings);
                session["model"] = prep.model.as_str().into();
                let (answer, call_id) = crate::upstream::call::create_call(
                    &self.http,
                    &self.upstream_base,
                    prep.api_key.as_deref(),
                    offer,
                    Some(&session),
                )
                .await
                .map_err(CallError::Upstream)?;
                if adopt_call_id {
                    p.thread_id = call_id.clone();
                }
                let url = url::realtime_ws_url(
                    &self.upstream_base,
                    version,
                    None,
                    Some(&call_id),
                    &self.cfg.upstream.extra_query,
                )
                .map_err(CallError::Setup)?;
                self.launch(&p.thread_id, prep, url, None, true);
                WebrtcStart {
                    answer,
                    upstream_call_id: Some(call_id),
                    thread_id: p.thread_id.clone(),
                }
            }
        };
        use crate::protocol::rpc::Notification;
        self.sessions.notify(
            &answer.thread_id,
            &Notification::Started {
                realtime_session_id: session_id,
                version,
            },
        );
        self.sessions.notify(
            &answer.thread_id,
            &Notification::Sdp {
                sdp: answer.answer.clone(),
            },
        );
        Ok(answer)
    }
}
