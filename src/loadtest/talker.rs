//! `Talker`: one synthetic caller's turn-taking, sans-IO. Each 20 ms tick it says what to send
//! (speech, silence, a delegation request, or nothing); it is told what came back (audio, the
//! model hearing speech, transcripts) and measures first-audio latency after the end of speech,
//! echo round trips, barge-ins and delegations. The transports only move bytes.

use super::speech::{self, FRAME_MS};
use super::stats::SessionStats;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TalkerConfig {
    /// The model echoes input audio (simulator `--echo`): time round trips instead of turns.
    pub echo: bool,
    /// Send nothing in pauses (WebRTC DTX): echo round trips are then timed by talk-spurt onset.
    pub dtx: bool,
    pub speech_ms: u64,
    pub pause_ms: u64,
    /// Audio per message (websocket transports): this many ms of 20 ms frames go out together.
    pub frame_ms: u64,
    /// Probability that a turn barges in on the model's reply.
    pub barge_in: f64,
    /// Probability that a turn is a delegation request instead of speech.
    pub delegation: f64,
    pub turn_timeout: Duration,
    /// An echoed frame slower than this counts as late.
    pub late_ms: f64,
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same session on every build.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi.saturating_sub(lo) + 1)
    }
}

/// What to send on this tick.
#[derive(Debug, Default)]
pub struct TickOut {
    pub frame: Option<Vec<i16>>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Speaking {
        left: u64,
    },
    /// Waiting for (and hearing) the reply to the turn that ended at `since`.
    Listening {
        since: Instant,
    },
    Pausing {
        until: Instant,
    },
}

pub struct Talker {
    cfg: TalkerConfig,
    rng: SplitMix,
    phase: Phase,
    f0: f64,
    frame_index: u64,
    seq: u32,
    /// Marked frames sent and not yet heard back: (sequence, sent at).
    in_flight: VecDeque<(u32, Instant)>,
    /// Talk-spurt starts not yet heard back (DTX echo).
    onsets: VecDeque<Instant>,
    last_packet: Option<Instant>,
    /// End of the current turn's speech while its first reply audio is awaited.
    awaiting_first_audio: Option<Instant>,
    awaiting_delegation: Option<Instant>,
    heard_reply: bool,
    /// When the reply audio heard so far would finish playing.
    playback_until: Option<Instant>,
    /// This turn interrupts its reply at this offset after the reply starts.
    barge_after: Option<Duration>,
    barge_at: Option<Instant>,
    turn_no: u64,
    pub stats: SessionStats,
}

impl Talker {
    pub fn new(cfg: TalkerConfig, seed: u64, now: Instant) -> Self {
        let mut rng = SplitMix::new(seed);
        let f0 = 100.0 + rng.range(0, 120) as f64;
        // Callers do not all start speaking on the same frame.
        let first = now + Duration::from_millis(rng.range(0, 400));
        Self {
            cfg,
            rng,
            phase: Phase::Pausing { until: first },
            f0,
            frame_index: 0,
            seq: 0,
            in_flight: VecDeque::new(),
            onsets: VecDeque::new(),
            last_packet: None,
            awaiting_first_audio: None,
            awaiting_delegation: None,
            heard_reply: false,
            playback_until: None,
            barge_after: None,
            barge_at: None,
            turn_no: 0,
            stats: SessionStats::default(),
        }
    }

    fn speech_frames(&mut self) -> u64 {
        let ms = self.cfg.speech_ms;
        let jitter = ms / 5;
        self.rng.range(ms - jitter, ms + jitter).max(FRAME_MS) / FRAME_MS
    }

    fn start_turn(&mut self, now: Instant, out: &mut TickOut) {
        self.turn_no += 1;
        self.stats.turns += 1;
        self.heard_reply = false;
        self.barge_at = None;
        self.barge_after = None;
        if !self.cfg.echo && self.rng.unit() < self.cfg.delegation {
            self.stats.delegations_requested += 1;
            out.text = Some(format!("delegate: loadtest task {}", self.turn_no));
            self.awaiting_delegation = Some(now);
            self.phase = Phase::Listening { since: now };
            return;
        }
        if !self.cfg.echo && self.rng.unit() < self.cfg.barge_in {
            self.barge_after = Some(Duration::from_millis(self.rng.range(100, 600)));
        }
        let left = self.speech_frames();
        self.phase = Phase::Speaking { left };
        if self.cfg.dtx {
            self.onsets.push_back(now);
        }
    }

    fn speech(&mut self, now: Instant) -> Vec<i16> {
        let mut f = speech::speech_frame(self.frame_index, self.f0);
        self.frame_index += 1;
        if self.cfg.echo && !self.cfg.dtx {
            self.seq = self.seq.wrapping_add(1);
            speech::mark(&mut f, self.seq);
            self.in_flight.push_back((self.seq, now));
        }
        f
    }

    fn silence(&mut self, now: Instant) -> Option<Vec<i16>> {
        if self.cfg.dtx {
            return None;
        }
        let mut f = speech::silence_frame();
        if self.cfg.echo {
            self.seq = self.seq.wrapping_add(1);
            speech::mark(&mut f, self.seq);
            self.in_flight.push_back((self.seq, now));
        }
        Some(f)
    }

    /// What to send at `now` (called every 20 ms).
    pub fn tick(&mut self, now: Instant) -> TickOut {
        let mut out = TickOut::default();
        match self.phase {
            Phase::Pausing { until } if now >= until => self.start_turn(now, &mut out),
            Phase::Listening { since } => {
                let played_out = self.heard_reply && self.playback_until.is_none_or(|t| t <= now);
                if self.barge_at.is_some_and(|t| now >= t) {
                    self.stats.barge_ins += 1;
                    self.awaiting_delegation = None;
                    let left = self.speech_frames();
                    self.turn_no += 1;
                    self.stats.turns += 1;
                    self.heard_reply = false;
                    self.barge_at = None;
                    self.barge_after = None;
                    self.phase = Phase::Speaking { left };
                } else if played_out && self.awaiting_delegation.is_none() {
                    let pause = self.pause();
                    self.phase = Phase::Pausing { until: now + pause };
                } else if now.duration_since(since) > self.cfg.turn_timeout {
                    *self.stats.errors.entry("no_response".into()).or_default() += 1;
                    self.awaiting_first_audio = None;
                    self.awaiting_delegation = None;
                    self.phase = Phase::Pausing { until: now };
                }
            }
            _ => {}
        }
        match self.phase {
            Phase::Speaking { left } => {
                out.frame = Some(self.speech(now));
                if left <= 1 {
                    let end = now + Duration::from_millis(FRAME_MS);
                    self.phase = if self.cfg.echo {
                        Phase::Pausing {
                            until: end + self.pause(),
                        }
                    } else {
                        self.awaiting_first_audio = Some(end);
                        Phase::Listening { since: end }
                    };
                } else {
                    self.phase = Phase::Speaking { left: left - 1 };
                }
            }
            _ => out.frame = self.silence(now),
        }
        if out.frame.is_some() {
            self.stats.frames_sent += 1;
        }
        out
    }

    fn pause(&mut self) -> Duration {
        let ms = self.cfg.pause_ms;
        Duration::from_millis(self.rng.range(ms - ms / 5, ms + ms / 5))
    }

    /// The last `n` frames went out as one message at `sent`: only the first one's marker will
    /// come back, so stop waiting for the others, time the message from when it was sent, and
    /// count one frame sent.
    pub fn merge_last_frames(&mut self, n: usize, sent: Instant) {
        if n <= 1 {
            return;
        }
        if self.cfg.echo && !self.cfg.dtx {
            for _ in 1..n {
                self.in_flight.pop_back();
            }
            if let Some(first) = self.in_flight.back_mut() {
                first.1 = sent;
            }
        }
        self.stats.frames_sent = self.stats.frames_sent.saturating_sub(n as u64 - 1);
    }

    /// Model audio arrived: PCM16LE bytes when the transport has them (websocket faces), or just
    /// a packet of `ms` (WebRTC, not decoded).
    pub fn on_audio(&mut self, now: Instant, pcm: Option<&[u8]>, ms: u64) {
        self.stats.frames_received += 1;
        if self.cfg.echo {
            if self.cfg.dtx {
                let gap = self
                    .last_packet
                    .is_none_or(|t| now.duration_since(t) > Duration::from_millis(100));
                self.last_packet = Some(now);
                if gap && let Some(sent) = self.onsets.pop_front() {
                    self.record_rtt(now.duration_since(sent));
                }
                return;
            }
            if let Some(seq) = pcm.and_then(speech::read_mark) {
                while let Some(&(s, sent)) = self.in_flight.front() {
                    self.in_flight.pop_front();
                    if s == seq {
                        self.record_rtt(now.duration_since(sent));
                        break;
                    }
                    self.stats.frames_lost += 1;
                }
            }
            return;
        }
        if let Some(last) = self.last_packet
            && pcm.is_none()
        {
            let gap = now.duration_since(last).as_secs_f64() * 1000.0;
            if gap > 2.0 * FRAME_MS as f64 && gap < 100.0 {
                self.stats.frames_late += 1;
            }
        }
        self.last_packet = Some(now);
        if let Some(end) = self.awaiting_first_audio.take() {
            self.stats
                .first_audio_ms
                .push(now.saturating_duration_since(end).as_secs_f64() * 1000.0);
        }
        self.heard_reply = true;
        let start = self.playback_until.filter(|t| *t > now).unwrap_or(now);
        self.playback_until = Some(start + Duration::from_millis(ms));
        if let (Some(after), None) = (self.barge_after, self.barge_at) {
            self.barge_at = Some(now + after);
        }
    }

    fn record_rtt(&mut self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        if ms > self.cfg.late_ms {
            self.stats.frames_late += 1;
        }
        self.stats.rtt_ms.push(ms);
    }

    /// The model heard the caller start speaking: a client stops playing the reply.
    pub fn on_speech_started(&mut self, now: Instant) {
        if self.playback_until.is_some_and(|t| t > now) {
            self.playback_until = Some(now);
        }
    }

    /// A finished transcript of the model's speech.
    pub fn on_transcript(&mut self, now: Instant, text: &str) {
        if text.contains("Done:")
            && let Some(asked) = self.awaiting_delegation.take()
        {
            self.stats.delegations_done += 1;
            self.stats
                .delegation_ms
                .push(now.duration_since(asked).as_secs_f64() * 1000.0);
        }
    }

    /// The session ends: echoed frames still in flight count as lost.
    pub fn finish(&mut self) {
        self.stats.frames_lost += self.in_flight.len() as u64;
        self.in_flight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(echo: bool) -> TalkerConfig {
        TalkerConfig {
            echo,
            dtx: false,
            speech_ms: 100,
            pause_ms: 100,
            frame_ms: 20,
            barge_in: 0.0,
            delegation: 0.0,
            turn_timeout: Duration::from_secs(2),
            late_ms: 100.0,
        }
    }

    #[test]
    fn frames_sent_as_one_message_are_timed_by_the_first_marker_and_none_counted_lost() {
        let t0 = Instant::now();
        let mut t = Talker::new(cfg(true), 1, t0);
        let mut now = t0;
        let mut messages = Vec::new();
        for _ in 0..4 {
            let mut pcm = Vec::new();
            for _ in 0..5 {
                pcm.extend(t.tick(now).frame.expect("a frame every tick"));
                now += Duration::from_millis(20);
            }
            t.merge_last_frames(5, now);
            messages.push(speech::to_bytes(&pcm));
        }
        for m in &messages {
            t.on_audio(now, Some(m), 100);
        }
        assert_eq!(t.stats.frames_sent, 4);
        assert_eq!(t.stats.frames_lost, 0);
        assert_eq!(t.stats.rtt_ms.len(), 4);
    }

    #[test]
    fn first_audio_is_timed_from_the_end_of_speech() {
        let t0 = Instant::now();
        let mut t = Talker::new(cfg(false), 1, t0);
        let mut now = t0;
        let mut speech_end = None;
        let mut was_speaking = false;
        for _ in 0..200 {
            now += Duration::from_millis(20);
            let out = t.tick(now);
            let loud = out
                .frame
                .as_ref()
                .is_some_and(|f| f.iter().any(|s| s.abs() > 1000));
            if was_speaking && !loud {
                speech_end = Some(now);
                break;
            }
            was_speaking = loud;
        }
        let end = speech_end.expect("a turn ended");
        t.on_audio(end + Duration::from_millis(300), Some(&[0; 960]), 20);
        assert_eq!(t.stats.first_audio_ms.len(), 1);
        assert!((t.stats.first_audio_ms[0] - 300.0).abs() < 25.0);
    }

    #[test]
    fn echoed_frames_are_timed_and_missing_ones_count_as_lost() {
        let t0 = Instant::now();
        let mut t = Talker::new(cfg(true), 2, t0);
        let mut sent = Vec::new();
        let mut now = t0;
        while sent.len() < 3 {
            now += Duration::from_millis(20);
            if let Some(f) = t.tick(now).frame {
                sent.push(speech::to_bytes(&f));
            }
        }
        // The second frame never comes back; the third returns 30 ms after it was sent.
        t.on_audio(now + Duration::from_millis(30), Some(&sent[2]), 20);
        assert_eq!(t.stats.rtt_ms, vec![30.0]);
        assert_eq!(t.stats.frames_lost, 2);
    }

    #[test]
    fn a_barge_in_turn_starts_speaking_while_the_reply_plays() {
        let mut c = cfg(false);
        c.barge_in = 1.0;
        let t0 = Instant::now();
        let mut t = Talker::new(c, 3, t0);
        let mut now = t0;
        while !matches!(t.phase, Phase::Listening { .. }) {
            now += Duration::from_millis(20);
            t.tick(now);
        }
        // A long reply arrives at once; the caller interrupts within 600 ms.
        t.on_audio(now, Some(&[0; 960]), 3000);
        for _ in 0..40 {
            now += Duration::from_millis(20);
            t.tick(now);
        }
        assert_eq!(t.stats.barge_ins, 1);
    }
}
