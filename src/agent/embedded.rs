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

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(delay_ms: u64, progress: u32) -> EmbeddedAgent {
        EmbeddedAgent::new(EmbeddedAgentConfig {
            delay_ms,
            progress_messages: progress,
            reply: "Done: {input}".into(),
        })
    }

    fn task(text: &str) -> AgentTask {
        AgentTask {
            thread_id: "t".into(),
            handoff_id: "h".into(),
            text: text.into(),
            traceparent: None,
        }
    }

    #[tokio::test]
    async fn reports_progress_then_reply_then_completed() {
        let mut h = agent(1, 2).start(task(
            "<realtime_delegation>\n  <input>a &amp; b</input>\n</realtime_delegation>",
        ));
        assert_eq!(
            h.next().await,
            AgentUpdate::Message("Working on it (1/2): a & b".into())
        );
        assert_eq!(
            h.next().await,
            AgentUpdate::Message("Working on it (2/2): a & b".into())
        );
        assert_eq!(h.next().await, AgentUpdate::Message("Done: a & b".into()));
        assert_eq!(h.next().await, AgentUpdate::End(TaskOutcome::Completed));
    }

    #[tokio::test]
    async fn steering_is_noted_in_the_next_message() {
        let mut h = agent(200, 0).start(task("<input>x</input>"));
        h.steer("<input>also y</input>".into());
        assert_eq!(
            h.next().await,
            AgentUpdate::Message("Done: x (also noted: also y)".into())
        );
    }

    #[tokio::test]
    async fn cancel_ends_the_task_as_cancelled() {
        let mut h = agent(60_000, 0).start(task("<input>x</input>"));
        h.cancel();
        assert_eq!(h.next().await, AgentUpdate::End(TaskOutcome::Cancelled));
    }
}
