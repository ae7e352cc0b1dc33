//! The options of codex 0.169's `thread/realtime/start` that voxgate does not carry out, checked
//! before a conversation starts: a start that asks for one is answered `{}` (as codex answers a
//! start) and refused with a `thread/realtime/error` naming the option — never silently ignored.
//! Options left at their default (absent, `null`, `false`, empty) ask for nothing and pass.
//! Implemented elsewhere: `includeStartupContext` (false: no startup context), `model`,
//! `prompt`, `voice`, `realtimeSessionId`, `transport` websocket/webrtc/existingCall, `version` v1/v2/v3;
//! `voiceSessionId` is logged with the conversation.

use serde_json::Value;

const V3_ONLY: &str = "voxgate's v3 (GPT-Live) delegation answers in its own way and offers no \
                       such option yet";

/// Why voxgate will not start this conversation, if it will not.
pub fn refusal(params: &Value) -> Option<String> {
    let set = |name: &str| match &params[name] {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    };
    let unsupported = [
        (
            "clientManagedHandoffs",
            "voxgate runs delegated work on its own agent cores ([agent] kind)",
        ),
        (
            "codexResponsesAsItems",
            "voxgate's agent cores answer through the delegation call",
        ),
        (
            "codexResponseItemPrefix",
            "voxgate's agent cores answer through the delegation call",
        ),
        ("codexResponseHandoffMode", V3_ONLY),
        ("codexResponseHandoffChannelPrefixes", V3_ONLY),
        ("delegationAckFiller", V3_ONLY),
        ("backendReasoningStatus", V3_ONLY),
        ("initialItems", V3_ONLY),
        (
            "realtimeStartInstructions",
            "voxgate's agent cores take no per-session instructions",
        ),
        (
            "realtimeEndInstructions",
            "voxgate's agent cores take no per-session instructions",
        ),
        (
            "flushTranscriptTailOnSessionEnd",
            "voxgate's agent cores see each delegation's transcript only",
        ),
    ];
    unsupported
        .iter()
        .find(|(name, _)| set(name))
        .map(|(name, why)| format!("the start option `{name}` is not supported by voxgate: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_at_their_defaults_pass_and_the_rest_are_refused_by_name() {
        let base = json!({"threadId": "t", "outputModality": "audio"});
        assert_eq!(refusal(&base), None);
        let defaults = json!({"threadId": "t", "outputModality": "audio", "clientManagedHandoffs": false,
            "initialItems": [], "codexResponseItemPrefix": null, "includeStartupContext": false,
            "version": "v2", "voiceSessionId": "v"});
        assert_eq!(refusal(&defaults), None);
        for (option, value) in [
            ("clientManagedHandoffs", json!(true)),
            ("initialItems", json!([{"role": "user", "text": "hi"}])),
            ("realtimeEndInstructions", json!("summarize")),
            ("delegationAckFiller", json!(true)),
        ] {
            let mut p = base.clone();
            p[option] = value;
            let why = refusal(&p).expect("refused");
            assert!(why.contains(&format!("`{option}`")), "{why}");
        }
        let mut v3 = base.clone();
        v3["version"] = json!("v3");
        assert_eq!(refusal(&v3), None, "GPT-Live is spoken");
        let mut call = base;
        call["transport"] = json!({"type": "existingCall", "callId": "rtc_1"});
        assert_eq!(refusal(&call), None, "voxgate joins the call's sideband");
    }
}
