//! `ClientSide`: who a conversation's client is and how it hears the model — JSON-RPC
//! subscribers (engine notifications), an OpenAI-protocol client (the model's own events through
//! the plumbing filter), a GPT-Live-dialect client (`LiveCodec`), or a WebRTC caller (`RelayCall`: its media, its data-channel filter and
//! its opt-in to voxgate's agent events). The face's codec, owned by the `SessionCore`.

use crate::engine::plumbing::PlumbingFilter;
use crate::media::call::CallMedia;

/// Who the conversation's client is, and how it hears the model.
pub enum ClientSide {
    /// JSON-RPC subscribers (and passthrough calls): engine notifications only.
    Notifications,
    /// An OpenAI-protocol websocket client: the model's events, filtered, in the client outbox.
    OpenAi(PlumbingFilter),
    /// A WebRTC caller whose media voxgate terminates.
    Relay(Box<RelayCall>),
    /// A GPT-Live-dialect websocket client (`/v1/live`, `/v1/live/sessions`): the conversation's
    /// notifications in its dialect, in the client outbox.
    Live(super::live_codec::LiveCodec),
}

pub struct RelayCall {
    pub(super) media: CallMedia,
    pub(super) filter: PlumbingFilter,
    /// The caller opted into voxgate's agent events (`voxgate.subscribe_agent_events`).
    pub(super) agent_events: bool,
}

impl ClientSide {
    /// An OpenAI-protocol client; `delegation` hides voxgate's agent plumbing from it.
    pub fn openai(delegation: bool) -> Self {
        ClientSide::OpenAi(if delegation {
            PlumbingFilter::new(false)
        } else {
            PlumbingFilter::passthrough(false)
        })
    }

    pub fn relay(media: CallMedia) -> Self {
        ClientSide::Relay(Box::new(RelayCall {
            media,
            filter: PlumbingFilter::new(true),
            agent_events: false,
        }))
    }
}

/// The caller's `{"type":"voxgate.subscribe_agent_events"}` on the data channel.
pub(super) fn is_agent_events_opt_in(text: &str) -> bool {
    text.contains("voxgate.subscribe_agent_events")
        && serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_owned))
            .is_some_and(|t| t == "voxgate.subscribe_agent_events")
}
