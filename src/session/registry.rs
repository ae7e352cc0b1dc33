//! `Sessions`: (owner, thread id) → running conversation and its subscribers. Every thread
//! belongs to the principal (API key) that made it: thread ids are namespaced per owner, so two
//! keys may both use `demo` and neither reaches the other's; a stranger's lookup finds nothing,
//! exactly as for a thread that does not exist. Starting a thread that runs replaces the old
//! conversation: it is stopped and closes (`closed{requested}`, as codex does) before the new one
//! starts; a session that ends removes itself only if it is still the current one (generation
//! check). Faces reach a session through
//! a [`SessionSender`]: a bounded command queue (audio that does not fit is dropped and counted;
//! control waits for room, which the reactor makes at once) and a stop signal that never fills.

use super::core::SessionCore;
use super::reactor::{self, SessionCommand, SessionControl, SessionIo};
use super::record::ThreadRecord;
use super::subscribers::{Subscriber, ThreadSubscribers};
use crate::engine::ClientCommand;
use crate::protocol::rpc::{CloseReason, Notification};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Notify, mpsc};

/// A face's way into one running session.
#[derive(Clone)]
pub struct SessionSender {
    commands: mpsc::Sender<SessionCommand>,
    stop: Arc<Notify>,
}

impl SessionSender {
    /// Hand audio to the session without waiting: dropped (counted) when its queue is full.
    pub fn append_audio(&self, chunk: crate::protocol::AudioChunk) -> Delivery {
        match self
            .commands
            .try_send(SessionCommand::Client(ClientCommand::AppendAudio(chunk)))
        {
            Ok(()) => Delivery::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::AUDIO_FRAMES_DROPPED.inc();
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::NotRunning,
        }
    }

    /// Hand a control command to the session (waits for room; never dropped).
    pub async fn send(&self, cmd: SessionCommand) -> Delivery {
        match self.commands.send(cmd).await {
            Ok(()) => Delivery::Delivered,
            Err(_) => Delivery::NotRunning,
        }
    }

    /// End the session with `requested`: in order behind queued commands when there is room,
    /// else at once.
    pub fn stop(&self) {
        if self
            .commands
            .try_send(SessionCommand::Client(ClientCommand::Stop))
            .is_err()
        {
            self.stop.notify_one();
        }
    }

    pub fn is_running(&self) -> bool {
        !self.commands.is_closed()
    }
}

/// What a running session is, for the routes that may act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A WebRTC call (relay or passthrough): hang-up and sideband act on it.
    Call,
    /// A JSON-RPC or OpenAI-protocol conversation.
    Conversation,
}

/// The registry's key: who owns the thread, and its id.
type ThreadKey = (String, String);

fn key(owner: &str, thread_id: &str) -> ThreadKey {
    (owner.to_owned(), thread_id.to_owned())
}

struct SessionHandle {
    generation: u64,
    kind: SessionKind,
    sender: SessionSender,
    task: tokio::task::JoinHandle<()>,
}

/// How long a replaced conversation has to close (`closed{requested}`) before its successor
/// starts anyway (it is aborted then).
const REPLACED_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

struct ThreadEntry {
    /// When the thread was first seen, in seconds since the Unix epoch.
    created_at: u64,
    subscribers: Arc<ThreadSubscribers>,
    session: Option<SessionHandle>,
    /// What was said on the thread, kept past its conversation for the retention period.
    record: Arc<ThreadRecord>,
    /// When its last conversation ended (a thread with nobody left is forgotten after the
    /// retention period).
    ended_at: Option<std::time::Instant>,
}

impl Default for ThreadEntry {
    fn default() -> Self {
        Self {
            created_at: crate::protocol::rpc::now_ms() / 1000,
            subscribers: Arc::default(),
            session: None,
            record: Arc::default(),
            ended_at: None,
        }
    }
}

/// What `thread/unsubscribe` did (codex's `ThreadUnsubscribeStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    Unsubscribed,
    NotSubscribed,
    NotLoaded,
}

impl Unsubscribed {
    pub fn as_str(self) -> &'static str {
        match self {
            Unsubscribed::Unsubscribed => "unsubscribed",
            Unsubscribed::NotSubscribed => "notSubscribed",
            Unsubscribed::NotLoaded => "notLoaded",
        }
    }
}

/// What a node holds, for the cluster's ownership records.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    /// `(call_id, owner)` of every running call.
    pub calls: Vec<(String, String)>,
    /// `(owner, thread_id)` of every thread known here.
    pub threads: Vec<(String, String)>,
}

/// Threads with no conversation and no subscriber kept for their record at most.
const MAX_ENDED_THREADS: usize = 1024;

/// A thread's transcript as read by its owner.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transcript {
    pub thread_id: String,
    pub running: bool,
    pub turns: Vec<super::record::Turn>,
    /// Older turns dropped to stay within bounds.
    pub truncated: u64,
}

/// Result of handing a command to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Audio dropped because the session's input queue is full.
    Dropped,
    NotRunning,
}

#[derive(Default)]
pub struct Sessions {
    threads: Mutex<HashMap<ThreadKey, ThreadEntry>>,
    /// How long a thread whose conversation ended keeps its record.
    retention: std::time::Duration,
    generation: AtomicU64,
    /// Woken whenever a session ends (drain waits on it).
    ended: tokio::sync::Notify,
}

impl Sessions {
    pub fn new() -> Arc<Self> {
        Self::with_retention(std::time::Duration::from_secs(60))
    }

    /// A registry whose ended threads keep their records for `retention`.
    pub fn with_retention(retention: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            retention,
            ..Self::default()
        })
    }

    /// `owner`'s `thread_id` transcript: while it runs and for the retention period after.
    pub fn transcript(&self, owner: &str, thread_id: &str) -> Option<Transcript> {
        let mut threads = self.lock();
        self.forget_expired(&mut threads);
        let entry = threads.get(&key(owner, thread_id))?;
        let (turns, truncated) = entry.record.read();
        Some(Transcript {
            thread_id: thread_id.to_owned(),
            running: entry.session.is_some(),
            turns,
            truncated,
        })
    }

    /// Forget ended threads past their retention (and the oldest beyond the bound).
    fn forget_expired(&self, threads: &mut HashMap<ThreadKey, ThreadEntry>) {
        let idle = |e: &ThreadEntry| e.session.is_none() && e.subscribers.is_empty();
        threads.retain(|_, e| {
            !(idle(e) && e.ended_at.is_none_or(|at| at.elapsed() >= self.retention))
        });
        let mut ended: Vec<(std::time::Instant, ThreadKey)> = threads
            .iter()
            .filter(|(_, e)| idle(e))
            .filter_map(|(k, e)| Some((e.ended_at?, k.clone())))
            .collect();
        if ended.len() > MAX_ENDED_THREADS {
            ended.sort();
            for (_, k) in &ended[..ended.len() - MAX_ENDED_THREADS] {
                threads.remove(k);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadKey, ThreadEntry>> {
        self.threads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Make `sub` a subscriber of `owner`'s `thread_id`; returns the thread's subscriber list.
    pub fn subscribe(
        &self,
        owner: &str,
        thread_id: &str,
        sub: Subscriber,
    ) -> Arc<ThreadSubscribers> {
        let mut threads = self.lock();
        let entry = threads.entry(key(owner, thread_id)).or_default();
        entry.subscribers.add(sub);
        entry.subscribers.clone()
    }

    /// `owner`'s thread `thread_id` as a client sees it: when it was created and whether a
    /// conversation runs on it; None for a thread the key does not have.
    pub fn thread_state(&self, owner: &str, thread_id: &str) -> Option<(u64, bool)> {
        self.lock()
            .get(&key(owner, thread_id))
            .map(|e| (e.created_at, e.session.is_some()))
    }

    /// Take connection `conn_id` off `owner`'s thread (`thread/unsubscribe`). A conversation
    /// held by its subscribers detaches when this was the last one, as on a disconnect. Also
    /// says whether the thread is gone now (nobody on it, nothing running, no record to keep).
    pub fn unsubscribe(&self, owner: &str, thread_id: &str, conn_id: u64) -> (Unsubscribed, bool) {
        let mut threads = self.lock();
        let k = key(owner, thread_id);
        let Some(entry) = threads.get(&k) else {
            return (Unsubscribed::NotLoaded, false);
        };
        let (removed, none_left) = entry.subscribers.remove(conn_id);
        let unloaded = none_left && entry.session.is_none() && entry.ended_at.is_none();
        if unloaded {
            threads.remove(&k);
        }
        let status = if removed {
            Unsubscribed::Unsubscribed
        } else {
            Unsubscribed::NotSubscribed
        };
        (status, unloaded && removed)
    }

    /// Forget a connection everywhere (it disconnected). A JSON-RPC conversation whose last
    /// subscriber this was sees it (it watches its subscribers) and detaches: it runs on for its
    /// grace period, then ends, so no key slot is held by nobody for long.
    pub fn unsubscribe_all(&self, conn_id: u64) {
        self.lock().retain(|_, entry| {
            let (_, none_left) = entry.subscribers.remove(conn_id);
            entry.session.is_some() || !none_left
        });
    }

    pub fn notify(&self, owner: &str, thread_id: &str, n: &Notification) {
        let subs = self
            .lock()
            .get(&key(owner, thread_id))
            .map(|e| e.subscribers.clone());
        if let Some(subs) = subs {
            subs.notify(thread_id, n);
        }
    }

    /// What this node holds, for the cluster's ownership records: `(call_id, owner)` of every
    /// running call and `(owner, thread_id)` of every thread known here.
    pub fn holdings(&self) -> Holdings {
        let threads = self.lock();
        let calls = threads
            .iter()
            .filter(|(_, e)| {
                e.session
                    .as_ref()
                    .is_some_and(|s| s.kind == SessionKind::Call)
            })
            .map(|((owner, id), _)| (id.clone(), owner.clone()))
            .collect();
        Holdings {
            calls,
            threads: threads.keys().cloned().collect(),
        }
    }

    /// (owner, thread id) of every running conversation.
    pub fn running_ids(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.session.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Resolves once no conversation runs.
    pub async fn wait_idle(&self) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.running_count() == 0 {
                return;
            }
            ended.await;
        }
    }

    pub fn running_count(&self) -> usize {
        self.lock().values().filter(|e| e.session.is_some()).count()
    }

    /// Whether `owner` has a thread `thread_id` at all: running, subscribed to, or ended within
    /// the retention period.
    pub fn knows(&self, owner: &str, thread_id: &str) -> bool {
        self.lock().contains_key(&key(owner, thread_id))
    }

    pub fn is_running(&self, owner: &str, thread_id: &str) -> bool {
        self.lock()
            .get(&key(owner, thread_id))
            .is_some_and(|e| e.session.is_some())
    }

    /// The running session of `owner`'s `thread_id`, to hold on to (no registry lock per frame).
    pub fn sender(&self, owner: &str, thread_id: &str) -> Option<SessionSender> {
        self.lock()
            .get(&key(owner, thread_id))
            .and_then(|e| e.session.as_ref())
            .map(|s| s.sender.clone())
    }

    /// A running call named `call_id`: `owner`'s, or anyone's for an operator (`None`).
    pub fn call(&self, owner: Option<&str>, call_id: &str) -> Option<SessionSender> {
        self.lock()
            .iter()
            .filter(|((o, t), _)| t == call_id && owner.is_none_or(|owner| owner == o))
            .filter_map(|(_, e)| e.session.as_ref())
            .find(|s| s.kind == SessionKind::Call)
            .map(|s| s.sender.clone())
    }

    /// Start (or replace) `owner`'s conversation `io.thread_id`. `queue` bounds its command
    /// queue; `held_by_subscribers`: it detaches when the thread's last subscriber leaves.
    pub fn start(
        self: &Arc<Self>,
        owner: &str,
        kind: SessionKind,
        core: SessionCore,
        io: SessionIo,
        queue: usize,
        held_by_subscribers: bool,
    ) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (commands_tx, commands_rx) = mpsc::channel(queue.max(16));
        let stop = Arc::new(Notify::new());
        let thread_id = io.thread_id.clone();
        let thread_key = key(owner, &thread_id);
        let mut threads = self.lock();
        let entry = threads.entry(thread_key.clone()).or_default();
        // As codex does: the conversation being replaced closes first (`closed{requested}`, its
        // timeline and metrics), then the new one starts.
        let replaced = entry.session.take().map(|old| {
            tracing::info!(thread_id = %thread_id, "replacing running conversation");
            old.sender.stop();
            old.task
        });
        entry.ended_at = None;
        let control = SessionControl {
            commands: commands_rx,
            stop: stop.clone(),
            subscribers: entry.subscribers.clone(),
            record: entry.record.clone(),
            attached: held_by_subscribers.then(|| entry.subscribers.watch_attached()),
            generation,
        };
        entry.record.open_inbox(generation, commands_tx.downgrade());
        let registry: Weak<Sessions> = Arc::downgrade(self);
        // The request that starts a conversation (if any) is its trace parent.
        let started_by = tracing::Span::current();
        let caller_trace = crate::telemetry::caller_traceparent();
        let task = tokio::spawn(async move {
            if let Some(mut old) = replaced
                && tokio::time::timeout(REPLACED_CLOSE_WITHIN, &mut old)
                    .await
                    .is_err()
            {
                tracing::warn!("a replaced conversation did not close in time; aborting it");
                old.abort();
            }
            reactor::run(core, io, control, &started_by, caller_trace).await;
            if let Some(reg) = registry.upgrade() {
                reg.finished(&thread_key, generation);
            }
        });
        entry.session = Some(SessionHandle {
            generation,
            kind,
            sender: SessionSender {
                commands: commands_tx,
                stop,
            },
            task,
        });
    }

    fn finished(&self, thread_key: &ThreadKey, generation: u64) {
        let mut threads = self.lock();
        if let Some(entry) = threads.get_mut(thread_key)
            && entry
                .session
                .as_ref()
                .is_some_and(|s| s.generation == generation)
        {
            entry.session = None;
            entry.ended_at = Some(std::time::Instant::now());
        }
        self.forget_expired(&mut threads);
        drop(threads);
        self.ended.notify_waiters();
    }

    pub async fn send_command(
        &self,
        owner: &str,
        thread_id: &str,
        cmd: SessionCommand,
    ) -> Delivery {
        match self.sender(owner, thread_id) {
            Some(s) => s.send(cmd).await,
            None => Delivery::NotRunning,
        }
    }

    /// Stop `owner`'s thread: the running session closes with `requested`; an idle thread
    /// still answers `closed{requested}`.
    pub fn stop(&self, owner: &str, thread_id: &str) {
        match self.sender(owner, thread_id) {
            Some(s) => s.stop(),
            None => self.notify(
                owner,
                thread_id,
                &Notification::Closed {
                    reason: CloseReason::Requested,
                },
            ),
        }
    }

    /// Stop every running session (shutdown).
    pub fn stop_all(&self) {
        for (owner, id) in self.running_ids() {
            self.stop(&owner, &id);
        }
    }
}
