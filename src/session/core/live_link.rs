//! A GPT-Live-dialect client of a `SessionCore` (`/v1/live`, `/v1/live/sessions`): its events
//! become the engine's client commands (a bad one is answered with an `error` event and
//! changes nothing), and the conversation's notifications go to it as its dialect's events.

use super::*;

impl SessionCore {
    /// A client event from a GPT-Live-dialect client.
    pub(super) fn live_client_event(&mut self, raw: &str) {
        let ClientSide::Live(codec) = &self.client else {
            return;
        };
        match codec.client_event(raw) {
            Ok(cmd) => self.client_command(cmd),
            Err(e) => {
                tracing::debug!(code = e.code, "refused a live client event");
                metrics::LIVE_EVENTS_REFUSED
                    .with_label_values(&[e.code])
                    .inc();
                self.client_out
                    .push(self.now, e.to_event(), FrameClass::Control);
            }
        }
    }

    /// Give a notification to a GPT-Live-dialect client (what its dialect has of it); false
    /// when the conversation's client is not one.
    pub(super) fn tell_live_client(&mut self, n: &Notification) -> bool {
        let ClientSide::Live(codec) = &mut self.client else {
            return false;
        };
        if let Some(frame) = codec.server_event(n) {
            self.client_out.push(self.now, frame, FrameClass::Control);
        }
        true
    }
}
