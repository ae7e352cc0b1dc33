//! The GPT-Live dialects voxgate serves to its own clients (toward the model it speaks
//! [`crate::protocol::model_v3`]): codex 0.169's "frameless" realtime v3 on `GET /v1/live` (what codex
//! with `[realtime] version = "v3"` opens under `experimental_realtime_ws_base_url`) and
//! GPT-Live's session events on `GET /v1/live/sessions`. A [`LiveCodec`] reads a client's frames
//! into the engine's [`ClientCommand`]s and writes the conversation's notifications as the
//! dialect's server events, whatever wire version voxgate speaks to the model behind it.
//! Delegation runs server-side on voxgate's agent cores (a client never sees a delegation and
//! hears its results spoken), or — with `[openai] delegation = false`, for clients such as codex
//! that do their own work — in GPT-Live's `client` mode: the client gets `delegation.created`
//! and answers with `delegation.context.append`. Sans-IO; the exact frames are fixed in
//! `proto-fixtures/live/`.

use crate::engine::ClientCommand;
use crate::protocol::model::{AudioChunk, TextRole, check_base64, push_json_str};
use crate::protocol::rpc::{CloseReason, Notification, TranscriptRole};
use serde_json::{Map, Value, json};

/// Which GPT-Live dialect a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveDialect {
    /// codex 0.169's frameless bidi (`/v1/live`): `session.update` first, unprefixed events.
    Frameless,
    /// GPT-Live's session events (`/v1/live/sessions`): `session.start` first, `session.*`.
    GptLive,
}

impl LiveDialect {
    /// The event a client must open with.
    pub fn opening(self) -> &'static str {
        match self {
            LiveDialect::Frameless => "session.update",
            LiveDialect::GptLive => "session.start",
        }
    }
    fn audio_in(self) -> &'static str {
        match self {
            LiveDialect::Frameless => "input_audio.append",
            LiveDialect::GptLive => "session.input_audio.append",
        }
    }
}

/// What a client's opening event asked the conversation to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveOpening {
    pub model: Option<String>,
    pub instructions: Option<String>,
    pub voice: Option<String>,
    /// Conversation so far (GPT-Live's `initial_items`): role and text.
    pub initial_items: Vec<(TextRole, String)>,
}

/// A client event voxgate will not act on: told to the client as an `error` event, and the
/// conversation goes on (an opening that fails ends it before it starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveError {
    pub code: &'static str,
    pub message: String,
}

impl LiveError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    /// The `error` event, as GPT-Live sends one.
    pub fn to_event(&self) -> String {
        json!({"type": "error", "error": {"type": "invalid_request_error", "code": self.code,
            "message": self.message}})
        .to_string()
    }
}

/// Session fields GPT-Live accepts; its configuration is strict, so is this face's.
const KNOWN_SESSION_FIELDS: &[&str] = &[
    "model",
    "instructions",
    "audio",
    "delegation",
    "initial_items",
];

fn object(text: &str) -> Result<(Map<String, Value>, String), LiveError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| LiveError::new("invalid_json", format!("the event is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(LiveError::new(
            "invalid_event",
            "the event is not a JSON object",
        ));
    };
    let ty = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| LiveError::new("invalid_event", "the event has no string `type`"))?
        .to_owned();
    Ok((map, ty))
}

/// Read a client's opening event (`session.update` / `session.start`).
pub fn parse_opening(dialect: LiveDialect, text: &str) -> Result<LiveOpening, LiveError> {
    let (map, ty) = object(text)?;
    if ty != dialect.opening() {
        return Err(LiveError::new(
            "session_not_started",
            format!(
                "the first event must be `{}` (got `{}`)",
                dialect.opening(),
                bounded(&ty)
            ),
        ));
    }
    let session = match map.get("session") {
        Some(Value::Object(s)) => s,
        None => return Ok(LiveOpening::default()),
        Some(_) => {
            return Err(LiveError::new(
                "invalid_session",
                "`session` must be an object",
            ));
        }
    };
    if dialect == LiveDialect::GptLive
        && let Some(unknown) = session
            .keys()
            .find(|k| !KNOWN_SESSION_FIELDS.contains(&k.as_str()))
    {
        return Err(LiveError::new(
            "unknown_parameter",
            format!("unknown session field `{}`", bounded(unknown)),
        ));
    }
    if let Some(kind) = session
        .get("delegation")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        && kind != "client"
    {
        return Err(LiveError::new(
            "unsupported_delegation",
            format!(
                "delegation `{}` is not offered: voxgate runs delegated work on its own agent cores (`client`)",
                bounded(kind)
            ),
        ));
    }
    let text_field = |v: Option<&Value>, name: &str| -> Result<Option<String>, LiveError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(LiveError::new(
                "invalid_session",
                format!("`{name}` must be a string"),
            )),
        }
    };
    let mut initial_items = Vec::new();
    for item in session
        .get("initial_items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = match item.get("role").and_then(Value::as_str) {
            Some("user") => TextRole::User,
            Some("assistant") => TextRole::Assistant,
            Some("developer" | "system") => TextRole::Developer,
            _ => {
                return Err(LiveError::new(
                    "invalid_session",
                    "each of `initial_items` needs a role: user, assistant or developer",
                ));
            }
        };
        let text: String = item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect();
        initial_items.push((role, text));
    }
    Ok(LiveOpening {
        model: text_field(session.get("model"), "model")?,
        instructions: text_field(session.get("instructions"), "instructions")?,
        voice: text_field(
            session
                .get("audio")
                .and_then(|a| a.get("output"))
                .and_then(|o| o.get("voice")),
            "audio.output.voice",
        )?,
        initial_items,
    })
}

/// Attacker-chosen text for an error message: at most 64 characters, control characters out.
fn bounded(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Conversation text carried by a `content` array (`input_text` / `output_text` parts), or a
/// plain `content` string.
fn content_text(map: &Map<String, Value>) -> Result<String, LiveError> {
    match map.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()),
        _ => Err(LiveError::new(
            "missing_content",
            "the event needs `content`: text parts ({\"type\":\"input_text\",\"text\":…})",
        )),
    }
}

/// What a client event asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveInput {
    /// Something for the conversation.
    Command(ClientCommand),
    /// What the client's own work on a delegation found (client-mode delegation).
    DelegationContext {
        delegation_id: String,
        text: String,
        /// Meant to be said now (the `speakable` or `commentary` channel).
        spoken: bool,
    },
}

/// codex marks the first words of its final answer to a delegation with this.
pub const AGENT_FINAL_MESSAGE_PREFIX: &str = "\"Agent Final Message\":\n\n";

/// One client's dialect and the state its server events need.
#[derive(Debug, Clone)]
pub struct LiveCodec {
    dialect: LiveDialect,
    /// Delegations go to the client (GPT-Live `client` mode) instead of voxgate's agent cores.
    client_delegation: bool,
    /// Transcript items and turns are numbered for their ids.
    next_id: u64,
    session_id: String,
    model: String,
}

impl LiveCodec {
    pub fn new(dialect: LiveDialect, session_id: String, model: String) -> Self {
        Self {
            dialect,
            client_delegation: false,
            next_id: 0,
            session_id,
            model,
        }
    }

    pub fn dialect(&self) -> LiveDialect {
        self.dialect
    }

    /// Hand delegations to the client (`delegation.created`) instead of voxgate's agent cores.
    pub fn with_client_delegation(mut self) -> Self {
        self.client_delegation = true;
        self
    }

    pub fn client_delegation(&self) -> bool {
        self.client_delegation
    }

    /// The event that hands a delegation to the client: its id and what the person asked.
    pub fn delegation_created(&self, delegation_id: &str, request: &str) -> String {
        let item = json!({"id": delegation_id, "type": "delegation", "target": "client",
            "content": [{"type": "input_text", "text": request}]});
        match self.dialect {
            LiveDialect::Frameless => json!({"type": "delegation.created", "item": item}),
            LiveDialect::GptLive => json!({"type": "session.delegation.created",
                "delegation": item}),
        }
        .to_string()
    }

    /// A client event after the opening: what the conversation should do, or why not.
    pub fn client_event(&self, text: &str) -> Result<LiveInput, LiveError> {
        // The hot path (50 a second): the audio append, read without a JSON tree.
        let audio_in = self.dialect.audio_in();
        if text.contains(audio_in)
            && let Ok(probe) = serde_json::from_str::<AudioAppendProbe<'_>>(text)
            && probe.ty == audio_in
        {
            return audio_append(probe.audio.as_deref()).map(LiveInput::Command);
        }
        let (map, ty) = object(text)?;
        if self.client_delegation
            && matches!(
                ty.as_str(),
                "delegation.context.append" | "session.delegation.context.append"
            )
        {
            let delegation_id = map
                .get("delegation_item_id")
                .or_else(|| map.get("delegation_id"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    LiveError::new("missing_delegation", "the event needs `delegation_item_id`")
                })?
                .to_owned();
            return Ok(LiveInput::DelegationContext {
                delegation_id,
                text: content_text(&map)?,
                spoken: matches!(
                    map.get("channel").and_then(Value::as_str),
                    Some("speakable" | "commentary")
                ),
            });
        }
        self.command(&map, &ty).map(LiveInput::Command)
    }

    fn command(&self, map: &Map<String, Value>, ty: &str) -> Result<ClientCommand, LiveError> {
        let d = self.dialect;
        match ty {
            t if t == d.audio_in() => audio_append(map.get("audio").and_then(Value::as_str)),
            "session.context.append" => {
                let text = content_text(map)?;
                let speakable = matches!(
                    map.get("channel").and_then(Value::as_str),
                    Some("speakable" | "commentary")
                );
                let assistant = map
                    .get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|p| p.iter().any(|c| c["type"] == "output_text"));
                Ok(if speakable {
                    ClientCommand::AppendSpeech(text)
                } else {
                    ClientCommand::AppendText {
                        text,
                        role: if assistant {
                            TextRole::Assistant
                        } else {
                            TextRole::User
                        },
                    }
                })
            }
            "session.commentary.append" if d == LiveDialect::GptLive => {
                Ok(ClientCommand::AppendSpeech(content_text(map)?))
            }
            "session.instructions.append" | "session.thinking.append"
                if d == LiveDialect::GptLive =>
            {
                Ok(ClientCommand::AppendText {
                    text: content_text(map)?,
                    role: TextRole::Developer,
                })
            }
            "session.close" => Ok(ClientCommand::Stop),
            "delegation.context.append" | "session.delegation.context.append" => {
                Err(LiveError::new(
                    "unknown_delegation",
                    "voxgate runs delegated work on its own agent cores: there is no client delegation to append to",
                ))
            }
            t if t == d.opening() => Err(LiveError::new(
                "session_already_started",
                format!("the session has started: `{t}` is only the first event"),
            )),
            other => Err(LiveError::new(
                "unknown_event",
                format!("unknown event type `{}`", bounded(other)),
            )),
        }
    }

    /// The dialect's `session.started`.
    pub fn started(&self) -> String {
        json!({"type": "session.started", "session": {"id": self.session_id, "model": self.model}})
            .to_string()
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    /// The server event a conversation notification is in this dialect, if it is one.
    pub fn server_event(&mut self, n: &Notification) -> Option<String> {
        let frameless = self.dialect == LiveDialect::Frameless;
        let side = |role: &TranscriptRole| match role {
            TranscriptRole::User => "input",
            _ => "output",
        };
        let event = match n {
            Notification::Started { .. } => return Some(self.started()),
            Notification::OutputAudioDelta(chunk) => {
                return Some(audio_out(self.dialect, &chunk.data));
            }
            Notification::TranscriptDelta { role, delta } if frameless => {
                let kind = format!("{}_transcript", side(role));
                json!({"type": format!("{kind}.added"),
                    "item": {"id": self.id(side(role)), "type": kind, "text": delta}})
            }
            Notification::TranscriptDelta { role, delta } => {
                json!({"type": format!("session.{}_transcript.delta", side(role)), "delta": delta})
            }
            Notification::TranscriptDone { role, text } if frameless => {
                json!({"type": "turn.done",
                    "turn": {"id": self.id("turn"), "role": role.as_str(), "transcript": text}})
            }
            Notification::Error { message } => {
                json!({"type": "error", "error": {"type": "server_error", "code": "session_failed",
                    "message": message}})
            }
            Notification::Closed { reason } => json!({"type": "session.closed",
            "reason": match reason {
                CloseReason::Requested => "client_closed",
                CloseReason::TransportClosed => "server_closed",
                CloseReason::Error => "error",
            }}),
            _ => return None,
        };
        Some(event.to_string())
    }
}

/// An audio append's fields, borrowed from the frame.
#[derive(serde::Deserialize)]
struct AudioAppendProbe<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    audio: Option<std::borrow::Cow<'a, str>>,
}

/// The client's audio: base64 PCM16 24 kHz mono, checked.
fn audio_append(audio: Option<&str>) -> Result<ClientCommand, LiveError> {
    let Some(audio) = audio else {
        return Err(LiveError::new(
            "missing_audio",
            "the event needs `audio`: base64 PCM16 24 kHz mono",
        ));
    };
    let bytes = check_base64(audio).map_err(|e| {
        LiveError::new("invalid_audio", format!("`audio` is not valid base64: {e}"))
    })?;
    if bytes % 2 != 0 {
        return Err(LiveError::new(
            "invalid_audio",
            "`audio` has an odd byte count; PCM16 needs 2 bytes per sample",
        ));
    }
    Ok(ClientCommand::AppendAudio(AudioChunk {
        data: audio.to_owned(),
        sample_rate: 24_000,
        num_channels: 1,
        samples_per_channel: None,
        item_id: None,
    }))
}

/// The model's audio for the client (the per-frame hot path: built without a JSON tree).
fn audio_out(dialect: LiveDialect, audio: &str) -> String {
    let head = match dialect {
        LiveDialect::Frameless => r#"{"type":"output_audio.delta","audio":"#,
        LiveDialect::GptLive => r#"{"type":"session.output_audio.delta","delta":"#,
    };
    let mut out = String::with_capacity(audio.len() + head.len() + 2);
    out.push_str(head);
    push_json_str(&mut out, audio);
    out.push('}');
    out
}
