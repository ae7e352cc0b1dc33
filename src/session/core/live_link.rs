//! A GPT-Live-dialect client of a `SessionCore` (`/v1/live`, `/v1/live/sessions`): its events
//! become the engine's client commands (a bad one is answered with an `error` event and
//! changes nothing), and the conversation's notifications go to it as its dialect's events.
//! In client-mode delegation the client is the agent: a task starts as `delegation.created`
//! to it, and its `delegation.context.append`s are what the task found. GPT-Live has no "done"
//! for a client's delegation (its model reads the context as it comes): the task ends when an
//! append is meant to be said (the `speakable` / `commentary` channel, or codex's `"Agent Final
//! Message"`) or when the client has added nothing for [`CLIENT_DELEGATION_QUIET`]; the task
//! timeout still holds.

use super::*;

impl SessionCore {
    /// A client event from a GPT-Live-dialect client.
    pub(super) fn live_client_event(&mut self, raw: &str) {
        let ClientSide::Live(codec) = &self.client else {
            return;
        };
        match codec.client_event(raw) {
            Ok(live::LiveInput::Command(cmd)) => self.client_command(cmd),
            Ok(live::LiveInput::DelegationContext {
                delegation_id,
                text,
                spoken,
            }) => self.client_delegation_context(&delegation_id, text, spoken),
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

impl SessionCore {
    /// A task for a client that does its own delegations: `delegation.created` to it (steering
    /// arrives as another under the running task's id). True when the client took the command.
    pub(super) fn delegate_to_live_client(&mut self, cmd: &AgentCommand) -> bool {
        let ClientSide::Live(codec) = &self.client else {
            return false;
        };
        if !codec.client_delegation() {
            return false;
        }
        let frame = match cmd {
            AgentCommand::Start { handoff_id, text } => {
                codec.delegation_created(handoff_id, &crate::agent::delegation_input(text))
            }
            AgentCommand::Steer { text } => match &self.task {
                Some(task) => codec
                    .delegation_created(&task.handoff_id, &crate::agent::delegation_input(text)),
                None => return true,
            },
            // The client's work is its own: nothing to cancel or release on its side.
            AgentCommand::Cancel | AgentCommand::Release => return true,
        };
        self.client_out.push(self.now, frame, FrameClass::Control);
        true
    }

    /// What the client's work on a delegation found: the task's result when it is meant to be
    /// said, else more of it (the task ends once the client goes quiet). A delegation that is
    /// not running is refused.
    fn client_delegation_context(&mut self, delegation_id: &str, text: String, spoken: bool) {
        if self
            .task
            .as_ref()
            .is_none_or(|t| t.handoff_id != delegation_id)
        {
            let e = live::LiveError {
                code: "unknown_delegation",
                message: "no delegation with that id is running".into(),
            };
            metrics::LIVE_EVENTS_REFUSED
                .with_label_values(&[e.code])
                .inc();
            self.client_out
                .push(self.now, e.to_event(), FrameClass::Control);
            return;
        }
        match text.strip_prefix(live::AGENT_FINAL_MESSAGE_PREFIX) {
            Some(result) => {
                self.on_agent_update(AgentUpdate::Message(result.to_owned()));
                self.end_client_task();
            }
            None if spoken => {
                self.on_agent_update(AgentUpdate::Message(text));
                self.end_client_task();
            }
            None => {
                self.on_agent_update(AgentUpdate::Message(text));
                self.client_task_quiet_at = Some(self.now + CLIENT_DELEGATION_QUIET);
            }
        }
    }

    pub(super) fn end_client_task(&mut self) {
        self.client_task_quiet_at = None;
        if self.task.is_some() {
            self.on_agent_update(AgentUpdate::End(TaskOutcome::Completed));
        }
    }
}

/// A client doing a delegation's work that has added nothing for this long is done with it.
pub const CLIENT_DELEGATION_QUIET: Duration = Duration::from_millis(1000);
