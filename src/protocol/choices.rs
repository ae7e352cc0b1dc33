//! Choices a start request may name and the config may default: which agent backend runs a
//! session's delegated tasks, and who terminates a caller's WebRTC. Plain wire enums; the config
//! re-exports them (protocol knows nothing of configuration).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    #[default]
    Embedded,
    Codex,
    Responses,
    Webhook,
}

impl AgentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Embedded => "embedded",
            AgentKind::Codex => "codex",
            AgentKind::Responses => "responses",
            AgentKind::Webhook => "webhook",
        }
    }
}

/// Who terminates a caller's WebRTC.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebrtcMode {
    /// voxgate answers the offer and bridges to the model's websocket.
    #[default]
    Relay,
    /// The offer goes to the model's own calls endpoint; voxgate joins the call's sideband.
    Passthrough,
}
