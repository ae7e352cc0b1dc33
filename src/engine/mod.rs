//! The conversation engine: a sans-IO state machine (str0m style) that owns every behaviour of
//! protocol.md §3 — transcripts, delegation and steering, the `response.create` queue, barge-in,
//! stop/close reasons. Adapters feed [`Input`]s through [`Engine::handle_input`] and carry out the
//! [`Output`]s drained with [`Engine::poll_output`]. No tokio, no sockets, no clock.

pub mod delegation;
pub mod input_gate;
pub mod live_turns;
pub mod memory;
pub mod playout;
pub mod plumbing;
pub mod response_queue;
mod session_switch;
pub mod timeline;
pub mod transcript;

use crate::protocol::model::ACTIVE_RESPONSE_RACE_PREFIX;
use crate::protocol::rpc::{CloseReason, Notification, TranscriptRole};
use crate::protocol::{AudioChunk, ModelEvent, ModelFrame, ModelVersion, TextRole};
use memory::{ContextMemory, ReplayBudget};
use playout::PlayoutTracker;
use response_queue::{CreateRequest, ResponseQueue};
use serde_json::{Value, json};
use std::collections::VecDeque;
use transcript::TranscriptLog;

pub const USER_PREFIX: &str = "[USER] ";
pub const BACKEND_PREFIX: &str = "[BACKEND] ";
/// Ids of the history items a new model session is told (after a reconnect or rollover).
pub const HISTORY_ITEM_PREFIX: &str = "item_vg_s";

/// Input audio frames kept while no model socket is connected (a second of 20 ms frames).
const MAX_WAITING_AUDIO: usize = 50;
/// Other frames kept while no model socket is connected.
const MAX_WAITING_FRAMES: usize = 256;
pub const AGENT_FINAL_MESSAGE_PREFIX: &str = "\"Agent Final Message\":\n\n";
/// v1 handoff id used when no handoff is active.
pub const STANDALONE_HANDOFF_ID: &str = "codex";

/// voxgate's own acknowledgement sentences (configurable wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acks {
    pub completed: String,
    pub steering: String,
    pub no_message: String,
    /// `{reason}` is replaced by the failure text.
    pub failed: String,
    pub cancelled: String,
    pub nothing_to_delegate: String,
}

impl Default for Acks {
    fn default() -> Self {
        Self {
            completed: "The background agent finished the task; its messages above are the result."
                .into(),
            steering: "Passed on to the background agent, which is already working on the task."
                .into(),
            no_message: "The background agent finished without reporting anything.".into(),
            failed: "The background agent could not finish the task: {reason}".into(),
            cancelled: "The background task was cancelled before it finished.".into(),
            nothing_to_delegate: "There was nothing to hand to the background agent.".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub version: ModelVersion,
    /// Realtime session id announced in `started` (default: the thread id).
    pub realtime_session_id: String,
    /// The first frame, built by `protocol::session_config`.
    pub session_update: Value,
    pub acks: Acks,
    /// voxgate plays the model's audio itself (WebRTC relay): barge-in tracking lasts until
    /// playback finishes, not until the model's `response.done`.
    pub local_playout: bool,
    /// voxgate answers `background_agent`/`remain_silent` itself. Off for OpenAI-protocol clients
    /// that delegate on their own: their calls (and tools) pass through untouched.
    pub delegation: bool,
    /// A model `error` event ends the conversation (`error` + `closed{error}`), as the JSON-RPC
    /// face's contract says. Off for clients that speak the OpenAI protocol themselves (the
    /// `/v1/realtime` face, WebRTC callers): they get the event as the service sent it and the
    /// conversation goes on, as on the service, which closes the socket itself when an error is
    /// fatal.
    pub errors_end_session: bool,
    /// How much of the conversation a new model session is told (after a reconnect).
    pub replay: ReplayBudget,
    /// Playback-aware input gating (a relay caller without echo cancellation); None: off.
    pub input_gate: Option<input_gate::GateConfig>,
}

/// Commands from the client face.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    AppendAudio(AudioChunk),
    AppendText {
        text: String,
        role: TextRole,
    },
    /// Speakable text the model says now (codex's `appendSpeech`): told as a backend message
    /// and answered at once.
    AppendSpeech(String),
    /// A raw OpenAI realtime client event (WebRTC data channel, `/v1/realtime` clients).
    /// `response.create` goes through the response queue; `session.update` gets voxgate's tools.
    RawEvent(String),
    Stop,
}

/// How a delegated task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    Completed,
    Failed(String),
    Cancelled,
}

/// Events from the agent core, tagged with the handoff that started the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Message {
        handoff_id: String,
        text: String,
    },
    Ended {
        handoff_id: String,
        outcome: TaskOutcome,
    },
    /// A task an earlier conversation on the thread left running finished after it ended:
    /// what it found, for this conversation's model to tell the person.
    LateResult {
        text: String,
    },
}

/// Requests to the agent core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    Start {
        handoff_id: String,
        text: String,
    },
    Steer {
        text: String,
    },
    Cancel,
    /// The conversation ended with the task running: it finishes on its own, and what it says
    /// goes to the thread's record (not lost, not spoken).
    Release,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The upstream transport is connected; the engine sends `session.update` and announces
    /// `started`, then flushes what was queued before.
    Connected,
    Model(ModelEvent),
    Client(ClientCommand),
    Agent(AgentEvent),
    /// The media layer played `played_ms` of output item `item_id` (WebRTC relay).
    AudioPlayed {
        item_id: String,
        played_ms: u64,
    },
    /// Local playout drained its queue (WebRTC relay).
    PlaybackFinished,
    /// Upstream socket closed or reached EOF.
    UpstreamClosed,
    /// The model socket was lost and a new one is being opened: the conversation goes on, and
    /// the next `Connected` is a new model session told the conversation so far.
    ModelLost(String),
    /// The model session is retired before its limit (rollover, at a turn boundary); the next
    /// `Connected` is its successor, told the conversation so far.
    RollOver,
    /// The conversation's clients left and none came back within the grace period.
    Abandoned,
    /// Upstream send/read failure or protocol violation (e.g. a binary frame).
    UpstreamFailed(String),
    /// v3: the model has said nothing for a moment (the session core's deadline): its turn is
    /// over.
    ModelQuiet,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    ToModel(ModelFrame),
    ToClient(Notification),
    ToAgent(AgentCommand),
    /// Barge-in: drop audio queued for playout but not yet played (WebRTC relay).
    ClearAudio,
    /// The conversation is over; the driver tears the session down.
    Close(CloseReason),
}

/// The delegated task, if one runs.
#[derive(Debug, Default)]
struct HandoffState {
    /// v2: call id owed a `function_call_output`; v1: the handoff id appends go to.
    active: Option<String>,
    /// The model session the active call was made in (a later one does not know its call id).
    session: u32,
    /// The handoff whose task is running (events for others are stale).
    task: Option<String>,
    messages_sent: usize,
}

pub struct Engine {
    cfg: EngineConfig,
    connected: bool,
    closed: bool,
    /// Frames asked for while no model socket is connected (before the first, during a
    /// reconnect); bounded, see [`Engine::send_to_model`].
    before_connect: Vec<ModelFrame>,
    /// Model sessions opened so far (1 after the first connect).
    model_session: u32,
    memory: ContextMemory,
    /// The user's turn is open: the model heard it start speaking, and (when the session's turn
    /// detection answers turns) the response to it has not started yet — a transcript alone
    /// does not close it, the model is about to reply.
    user_speaking: bool,
    /// Whether the model answers each user turn by itself (server VAD with `create_response`).
    turns_get_replies: bool,
    /// A user turn was transcribed and its reply has not started yet.
    awaiting_reply: bool,
    /// A typed user turn was told to the model and its reply has not started yet.
    typed_turn_open: bool,
    /// The lost model session owed the person a reply (one was playing or due): the successor
    /// is asked for it.
    reply_owed: bool,
    transcript: TranscriptLog,
    timeline: timeline::Timeline,
    gate: input_gate::InputGate,
    responses: ResponseQueue,
    playout: PlayoutTracker,
    handoff: HandoffState,
    /// v3: the open turn of each side (GPT-Live never says a turn is done).
    live: live_turns::LiveTurns,
    out: VecDeque<Output>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let turns_get_replies = session_switch::turns_get_replies(&cfg.session_update);
        let timeline = timeline::Timeline::new(&cfg.realtime_session_id);
        let gate = input_gate::InputGate::new(cfg.input_gate.filter(|_| cfg.local_playout));
        Self {
            cfg,
            connected: false,
            closed: false,
            before_connect: Vec::new(),
            model_session: 0,
            memory: ContextMemory::default(),
            user_speaking: false,
            turns_get_replies,
            awaiting_reply: false,
            typed_turn_open: false,
            reply_owed: false,
            transcript: TranscriptLog::default(),
            timeline,
            gate,
            responses: ResponseQueue::default(),
            playout: PlayoutTracker::default(),
            handoff: HandoffState::default(),
            live: live_turns::LiveTurns::default(),
            out: VecDeque::new(),
        }
    }

    pub fn version(&self) -> ModelVersion {
        self.cfg.version
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn transcript(&self) -> &TranscriptLog {
        &self.transcript
    }

    pub fn response_queue(&self) -> &ResponseQueue {
        &self.responses
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn handle_input(&mut self, input: Input) {
        if self.closed {
            return;
        }
        match input {
            Input::Connected => self.on_connected(),
            Input::Model(ev) => self.on_model(ev),
            Input::Client(cmd) => self.on_client(cmd),
            Input::Agent(ev) => self.on_agent(ev),
            Input::AudioPlayed { item_id, played_ms } => {
                self.playout.on_played(&item_id, played_ms)
            }
            Input::PlaybackFinished => {
                self.playout.clear();
                self.gate.playback_ended();
            }
            Input::UpstreamClosed | Input::Abandoned => self.close(CloseReason::TransportClosed),
            Input::UpstreamFailed(message) => self.fail(message),
            Input::ModelLost(reason) => self.on_model_lost("failed", &reason),
            Input::RollOver => {
                self.on_model_lost("ended", "rollover before the model's session limit")
            }
            Input::ModelQuiet => self.end_live_turn(TranscriptRole::Assistant),
        }
    }

    fn send_to_model(&mut self, frame: ModelFrame) {
        if self.connected {
            self.remember(&frame);
            self.out.push_back(Output::ToModel(frame));
            return;
        }
        // Waiting for a model socket: at most a second of input audio (the newest) and
        // `MAX_WAITING_FRAMES` of everything else; the rest is dropped and counted.
        if frame.is_audio_append() {
            let audio = self
                .before_connect
                .iter()
                .filter(|f| f.is_audio_append())
                .count();
            if audio >= MAX_WAITING_AUDIO {
                if let Some(i) = self.before_connect.iter().position(|f| f.is_audio_append()) {
                    self.before_connect.remove(i);
                }
                crate::metrics::AUDIO_FRAMES_DROPPED.inc();
            }
        } else if self.before_connect.len() >= MAX_WAITING_FRAMES {
            crate::metrics::MODEL_FRAMES_SKIPPED.inc();
            return;
        }
        self.before_connect.push(frame);
    }

    /// Text items sent to the model are part of the conversation a new model session is told.
    fn remember(&mut self, frame: &ModelFrame) {
        if let ModelFrame::Text { role, text } = frame {
            self.memory.record(*role, text);
        }
    }

    fn notify(&mut self, n: Notification) {
        self.out.push_back(Output::ToClient(n));
    }

    /// Transcript text of `role`: the log, then codex's order — the timeline item's own
    /// notifications, then the flat `transcript/delta`.
    fn transcript_delta(&mut self, role: TranscriptRole, delta: String) {
        self.transcript.push_delta(role, &delta);
        for n in self.timeline.transcript_delta(role, &delta) {
            self.notify(n);
        }
        self.notify(Notification::TranscriptDelta { role, delta });
    }

    fn transcript_done(&mut self, role: TranscriptRole, text: String) {
        self.transcript.push_done(role, &text);
        for n in self.timeline.transcript_done(role, &text) {
            self.notify(n);
        }
        self.notify(Notification::TranscriptDone { role, text });
    }

    /// Have the model say `text` now: a backend message (as codex's `appendSpeech` sends it)
    /// and a response asked for (v2; v1 answers backend messages by itself); on v3, commentary.
    fn say_backend(&mut self, text: String) {
        if self.cfg.version == ModelVersion::V3 {
            return self.send_to_model(ModelFrame::Commentary {
                delegation_id: None,
                text,
            });
        }
        self.send_to_model(ModelFrame::Text {
            role: TextRole::User,
            text: format!("{BACKEND_PREFIX}{text}"),
        });
        if self.cfg.version == ModelVersion::V2 {
            self.request_response();
        }
    }

    fn new_transcript_part(&mut self, role: TranscriptRole) {
        self.transcript.force_new(role);
        if let Some(n) = self.timeline.force_new(role) {
            self.notify(n);
        }
    }

    fn request_response(&mut self) {
        if self.cfg.version == ModelVersion::V2
            && let Some(req) = self.responses.request(CreateRequest::Bare)
        {
            self.send_create(req);
        }
    }

    fn on_connected(&mut self) {
        if self.connected {
            return;
        }
        self.connected = true;
        self.model_session += 1;
        self.out
            .push_back(Output::ToModel(ModelFrame::SessionUpdate {
                update: self.cfg.session_update.clone(),
            }));
        if self.model_session == 1 {
            for n in self.timeline.session_started(&self.cfg.realtime_session_id) {
                self.notify(n);
            }
            self.notify(Notification::Started {
                realtime_session_id: self.cfg.realtime_session_id.clone(),
                version: self.cfg.version,
            });
        } else {
            self.tell_history();
        }
        for frame in std::mem::take(&mut self.before_connect) {
            self.remember(&frame);
            self.out.push_back(Output::ToModel(frame));
        }
        if self.model_session > 1 {
            if let Some(req) = self.responses.resume() {
                self.send_create(req);
            } else if std::mem::take(&mut self.reply_owed) {
                // The reply the lost session was giving (or about to give) comes from this one.
                self.request_response();
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.end_live_turn(TranscriptRole::User);
        self.end_live_turn(TranscriptRole::Assistant);
        if self.cfg.version == ModelVersion::V3 && self.connected {
            // GPT-Live ends a session (and a WebRTC call's media) when asked to.
            self.out.push_back(Output::ToModel(ModelFrame::Close));
        }
        if self.handoff.task.take().is_some() {
            self.out.push_back(Output::ToAgent(AgentCommand::Release));
        }
        let outcome = match reason {
            CloseReason::Error => "failed",
            _ => "ended",
        };
        for n in self.timeline.session_closed(outcome) {
            self.notify(n);
        }
        self.notify(Notification::Closed { reason });
        self.out.push_back(Output::Close(reason));
        self.closed = true;
    }

    fn fail(&mut self, message: String) {
        self.notify(Notification::Error { message });
        self.close(CloseReason::Error);
    }

    fn on_client(&mut self, cmd: ClientCommand) {
        match cmd {
            ClientCommand::AppendAudio(chunk) => {
                for chunk in self.gate.admit(chunk) {
                    self.send_to_model(ModelFrame::AudioAppend { audio: chunk.data });
                }
            }
            ClientCommand::AppendSpeech(text) => self.say_backend(text),
            ClientCommand::AppendText { text, role } => {
                let text = if self.cfg.version == ModelVersion::V2
                    && role == TextRole::User
                    && !text.is_empty()
                    && !text.starts_with(USER_PREFIX.trim_end())
                {
                    format!("{USER_PREFIX}{text}")
                } else {
                    text
                };
                if self.cfg.version == ModelVersion::V2
                    && role == TextRole::User
                    && self.turns_get_replies
                    && !text.is_empty()
                {
                    // A typed turn is open until its reply starts: no model session switch in
                    // between (the reply would come from the session being retired).
                    self.typed_turn_open = true;
                }
                if self.cfg.version == ModelVersion::V3 && role == TextRole::User {
                    // GPT-Live's delegations carry no request of their own: what the person
                    // typed is part of what a delegation hands over.
                    self.transcript.force_new(TranscriptRole::User);
                    self.transcript.push_done(TranscriptRole::User, &text);
                }
                self.send_to_model(ModelFrame::Text { role, text });
            }
            ClientCommand::RawEvent(raw) => self.on_client_event(raw),
            ClientCommand::Stop => self.close(CloseReason::Requested),
        }
    }

    fn on_client_event(&mut self, raw: String) {
        // Hot path: only `response.create` and `session.update` need a look inside; any other
        // event (audio appends above all) goes up as it came, unparsed. A quoted type name can
        // only be missing from the text if the event is of neither type.
        if !raw.contains("\"response.create\"") && !raw.contains("\"session.update\"") {
            self.send_to_model(ModelFrame::Raw { text: raw });
            return;
        }
        let Ok(Value::Object(mut ev)) = serde_json::from_str::<Value>(&raw) else {
            // Not ours to judge: the model answers malformed events with an error event.
            self.send_to_model(ModelFrame::Raw { text: raw });
            return;
        };
        match ev.get("type").and_then(Value::as_str) {
            Some("response.create") if self.cfg.version == ModelVersion::V2 => {
                if let Some(req) = self.responses.request(CreateRequest::Client(raw)) {
                    self.send_create(req);
                }
            }
            Some("session.update") => {
                if self.cfg.delegation {
                    plumbing::inject_tools(&mut ev);
                }
                self.send_to_model(ModelFrame::Raw {
                    text: Value::Object(ev).to_string(),
                });
            }
            _ => self.send_to_model(ModelFrame::Raw { text: raw }),
        }
    }

    fn on_model(&mut self, ev: ModelEvent) {
        match ev {
            ModelEvent::SessionUpdated { .. } | ModelEvent::ItemDone { .. } => {}
            ModelEvent::AudioOut(chunk) => {
                if self.cfg.version == ModelVersion::V2 {
                    self.playout.on_audio(&chunk);
                }
                if self.cfg.local_playout {
                    self.gate.playback_started();
                }
                self.notify(Notification::OutputAudioDelta(chunk));
            }
            ModelEvent::InputTranscriptDelta { delta } if self.cfg.version == ModelVersion::V3 => {
                if self.live.is_open(TranscriptRole::Assistant) && self.cfg.local_playout {
                    // Full duplex: the person talks over the model, which stops by itself;
                    // what is queued for playout is dropped with it.
                    self.out.push_back(Output::ClearAudio);
                    self.gate.playback_ended();
                }
                self.live_delta(TranscriptRole::User, delta);
            }
            ModelEvent::InputTranscriptDelta { delta } => {
                self.transcript_delta(TranscriptRole::User, delta);
            }
            ModelEvent::InputTranscriptDone { text } => {
                if self.turns_get_replies {
                    self.awaiting_reply = true;
                } else {
                    self.user_speaking = false;
                }
                self.memory.record(TextRole::User, &text);
                self.transcript_done(TranscriptRole::User, text);
            }
            ModelEvent::OutputTranscriptDelta { delta } if self.cfg.version == ModelVersion::V3 => {
                self.live_delta(TranscriptRole::Assistant, delta);
            }
            ModelEvent::OutputTranscriptDelta { delta } => {
                self.typed_turn_open = false;
                self.transcript_delta(TranscriptRole::Assistant, delta);
            }
            ModelEvent::OutputTranscriptDone { text } => {
                self.typed_turn_open = false;
                self.memory.record(TextRole::Assistant, &text);
                self.transcript_done(TranscriptRole::Assistant, text);
            }
            ModelEvent::SpeechStarted { item_id } => {
                self.user_speaking = true;
                self.new_transcript_part(TranscriptRole::User);
                let truncation = match self.cfg.version {
                    ModelVersion::V2 => self.playout.on_speech_started(item_id.as_deref()),
                    ModelVersion::V1 | ModelVersion::V3 => None,
                };
                if let Some(t) = truncation {
                    self.gate.playback_ended();
                    self.out.push_back(Output::ClearAudio);
                    self.send_to_model(ModelFrame::Truncate {
                        item_id: t.item_id,
                        audio_end_ms: t.audio_end_ms,
                    });
                }
                let mut item = serde_json::Map::new();
                item.insert("type".into(), "input_audio_buffer.speech_started".into());
                if let Some(id) = item_id {
                    item.insert("item_id".into(), id.into());
                }
                self.notify(Notification::ItemAdded(Value::Object(item)));
            }
            ModelEvent::ItemAdded { item } => self.notify(Notification::ItemAdded(item)),
            ModelEvent::HandoffRequested { .. } | ModelEvent::NoopRequested { .. }
                if !self.cfg.delegation => {}
            ModelEvent::HandoffRequested {
                handoff_id,
                item_id,
                input_transcript,
            } => {
                self.on_handoff(handoff_id, item_id, input_transcript);
            }
            ModelEvent::NoopRequested { call_id } => {
                self.playout.clear();
                self.send_to_model(ModelFrame::FunctionOutput {
                    call_id,
                    output: String::new(),
                });
            }
            ModelEvent::ResponseCreated { .. } => {
                self.user_speaking = false;
                self.awaiting_reply = false;
                self.typed_turn_open = false;
                self.new_transcript_part(TranscriptRole::Assistant);
                self.responses.on_created();
            }
            ModelEvent::ResponseCancelled { response_id } => {
                self.playout.clear();
                self.gate.playback_ended();
                self.notify(Notification::ItemAdded(
                    json!({"type": "response.cancelled", "response_id": response_id}),
                ));
                self.response_finished();
            }
            ModelEvent::ResponseDone { .. } => {
                if !self.cfg.local_playout {
                    self.playout.clear();
                }
                self.response_finished();
            }
            ModelEvent::Quiet { .. } => {}
            ModelEvent::SessionClosed { reason } => {
                // The socket closes next; whether that ends the conversation or a new model
                // session takes over is the session core's call (as for a v2 socket).
                tracing::info!(reason = %reason, "the GPT-Live session was closed by the service");
            }
            ModelEvent::DelegationCreated { .. } if !self.cfg.delegation => {}
            ModelEvent::DelegationCreated {
                delegation_id,
                offset_ms,
            } => {
                self.end_live_turn(TranscriptRole::User);
                let request = self
                    .transcript
                    .entries()
                    .iter()
                    .rev()
                    .find(|e| e.role == TranscriptRole::User)
                    .map(|e| e.text.clone())
                    .unwrap_or_default();
                tracing::debug!(offset_ms, "GPT-Live delegated work");
                self.on_handoff(delegation_id.clone(), delegation_id, request);
            }
            ModelEvent::Error { message } => {
                if message.starts_with(ACTIVE_RESPONSE_RACE_PREFIX) {
                    self.responses.on_race_error();
                } else if self.cfg.errors_end_session {
                    self.fail(message);
                } else {
                    self.notify(Notification::Error { message });
                }
            }
        }
    }

    fn response_finished(&mut self) {
        if let Some(req) = self.responses.on_finished() {
            self.send_create(req);
        }
    }

    fn send_create(&mut self, req: CreateRequest) {
        match req {
            CreateRequest::Bare => self.send_to_model(ModelFrame::ResponseCreate),
            CreateRequest::Client(text) => self.send_to_model(ModelFrame::Raw { text }),
        }
    }

    fn on_handoff(&mut self, handoff_id: String, item_id: String, input_transcript: String) {
        let active = self.transcript.take_for_handoff(&input_transcript);
        self.playout.clear();
        self.notify(Notification::ItemAdded(json!({
            "type": "handoff_request",
            "handoff_id": handoff_id,
            "item_id": item_id,
            "input_transcript": input_transcript,
            "active_transcript": active
                .iter()
                .map(|e| json!({"role": e.role.as_str(), "text": e.text}))
                .collect::<Vec<_>>(),
        })));
        let Some(text) = delegation::delegation_text(&input_transcript, &active) else {
            let ack = self.cfg.acks.nothing_to_delegate.clone();
            self.resolve_call(handoff_id, ack);
            return;
        };
        match self.cfg.version {
            ModelVersion::V2 | ModelVersion::V3 => {
                if self.handoff.task.is_some() {
                    self.out
                        .push_back(Output::ToAgent(AgentCommand::Steer { text }));
                    let ack = self.cfg.acks.steering.clone();
                    self.resolve_call(handoff_id, ack);
                } else {
                    self.start_task(handoff_id, text);
                }
            }
            ModelVersion::V1 => {
                self.handoff.active = Some(handoff_id.clone());
                self.handoff.session = self.model_session;
                if self.handoff.task.is_some() {
                    self.out
                        .push_back(Output::ToAgent(AgentCommand::Steer { text }));
                } else {
                    self.start_task(handoff_id, text);
                }
            }
        }
    }

    fn start_task(&mut self, handoff_id: String, text: String) {
        self.handoff.active = Some(handoff_id.clone());
        self.handoff.session = self.model_session;
        self.handoff.task = Some(handoff_id.clone());
        self.handoff.messages_sent = 0;
        self.out
            .push_back(Output::ToAgent(AgentCommand::Start { handoff_id, text }));
    }

    fn resolve_call(&mut self, call_id: String, output: String) {
        match self.cfg.version {
            ModelVersion::V2 => {
                self.send_to_model(ModelFrame::FunctionOutput { call_id, output });
                self.request_response();
            }
            ModelVersion::V1 => {
                self.send_to_model(ModelFrame::HandoffAppend {
                    handoff_id: call_id,
                    output_text: format!("{AGENT_FINAL_MESSAGE_PREFIX}{output}"),
                });
            }
            // GPT-Live: the delegation's answer, for the model to tell the person.
            ModelVersion::V3 => self.send_to_model(ModelFrame::Commentary {
                delegation_id: Some(call_id),
                text: output,
            }),
        }
    }

    fn on_agent(&mut self, ev: AgentEvent) {
        match ev {
            AgentEvent::LateResult { text } => self.say_backend(text),
            AgentEvent::Message { handoff_id, text } => {
                if self.handoff.task.as_deref() != Some(handoff_id.as_str()) {
                    return;
                }
                self.handoff.messages_sent += 1;
                match self.cfg.version {
                    ModelVersion::V2 => {
                        if self.handoff.active.as_deref() == Some(handoff_id.as_str()) {
                            self.send_to_model(ModelFrame::Text {
                                role: TextRole::User,
                                text: format!("{BACKEND_PREFIX}{text}"),
                            });
                        }
                    }
                    // GPT-Live: progress is silent context for the delegation.
                    ModelVersion::V3 => {
                        if self.handoff.active.as_deref() == Some(handoff_id.as_str()) {
                            self.send_to_model(ModelFrame::Thinking {
                                delegation_id: handoff_id,
                                text,
                            });
                        }
                    }
                    ModelVersion::V1 => {
                        let target = self
                            .handoff
                            .active
                            .clone()
                            .unwrap_or_else(|| STANDALONE_HANDOFF_ID.to_owned());
                        self.send_to_model(ModelFrame::HandoffAppend {
                            handoff_id: target,
                            output_text: format!("{AGENT_FINAL_MESSAGE_PREFIX}{text}"),
                        });
                    }
                }
            }
            AgentEvent::Ended {
                handoff_id,
                outcome,
            } => {
                if self.handoff.task.as_deref() != Some(handoff_id.as_str()) {
                    return;
                }
                self.handoff.task = None;
                let sent = std::mem::take(&mut self.handoff.messages_sent);
                let output = match outcome {
                    TaskOutcome::Completed if sent > 0 => match self.cfg.version {
                        ModelVersion::V2 | ModelVersion::V3 => {
                            Some(self.cfg.acks.completed.clone())
                        }
                        // v1: every message was already appended; nothing more owed.
                        ModelVersion::V1 => None,
                    },
                    TaskOutcome::Completed => Some(self.cfg.acks.no_message.clone()),
                    TaskOutcome::Failed(reason) => {
                        Some(self.cfg.acks.failed.replace("{reason}", &reason))
                    }
                    TaskOutcome::Cancelled => Some(self.cfg.acks.cancelled.clone()),
                };
                let active = self.handoff.active.take();
                if let (Some(call_id), Some(output)) = (active, output) {
                    self.resolve_task_call(call_id, output);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_barge_in;
