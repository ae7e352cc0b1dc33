//! The one typed `Config`: loaded from a TOML file (every key optional, defaults for the rest),
//! overridden by `VOXGATE_<SECTION>__<KEY>` environment variables, and validated at start with
//! messages that name the offending key. Unknown keys are errors.

use crate::protocol::ModelVersion;
use crate::protocol::session_config::{self, SessionMode};
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod agent;
mod auth;
mod cluster;
mod env;
mod ice;
mod show;
mod simulator;
mod telemetry;
pub use env::env_warnings;
pub use ice::IceServerConfig;
pub use show::effective_toml;
pub use simulator::{DEFAULT_SPOKEN_SCRIPT, SimulatorConfig};
pub use telemetry::TelemetryConfig;
mod web;

pub use agent::*;
pub use auth::*;
pub use cluster::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("invalid config: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub session: SessionConfig,
    pub agent: AgentConfig,
    pub simulator: SimulatorConfig,
    pub webrtc: WebrtcConfig,
    pub openai: OpenaiFaceConfig,
    pub auth: AuthConfig,
    pub cluster: ClusterConfig,
    pub telemetry: TelemetryConfig,
}

/// The OpenAI-compatible face (`GET /v1/realtime`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenaiFaceConfig {
    /// Add voxgate's `background_agent`/`remain_silent` tools and answer them server-side. Off:
    /// every tool and call passes through untouched (clients that delegate on their own).
    pub delegation: bool,
}

impl Default for OpenaiFaceConfig {
    fn default() -> Self {
        Self { delegation: true }
    }
}

pub use crate::protocol::choices::WebrtcMode;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    /// "relay" (default) or "passthrough"; a call may override it (`?mode=`, start `webrtcMode`).
    pub mode: WebrtcMode,
    /// Local address the shared media port binds to.
    pub bind_ip: std::net::IpAddr,
    /// The UDP port every relay call's media shares (0: an ephemeral port picked at start).
    pub udp_port: u16,
    /// Sockets sharing the media port, each with its own reader task (0: one per core).
    pub media_shards: usize,
    /// Address advertised in ICE host candidates when it differs from bind_ip (NAT, containers).
    pub public_ip: Option<std::net::IpAddr>,
    /// A call whose ICE/DTLS has not connected by then ends.
    pub connect_timeout_secs: u64,
    /// A connected caller that sends nothing for this long is gone.
    pub silence_timeout_secs: u64,
    /// Largest SDP offer body accepted (413 above).
    pub max_offer_bytes: usize,
    /// STUN/TURN servers for callers behind NAT (`GET /v1/realtime/ice_servers`).
    pub ice_servers: Vec<IceServerConfig>,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            mode: WebrtcMode::Relay,
            bind_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            media_shards: 0,
            public_ip: None,
            connect_timeout_secs: 15,
            silence_timeout_secs: 30,
            max_offer_bytes: 64 * 1024,
            ice_servers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub log_format: LogFormat,
    /// Largest JSON-RPC message accepted; larger ones get a clear error (connection survives).
    pub max_message_bytes: usize,
    /// Largest websocket frame read at all; larger ones close the connection (code 1009).
    pub max_frame_bytes: usize,
    /// `/metrics` answers without an API key even in keys mode.
    pub metrics_public: bool,
    /// A request's head (from the connection's accept or its last response) and then its body
    /// (an SDP offer, a client-secret request) must each arrive within this long.
    pub request_timeout_secs: u64,
    /// A websocket client (OpenAI protocol) that takes nothing for this long while frames wait
    /// for it is disconnected (close code 1008) and its session ends.
    pub client_stall_secs: u64,
    /// Per-connection outbound queue (messages). Audio notifications drop when full; a
    /// connection whose queue is full for control messages is closed as too slow.
    pub outbound_queue: usize,
    /// On SIGTERM/SIGINT, how long running sessions may go on before they are closed.
    pub drain_grace_secs: u64,
    /// PEM certificate chain and private key: the listener speaks TLS (`https://`, `wss://`).
    /// Both or neither; `voxgate serve --dev-tls` makes a self-signed pair instead.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Origins whose pages may call voxgate's HTTP faces from a browser (CORS), exactly as a
    /// browser sends them (`https://app.example.com`, `http://localhost:5173`), or `"*"`.
    /// Empty: no CORS headers (only pages voxgate serves itself).
    pub cors_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            log_format: LogFormat::Pretty,
            max_message_bytes: 1 << 20,
            max_frame_bytes: 16 << 20,
            metrics_public: false,
            request_timeout_secs: 10,
            client_stall_secs: 30,
            outbound_queue: 1024,
            drain_grace_secs: 30,
            tls_cert: None,
            tls_key: None,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// The embedded simulator, started in-process on a loopback port.
    #[default]
    Simulator,
    /// A real realtime model service at `base_url` (needs an API key).
    Openai,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub kind: UpstreamKind,
    pub base_url: String,
    /// API key; prefer `api_key_env`. Never logged.
    pub api_key: Option<String>,
    pub api_key_env: String,
    pub model: String,
    /// The model of v3 (GPT-Live) sessions, named in `session.start`.
    pub live_model: String,
    pub version: ModelVersion,
    pub voice: Option<String>,
    /// Extra query pairs appended to the websocket URL, e.g. "foo=1&bar=2".
    pub extra_query: String,
    pub connect_timeout_ms: u64,
    /// Outbound audio frames buffered per session before audio drops (counted).
    pub audio_queue_frames: usize,
    /// A model socket silent this long (a ping at half of it unanswered) is lost; 0: never.
    pub idle_timeout_secs: u64,
    /// A model socket lost unexpectedly (no close frame, a read or write error, silence) is
    /// reopened up to this many times in a row; 0: the conversation ends with it.
    pub reconnect_attempts: u32,
    /// Wait before the first reopening; doubled for each further one (at most 10 s).
    pub reconnect_backoff_ms: u64,
    /// A reopened model session is told the conversation so far: at most this many turns...
    pub replay_items: usize,
    /// ...and this many characters (the most recent kept).
    pub replay_chars: usize,
    /// A model session this old is rolled over at the next turn boundary: its successor is
    /// opened and told the conversation so far (OpenAI caps sessions at 60 minutes); 0: never.
    pub max_session_secs: u64,
    /// Joining a passthrough call's sideband is tried this many times (the call may still be
    /// settling upstream)...
    pub sideband_join_attempts: u32,
    /// ...waiting this long before the second attempt, doubling after (at most 5 s).
    pub sideband_join_backoff_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            kind: UpstreamKind::Simulator,
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            api_key_env: "OPENAI_API_KEY".into(),
            model: session_config::DEFAULT_MODEL.into(),
            live_model: session_config::DEFAULT_LIVE_MODEL.into(),
            version: ModelVersion::V2,
            voice: None,
            extra_query: String::new(),
            connect_timeout_ms: 10_000,
            audio_queue_frames: 256,
            idle_timeout_secs: 30,
            reconnect_attempts: 3,
            reconnect_backoff_ms: 250,
            replay_items: 40,
            replay_chars: 8000,
            max_session_secs: 3300,
            sideband_join_attempts: 5,
            sideband_join_backoff_ms: 200,
        }
    }
}

impl UpstreamConfig {
    /// The API key from config, else from the configured environment variable.
    pub fn resolve_api_key(&self) -> Option<String> {
        self.api_key.clone().filter(|k| !k.is_empty()).or_else(|| {
            std::env::var(&self.api_key_env)
                .ok()
                .filter(|k| !k.is_empty())
        })
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Replaces whatever prompt a start request carries.
    pub prompt_override: Option<String>,
    /// Appended to the instructions as `<startup_context>…</startup_context>`.
    pub startup_context: Option<String>,
    /// File whose text replaces the built-in default prompt template.
    pub prompt_template_file: Option<PathBuf>,
    pub mode: SessionMode,
    pub acks: AckConfig,
    /// A JSON-RPC conversation whose last client left runs on this long, keeping what the client
    /// missed, for a client of the same key to reattach; then it ends. 0: it ends at once.
    pub detach_grace_secs: u64,
    /// `playback`: while the model's audio plays to a WebRTC relay caller, the caller's audio is
    /// held back from the model unless it is a barge-in (for phone/SIP lines and speakerphones
    /// without echo cancellation); `off` (default): everything goes to the model.
    pub input_gating: InputGating,
    /// RMS (PCM16 units) caller audio needs to count as speech while gated...
    pub gate_threshold_rms: u32,
    /// ...for this long in a row to be a barge-in that opens the gate.
    pub gate_barge_in_ms: u64,
}

/// Whether caller audio is gated while the model plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InputGating {
    #[default]
    Off,
    Playback,
}

impl SessionConfig {
    /// The gate a session gets when `gating` is asked for (by config or its start).
    pub fn gate(&self, gating: InputGating) -> Option<crate::engine::input_gate::GateConfig> {
        (gating == InputGating::Playback).then(|| crate::engine::input_gate::GateConfig {
            threshold_rms: self.gate_threshold_rms,
            barge_in_us: self.gate_barge_in_ms * 1000,
            ..Default::default()
        })
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            prompt_override: None,
            startup_context: None,
            prompt_template_file: None,
            mode: SessionMode::default(),
            acks: AckConfig::default(),
            detach_grace_secs: 30,
            input_gating: InputGating::Off,
            gate_threshold_rms: 1500,
            gate_barge_in_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AckConfig {
    pub completed: Option<String>,
    pub steering: Option<String>,
    pub no_message: Option<String>,
    pub failed: Option<String>,
    pub cancelled: Option<String>,
    pub nothing_to_delegate: Option<String>,
}

impl Config {
    /// Load `path` (or defaults when `None`), apply env overrides from `env`, validate.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml_str(&text, env)
    }

    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError::Parse(e.to_string().trim_end().to_owned())
        })?;
        let file_only = table.clone();
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (name, value) in &env {
            env::apply_env_override(&mut table, name, value)?;
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                // Say which variable it was when the file alone is fine.
                env::culprit(&file_only, &env)
                    .unwrap_or_else(|| ConfigError::Parse(e.to_string().trim_end().to_owned()))
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen()?;
        if self.server.max_message_bytes == 0
            || self.server.max_frame_bytes < self.server.max_message_bytes
        {
            return Err(ConfigError::Invalid {
                key: "server.max_frame_bytes",
                message: "must be at least server.max_message_bytes, which must be > 0".into(),
            });
        }
        if self.simulator.spoken_script.is_empty() {
            return Err(ConfigError::Invalid {
                key: "simulator.spoken_script",
                message: "needs at least one line (what the simulator hears on a spoken turn)"
                    .into(),
            });
        }
        if self.server.outbound_queue == 0 {
            return Err(ConfigError::Invalid {
                key: "server.outbound_queue",
                message: "must be > 0".into(),
            });
        }
        for (key, secs) in [
            (
                "server.request_timeout_secs",
                self.server.request_timeout_secs,
            ),
            ("server.client_stall_secs", self.server.client_stall_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be > 0".into(),
                });
            }
        }
        crate::upstream::url::realtime_ws_url(
            &self.upstream.base_url,
            self.upstream.version,
            Some("m"),
            None,
            "",
        )
        .map_err(|message| ConfigError::Invalid {
            key: "upstream.base_url",
            message,
        })?;
        if self.upstream.model.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "upstream.model",
                message: "must not be empty".into(),
            });
        }
        if let Some(v) = &self.upstream.voice {
            session_config::resolve_voice(self.upstream.version, None, Some(v)).map_err(
                |message| ConfigError::Invalid {
                    key: "upstream.voice",
                    message,
                },
            )?;
        }
        if self.upstream.connect_timeout_ms == 0 || self.upstream.audio_queue_frames == 0 {
            return Err(ConfigError::Invalid {
                key: "upstream.connect_timeout_ms",
                message: "connect_timeout_ms and audio_queue_frames must be > 0".into(),
            });
        }
        if let Some(p) = &self.session.prompt_template_file {
            std::fs::metadata(p).map_err(|e| ConfigError::Invalid {
                key: "session.prompt_template_file",
                message: format!("{}: {e}", p.display()),
            })?;
        }
        self.server.validate_web()?;
        self.telemetry.validate()?;
        self.webrtc.validate_ice()?;
        self.validate_agent()?;
        self.validate_auth()?;
        self.cluster.validate()?;
        if self.agent.task_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "agent.task_timeout_secs",
                message: "must be > 0".into(),
            });
        }
        if self.simulator.chunk_ms == 0 || self.simulator.chunk_ms > 1000 {
            return Err(ConfigError::Invalid {
                key: "simulator.chunk_ms",
                message: "must be between 1 and 1000".into(),
            });
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let listen = self.listen()?;
        if self.auth.mode == AuthMode::None && !listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "auth.mode",
                message: format!(
                    "\"none\" is allowed only on a loopback address, not {listen}; set [auth] mode = \"keys\""
                ),
            });
        }
        // Media answers whoever reaches the port: the same rule as `listen`.
        if self.auth.mode == AuthMode::None && !self.webrtc.bind_ip.is_loopback() {
            return Err(ConfigError::Invalid {
                key: "auth.mode",
                message: format!(
                    "\"none\" is allowed only on loopback, but [webrtc] bind_ip is {}; set [auth] mode = \"keys\" or bind media to loopback",
                    self.webrtc.bind_ip
                ),
            });
        }
        for k in &self.auth.keys {
            if hex::decode(&k.sha256).map(|b| b.len()) != Ok(32) {
                return Err(ConfigError::Invalid {
                    key: "auth.keys",
                    message: format!("key `{}`: sha256 must be 64 hex characters", k.id),
                });
            }
        }
        if self.auth.mode == AuthMode::Keys
            && self.auth.keys.is_empty()
            && self.auth.keys_env.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "auth.keys",
                message: "mode = \"keys\" needs keys or keys_env".into(),
            });
        }
        Ok(())
    }

    fn validate_agent(&self) -> Result<(), ConfigError> {
        let a = &self.agent;
        let url_ok = |u: &str, schemes: &[&str]| schemes.iter().any(|s| u.starts_with(s));
        if !a.codex.url.is_empty() && !url_ok(&a.codex.url, &["ws://", "wss://"]) {
            return Err(ConfigError::Invalid {
                key: "agent.codex.url",
                message: "must be a ws:// or wss:// URL".into(),
            });
        }
        if a.kind == AgentKind::Codex && a.codex.url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "agent.codex.url",
                message:
                    "agent.kind = \"codex\" needs the app-server URL, e.g. ws://127.0.0.1:4500"
                        .into(),
            });
        }
        if !url_ok(&a.responses.base_url, &["http://", "https://"]) {
            return Err(ConfigError::Invalid {
                key: "agent.responses.base_url",
                message: "must be an http(s) URL".into(),
            });
        }
        if !a.webhook.url.is_empty() && !url_ok(&a.webhook.url, &["http://", "https://"]) {
            return Err(ConfigError::Invalid {
                key: "agent.webhook.url",
                message: "must be an http(s) URL".into(),
            });
        }
        if a.kind == AgentKind::Webhook && a.webhook.url.is_empty() {
            return Err(ConfigError::Invalid {
                key: "agent.webhook.url",
                message: "agent.kind = \"webhook\" needs the URL tasks are POSTed to".into(),
            });
        }
        Ok(())
    }

    /// The default prompt template: the configured file, else the built-in one.
    pub fn prompt_template(&self) -> String {
        self.session
            .prompt_template_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_else(|| session_config::DEFAULT_PROMPT.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let cfg = Config::from_toml_str("", none()).expect("defaults are valid");
        assert_eq!(cfg.upstream.kind, UpstreamKind::Simulator);
        assert_eq!(cfg.upstream.version, ModelVersion::V2);
        assert_eq!(cfg.upstream.model, "gpt-realtime-1.5");
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let cfg = Config::from_toml_str("[upstream]\nversion = \"v1\"\n", none()).expect("valid");
        assert_eq!(cfg.upstream.version, ModelVersion::V1);
        assert_eq!(cfg.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = Config::from_toml_str("[upstream]\nbase_ulr = \"x\"\n", none())
            .expect_err("unknown key");
        assert!(err.to_string().contains("base_ulr"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_parses_types() {
        let env = vec![
            (
                "VOXGATE_UPSTREAM__MODEL".to_owned(),
                "other-model".to_owned(),
            ),
            (
                "VOXGATE_AGENT__EMBEDDED__DELAY_MS".to_owned(),
                "5".to_owned(),
            ),
            ("VOXGATE_CONFIG".to_owned(), "ignored.toml".to_owned()),
        ];
        let cfg = Config::from_toml_str("[upstream]\nmodel = \"m\"\n", env).expect("valid");
        assert_eq!(cfg.upstream.model, "other-model");
        assert_eq!(cfg.agent.embedded.delay_ms, 5);
    }

    #[test]
    fn unknown_env_key_is_an_error_naming_it() {
        let env = vec![("VOXGATE_UPSTREAM__NOPE".to_owned(), "1".to_owned())];
        let err = Config::from_toml_str("", env).expect_err("unknown env key");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let err =
            Config::from_toml_str("[server]\nlisten = \"nowhere\"\n", none()).expect_err("bad");
        assert!(err.to_string().contains("server.listen"), "{err}");
        let err = Config::from_toml_str("[upstream]\nvoice = \"cove\"\n", none()).expect_err("bad");
        assert!(err.to_string().contains("upstream.voice"), "{err}");
    }

    #[test]
    fn auth_none_is_refused_off_loopback() {
        let err = Config::from_toml_str("[server]\nlisten = \"0.0.0.0:8080\"\n", none())
            .expect_err("open bind");
        assert!(err.to_string().contains("auth.mode"), "{err}");
        let sha = "a".repeat(64);
        let ok = format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nmode = \"keys\"\n[[auth.keys]]\nid = \"k\"\nsha256 = \"{sha}\"\n"
        );
        Config::from_toml_str(&ok, none()).expect("keys on an open bind are fine");
        let err = Config::from_toml_str("[webrtc]\nbind_ip = \"0.0.0.0\"\n", none())
            .expect_err("open media bind");
        assert!(err.to_string().contains("bind_ip"), "{err}");
    }

    #[test]
    fn a_cluster_needs_a_usable_redis_url_and_a_shared_secret() {
        assert!(!Config::default().cluster.enabled(), "one node by default");
        let err = Config::from_toml_str("[cluster]\nredis_url = \"redis://r:6379\"\n", none())
            .expect_err("no secret");
        assert!(err.to_string().contains("cluster.secret"), "{err}");
        let env = vec![(
            "VOXGATE_CLUSTER__SECRET".to_owned(),
            "0123456789abcdef".to_owned(),
        )];
        let cfg = Config::from_toml_str("[cluster]\nredis_url = \"redis://r:6379\"\n", env.clone())
            .expect("secret from the environment");
        assert!(cfg.cluster.enabled());
        let err = Config::from_toml_str("[cluster]\nredis_url = \"http://r\"\n", env.clone())
            .expect_err("not redis");
        assert!(err.to_string().contains("cluster.redis_url"), "{err}");
        let err = Config::from_toml_str(
            "[cluster]\nredis_url = \"redis+unix:///run/r.sock\"\nnode_id = \"a b\"\n",
            env,
        )
        .expect_err("bad node id");
        assert!(err.to_string().contains("cluster.node_id"), "{err}");
    }

    #[test]
    fn shipped_config_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/voxgate.toml");
        Config::load(Some(&path), none()).expect("config/voxgate.toml loads");
    }
}
