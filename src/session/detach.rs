//! `Detachment`: a JSON-RPC conversation whose last client went away is *detached*, not dead. It
//! goes on for the grace period (`[session] detach_grace_secs`) while what its clients would have
//! heard is kept: every notification in order, bounded — at most [`MAX_MISSED`] (the oldest go
//! first) and only the last [`AUDIO_WINDOW`] of output audio (older audio is dropped and counted:
//! a client that comes back wants the words, not a minute of stale sound). A client of the same
//! principal that acts on the thread again reattaches and is given the missed notifications
//! first, then live ones. Past the grace the conversation ends (`closed{transport_closed}`).
//! Sans-IO: the session core feeds it times and notifications.

use crate::metrics;
use crate::protocol::rpc::Notification;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Notifications kept for a detached conversation at most.
pub const MAX_MISSED: usize = 1024;
/// Output audio kept for a detached conversation at most (the most recent).
pub const AUDIO_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Detachment {
    grace: Duration,
    since: Option<Instant>,
    missed: VecDeque<Notification>,
    audio_us: u64,
}

fn audio_us(n: &Notification) -> u64 {
    match n {
        Notification::OutputAudioDelta(chunk) => chunk.duration_us(),
        _ => 0,
    }
}

impl Detachment {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            since: None,
            missed: VecDeque::new(),
            audio_us: 0,
        }
    }

    pub fn is_detached(&self) -> bool {
        self.since.is_some()
    }

    /// The grace period: zero means a conversation ends as soon as its last client leaves.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The last client left.
    pub fn detach(&mut self, now: Instant) {
        if self.since.is_none() {
            self.since = Some(now);
            metrics::SESSIONS_DETACHED.inc();
            tracing::info!(
                grace_secs = self.grace.as_secs(),
                "conversation detached: its last client left"
            );
        }
    }

    /// A client is back: what it missed, oldest first.
    pub fn reattach(&mut self) -> VecDeque<Notification> {
        if let Some(since) = self.since.take() {
            metrics::SESSIONS_DETACHED.dec();
            tracing::info!(
                after_ms = since.elapsed().as_millis() as u64,
                missed = self.missed.len(),
                "conversation reattached"
            );
        }
        self.audio_us = 0;
        std::mem::take(&mut self.missed)
    }

    /// When the grace period of a detached conversation runs out.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + self.grace)
    }

    /// Keep a notification for the client that comes back (detached only).
    pub fn keep(&mut self, n: Notification) {
        self.audio_us += audio_us(&n);
        self.missed.push_back(n);
        while self.audio_us > AUDIO_WINDOW.as_micros() as u64 {
            let Some(i) = self.missed.iter().position(|n| audio_us(n) > 0) else {
                break;
            };
            if let Some(old) = self.missed.remove(i) {
                self.audio_us -= audio_us(&old);
                metrics::REPLAY_DROPPED.inc();
            }
        }
        while self.missed.len() > MAX_MISSED {
            if let Some(old) = self.missed.pop_front() {
                self.audio_us -= audio_us(&old);
                metrics::REPLAY_DROPPED.inc();
            }
        }
    }
}

impl Drop for Detachment {
    fn drop(&mut self) {
        if self.since.is_some() {
            metrics::SESSIONS_DETACHED.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AudioChunk;

    fn text(i: usize) -> Notification {
        Notification::Error {
            message: format!("n{i}"),
        }
    }

    fn audio_100ms() -> Notification {
        Notification::OutputAudioDelta(AudioChunk {
            data: "A".repeat(6400), // 4,800 bytes of PCM16: 100 ms at 24 kHz
            sample_rate: 24_000,
            num_channels: 1,
            samples_per_channel: None,
            item_id: None,
        })
    }

    #[test]
    fn missed_notifications_come_back_in_order_with_only_the_last_audio() {
        let t0 = Instant::now();
        let mut d = Detachment::new(Duration::from_secs(30));
        d.detach(t0);
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(30)));
        d.keep(text(0));
        for _ in 0..50 {
            d.keep(audio_100ms());
        }
        d.keep(text(1));
        let back: Vec<_> = d.reattach().into_iter().collect();
        assert!(!d.is_detached());
        assert_eq!(back.first(), Some(&text(0)));
        assert_eq!(back.last(), Some(&text(1)));
        assert_eq!(
            back.len(),
            2 + 20,
            "two seconds of audio kept: {}",
            back.len()
        );
    }

    #[test]
    fn at_most_the_bound_is_kept_the_newest() {
        let mut d = Detachment::new(Duration::from_secs(1));
        d.detach(Instant::now());
        for i in 0..MAX_MISSED + 5 {
            d.keep(text(i));
        }
        let back = d.reattach();
        assert_eq!(back.len(), MAX_MISSED);
        assert_eq!(back.front(), Some(&text(5)));
    }
}
