//! `SimConversation`: the embedded realtime model's server side for one websocket, sans-IO.
//! It speaks v1, v2 or v3 (GPT-Live: the v2 behaviour through the `live` dialect), answers `session.update`, runs an energy VAD over input audio, answers
//! user text and spoken turns with a tone plus transcript, calls `background_agent` /
//! `remain_silent` on `delegate:` / `silent:` triggers, enforces one active response with the
//! real error text, validates truncation against audio it actually sent, and can echo input audio.
//! Time is passed in; the socket task in `server.rs` does the I/O.

use super::audio;
use super::live::{ClientAction, LiveDialect};
use crate::config::SimulatorConfig;
use crate::protocol::ModelVersion;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What the socket task must do.
#[derive(Debug, Clone, PartialEq)]
pub enum SimOutput {
    Text(String),
    Binary(Vec<u8>),
    Ping,
    Close,
    /// Drop the socket without a close frame (a lost connection).
    Drop,
}

/// Test triggers recognised in user text (after an optional `[USER] ` prefix).
pub const TRIGGER_DELEGATE: &str = "delegate:";
pub const TRIGGER_SILENT: &str = "silent:";
pub const TRIGGER_FAIL: &str = "fail:";
pub const TRIGGER_CLOSE: &str = "close:";
/// `drop: words` starts saying the words, then drops the socket without a close frame.
pub const TRIGGER_DROP: &str = "drop:";
pub const TRIGGER_PING: &str = "ping:";
pub const TRIGGER_BINARY: &str = "binary:";
pub const TRIGGER_CALL: &str = "call:";

#[derive(Debug)]
enum Step {
    Frame(Value),
    Audio {
        item_id: String,
        response_id: Option<String>,
        pcm: Vec<u8>,
    },
    /// The response ends: the next queued one may start.
    Finish,
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    step: Step,
}

/// What a response will do.
#[derive(Debug, Clone)]
enum Plan {
    Speak(String),
    Call { name: String, arguments: String },
    Handoff { input_transcript: String },
}

pub struct SimConversation {
    /// The behaviour's version: v2 for a GPT-Live socket, whose wire `live` translates.
    version: ModelVersion,
    live: Option<LiveDialect>,
    cfg: SimulatorConfig,
    ids: u64,
    session_id: String,
    output_text_only: bool,
    /// Active response id (v2) or a marker for v1 speech in progress.
    active: Option<String>,
    queued: VecDeque<Plan>,
    schedule: VecDeque<Scheduled>,
    /// Audio actually sent per assistant item, in samples.
    sent_samples: HashMap<String, u64>,
    /// Drop the socket right after the next audio delta (`drop:`).
    drop_mid_response: bool,
    in_speech: bool,
    /// Spoken turns heard so far (the next one's transcript is the script's next line).
    spoken_turns: usize,
    speech_ms: u64,
    silence_ms: u64,
    input_item: Option<String>,
    /// [BACKEND] messages and tool outputs since the last response (what it will talk about).
    backend_notes: Vec<String>,
    last_tool_output: Option<String>,
    /// A user message item no response has answered yet: the next `response.create` answers it.
    unanswered_text: Option<String>,
    echo_offset: u64,
    /// Input audio received so far (the service's audio_start_ms/audio_end_ms clock).
    input_ms: u64,
    out: VecDeque<SimOutput>,
}

impl SimConversation {
    pub fn new(version: ModelVersion, cfg: SimulatorConfig, conn_no: u64) -> Self {
        let live = (version == ModelVersion::V3).then(LiveDialect::default);
        let version = match version {
            ModelVersion::V3 => ModelVersion::V2,
            v => v,
        };
        Self {
            version,
            live,
            cfg,
            ids: 0,
            session_id: format!("sess_sim{conn_no}"),
            output_text_only: false,
            active: None,
            queued: VecDeque::new(),
            schedule: VecDeque::new(),
            sent_samples: HashMap::new(),
            drop_mid_response: false,
            in_speech: false,
            spoken_turns: 0,
            speech_ms: 0,
            silence_ms: 0,
            input_item: None,
            backend_notes: Vec::new(),
            last_tool_output: None,
            unanswered_text: None,
            echo_offset: 0,
            input_ms: 0,
            out: VecDeque::new(),
        }
    }

    pub fn poll_output(&mut self) -> Option<SimOutput> {
        self.out.pop_front()
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.schedule.front().map(|s| s.at)
    }

    fn id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_sim{}", self.ids)
    }

    /// Queue a server event; like the real service, every event carries an `event_id`. On a
    /// GPT-Live socket the event is first translated (or dropped: GPT-Live has no equivalent).
    fn emit(&mut self, mut v: Value) {
        if let Some(live) = &mut self.live {
            match live.server_event(&v) {
                Some(translated) => v = translated,
                None => return,
            }
        }
        if let Some(obj) = v.as_object_mut()
            && !obj.contains_key("event_id")
        {
            self.ids += 1;
            let id = format!("event_sim{}", self.ids);
            // Keep `type` first, as the service does (and as voxgate's fast paths expect).
            let mut ordered = serde_json::Map::with_capacity(obj.len() + 1);
            if let Some(t) = obj.shift_remove("type") {
                ordered.insert("type".into(), t);
            }
            ordered.insert("event_id".into(), id.into());
            ordered.append(obj);
            v = Value::Object(ordered);
        }
        self.out.push_back(SimOutput::Text(v.to_string()));
    }

    fn error(&mut self, code: &str, message: String) {
        let event_id = self.id("event");
        self.emit(json!({
            "type": "error",
            "event_id": event_id,
            "error": {"type": "invalid_request_error", "code": code, "message": message, "param": null}
        }));
    }

    pub fn handle_binary(&mut self) {
        self.error(
            "invalid_value",
            "Binary frames are not supported; send JSON text events.".into(),
        );
    }

    pub fn handle_client_text(&mut self, text: &str, now: Instant) {
        let Ok(Value::Object(ev)) = serde_json::from_str::<Value>(text) else {
            self.error(
                "invalid_json",
                "The event is not a valid JSON object.".into(),
            );
            return;
        };
        let ty = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if let Some(live) = &mut self.live {
            match live.client_event(&ty, &ev) {
                // The v2 logic runs on the translated event; its answers are translated back on
                // the way out (`emit`).
                ClientAction::V2(v2) => return self.handle_v2_event(&v2.to_string(), now),
                ClientAction::Note(note) => {
                    self.backend_notes.push(note);
                    self.emit(json!({"type": "session.thinking.appended"}));
                }
                ClientAction::Say { text, delegation } => {
                    self.emit(json!({"type": "session.commentary.appended"}));
                    let notes = std::mem::take(&mut self.backend_notes);
                    let said = match notes.last() {
                        Some(note) if delegation => format!("Here is what I found. {note}"),
                        _ => text,
                    };
                    self.request(Plan::Speak(said), now);
                }
                ClientAction::Ack(v) => self.emit_raw(v),
                ClientAction::Close => {
                    self.emit_raw(
                        json!({"type": "session.closed", "reason": "close_requested",
                        "usage": {"seconds": self.input_ms / 1000}}),
                    );
                    self.out.push_back(SimOutput::Close);
                }
                ClientAction::Error { code, message } => {
                    self.emit_raw(
                        json!({"type": "error", "error": {"type": "invalid_request_error",
                        "code": code, "message": message}}),
                    );
                }
            }
            return;
        }
        self.handle_v2_event(text, now);
    }

    /// A GPT-Live event that has no v2 counterpart, sent as it is (with an `event_id`).
    fn emit_raw(&mut self, v: Value) {
        let live = self.live.take();
        self.emit(v);
        self.live = live;
    }

    fn handle_v2_event(&mut self, text: &str, now: Instant) {
        let Ok(Value::Object(ev)) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let ty = ev
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match ty.as_str() {
            "session.update" => self.on_session_update(&ev),
            "input_audio_buffer.append" => self.on_audio(&ev, now),
            "conversation.item.create" => self.on_item_create(&ev, now),
            "response.create" => self.on_response_create(now),
            "conversation.item.truncate" => self.on_truncate(&ev),
            "conversation.handoff.append" if self.version == ModelVersion::V1 => {
                let text = ev.get("output_text").and_then(Value::as_str).unwrap_or("");
                let text = text.trim_start_matches(crate::engine::AGENT_FINAL_MESSAGE_PREFIX);
                self.request(Plan::Speak(format!("Agent update: {text}")), now);
            }
            "response.cancel" => self.cancel_active(now),
            other => self.error(
                "invalid_value",
                format!("Invalid value: '{other}'. Supported values are client event types."),
            ),
        }
    }

    /// A socket opened: like the service, announce the session before anything else.
    pub fn open(&mut self) {
        let mut session = serde_json::Map::new();
        if self.version == ModelVersion::V2 {
            session.insert("type".into(), "realtime".into());
        }
        session.insert("id".into(), self.session_id.clone().into());
        let event_id = self.id("event");
        self.emit(json!({"type": "session.created", "event_id": event_id, "session": session}));
    }

    fn on_session_update(&mut self, ev: &serde_json::Map<String, Value>) {
        let session = ev.get("session").cloned().unwrap_or(json!({}));
        self.output_text_only = session
            .get("output_modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x == "text") && !m.iter().any(|x| x == "audio"));
        let mut echoed = match session {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        echoed.insert("id".into(), self.session_id.clone().into());
        let event_id = self.id("event");
        self.emit(json!({"type": "session.updated", "event_id": event_id, "session": echoed}));
    }

    fn on_audio(&mut self, ev: &serde_json::Map<String, Value>, now: Instant) {
        let Some(pcm) = ev
            .get("audio")
            .and_then(Value::as_str)
            .and_then(|a| B64.decode(a).ok())
        else {
            self.error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded PCM16 audio.".into(),
            );
            return;
        };
        self.handle_pcm(&pcm, now);
    }

    /// Input audio as PCM16LE bytes (from a WebRTC call's decoded RTP, or an append event).
    pub fn handle_pcm(&mut self, pcm: &[u8], now: Instant) {
        let pcm = pcm.to_vec();
        let ms = audio::duration_ms(pcm.len());
        self.input_ms += ms;
        if let Some(live) = &mut self.live {
            live.heard_ms(ms);
        }
        if self.cfg.echo {
            let item_id = "item_echo".to_owned();
            self.send_audio_now(&item_id, Some("resp_echo"), &pcm);
            return;
        }
        if audio::rms(&pcm) >= self.cfg.vad_threshold {
            self.silence_ms = 0;
            self.speech_ms += ms;
            if !self.in_speech {
                self.in_speech = true;
                let item = self.id("item");
                self.input_item = Some(item.clone());
                match self.version {
                    ModelVersion::V2 | ModelVersion::V3 => self.emit(json!({
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": self.input_ms,
                        "item_id": item
                    })),
                    ModelVersion::V1 => {
                        self.emit(json!({"type": "input_audio_buffer.speech_started"}))
                    }
                }
                self.cancel_active(now);
            }
        } else if self.in_speech {
            self.silence_ms += ms;
            if self.silence_ms >= self.cfg.silence_ms {
                self.end_of_speech(now);
            }
        }
    }

    fn end_of_speech(&mut self, now: Instant) {
        self.in_speech = false;
        self.speech_ms = 0;
        self.silence_ms = 0;
        let item_id = self.input_item.take().unwrap_or_else(|| self.id("item"));
        let transcript = self.cfg.spoken_line(self.spoken_turns).to_owned();
        self.spoken_turns += 1;
        self.emit(json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": self.input_ms, "item_id": item_id}));
        self.emit(json!({"type": "input_audio_buffer.committed", "item_id": item_id}));
        self.emit(json!({"type": "conversation.item.added", "item": {
            "id": item_id, "type": "message", "role": "user", "status": "completed",
            "content": [{"type": "input_audio", "transcript": null}]
        }}));
        for word in split_words(&transcript) {
            match self.version {
                ModelVersion::V2 | ModelVersion::V3 => self.emit(json!({
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id, "content_index": 0, "delta": word
                })),
                ModelVersion::V1 => {
                    self.emit(json!({"type": "conversation.input_transcript.delta", "delta": word}))
                }
            }
        }
        self.emit(json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id, "content_index": 0, "transcript": transcript,
            "usage": {"type": "duration", "seconds": 1.0}
        }));
        self.unanswered_text = None;
        let plan = self.plan_for_user_text(&transcript);
        if let Some(plan) = plan {
            self.request(plan, now);
        }
    }

    fn plan_for_user_text(&mut self, text: &str) -> Option<Plan> {
        let text = text.strip_prefix("[USER] ").unwrap_or(text).trim();
        if let Some(rest) = find_trigger(text, TRIGGER_DELEGATE) {
            return Some(match self.version {
                ModelVersion::V2 | ModelVersion::V3 => Plan::Call {
                    name: "background_agent".into(),
                    arguments: json!({"prompt": rest}).to_string(),
                },
                ModelVersion::V1 => Plan::Handoff {
                    input_transcript: rest.to_owned(),
                },
            });
        }
        if find_trigger(text, TRIGGER_SILENT).is_some() {
            return Some(Plan::Call {
                name: "remain_silent".into(),
                arguments: "{}".into(),
            });
        }
        if let Some(rest) = find_trigger(text, TRIGGER_CALL) {
            // `call: lookup_order 42` calls the client's own tool `lookup_order`.
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or("unnamed_tool").to_owned();
            let arg = words.collect::<Vec<_>>().join(" ");
            return Some(Plan::Call {
                name,
                arguments: json!({"input": arg}).to_string(),
            });
        }
        if let Some(rest) = find_trigger(text, TRIGGER_FAIL) {
            self.error("simulated_failure", format!("Simulated failure: {rest}"));
            return None;
        }
        if find_trigger(text, TRIGGER_CLOSE).is_some() {
            self.out.push_back(SimOutput::Close);
            return None;
        }
        if let Some(rest) = find_trigger(text, TRIGGER_DROP) {
            self.drop_mid_response = true;
            return Some(Plan::Speak(format!("You said: {rest}")));
        }
        if find_trigger(text, TRIGGER_BINARY).is_some() {
            self.out.push_back(SimOutput::Binary(vec![0, 1, 2, 3]));
            return None;
        }
        if find_trigger(text, TRIGGER_PING).is_some() {
            self.out.push_back(SimOutput::Ping);
            return Some(Plan::Speak("pong".into()));
        }
        Some(Plan::Speak(format!("You said: {text}")))
    }

    fn on_item_create(&mut self, ev: &serde_json::Map<String, Value>, now: Instant) {
        let Some(mut item) = ev.get("item").cloned().filter(Value::is_object) else {
            self.error(
                "missing_required_parameter",
                "Missing required parameter: 'item'.".into(),
            );
            return;
        };
        let id = self.id("item");
        if let Some(obj) = item.as_object_mut() {
            obj.entry("id").or_insert(id.into());
            obj.insert("status".into(), "completed".into());
        }
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        self.emit(json!({"type": "conversation.item.added", "item": item}));
        self.emit(json!({"type": "conversation.item.done", "item": item}));
        match kind.as_str() {
            "function_call_output" => {
                self.last_tool_output = item
                    .get("output")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            // An item inserted into the history (a reconnect's replay) is not a new turn.
            "message" if ev.contains_key("previous_item_id") => {}
            "message" => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                let text = item
                    .get("content")
                    .and_then(|c| c.get(0))
                    .and_then(|c| c.get("text"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if role == "user" && !text.starts_with("[BACKEND]") {
                    if self.answers_items_itself(&text) {
                        if let Some(plan) = self.plan_for_user_text(&text) {
                            self.request(plan, now);
                        }
                    } else {
                        // Like the service: an item is context; `response.create` asks for
                        // the reply (the OpenAI SDKs send both).
                        self.unanswered_text = Some(text);
                    }
                } else if let Some(note) = text.strip_prefix("[BACKEND]") {
                    self.backend_notes.push(note.trim().to_owned());
                }
            }
            _ => {}
        }
    }

    /// Whether a user message item gets its reply without a `response.create`: on a v1
    /// (quicksilver) socket, which has no `response.create`; on a GPT-Live socket, whose model
    /// decides by itself when to speak; and for codex's typed turns (the `[USER] ` marker),
    /// which codex sends without a `response.create`. A plain GA item waits for one, as on
    /// the service.
    fn answers_items_itself(&self, text: &str) -> bool {
        self.version == ModelVersion::V1 || self.live.is_some() || text.starts_with("[USER]")
    }

    fn on_response_create(&mut self, now: Instant) {
        if let Some(active) = self.active.clone() {
            self.error(
                "conversation_already_has_active_response",
                format!(
                    "Conversation already has an active response in progress: {active}. Wait until the response is finished before creating a new one."
                ),
            );
            return;
        }
        if let Some(text) = self.unanswered_text.take() {
            if let Some(plan) = self.plan_for_user_text(&text) {
                self.start(plan, now);
            }
            return;
        }
        let notes = std::mem::take(&mut self.backend_notes);
        let text = match (notes.last(), self.last_tool_output.take()) {
            (Some(note), _) => format!("Here is what I found. {note}"),
            (None, Some(o)) if !o.is_empty() => format!("Here is what I found. {o}"),
            _ => "Okay.".to_owned(),
        };
        self.start(Plan::Speak(text), now);
    }

    fn on_truncate(&mut self, ev: &serde_json::Map<String, Value>) {
        let item_id = ev
            .get("item_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let end_ms = ev.get("audio_end_ms").and_then(Value::as_u64).unwrap_or(0);
        let Some(sent) = self.sent_samples.get(&item_id).copied() else {
            self.error(
                "item_not_found",
                format!("Item with item_id '{item_id}' not found."),
            );
            return;
        };
        let sent_ms = sent * 1000 / u64::from(audio::SAMPLE_RATE);
        if end_ms > sent_ms {
            self.error(
                "invalid_value",
                format!("Audio content of {sent_ms}ms is already shorter than {end_ms}ms"),
            );
            return;
        }
        self.emit(json!({
            "type": "conversation.item.truncated",
            "item_id": item_id, "content_index": 0, "audio_end_ms": end_ms
        }));
    }
}

fn find_trigger<'a>(text: &'a str, trigger: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    lower
        .find(trigger)
        .map(|i| text[i + trigger.len()..].trim())
}

/// Words with their following space kept, so deltas concatenate back to the text.
fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

mod playout;

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
