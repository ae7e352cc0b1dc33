//! `ThreadSubscribers`: the connections that receive a thread's notifications. A notification is
//! serialized once and offered to every subscriber's bounded outbound queue without waiting:
//! audio is dropped for a full queue (counted); a connection too slow to take a control
//! notification is disconnected rather than allowed to stall the session.

use crate::protocol::rpc::Notification;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, mpsc};

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

#[derive(Default)]
pub struct ThreadSubscribers {
    list: Mutex<Vec<Subscriber>>,
}

impl ThreadSubscribers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.list
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn add(&self, sub: Subscriber) {
        let mut list = self.lock();
        if !list.iter().any(|s| s.conn_id == sub.conn_id) {
            list.push(sub);
        }
    }

    /// Remove a connection; true when no subscriber is left.
    pub fn remove(&self, conn_id: u64) -> bool {
        let mut list = self.lock();
        list.retain(|s| s.conn_id != conn_id);
        list.is_empty()
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
        self.lock().retain(|sub| {
            if sub.opt_out.contains(method) {
                return true;
            }
            let msg = text
                .get_or_insert_with(|| Arc::from(n.to_json(thread_id)))
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
    }
}
