//! A delegated task the conversation ended without (`AgentCommand::Release`) runs to its end on
//! its own, at most the task timeout (then it is cancelled): its messages and outcome go to the
//! thread's record, so they are not lost, and to whoever is subscribed to the thread by then (an
//! `itemAdded` of type `agentLateResult`). Its result — the messages it sent, or why it failed —
//! is then delivered through the thread's late inbox: spoken by the conversation running on the
//! thread by then, or by the next one started on it within the thread's retention.

use super::record::ThreadRecord;
use super::subscribers::ThreadSubscribers;
use crate::agent::{AgentUpdate, TaskHandle};
use crate::engine::TaskOutcome;
use crate::protocol::rpc::Notification;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub async fn finish_released_task(
    mut task: TaskHandle,
    limit: Duration,
    record: Arc<ThreadRecord>,
    subscribers: Arc<ThreadSubscribers>,
    thread_id: String,
) {
    let handoff_id = task.handoff_id.clone();
    let mut said: Vec<String> = Vec::new();
    let tell = |text: String, done: bool| {
        record.push("agent", &text);
        subscribers.notify(
            &thread_id,
            &Notification::ItemAdded(json!({"type": "agentLateResult",
                "handoffId": handoff_id, "text": text, "done": done})),
        );
    };
    let finished = tokio::time::timeout(limit, async {
        loop {
            match task.next().await {
                AgentUpdate::Message(text) => {
                    said.push(text.clone());
                    tell(text, false);
                }
                AgentUpdate::End(TaskOutcome::Completed) => return,
                AgentUpdate::End(TaskOutcome::Failed(reason)) => {
                    let why = format!("the task failed: {reason}");
                    said.push(why.clone());
                    return tell(why, true);
                }
                AgentUpdate::End(TaskOutcome::Cancelled) => {
                    said.push("the task was cancelled".into());
                    return tell("the task was cancelled".into(), true);
                }
            }
        }
    })
    .await;
    if finished.is_err() {
        task.cancel();
        let why = format!("the task timed out after {}s", limit.as_secs());
        said.push(why.clone());
        tell(why, true);
    }
    if !said.is_empty() {
        record.deliver_late(format!(
            "A task delegated earlier in this conversation ({handoff_id}) finished after the \
             call it was asked in had ended. Tell the person its result: {}",
            said.join("\n")
        ));
    }
}
