//! The agent side of a `SessionCore`: delegated tasks started, steered, cancelled or released,
//! their updates fed to the engine and the caller's opted-in agent events, and their metrics.

use super::*;

impl SessionCore {
    pub(super) fn on_agent_update(&mut self, update: AgentUpdate) {
        let Some(task) = self.task.as_ref() else {
            return;
        };
        let handoff_id = task.handoff_id.clone();
        let event = match update {
            AgentUpdate::Message(text) => {
                self.agent_event(serde_json::json!({"type": "voxgate.agent.message",
                    "handoff_id": handoff_id, "text": text}));
                AgentEvent::Message { handoff_id, text }
            }
            AgentUpdate::End(outcome) => {
                if let Some(task) = self.task.take() {
                    task_ended(&task, self.now, outcome_label(&outcome));
                }
                self.agent_event(serde_json::json!({"type": "voxgate.agent.ended",
                    "handoff_id": handoff_id, "outcome": format!("{outcome:?}")}));
                AgentEvent::Ended {
                    handoff_id,
                    outcome,
                }
            }
        };
        self.engine.handle_input(EngineInput::Agent(event));
    }
    pub(super) fn on_agent_command(&mut self, cmd: AgentCommand) {
        let now = self.now;
        match &cmd {
            AgentCommand::Start { handoff_id, text } => {
                metrics::HANDOFFS_STARTED.inc();
                self.agent_event(serde_json::json!({"type": "voxgate.agent.started",
                    "handoff_id": handoff_id, "request": crate::agent::delegation_input(text)}));
                self.task = Some(RunningTask {
                    handoff_id: handoff_id.clone(),
                    deadline: now + self.cfg.task_timeout,
                    started: now,
                });
            }
            AgentCommand::Steer { .. } => {}
            AgentCommand::Cancel => {
                if let Some(task) = self.task.take() {
                    task_ended(&task, now, "cancelled");
                }
            }
            AgentCommand::Release => {
                if let Some(task) = self.task.take() {
                    task_ended(&task, now, "released");
                }
            }
        }
        if !self.delegate_to_live_client(&cmd) {
            self.out.push_back(Output::Agent(cmd));
        }
    }
}

pub(super) fn outcome_label(outcome: &TaskOutcome) -> &'static str {
    match outcome {
        TaskOutcome::Completed => "finished",
        TaskOutcome::Failed(_) => "failed",
        TaskOutcome::Cancelled => "cancelled",
    }
}
pub(super) fn task_ended(task: &RunningTask, now: Instant, label: &'static str) {
    metrics::HANDOFFS_ENDED.with_label_values(&[label]).inc();
    metrics::AGENT_TASK_SECONDS
        .with_label_values(&[label])
        .observe(now.saturating_duration_since(task.started).as_secs_f64());
}
