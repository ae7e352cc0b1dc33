//! JSON-RPC types of the app-server face (protocol.md §1): the envelope (without the
//! `"jsonrpc"` field), error codes, typed `thread/realtime/*` params and the notifications voxgate
//! emits. Transport-free: `rpc/` frames these over websocket and stdio.

use super::model::{AudioChunk, ModelVersion, TextRole};
use super::session_config::{OutputModality, PromptParam, SessionMode};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INTERNAL_ERROR: i64 = -32603;

pub const METHOD_INITIALIZE: &str = "initialize";
pub const METHOD_START: &str = "thread/realtime/start";
pub const METHOD_APPEND_AUDIO: &str = "thread/realtime/appendAudio";
pub const METHOD_APPEND_TEXT: &str = "thread/realtime/appendText";
pub const METHOD_STOP: &str = "thread/realtime/stop";
pub const METHOD_LIST_VOICES: &str = "thread/realtime/listVoices";
pub const METHOD_APPEND_SPEECH: &str = "thread/realtime/appendSpeech";
pub const METHOD_THREAD_START: &str = "thread/start";
pub const METHOD_THREAD_RESUME: &str = "thread/resume";
pub const METHOD_THREAD_UNSUBSCRIBE: &str = "thread/unsubscribe";
/// voxgate's: a thread's transcript (while it runs and for the retention period after).
pub const METHOD_READ_TRANSCRIPT: &str = "thread/realtime/transcript/read";

/// The agent backend a start may ask for (voxgate extension `agent`).
pub type AgentChoice = super::choices::AgentKind;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn invalid_params(detail: impl std::fmt::Display) -> Self {
        Self::new(INVALID_REQUEST, format!("Invalid request: {detail}"))
    }
}

/// W3C trace context carried in the optional top-level `trace` field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TraceContext {
    pub traceparent: String,
    #[serde(default)]
    pub tracestate: Option<String>,
}

/// One inbound message after envelope parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
        trace: Option<TraceContext>,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to something we never ask; ignored.
    Response,
}

/// The request id of a message too large to take, read without keeping anything else of it
/// (the other fields are skipped, not allocated); None when it has none or is not JSON.
pub fn peek_id(text: &str) -> Option<Value> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    serde_json::from_str::<IdOnly>(text)
        .ok()?
        .id
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
}

/// Parse one message; errors carry the id to answer with (`null` when unknown).
pub fn parse_incoming(text: &str) -> Result<Incoming, (Value, RpcError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            Value::Null,
            RpcError::new(PARSE_ERROR, format!("Parse error: {e}")),
        )
    })?;
    let Value::Object(mut map) = value else {
        return Err((
            Value::Null,
            RpcError::invalid_params("message must be a JSON object"),
        ));
    };
    let id = map.remove("id");
    let method = match map.remove("method") {
        Some(Value::String(m)) => Some(m),
        Some(_) => {
            return Err((
                id.unwrap_or(Value::Null),
                RpcError::invalid_params("`method` must be a string"),
            ));
        }
        None => None,
    };
    let params = map.remove("params").unwrap_or(Value::Null);
    let trace = match map.remove("trace") {
        None | Some(Value::Null) => None,
        Some(t) => serde_json::from_value::<TraceContext>(t).ok(),
    };
    match (id, method) {
        (Some(id), Some(method)) => Ok(Incoming::Request {
            id,
            method,
            params,
            trace,
        }),
        (None, Some(method)) => Ok(Incoming::Notification { method, params }),
        (Some(_), None) if map.contains_key("result") || map.contains_key("error") => {
            Ok(Incoming::Response)
        }
        (id, None) => Err((
            id.unwrap_or(Value::Null),
            RpcError::invalid_params("missing `method`"),
        )),
    }
}

pub fn response_ok(id: &Value, result: Value) -> String {
    json!({"id": id, "result": result}).to_string()
}

pub fn response_err(id: &Value, err: &RpcError) -> String {
    json!({"id": id, "error": {"code": err.code, "message": err.message}}).to_string()
}

/// Deserialize typed params, mapping serde errors to `-32600 "Invalid request: <detail>"`.
pub fn parse_params<T: for<'de> Deserialize<'de>>(params: Value) -> Result<T, RpcError> {
    let params = if params.is_null() {
        Value::Object(Map::new())
    } else {
        params
    };
    serde_json::from_value(params).map_err(RpcError::invalid_params)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub experimental_api: bool,
    /// codex sends `null` for "none".
    #[serde(default, deserialize_with = "null_as_empty")]
    pub opt_out_notification_methods: Vec<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The `initialize` result, with the fields codex 0.169's `InitializeResponse` requires.
pub fn initialize_result(codex_home: &str) -> Value {
    json!({
        "userAgent": format!("voxgate/{}", env!("CARGO_PKG_VERSION")),
        "codexHome": codex_home,
        "platformFamily": std::env::consts::FAMILY,
        "platformOs": std::env::consts::OS,
    })
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    #[serde(default)]
    pub client_info: ClientInfo,
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
}

/// `transport` of `thread/realtime/start`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Websocket,
    Webrtc {
        sdp: String,
    },
    /// Join a call already negotiated with the model service (codex's `existingCall`): voxgate
    /// rides the call's sideband, the caller's media goes to the service directly.
    #[serde(rename = "existingCall", rename_all = "camelCase")]
    ExistingCall {
        call_id: String,
    },
}

fn tri_state_prompt<'de, D: Deserializer<'de>>(d: D) -> Result<PromptParam, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        None => PromptParam::Null,
        Some(s) => PromptParam::Text(s),
    })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartParams {
    pub thread_id: String,
    pub output_modality: OutputModality,
    #[serde(default, deserialize_with = "tri_state_prompt")]
    pub prompt: PromptParam,
    #[serde(default, alias = "sessionId")]
    pub realtime_session_id: Option<String>,
    #[serde(default)]
    pub transport: Option<Transport>,
    #[serde(default)]
    pub voice: Option<String>,
    /// voxgate extension: model wire version.
    #[serde(default)]
    pub version: Option<ModelVersion>,
    /// voxgate extension: model name.
    #[serde(default)]
    pub model: Option<String>,
    /// voxgate extension: `conversational` (default) or `transcription` (v2 only).
    #[serde(default)]
    pub mode: Option<SessionMode>,
    /// voxgate extension: which agent backend runs this session's delegated tasks.
    #[serde(default)]
    pub agent: Option<AgentChoice>,
    /// voxgate extension: `relay` or `passthrough` for a webrtc transport.
    #[serde(default)]
    pub webrtc_mode: Option<super::choices::WebrtcMode>,
    /// codex: `false` starts without the startup context; absent or `null` includes it.
    #[serde(default)]
    pub include_startup_context: Option<bool>,
    /// codex: the client's id for the voice session (logged with the conversation).
    #[serde(default)]
    pub voice_session_id: Option<String>,
    /// voxgate extension: `playback` gates a WebRTC caller's audio while the model plays
    /// (`[session] input_gating`).
    #[serde(default)]
    pub input_gating: Option<crate::config::InputGating>,
}

impl StartParams {
    /// An audio conversation over a websocket with everything else left to the config: what a
    /// client that speaks a model protocol itself (`/v1/realtime`, `/v1/live`) starts with.
    pub fn websocket(thread_id: &str, version: ModelVersion) -> Self {
        Self {
            thread_id: thread_id.to_owned(),
            output_modality: OutputModality::Audio,
            prompt: PromptParam::default(),
            realtime_session_id: None,
            transport: None,
            voice: None,
            version: Some(version),
            model: None,
            mode: None,
            agent: None,
            webrtc_mode: None,
            include_startup_context: None,
            voice_session_id: None,
            input_gating: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioParam {
    pub data: String,
    pub sample_rate: u32,
    pub num_channels: u16,
    #[serde(default)]
    pub samples_per_channel: Option<u32>,
    #[serde(default)]
    pub item_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendAudioParams {
    pub thread_id: String,
    pub audio: AudioParam,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendTextParams {
    pub thread_id: String,
    pub text: String,
    #[serde(default)]
    pub role: Option<TextRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadParams {
    pub thread_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppendSpeechParams {
    pub thread_id: String,
    pub text: String,
}

/// The thread a realtime-only app-server keeps, in the shape of codex 0.169's `Thread` (the
/// fields it requires): voxgate threads live in memory for their retention, so `ephemeral`.
pub fn thread_object(id: &str, cwd: &str, created_at: u64, running: bool) -> Value {
    json!({
        "id": id,
        "sessionId": id,
        "cliVersion": env!("CARGO_PKG_VERSION"),
        "createdAt": created_at,
        "updatedAt": created_at,
        "cwd": cwd,
        "ephemeral": true,
        "modelProvider": "voxgate",
        "preview": "",
        "projectId": null,
        "source": "appServer",
        "status": if running {
            json!({"type": "active", "activeFlags": []})
        } else {
            json!({"type": "idle"})
        },
        "turns": [],
    })
}

/// `thread/start` and `thread/resume`'s result (codex 0.169's required fields): voxgate runs no
/// commands of its own, hence the read-only sandbox and no approvals.
pub fn thread_result(thread: Value, cwd: &str, model: &str) -> Value {
    json!({
        "thread": thread,
        "approvalPolicy": "never",
        "approvalsReviewer": "user",
        "cwd": cwd,
        "model": model,
        "modelProvider": "voxgate",
        "sandbox": {"type": "readOnly"},
    })
}

/// A new thread id, shaped as codex's (a UUID v7: time-ordered, random below the millisecond).
pub fn new_thread_id() -> String {
    let ms = now_ms() & 0xFFFF_FFFF_FFFF;
    let r: u128 = rand::random();
    let a = (r >> 64) as u16 & 0x0FFF;
    let b = (r as u64) & 0x3FFF_FFFF_FFFF_FFFF;
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xFFFF,
        a,
        0x8000 | (b >> 48) as u16,
        b & 0xFFFF_FFFF_FFFF
    )
}

/// Role of a transcript notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptRole {
    User,
    Assistant,
}

impl TranscriptRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptRole::User => "user",
            TranscriptRole::Assistant => "assistant",
        }
    }
}

/// Why a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    Requested,
    TransportClosed,
    Error,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Requested => "requested",
            CloseReason::TransportClosed => "transport_closed",
            CloseReason::Error => "error",
        }
    }
}

/// A `thread/realtime/*` notification, before the thread id is attached.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    Started {
        realtime_session_id: String,
        version: ModelVersion,
    },
    Sdp {
        sdp: String,
    },
    TranscriptDelta {
        role: TranscriptRole,
        delta: String,
    },
    TranscriptDone {
        role: TranscriptRole,
        text: String,
    },
    OutputAudioDelta(AudioChunk),
    ItemAdded(Value),
    /// codex's canonical timeline: an item starts (before its content streams)…
    ItemStarted(Value),
    /// …text is appended to a started transcript item…
    ItemTranscriptDelta {
        item_id: String,
        delta: String,
    },
    /// …and the item is complete.
    ItemCompleted(Value),
    Error {
        message: String,
    },
    Closed {
        reason: CloseReason,
    },
}

impl Notification {
    pub fn method(&self) -> &'static str {
        match self {
            Notification::Started { .. } => "thread/realtime/started",
            Notification::Sdp { .. } => "thread/realtime/sdp",
            Notification::TranscriptDelta { .. } => "thread/realtime/transcript/delta",
            Notification::TranscriptDone { .. } => "thread/realtime/transcript/done",
            Notification::OutputAudioDelta(_) => "thread/realtime/outputAudio/delta",
            Notification::ItemAdded(_) => "thread/realtime/itemAdded",
            Notification::ItemStarted(_) => "thread/realtime/item/started",
            Notification::ItemTranscriptDelta { .. } => "thread/realtime/item/transcript/delta",
            Notification::ItemCompleted(_) => "thread/realtime/item/completed",
            Notification::Error { .. } => "thread/realtime/error",
            Notification::Closed { .. } => "thread/realtime/closed",
        }
    }

    /// Audio may be dropped under back-pressure; everything else must be delivered.
    pub fn is_droppable(&self) -> bool {
        matches!(self, Notification::OutputAudioDelta(_))
    }

    /// The exact wire message `{"method":…,"params":{"threadId":…,…}}`.
    pub fn to_json(&self, thread_id: &str) -> String {
        if let Notification::OutputAudioDelta(chunk) = self {
            return output_audio_json(thread_id, chunk);
        }
        let mut p = Map::new();
        p.insert("threadId".into(), thread_id.into());
        match self {
            Notification::Started {
                realtime_session_id,
                version,
            } => {
                p.insert(
                    "realtimeSessionId".into(),
                    realtime_session_id.as_str().into(),
                );
                p.insert("sessionId".into(), realtime_session_id.as_str().into());
                p.insert("version".into(), version.as_str().into());
            }
            Notification::Sdp { sdp } => {
                p.insert("sdp".into(), sdp.as_str().into());
            }
            Notification::TranscriptDelta { role, delta } => {
                p.insert("role".into(), role.as_str().into());
                p.insert("delta".into(), delta.as_str().into());
            }
            Notification::TranscriptDone { role, text } => {
                p.insert("role".into(), role.as_str().into());
                p.insert("text".into(), text.as_str().into());
            }
            Notification::OutputAudioDelta(chunk) => {
                p.insert("audio".into(), audio_json(chunk));
            }
            Notification::ItemAdded(item)
            | Notification::ItemStarted(item)
            | Notification::ItemCompleted(item) => {
                p.insert("item".into(), item.clone());
            }
            Notification::ItemTranscriptDelta { item_id, delta } => {
                p.insert("itemId".into(), item_id.as_str().into());
                p.insert("delta".into(), delta.as_str().into());
            }
            Notification::Error { message } => {
                p.insert("message".into(), message.as_str().into());
            }
            Notification::Closed { reason } => {
                p.insert("reason".into(), reason.as_str().into());
            }
        }
        json!({"method": self.method(), "params": p}).to_string()
    }

    /// The message as sent to a subscriber: [`Notification::to_json`] stamped with
    /// `emittedAtMs` (milliseconds since the Unix epoch), as codex stamps its notifications.
    pub fn to_wire(&self, thread_id: &str, emitted_at_ms: u64) -> String {
        let mut out = self.to_json(thread_id);
        out.pop();
        out.push_str(&format!(r#","emittedAtMs":{emitted_at_ms}}}"#));
        out
    }
}

/// Now, in milliseconds since the Unix epoch (a notification's `emittedAtMs`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `thread/realtime/outputAudio/delta` built directly (the per-chunk hot path); byte-identical to
/// the general serializer's output.
fn output_audio_json(thread_id: &str, chunk: &AudioChunk) -> String {
    use super::model::push_json_str;
    let mut out = String::with_capacity(chunk.data.len() + 160);
    out.push_str(r#"{"method":"thread/realtime/outputAudio/delta","params":{"threadId":"#);
    push_json_str(&mut out, thread_id);
    out.push_str(r#","audio":{"data":"#);
    push_json_str(&mut out, &chunk.data);
    out.push_str(&format!(
        r#","sampleRate":{},"numChannels":{}"#,
        chunk.sample_rate, chunk.num_channels
    ));
    // As codex sends them: absent values are `null`, not left out.
    match chunk.samples_per_channel {
        Some(n) => out.push_str(&format!(r#","samplesPerChannel":{n}"#)),
        None => out.push_str(r#","samplesPerChannel":null"#),
    }
    match &chunk.item_id {
        Some(id) => {
            out.push_str(r#","itemId":"#);
            push_json_str(&mut out, id);
        }
        None => out.push_str(r#","itemId":null"#),
    }
    out.push_str("}}}");
    out
}

/// The `audio` object shared by appendAudio and outputAudio/delta.
pub fn audio_json(chunk: &AudioChunk) -> Value {
    let mut a = Map::new();
    a.insert("data".into(), chunk.data.as_str().into());
    a.insert("sampleRate".into(), chunk.sample_rate.into());
    a.insert("numChannels".into(), chunk.num_channels.into());
    a.insert("samplesPerChannel".into(), chunk.samples_per_channel.into());
    a.insert("itemId".into(), chunk.item_id.as_deref().into());
    Value::Object(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_output_audio_json_matches_the_general_serializer() {
        for (spc, item) in [
            (None, None),
            (Some(480), Some("it\"em_1")),
            (None, Some("item_2")),
        ] {
            let chunk = AudioChunk {
                data: "AAEC/+8=".into(),
                sample_rate: 24000,
                num_channels: 1,
                samples_per_channel: spc,
                item_id: item.map(str::to_owned),
            };
            let general = json!({"method": "thread/realtime/outputAudio/delta",
                "params": {"threadId": "t\"1", "audio": audio_json(&chunk)}})
            .to_string();
            assert_eq!(
                Notification::OutputAudioDelta(chunk).to_json("t\"1"),
                general
            );
        }
    }
}
