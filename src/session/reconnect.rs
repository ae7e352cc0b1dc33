//! `Reconnector`: when a conversation's model socket is lost unexpectedly — no close frame, a
//! read or write error, a model gone silent — a new one is opened, after a backoff that doubles
//! with each failed attempt (at most [`MAX_BACKOFF`]), up to `attempts` in a row. Sans-IO: the
//! session core asks it what to do and when; the reactor opens the sockets. A clean close by the
//! model (a close frame) is the model ending the session and is not retried.

use std::time::{Duration, Instant};

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How a lost model socket is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Debug)]
struct Pending {
    attempt: u32,
    /// When to open the next socket; `None` while one is being opened.
    at: Option<Instant>,
    reason: String,
    lost_at: Instant,
}

#[derive(Debug)]
pub struct Reconnector {
    policy: ReconnectPolicy,
    pending: Option<Pending>,
}

/// What became of a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AttemptFailed {
    /// Another attempt follows at its time.
    Retrying,
    /// No attempt is left: the conversation ends with this message.
    GiveUp(String),
}

impl Reconnector {
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self {
            policy,
            pending: None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        (self.policy.backoff * 2u32.pow(doublings)).min(MAX_BACKOFF)
    }

    /// The socket was lost: whether a reconnect begins (else the conversation ends with it).
    pub fn lost(&mut self, now: Instant, reason: String) -> bool {
        if self.policy.attempts == 0 || self.pending.is_some() {
            return false;
        }
        tracing::warn!(%reason, "realtime model connection lost; reconnecting");
        self.pending = Some(Pending {
            attempt: 1,
            at: Some(now + self.backoff(1)),
            reason,
            lost_at: now,
        });
        true
    }

    pub fn is_reconnecting(&self) -> bool {
        self.pending.is_some()
    }

    /// When the next socket is to be opened.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().and_then(|p| p.at)
    }

    /// Whether to open the next socket now.
    pub fn due(&mut self, now: Instant) -> bool {
        match &mut self.pending {
            Some(p) if p.at.is_some_and(|at| now >= at) => {
                p.at = None;
                tracing::info!(
                    attempt = p.attempt,
                    "reopening the realtime model connection"
                );
                true
            }
            _ => false,
        }
    }

    /// The attempt failed to connect.
    pub fn failed(&mut self, now: Instant, message: &str) -> AttemptFailed {
        let Some(p) = &mut self.pending else {
            return AttemptFailed::GiveUp(message.to_owned());
        };
        if p.attempt >= self.policy.attempts {
            let give_up = format!(
                "the realtime model connection was lost ({}) and {} attempts to reopen it failed; the last: {message}",
                p.reason, p.attempt
            );
            self.pending = None;
            return AttemptFailed::GiveUp(give_up);
        }
        p.attempt += 1;
        let attempt = p.attempt;
        let wait = self.backoff(attempt);
        if let Some(p) = &mut self.pending {
            p.at = Some(now + wait);
        }
        tracing::warn!(%message, "reopening the realtime model connection failed; retrying");
        AttemptFailed::Retrying
    }

    /// A new socket is open: how long the conversation was without one.
    pub fn connected(&mut self, now: Instant) -> Option<Duration> {
        self.pending.take().map(|p| now - p.lost_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_back_off_doubling_then_give_up_naming_the_loss() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
        });
        assert!(r.lost(t0, "reset".into()));
        assert_eq!(r.deadline(), Some(t0 + Duration::from_millis(100)));
        assert!(!r.due(t0));
        assert!(r.due(t0 + Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(r.failed(t1, "refused"), AttemptFailed::Retrying);
        assert_eq!(r.deadline(), Some(t1 + Duration::from_millis(200)));
        assert!(r.due(t1 + Duration::from_millis(200)));
        assert_eq!(r.failed(t1, "refused"), AttemptFailed::Retrying);
        assert_eq!(r.deadline(), Some(t1 + Duration::from_millis(400)));
        let AttemptFailed::GiveUp(message) = r.failed(t1, "refused") else {
            panic!("gave up");
        };
        assert!(
            message.contains("(reset)") && message.contains("3 attempts"),
            "{message}"
        );
        assert!(!r.is_reconnecting());
    }

    #[test]
    fn a_new_socket_ends_the_reconnect_and_says_how_long_it_took() {
        let t0 = Instant::now();
        let mut r = Reconnector::new(ReconnectPolicy {
            attempts: 2,
            backoff: Duration::from_millis(50),
        });
        assert!(r.lost(t0, "eof".into()));
        assert!(r.due(t0 + Duration::from_millis(50)));
        assert_eq!(
            r.connected(t0 + Duration::from_millis(80)),
            Some(Duration::from_millis(80))
        );
        assert!(!r.is_reconnecting());
        assert!(r.lost(t0, "again".into()), "a later loss starts afresh");
    }

    #[test]
    fn no_attempts_means_no_reconnect() {
        let mut r = Reconnector::new(ReconnectPolicy {
            attempts: 0,
            backoff: Duration::from_millis(50),
        });
        assert!(!r.lost(Instant::now(), "eof".into()));
    }
}
