//! `ThreadRecord`: what was said on a thread — the user's and the model's finished transcripts and
//! the delegated agent's messages and outcomes — readable while its conversation runs and after it
//! ends, for the retention period (`[session] detach_grace_secs`, at least a minute). Bounded: the
//! most recent [`MAX_TURNS`] turns and [`MAX_CHARS`] characters; older turns are dropped and
//! counted in `truncated`. An agent result that arrives after the conversation ended is recorded
//! here too, so it is not lost.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub const MAX_TURNS: usize = 512;
pub const MAX_CHARS: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    /// `user`, `assistant` or `agent`.
    pub role: &'static str,
    pub text: String,
    /// When the turn was recorded, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

#[derive(Debug, Default)]
struct Turns {
    list: VecDeque<Turn>,
    chars: usize,
    truncated: u64,
}

#[derive(Debug, Default)]
pub struct ThreadRecord {
    turns: Mutex<Turns>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ThreadRecord {
    fn lock(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, role: &'static str, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let mut t = self.lock();
        t.chars += text.len();
        t.list.push_back(Turn {
            role,
            text: text.to_owned(),
            at_ms: now_ms(),
        });
        while t.list.len() > MAX_TURNS || (t.chars > MAX_CHARS && t.list.len() > 1) {
            if let Some(old) = t.list.pop_front() {
                t.chars -= old.text.len();
                t.truncated += 1;
            }
        }
    }

    /// The turns so far, oldest first, and how many older ones were dropped.
    pub fn read(&self) -> (Vec<Turn>, u64) {
        let t = self.lock();
        (t.list.iter().cloned().collect(), t.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_kept_in_order_within_their_bounds() {
        let r = ThreadRecord::default();
        r.push("user", "  hello ");
        r.push("assistant", "");
        for i in 0..MAX_TURNS {
            r.push("assistant", &format!("reply {i}"));
        }
        let (turns, truncated) = r.read();
        assert_eq!(turns.len(), MAX_TURNS);
        assert_eq!(truncated, 1);
        assert_eq!(turns[0].text, "reply 0");
        assert_eq!(turns.last().map(|t| t.text.as_str()), Some("reply 511"));
        r.push("agent", &"x".repeat(MAX_CHARS));
        let (turns, _) = r.read();
        assert_eq!(turns.len(), 1, "one long turn pushes out the rest");
    }
}
