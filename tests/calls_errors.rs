//! Bad input on `POST /v1/realtime/calls`: each gets a 4xx with an OpenAI-shaped JSON error, and
//! nothing of the offer (ICE credentials, fingerprints) is echoed back.

mod common;

use common::*;
use serde_json::Value;

const NO_AUDIO: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:SECRETUFRAG\r\na=ice-pwd:SECRETPASSWORDSECRETPASS\r\na=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n";

const PCMU_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:SECRETUFRAG\r\na=ice-pwd:SECRETPASSWORDSECRETPASS\r\na=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n";

async fn post(h: &Harness, ctype: &str, body: impl Into<reqwest::Body>) -> (u16, Value, String) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn assert_openai_error(body: &Value, raw: &str, code: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{raw}");
    assert!(
        e["type"].is_string() && e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{raw}"
    );
    assert!(
        e.as_object().is_some_and(|o| o.contains_key("param")),
        "{raw}"
    );
    for secret in ["SECRETUFRAG", "SECRETPASSWORD", "AA:BB:CC", "a=ice"] {
        assert!(!raw.contains(secret), "the error echoes the offer: {raw}");
    }
}

#[tokio::test]
async fn malformed_sdp_is_400() {
    let h = harness().await;
    let (status, body, raw) = post(
        &h,
        "application/sdp",
        "this is not sdp a=ice-pwd:SECRETPASSWORD",
    )
    .await;
    assert_eq!(status, 400);
    assert_openai_error(&body, &raw, "invalid_offer");
}

#[tokio::test]
async fn offer_without_audio_is_400() {
    let h = harness().await;
    let (status, body, raw) = post(&h, "application/sdp", NO_AUDIO).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, &raw, "invalid_offer");
    assert!(raw.contains("no audio"), "{raw}");
}

#[tokio::test]
async fn unsupported_codecs_only_is_400() {
    let h = harness().await;
    let (status, body, raw) = post(&h, "application/sdp", PCMU_ONLY).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, &raw, "invalid_offer");
    assert!(raw.contains("Opus"), "{raw}");
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let h = harness().await;
    let (status, body, raw) = post(&h, "text/plain", PCMU_ONLY).await;
    assert_eq!(status, 415);
    assert_openai_error(&body, &raw, "unsupported_content_type");
}

#[tokio::test]
async fn oversized_offer_is_413() {
    let h = harness().await;
    let big = format!("v=0\r\n{}", "a=x-padding:0123456789\r\n".repeat(10_000));
    let (status, body, raw) = post(&h, "application/sdp", big).await;
    assert_eq!(status, 413);
    assert_openai_error(&body, &raw, "offer_too_large");
}

#[tokio::test]
async fn multipart_without_sdp_part_is_400_and_bad_session_json_too() {
    let h = harness().await;
    let form = reqwest::multipart::Form::new().text("session", "{}");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let raw = resp.text().await.expect("body");
    assert_openai_error(
        &serde_json::from_str(&raw).expect("json"),
        &raw,
        "missing_sdp",
    );

    let form = reqwest::multipart::Form::new()
        .text("sdp", PCMU_ONLY)
        .text("session", "{not json");
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let raw = resp.text().await.expect("body");
    assert_openai_error(
        &serde_json::from_str(&raw).expect("json"),
        &raw,
        "invalid_session",
    );
}

#[tokio::test]
async fn hanging_up_an_unknown_call_is_404() {
    let h = harness().await;
    let resp = reqwest::Client::new()
        .delete(format!("http://{}/v1/realtime/calls/rtc_nope", h.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);
    let raw = resp.text().await.expect("body");
    assert_openai_error(
        &serde_json::from_str(&raw).expect("json"),
        &raw,
        "call_not_found",
    );
}

#[tokio::test]
async fn passthrough_keeps_upstream_4xx_and_maps_5xx_to_502() {
    let h = harness_with(
        |_| {},
        |cfg| cfg.webrtc.mode = voxgate::config::WebrtcMode::Passthrough,
    )
    .await;
    // The simulator refuses an offer without Opus with 400: the client sees that 400.
    let (status, body, raw) = post(&h, "application/sdp", PCMU_ONLY).await;
    assert_eq!(status, 400, "{raw}");
    assert_openai_error(&body, &raw, "upstream_call_failed");
    assert!(raw.contains("HTTP 400"), "{raw}");
    // A 5xx upstream (after retries) is a 502.
    let form = reqwest::multipart::Form::new()
        .text("sdp", PCMU_ONLY)
        .text("session", r#"{"instructions":"sim:fail500"}"#);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 502);
    let raw = resp.text().await.expect("body");
    assert_openai_error(
        &serde_json::from_str(&raw).expect("json"),
        &raw,
        "upstream_call_failed",
    );
    assert!(raw.contains("HTTP 500"), "{raw}");
    assert!(
        !raw.contains(API_KEY),
        "the upstream key never reaches a client"
    );
}

async fn patch(h: &Harness, path: &str, ctype: &str, body: &str) -> (u16, Value, String) {
    let resp = reqwest::Client::new()
        .patch(format!("http://{}{path}", h.addr))
        .header("content-type", ctype)
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// A new offer on a live call (ICE restart) that is not this caller's, or not an offer at all,
/// is refused with a clear error; the call is untouched. An unknown call is 404.
#[tokio::test]
async fn a_bad_renegotiation_is_refused_and_the_call_goes_on() {
    let h = harness().await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    let (status, body, raw) = patch(&h, &location, "application/sdp", NO_AUDIO).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, &raw, "invalid_offer");
    // Another peer's offer (another DTLS identity) does not take over the call.
    let (status, body, raw) = patch(&h, &location, "application/sdp", &relay_offer()).await;
    assert_eq!(status, 400, "{raw}");
    assert_openai_error(&body, &raw, "invalid_offer");
    let (status, body, raw) = patch(&h, &location, "text/plain", "hello").await;
    assert_eq!(status, 415);
    assert_openai_error(&body, &raw, "unsupported_content_type");
    let (status, body, raw) = patch(
        &h,
        "/v1/realtime/calls/rtc_nosuchcall",
        "application/sdp",
        &relay_offer(),
    )
    .await;
    assert_eq!(status, 404);
    assert_openai_error(&body, &raw, "call_not_found");
    // The call is still there to hang up.
    let hung = reqwest::Client::new()
        .delete(format!("http://{}{location}", h.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(hung.status().as_u16(), 200);
}

/// A passthrough call's media is the upstream's: voxgate cannot restart its ICE, and says so.
#[tokio::test]
async fn renegotiating_a_passthrough_call_is_409() {
    let h = harness_with(
        |_| {},
        |cfg| cfg.webrtc.mode = voxgate::config::WebrtcMode::Passthrough,
    )
    .await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned();
    let (status, body, raw) = patch(&h, &location, "application/sdp", &relay_offer()).await;
    assert_eq!(status, 409, "{raw}");
    assert_openai_error(&body, &raw, "invalid_offer");
}
