//! `Timeline`: codex's canonical realtime timeline for one conversation, the items a codex 0.169
//! client renders: a `realtimeSessionStarted` / `realtimeSessionClosed {outcome}` pair around each
//! model session behind the conversation, and a `transcriptSegment` per spoken part — started at
//! its first text, streamed by `item/transcript/delta`, completed with its whole text. It mints
//! the item ids and says which notifications to send; the engine sends them in codex's order
//! (an item's own notification before the flat `transcript/*` one). Pure bookkeeping, no I/O.

use crate::protocol::rpc::{Notification, TranscriptRole};
use serde_json::{Value, json};

/// A transcript item that started and is not complete yet.
#[derive(Debug)]
struct Segment {
    id: String,
    text: String,
}

#[derive(Debug)]
pub struct Timeline {
    /// Item ids are `{prefix}-i{n}`: unique within the conversation.
    prefix: String,
    next: u64,
    /// The model session the items belong to, while one is open.
    session: Option<String>,
    user: Option<Segment>,
    assistant: Option<Segment>,
}

impl Timeline {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            next: 0,
            session: None,
            user: None,
            assistant: None,
        }
    }

    fn mint(&mut self) -> String {
        self.next += 1;
        format!("{}-i{}", self.prefix, self.next)
    }

    fn segment(&mut self, role: TranscriptRole) -> &mut Option<Segment> {
        match role {
            TranscriptRole::User => &mut self.user,
            TranscriptRole::Assistant => &mut self.assistant,
        }
    }

    fn item(&self, id: &str, fields: Value) -> Value {
        let mut item =
            json!({"id": id, "realtimeSessionId": self.session.as_deref().unwrap_or("")});
        if let (Some(item), Value::Object(fields)) = (item.as_object_mut(), fields) {
            item.extend(fields);
        }
        item
    }

    /// A model session opened: its `realtimeSessionStarted` item, started and completed.
    pub fn session_started(&mut self, realtime_session_id: &str) -> [Notification; 2] {
        self.session = Some(realtime_session_id.to_owned());
        let id = self.mint();
        let item = self.item(&id, json!({"type": "realtimeSessionStarted"}));
        [
            Notification::ItemStarted(item.clone()),
            Notification::ItemCompleted(item),
        ]
    }

    /// The open model session closed (`ended` or `failed`): transcript items still streaming are
    /// completed with what they have, then its `realtimeSessionClosed`. Nothing if none is open.
    pub fn session_closed(&mut self, outcome: &str) -> Vec<Notification> {
        let mut out = self.finish(TranscriptRole::User);
        out.extend(self.finish(TranscriptRole::Assistant));
        if self.session.is_none() {
            return out;
        }
        let id = self.mint();
        let item = self.item(
            &id,
            json!({"type": "realtimeSessionClosed", "outcome": outcome}),
        );
        self.session = None;
        out.push(Notification::ItemStarted(item.clone()));
        out.push(Notification::ItemCompleted(item));
        out
    }

    /// The next text of `role` belongs to a new part (speech started, a response started): a
    /// part still streaming is completed with what it has.
    pub fn force_new(&mut self, role: TranscriptRole) -> Option<Notification> {
        self.finish(role).pop()
    }

    fn finish(&mut self, role: TranscriptRole) -> Vec<Notification> {
        let Some(seg) = self.segment(role).take() else {
            return Vec::new();
        };
        let item = self.transcript_item(&seg.id, role, &seg.text);
        vec![Notification::ItemCompleted(item)]
    }

    fn transcript_item(&self, id: &str, role: TranscriptRole, text: &str) -> Value {
        self.item(
            id,
            json!({"type": "transcriptSegment", "role": role.as_str(), "text": text}),
        )
    }

    /// Text appended to `role`'s current part: the part's `item/started` first if it is new,
    /// then its `item/transcript/delta`.
    pub fn transcript_delta(&mut self, role: TranscriptRole, delta: &str) -> Vec<Notification> {
        let mut out = Vec::new();
        if self.segment(role).is_none() {
            let id = self.mint();
            out.push(Notification::ItemStarted(
                self.transcript_item(&id, role, ""),
            ));
            *self.segment(role) = Some(Segment {
                id,
                text: String::new(),
            });
        }
        if let Some(seg) = self.segment(role) {
            seg.text.push_str(delta);
            out.push(Notification::ItemTranscriptDelta {
                item_id: seg.id.clone(),
                delta: delta.to_owned(),
            });
        }
        out
    }

    /// `role`'s current part is done with `text` (started now if no delta came first).
    pub fn transcript_done(&mut self, role: TranscriptRole, text: &str) -> Vec<Notification> {
        let mut out = Vec::new();
        let id = match self.segment(role).take() {
            Some(seg) => seg.id,
            None => {
                let id = self.mint();
                out.push(Notification::ItemStarted(
                    self.transcript_item(&id, role, ""),
                ));
                id
            }
        };
        out.push(Notification::ItemCompleted(
            self.transcript_item(&id, role, text),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(ns: &[Notification]) -> Vec<&'static str> {
        ns.iter().map(Notification::method).collect()
    }

    #[test]
    fn a_spoken_part_starts_streams_and_completes_under_one_id_in_its_session() {
        let mut t = Timeline::new("s");
        let started = t.session_started("s");
        assert_eq!(
            methods(&started),
            [
                "thread/realtime/item/started",
                "thread/realtime/item/completed"
            ]
        );
        let first = t.transcript_delta(TranscriptRole::Assistant, "You ");
        let second = t.transcript_delta(TranscriptRole::Assistant, "said");
        let done = t.transcript_done(TranscriptRole::Assistant, "You said");
        assert_eq!(
            methods(&first),
            [
                "thread/realtime/item/started",
                "thread/realtime/item/transcript/delta"
            ]
        );
        assert_eq!(methods(&second), ["thread/realtime/item/transcript/delta"]);
        let Notification::ItemStarted(item) = &first[0] else {
            panic!("{first:?}")
        };
        assert_eq!(
            item,
            &json!({"id": "s-i2", "realtimeSessionId": "s", "type": "transcriptSegment",
                "role": "assistant", "text": ""})
        );
        assert_eq!(
            done,
            [Notification::ItemCompleted(
                json!({"id": "s-i2", "realtimeSessionId": "s", "type": "transcriptSegment",
                "role": "assistant", "text": "You said"})
            )]
        );
        let closed = t.session_closed("ended");
        let Notification::ItemCompleted(item) = &closed[1] else {
            panic!("{closed:?}")
        };
        assert_eq!(
            item,
            &json!({"id": "s-i3", "realtimeSessionId": "s", "type": "realtimeSessionClosed",
                "outcome": "ended"})
        );
        assert!(t.session_closed("ended").is_empty(), "closed once");
    }

    #[test]
    fn a_part_cut_short_is_completed_with_what_it_has() {
        let mut t = Timeline::new("s");
        t.session_started("s");
        t.transcript_delta(TranscriptRole::User, "hel");
        let cut = t.force_new(TranscriptRole::User);
        assert!(matches!(cut, Some(Notification::ItemCompleted(item)) if item["text"] == "hel"));
        t.transcript_delta(TranscriptRole::Assistant, "I was");
        let closed = t.session_closed("failed");
        assert_eq!(closed.len(), 3, "{closed:?}");
        assert!(matches!(&closed[0], Notification::ItemCompleted(item) if item["text"] == "I was"));
        // A done with no delta before it starts and completes its item at once.
        t.session_started("s-2");
        let done = t.transcript_done(TranscriptRole::User, "hi");
        assert_eq!(
            methods(&done),
            [
                "thread/realtime/item/started",
                "thread/realtime/item/completed"
            ]
        );
        let Notification::ItemCompleted(item) = &done[1] else {
            panic!()
        };
        assert_eq!(item["realtimeSessionId"], "s-2");
    }
}
