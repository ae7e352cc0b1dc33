//! Model wire version v2 (GA realtime): inbound JSON → [`ModelEvent`], [`ModelFrame`] → exact
//! outbound JSON. Pure functions, no I/O.

use super::model::{AudioChunk, AudioDeltaProbe, ModelEvent, ModelFrame, SkipReason, fields};
use serde_json::{Value, json};

pub fn parse(text: &str) -> Result<ModelEvent, SkipReason> {
    // Hot path: the audio delta, without building a JSON tree.
    for name in ["response.output_audio.delta", "response.audio.delta"] {
        if let Some(p) = AudioDeltaProbe::probe(text, name) {
            return p.pcm24k(name);
        }
    }
    let (mut map, ty) = fields::object(text)?;
    let ev = match ty.as_str() {
        "session.updated" => fields::session_updated(&map, &ty)?,
        "response.output_audio.delta" | "response.audio.delta" => {
            ModelEvent::AudioOut(AudioChunk {
                data: fields::str_field(&map, &ty, "delta")?,
                sample_rate: 24_000,
                num_channels: 1,
                samples_per_channel: None,
                item_id: fields::opt_str(&map, "item_id"),
            })
        }
        "conversation.item.input_audio_transcription.delta" => ModelEvent::InputTranscriptDelta {
            delta: fields::str_field(&map, &ty, "delta")?,
        },
        "conversation.item.input_audio_transcription.completed" => {
            ModelEvent::InputTranscriptDone {
                text: fields::str_field(&map, &ty, "transcript")?,
            }
        }
        "response.output_text.delta" | "response.output_audio_transcript.delta" => {
            ModelEvent::OutputTranscriptDelta {
                delta: fields::str_field(&map, &ty, "delta")?,
            }
        }
        "response.output_text.done" => ModelEvent::OutputTranscriptDone {
            text: fields::str_field(&map, &ty, "text")?,
        },
        "response.output_audio_transcript.done" => ModelEvent::OutputTranscriptDone {
            text: fields::str_field(&map, &ty, "transcript")?,
        },
        "input_audio_buffer.speech_started" => ModelEvent::SpeechStarted {
            item_id: fields::opt_str(&map, "item_id"),
        },
        "conversation.item.added" | "conversation.item.created" => ModelEvent::ItemAdded {
            item: fields::item(&mut map, &ty)?,
        },
        "conversation.item.done" => item_done(fields::item(&mut map, &ty)?),
        "response.created" => ModelEvent::ResponseCreated {
            response_id: fields::response_id(&map),
        },
        "response.cancelled" => ModelEvent::ResponseCancelled {
            response_id: fields::response_id(&map),
        },
        "response.done" => ModelEvent::ResponseDone {
            response_id: fields::response_id(&map),
        },
        "error" => ModelEvent::Error {
            message: fields::error_message(&map),
        },
        _ => return Err(SkipReason::UnknownType(ty)),
    };
    Ok(ev)
}

/// `conversation.item.done`: a `background_agent` function call is a handoff, `remain_silent` a no-op
/// request; every other item is plain `ItemDone`.
fn item_done(item: Value) -> ModelEvent {
    if item.get("type").and_then(Value::as_str) != Some("function_call") {
        return ModelEvent::ItemDone { item };
    }
    let call_id = item.get("call_id").and_then(Value::as_str);
    let id = item.get("id").and_then(Value::as_str);
    match item.get("name").and_then(Value::as_str) {
        Some("background_agent") => {
            let (Some(handoff_id), Some(item_id)) = (call_id.or(id), id.or(call_id)) else {
                return ModelEvent::ItemDone { item };
            };
            let raw_args = item.get("arguments").and_then(Value::as_str).unwrap_or("");
            ModelEvent::HandoffRequested {
                handoff_id: handoff_id.to_owned(),
                item_id: item_id.to_owned(),
                input_transcript: transcript_from_arguments(raw_args),
            }
        }
        Some("remain_silent") => match call_id.or(id) {
            Some(call_id) => ModelEvent::NoopRequested {
                call_id: call_id.to_owned(),
            },
            None => ModelEvent::ItemDone { item },
        },
        _ => ModelEvent::ItemDone { item },
    }
}

/// First non-blank string among the known argument keys, else the raw arguments string.
pub fn transcript_from_arguments(raw: &str) -> String {
    if let Ok(Value::Object(args)) = serde_json::from_str::<Value>(raw) {
        for key in ["input_transcript", "input", "text", "prompt", "query"] {
            if let Some(s) = args
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
            {
                return s.to_owned();
            }
        }
    }
    raw.to_owned()
}

pub fn build(frame: &ModelFrame) -> Option<String> {
    let value = match frame {
        ModelFrame::SessionUpdate { update } => return Some(update.to_string()),
        ModelFrame::Raw { text } => return Some(text.clone()),
        ModelFrame::AudioAppend { audio } => return Some(super::model_v1::audio_append(audio)),
        ModelFrame::Text { role, text } => super::model_v1::message_item(*role, text),
        ModelFrame::HistoryItem {
            role,
            text,
            id,
            previous_item_id,
        } => super::model_v1::history_item(*role, text, id, previous_item_id),
        ModelFrame::FunctionOutput { call_id, output } => json!({
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": output}
        }),
        ModelFrame::ResponseCreate => json!({"type": "response.create"}),
        ModelFrame::Truncate {
            item_id,
            audio_end_ms,
        } => json!({
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms
        }),
        ModelFrame::HandoffAppend { .. }
        | ModelFrame::Commentary { .. }
        | ModelFrame::Thinking { .. }
        | ModelFrame::Close => return None,
    };
    Some(value.to_string())
}
