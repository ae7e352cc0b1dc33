//! The reactor: the one task per conversation and the only tokio code on its data path. It owns
//! the model socket, the OpenAI-protocol client's socket (when the client is one), the relay
//! call's datagram queue, the agent task's updates and the session's command queue, and
//! `select!`s over them and `sleep_until(core.poll_timeout())`, feeding the [`SessionCore`] and
//! carrying out its outputs. Writes go through the core's bounded outboxes, taken only when a
//! socket can accept them: the reactor never awaits a slow peer. It holds no policy.

use super::core::{Input, Output, SessionCore};
use super::outbox::Outbox;
use super::subscribers::ThreadSubscribers;
use crate::agent::{AgentCore, AgentTask, AgentUpdate, TaskHandle};
use crate::engine::{AgentCommand, ClientCommand};
use crate::media::shards::{Datagram, MediaRoute};
use crate::metrics;
use crate::upstream::{ModelSocket, UpstreamRequest, ws};
use axum::extract::ws::{Message as ClientMessage, WebSocket};
use futures_util::{Sink, Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::{self, Message as ModelMessage};
use tracing::Instrument;

/// How long a closing session keeps trying to deliver its last events.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a face hands to a running session.
#[derive(Debug)]
pub enum SessionCommand {
    /// A JSON-RPC command on the thread.
    Client(ClientCommand),
    /// A raw OpenAI client event from a sideband.
    ClientText(String),
    /// A sideband observer: it receives every raw model event (dropped when it is full).
    AttachObserver(mpsc::Sender<Arc<str>>),
    /// A delegated task from an earlier conversation on the thread finished: its result.
    LateResult(String),
    /// The relay caller's new offer on its live call (an ICE restart); the answer goes back.
    Renegotiate {
        offer: String,
        reply: tokio::sync::oneshot::Sender<Result<String, crate::media::call::OfferError>>,
    },
}

/// The sockets and queues a session's reactor owns.
pub struct SessionIo {
    pub thread_id: String,
    pub upstream: UpstreamRequest,
    pub agent: Arc<dyn AgentCore>,
    /// An OpenAI-protocol client's websocket (`/v1/realtime`).
    pub client: Option<WebSocket>,
    /// A relay call's route on the shared media port and its datagram queue.
    pub media: Option<(MediaRoute, mpsc::Receiver<Datagram>)>,
    /// The caller's key slot, held for the session's life.
    pub permit: Option<crate::auth::SessionPermit>,
    /// A passthrough call: hung up upstream when the session ends, so the caller's media (which
    /// goes to the service directly) ends with it.
    pub upstream_call: Option<crate::upstream::call::UpstreamCall>,
}

/// The registry's side of a session: its command queue and stop signal.
pub struct SessionControl {
    pub commands: mpsc::Receiver<SessionCommand>,
    pub stop: Arc<Notify>,
    pub subscribers: Arc<ThreadSubscribers>,
    /// Whether the thread has subscribers, for a conversation that lives by them.
    pub attached: Option<tokio::sync::watch::Receiver<bool>>,
    /// The thread's record of what was said.
    pub record: Arc<super::record::ThreadRecord>,
    /// This conversation's generation on the thread (its late-result inbox is keyed by it).
    pub generation: u64,
}

pub async fn run(
    core: SessionCore,
    io: SessionIo,
    control: SessionControl,
    started_by: &tracing::Span,
    caller_trace: Option<String>,
) {
    // Not nested under the starting request in the logs (it ends long before), but its child
    // in the exported trace.
    let span = tracing::info_span!(parent: None, "session", thread_id = %io.thread_id,
        version = %core.engine().version(), otel.name = "realtime.session");
    crate::telemetry::follow(&span, started_by);
    let mut reactor = Reactor::new(core, io, control);
    reactor.caller_trace = caller_trace;
    reactor.drive().instrument(span).await;
}

type ModelSink = futures_util::stream::SplitSink<ModelSocket, ModelMessage>;
type ModelStream = futures_util::stream::SplitStream<ModelSocket>;
type ClientSink = futures_util::stream::SplitSink<WebSocket, ClientMessage>;
type ClientStream = futures_util::stream::SplitStream<WebSocket>;

/// A websocket's sending half, whether it holds unflushed frames, and a ping to send.
struct Writer<S> {
    sink: S,
    dirty: bool,
    ping: bool,
}

impl<S> Writer<S> {
    fn new(sink: S) -> Self {
        Self {
            sink,
            dirty: false,
            ping: false,
        }
    }

    fn has_work(&self, outbox: &Outbox) -> bool {
        self.dirty || self.ping || !outbox.is_empty()
    }

    /// Move frames from `outbox` into the socket while it accepts them, then flush; resolves
    /// when everything is written, stays pending (without taking more) while the peer is slow.
    fn flush<'a, M: 'a>(
        &'a mut self,
        outbox: &'a mut Outbox,
        frame: fn(String) -> M,
        ping: fn() -> M,
    ) -> impl Future<Output = Result<(), S::Error>> + 'a
    where
        S: Sink<M> + Unpin,
    {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            loop {
                if self.ping {
                    match Pin::new(&mut self.sink).poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            Pin::new(&mut self.sink).start_send(ping())?;
                            self.ping = false;
                            self.dirty = true;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                if outbox.is_empty() {
                    if !self.dirty {
                        return Poll::Ready(Ok(()));
                    }
                    return match Pin::new(&mut self.sink).poll_flush(cx) {
                        Poll::Ready(Ok(())) => {
                            self.dirty = false;
                            Poll::Ready(Ok(()))
                        }
                        other => other,
                    };
                }
                match Pin::new(&mut self.sink).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Some((text, _)) = outbox.pop(Instant::now()) {
                            Pin::new(&mut self.sink).start_send(frame(text))?;
                            self.dirty = true;
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        if self.dirty
                            && let Poll::Ready(Err(e)) = Pin::new(&mut self.sink).poll_flush(cx)
                        {
                            return Poll::Ready(Err(e));
                        }
                        return Poll::Pending;
                    }
                }
            }
        })
    }
}

fn model_frame(text: String) -> ModelMessage {
    ModelMessage::text(text)
}

fn model_ping() -> ModelMessage {
    ModelMessage::Ping(Default::default())
}

fn client_frame(text: String) -> ClientMessage {
    ClientMessage::text(text)
}

fn client_ping() -> ClientMessage {
    ClientMessage::Ping(Default::default())
}

struct Reactor {
    core: SessionCore,
    thread_id: String,
    upstream: UpstreamRequest,
    agent: Arc<dyn AgentCore>,
    model: Option<(Writer<ModelSink>, ModelStream)>,
    client: Option<(Writer<ClientSink>, ClientStream)>,
    media: Option<(MediaRoute, mpsc::Receiver<Datagram>)>,
    commands: mpsc::Receiver<SessionCommand>,
    stop: Arc<Notify>,
    subscribers: Arc<ThreadSubscribers>,
    attached: Option<tokio::sync::watch::Receiver<bool>>,
    record: Arc<super::record::ThreadRecord>,
    generation: u64,
    observers: Vec<mpsc::Sender<Arc<str>>>,
    task: Option<TaskHandle>,
    _permit: Option<crate::auth::SessionPermit>,
    upstream_call: Option<crate::upstream::call::UpstreamCall>,
    /// Why the session ended (the core's `Close`), told to an OpenAI-protocol client.
    ended: &'static str,
    /// The core asked for a new model socket.
    reconnect: bool,
    /// The next model session's socket, being opened in the background ahead of a rollover.
    successor_opening: Option<tokio::sync::oneshot::Receiver<Result<ModelSocket, String>>>,
    /// ...and once open, held unread until the switch.
    successor: Option<ModelSocket>,
    /// The core asked to switch to the held successor.
    switch_to_successor: bool,
    /// A task outlived the conversation: the agent is told the conversation ended when it does.
    released: bool,
    /// The `traceparent` the starting request came with: delegated work carries it on when
    /// voxgate exports no trace of its own.
    caller_trace: Option<String>,
}

/// What woke the reactor.
enum Wake {
    Connected(Result<Box<ModelSocket>, String>),
    /// The successor socket opened (or failed) in the background.
    Successor(Result<Box<ModelSocket>, String>),
    Model(Option<Result<ModelMessage, tungstenite::Error>>),
    ModelWritten(Result<(), tungstenite::Error>),
    Client(Option<Result<ClientMessage, axum::Error>>),
    ClientWritten(Result<(), axum::Error>),
    Command(Option<SessionCommand>),
    Stop,
    Datagram(Option<Datagram>),
    Agent(AgentUpdate),
    /// The thread's subscribers changed between none and some.
    Attached(bool),
    Timeout,
}

impl Reactor {
    fn new(core: SessionCore, io: SessionIo, control: SessionControl) -> Self {
        Self {
            core,
            thread_id: io.thread_id,
            upstream: io.upstream,
            agent: io.agent,
            model: None,
            client: io.client.map(|ws| {
                let (sink, stream) = ws.split();
                (Writer::new(sink), stream)
            }),
            media: io.media,
            commands: control.commands,
            stop: control.stop,
            subscribers: control.subscribers,
            attached: control.attached,
            record: control.record,
            generation: control.generation,
            observers: Vec::new(),
            task: None,
            _permit: io.permit,
            upstream_call: io.upstream_call,
            ended: "requested",
            reconnect: false,
            successor_opening: None,
            successor: None,
            switch_to_successor: false,
            released: false,
            caller_trace: None,
        }
    }

    async fn drive(mut self) {
        tracing::info!("conversation starting");
        let upstream = self.upstream.clone();
        let connect = ws::connect_with_retries(&upstream);
        tokio::pin!(connect);
        // The timer and the stop signal live across wake-ups: re-registering them on every
        // wake-up costs a lock each in tokio's timer wheel and in the `Notify`.
        let mut timer = Timer::new();
        let stop = self.stop.clone();
        let mut stopped = std::pin::pin!(stop.notified());
        let mut connecting = true;
        let mut counted = self.core.stats();
        let mut now = Instant::now();
        // Results of tasks an earlier conversation on the thread left running.
        let late = self.record.take_late();
        if !late.is_empty() {
            tracing::info!(
                results = late.len(),
                "telling the conversation of tasks that finished after the last one"
            );
            for text in late {
                self.core.handle_input(now, Input::LateResult(text));
            }
        }
        // Its client may have left before it started.
        if let Some(attached) = &mut self.attached
            && !*attached.borrow_and_update()
        {
            self.core.handle_input(now, Input::Attached(false));
        }
        loop {
            if self.carry_out_outputs() {
                break;
            }
            if std::mem::take(&mut self.switch_to_successor) {
                match self.successor.take() {
                    Some(socket) => {
                        let (sink, stream) = socket.split();
                        self.model = Some((Writer::new(sink), stream));
                        self.core
                            .handle_input(Instant::now(), Input::ModelConnected);
                        continue;
                    }
                    // Gone meanwhile: open one now (the core waits for `ModelConnected`).
                    None => self.reconnect = true,
                }
            }
            if std::mem::take(&mut self.reconnect) {
                connect.set(ws::connect_with_retries(&upstream));
                connecting = true;
            }
            // What the last input caused was carried out now: count its audio frames.
            counted = self.count_frames(counted, now);
            let wake = self
                .wait(&mut connect, connecting, &mut timer, stopped.as_mut())
                .await;
            if matches!(wake, Wake::Stop) {
                stopped.set(stop.notified());
            }
            now = Instant::now();
            match wake {
                Wake::Connected(res) => {
                    connecting = false;
                    match res {
                        Ok(socket) => {
                            let (sink, stream) = (*socket).split();
                            self.model = Some((Writer::new(sink), stream));
                            self.core.handle_input(now, Input::ModelConnected);
                        }
                        Err(message) => self
                            .core
                            .handle_input(now, Input::ModelConnectFailed(message)),
                    }
                }
                Wake::Successor(res) => {
                    self.successor_opening = None;
                    match res {
                        Ok(socket) => {
                            self.successor = Some(*socket);
                            self.core.handle_input(now, Input::SuccessorReady);
                        }
                        Err(message) => {
                            self.core.handle_input(now, Input::SuccessorFailed(message))
                        }
                    }
                }
                Wake::Model(msg) => self.on_model_message(now, msg),
                Wake::ModelWritten(Ok(())) | Wake::ClientWritten(Ok(())) => {}
                Wake::ModelWritten(Err(e)) => {
                    self.model = None;
                    let message = format!("failed to send to the realtime model: {e}");
                    self.core.handle_input(now, Input::ModelFailed(message));
                }
                Wake::Client(Some(Ok(ClientMessage::Text(t)))) => {
                    self.core
                        .handle_input(now, Input::ClientText(t.as_str().to_owned()));
                }
                Wake::Client(Some(Ok(ClientMessage::Close(_))) | Some(Err(_)) | None)
                | Wake::ClientWritten(Err(_)) => {
                    self.client = None;
                    self.core.handle_input(now, Input::ClientGone);
                }
                Wake::Client(Some(Ok(_))) => {}
                Wake::Command(Some(cmd)) => self.on_command(now, cmd),
                Wake::Command(None) | Wake::Stop => {
                    self.core
                        .handle_input(now, Input::Command(ClientCommand::Stop));
                }
                Wake::Datagram(Some(d)) => self.on_datagrams(d),
                Wake::Datagram(None) => {
                    self.media = None;
                }
                Wake::Agent(update) => {
                    match &update {
                        AgentUpdate::Message(text) => self.record.push("agent", text),
                        AgentUpdate::End(outcome) => {
                            if let crate::engine::TaskOutcome::Failed(reason) = outcome {
                                self.record
                                    .push("agent", &format!("the task failed: {reason}"));
                            }
                            self.task = None;
                        }
                    }
                    self.core.handle_input(now, Input::Agent(update));
                }
                Wake::Timeout => self.core.handle_input(now, Input::Timeout),
                Wake::Attached(attached) => self.core.handle_input(now, Input::Attached(attached)),
            }
        }
        if !self.released {
            self.agent.conversation_ended(&self.thread_id);
        }
        if let Some(call) = self.upstream_call.take() {
            tokio::spawn(async move { call.hang_up().await });
        }
        self.close_sockets().await;
    }

    /// Wait for the next thing that needs the core.
    async fn wait(
        &mut self,
        connect: &mut Pin<&mut impl Future<Output = Result<ModelSocket, String>>>,
        connecting: bool,
        timer: &mut Timer,
        stopped: Pin<&mut tokio::sync::futures::Notified<'_>>,
    ) -> Wake {
        let armed = timer.arm(self.core.poll_timeout());
        let (model_out, client_out) = self.core.outboxes();
        let (model_writer, model_reader) = split(&mut self.model);
        let (client_writer, client_reader) = split(&mut self.client);
        let model_work = model_writer.as_ref().is_some_and(|w| w.has_work(model_out));
        let client_work = client_writer
            .as_ref()
            .is_some_and(|w| w.has_work(client_out));
        tokio::select! {
            res = connect.as_mut(), if connecting => Wake::Connected(res.map(Box::new)),
            res = successor_opened(self.successor_opening.as_mut()) => Wake::Successor(res),
            msg = next_of(model_reader) => Wake::Model(msg),
            res = async {
                match model_writer {
                    Some(w) => w.flush(model_out, model_frame, model_ping).await,
                    None => std::future::pending().await,
                }
            }, if model_work => Wake::ModelWritten(res),
            msg = next_of(client_reader) => Wake::Client(msg),
            res = async {
                match client_writer {
                    Some(w) => w.flush(client_out, client_frame, client_ping).await,
                    None => std::future::pending().await,
                }
            }, if client_work => Wake::ClientWritten(res),
            cmd = self.commands.recv() => Wake::Command(cmd),
            _ = stopped => Wake::Stop,
            d = recv_datagram(self.media.as_mut().map(|m| &mut m.1)) => Wake::Datagram(d),
            update = next_update(self.task.as_mut()) => Wake::Agent(update),
            attached = attached_change(self.attached.as_mut()) => Wake::Attached(attached),
            _ = timer.sleep.as_mut(), if armed => Wake::Timeout,
        }
    }

    fn on_model_message(
        &mut self,
        now: Instant,
        msg: Option<Result<ModelMessage, tungstenite::Error>>,
    ) {
        let input = match msg {
            Some(Ok(ModelMessage::Text(text))) => {
                return self.core.handle_input(now, Input::ModelText(text.as_str()));
            }
            Some(Ok(ModelMessage::Binary(_))) => {
                Input::ModelViolation("unexpected binary realtime websocket event".into())
            }
            Some(Ok(ModelMessage::Close(_))) => Input::ModelClosed,
            None => Input::ModelDropped,
            Some(Ok(_)) => return self.core.handle_input(now, Input::ModelAlive),
            Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                Input::ModelClosed
            }
            Some(Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            ))) => Input::ModelDropped,
            Some(Err(e)) => Input::ModelFailed(format!("realtime websocket read failed: {e}")),
        };
        self.model = None;
        self.core.handle_input(now, input);
    }

    fn on_command(&mut self, now: Instant, cmd: SessionCommand) {
        match cmd {
            SessionCommand::Client(c) => self.core.handle_input(now, Input::Command(c)),
            SessionCommand::ClientText(t) => self.core.handle_input(now, Input::ClientText(t)),
            SessionCommand::AttachObserver(o) => {
                self.observers.push(o);
                let n = self.observers.len();
                self.core.handle_input(now, Input::Observers(n));
            }
            SessionCommand::LateResult(text) => {
                self.core.handle_input(now, Input::LateResult(text))
            }
            SessionCommand::Renegotiate { offer, reply } => {
                let answered = self.core.renegotiate(now, &offer).map(|(answer, ufrag)| {
                    if let Some((route, _)) = &mut self.media {
                        route.also_route(&ufrag);
                    }
                    answer
                });
                // The asker may have given up; the renegotiation stands either way.
                let _ = reply.send(answered);
            }
        }
    }

    /// Feed a datagram and every one already queued behind it (one wake-up, many datagrams).
    fn on_datagrams(&mut self, first: Datagram) {
        let mut next = Some(first);
        while let Some(d) = next {
            self.core.handle_input(
                d.at,
                Input::Datagram {
                    source: d.source,
                    contents: &d.contents,
                },
            );
            next = self.media.as_mut().and_then(|m| m.1.try_recv().ok());
        }
    }

    /// Carry out the core's outputs; true once the session is over.
    fn carry_out_outputs(&mut self) -> bool {
        let mut closed = false;
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit(t) => {
                    if let Some((route, _)) = &self.media {
                        route.send(t.destination, &t.contents);
                    }
                }
                Output::Notify(n) => self.subscribers.notify(&self.thread_id, &n),
                Output::Said { role, text } => self.record.push(role, &text),
                Output::Observe(text) => {
                    let before = self.observers.len();
                    self.observers.retain(|o| {
                        !matches!(
                            o.try_send(text.clone()),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    });
                    if self.observers.len() != before {
                        let n = self.observers.len();
                        self.core.handle_input(Instant::now(), Input::Observers(n));
                    }
                }
                Output::Agent(AgentCommand::Start { handoff_id, text }) => {
                    self.task = Some(self.agent.start(AgentTask {
                        thread_id: self.thread_id.clone(),
                        handoff_id,
                        text,
                        traceparent: crate::telemetry::handed_on(
                            &tracing::Span::current(),
                            self.caller_trace.as_deref(),
                        ),
                    }));
                }
                Output::Agent(AgentCommand::Steer { text }) => {
                    if let Some(t) = &self.task {
                        t.steer(text);
                    }
                }
                Output::Agent(AgentCommand::Cancel) => {
                    if let Some(mut t) = self.task.take() {
                        t.cancel();
                    }
                }
                Output::Agent(AgentCommand::Release) => {
                    // This conversation is ending: the result waits for the next one.
                    self.record.close_inbox(self.generation);
                    if let Some(t) = self.task.take() {
                        let (record, subscribers) = (self.record.clone(), self.subscribers.clone());
                        let limit = self.core.task_timeout();
                        let (thread_id, agent) = (self.thread_id.clone(), self.agent.clone());
                        tokio::spawn(async move {
                            super::late::finish_released_task(
                                t,
                                limit,
                                record,
                                subscribers,
                                thread_id.clone(),
                            )
                            .await;
                            agent.conversation_ended(&thread_id);
                        });
                        self.released = true;
                    }
                }
                Output::PingModel => {
                    if let Some((writer, _)) = &mut self.model {
                        writer.ping = true;
                    }
                }
                Output::DropModel => self.model = None,
                Output::ConnectModel => self.reconnect = true,
                Output::OpenSuccessor => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let upstream = self.upstream.clone();
                    // Ends by itself: bounded by the connect timeout and attempts; a result
                    // nobody waits for any more is dropped with its socket.
                    tokio::spawn(async move {
                        let _ = tx.send(ws::connect_with_retries(&upstream).await);
                    });
                    self.successor_opening = Some(rx);
                }
                Output::SwitchToSuccessor => {
                    self.model = None;
                    self.switch_to_successor = true;
                }
                Output::DropSuccessor => {
                    self.successor_opening = None;
                    self.successor = None;
                }
                Output::Close(why) => {
                    tracing::debug!(why, "session over");
                    self.record.close_inbox(self.generation);
                    self.ended = why;
                    closed = true;
                }
            }
        }
        closed
    }

    /// Count the audio frames carried since `before` and how long the session held them since
    /// it woke; returns the new count.
    fn count_frames(
        &self,
        before: super::core::CoreStats,
        woke: Instant,
    ) -> super::core::CoreStats {
        let after = self.core.stats();
        let held = woke.elapsed().as_secs_f64();
        for (direction, n) in [
            (
                &*metrics::TO_MODEL,
                after.audio_to_model - before.audio_to_model,
            ),
            (
                &*metrics::TO_CLIENT,
                after.audio_to_client - before.audio_to_client,
            ),
        ] {
            for _ in 0..n {
                direction.frames.inc();
                direction.processing.observe(held);
            }
        }
        after
    }

    /// The conversation is over: deliver what the client is still owed (briefly), then close.
    async fn close_sockets(mut self) {
        let stalled = self.core.client_stalled();
        let (model_out, client_out) = self.core.outboxes();
        if let Some((mut writer, _)) = self.client.take() {
            let farewell = if stalled {
                axum::extract::ws::CloseFrame {
                    code: 1008,
                    reason: "client stopped reading".into(),
                }
            } else {
                close_frame(self.ended)
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                use futures_util::SinkExt;
                let _ = writer.flush(client_out, client_frame, client_ping).await;
                let _ = writer.sink.send(ClientMessage::Close(Some(farewell))).await;
                let _ = writer.sink.close().await;
            })
            .await;
        }
        if let Some((mut writer, _)) = self.model.take() {
            // What the conversation still owes the model (GPT-Live's `session.close`) goes
            // first, briefly.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = writer.flush(model_out, model_frame, model_ping).await;
                let _ = futures_util::SinkExt::close(&mut writer.sink).await;
            })
            .await;
        }
    }
}

/// The close frame an OpenAI-protocol client gets: 1000 when asked to end, 1001 when the model
/// went away, 1011 on an error; the reason names it.
fn close_frame(why: &'static str) -> axum::extract::ws::CloseFrame {
    let code = match why {
        "requested" => 1000,
        "transport_closed" => 1001,
        _ => 1011,
    };
    axum::extract::ws::CloseFrame {
        code,
        reason: why.into(),
    }
}

/// A socket's writer and reader, borrowed apart.
fn split<W, R>(socket: &mut Option<(W, R)>) -> (Option<&mut W>, Option<&mut R>) {
    match socket {
        Some((w, r)) => (Some(w), Some(r)),
        None => (None, None),
    }
}

async fn next_of<S: Stream + Unpin>(stream: Option<&mut S>) -> Option<S::Item> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// The next change of a thread's subscribers between none and some (never, if not watched).
async fn attached_change(rx: Option<&mut tokio::sync::watch::Receiver<bool>>) -> bool {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    match rx.changed().await {
        Ok(()) => *rx.borrow_and_update(),
        Err(_) => std::future::pending().await,
    }
}

async fn recv_datagram(rx: Option<&mut mpsc::Receiver<Datagram>>) -> Option<Datagram> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn successor_opened(
    rx: Option<&mut tokio::sync::oneshot::Receiver<Result<ModelSocket, String>>>,
) -> Result<Box<ModelSocket>, String> {
    match rx {
        Some(rx) => match rx.await {
            Ok(res) => res.map(Box::new),
            Err(_) => Err("the successor connect task ended".into()),
        },
        None => std::future::pending().await,
    }
}

async fn next_update(task: Option<&mut TaskHandle>) -> AgentUpdate {
    match task {
        Some(t) => t.next().await,
        None => std::future::pending().await,
    }
}

/// The session's one timer, moved only when the core's deadline changes.
struct Timer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    at: Option<Instant>,
}

impl Timer {
    fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            at: None,
        }
    }

    /// Point the timer at `deadline`; false when there is none.
    fn arm(&mut self, deadline: Option<Instant>) -> bool {
        if let Some(at) = deadline
            && self.at != Some(at)
        {
            self.sleep.as_mut().reset(at.into());
            self.at = Some(at);
        }
        deadline.is_some()
    }
}
