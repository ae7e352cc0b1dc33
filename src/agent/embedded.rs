//! The embedded agent core: deterministic and offline. After `delay_ms` it reports
//! `progress_messages` progress lines and then the configured reply (`{input}` → the task's
//! request); steering text is acknowledged in the next message. Cancel ends it as cancelled.

use super::{AgentCore, AgentTask, AgentUpdate, TaskHandle, TaskIo, delegation_input};
use crate::config::EmbeddedAgentConfig;
use crate::engine::TaskOutcome;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct EmbeddedAgent {
    cfg: EmbeddedAgentConfig,
}

impl EmbeddedAgent {
    pub fn new(cfg: EmbeddedAgentConfig) -> Self {
        Self { cfg }
    }
}

impl AgentCore for EmbeddedAgent {
    fn start(&self, task: AgentTask) -> TaskHandle {
        let (handle, io) = TaskHandle::pair(task.handoff_id.clone());
        tokio::spawn(run(self.cfg.clone(), task, io));
        handle
    }
}

async fn run(cfg: EmbeddedAgentConfig, task: AgentTask, mut io: TaskIo) {
    let input = delegation_input(&task.text);
    let delay = Duration::from_millis(cfg.delay_ms);
    let total = cfg.progress_messages + 1;
    let mut steers: Vec<String> = Vec::new();
    for step in 1..=total {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = &mut io.cancel => {
                    let _ = io.updates.send(AgentUpdate::End(TaskOutcome::Cancelled)).await;
                    return;
                }
                Some(s) = io.steer.recv() => steers.push(delegation_input(&s)),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut message = if step == total {
            cfg.reply.replace("{input}", &input)
        } else {
            format!("Working on it ({step}/{}): {input}", total - 1)
        };
        if !steers.is_empty() {
            message.push_str(&format!(" (also noted: {})", steers.join("; ")));
            steers.clear();
        }
        if io
            .updates
            .send(AgentUpdate::Message(message))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = io
        .updates
        .send(AgentUpdate::End(TaskOutcome::Completed))
        .await;
}
