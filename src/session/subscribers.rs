//! `ThreadSubscribers`: the connections that receive a thread's notifications. A notification is
//! serialized once and offered to every subscriber's bounded outbound queue without waiting:
//! audio is dropped for a full queue (counted); a connection too slow to take a control
//! notification is disconnected rather than allowed to stall the session.

use crate::protocol::rpc::Notification;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc, watch};

/// One message for a connection's writer.
pub type Outbound = Arc<str>;

#[derive(Clone)]
pub struct Subscriber {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Outbound>,
    pub opt_out: Arc<HashSet<String>>,
    /// Signalled when the connection must be closed for being too slow.
    pub kill: Arc<Notify>,
}

pub struct ThreadSubscribers {
    list: Mutex<Vec<Subscriber>>,
    /// Whether the list has anyone: the thread's session watches it to detach and reattach.
    attached: watch::Sender<bool>,
}

impl Default for ThreadSubscribers {
    fn default() -> Self {
        Self {
            list: Mutex::default(),
            attached: watch::Sender::new(false),
        }
    }
}

impl ThreadSubscribers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tell the watcher whether anyone is subscribed now (called with the list locked).
    fn publish(&self, list: &[Subscriber]) {
        let now = !list.is_empty();
        self.attached
            .send_if_modified(|a| std::mem::replace(a, now) != now);
    }

    /// Follows whether the thread has subscribers (marked seen as of now).
    pub fn watch_attached(&self) -> watch::Receiver<bool> {
        self.attached.subscribe()
    }

    pub fn add(&self, sub: Subscriber) {
        let mut list = self.lock();
        if !list.iter().any(|s| s.conn_id == sub.conn_id) {
            list.push(sub);
        }
        self.publish(&list);
    }

    /// Remove a connection: whether it was a subscriber, and whether none is left.
    pub fn remove(&self, conn_id: u64) -> (bool, bool) {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|s| s.conn_id != conn_id);
        self.publish(&list);
        (list.len() != before, list.is_empty())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn notify(&self, thread_id: &str, n: &Notification) {
        let method = n.method();
        let mut text: Option<Outbound> = None;
        let droppable = n.is_droppable();
        let mut list = self.lock();
        list.retain(|sub| {
            if sub.opt_out.contains(method) {
                return true;
            }
            let msg = text
                .get_or_insert_with(|| {
                    Arc::from(n.to_wire(thread_id, crate::protocol::rpc::now_ms()))
                })
                .clone();
            match sub.tx.try_send(msg) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) if droppable => {
                    crate::metrics::AUDIO_FRAMES_DROPPED.inc();
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        conn = sub.conn_id,
                        "closing a connection too slow to read its notifications"
                    );
                    sub.kill.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.publish(&list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AudioChunk;
    use crate::protocol::rpc::CloseReason;

    fn sub(conn_id: u64, cap: usize, opt_out: &[&str]) -> (Subscriber, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(cap);
        let sub = Subscriber {
            conn_id,
            tx,
            opt_out: Arc::new(opt_out.iter().map(|s| (*s).to_owned()).collect()),
            kill: Arc::new(Notify::new()),
        };
        (sub, rx)
    }

    fn audio() -> Notification {
        Notification::OutputAudioDelta(AudioChunk {
            data: "AAAA".into(),
            sample_rate: 24000,
            num_channels: 1,
            samples_per_channel: None,
            item_id: None,
        })
    }

    #[test]
    fn full_queue_drops_audio_but_keeps_the_subscriber() {
        let subs = ThreadSubscribers::default();
        let (s, mut rx) = sub(1, 1, &[]);
        subs.add(s);
        subs.notify("t", &audio());
        subs.notify("t", &audio());
        assert_eq!(subs.len(), 1);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn slow_subscriber_is_disconnected_on_control_and_others_still_get_it() {
        let subs = ThreadSubscribers::default();
        let (slow, _slow_rx) = sub(1, 1, &[]);
        let kill = slow.kill.clone();
        let (fast, mut fast_rx) = sub(2, 8, &[]);
        subs.add(slow);
        subs.add(fast);
        let closed = Notification::Closed {
            reason: CloseReason::Requested,
        };
        subs.notify("t", &closed);
        subs.notify("t", &closed);
        assert_eq!(subs.len(), 1, "the slow connection was dropped");
        assert!(kill.notified().now_or_never_ready());
        // codex's envelope: the notification, stamped with when it was emitted.
        let got: serde_json::Value =
            serde_json::from_str(&fast_rx.try_recv().expect("delivered")).expect("json");
        let mut want: serde_json::Value = serde_json::from_str(&closed.to_json("t")).expect("json");
        assert!(
            got["emittedAtMs"].as_u64().is_some_and(|ms| ms > 0),
            "{got}"
        );
        want["emittedAtMs"] = got["emittedAtMs"].clone();
        assert_eq!(got, want);
        assert!(fast_rx.try_recv().is_ok());
    }

    #[test]
    fn opted_out_methods_are_not_offered() {
        let subs = ThreadSubscribers::default();
        let (s, mut rx) = sub(1, 8, &["thread/realtime/outputAudio/delta"]);
        subs.add(s);
        subs.notify("t", &audio());
        assert!(rx.try_recv().is_err());
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }
    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
