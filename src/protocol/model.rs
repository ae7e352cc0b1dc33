//! Version-independent model-face types: the normalized inbound [`ModelEvent`] every wire version
//! parses into, and the outbound [`ModelFrame`] the engine asks to send. Pure data; the per-version
//! modules (`model_v1`, `model_v2`) own the byte-level JSON.

use serde_json::Value;

/// Wire version spoken to the realtime model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelVersion {
    /// The "quicksilver" protocol (`intent=quicksilver`).
    V1,
    /// The GA realtime protocol.
    V2,
    /// GPT-Live (`gpt-live-1`): full duplex, delegation instead of tools.
    V3,
}

impl ModelVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelVersion::V1 => "v1",
            ModelVersion::V2 => "v2",
            ModelVersion::V3 => "v3",
        }
    }

    /// Parse an inbound text frame with this version's rules (protocol.md §2.3).
    pub fn parse(self, text: &str) -> Result<ModelEvent, SkipReason> {
        match self {
            ModelVersion::V1 => super::model_v1::parse(text),
            ModelVersion::V2 => super::model_v2::parse(text),
            ModelVersion::V3 => super::model_v3::parse(text),
        }
    }

    /// Serialize an outbound frame with this version's rules (protocol.md §2.2).
    pub fn build(self, frame: &ModelFrame) -> Option<String> {
        match self {
            ModelVersion::V1 => super::model_v1::build(frame),
            ModelVersion::V2 => super::model_v2::build(frame),
            ModelVersion::V3 => super::model_v3::build(frame),
        }
    }
}

impl std::fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an inbound frame was skipped (debug-logged and counted, never an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    BadJson,
    MissingType,
    UnknownType(String),
    MissingField { event: String, field: &'static str },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::BadJson => f.write_str("frame is not a JSON object"),
            SkipReason::MissingType => f.write_str("frame has no string `type`"),
            SkipReason::UnknownType(t) => write!(f, "unknown event type `{t}`"),
            SkipReason::MissingField { event, field } => {
                write!(f, "`{event}` is missing required field `{field}`")
            }
        }
    }
}

/// One chunk of PCM16LE audio, still base64 as on the wire (no re-encoding on the hot path).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AudioChunk {
    pub data: String,
    pub sample_rate: u32,
    pub num_channels: u16,
    pub samples_per_channel: Option<u32>,
    pub item_id: Option<String>,
}

impl AudioChunk {
    /// Samples per channel: the explicit count, else derived from the decoded byte length.
    pub fn samples(&self) -> u64 {
        if let Some(n) = self.samples_per_channel {
            return u64::from(n);
        }
        let bytes = base64_decoded_len(&self.data);
        bytes / 2 / u64::from(self.num_channels.max(1))
    }

    /// Duration of this chunk in microseconds.
    pub fn duration_us(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.samples() * 1_000_000 / u64::from(self.sample_rate)
    }
}

#[cfg(test)]
mod base64_tests {
    use super::check_base64;
    use base64::Engine as _;

    #[test]
    fn check_base64_agrees_with_the_decoder() {
        let b64 = base64::engine::general_purpose::STANDARD;
        for n in 0..10usize {
            let data: Vec<u8> = (0..n as u8).collect();
            assert_eq!(check_base64(&b64.encode(&data)), Ok(n));
        }
        for bad in ["abc", "ab!d", "a===", "====", "ab=d"] {
            assert!(check_base64(bad).is_err(), "{bad}");
            assert!(b64.decode(bad).is_err(), "{bad}");
        }
    }
}

/// Length of the bytes a standard base64 string decodes to, without decoding it.
pub fn base64_decoded_len(b64: &str) -> u64 {
    let s = b64.trim_end();
    let len = s.len() as u64;
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    (len / 4) * 3
        + match len % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        }
        - pad.min(2)
}

/// Check that `b64` is standard, padded base64 without decoding it; returns the decoded length.
/// (Validating an append must not cost a decode and an allocation per frame.)
pub fn check_base64(b64: &str) -> Result<usize, String> {
    let bytes = b64.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(format!("its length {} is not a multiple of 4", bytes.len()));
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return Err("more than two padding characters".into());
    }
    let body = &bytes[..bytes.len() - pad];
    // Branch-free over the whole body (the compiler vectorizes it); where, only on failure.
    let valid = |b: u8| {
        let upper = b.wrapping_sub(b'A') < 26;
        let lower = b.wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        upper | lower | digit | (b == b'+') | (b == b'/')
    };
    if !body.iter().fold(true, |ok, &b| ok & valid(b)) {
        let i = body.iter().position(|&b| !valid(b)).unwrap_or_default();
        return Err(format!("invalid character at offset {i}"));
    }
    Ok(bytes.len() / 4 * 3 - pad)
}

/// The normalized inbound event (protocol.md §2.3, right-hand column). Serializable so wire
/// fixtures can state the expected result.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event")]
pub enum ModelEvent {
    SessionUpdated {
        session_id: String,
    },
    AudioOut(AudioChunk),
    InputTranscriptDelta {
        delta: String,
    },
    InputTranscriptDone {
        text: String,
    },
    OutputTranscriptDelta {
        delta: String,
    },
    OutputTranscriptDone {
        text: String,
    },
    SpeechStarted {
        item_id: Option<String>,
    },
    ItemAdded {
        item: Value,
    },
    ItemDone {
        item: Value,
    },
    HandoffRequested {
        handoff_id: String,
        item_id: String,
        input_transcript: String,
    },
    NoopRequested {
        call_id: String,
    },
    ResponseCreated {
        response_id: Option<String>,
    },
    ResponseCancelled {
        response_id: Option<String>,
    },
    ResponseDone {
        response_id: Option<String>,
    },
    Error {
        message: String,
    },
    /// v3: the model hands work to the application (client-mode delegation); `offset_ms` is
    /// where on the session timeline it did.
    DelegationCreated {
        delegation_id: String,
        offset_ms: u64,
    },
    /// v3: the service ended the session (`close_requested`, `expired`, `connection_lost`, …).
    SessionClosed {
        reason: String,
    },
    /// An acknowledgement or usage report that changes nothing voxgate tracks.
    Quiet {
        name: String,
    },
}

/// Role of a text item sent to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextRole {
    #[default]
    User,
    Developer,
    Assistant,
}

impl TextRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TextRole::User => "user",
            TextRole::Developer => "developer",
            TextRole::Assistant => "assistant",
        }
    }
}

/// What the engine asks to send upstream (protocol.md §2.2).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "frame")]
pub enum ModelFrame {
    /// A full `session.update` frame, already built by `session_config`.
    SessionUpdate {
        update: Value,
    },
    AudioAppend {
        audio: String,
    },
    Text {
        role: TextRole,
        text: String,
    },
    /// A turn of an earlier model session, told to a new one (after a reconnect): a message item
    /// with its own id, inserted after `previous_item_id` ("root" for the first) — history, not
    /// a new turn to answer.
    HistoryItem {
        role: TextRole,
        text: String,
        id: String,
        previous_item_id: String,
    },
    FunctionOutput {
        call_id: String,
        output: String,
    },
    HandoffAppend {
        handoff_id: String,
        output_text: String,
    },
    ResponseCreate,
    Truncate {
        item_id: String,
        audio_end_ms: u64,
    },
    /// A client's own event, passed through as it came (OpenAI-protocol clients).
    Raw {
        text: String,
    },
    /// v3: guidance the model says to the person (`session.commentary.append`); with a
    /// delegation id, what that delegation found.
    Commentary {
        delegation_id: Option<String>,
        text: String,
    },
    /// v3: silent background context for a delegation (`session.thinking.append`).
    Thinking {
        delegation_id: String,
        text: String,
    },
    /// v3: end the model session (`session.close`).
    Close,
}

const APPEND_TYPE: &str = "\"input_audio_buffer.append\"";

impl ModelFrame {
    /// Input audio toward the model (voxgate's own append or a client's, passed through).
    pub fn is_audio_append(&self) -> bool {
        match self {
            ModelFrame::AudioAppend { .. } => true,
            // Wherever a serializer put `type` (the Python SDK puts it after the audio); base64
            // holds no quotes, so the quoted name cannot come from the payload.
            ModelFrame::Raw { text } => text.contains(APPEND_TYPE),
            _ => false,
        }
    }
}

/// The race the response queue absorbs (protocol.md §3.3).
pub const ACTIVE_RESPONSE_RACE_PREFIX: &str =
    "Conversation already has an active response in progress:";

/// Append `s` to `out` as a JSON string literal (quotes included). The fast path copies strings
/// that need no escaping (base64 audio, ids) without going through a serializer.
pub fn push_json_str(out: &mut String, s: &str) {
    // A branch-free fold the compiler vectorizes (base64 audio is kilobytes per frame).
    let needs_escape = s.as_bytes().iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

/// The fields of an inbound audio delta, borrowed from the frame (the hot path skips building a
/// full JSON tree for the most frequent event).
#[derive(serde::Deserialize)]
pub(crate) struct AudioDeltaProbe<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub delta: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub data: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub item_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub sample_rate: Option<u64>,
    #[serde(default)]
    pub channels: Option<u64>,
    #[serde(default)]
    pub num_channels: Option<u64>,
    #[serde(default)]
    pub samples_per_channel: Option<u64>,
}

impl<'a> AudioDeltaProbe<'a> {
    /// A probed delta of 24 kHz mono PCM16 (v2, v3): its chunk, or the missing `delta`.
    pub fn pcm24k(self, event: &str) -> Result<ModelEvent, SkipReason> {
        let data = self.delta.ok_or(SkipReason::MissingField {
            event: event.to_owned(),
            field: "delta",
        })?;
        Ok(ModelEvent::AudioOut(AudioChunk {
            data: data.into_owned(),
            sample_rate: 24_000,
            num_channels: 1,
            samples_per_channel: None,
            item_id: self.item_id.map(|s| s.into_owned()),
        }))
    }

    /// Probe a frame whose text mentions `type_name`; `None` means "use the general parser".
    pub fn probe(text: &'a str, type_name: &str) -> Option<Self> {
        if !text.contains(type_name) {
            return None;
        }
        serde_json::from_str::<AudioDeltaProbe<'a>>(text)
            .ok()
            .filter(|p| p.ty == type_name)
    }
}

// Shared parsing helpers for the per-version modules.
pub(crate) mod fields {
    use super::SkipReason;
    use serde_json::{Map, Value};

    pub fn object(text: &str) -> Result<(Map<String, Value>, String), SkipReason> {
        let value: Value = serde_json::from_str(text).map_err(|_| SkipReason::BadJson)?;
        let Value::Object(map) = value else {
            return Err(SkipReason::BadJson);
        };
        let ty = match map.get("type") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(SkipReason::MissingType),
        };
        Ok((map, ty))
    }

    pub fn str_field(
        map: &Map<String, Value>,
        ty: &str,
        field: &'static str,
    ) -> Result<String, SkipReason> {
        map.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| SkipReason::MissingField {
                event: ty.to_owned(),
                field,
            })
    }

    /// `session.updated` (both versions): `session.id` is required.
    pub fn session_updated(
        map: &Map<String, Value>,
        ty: &str,
    ) -> Result<super::ModelEvent, SkipReason> {
        map.get("session")
            .and_then(|s| s.get("id"))
            .and_then(Value::as_str)
            .map(|id| super::ModelEvent::SessionUpdated {
                session_id: id.to_owned(),
            })
            .ok_or(SkipReason::MissingField {
                event: ty.to_owned(),
                field: "session.id",
            })
    }

    pub fn opt_str(map: &Map<String, Value>, field: &str) -> Option<String> {
        map.get(field).and_then(Value::as_str).map(str::to_owned)
    }

    pub fn response_id(map: &Map<String, Value>) -> Option<String> {
        map.get("response")
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .or_else(|| map.get("response_id").and_then(Value::as_str))
            .map(str::to_owned)
    }

    pub fn error_message(map: &Map<String, Value>) -> String {
        if let Some(m) = map.get("message").and_then(Value::as_str) {
            return m.to_owned();
        }
        match map.get("error") {
            Some(err) => match err.get("message").and_then(Value::as_str) {
                Some(m) => m.to_owned(),
                None => err.to_string(),
            },
            None => "realtime model reported an error".to_owned(),
        }
    }

    pub fn item(map: &mut Map<String, Value>, ty: &str) -> Result<Value, SkipReason> {
        match map.remove("item") {
            Some(item @ Value::Object(_)) => Ok(item),
            _ => Err(SkipReason::MissingField {
                event: ty.to_owned(),
                field: "item",
            }),
        }
    }
}
