//! The one task per conversation: connects the upstream, then selects over upstream events,
//! client commands, agent updates and the task deadline, feeding the engine and carrying out its
//! outputs. Holds no conversation logic of its own.

use super::subscribers::ThreadSubscribers;
use crate::agent::{AgentCore, AgentTask, AgentUpdate, TaskHandle};
use crate::engine::{
    AgentCommand, AgentEvent, ClientCommand, Engine, EngineConfig, Input, Output, TaskOutcome,
};
use crate::metrics;
use crate::protocol::rpc::Notification;
use crate::protocol::{AudioChunk, ModelFrame};
use crate::upstream::{UpstreamEvent, UpstreamLink, UpstreamRequest, ws};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

pub struct SessionSpec {
    pub thread_id: String,
    pub engine: EngineConfig,
    pub upstream: UpstreamRequest,
    pub agent: Arc<dyn AgentCore>,
    pub task_timeout: Duration,
}

struct RunningTask {
    handle: TaskHandle,
    deadline: Instant,
}

struct ActiveGauge;
impl ActiveGauge {
    fn new() -> Self {
        metrics::SESSIONS_ACTIVE.inc();
        metrics::SESSIONS_STARTED.inc();
        ActiveGauge
    }
}
impl Drop for ActiveGauge {
    fn drop(&mut self) {
        metrics::SESSIONS_ACTIVE.dec();
    }
}

pub async fn run(
    spec: SessionSpec,
    mut control: mpsc::UnboundedReceiver<ClientCommand>,
    mut audio: mpsc::Receiver<AudioChunk>,
    subs: Arc<ThreadSubscribers>,
) {
    let span =
        tracing::info_span!("session", thread_id = %spec.thread_id, version = %spec.engine.version);
    drive(spec, &mut control, &mut audio, subs)
        .instrument(span)
        .await;
}

async fn drive(
    spec: SessionSpec,
    control: &mut mpsc::UnboundedReceiver<ClientCommand>,
    audio: &mut mpsc::Receiver<AudioChunk>,
    subs: Arc<ThreadSubscribers>,
) {
    let _gauge = ActiveGauge::new();
    let thread_id = spec.thread_id.clone();
    let mut engine = Engine::new(spec.engine.clone());
    let (ev_tx, mut ev_rx) = mpsc::channel::<UpstreamEvent>(256);
    let connect = ws::connect(&spec.upstream, ev_tx);
    tokio::pin!(connect);
    let mut link: Option<UpstreamLink> = None;
    let mut task: Option<RunningTask> = None;
    tracing::info!("conversation starting");

    loop {
        while let Some(out) = engine.poll_output() {
            match out {
                Output::ToModel(frame) => send_frame(&engine, link.as_ref(), &frame),
                Output::ToClient(n) => subs.notify(&thread_id, &n),
                Output::ToAgent(cmd) => match cmd {
                    AgentCommand::Start { handoff_id, text } => {
                        metrics::HANDOFFS_STARTED.inc();
                        let handle = spec.agent.start(AgentTask {
                            thread_id: thread_id.clone(),
                            handoff_id,
                            text,
                        });
                        task = Some(RunningTask {
                            handle,
                            deadline: Instant::now() + spec.task_timeout,
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
                        }
                    }
                },
                Output::Close(reason) => {
                    metrics::SESSIONS_CLOSED
                        .with_label_values(&[reason.as_str()])
                        .inc();
                    tracing::info!(reason = reason.as_str(), "conversation closed");
                    return;
                }
            }
        }
        let deadline = task.as_ref().map(|t| t.deadline);
        tokio::select! {
            res = &mut connect, if link.is_none() => match res {
                Ok(l) => {
                    link = Some(l);
                    engine.handle_input(Input::Connected);
                }
                Err(message) => {
                    // Setup failure: `error` only, no `closed`.
                    tracing::warn!(%message, "upstream connect failed");
                    subs.notify(&thread_id, &Notification::Error { message });
                    metrics::SESSIONS_CLOSED.with_label_values(&["setup_failed"]).inc();
                    return;
                }
            },
            Some(ev) = ev_rx.recv() => engine.handle_input(match ev {
                UpstreamEvent::Model(m) => Input::Model(m),
                UpstreamEvent::Closed => Input::UpstreamClosed,
                UpstreamEvent::Failed(msg) => Input::UpstreamFailed(msg),
            }),
            Some(cmd) = control.recv() => engine.handle_input(Input::Client(cmd)),
            Some(chunk) = audio.recv() => {
                engine.handle_input(Input::Client(ClientCommand::AppendAudio(chunk)));
            }
            update = next_update(&mut task) => {
                let Some(t) = task.as_ref() else { continue };
                let handoff_id = t.handle.handoff_id.clone();
                let ev = match update {
                    AgentUpdate::Message(text) => AgentEvent::Message { handoff_id, text },
                    AgentUpdate::End(outcome) => {
                        task = None;
                        AgentEvent::Ended { handoff_id, outcome }
                    }
                };
                engine.handle_input(Input::Agent(ev));
            }
            _ = sleep_until_opt(deadline) => {
                if let Some(mut t) = task.take() {
                    t.handle.cancel();
                    let secs = spec.task_timeout.as_secs_f64();
                    engine.handle_input(Input::Agent(AgentEvent::Ended {
                        handoff_id: t.handle.handoff_id.clone(),
                        outcome: TaskOutcome::Failed(format!("timed out after {secs}s")),
                    }));
                }
            }
        }
    }
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
