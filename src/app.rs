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
use crate::runtime::{SessionSpec, Sessions};
use crate::simulator::Simulator;
use crate::upstream::{UpstreamRequest, url};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a WebRTC start failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Offer(crate::media::peer::OfferError),
    #[error("{0}")]
    Setup(String),
}

pub struct AppState {
    pub cfg: Arc<Config>,
    pub sessions: Arc<Sessions>,
    /// Agent backends by kind; `[agent] kind` is the default, a start may pick another.
    pub agents: HashMap<AgentKind, Arc<dyn AgentCore>>,
    /// Base URL of the model (the embedded simulator's when it is used).
    pub upstream_base: String,
    /// Held to keep the in-process simulator running.
    pub simulator: Option<Simulator>,
    prompt_template: String,
    next_conn: AtomicU64,
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
            cfg: Arc::new(cfg),
            sessions: Sessions::new(),
            agents,
            upstream_base,
            simulator,
            next_conn: AtomicU64::new(1),
        }))
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Validate a start and launch the session. `Err` is a setup failure message for an
    /// `error` notification (no `closed`).
    pub fn start_conversation(&self, p: StartParams) -> Result<(), String> {
        self.start_conversation_with(p, None)
    }

    /// Answer a WebRTC offer (relay mode): open the peer, start the conversation bridged to it, and
    /// return the answer SDP. Announces `started` then `thread/realtime/sdp` to the thread.
    pub fn start_webrtc(&self, p: StartParams, offer: &str) -> Result<String, CallError> {
        let (answer, setup) = crate::media::peer::accept_offer(
            offer,
            self.cfg.webrtc.bind_ip,
            self.cfg.webrtc.public_ip,
        )
        .map_err(CallError::Offer)?;
        let thread_id = p.thread_id.clone();
        let session_id = p
            .realtime_session_id
            .clone()
            .unwrap_or_else(|| thread_id.clone());
        let version = p.version.unwrap_or(self.cfg.upstream.version);
        let (cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(4096);
        let (evt_tx, evt_rx) = tokio::sync::mpsc::channel(1024);
        self.start_conversation_with(
            p,
            Some(CallLink {
                commands: cmd_tx,
                events: evt_rx,
            }),
        )
        .map_err(CallError::Setup)?;
        let w = &self.cfg.webrtc;
        tokio::spawn(crate::media::peer::run(
            setup,
            cmd_rx,
            evt_tx,
            Duration::from_secs(w.connect_timeout_secs),
            Duration::from_secs(w.silence_timeout_secs),
        ));
        use crate::protocol::rpc::Notification;
        self.sessions.notify(
            &thread_id,
            &Notification::Started {
                realtime_session_id: session_id,
                version,
            },
        );
        self.sessions.notify(
            &thread_id,
            &Notification::Sdp {
                sdp: answer.clone(),
            },
        );
        Ok(answer)
    }

    /// Start a conversation whose client is a WebRTC peer voxgate terminates (relay mode).
    pub fn start_conversation_with(
        &self,
        p: StartParams,
        call: Option<CallLink>,
    ) -> Result<(), String> {
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
        if let (Some(Transport::Webrtc { .. }), None) = (&p.transport, &call) {
            return Err("webrtc transport is not supported by this voxgate build yet".into());
        }
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
        let model = p.model.as_deref().unwrap_or(&self.cfg.upstream.model);
        let ws_url = url::realtime_ws_url(
            &self.upstream_base,
            version,
            Some(model),
            None,
            &self.cfg.upstream.extra_query,
        )?;
        let session_id = p
            .realtime_session_id
            .clone()
            .unwrap_or_else(|| p.thread_id.clone());
        let spec = SessionSpec {
            thread_id: p.thread_id.clone(),
            engine: EngineConfig {
                version,
                realtime_session_id: session_id.clone(),
                session_update: session_config::session_update(&settings),
                acks: self.cfg.session.acks.to_acks(),
                local_playout: call.is_some(),
            },
            upstream: UpstreamRequest {
                url: ws_url,
                api_key,
                session_id,
                version,
                connect_timeout: Duration::from_millis(self.cfg.upstream.connect_timeout_ms),
                audio_queue: self.cfg.upstream.audio_queue_frames,
                keep_raw: call.is_some(),
            },
            agent,
            task_timeout: Duration::from_secs(self.cfg.agent.task_timeout_secs),
            announce_started: call.is_none(),
            call,
        };
        self.sessions
            .start(spec, self.cfg.upstream.audio_queue_frames);
        Ok(())
    }
}
