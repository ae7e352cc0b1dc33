//! `SessionCore`: one conversation as a sans-IO state machine, built like str0m one level up.
//! It owns the [`Engine`], the face's codec (the OpenAI-protocol event filter, the relay call's
//! data-channel filter and agent events), the relay call's [`CallMedia`] (str0m `Rtc`, Opus,
//! `PlayoutClock`), the write buffers of its websockets ([`Outbox`]) and every deadline: agent
//! task timeout, maximum session duration, ICE/DTLS connect and caller silence, the 20 ms pacing
//! tick, a stalled socket. Inputs go in through [`SessionCore::handle_input`] with the time they
//! happened; outputs come out of [`SessionCore::poll_output`] (drain it fully after every input)
//! and the two outboxes; [`SessionCore::poll_timeout`] says when to come back. No tokio, no
//! sockets, no clock reads. Its sides each have a file: `model_link` (the model socket's
//! life: idle, lost and reopened, rolled over), `client_link` (subscribers detaching and coming
//! back, the relay call's media events, voxgate's opt-in events), `live_link` (a GPT-Live-dialect
//! client), `engine_link` (the engine's outputs carried out), `agent_link` (delegated tasks).

mod agent_link;
mod client_link;
mod engine_link;
mod live_link;
mod model_link;

use agent_link::task_ended;

use super::Face;
pub use super::client::ClientSide;
use super::client::is_agent_events_opt_in;
use super::detach::Detachment;
use super::live_codec as live;
use super::outbox::{FrameClass, Outbox, OutboxLimits};
use super::reconnect::{ReconnectPolicy, Reconnector};
use crate::agent::AgentUpdate;
use crate::engine::{
    AgentCommand, AgentEvent, ClientCommand, Engine, EngineConfig, Input as EngineInput,
    Output as EngineOutput, TaskOutcome,
};
use crate::media::call::{MediaEvent, Transmit};
use crate::metrics;
use crate::protocol::ModelVersion;
use crate::protocol::rpc::{CloseReason, Notification};
use crate::protocol::{AudioChunk, ModelEvent, ModelFrame};
use base64::Engine as _;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a session is started with, decided once at start.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub face: Face,
    pub engine: EngineConfig,
    /// A delegated task that has not ended by then is cancelled and reported failed.
    pub task_timeout: Duration,
    /// The caller's key allows sessions this long at most.
    pub max_duration: Option<Duration>,
    /// A WebRTC start's SDP answer. `started` is announced from one place, the core: with the
    /// answer at once (`started`, then `sdp`) for a WebRTC start, else when the model connects.
    pub answer: Option<String>,
    pub model_limits: OutboxLimits,
    pub client_limits: OutboxLimits,
    /// A model socket silent this long is lost; a ping goes out at half of it.
    pub model_idle: Option<Duration>,
    /// A conversation held by JSON-RPC subscribers: how long it runs on once the last one left
    /// (`None`: its life is not tied to subscribers).
    pub detach_grace: Option<Duration>,
    /// How a model socket lost unexpectedly is reopened.
    pub reconnect: ReconnectPolicy,
    /// A model session this old is retired at the next turn boundary and its successor opened
    /// (before the model's own session limit).
    pub rollover_after: Option<Duration>,
}

#[derive(Debug)]
pub enum Input<'a> {
    /// Time passed (the deadline from `poll_timeout`, or any later instant).
    Timeout,
    ModelConnected,
    /// The model socket could not be opened: a setup failure.
    ModelConnectFailed(String),
    /// A text frame from the model.
    ModelText(&'a str),
    /// The model socket carried something other than text (a pong, a ping).
    ModelAlive,
    ModelClosed,
    /// The model socket ended without a close frame (EOF, reset): lost, not closed.
    ModelDropped,
    /// The model broke the protocol (a binary frame): the conversation ends, no reconnect.
    ModelViolation(String),
    ModelFailed(String),
    /// A raw OpenAI realtime client event (an OpenAI-protocol client or a sideband).
    ClientText(String),
    /// The OpenAI-protocol client left.
    ClientGone,
    /// A JSON-RPC command on the thread.
    Command(ClientCommand),
    /// A datagram for the relay call.
    Datagram {
        source: SocketAddr,
        contents: &'a [u8],
    },
    Agent(AgentUpdate),
    /// How many sideband observers are attached (they get every raw model event).
    Observers(usize),
    /// Whether the thread has JSON-RPC subscribers (it lost its last one, or has one again).
    Attached(bool),
    /// The successor model socket asked for with `OpenSuccessor` is open (held, unread, until
    /// the switch).
    SuccessorReady,
    /// Opening the successor socket failed: the rollover opens one when it switches instead.
    SuccessorFailed(String),
    /// A task an earlier conversation on the thread left running finished: its result.
    LateResult(String),
}

#[derive(Debug, PartialEq)]
pub enum Output {
    /// A datagram for the relay call's caller.
    Transmit(Transmit),
    /// A notification for the thread's JSON-RPC subscribers.
    Notify(Notification),
    /// A raw model event for the sideband observers.
    Observe(Arc<str>),
    Agent(AgentCommand),
    /// The model has been silent for half its idle timeout: ping it.
    PingModel,
    /// Drop the model socket (it is lost; a new one may follow).
    DropModel,
    /// A finished turn of the conversation, for the thread's record.
    Said {
        role: &'static str,
        text: String,
    },
    /// Open a new model socket (a reconnect).
    ConnectModel,
    /// Open the next model socket in the background (a rollover is coming) and hold it.
    OpenSuccessor,
    /// Make the held successor socket the model socket (the old one is dropped), then say
    /// `ModelConnected`.
    SwitchToSuccessor,
    /// Forget the held successor socket (the model socket was lost meanwhile).
    DropSuccessor,
    /// The conversation is over (its last output); the label says why, for logs.
    Close(&'static str),
}

struct RunningTask {
    handoff_id: String,
    deadline: Instant,
    started: Instant,
}

/// Counters a test (or the reactor's metrics) can read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CoreStats {
    /// Audio frames handed toward the model / the client.
    pub audio_to_model: u64,
    pub audio_to_client: u64,
    /// Audio dropped because a socket or the playout queue was full.
    pub audio_dropped: u64,
}

pub struct SessionCore {
    cfg: CoreConfig,
    engine: Engine,
    client: ClientSide,
    model_out: Outbox,
    client_out: Outbox,
    task: Option<RunningTask>,
    ends_at: Option<Instant>,
    observers: usize,
    now: Instant,
    out: VecDeque<Output>,
    stats: CoreStats,
    /// `response.create`s the engine deferred, as last counted into the metrics.
    deferred_seen: u64,
    dropped_seen: u64,
    /// Set for a conversation held by subscribers: its detach state and missed notifications.
    detachment: Option<Detachment>,
    reconnector: Reconnector,
    /// The model socket was open at least once (a failure before that is a setup failure).
    model_was_connected: bool,
    /// When the current model session opened (for rollover).
    model_session_since: Option<Instant>,
    /// A rollover's successor socket is being opened.
    rolling_over: bool,
    /// The switch's successor was opened at this instant (its session's age counts from then).
    switched_since: Option<Instant>,
    /// The successor socket opened ahead of a rollover (make-before-break).
    successor: Successor,
    /// The OpenAI-protocol client opted into voxgate's events (`voxgate.subscribe_agent_events`).
    voxgate_events: bool,
    /// A reopened or rolled-over model session announces itself (`session.created`, then the
    /// `session.updated` for the config voxgate replays): a client that speaks the protocol
    /// itself sees one conversation, so these are not passed on.
    quiet_session_events: bool,
    /// The last error the conversation reported (told to a WebRTC caller when it ends).
    last_error: Option<String>,
    /// When the model last sent anything (None: not connected), and whether a ping is out.
    model_heard: Option<Instant>,
    pinged: bool,
    closed: bool,
    /// The session ended because its OpenAI-protocol client stopped reading.
    client_stalled: bool,
    /// v3: when the model's turn counts as over if it says nothing more.
    live_quiet_at: Option<Instant>,
    /// The frame that ends the model session (GPT-Live's `session.close`), sent last.
    farewell_to_model: Option<String>,
    /// A client doing a delegation's work (GPT-Live `client` mode) is done once quiet till then.
    client_task_quiet_at: Option<Instant>,
    /// voxgate's own `session.update`s on this model socket not yet answered: their
    /// `session.updated` is not an OpenAI-protocol client's (it sent no update), so it is not
    /// passed on — a client waiting for the answer to its own update must not take voxgate's.
    own_updates_unanswered: u32,
}

/// The next model session's socket, opened ahead of a rollover so the switch costs no handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Successor {
    /// Not asked for (yet) in this model session.
    None,
    /// Requested at this instant (the service's clock for its session starts about then).
    Opening(Instant),
    Ready(Instant),
    /// Opening it failed: the switch opens one itself (break-then-make).
    Failed,
}

/// How long before a rollover is due its successor socket is opened (at most half the model
/// session's allowed age).
pub const SUCCESSOR_LEAD: Duration = Duration::from_secs(10);

/// Whether a model frame is a `session.updated` (cheaply: most frames are audio).
fn is_session_updated(text: &str) -> bool {
    text.contains("\"session.updated\"")
        && serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v["type"] == "session.updated")
}

/// A model frame for a trace log: its first 200 characters, escaped (it may hold what a person
/// said or typed, so it is bounded and never logged above trace).
fn log_excerpt(text: &str) -> String {
    text.chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

/// v3 (GPT-Live never says a turn is done): the model's turn is over once it has sent neither
/// audio nor transcript for this long.
pub const LIVE_TURN_QUIET: Duration = Duration::from_millis(800);

impl SessionCore {
    pub fn new(cfg: CoreConfig, client: ClientSide, now: Instant) -> Self {
        let detachment = cfg.detach_grace.map(Detachment::new);
        let reconnector = Reconnector::new(cfg.reconnect);
        metrics::SESSIONS_ACTIVE
            .with_label_values(&[cfg.face.as_str()])
            .inc();
        metrics::SESSIONS_STARTED
            .with_label_values(&[cfg.face.as_str()])
            .inc();
        let mut out = VecDeque::new();
        if let Some(sdp) = cfg.answer.clone() {
            out.push_back(Output::Notify(Notification::Started {
                realtime_session_id: cfg.engine.realtime_session_id.clone(),
                version: cfg.engine.version,
            }));
            out.push_back(Output::Notify(Notification::Sdp { sdp }));
        }
        Self {
            engine: Engine::new(cfg.engine.clone()),
            model_out: Outbox::new(cfg.model_limits),
            client_out: Outbox::new(cfg.client_limits),
            ends_at: cfg.max_duration.map(|d| now + d),
            cfg,
            client,
            task: None,
            observers: 0,
            now,
            out,
            stats: CoreStats::default(),
            deferred_seen: 0,
            dropped_seen: 0,
            detachment,
            reconnector,
            model_was_connected: false,
            model_session_since: None,
            rolling_over: false,
            successor: Successor::None,
            switched_since: None,
            voxgate_events: false,
            quiet_session_events: false,
            last_error: None,
            model_heard: None,
            pinged: false,
            closed: false,
            client_stalled: false,
            live_quiet_at: None,
            farewell_to_model: None,
            client_task_quiet_at: None,
            own_updates_unanswered: 0,
        }
    }

    /// Whether the session ended because its client stopped reading.
    pub fn client_stalled(&self) -> bool {
        self.client_stalled
    }

    /// How long a delegated task may run.
    pub fn task_timeout(&self) -> Duration {
        self.cfg.task_timeout
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Frames for the model socket and for the OpenAI-protocol client socket, taken by the
    /// driver when each socket can accept one.
    pub fn outboxes(&mut self) -> (&mut Outbox, &mut Outbox) {
        (&mut self.model_out, &mut self.client_out)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            match self.out.pop_front()? {
                // Nobody listens while detached: kept for the client that comes back.
                Output::Notify(n) if self.detachment.as_ref().is_some_and(|d| d.is_detached()) => {
                    if let Some(d) = &mut self.detachment {
                        d.keep(n);
                    }
                }
                out => return Some(out),
            }
        }
    }

    /// When the core next needs `Input::Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.ends_at,
            self.task.as_ref().map(|t| t.deadline),
            self.model_out.stall_deadline(),
            self.client_out.stall_deadline(),
            self.model_idle_deadline(),
            self.detachment.as_ref().and_then(Detachment::deadline),
            self.reconnector.deadline(),
            // Once due, a rollover waits for a turn boundary, which only an input brings: the
            // deadline is not re-armed (it would fire at once, over and over).
            self.rollover_due_at().filter(|at| *at > self.now),
            self.successor_due_at(),
            self.live_quiet_at,
            self.client_task_quiet_at,
            match &self.client {
                ClientSide::Relay(call) => call.media.poll_timeout(),
                _ => None,
            },
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if self.closed {
            return;
        }
        self.now = now.max(self.now);
        match input {
            Input::Timeout => self.on_timeout(),
            Input::ModelConnected => {
                // A new socket: whatever voxgate asked of the old one is not answered here.
                self.own_updates_unanswered = 0;
                self.on_model_connected(now)
            }
            Input::ModelConnectFailed(message)
                if self.rolling_over || self.reconnector.is_reconnecting() =>
            {
                self.on_reopen_failed(now, message)
            }
            Input::ModelConnectFailed(message) => return self.setup_failed(message),
            Input::ModelText(text) => {
                self.heard_model();
                self.on_model_text(text);
            }
            Input::ModelAlive => self.heard_model(),
            Input::ModelClosed => self.engine.handle_input(EngineInput::UpstreamClosed),
            Input::ModelDropped => {
                self.model_lost("the realtime model connection ended without a close frame".into())
            }
            Input::ModelFailed(message) => self.model_lost(message),
            Input::ModelViolation(message) => self
                .engine
                .handle_input(EngineInput::UpstreamFailed(message)),
            // voxgate's own opt-in is voxgate's: the model never sees it.
            Input::ClientText(raw) if matches!(self.client, ClientSide::Live(_)) => {
                self.live_client_event(&raw)
            }
            Input::ClientText(raw) if is_agent_events_opt_in(&raw) => self.voxgate_events = true,
            Input::ClientText(raw) => self.client_command(ClientCommand::RawEvent(raw)),
            Input::ClientGone => {
                self.client_out.clear();
                self.client_command(ClientCommand::Stop);
            }
            Input::Command(cmd) => self.client_command(cmd),
            Input::Datagram { source, contents } => {
                if let ClientSide::Relay(call) = &mut self.client {
                    call.media.receive(now, source, contents);
                }
            }
            Input::Agent(update) => self.on_agent_update(update),
            Input::Observers(n) => self.observers = n,
            Input::Attached(attached) => self.on_attached(attached),
            Input::LateResult(text) => self
                .engine
                .handle_input(EngineInput::Agent(AgentEvent::LateResult { text })),
            Input::SuccessorReady => {
                if let Successor::Opening(asked) = self.successor {
                    self.successor = Successor::Ready(asked);
                }
            }
            Input::SuccessorFailed(message) => {
                tracing::warn!(%message, "opening the next model session ahead of the rollover failed");
                if let Successor::Opening(_) = self.successor {
                    self.successor = Successor::Failed;
                }
            }
        }
        self.check_successor();
        self.settle();
        if self.rollover_due_at().is_some() {
            self.check_rollover();
            self.settle();
        }
        self.check_outboxes();
    }

    fn client_command(&mut self, cmd: ClientCommand) {
        self.engine.handle_input(EngineInput::Client(cmd));
    }

    fn on_timeout(&mut self) {
        let now = self.now;
        if self.live_quiet_at.take_if(|at| now >= *at).is_some() {
            self.engine.handle_input(EngineInput::ModelQuiet);
        }
        if self.client_task_quiet_at.is_some_and(|at| now >= at) {
            self.end_client_task();
        }
        self.check_model_idle();
        if self.reconnector.due(now) {
            self.out.push_back(Output::ConnectModel);
        }
        if self
            .detachment
            .as_ref()
            .and_then(Detachment::deadline)
            .is_some_and(|at| now >= at)
        {
            tracing::info!("closing a detached conversation: no client came back in time");
            self.engine.handle_input(EngineInput::Abandoned);
        }
        if let ClientSide::Relay(call) = &mut self.client {
            call.media.handle_timeout(now);
        }
        if self.ends_at.is_some_and(|at| now >= at) {
            self.ends_at = None;
            let secs = self.cfg.max_duration.map_or(0, |d| d.as_secs());
            let message = format!("the session exceeded its maximum duration of {secs}s");
            match &self.client {
                ClientSide::OpenAi(_) => {
                    let event = serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                        "code": "session_expired", "message": message, "param": null}});
                    self.client_out
                        .push(now, event.to_string(), FrameClass::Control);
                }
                ClientSide::Live(_) => {
                    let event = live::LiveError {
                        code: "session_expired",
                        message: message.clone(),
                    };
                    self.client_out
                        .push(now, event.to_event(), FrameClass::Control);
                }
                _ => {}
            }
            self.engine
                .handle_input(EngineInput::UpstreamFailed(message));
        }
        if let Some(task) = self.task.take_if(|t| now >= t.deadline) {
            task_ended(&task, now, "failed");
            self.out.push_back(Output::Agent(AgentCommand::Cancel));
            let secs = self.cfg.task_timeout.as_secs_f64();
            self.engine
                .handle_input(EngineInput::Agent(AgentEvent::Ended {
                    handoff_id: task.handoff_id,
                    outcome: TaskOutcome::Failed(format!("timed out after {secs}s")),
                }));
        }
    }

    /// A socket that stopped reading ends the session with a clear reason.
    fn check_outboxes(&mut self) {
        let now = self.now;
        for outbox in [&self.model_out, &self.client_out] {
            if outbox.queued_bytes() > 0 {
                metrics::observe_backlog(outbox.queued_bytes());
            }
        }
        if self.closed {
            return;
        }
        if self.model_out.is_stalled(now) {
            metrics::SOCKETS_CLOSED_SLOW.inc();
            let secs = self.model_out.limits().stall.as_secs();
            self.model_out.clear();
            self.model_lost(format!(
                "sending to the realtime model stalled (no progress for {secs}s or too much queued)"
            ));
            self.settle();
        }
        if self.client_out.is_stalled(now) {
            metrics::SOCKETS_CLOSED_SLOW.inc();
            let secs = self.client_out.limits().stall.as_secs();
            self.client_out.clear();
            tracing::warn!("closing a session whose client stopped reading");
            self.client_stalled = true;
            self.engine
                .handle_input(EngineInput::UpstreamFailed(format!(
                    "the client stopped reading (no progress for {secs}s or too much queued)"
                )));
            self.settle();
        }
    }

    fn on_model_text(&mut self, text: &str) {
        if self.observers > 0 {
            self.out.push_back(Output::Observe(Arc::from(text)));
        }
        let parsed = self.engine.version().parse(text);
        let is_audio = matches!(parsed, Ok(ModelEvent::AudioOut(_)));
        if !is_audio {
            tracing::trace!(frame = %log_excerpt(text), "from the model");
        }
        if self.engine.version() == ModelVersion::V3
            && matches!(
                parsed,
                Ok(ModelEvent::AudioOut(_) | ModelEvent::OutputTranscriptDelta { .. })
            )
        {
            self.live_quiet_at = Some(self.now + LIVE_TURN_QUIET);
        }
        let own_answer = self.own_updates_unanswered > 0 && is_session_updated(text);
        if own_answer {
            self.own_updates_unanswered -= 1;
        }
        let hidden = (self.quiet_session_events && self.successor_announcement(text))
            || (own_answer && matches!(self.client, ClientSide::OpenAi(_)));
        match &mut self.client {
            _ if hidden => {}
            ClientSide::OpenAi(filter) => {
                let forwarded = filter.filter(text);
                if let Some(created) = filter.take_released() {
                    self.client_out.push(self.now, created, FrameClass::Control);
                }
                if let Some(t) = forwarded {
                    let class = if is_audio {
                        FrameClass::Audio
                    } else {
                        FrameClass::Control
                    };
                    if self.client_out.push(self.now, t, class) {
                        if is_audio {
                            self.stats.audio_to_client += 1;
                        }
                    } else {
                        self.stats.audio_dropped += 1;
                        metrics::AUDIO_FRAMES_DROPPED.inc();
                    }
                }
            }
            // Audio travels by RTP: the data channel never carries it.
            ClientSide::Relay(call) if !is_audio => {
                let forwarded = call.filter.filter(text);
                if let Some(created) = call.filter.take_released() {
                    call.media.send_text(created);
                }
                if let Some(t) = forwarded {
                    call.media.send_text(t);
                }
            }
            _ => {}
        }
        match parsed {
            Ok(ev) => {
                // The engine decides barge-in truncation on model events: give it what the
                // caller has heard by now.
                self.sync_played();
                self.engine.handle_input(EngineInput::Model(ev));
            }
            Err(reason) => {
                metrics::MODEL_FRAMES_SKIPPED.inc();
                tracing::debug!(%reason, "skipped realtime frame");
            }
        }
    }

    /// Carry out what the engine and the media asked for until both are quiet.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.engine.poll_output() {
                moved = true;
                self.on_engine_output(out);
            }
            if let ClientSide::Relay(call) = &mut self.client {
                while let Some(t) = call.media.poll_transmit() {
                    self.out.push_back(Output::Transmit(t));
                }
            }
            while let Some(ev) = self.next_media_event() {
                moved = true;
                self.on_media_event(ev);
            }
            if !moved || self.closed {
                break;
            }
        }
        let queue = self.engine.response_queue();
        let (deferred, dropped) = (queue.deferred(), queue.dropped());
        if deferred > self.deferred_seen {
            metrics::RESPONSE_CREATE
                .with_label_values(&["deferred"])
                .inc_by(deferred - self.deferred_seen);
            self.deferred_seen = deferred;
        }
        if dropped > self.dropped_seen {
            tracing::warn!(
                waiting = crate::engine::response_queue::MAX_WAITING,
                "response.create dropped: too many already waiting for the active response"
            );
            metrics::RESPONSE_CREATE
                .with_label_values(&["dropped"])
                .inc_by(dropped - self.dropped_seen);
            self.dropped_seen = dropped;
        }
    }

    fn close(&mut self, reason: CloseReason) {
        metrics::SESSIONS_CLOSED
            .with_label_values(&[self.cfg.face.as_str(), reason.as_str()])
            .inc();
        tracing::info!(reason = reason.as_str(), "conversation closed");
        self.finish(reason.as_str());
    }

    /// The model socket never opened: `error` only, no `closed` — except after a webrtc start,
    /// where the call already exists (`sdp` was sent): then `closed{error}` too.
    fn setup_failed(&mut self, message: String) {
        tracing::warn!(%message, "upstream connect failed");
        self.last_error = Some(message.clone());
        if let ClientSide::OpenAi(_) = self.client {
            let event = serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                "code": "session_failed", "message": message, "param": null}});
            self.client_out
                .push(self.now, event.to_string(), FrameClass::Control);
        }
        let n = Notification::Error { message };
        if !self.tell_live_client(&n) {
            self.out.push_back(Output::Notify(n));
        }
        if self.cfg.answer.is_some() {
            self.out.push_back(Output::Notify(Notification::Closed {
                reason: CloseReason::Error,
            }));
        }
        metrics::SESSIONS_CLOSED
            .with_label_values(&[self.cfg.face.as_str(), "setup_failed"])
            .inc();
        self.finish("setup_failed");
    }

    fn finish(&mut self, why: &'static str) {
        if let ClientSide::Relay(call) = &mut self.client {
            // The caller hears why before the peer closes.
            let farewell = serde_json::json!({"type": "voxgate.session.closed", "reason": why,
                "message": self.last_error.take()});
            call.media.hang_up(Some(farewell.to_string()));
            while let Some(t) = call.media.poll_transmit() {
                self.out.push_back(Output::Transmit(t));
            }
        }
        if let Some(task) = self.task.take() {
            task_ended(&task, self.now, "released");
            self.out.push_back(Output::Agent(AgentCommand::Release));
        }
        self.model_out.clear();
        if let Some(farewell) = self.farewell_to_model.take() {
            self.model_out.push(self.now, farewell, FrameClass::Control);
        }
        self.closed = true;
        self.out.push_back(Output::Close(why));
    }
}

impl Drop for SessionCore {
    fn drop(&mut self) {
        metrics::SESSIONS_ACTIVE
            .with_label_values(&[self.cfg.face.as_str()])
            .dec();
    }
}
