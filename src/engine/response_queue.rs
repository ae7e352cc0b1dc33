//! `ResponseQueue`: the one-active-response rule toward a v2 model (protocol.md §3.3). A request
//! made while a response is active waits, whole, and is sent when the active one ends, one per
//! response: a client's own `response.create` keeps its body (`instructions`, `conversation`,
//! `metadata`, modalities) and goes out exactly as the client sent it; voxgate's own bare
//! requests coalesce into one. At most [`MAX_WAITING`] requests wait; past that a new one is
//! dropped and counted (a client that queues that many is not waiting for answers).

use std::collections::VecDeque;

/// Requests that may wait for the active response at most.
pub const MAX_WAITING: usize = 16;

/// One `response.create` to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRequest {
    /// voxgate's own `{"type":"response.create"}` (after a delegation's output, say).
    Bare,
    /// A client's event, byte for byte.
    Client(String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResponseQueue {
    active: bool,
    waiting: VecDeque<CreateRequest>,
    /// The request sent last, until the model says a response was created (or refused it).
    in_flight: Option<CreateRequest>,
    /// Requests that had to wait for an active response (a running count for metrics).
    deferred: u64,
    /// Requests dropped because [`MAX_WAITING`] were already waiting.
    dropped: u64,
}

impl ResponseQueue {
    /// Ask for a response; returns the request to send now, if it may go now.
    pub fn request(&mut self, req: CreateRequest) -> Option<CreateRequest> {
        if !self.active {
            self.active = true;
            self.in_flight = Some(req.clone());
            return Some(req);
        }
        self.deferred += 1;
        if req == CreateRequest::Bare && self.waiting.contains(&CreateRequest::Bare) {
            return None;
        }
        if self.waiting.len() >= MAX_WAITING {
            self.dropped += 1;
            return None;
        }
        self.waiting.push_back(req);
        None
    }

    /// The model announced a response (ours or one its VAD started).
    pub fn on_created(&mut self) {
        self.active = true;
        self.in_flight = None;
    }

    /// A response finished or was cancelled; returns the waiting request to send now, if any.
    pub fn on_finished(&mut self) -> Option<CreateRequest> {
        self.active = false;
        let next = self.waiting.pop_front()?;
        self.active = true;
        self.in_flight = Some(next.clone());
        Some(next)
    }

    /// The model refused a `response.create` because one was already active: the refused
    /// request waits at the front, to go when that response ends.
    pub fn on_race_error(&mut self) {
        self.deferred += 1;
        self.active = true;
        let refused = self.in_flight.take().unwrap_or(CreateRequest::Bare);
        if !(refused == CreateRequest::Bare && self.waiting.contains(&CreateRequest::Bare)) {
            self.waiting.push_front(refused);
        }
    }

    /// The model socket was lost: no response is active any more; a request in flight that the
    /// model never confirmed goes again first (voxgate's own requests coalesce as ever).
    pub fn on_model_lost(&mut self) {
        self.active = false;
        if let Some(req) = self.in_flight.take()
            && !(req == CreateRequest::Bare && self.waiting.contains(&CreateRequest::Bare))
        {
            self.waiting.push_front(req);
        }
    }

    /// Send the first waiting request now, if none is active (a new model session is ready).
    pub fn resume(&mut self) -> Option<CreateRequest> {
        if self.active {
            return None;
        }
        self.on_finished()
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// How many requests so far waited for an active response.
    pub fn deferred(&self) -> u64 {
        self.deferred
    }

    /// How many requests were dropped because too many were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn is_pending(&self) -> bool {
        !self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> CreateRequest {
        CreateRequest::Client(s.into())
    }

    #[test]
    fn waiting_client_requests_keep_their_bodies_and_order_and_bare_ones_coalesce() {
        let mut q = ResponseQueue::default();
        assert_eq!(q.request(CreateRequest::Bare), Some(CreateRequest::Bare));
        assert_eq!(q.request(client("a")), None);
        assert_eq!(q.request(CreateRequest::Bare), None);
        assert_eq!(q.request(client("b")), None);
        assert_eq!(q.request(CreateRequest::Bare), None);
        assert_eq!(q.deferred(), 4);
        assert_eq!(q.on_finished(), Some(client("a")));
        assert_eq!(q.on_finished(), Some(CreateRequest::Bare));
        assert_eq!(q.on_finished(), Some(client("b")));
        assert_eq!(q.on_finished(), None);
        assert!(!q.is_active());
    }

    #[test]
    fn a_refused_request_goes_again_first_when_the_active_response_ends() {
        let mut q = ResponseQueue::default();
        assert_eq!(q.request(client("mine")), Some(client("mine")));
        q.request(client("next"));
        q.on_race_error();
        assert_eq!(q.on_finished(), Some(client("mine")));
        q.on_created();
        assert_eq!(q.on_finished(), Some(client("next")));
    }

    #[test]
    fn past_the_bound_new_requests_are_dropped_and_counted() {
        let mut q = ResponseQueue::default();
        q.request(CreateRequest::Bare);
        for i in 0..MAX_WAITING + 3 {
            q.request(client(&i.to_string()));
        }
        assert_eq!(q.dropped(), 3);
        let mut sent = 0;
        while q.on_finished().is_some() {
            sent += 1;
        }
        assert_eq!(sent, MAX_WAITING);
    }
}
