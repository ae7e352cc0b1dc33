//! Model wire version v3 (GPT-Live, `gpt-live-1`): inbound JSON → [`ModelEvent`], [`ModelFrame`] →
//! exact outbound JSON. GPT-Live is full duplex: no response lifecycle, no `response.create`, no
//! truncation; transcripts arrive as deltas with `start_ms`/`end_ms` and no "done" (the engine
//! closes turns itself); the model hands work over with `session.delegation.created`, and what the
//! work found goes back as `session.thinking.append` (silent context) and
//! `session.commentary.append` (for the model to say), both naming the delegation.

use super::model::{AudioDeltaProbe, ModelEvent, ModelFrame, SkipReason, TextRole, fields};
use serde_json::{Value, json};

/// Server events GPT-Live sends that change nothing voxgate tracks (acknowledgements, usage).
const QUIET_EVENTS: &[&str] = &[
    "session.updated",
    "session.usage.updated",
    "session.input_audio.muted",
    "session.input_audio.unmuted",
    "session.instructions.appended",
    "session.thinking.appended",
    "session.commentary.appended",
    "session.context.appended",
    "delegation.context.appended",
    "response.event",
];

pub fn parse(text: &str) -> Result<ModelEvent, SkipReason> {
    // Hot path: the audio delta, without building a JSON tree.
    const AUDIO: &str = "session.output_audio.delta";
    if let Some(p) = AudioDeltaProbe::probe(text, AUDIO) {
        return p.pcm24k(AUDIO);
    }
    let (map, ty) = fields::object(text)?;
    let ev = match ty.as_str() {
        "session.started" => ModelEvent::SessionUpdated {
            session_id: map
                .get("session")
                .and_then(|s| s.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        "session.output_transcript.delta" => ModelEvent::OutputTranscriptDelta {
            delta: fields::str_field(&map, &ty, "delta")?,
        },
        "session.input_transcript.delta" => ModelEvent::InputTranscriptDelta {
            delta: fields::str_field(&map, &ty, "delta")?,
        },
        "session.delegation.created" => {
            let id = map
                .get("delegation")
                .and_then(|d| d.get("id"))
                .and_then(Value::as_str)
                .ok_or(SkipReason::MissingField {
                    event: ty.clone(),
                    field: "delegation.id",
                })?;
            ModelEvent::DelegationCreated {
                delegation_id: id.to_owned(),
                offset_ms: map.get("offset_ms").and_then(Value::as_u64).unwrap_or(0),
            }
        }
        "session.closed" => ModelEvent::SessionClosed {
            reason: fields::opt_str(&map, "reason").unwrap_or_else(|| "unknown".into()),
        },
        "error" => ModelEvent::Error {
            message: fields::error_message(&map),
        },
        quiet if QUIET_EVENTS.contains(&quiet) => ModelEvent::Quiet { name: ty.clone() },
        _ => return Err(SkipReason::UnknownType(ty)),
    };
    Ok(ev)
}

/// `{"type":"session.input_audio.append","audio":…}` built directly (the per-frame hot path).
fn audio_append(audio: &str) -> String {
    let mut out = String::with_capacity(audio.len() + 48);
    out.push_str(r#"{"type":"session.input_audio.append","audio":"#);
    super::model::push_json_str(&mut out, audio);
    out.push('}');
    out
}

/// Conversation text told to the model: user and assistant text as context (what codex sends
/// for `appendText`), a developer message as appended instructions.
fn text_frame(role: TextRole, text: &str) -> Value {
    match role {
        TextRole::Developer => json!({
            "type": "session.instructions.append",
            "content": text,
            "delegation_id": null
        }),
        TextRole::User => json!({
            "type": "session.context.append",
            "content": [{"type": "input_text", "text": text}]
        }),
        TextRole::Assistant => json!({
            "type": "session.context.append",
            "content": [{"type": "output_text", "text": text}]
        }),
    }
}

pub fn build(frame: &ModelFrame) -> Option<String> {
    let value = match frame {
        ModelFrame::SessionUpdate { update } => return Some(update.to_string()),
        ModelFrame::Raw { text } => return Some(text.clone()),
        ModelFrame::AudioAppend { audio } => return Some(audio_append(audio)),
        ModelFrame::Text { role, text } | ModelFrame::HistoryItem { role, text, .. } => {
            text_frame(*role, text)
        }
        ModelFrame::Commentary {
            delegation_id,
            text,
        } => json!({
            "type": "session.commentary.append",
            "content": text,
            "delegation_id": delegation_id
        }),
        ModelFrame::Thinking {
            delegation_id,
            text,
        } => json!({
            "type": "session.thinking.append",
            "content": text,
            "delegation_id": delegation_id
        }),
        ModelFrame::Close => json!({"type": "session.close"}),
        ModelFrame::FunctionOutput { .. }
        | ModelFrame::HandoffAppend { .. }
        | ModelFrame::ResponseCreate
        | ModelFrame::Truncate { .. } => return None,
    };
    Some(value.to_string())
}
