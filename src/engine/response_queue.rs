//! `ResponseQueue`: the one-active-response rule toward a v2 model (protocol.md §3.3). Requests
//! while a response is active coalesce into one pending request, sent when the active one ends.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseQueue {
    active: bool,
    pending: bool,
    /// Requests that had to wait for an active response (a running count for metrics).
    deferred: u64,
}

impl ResponseQueue {
    /// Ask for a response; returns true when `response.create` must be sent now.
    pub fn request(&mut self) -> bool {
        if self.active {
            self.pending = true;
            self.deferred += 1;
            false
        } else {
            self.active = true;
            true
        }
    }

    /// The model announced a response (ours or one its VAD started).
    pub fn on_created(&mut self) {
        self.active = true;
    }

    /// A response finished or was cancelled; returns true when the pending request must go now.
    pub fn on_finished(&mut self) -> bool {
        self.active = false;
        if std::mem::take(&mut self.pending) {
            self.active = true;
            true
        } else {
            false
        }
    }

    /// The model rejected a `response.create` because one was already active.
    pub fn on_race_error(&mut self) {
        self.deferred += 1;
        self.active = true;
        self.pending = true;
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// How many requests so far waited for an active response.
    pub fn deferred(&self) -> u64 {
        self.deferred
    }

    pub fn is_pending(&self) -> bool {
        self.pending
    }
}
