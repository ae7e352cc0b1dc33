//! `PlumbingFilter`: decides which raw model events a client that speaks the OpenAI realtime
//! protocol itself (a WebRTC data channel, later the `/v1/realtime` face) gets to see. voxgate's
//! delegation is server-side, so the client never sees the agent plumbing: the
//! `background_agent`/`remain_silent` calls and their arguments, their outputs, the `[BACKEND]`
//! items voxgate inserts, and voxgate's tools in session objects. Everything else passes through
//! untouched (re-serialized only when something had to be removed).

use serde_json::{Map, Value};
use std::collections::HashSet;

pub const HIDDEN_TOOLS: [&str; 2] = ["background_agent", "remain_silent"];

/// Ids of hidden items and calls remembered at most (the oldest are forgotten first): plumbing
/// events follow their item closely, so a short memory is enough for a whole session.
const REMEMBERED_IDS: usize = 256;

/// A set of ids that forgets its oldest past [`REMEMBERED_IDS`].
#[derive(Debug, Default)]
struct RecentIds {
    set: HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl RecentIds {
    fn insert(&mut self, id: &str) {
        if self.set.contains(id) {
            return;
        }
        if self.order.len() >= REMEMBERED_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.set.len()
    }
}

/// A `response.created` held back until the response shows something the client may see: a
/// response that only calls voxgate's own tools is hidden whole, as if it never was.
#[derive(Debug)]
struct HeldResponse {
    id: String,
    raw: String,
    /// The response carried plumbing (so, if nothing else, it is hidden whole).
    had_hidden: bool,
}

#[derive(Debug, Default)]
pub struct PlumbingFilter {
    hidden_items: RecentIds,
    hidden_calls: RecentIds,
    held: Option<HeldResponse>,
    /// A held `response.created` to forward before the event just filtered.
    released: Option<String>,
    /// Audio deltas travel by RTP for WebRTC clients; drop them from the event stream.
    pub drop_audio: bool,
    /// Hide delegation plumbing (off when the client delegates on its own).
    pub hide: bool,
}

fn is_hidden_item(item: &Value) -> bool {
    match item.get("type").and_then(Value::as_str) {
        Some("function_call") => item
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| HIDDEN_TOOLS.contains(&n)),
        Some("message") => item
            .pointer("/content/0/text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("[BACKEND]")),
        _ => false,
    }
}

impl PlumbingFilter {
    pub fn new(drop_audio: bool) -> Self {
        Self {
            drop_audio,
            hide: true,
            ..Default::default()
        }
    }

    /// A filter that hides nothing (delegation off) but may still drop audio.
    pub fn passthrough(drop_audio: bool) -> Self {
        Self {
            drop_audio,
            hide: false,
            ..Default::default()
        }
    }

    fn remember(&mut self, item: &Value) {
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            self.hidden_items.insert(id);
        }
        if let Some(id) = item.get("call_id").and_then(Value::as_str) {
            self.hidden_calls.insert(id);
        }
    }

    fn item_is_hidden(&mut self, item: &Value) -> bool {
        let by_id = item
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.hidden_items.contains(id));
        let output_of_hidden = item.get("type").and_then(Value::as_str)
            == Some("function_call_output")
            && item
                .get("call_id")
                .and_then(Value::as_str)
                .is_some_and(|c| self.hidden_calls.contains(c));
        if is_hidden_item(item) {
            self.remember(item);
            return true;
        }
        by_id || output_of_hidden
    }

    /// A held-back `response.created` that must reach the client before the event the last
    /// [`filter`](Self::filter) call returned (check after every call, whatever it returned).
    pub fn take_released(&mut self) -> Option<String> {
        self.released.take()
    }

    fn release_held(&mut self) {
        if let Some(held) = self.held.take() {
            self.released = Some(held.raw);
        }
    }

    /// A hidden event: if it belongs to the held response, that response carried plumbing.
    fn hidden(&mut self) -> Option<String> {
        if let Some(held) = &mut self.held {
            held.had_hidden = true;
        }
        None
    }

    /// The text to forward to the client, or `None` to drop the event. A `response.created`
    /// is held until its response shows something visible (then [`take_released`]
    /// (Self::take_released) gives it back first); a response made only of plumbing is
    /// dropped whole, `response.created` to `response.done`.
    pub fn filter(&mut self, raw: &str) -> Option<String> {
        if !self.hide && !self.drop_audio {
            return Some(raw.to_owned());
        }
        // Hot path: audio deltas (type first, as the service sends them) carry no plumbing.
        let head = raw.trim_start();
        if head.starts_with(r#"{"type":"response.output_audio.delta""#)
            || head.starts_with(r#"{"type":"response.audio.delta""#)
        {
            if self.drop_audio {
                return None;
            }
            self.release_held();
            return Some(raw.to_owned());
        }
        let forwarded = self.filter_event(raw);
        if forwarded.is_some() {
            self.release_held();
        }
        forwarded
    }

    fn filter_event(&mut self, raw: &str) -> Option<String> {
        let Ok(Value::Object(mut ev)) = serde_json::from_str::<Value>(raw) else {
            return Some(raw.to_owned());
        };
        let ty = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if ty == "response.output_audio.delta" || ty == "response.audio.delta" {
            return (!self.drop_audio).then(|| raw.to_owned());
        }
        if !self.hide {
            return Some(raw.to_owned());
        }
        if ty == "response.created"
            && let Some(id) = ev
                .get("response")
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
        {
            self.release_held();
            self.held = Some(HeldResponse {
                id: id.to_owned(),
                raw: raw.to_owned(),
                had_hidden: false,
            });
            return None;
        }
        if let Some(item) = ev.get("item") {
            let item = item.clone();
            if self.item_is_hidden(&item) {
                return self.hidden();
            }
        }
        let refs_hidden = ["item_id", "call_id"].iter().any(|k| {
            ev.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|v| self.hidden_items.contains(v) || self.hidden_calls.contains(v))
        });
        if refs_hidden {
            return self.hidden();
        }
        let mut changed = false;
        if (ty == "session.created" || ty == "session.updated")
            && let Some(Value::Array(tools)) =
                ev.get_mut("session").and_then(|s| s.get_mut("tools"))
        {
            {
                let before = tools.len();
                tools.retain(|t| {
                    !t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| HIDDEN_TOOLS.contains(&n))
                });
                changed |= tools.len() != before;
            }
        }
        if ty == "response.done" {
            let hidden: Vec<Value> = ev
                .get("response")
                .and_then(|r| r.get("output"))
                .and_then(Value::as_array)
                .map(|o| o.iter().filter(|i| is_hidden_item(i)).cloned().collect())
                .unwrap_or_default();
            for item in &hidden {
                self.remember(item);
            }
            let mut visible = 0;
            if let Some(Value::Array(out)) =
                ev.get_mut("response").and_then(|r| r.get_mut("output"))
            {
                let before = out.len();
                out.retain(|i| !is_hidden_item(i));
                changed |= out.len() != before;
                visible = out.len();
            }
            let id = ev
                .get("response")
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str);
            if let Some(held) = &self.held
                && Some(held.id.as_str()) == id
                && (held.had_hidden || !hidden.is_empty())
                && visible == 0
            {
                // Nothing but plumbing: the client never hears of this response.
                self.held = None;
                return None;
            }
        }
        if changed {
            Some(Value::Object(ev).to_string())
        } else {
            Some(raw.to_owned())
        }
    }
}

/// Add voxgate's delegation tools to a client's `session.update` (keeping the client's own).
pub fn inject_tools(update: &mut Map<String, Value>) {
    let Some(Value::Object(session)) = update.get_mut("session") else {
        return;
    };
    if session.get("type").and_then(Value::as_str) == Some("transcription") {
        return;
    }
    let tools = session
        .entry("tools")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(tools) = tools else { return };
    tools.retain(|t| {
        !t.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| HIDDEN_TOOLS.contains(&n))
    });
    if let Value::Array(ours) = crate::protocol::session_config::delegation_tools() {
        tools.extend(ours);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hidden_ids_are_remembered_up_to_a_bound() {
        let mut f = PlumbingFilter::new(false);
        for i in 0..REMEMBERED_IDS + 50 {
            let call = json!({"type": "conversation.item.done", "item": {"id": format!("fc{i}"),
                "type": "function_call", "name": "remain_silent", "call_id": format!("c{i}")}});
            assert_eq!(f.filter(&call.to_string()), None);
        }
        assert_eq!(f.hidden_items.len(), REMEMBERED_IDS);
        assert_eq!(f.hidden_calls.len(), REMEMBERED_IDS);
        let last = format!("fc{}", REMEMBERED_IDS + 49);
        let delta = json!({"type": "response.function_call_arguments.delta", "item_id": last, "delta": "{"});
        assert_eq!(f.filter(&delta.to_string()), None, "recent ids still hide");
    }

    #[test]
    fn delegation_calls_their_arguments_and_outputs_are_hidden() {
        let mut f = PlumbingFilter::new(false);
        let call = json!({"type": "response.output_item.added", "item": {"id": "fc1", "type": "function_call",
            "name": "background_agent", "call_id": "c1"}});
        assert_eq!(f.filter(&call.to_string()), None);
        assert_eq!(f.filter(&json!({"type": "response.function_call_arguments.delta", "item_id": "fc1", "delta": "{"}).to_string()), None);
        assert_eq!(f.filter(&json!({"type": "conversation.item.added", "item": {"id": "o1", "type": "function_call_output", "call_id": "c1"}}).to_string()), None);
        assert_eq!(f.filter(&json!({"type": "conversation.item.added", "item": {"id": "m9", "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "[BACKEND] found it"}]}}).to_string()), None);
        let client_tool = json!({"type": "conversation.item.done", "item": {"id": "fc2", "type": "function_call", "name": "lookup", "call_id": "c2"}}).to_string();
        assert_eq!(f.filter(&client_tool), Some(client_tool.clone()));
        let unknown = r#"{"type":"brand.new.event","x":1}"#;
        assert_eq!(f.filter(unknown).as_deref(), Some(unknown));
    }

    #[test]
    fn voxgate_tools_are_removed_from_session_objects_and_response_output() {
        let mut f = PlumbingFilter::new(false);
        let ev = json!({"type": "session.updated", "session": {"id": "s", "tools": [
            {"type": "function", "name": "background_agent"}, {"type": "function", "name": "lookup"}]}});
        let out: Value =
            serde_json::from_str(&f.filter(&ev.to_string()).expect("kept")).expect("json");
        assert_eq!(
            out["session"]["tools"],
            json!([{"type": "function", "name": "lookup"}])
        );
        let done = json!({"type": "response.done", "response": {"id": "r", "output": [
            {"id": "fc3", "type": "function_call", "name": "remain_silent", "call_id": "c3"}]}});
        let out: Value =
            serde_json::from_str(&f.filter(&done.to_string()).expect("kept")).expect("json");
        assert_eq!(out["response"]["output"], json!([]));
    }

    /// What the client receives for `events`, released `response.created`s included.
    fn seen(f: &mut PlumbingFilter, events: &[Value]) -> Vec<String> {
        let mut out = Vec::new();
        for ev in events {
            let t = f.filter(&ev.to_string());
            out.extend(f.take_released());
            out.extend(t);
        }
        out.iter()
            .map(|t| {
                let v: Value = serde_json::from_str(t).expect("json");
                v["type"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    #[test]
    fn a_response_that_only_delegates_is_hidden_whole() {
        let mut f = PlumbingFilter::new(false);
        let call = json!({"id": "fc1", "type": "function_call", "name": "background_agent", "call_id": "c1"});
        let got = seen(
            &mut f,
            &[
                json!({"type": "response.created", "response": {"id": "r1", "output": []}}),
                json!({"type": "response.output_item.added", "response_id": "r1", "item": call}),
                json!({"type": "response.function_call_arguments.done", "response_id": "r1", "item_id": "fc1"}),
                json!({"type": "response.done", "response": {"id": "r1", "output": [call]}}),
                json!({"type": "response.created", "response": {"id": "r2", "output": []}}),
                json!({"type": "response.output_audio_transcript.delta", "response_id": "r2", "item_id": "m2", "delta": "On it"}),
                json!({"type": "response.done", "response": {"id": "r2", "output": []}}),
            ],
        );
        assert_eq!(
            got,
            [
                "response.created",
                "response.output_audio_transcript.delta",
                "response.done"
            ]
        );
    }

    #[test]
    fn responses_with_something_visible_keep_their_created_first() {
        let mut f = PlumbingFilter::new(false);
        let own = json!({"id": "fc2", "type": "function_call", "name": "lookup", "call_id": "c2"});
        let got = seen(
            &mut f,
            &[
                json!({"type": "response.created", "response": {"id": "r1", "output": []}}),
                json!({"type": "response.output_item.added", "response_id": "r1", "item": own}),
                json!({"type": "response.done", "response": {"id": "r1", "output": [own]}}),
                // A response cancelled before it said anything is still the client's to see.
                json!({"type": "response.created", "response": {"id": "r2", "output": []}}),
                json!({"type": "response.done", "response": {"id": "r2", "status": "cancelled", "output": []}}),
            ],
        );
        assert_eq!(
            got,
            [
                "response.created",
                "response.output_item.added",
                "response.done",
                "response.created",
                "response.done"
            ]
        );
        assert_eq!(
            seen(
                &mut PlumbingFilter::new(false),
                &[
                    json!({"type": "response.created", "response": {"id": "r3"}}),
                    json!({"type": "response.output_audio.delta", "response_id": "r3", "delta": "AAAA"}),
                ]
            ),
            ["response.created", "response.output_audio.delta"],
            "the audio hot path releases a held response.created too"
        );
    }

    #[test]
    fn a_passthrough_filter_hides_nothing() {
        let mut f = PlumbingFilter::passthrough(false);
        let call =
            json!({"type": "conversation.item.done", "item": {"id": "fc1", "type": "function_call",
            "name": "background_agent", "call_id": "c1"}})
            .to_string();
        assert_eq!(f.filter(&call), Some(call.clone()));
        let session = json!({"type": "session.updated", "session": {"tools": [{"name": "background_agent"}]}}).to_string();
        assert_eq!(f.filter(&session), Some(session.clone()));
        assert_eq!(
            PlumbingFilter::passthrough(true)
                .filter(r#"{"type":"response.output_audio.delta","delta":"A"}"#),
            None
        );
    }

    #[test]
    fn audio_deltas_are_dropped_for_rtp_clients_only() {
        let delta = r#"{"type":"response.output_audio.delta","delta":"AAAA"}"#;
        assert_eq!(PlumbingFilter::new(true).filter(delta), None);
        assert_eq!(
            PlumbingFilter::new(false).filter(delta).as_deref(),
            Some(delta)
        );
    }

    #[test]
    fn injected_tools_keep_the_clients_own() {
        let mut update = json!({"type": "session.update", "session": {"type": "realtime", "tools": [{"type": "function", "name": "lookup"}]}});
        let Value::Object(map) = &mut update else {
            unreachable!()
        };
        inject_tools(map);
        let names: Vec<&str> = update["session"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, vec!["lookup", "background_agent", "remain_silent"]);
    }
}
