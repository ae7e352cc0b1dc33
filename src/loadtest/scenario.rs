//! `Scenario`: everything that shapes a load run, from a TOML file (`--scenario`) with command-line
//! flags taking precedence, and defaults for what neither gives.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// JSON-RPC over websocket (`/rpc`).
    Rpc,
    /// The OpenAI-compatible websocket (`/v1/realtime`).
    Ws,
    /// WebRTC calls (`/v1/realtime/calls`), real str0m peers sending and receiving Opus.
    Webrtc,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Rpc => "rpc",
            Transport::Ws => "ws",
            Transport::Webrtc => "webrtc",
        }
    }
}

/// A scenario file; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub transport: Option<Transport>,
    pub sessions: Option<usize>,
    pub duration_secs: Option<f64>,
    pub ramp_per_sec: Option<f64>,
    pub session_secs: Option<f64>,
    pub speech_ms: Option<u64>,
    pub pause_ms: Option<u64>,
    pub frame_ms: Option<u64>,
    pub barge_in: Option<f64>,
    pub delegation: Option<f64>,
    pub seed: Option<u64>,
    pub echo: Option<bool>,
    pub late_ms: Option<f64>,
    pub turn_timeout_secs: Option<f64>,
    pub setup_timeout_secs: Option<f64>,
}

/// The resolved scenario of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    pub transport: Transport,
    pub sessions: usize,
    pub duration_secs: f64,
    pub ramp_per_sec: f64,
    pub session_secs: Option<f64>,
    pub speech_ms: u64,
    pub pause_ms: u64,
    /// Audio per message on the websocket transports (a multiple of 20 ms).
    pub frame_ms: u64,
    pub barge_in: f64,
    pub delegation: f64,
    pub seed: u64,
    pub echo: bool,
    pub late_ms: f64,
    pub turn_timeout_secs: f64,
    pub setup_timeout_secs: f64,
}

impl Scenario {
    /// Check ranges; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        let prob = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must be a probability between 0 and 1, got {p}"
                ))
            }
        };
        prob("barge_in", self.barge_in)?;
        prob("delegation", self.delegation)?;
        if self.sessions == 0 {
            return Err("sessions must be at least 1".into());
        }
        if !(self.duration_secs > 0.0 && self.duration_secs <= 86_400.0) {
            return Err("duration must be between 0 and 86400 seconds".into());
        }
        if self.ramp_per_sec <= 0.0 {
            return Err("ramp must be positive (sessions started per second)".into());
        }
        if self.speech_ms < 20 || self.pause_ms < 20 {
            return Err("speech_ms and pause_ms must be at least 20".into());
        }
        if !(20..=1000).contains(&self.frame_ms) || !self.frame_ms.is_multiple_of(20) {
            return Err(format!(
                "frame_ms must be a multiple of 20 between 20 and 1000, got {}",
                self.frame_ms
            ));
        }
        if self.frame_ms != 20 && self.transport == Transport::Webrtc {
            return Err(
                "frame_ms applies to the rpc and ws transports; WebRTC sends 20 ms Opus packets"
                    .into(),
            );
        }
        Ok(())
    }
}
