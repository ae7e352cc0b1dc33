//! `ThreadRecord`: what was said on a thread — the user's and the model's finished transcripts and
//! the delegated agent's messages and outcomes — readable while its conversation runs and after it
//! ends, for the retention period (`[session] detach_grace_secs`, at least a minute). Bounded: the
//! most recent [`MAX_TURNS`] turns and [`MAX_CHARS`] characters; older turns are dropped and
//! counted in `truncated`. An agent result that arrives after the conversation ended is recorded
//! here too, so it is not lost, and waits in the thread's *late inbox* (at most
//! [`MAX_LATE_RESULTS`], the oldest dropped) for the next conversation on the thread, which is
//! told it when it starts — or goes straight to the conversation running on the thread by then.

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub const MAX_TURNS: usize = 512;
pub const MAX_CHARS: usize = 64 * 1024;
/// Late agent results a thread keeps for its next conversation.
pub const MAX_LATE_RESULTS: usize = 16;

type Inbox = mpsc::WeakSender<super::reactor::SessionCommand>;

#[derive(Debug, Default)]
struct LateInbox {
    /// The conversation running on the thread (its generation and command queue), if any.
    live: Option<(u64, Inbox)>,
    waiting: std::collections::VecDeque<String>,
}

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
    late: Mutex<LateInbox>,
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

    fn late(&self) -> std::sync::MutexGuard<'_, LateInbox> {
        self.late
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Conversation `generation` runs on the thread: late results go to it from now on.
    pub fn open_inbox(&self, generation: u64, inbox: Inbox) {
        self.late().live = Some((generation, inbox));
    }

    /// Conversation `generation` is ending: late results wait for the next one.
    pub fn close_inbox(&self, generation: u64) {
        let mut late = self.late();
        if late.live.as_ref().is_some_and(|(g, _)| *g == generation) {
            late.live = None;
        }
    }

    /// A delegated task that outlived its conversation finished with `text`: into the running
    /// conversation if there is one with room, else kept for the next.
    pub fn deliver_late(&self, text: String) {
        let mut late = self.late();
        let live = late.live.as_ref().and_then(|(_, inbox)| inbox.upgrade());
        let text = match live {
            Some(tx) => match tx.try_send(super::reactor::SessionCommand::LateResult(text)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(
                    super::reactor::SessionCommand::LateResult(t),
                ))
                | Err(mpsc::error::TrySendError::Closed(
                    super::reactor::SessionCommand::LateResult(t),
                )) => t,
                Err(_) => return,
            },
            None => text,
        };
        if late.waiting.len() >= MAX_LATE_RESULTS {
            late.waiting.pop_front();
        }
        late.waiting.push_back(text);
    }

    /// The late results waiting for a conversation, oldest first (taken: told once).
    pub fn take_late(&self) -> Vec<String> {
        self.late().waiting.drain(..).collect()
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

    #[test]
    fn late_results_go_to_the_running_conversation_or_wait_bounded_for_the_next() {
        use crate::session::reactor::SessionCommand;
        let r = ThreadRecord::default();
        for i in 0..MAX_LATE_RESULTS + 2 {
            r.deliver_late(format!("result {i}"));
        }
        let waiting = r.take_late();
        assert_eq!(waiting.len(), MAX_LATE_RESULTS, "the oldest are dropped");
        assert_eq!(waiting[0], "result 2");
        assert!(r.take_late().is_empty(), "told once");
        // A conversation runs on the thread: straight to it.
        let (tx, mut rx) = mpsc::channel(1);
        r.open_inbox(7, tx.downgrade());
        r.deliver_late("live".into());
        assert!(matches!(rx.try_recv(), Ok(SessionCommand::LateResult(t)) if t == "live"));
        // Its queue is full: kept for later rather than lost.
        r.deliver_late("one".into());
        r.deliver_late("two".into());
        assert_eq!(r.take_late(), ["two"]);
        // Another generation's close does not close this one's inbox; its own does.
        r.close_inbox(6);
        let _ = rx.try_recv();
        r.deliver_late("still live".into());
        assert!(rx.try_recv().is_ok());
        r.close_inbox(7);
        r.deliver_late("after".into());
        assert_eq!(r.take_late(), ["after"]);
    }
}
