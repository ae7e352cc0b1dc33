//! The simulator's GPT-Live (v3) dialect. The conversation logic is the v2 simulator's (VAD,
//! triggers, replies, delegation); this module translates at the edges: a GPT-Live client event
//! into what the v2 logic understands ([`ClientAction`]), and each v2 server event into what
//! GPT-Live sends instead — or nothing, since GPT-Live has no response lifecycle, no items, no
//! "done" events. Like the service, it wants `session.start` first and answers `session.started`.

use serde_json::{Value, json};

/// What a GPT-Live client event asks of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientAction {
    /// Hand this v2-shaped event to the v2 logic.
    V2(Value),
    /// Background context for a delegation (`session.thinking.append`).
    Note(String),
    /// Say something (`session.commentary.append`): verbatim without a delegation; with one,
    /// what the delegation found.
    Say {
        text: String,
        delegation: bool,
    },
    /// Answer with this event only (an acknowledgement).
    Ack(Value),
    /// `session.close`: say `session.closed` and close.
    Close,
    Error {
        code: &'static str,
        message: String,
    },
}

#[derive(Debug, Default)]
pub struct LiveDialect {
    started: bool,
    /// `session.started` was sent (the answer to the first `session.start`).
    announced: bool,
    /// The session timeline (ms of audio heard and said), for `start_ms`/`end_ms`/`offset_ms`.
    timeline_ms: u64,
}

fn text_of(ev: &serde_json::Map<String, Value>) -> String {
    ev.get("content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl LiveDialect {
    pub fn client_event(&mut self, ty: &str, ev: &serde_json::Map<String, Value>) -> ClientAction {
        if !self.started && ty != "session.start" {
            return ClientAction::Error {
                code: "session_not_started",
                message: format!("`{ty}` before `session.start`: start the session first."),
            };
        }
        match ty {
            "session.start" if self.started => ClientAction::Error {
                code: "session_already_started",
                message: "The session has already started.".into(),
            },
            "session.start" | "session.update" => {
                self.started = true;
                let session = ev.get("session").cloned().unwrap_or(json!({}));
                ClientAction::V2(json!({"type": "session.update", "session": session}))
            }
            "session.input_audio.append" => ClientAction::V2(
                json!({"type": "input_audio_buffer.append", "audio": ev.get("audio").cloned()}),
            ),
            "session.context.append" => {
                let content = ev.get("content").and_then(Value::as_array);
                let part = content.and_then(|c| c.first());
                let text = part
                    .and_then(|p| p.get("text"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let said_by_model = part.and_then(|p| p.get("type")) == Some(&json!("output_text"));
                let role = if said_by_model { "assistant" } else { "user" };
                let mut item = json!({"type": "conversation.item.create", "item": {
                    "type": "message", "role": role,
                    "content": [{"type": "input_text", "text": text}]
                }});
                if said_by_model {
                    // History, not a turn to answer.
                    item["previous_item_id"] = Value::Null;
                }
                ClientAction::V2(item)
            }
            "session.instructions.append" => {
                ClientAction::Ack(json!({"type": "session.instructions.appended"}))
            }
            "session.thinking.append" => ClientAction::Note(text_of(ev)),
            "session.commentary.append" => ClientAction::Say {
                text: text_of(ev),
                delegation: ev.get("delegation_id").is_some_and(|d| !d.is_null()),
            },
            "session.input_audio.mute" => {
                ClientAction::Ack(json!({"type": "session.input_audio.muted"}))
            }
            "session.input_audio.unmute" => {
                ClientAction::Ack(json!({"type": "session.input_audio.unmuted"}))
            }
            "session.close" => ClientAction::Close,
            other => ClientAction::Error {
                code: "invalid_value",
                message: format!(
                    "Invalid value: '{other}'. Supported values are Live client events."
                ),
            },
        }
    }

    /// Input audio heard (moves the session timeline).
    pub fn heard_ms(&mut self, ms: u64) {
        self.timeline_ms += ms;
    }

    /// What GPT-Live sends for this v2 server event, if anything.
    pub fn server_event(&mut self, v: &Value) -> Option<Value> {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let at = self.timeline_ms;
        Some(match ty {
            "session.updated" if !self.started => return None,
            "session.updated" => {
                let id = v["session"]["id"].clone();
                // The first one answers `session.start`.
                if std::mem::replace(&mut self.announced, true) {
                    json!({"type": "session.updated", "session": {"id": id}})
                } else {
                    json!({"type": "session.started", "session": {"id": id}})
                }
            }
            "response.output_audio.delta" => {
                json!({"type": "session.output_audio.delta", "delta": v["delta"]})
            }
            "response.output_audio_transcript.delta" | "response.output_text.delta" => {
                json!({"type": "session.output_transcript.delta", "delta": v["delta"],
                    "start_ms": at, "end_ms": at})
            }
            "conversation.item.input_audio_transcription.delta" => {
                json!({"type": "session.input_transcript.delta", "delta": v["delta"],
                    "start_ms": at, "end_ms": at})
            }
            "conversation.item.done"
                if v["item"]["type"] == "function_call"
                    && v["item"]["name"] == "background_agent" =>
            {
                json!({"type": "session.delegation.created", "offset_ms": at, "delegation": {
                    "id": v["item"]["call_id"], "type": "delegation", "target": "client"
                }})
            }
            "error" => v.clone(),
            _ => return None,
        })
    }

    pub fn add_output_ms(&mut self, ms: u64) {
        self.timeline_ms += ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn nothing_before_session_start_and_the_start_is_answered_with_session_started() {
        let mut d = LiveDialect::default();
        let early = d.client_event("session.input_audio.append", &obj(json!({"audio": ""})));
        assert!(matches!(
            early,
            ClientAction::Error {
                code: "session_not_started",
                ..
            }
        ));
        let start = d.client_event(
            "session.start",
            &obj(json!({"session": {"model": "gpt-live-1"}})),
        );
        assert!(matches!(start, ClientAction::V2(_)));
        let updated = json!({"type": "session.updated", "session": {"id": "sess_1"}});
        assert_eq!(
            d.server_event(&updated),
            Some(json!({"type": "session.started", "session": {"id": "sess_1"}}))
        );
        assert_eq!(
            d.server_event(&json!({"type": "response.created", "response": {}})),
            None,
            "no response lifecycle"
        );
    }
}
