//! `LiveTurns`: where a GPT-Live (v3) turn ends. GPT-Live streams transcript deltas for both
//! sides of a full-duplex conversation and never says a turn is done, while voxgate's faces
//! promise a `transcript/done` per turn. A turn of one side ends when the other side is heard,
//! when the model delegates (the user's request is complete), when the model has been quiet for
//! a moment (the session core's deadline), or when the conversation ends. The engine's v3 turn
//! handling (`live_delta`, `end_live_turn`) lives here too.

use super::Engine;
use crate::protocol::TextRole;
use crate::protocol::rpc::TranscriptRole;

#[derive(Debug, Default)]
pub struct LiveTurns {
    user: Option<String>,
    assistant: Option<String>,
}

impl LiveTurns {
    fn slot(&mut self, role: TranscriptRole) -> &mut Option<String> {
        match role {
            TranscriptRole::User => &mut self.user,
            TranscriptRole::Assistant => &mut self.assistant,
        }
    }

    /// Text of `role` was heard: the other side's open turn, if any, is over (returned).
    pub fn delta(&mut self, role: TranscriptRole, delta: &str) -> Option<(TranscriptRole, String)> {
        let other = match role {
            TranscriptRole::User => TranscriptRole::Assistant,
            TranscriptRole::Assistant => TranscriptRole::User,
        };
        let ended = self.end(other).map(|text| (other, text));
        self.slot(role)
            .get_or_insert_with(String::new)
            .push_str(delta);
        ended
    }

    /// End `role`'s open turn: its whole text, if it said anything.
    pub fn end(&mut self, role: TranscriptRole) -> Option<String> {
        self.slot(role).take()
    }

    pub fn is_open(&self, role: TranscriptRole) -> bool {
        match role {
            TranscriptRole::User => self.user.is_some(),
            TranscriptRole::Assistant => self.assistant.is_some(),
        }
    }
}

impl Engine {
    /// v3 transcript text of `role`: the other side's open turn ends first, and the first text
    /// of a turn starts a new transcript part.
    pub(super) fn live_delta(&mut self, role: TranscriptRole, delta: String) {
        let starting = !self.live.is_open(role);
        if let Some((ended, text)) = self.live.delta(role, &delta) {
            self.finish_live_turn(ended, text);
        }
        if starting {
            self.new_transcript_part(role);
        }
        if role == TranscriptRole::Assistant {
            self.awaiting_reply = false;
        }
        self.transcript_delta(role, delta);
    }

    /// v3: `role`'s open turn is over (if one is open): its `transcript/done`.
    pub(super) fn end_live_turn(&mut self, role: TranscriptRole) {
        if let Some(text) = self.live.end(role) {
            self.finish_live_turn(role, text);
        }
    }

    fn finish_live_turn(&mut self, role: TranscriptRole, text: String) {
        let memory_role = match role {
            TranscriptRole::User => TextRole::User,
            TranscriptRole::Assistant => TextRole::Assistant,
        };
        self.memory.record(memory_role, &text);
        self.transcript_done(role, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TranscriptRole::{Assistant, User};

    #[test]
    fn a_turn_ends_when_the_other_side_is_heard_and_keeps_its_whole_text() {
        let mut t = LiveTurns::default();
        assert_eq!(t.delta(User, "what "), None);
        assert_eq!(t.delta(User, "time is it"), None);
        assert_eq!(
            t.delta(Assistant, "It is "),
            Some((User, "what time is it".into()))
        );
        assert_eq!(t.delta(Assistant, "noon."), None);
        assert!(t.is_open(Assistant));
        assert_eq!(t.end(Assistant), Some("It is noon.".into()));
        assert_eq!(t.end(Assistant), None, "ended once");
        assert!(!t.is_open(User));
    }
}
