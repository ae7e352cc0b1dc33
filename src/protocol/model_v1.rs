//! Model wire version v1 ("quicksilver"): inbound JSON → [`ModelEvent`], [`ModelFrame`] → exact
//! outbound JSON. v1 has no response lifecycle, no function calls and no truncation: handoffs
//! arrive as `conversation.handoff.requested` and are answered with `conversation.handoff.append`.

use super::model::{
    AudioChunk, AudioDeltaProbe, ModelEvent, ModelFrame, SkipReason, TextRole, fields,
};
use serde_json::{Value, json};

pub fn parse(text: &str) -> Result<ModelEvent, SkipReason> {
    const AUDIO: &str = "conversation.output_audio.delta";
    if let Some(p) = AudioDeltaProbe::probe(text, AUDIO) {
        let missing = |field| SkipReason::MissingField {
            event: AUDIO.to_owned(),
            field,
        };
        let data = p.delta.or(p.data).ok_or(missing("delta"))?;
        let sample_rate = p
            .sample_rate
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(missing("sample_rate"))?;
        let channels = p
            .channels
            .or(p.num_channels)
            .and_then(|v| u16::try_from(v).ok())
            .ok_or(missing("channels"))?;
        return Ok(ModelEvent::AudioOut(AudioChunk {
            data: data.into_owned(),
            sample_rate,
            num_channels: channels,
            samples_per_channel: p.samples_per_channel.and_then(|v| u32::try_from(v).ok()),
            item_id: p.item_id.map(|s| s.into_owned()),
        }));
    }
    let (mut map, ty) = fields::object(text)?;
    let ev = match ty.as_str() {
        "session.updated" => fields::session_updated(&map, &ty)?,
        "conversation.output_audio.delta" => {
            let data = fields::opt_str(&map, "delta")
                .or_else(|| fields::opt_str(&map, "data"))
                .ok_or(SkipReason::MissingField {
                    event: ty.clone(),
                    field: "delta",
                })?;
            let sample_rate = map
                .get("sample_rate")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(SkipReason::MissingField {
                    event: ty.clone(),
                    field: "sample_rate",
                })?;
            let channels = map
                .get("channels")
                .or_else(|| map.get("num_channels"))
                .and_then(Value::as_u64)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(SkipReason::MissingField {
                    event: ty.clone(),
                    field: "channels",
                })?;
            let samples_per_channel = map
                .get("samples_per_channel")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok());
            ModelEvent::AudioOut(AudioChunk {
                data,
                sample_rate,
                num_channels: channels,
                samples_per_channel,
                item_id: fields::opt_str(&map, "item_id"),
            })
        }
        "conversation.input_transcript.delta"
        | "conversation.item.input_audio_transcription.delta" => ModelEvent::InputTranscriptDelta {
            delta: fields::str_field(&map, &ty, "delta")?,
        },
        "conversation.item.input_audio_transcription.completed"
        | "conversation.input_transcript.turn_marked" => ModelEvent::InputTranscriptDone {
            text: fields::str_field(&map, &ty, "transcript")?,
        },
        "conversation.output_transcript.delta"
        | "response.output_text.delta"
        | "response.output_audio_transcript.delta" => ModelEvent::OutputTranscriptDelta {
            delta: fields::str_field(&map, &ty, "delta")?,
        },
        "response.output_audio_transcript.done" => ModelEvent::OutputTranscriptDone {
            text: fields::str_field(&map, &ty, "transcript")?,
        },
        "conversation.item.added" => ModelEvent::ItemAdded {
            item: fields::item(&mut map, &ty)?,
        },
        "conversation.item.done" => ModelEvent::ItemDone {
            item: fields::item(&mut map, &ty)?,
        },
        "conversation.handoff.requested" => ModelEvent::HandoffRequested {
            handoff_id: fields::str_field(&map, &ty, "handoff_id")?,
            item_id: fields::str_field(&map, &ty, "item_id")?,
            input_transcript: fields::str_field(&map, &ty, "input_transcript")?,
        },
        "error" => ModelEvent::Error {
            message: fields::error_message(&map),
        },
        _ => return Err(SkipReason::UnknownType(ty)),
    };
    Ok(ev)
}

/// `{"type":"input_audio_buffer.append","audio":…}` built directly (the per-frame hot path).
pub(crate) fn audio_append(audio: &str) -> String {
    let mut out = String::with_capacity(audio.len() + 48);
    out.push_str(r#"{"type":"input_audio_buffer.append","audio":"#);
    super::model::push_json_str(&mut out, audio);
    out.push('}');
    out
}

/// `conversation.item.create` carrying one text message (shared by both versions).
pub(crate) fn message_item(role: TextRole, text: &str) -> Value {
    let content_type = match role {
        TextRole::Assistant => "output_text",
        TextRole::User | TextRole::Developer => "input_text",
    };
    json!({
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": role.as_str(),
            "content": [{"type": content_type, "text": text}]
        }
    })
}

/// A message item of an earlier session, inserted after `previous_item_id` (both versions).
pub(crate) fn history_item(role: TextRole, text: &str, id: &str, previous_item_id: &str) -> Value {
    let mut v = message_item(role, text);
    v["previous_item_id"] = previous_item_id.into();
    v["item"]["id"] = id.into();
    v
}

pub fn build(frame: &ModelFrame) -> Option<String> {
    let value = match frame {
        ModelFrame::SessionUpdate { update } => return Some(update.to_string()),
        ModelFrame::Raw { text } => return Some(text.clone()),
        ModelFrame::AudioAppend { audio } => return Some(audio_append(audio)),
        ModelFrame::Text { role, text } => message_item(*role, text),
        ModelFrame::HistoryItem {
            role,
            text,
            id,
            previous_item_id,
        } => history_item(*role, text, id, previous_item_id),
        ModelFrame::HandoffAppend {
            handoff_id,
            output_text,
        } => json!({
            "type": "conversation.handoff.append",
            "handoff_id": handoff_id,
            "output_text": output_text
        }),
        ModelFrame::FunctionOutput { .. }
        | ModelFrame::ResponseCreate
        | ModelFrame::Truncate { .. }
        | ModelFrame::Commentary { .. }
        | ModelFrame::Thinking { .. }
        | ModelFrame::Close => return None,
    };
    Some(value.to_string())
}
