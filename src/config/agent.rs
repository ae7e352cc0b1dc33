//! `[agent]`: where delegated tasks run, and each backend's table.

use serde::Deserialize;

pub use crate::protocol::choices::AgentKind;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub kind: AgentKind,
    /// A task still running after this long ends as failed.
    pub task_timeout_secs: u64,
    pub embedded: EmbeddedAgentConfig,
    pub codex: CodexAgentConfig,
    pub responses: ResponsesAgentConfig,
    pub webhook: WebhookAgentConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            kind: AgentKind::Embedded,
            task_timeout_secs: 300,
            embedded: Default::default(),
            codex: Default::default(),
            responses: Default::default(),
            webhook: Default::default(),
        }
    }
}

/// How voxgate answers the approval requests a codex app-server sends.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalPolicy {
    /// Decline, and tell the model what was declined (default).
    #[default]
    Decline,
    /// Approve once.
    Accept,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodexAgentConfig {
    /// The app-server's websocket, e.g. "ws://127.0.0.1:4500" (`codex app-server --listen ...`).
    pub url: String,
    pub approvals: ApprovalPolicy,
    /// Working directory for new codex threads (default: the app-server's).
    pub cwd: Option<String>,
    pub connect_timeout_ms: u64,
}

impl Default for CodexAgentConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            approvals: ApprovalPolicy::Decline,
            cwd: None,
            connect_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesAgentConfig {
    /// Base URL of an OpenAI Responses-compatible API; requests go to `{base_url}/responses`.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (sent as Bearer when set).
    pub api_key_env: String,
    /// Optional system instructions for the agent.
    pub instructions: Option<String>,
    /// Earlier delegations and answers kept per thread as conversation history.
    pub max_history_items: usize,
}

impl Default for ResponsesAgentConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-5.1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            instructions: None,
            max_history_items: 40,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookAgentConfig {
    /// Where tasks are POSTed; the reply is an NDJSON stream.
    pub url: String,
    /// HMAC-SHA256 key for the `X-Voxgate-Signature` header; prefer `secret_env`. Never logged.
    pub secret: Option<String>,
    /// Environment variable holding the HMAC key.
    pub secret_env: Option<String>,
}

impl WebhookAgentConfig {
    pub fn resolve_secret(&self) -> Option<String> {
        self.secret.clone().filter(|s| !s.is_empty()).or_else(|| {
            self.secret_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .filter(|s| !s.is_empty())
        })
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedAgentConfig {
    /// Delay before each message.
    pub delay_ms: u64,
    /// Progress messages before the final reply.
    pub progress_messages: u32,
    /// Final reply; `{input}` is replaced by the task's `<input>` text.
    pub reply: String,
}

impl Default for EmbeddedAgentConfig {
    fn default() -> Self {
        Self {
            delay_ms: 200,
            progress_messages: 1,
            reply: "Done: {input}".into(),
        }
    }
}
