//! `Face`: how a conversation's client reaches voxgate — the label sessions are counted under in
//! the metrics and named by in the logs.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// JSON-RPC (`/rpc` or stdio) with audio as notifications.
    Rpc,
    /// An OpenAI-protocol websocket client on `/v1/realtime`.
    OpenaiWs,
    /// A GPT-Live-dialect websocket client on `/v1/live` or `/v1/live/sessions`.
    LiveWs,
    /// A WebRTC caller whose media voxgate terminates.
    WebrtcRelay,
    /// A WebRTC caller connected to the model's own calls endpoint; voxgate rides the sideband.
    WebrtcPassthrough,
}

impl Face {
    pub const ALL: [Face; 5] = [
        Face::Rpc,
        Face::OpenaiWs,
        Face::LiveWs,
        Face::WebrtcRelay,
        Face::WebrtcPassthrough,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Face::Rpc => "rpc",
            Face::OpenaiWs => "openai_ws",
            Face::LiveWs => "live_ws",
            Face::WebrtcRelay => "webrtc_relay",
            Face::WebrtcPassthrough => "webrtc_passthrough",
        }
    }
}
