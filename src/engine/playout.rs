//! `PlayoutTracker`: how much of the current output item's audio was received (and, when voxgate
//! plays it itself, actually played), so a barge-in truncates at a position the model accepts
//! (protocol.md §3.4).

use crate::protocol::AudioChunk;

#[derive(Debug, Default)]
pub struct PlayoutTracker {
    item_id: Option<String>,
    received_us: u64,
    played_ms: Option<u64>,
    /// Output items seen this session (a speech_started naming one of them that is not current
    /// refers to old audio and truncates nothing).
    past_items: std::collections::HashSet<String>,
}

/// A truncation to send: `conversation.item.truncate{item_id, audio_end_ms}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub item_id: String,
    pub audio_end_ms: u64,
}

impl PlayoutTracker {
    pub fn on_audio(&mut self, chunk: &AudioChunk) {
        if chunk.item_id != self.item_id {
            self.clear();
            self.item_id.clone_from(&chunk.item_id);
        }
        self.received_us += chunk.duration_us();
    }

    /// The media layer reports the played position of `item_id` (WebRTC relay).
    pub fn on_played(&mut self, item_id: &str, played_ms: u64) {
        if self.item_id.as_deref() == Some(item_id) {
            self.played_ms = Some(played_ms);
        }
    }

    pub fn received_ms(&self) -> u64 {
        self.received_us / 1000
    }

    /// On `speech_started`: the truncation to send, if any; tracking is cleared either way when
    /// it applies.
    pub fn on_speech_started(&mut self, speech_item_id: Option<&str>) -> Option<Truncation> {
        let current = self.item_id.clone()?;
        let applies = match speech_item_id {
            None => true,
            Some(id) if id == current => true,
            Some(id) => !self.past_items.contains(id),
        };
        if !applies {
            return None;
        }
        let received_ms = self.received_ms();
        let audio_end_ms = self.played_ms.map_or(received_ms, |p| p.min(received_ms));
        self.clear();
        Some(Truncation {
            item_id: current,
            audio_end_ms,
        })
    }

    pub fn clear(&mut self) {
        if let Some(id) = self.item_id.take() {
            self.past_items.insert(id);
        }
        self.received_us = 0;
        self.played_ms = None;
    }
}
