//! `[simulator]`: the embedded realtime model's behaviour — its VAD, pacing, what it "hears" on
//! spoken turns (the spoken script), and the test knobs that make it misbehave on purpose.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatorConfig {
    /// Echo mode: input audio comes straight back as output audio (latency measurement).
    pub echo: bool,
    /// RMS (PCM16 units) above which input counts as speech.
    pub vad_threshold: u32,
    /// Silence that ends a speech turn.
    pub silence_ms: u64,
    /// What the simulator "heard" on each spoken turn, in order (it does not recognise
    /// speech): turn n gets line n, the last line repeats. The default tells the whole story
    /// offline: a greeting, a `delegate:` turn the agent works on, a thank-you. One string
    /// (the former `audio_transcript`) is a script of one line.
    #[serde(alias = "audio_transcript", deserialize_with = "one_or_many")]
    pub spoken_script: Vec<String>,
    /// Duration of each audio delta it sends.
    pub chunk_ms: u64,
    /// Pace audio deltas in real time instead of sending them as fast as possible.
    pub realtime: bool,
    /// Delay before accepting a call's sideband socket (a slow join, for testing).
    pub sideband_delay_ms: u64,
    /// Refuse sideband joins with 403 (a failed join, for testing).
    pub reject_sideband: bool,
    /// After a `drop:`, refuse this many model connections with 503 (failed reconnects).
    pub refuse_after_drop: u32,
    /// A model session this old is ended by the simulator as the service does at its limit (an
    /// `error` with code `session_expired`, then close); 0: no limit.
    pub max_session_ms: u64,
    /// Drop each model socket this long after it opened, without a close frame (a network
    /// failure, whatever is being said); 0: never.
    pub drop_after_ms: u64,
}

/// The simulator's default spoken turns (`[simulator] spoken_script`).
pub const DEFAULT_SPOKEN_SCRIPT: [&str; 3] = [
    "hello from the microphone",
    "delegate: summarize the project README",
    "thank you, that is all",
];

impl SimulatorConfig {
    /// What the simulator hears on spoken turn `turn` (0-based).
    pub fn spoken_line(&self, turn: usize) -> &str {
        self.spoken_script
            .get(turn)
            .or(self.spoken_script.last())
            .map_or("", String::as_str)
    }
}

/// A list of strings, or one string as a list of one.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            echo: false,
            vad_threshold: 600,
            silence_ms: 500,
            spoken_script: DEFAULT_SPOKEN_SCRIPT.map(str::to_owned).to_vec(),
            chunk_ms: 100,
            realtime: false,
            sideband_delay_ms: 0,
            reject_sideband: false,
            refuse_after_drop: 0,
            max_session_ms: 0,
            drop_after_ms: 0,
        }
    }
}
