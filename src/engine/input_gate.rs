//! `InputGate`: playback-aware input gating, for callers whose microphone hears the model (a
//! phone or SIP line, a speakerphone with no echo cancellation). While the model's audio plays
//! to the caller, the caller's audio is held back from the model — it is mostly the model's own
//! voice coming back — unless it is a barge-in: audio above `threshold_rms` for `barge_in_us`
//! in a row opens the gate, and the last `preroll_us` of what was held goes to the model first,
//! so the start of the person's words is not lost. When playback ends the gate closes again
//! and what it still holds (echo) is dropped and counted. Off by default; pure, no I/O.

use crate::protocol::AudioChunk;
use base64::Engine as _;
use std::collections::VecDeque;

/// How the gate decides; `None` in the engine config: no gating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// RMS (PCM16 units) a frame needs to count as the person speaking.
    pub threshold_rms: u32,
    /// Speech this long in a row while the model plays is a barge-in.
    pub barge_in_us: u64,
    /// Held audio handed to the model when a barge-in opens the gate.
    pub preroll_us: u64,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            threshold_rms: 1500,
            barge_in_us: 200_000,
            preroll_us: 300_000,
        }
    }
}

#[derive(Debug, Default)]
pub struct InputGate {
    cfg: Option<GateConfig>,
    /// The model's audio is playing to the caller.
    playing: bool,
    /// A barge-in opened the gate for the rest of this playback.
    open: bool,
    loud_us: u64,
    held: VecDeque<AudioChunk>,
    held_us: u64,
    /// Input frames never forwarded (echo while the model spoke).
    dropped: u64,
}

/// The RMS of a chunk's PCM16 samples (0 for data that is not base64).
fn rms(chunk: &AudioChunk) -> u32 {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&chunk.data) else {
        return 0;
    };
    let samples = bytes.len() / 2;
    if samples == 0 {
        return 0;
    }
    let sum: f64 = bytes
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])).powi(2))
        .sum();
    (sum / samples as f64).sqrt() as u32
}

impl InputGate {
    pub fn new(cfg: Option<GateConfig>) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// The model's audio started playing to the caller.
    pub fn playback_started(&mut self) {
        if self.cfg.is_some() && !self.playing {
            self.playing = true;
            self.open = false;
            self.loud_us = 0;
        }
    }

    /// Playback ended (finished, flushed by a barge-in, cancelled): what is held was echo.
    pub fn playback_ended(&mut self) {
        self.playing = false;
        self.open = false;
        self.loud_us = 0;
        self.dropped += self.held.len() as u64;
        self.held.clear();
        self.held_us = 0;
    }

    /// Input frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A chunk of the caller's audio: what goes to the model now (nothing while it is held).
    pub fn admit(&mut self, chunk: AudioChunk) -> Vec<AudioChunk> {
        let Some(cfg) = self.cfg.filter(|_| self.playing && !self.open) else {
            return vec![chunk];
        };
        let duration = chunk.duration_us();
        if rms(&chunk) >= cfg.threshold_rms {
            self.loud_us += duration;
        } else {
            self.loud_us = 0;
        }
        self.held_us += duration;
        self.held.push_back(chunk);
        if self.loud_us >= cfg.barge_in_us {
            self.open = true;
            // The preroll (at least what made the barge-in), the rest dropped.
            while self.held_us > cfg.preroll_us.max(self.loud_us) && self.held.len() > 1 {
                self.drop_oldest();
            }
            self.held_us = 0;
            return self.held.drain(..).collect();
        }
        while self.held_us > cfg.preroll_us && self.held.len() > 1 {
            self.drop_oldest();
        }
        Vec::new()
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.held.pop_front() {
            self.held_us = self.held_us.saturating_sub(old.duration_us());
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms of a tone at `amplitude`.
    fn frame(amplitude: f64) -> AudioChunk {
        let pcm: Vec<u8> = (0..480)
            .map(|i| (((i as f64) * 0.2).sin() * amplitude) as i16)
            .flat_map(i16::to_le_bytes)
            .collect();
        AudioChunk {
            data: base64::engine::general_purpose::STANDARD.encode(pcm),
            sample_rate: 24_000,
            num_channels: 1,
            samples_per_channel: Some(480),
            item_id: None,
        }
    }

    #[test]
    fn echo_is_held_while_the_model_plays_and_a_barge_in_opens_the_gate_with_its_preroll() {
        let mut g = InputGate::new(Some(GateConfig::default()));
        assert_eq!(g.admit(frame(300.0)).len(), 1, "nothing plays: all goes");
        g.playback_started();
        for _ in 0..50 {
            assert!(g.admit(frame(300.0)).is_empty(), "quiet echo is held");
        }
        // The person speaks over the model: 200 ms of loud frames open the gate.
        let mut released = Vec::new();
        for _ in 0..10 {
            released.extend(g.admit(frame(8000.0)));
        }
        assert_eq!(
            released.len(),
            15,
            "300 ms of preroll incl. the 200 ms of speech"
        );
        assert_eq!(
            g.admit(frame(300.0)).len(),
            1,
            "open for the rest of playback"
        );
        g.playback_ended();
        g.playback_started();
        assert!(
            g.admit(frame(300.0)).is_empty(),
            "closed again for the next reply"
        );
        g.playback_ended();
        assert_eq!(g.admit(frame(300.0)).len(), 1);
        assert!(g.dropped() > 40);
    }

    #[test]
    fn a_short_loud_noise_is_no_barge_in_and_no_gate_config_means_no_gating() {
        let mut g = InputGate::new(Some(GateConfig::default()));
        g.playback_started();
        for _ in 0..5 {
            assert!(g.admit(frame(8000.0)).is_empty());
        }
        assert!(
            g.admit(frame(100.0)).is_empty(),
            "100 ms of noise, then quiet"
        );
        let mut off = InputGate::new(None);
        off.playback_started();
        assert_eq!(off.admit(frame(100.0)).len(), 1);
    }
}
