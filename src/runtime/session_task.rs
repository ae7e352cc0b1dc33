//! The one task per conversation: connects the upstream, then selects over upstream events,
//! client commands, agent updates and the task deadline, feeding the engine and carrying out its
//! outputs. Holds no conversation logic of its own.

use super::subscribers::ThreadSubscribers;
use crate::agent::{AgentCore, AgentTask, AgentUpdate, TaskHandle};
use crate::engine::plumbing::PlumbingFilter;
use crate::engine::{
    AgentCommand, AgentEvent, ClientCommand, Engine, EngineConfig, Input, Output, TaskOutcome,
};
use crate::media::peer::{PeerCommand, PeerEvent};
use crate::metrics;
use crate::protocol::rpc::Notification;
use crate::protocol::{AudioChunk, ModelFrame};
use crate::upstream::{UpstreamEvent, UpstreamLink, UpstreamRequest, ws};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

pub struct SessionSpec {
    pub thread_id: String,
    /// How the client reaches voxgate (metrics label).
    pub face: super::Face,
    pub engine: EngineConfig,
    pub upstream: UpstreamRequest,
    pub agent: Arc<dyn AgentCore>,
    pub task_timeout: Duration,
    /// Set when the client is a WebRTC peer voxgate terminates (relay mode).
    pub call: Option<CallLink>,
    /// False when `started` was already announced (a webrtc start announces it with the answer).
    pub announce_started: bool,
    /// An OpenAI-protocol websocket client (`/v1/realtime`): raw model events, filtered, go here.
    pub openai_client: Option<mpsc::Sender<String>>,
    /// The caller's key slot, held for the session's life; carries its maximum duration.
    pub permit: Option<crate::auth::SessionPermit>,
}

/// The session's side of a relay call's peer task.
pub struct CallLink {
    pub commands: mpsc::Sender<PeerCommand>,
    pub events: mpsc::Receiver<PeerEvent>,
    /// What the caller has heard so far, written by the peer task.
    pub played: Arc<crate::media::peer::PlayedPosition>,
}

struct Call {
    link: CallLink,
    filter: PlumbingFilter,
    /// The caller opted into voxgate's agent events (`voxgate.subscribe_agent_events`).
    agent_events: bool,
}

impl Call {
    fn agent_event(&self, event: serde_json::Value) {
        if self.agent_events {
            let _ = self
                .link
                .commands
                .try_send(PeerCommand::Text(event.to_string()));
        }
    }
}

struct RunningTask {
    handle: TaskHandle,
    deadline: Instant,
    started: Instant,
}

/// Counts the session in `voxgate_sessions_active` for as long as it lives.
struct ActiveGauge(&'static str);
impl ActiveGauge {
    fn new(face: super::Face) -> Self {
        metrics::SESSIONS_ACTIVE
            .with_label_values(&[face.as_str()])
            .inc();
        metrics::SESSIONS_STARTED
            .with_label_values(&[face.as_str()])
            .inc();
        ActiveGauge(face.as_str())
    }
}
impl Drop for ActiveGauge {
    fn drop(&mut self) {
        metrics::SESSIONS_ACTIVE.with_label_values(&[self.0]).dec();
    }
}

/// Feeds the engine's running counters into the process metrics as they move.
#[derive(Default)]
struct EngineCounters {
    deferred: u64,
}
impl EngineCounters {
    fn flush(&mut self, engine: &Engine) {
        let deferred = engine.response_queue().deferred();
        if deferred > self.deferred {
            metrics::RESPONSE_CREATE
                .with_label_values(&["deferred"])
                .inc_by(deferred - self.deferred);
            self.deferred = deferred;
        }
    }
}

fn outcome_label(outcome: &TaskOutcome) -> &'static str {
    match outcome {
        TaskOutcome::Completed => "finished",
        TaskOutcome::Failed(_) => "failed",
        TaskOutcome::Cancelled => "cancelled",
    }
}

fn task_ended(t: &RunningTask, outcome: &TaskOutcome) {
    let label = outcome_label(outcome);
    metrics::HANDOFFS_ENDED.with_label_values(&[label]).inc();
    metrics::AGENT_TASK_SECONDS
        .with_label_values(&[label])
        .observe(t.started.elapsed().as_secs_f64());
}

pub async fn run(
    spec: SessionSpec,
    mut control: mpsc::UnboundedReceiver<ClientCommand>,
    mut audio: mpsc::Receiver<AudioChunk>,
    mut observers: mpsc::UnboundedReceiver<mpsc::Sender<String>>,
    subs: Arc<ThreadSubscribers>,
) {
    let span =
        tracing::info_span!("session", thread_id = %spec.thread_id, version = %spec.engine.version);
    drive(spec, &mut control, &mut audio, &mut observers, subs)
        .instrument(span)
        .await;
}

async fn drive(
    mut spec: SessionSpec,
    control: &mut mpsc::UnboundedReceiver<ClientCommand>,
    audio: &mut mpsc::Receiver<AudioChunk>,
    observers_rx: &mut mpsc::UnboundedReceiver<mpsc::Sender<String>>,
    subs: Arc<ThreadSubscribers>,
) {
    let face = spec.face.as_str();
    let _gauge = ActiveGauge::new(spec.face);
    let mut counters = EngineCounters::default();
    let thread_id = spec.thread_id.clone();
    let mut engine = Engine::new(spec.engine.clone());
    let (ev_tx, mut ev_rx) = mpsc::channel::<UpstreamEvent>(256);
    let connect = ws::connect_with_retries(&spec.upstream, ev_tx);
    tokio::pin!(connect);
    let mut link: Option<UpstreamLink> = None;
    let mut task: Option<RunningTask> = None;
    let openai_client = spec.openai_client.take();
    let max_duration = spec.permit.as_ref().and_then(|p| p.max_duration);
    let ends_at = max_duration.map(|d| Instant::now() + d);
    // Sideband observers (`/v1/realtime?call_id=`): every raw model event, unfiltered.
    let mut observers: Vec<mpsc::Sender<String>> = Vec::new();
    let mut openai_filter = if spec.engine.delegation {
        PlumbingFilter::new(false)
    } else {
        PlumbingFilter::passthrough(false)
    };
    let mut call = spec.call.take().map(|link| Call {
        link,
        filter: PlumbingFilter::new(true),
        agent_events: false,
    });
    tracing::info!("conversation starting");

    loop {
        // The select below just returned: what the engine emits now was caused by that wake-up.
        let woke = std::time::Instant::now();
        while let Some(out) = engine.poll_output() {
            match out {
                Output::ToModel(frame) => {
                    match &frame {
                        ModelFrame::ResponseCreate => {
                            metrics::RESPONSE_CREATE.with_label_values(&["sent"]).inc();
                        }
                        ModelFrame::Truncate { .. } => metrics::TRUNCATIONS.inc(),
                        _ => {}
                    }
                    send_frame(&engine, link.as_ref(), &frame);
                    if frame.is_audio_append() {
                        audio_frame_done(&metrics::TO_MODEL, woke);
                    }
                }
                Output::ToClient(Notification::OutputAudioDelta(chunk)) if call.is_some() => {
                    if let Some(c) = &call {
                        play(c, chunk);
                    }
                    audio_frame_done(&metrics::TO_CLIENT, woke);
                }
                Output::ToClient(n @ Notification::OutputAudioDelta(_))
                    if openai_client.is_none() =>
                {
                    subs.notify(&thread_id, &n);
                    audio_frame_done(&metrics::TO_CLIENT, woke);
                }
                Output::ToClient(Notification::Started { .. }) if !spec.announce_started => {}
                Output::ToClient(n) => subs.notify(&thread_id, &n),
                Output::ClearAudio => {
                    if let Some(c) = &call {
                        let _ = c.link.commands.try_send(PeerCommand::Flush);
                    }
                }
                Output::ToAgent(cmd) => match cmd {
                    AgentCommand::Start { handoff_id, text } => {
                        metrics::HANDOFFS_STARTED.inc();
                        if let Some(c) = &call {
                            c.agent_event(serde_json::json!({"type": "voxgate.agent.started",
                                "handoff_id": handoff_id, "request": crate::agent::delegation_input(&text)}));
                        }
                        let handle = spec.agent.start(AgentTask {
                            thread_id: thread_id.clone(),
                            handoff_id,
                            text,
                        });
                        task = Some(RunningTask {
                            handle,
                            deadline: Instant::now() + spec.task_timeout,
                            started: Instant::now(),
                        });
                    }
                    AgentCommand::Steer { text } => {
                        if let Some(t) = &task {
                            t.handle.steer(text);
                        }
                    }
                    AgentCommand::Cancel => {
                        if let Some(mut t) = task.take() {
                            t.handle.cancel();
                            task_ended(&t, &TaskOutcome::Cancelled);
                        }
                    }
                },
                Output::Close(reason) => {
                    metrics::SESSIONS_CLOSED
                        .with_label_values(&[face, reason.as_str()])
                        .inc();
                    tracing::info!(reason = reason.as_str(), "conversation closed");
                    return;
                }
            }
        }
        counters.flush(&engine);
        let deadline = task.as_ref().map(|t| t.deadline);
        tokio::select! {
            res = &mut connect, if link.is_none() => match res {
                Ok(l) => {
                    link = Some(l);
                    engine.handle_input(Input::Connected);
                }
                Err(message) => {
                    // Setup failure: `error` only, no `closed` — except after a webrtc start,
                    // where the call already exists (`sdp` was sent): then `closed{error}` too.
                    tracing::warn!(%message, "upstream connect failed");
                    subs.notify(&thread_id, &Notification::Error { message });
                    if !spec.announce_started {
                        subs.notify(&thread_id, &Notification::Closed { reason: crate::protocol::rpc::CloseReason::Error });
                    }
                    metrics::SESSIONS_CLOSED.with_label_values(&[face, "setup_failed"]).inc();
                    return;
                }
            },
            Some(obs) = observers_rx.recv() => observers.push(obs),
            _ = sleep_until_opt(ends_at) => {
                let secs = max_duration.map_or(0, |d| d.as_secs());
                let message = format!("the session exceeded its maximum duration of {secs}s");
                if let Some(out) = &openai_client {
                    let event = serde_json::json!({"type": "error", "error": {"type": "invalid_request_error",
                        "code": "session_expired", "message": message, "param": null}});
                    let _ = out.send(event.to_string()).await;
                }
                engine.handle_input(Input::UpstreamFailed(message));
            }
            Some(ev) = ev_rx.recv() => match ev {
                UpstreamEvent::Raw(text) => {
                    let received = std::time::Instant::now();
                    observers.retain(|o| !matches!(o.try_send(text.clone()), Err(mpsc::error::TrySendError::Closed(_))));
                    if let Some(out) = &openai_client {
                        if let Some(text) = openai_filter.filter(&text) {
                            // Audio may drop for a slow client; every other event waits for room.
                            if text.starts_with(r#"{"type":"response.output_audio.delta""#) {
                                if out.try_send(text).is_err() {
                                    metrics::AUDIO_FRAMES_DROPPED.inc();
                                } else {
                                    audio_frame_done(&metrics::TO_CLIENT, received);
                                }
                            } else if out.send(text).await.is_err() {
                                engine.handle_input(Input::Client(ClientCommand::Stop));
                            }
                        }
                    } else if let Some(c) = &mut call
                        && let Some(out) = c.filter.filter(&text)
                    {
                        let _ = c.link.commands.try_send(PeerCommand::Text(out));
                    }
                }
                UpstreamEvent::Model(m) => {
                    // The engine decides barge-in truncation on model events: give it what the
                    // caller has heard by now.
                    sync_played(call.as_ref(), &mut engine);
                    engine.handle_input(Input::Model(m));
                }
                UpstreamEvent::Closed => engine.handle_input(Input::UpstreamClosed),
                UpstreamEvent::Failed(msg) => engine.handle_input(Input::UpstreamFailed(msg)),
            },
            Some(ev) = next_peer_event(&mut call) => match ev {
                PeerEvent::Audio(pcm) => {
                    let mut bytes = Vec::with_capacity(pcm.len() * 2);
                    for s in &pcm {
                        bytes.extend_from_slice(&s.to_le_bytes());
                    }
                    engine.handle_input(Input::Client(ClientCommand::AppendAudio(AudioChunk {
                        data: base64::engine::general_purpose::STANDARD.encode(bytes),
                        sample_rate: 24_000,
                        num_channels: 1,
                        samples_per_channel: u32::try_from(pcm.len()).ok(),
                        item_id: None,
                    })));
                }
                PeerEvent::ChannelText(t) if t.contains("\"voxgate.subscribe_agent_events\"") => {
                    if let Some(c) = &mut call {
                        c.agent_events = true;
                    }
                }
                PeerEvent::ChannelText(t) => engine.handle_input(Input::Client(ClientCommand::RawEvent(t))),
                PeerEvent::PlaybackFinished => {
                    sync_played(call.as_ref(), &mut engine);
                    engine.handle_input(Input::PlaybackFinished);
                }
                PeerEvent::Connected => tracing::info!("webrtc caller connected"),
                PeerEvent::ChannelOpen => tracing::debug!("oai-events data channel open"),
                PeerEvent::Closed(reason) => {
                    call = None;
                    engine.handle_input(Input::UpstreamFailed(format!("the WebRTC caller went away: {reason}")));
                }
            },
            Some(cmd) = control.recv() => engine.handle_input(Input::Client(cmd)),
            Some(chunk) = audio.recv() => {
                engine.handle_input(Input::Client(ClientCommand::AppendAudio(chunk)));
            }
            update = next_update(&mut task) => {
                let Some(t) = task.as_ref() else { continue };
                let handoff_id = t.handle.handoff_id.clone();
                let ev = match update {
                    AgentUpdate::Message(text) => {
                        if let Some(c) = &call {
                            c.agent_event(serde_json::json!({"type": "voxgate.agent.message", "handoff_id": handoff_id, "text": text}));
                        }
                        AgentEvent::Message { handoff_id, text }
                    }
                    AgentUpdate::End(outcome) => {
                        task_ended(t, &outcome);
                        task = None;
                        if let Some(c) = &call {
                            c.agent_event(serde_json::json!({"type": "voxgate.agent.ended", "handoff_id": handoff_id,
                                "outcome": format!("{outcome:?}")}));
                        }
                        AgentEvent::Ended { handoff_id, outcome }
                    }
                };
                engine.handle_input(Input::Agent(ev));
            }
            _ = sleep_until_opt(deadline) => {
                if let Some(mut t) = task.take() {
                    t.handle.cancel();
                    let secs = spec.task_timeout.as_secs_f64();
                    task_ended(&t, &TaskOutcome::Failed(String::new()));
                    engine.handle_input(Input::Agent(AgentEvent::Ended {
                        handoff_id: t.handle.handoff_id.clone(),
                        outcome: TaskOutcome::Failed(format!("timed out after {secs}s")),
                    }));
                }
            }
        }
    }
}

/// Feed the engine the caller's played position if it moved since the last look.
fn sync_played(call: Option<&Call>, engine: &mut Engine) {
    if let Some((item_id, played_ms)) = call.and_then(|c| c.link.played.take()) {
        engine.handle_input(Input::AudioPlayed { item_id, played_ms });
    }
}

/// Count an audio frame carried in `direction` and how long the session held it.
fn audio_frame_done(direction: &metrics::AudioDirection, since: std::time::Instant) {
    direction.frames.inc();
    direction.processing.observe(since.elapsed().as_secs_f64());
}

fn send_frame(engine: &Engine, link: Option<&UpstreamLink>, frame: &ModelFrame) {
    let (Some(link), Some(text)) = (link, engine.version().build(frame)) else {
        return;
    };
    if matches!(frame, ModelFrame::AudioAppend { .. }) {
        link.send_audio(text);
    } else {
        link.send_control(text);
    }
}

/// Decode a model audio chunk and queue it for paced playout on the call.
fn play(c: &Call, chunk: AudioChunk) {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(chunk.data.as_bytes()) else {
        tracing::debug!("model sent audio that is not base64");
        return;
    };
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    if c.link
        .commands
        .try_send(PeerCommand::Audio {
            item: chunk.item_id,
            pcm,
        })
        .is_err()
    {
        metrics::AUDIO_FRAMES_DROPPED.inc();
    }
}

async fn next_peer_event(call: &mut Option<Call>) -> Option<PeerEvent> {
    match call {
        Some(c) => c.link.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_update(task: &mut Option<RunningTask>) -> AgentUpdate {
    match task {
        Some(t) => t.handle.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
