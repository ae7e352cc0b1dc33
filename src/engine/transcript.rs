//! `TranscriptLog`: the running transcript of one conversation (protocol.md §3.1) and the slice of
//! it that is new since the previous handoff (`active_transcript`).

use crate::protocol::rpc::TranscriptRole;

/// Transcript entries kept at most: the conversation since the last handoff, bounded.
pub const MAX_ENTRIES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptEntry {
    pub role: TranscriptRole,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct TranscriptLog {
    entries: Vec<TranscriptEntry>,
    /// Index of the first entry added since the previous handoff.
    marker: usize,
    force_new_user: bool,
    force_new_assistant: bool,
}

impl TranscriptLog {
    fn force_flag(&mut self, role: TranscriptRole) -> &mut bool {
        match role {
            TranscriptRole::User => &mut self.force_new_user,
            TranscriptRole::Assistant => &mut self.force_new_assistant,
        }
    }

    fn last_of(&mut self, role: TranscriptRole) -> Option<&mut TranscriptEntry> {
        self.entries.iter_mut().rev().find(|e| e.role == role)
    }

    /// The next text of `role` starts a new entry (speech_started / response.created).
    pub fn force_new(&mut self, role: TranscriptRole) {
        *self.force_flag(role) = true;
    }

    pub fn push_delta(&mut self, role: TranscriptRole, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let forced = std::mem::take(self.force_flag(role));
        match self.last_of(role) {
            Some(entry) if !forced => entry.text.push_str(delta),
            _ => self.push_entry(TranscriptEntry {
                role,
                text: delta.to_owned(),
            }),
        }
    }

    /// Add an entry; past [`MAX_ENTRIES`] the oldest goes (the log lives as long as the session).
    fn push_entry(&mut self, entry: TranscriptEntry) {
        if self.entries.len() >= MAX_ENTRIES {
            let excess = self.entries.len() + 1 - MAX_ENTRIES;
            self.entries.drain(..excess);
            self.marker = self.marker.saturating_sub(excess);
        }
        self.entries.push(entry);
    }

    pub fn push_done(&mut self, role: TranscriptRole, text: &str) {
        let forced = std::mem::take(self.force_flag(role));
        match self.last_of(role) {
            Some(entry) if !forced => text.clone_into(&mut entry.text),
            _ => self.push_entry(TranscriptEntry {
                role,
                text: text.to_owned(),
            }),
        }
    }

    /// Close the current slice for a handoff: add the input transcript (unless the user already
    /// said exactly that), return the entries since the previous handoff and advance the marker.
    pub fn take_for_handoff(&mut self, input_transcript: &str) -> Vec<TranscriptEntry> {
        let trimmed = input_transcript.trim();
        let since = self.marker.min(self.entries.len());
        let duplicate = self.entries[since..]
            .iter()
            .any(|e| e.role == TranscriptRole::User && e.text.trim() == trimmed);
        if !trimmed.is_empty() && !duplicate {
            self.push_entry(TranscriptEntry {
                role: TranscriptRole::User,
                text: trimmed.to_owned(),
            });
        }
        let active = self.entries[since..].to_vec();
        // Nothing before a handoff is looked at again: the next deltas start new entries.
        self.entries.clear();
        self.marker = 0;
        self.force_new_user = true;
        self.force_new_assistant = true;
        active
    }

    pub fn entries(&self) -> &[TranscriptEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_latest_entries_and_forgets_what_a_handoff_took() {
        let mut log = TranscriptLog::default();
        for i in 0..MAX_ENTRIES + 10 {
            log.force_new(TranscriptRole::User);
            log.push_done(TranscriptRole::User, &format!("turn {i}"));
        }
        assert_eq!(log.entries().len(), MAX_ENTRIES);
        assert_eq!(log.entries()[0].text, "turn 10");
        let active = log.take_for_handoff("do it");
        assert_eq!(
            active.len(),
            MAX_ENTRIES,
            "the oldest went, the rest was handed off"
        );
        assert_eq!(active.last().map(|e| e.text.as_str()), Some("do it"));
        assert!(log.entries().is_empty());
        log.push_delta(TranscriptRole::Assistant, "ok");
        assert_eq!(log.entries().len(), 1);
    }
}
