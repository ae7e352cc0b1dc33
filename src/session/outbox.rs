//! `Outbox`: the bounded write buffer of one websocket a session writes to (the model's, or an
//! OpenAI-protocol client's), sans-IO. The reactor takes frames out only when the socket can
//! take them, so a slow reader never makes the session wait. At the bounds: an audio frame
//! offered while `audio_limit` bytes are queued is dropped (counted); a control frame is never
//! dropped, but a backlog past `hard_limit` bytes, or no progress for `stall` while anything is
//! queued, makes the socket *stalled* — the session then ends with a clear reason.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Audio is dropped while this many bytes are queued.
    pub audio_limit: usize,
    /// A backlog of control frames past this means the reader is gone.
    pub hard_limit: usize,
    /// Queued frames not taken for this long mean the reader is gone.
    pub stall: Duration,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            audio_limit: 256 * 1024,
            hard_limit: 4 * 1024 * 1024,
            stall: Duration::from_secs(30),
        }
    }
}

/// A frame's class: audio may be dropped under pressure, control never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    Audio,
    Control,
}

#[derive(Debug)]
pub struct Outbox {
    limits: OutboxLimits,
    queue: VecDeque<(String, FrameClass)>,
    bytes: usize,
    /// When the queue last made progress (or became non-empty).
    progress_at: Option<Instant>,
    dropped: u64,
    peak: usize,
}

impl Outbox {
    pub fn new(limits: OutboxLimits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
            bytes: 0,
            progress_at: None,
            dropped: 0,
            peak: 0,
        }
    }

    /// Queue a frame; false when it was audio and got dropped.
    pub fn push(&mut self, now: Instant, frame: String, class: FrameClass) -> bool {
        if class == FrameClass::Audio && self.bytes >= self.limits.audio_limit {
            self.dropped += 1;
            return false;
        }
        if self.queue.is_empty() {
            self.progress_at = Some(now);
        }
        self.bytes += frame.len();
        self.peak = self.peak.max(self.bytes);
        self.queue.push_back((frame, class));
        true
    }

    /// Take the next frame for the socket (it is ready to accept one).
    pub fn pop(&mut self, now: Instant) -> Option<(String, FrameClass)> {
        let (frame, class) = self.queue.pop_front()?;
        self.bytes -= frame.len();
        self.progress_at = Some(now);
        Some((frame, class))
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    /// Audio frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The most bytes ever queued.
    pub fn peak_bytes(&self) -> usize {
        self.peak
    }

    /// When the socket counts as stalled if nothing is taken before then.
    pub fn stall_deadline(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        self.progress_at.map(|at| at + self.limits.stall)
    }

    /// Whether the reader is gone by `now`: a backlog too large or no progress for too long.
    pub fn is_stalled(&self, now: Instant) -> bool {
        self.bytes > self.limits.hard_limit || self.stall_deadline().is_some_and(|d| now >= d)
    }

    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Forget everything queued (the socket is gone).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
        self.progress_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> OutboxLimits {
        OutboxLimits {
            audio_limit: 10,
            hard_limit: 30,
            stall: Duration::from_secs(5),
        }
    }

    #[test]
    fn audio_drops_at_the_audio_bound_but_control_always_queues() {
        let t0 = Instant::now();
        let mut o = Outbox::new(limits());
        assert!(o.push(t0, "aaaaaaaaaa".into(), FrameClass::Audio));
        assert!(
            !o.push(t0, "a".into(), FrameClass::Audio),
            "audio over the bound"
        );
        assert!(o.push(t0, "control".into(), FrameClass::Control));
        assert_eq!((o.dropped(), o.queued_bytes()), (1, 17));
        assert!(!o.is_stalled(t0));
        assert!(o.push(t0, "x".repeat(20), FrameClass::Control));
        assert!(o.is_stalled(t0), "past the hard bound");
    }

    #[test]
    fn a_socket_that_takes_nothing_stalls_at_its_deadline() {
        let t0 = Instant::now();
        let mut o = Outbox::new(limits());
        assert_eq!(o.stall_deadline(), None);
        o.push(t0, "a".into(), FrameClass::Control);
        o.push(t0 + Duration::from_secs(3), "b".into(), FrameClass::Control);
        assert_eq!(o.stall_deadline(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            o.pop(t0 + Duration::from_secs(4)).map(|f| f.0),
            Some("a".into())
        );
        assert_eq!(o.stall_deadline(), Some(t0 + Duration::from_secs(9)));
        assert!(!o.is_stalled(t0 + Duration::from_secs(8)));
        assert!(o.is_stalled(t0 + Duration::from_secs(9)));
        o.pop(t0 + Duration::from_secs(9));
        assert_eq!(o.stall_deadline(), None);
    }
}
