//! The options of codex 0.169's `thread/realtime/start` that voxgate does not carry out, checked
//! before a conversation starts: a start that asks for one is answered `{}` (as codex answers a
//! start) and refused with a `thread/realtime/error` naming the option — never silently ignored.
//! Options left at their default (absent, `null`, `false`, empty) ask for nothing and pass.
//! Implemented elsewhere: `includeStartupContext` (false: no startup context), `model`,
//! `prompt`, `voice`, `realtimeSessionId`, `transport` websocket/webrtc, `version` v1/v2;
//! `voiceSessionId` is logged with the conversation.

use serde_json::Value;

/// Why voxgate will not start this conversation, if it will not.
pub fn refusal(params: &Value) -> Option<String> {
    if params["version"] == "v3" {
        return Some(
            "realtime v3 (GPT-Live) is not supported by this voxgate yet: start with version \
             v1 or v2"
                .into(),
        );
    }
    if params["transport"]["type"] == "existingCall" {
        return Some(
            "transport existingCall is not supported by this voxgate yet: post the call's offer \
             to /v1/realtime/calls, or start with transport webrtc"
                .into(),
        );
    }
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
        ("codexResponseHandoffMode", "it applies to realtime v3 only"),
        (
            "codexResponseHandoffChannelPrefixes",
            "it applies to realtime v3 only",
        ),
        ("delegationAckFiller", "it applies to realtime v3 only"),
        ("backendReasoningStatus", "it applies to realtime v3 only"),
        ("initialItems", "it applies to realtime v3 only"),
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
        assert!(refusal(&v3).is_some_and(|w| w.contains("v3")));
        let mut call = base;
        call["transport"] = json!({"type": "existingCall", "callId": "rtc_1"});
        assert!(refusal(&call).is_some_and(|w| w.contains("existingCall")));
    }
}
