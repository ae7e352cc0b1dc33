//! `ContextMemory`: what a conversation has said so far, kept to be told to a new model session
//! when the old one is lost (reconnect) or retired (rollover). Each turn is one text item — the
//! user's typed or transcribed words, voxgate's own items (agent results), the model's spoken
//! transcript — oldest first. Bounded: at most [`MAX_TURNS`]; a replay takes the most recent turns
//! that fit the budget of items and characters, in order.

use crate::protocol::model::TextRole;
use std::collections::VecDeque;

/// Turns remembered at most (the oldest are forgotten first).
pub const MAX_TURNS: usize = 256;

/// How much of the conversation a new model session is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayBudget {
    pub items: usize,
    pub chars: usize,
}

impl Default for ReplayBudget {
    fn default() -> Self {
        Self {
            items: 40,
            chars: 8000,
        }
    }
}

#[derive(Debug, Default)]
pub struct ContextMemory {
    turns: VecDeque<(TextRole, String)>,
}

impl ContextMemory {
    pub fn record(&mut self, role: TextRole, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if self.turns.len() >= MAX_TURNS {
            self.turns.pop_front();
        }
        self.turns.push_back((role, text.to_owned()));
    }

    /// The most recent turns within `budget`, oldest first. A turn longer than what is left of
    /// the character budget keeps its end (the latest words).
    pub fn replay(&self, budget: ReplayBudget) -> Vec<(TextRole, String)> {
        let mut left = budget.chars;
        let mut picked = Vec::new();
        for (role, text) in self.turns.iter().rev().take(budget.items) {
            if left == 0 {
                break;
            }
            let chars = text.chars().count();
            let text = if chars <= left {
                text.clone()
            } else {
                text.chars().skip(chars - left).collect()
            };
            left = left.saturating_sub(chars);
            picked.push((*role, text));
        }
        picked.reverse();
        picked
    }

    pub fn len(&self) -> usize {
        self.turns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_keeps_the_most_recent_turns_within_budget_in_order() {
        let mut m = ContextMemory::default();
        for i in 0..10 {
            m.record(TextRole::User, &format!("question {i}"));
            m.record(TextRole::Assistant, &format!("answer {i}"));
        }
        m.record(TextRole::User, "   ");
        let r = m.replay(ReplayBudget {
            items: 3,
            chars: 1000,
        });
        assert_eq!(
            r,
            vec![
                (TextRole::Assistant, "answer 8".into()),
                (TextRole::User, "question 9".into()),
                (TextRole::Assistant, "answer 9".into()),
            ]
        );
        let r = m.replay(ReplayBudget {
            items: 10,
            chars: 12,
        });
        assert_eq!(
            r,
            vec![
                (TextRole::User, "on 9".into()),
                (TextRole::Assistant, "answer 9".into())
            ]
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut m = ContextMemory::default();
        for i in 0..MAX_TURNS + 10 {
            m.record(TextRole::User, &i.to_string());
        }
        assert_eq!(m.len(), MAX_TURNS);
    }
}
