//! The model side of a `SessionCore`: the socket's life — heard or silent (the idle ping and
//! timeout), lost and reopened (reconnect), retired at a turn boundary (rollover) — and hiding a
//! successor model session's announcements from clients that speak the protocol themselves.

use super::{Output, SUCCESSOR_LEAD, SessionCore, Successor};
use crate::engine::Input as EngineInput;
use crate::metrics;
use crate::session::reconnect::AttemptFailed;
use std::time::Instant;

impl SessionCore {
    /// A model socket opened: the first, a reconnect's or a rollover's successor.
    pub(super) fn on_model_connected(&mut self, now: Instant) {
        self.heard_model();
        self.quiet_session_events = self.model_was_connected;
        self.model_was_connected = true;
        // A successor opened ahead is as old as its socket: the service counts from then.
        self.model_session_since = Some(self.switched_since.take().unwrap_or(now));
        if std::mem::take(&mut self.rolling_over) {
            metrics::MODEL_ROLLOVERS.inc();
            tracing::info!("model session rolled over");
        }
        if let Some(gap) = self.reconnector.connected(now) {
            metrics::UPSTREAM_RECONNECTS.inc();
            tracing::info!(
                gap_ms = gap.as_millis() as u64,
                "realtime model connection reopened"
            );
        }
        self.engine.handle_input(EngineInput::Connected);
    }

    /// Opening a successor (rollover) or a replacement (reconnect) socket failed.
    pub(super) fn on_reopen_failed(&mut self, now: Instant, message: String) {
        if std::mem::take(&mut self.rolling_over) {
            return self.model_lost(format!("opening the next model session failed: {message}"));
        }
        if let AttemptFailed::GiveUp(message) = self.reconnector.failed(now, &message) {
            self.engine
                .handle_input(EngineInput::UpstreamFailed(message));
        }
    }

    /// The model socket is lost: reopened if the policy allows (the conversation goes on and the
    /// new model session is told it), else the conversation ends with the reason.
    pub(super) fn model_lost(&mut self, reason: String) {
        if self.closed {
            return;
        }
        self.model_out.clear();
        self.model_heard = None;
        self.pinged = false;
        self.out.push_back(Output::DropModel);
        self.model_session_since = None;
        self.rolling_over = false;
        self.switched_since = None;
        if std::mem::replace(&mut self.successor, Successor::None) != Successor::None {
            self.out.push_back(Output::DropSuccessor);
        }
        if self.model_was_connected && self.reconnector.lost(self.now, reason.clone()) {
            self.engine.handle_input(EngineInput::ModelLost(reason));
        } else {
            self.engine
                .handle_input(EngineInput::UpstreamFailed(reason));
        }
    }
    /// Whether `text` is a successor model session announcing itself: its `session.created`,
    /// the `session.updated` for the replayed config, the events of the replayed history items.
    /// The first other event ends the announcements (so only a reopened session's first events
    /// are looked into).
    pub(super) fn successor_announcement(&mut self, text: &str) -> bool {
        let v = serde_json::from_str::<serde_json::Value>(text).unwrap_or_default();
        let ty = v
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let replayed_item = ty.starts_with("conversation.item.")
            && v.pointer("/item/id")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|id| id.starts_with(crate::engine::HISTORY_ITEM_PREFIX));
        let announcement = matches!(ty, "session.created" | "session.updated") || replayed_item;
        if !announcement {
            self.quiet_session_events = false;
        }
        announcement
    }
    /// When the current model session is old enough to roll over (if it is not doing so).
    pub(super) fn rollover_due_at(&self) -> Option<Instant> {
        let since = self.model_session_since?;
        Some(since + self.cfg.rollover_after?)
    }
    /// When the successor socket is opened: `SUCCESSOR_LEAD` before the rollover is due (at
    /// most half the allowed age), once per model session.
    pub(super) fn successor_due_at(&self) -> Option<Instant> {
        if self.successor != Successor::None || self.closed {
            return None;
        }
        let after = self.cfg.rollover_after?;
        let since = self.model_session_since?;
        Some(since + after - SUCCESSOR_LEAD.min(after / 2))
    }
    /// Open the next model session's socket in the background when it is due.
    pub(super) fn check_successor(&mut self) {
        if self.successor_due_at().is_some_and(|at| self.now >= at) {
            tracing::debug!("opening the next model session ahead of the rollover");
            self.successor = Successor::Opening(self.now);
            self.out.push_back(Output::OpenSuccessor);
        }
    }
    /// Retire an old model session at a turn boundary: the successor socket opened ahead takes
    /// its place at once (make-before-break; a successor still opening is waited for), or, if
    /// opening it failed, the old one is dropped and the successor opened now; the engine tells
    /// it the conversation so far.
    pub(super) fn check_rollover(&mut self) {
        let due = self.rollover_due_at().is_some_and(|at| self.now >= at);
        if !due || self.closed || !self.engine.at_turn_boundary() {
            return;
        }
        if let Successor::Opening(_) = self.successor {
            // Nearly there (bounded by the connect timeout): switch when it is open, or open
            // one at the switch if it fails. The service's own limit is minutes away.
            return;
        }
        let ready = matches!(self.successor, Successor::Ready(_));
        tracing::info!(
            successor_ready = ready,
            "rolling the model session over at a turn boundary"
        );
        self.model_session_since = None;
        self.rolling_over = true;
        self.model_out.clear();
        self.model_heard = None;
        self.pinged = false;
        let opening = std::mem::replace(&mut self.successor, Successor::None);
        if let Successor::Ready(opened) = opening {
            self.switched_since = Some(opened);
            self.out.push_back(Output::SwitchToSuccessor);
        } else {
            if let Successor::Opening(_) = opening {
                self.out.push_back(Output::DropSuccessor);
            }
            self.out.push_back(Output::DropModel);
            self.out.push_back(Output::ConnectModel);
        }
        self.engine.handle_input(EngineInput::RollOver);
    }
    pub(super) fn heard_model(&mut self) {
        self.model_heard = Some(self.now);
        self.pinged = false;
    }
    /// When the model's silence next matters: the ping at half the idle timeout, then the end.
    pub(super) fn model_idle_deadline(&self) -> Option<Instant> {
        let (idle, heard) = (self.cfg.model_idle?, self.model_heard?);
        Some(if self.pinged {
            heard + idle
        } else {
            heard + idle / 2
        })
    }
    pub(super) fn check_model_idle(&mut self) {
        let (Some(idle), Some(heard)) = (self.cfg.model_idle, self.model_heard) else {
            return;
        };
        if self.now >= heard + idle {
            self.model_heard = None;
            self.model_lost(format!(
                "the realtime model stopped responding (nothing for {}s, ping unanswered)",
                idle.as_secs()
            ));
        } else if !self.pinged && self.now >= heard + idle / 2 {
            self.pinged = true;
            self.out.push_back(Output::PingModel);
        }
    }
}
