//! The model session behind a conversation changing: a lost socket (`ModelLost`) or a retired
//! session (`RollOver`) closes the current one on the timeline; the next `Connected` is its
//! successor, told the conversation so far as history items; a delegation made in the old
//! session resolves into the new one as an item.

use super::*;

impl Engine {
    /// A successor model session: the conversation so far as history items (ids chained from
    /// `root`, not re-remembered), and the timeline's `realtimeSessionStarted`.
    pub(super) fn tell_history(&mut self) {
        let mut previous_item_id = "root".to_owned();
        for (i, (role, text)) in self.memory.replay(self.cfg.replay).into_iter().enumerate() {
            let id = format!("{HISTORY_ITEM_PREFIX}{}_{i}", self.model_session);
            self.out.push_back(Output::ToModel(ModelFrame::HistoryItem {
                role,
                text,
                id: id.clone(),
                previous_item_id: std::mem::replace(&mut previous_item_id, id),
            }));
        }
        let id = self.model_session_id();
        for n in self.timeline.session_started(&id) {
            self.notify(n);
        }
    }

    /// The model socket is gone; a new one is on its way. Nothing said so far is lost: it is
    /// remembered for the next model session, and what is asked meanwhile waits (bounded).
    pub(super) fn on_model_lost(&mut self, outcome: &str, reason: &str) {
        if !self.connected {
            return;
        }
        self.connected = false;
        let typed = std::mem::take(&mut self.typed_turn_open);
        self.reply_owed = outcome == "failed"
            && (self.responses.is_active() || std::mem::take(&mut self.awaiting_reply) || typed);
        self.user_speaking = false;
        self.responses.on_model_lost();
        self.playout.clear();
        tracing::info!(
            outcome,
            reason,
            "the model session behind the conversation closed"
        );
        for n in self.timeline.session_closed(outcome) {
            self.notify(n);
        }
    }
    /// The id this conversation's current model session is announced under: the session id,
    /// with `-2`, `-3`, … for the sessions that follow a reconnect.
    pub(super) fn model_session_id(&self) -> String {
        match self.model_session {
            0 | 1 => self.cfg.realtime_session_id.clone(),
            n => format!("{}-{n}", self.cfg.realtime_session_id),
        }
    }
    /// Nobody is speaking: no response is active and the user is not mid-turn. A model session
    /// can be swapped here without anyone hearing it.
    pub fn at_turn_boundary(&self) -> bool {
        self.connected
            && !self.responses.is_active()
            && !self.user_speaking
            && !self.typed_turn_open
            && !self.live.is_open(TranscriptRole::User)
            && !self.live.is_open(TranscriptRole::Assistant)
    }
    /// Answer a call with a final output and let the model speak (v2), or append it (v1).
    /// Resolve the delegated task's call: in the model session it was made in, or, if that one
    /// is gone, by telling the new one the result as an item it answers.
    pub(super) fn resolve_task_call(&mut self, call_id: String, output: String) {
        if self.handoff.session == self.model_session {
            return self.resolve_call(call_id, output);
        }
        self.say_backend(output);
    }
}

/// Whether a session configured by `session_update` answers each user turn by itself: not a
/// transcription session, and not turn detection that is off (`null`) or told not to
/// (`create_response: false`). v1 sessions leave turn detection at its default, which answers.
pub(super) fn turns_get_replies(session_update: &Value) -> bool {
    let session = &session_update["session"];
    if session["type"] == "transcription" {
        return false;
    }
    let detection = &session["audio"]["input"];
    match detection.get("turn_detection") {
        Some(Value::Null) => false,
        Some(d) => d["create_response"] != false,
        None => true,
    }
}
