//! Chromium as the caller. The demo page at `/`, used for real: headless Chromium (Debian
//! package) with a fake microphone plays speech-like audio, the page calls voxgate over WebRTC,
//! shows the live transcript and the delegated work, and hangs up (a screenshot is left in
//! target/tmp for a person to look at). A browser caller's ICE restart on a live call. And a page
//! on another origin calling with an `ek_` client secret through CORS.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::path::{Path, PathBuf};

fn tools() -> Option<PathBuf> {
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/node_modules/playwright-core");
    let chromium = Path::new("/usr/bin/chromium");
    if driver.exists() && chromium.exists() {
        return Some(driver);
    }
    assert!(
        std::env::var("CI").is_err(),
        "chromium or playwright-core missing in CI (see .ci/run)"
    );
    eprintln!("SKIPPING demo page e2e: needs Debian chromium and `npm ci --prefix e2e`");
    None
}

#[cfg_attr(
    not(voxgate_e2e_chromium),
    ignore = "needs Debian chromium and npm ci --prefix e2e"
)]
#[tokio::test]
async fn demo_page_call_shows_transcript_and_delegated_work_in_chromium() {
    if tools().is_none() {
        return;
    }
    // Default settings: the simulator's spoken script (a greeting, then a delegated task)
    // tells the whole story, as it does for a newcomer's first `serve`.
    let h = harness_with(|_| {}, |_| {}).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let wav = dir.join("demo-speech.wav");
    write_speech_wav(&wav);
    let shot = dir.join("demo-page.png");
    let s = node_client(
        "demo_page.mjs",
        &[
            format!("http://{}", h.addr).as_ref(),
            wav.as_ref(),
            shot.as_ref(),
        ],
    )
    .await;
    assert!(s.get("error").is_none(), "{s}");
    assert_eq!(s["title"], "voxgate demo");
    let transcript = s["transcript"].as_str().unwrap_or_default();
    assert!(
        transcript.contains("You: hello from the microphone"),
        "{transcript}"
    );
    assert!(
        transcript.contains("You: delegate: summarize the project README"),
        "{transcript}"
    );
    assert!(transcript.contains("Model:"), "{transcript}");
    let agent = s["agent"].as_str().unwrap_or_default();
    assert!(agent.contains("▶ summarize the project README"), "{agent}");
    assert!(
        agent.contains("• Done: summarize the project README"),
        "{agent}"
    );
    assert!(agent.contains("■ Completed"), "{agent}");
    assert!(
        transcript.contains("You (typed): what is the weather"),
        "{transcript}"
    );
    assert_eq!(s["status"], "Hung up.");
    let audio = s["audio"].as_str().unwrap_or_default();
    assert!(
        audio.starts_with("Model audio: ") && audio.ends_with("s of speech received."),
        "the page shows the model's audio arriving: {audio}"
    );
    assert_eq!(s["levelMoved"], true, "the microphone meter moved: {s}");
    assert_eq!(
        s["simulatorNotice"], false,
        "the harness talks to a model service"
    );
    assert_eq!(s["keyField"], false, "no key needed: no key field");
    assert_eq!(s["micReleasedOnHangup"], true, "{s}");
    assert_eq!(s["levelAfterHangup"], 0, "{s}");
    assert_eq!(
        s["transcriptAtNextCall"], "",
        "a new call starts clean: {s}"
    );
    assert_eq!(s["agentAtNextCall"], "", "{s}");
    assert_eq!(s["micReleasedAfterSecondCall"], true, "{s}");
    assert!(shot.exists());
}

/// Keys mode: the page shows a field for an API key or `ek_` secret; a call without one is
/// refused with a message that says so and the microphone is released; with the key typed in,
/// the call goes through and is hung up.
#[cfg_attr(
    not(voxgate_e2e_chromium),
    ignore = "needs Debian chromium and npm ci --prefix e2e"
)]
#[tokio::test]
async fn demo_page_in_keys_mode_takes_a_key_and_releases_the_mic_on_refusal() {
    if tools().is_none() {
        return;
    }
    let h = harness_with(|_| {}, |cfg| one_key(cfg, "demo", "sk-demo-page-key")).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let wav = dir.join("demo-speech-keys.wav");
    write_speech_wav(&wav);
    let s = node_client(
        "demo_page.mjs",
        &[
            format!("http://{}", h.addr).as_ref(),
            wav.as_ref(),
            "".as_ref(),
            "sk-demo-page-key".as_ref(),
        ],
    )
    .await;
    assert!(s.get("error").is_none(), "{s}");
    assert_eq!(s["keyField"], true, "{s}");
    assert_eq!(
        s["refused"],
        "Call refused: this gateway needs an API key or an ek_ client secret (field above).",
        "{s}"
    );
    assert_eq!(s["micReleasedOnRefusal"], true, "{s}");
    assert!(
        s["transcript"]
            .as_str()
            .is_some_and(|t| t.contains("Model:")),
        "{s}"
    );
    assert_eq!(s["status"], "Hung up.");
    assert_eq!(s["micReleasedOnHangup"], true, "{s}");
}

/// A browser caller restarts ICE on its live call (`pc.restartIce()`, the new offer sent with
/// `PATCH /v1/realtime/calls/{id}`): the answer carries new credentials, Chromium moves to the
/// restarted pair, and the call goes on — the same data channel, the next reply heard.
#[cfg_attr(
    not(voxgate_e2e_chromium),
    ignore = "needs Debian chromium and npm ci --prefix e2e"
)]
#[tokio::test]
async fn a_browser_caller_restarts_ice_on_its_live_call_and_keeps_talking() {
    if tools().is_none() {
        return;
    }
    let h = harness_with(|_| {}, |_| {}).await;
    let s = node_client("ice_restart.mjs", &[format!("http://{}", h.addr).as_ref()]).await;
    eprintln!("chromium ICE restart: {s}");
    assert!(s.get("error").is_none(), "{s}");
    assert_eq!(s["createStatus"], 201, "{s}");
    assert_eq!(s["patchStatus"], 200, "{s}");
    assert_ne!(
        s["ufragBefore"], s["ufragAfter"],
        "the restart is answered with new ICE credentials: {s}"
    );
    assert_eq!(s["selectedRemoteUfrag"], s["ufragAfter"], "{s}");
    assert_eq!(s["dataChannel"], "open", "{s}");
    assert_eq!(s["connectionState"], "connected", "{s}");
    assert_eq!(s["hangupStatus"], 200, "{s}");
    let metrics = voxgate::metrics::render();
    assert!(
        metrics.contains(r#"voxgate_call_renegotiations_total{outcome="answered"} 1"#),
        "{metrics}"
    );
}

/// The page a site serves on its own origin to call through voxgate with an `ek_` secret.
const CROSS_ORIGIN_PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>elsewhere</title>
<script>
(async () => {
  const [base, secret] = decodeURIComponent(location.hash.slice(1)).split("|");
  const auth = { Authorization: "Bearer " + secret };
  try {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ice = await fetch(base + "/v1/realtime/ice_servers", { headers: auth }).then((r) => r.json());
    const pc = new RTCPeerConnection({ iceServers: ice.ice_servers });
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
    const events = pc.createDataChannel("oai-events");
    const heard = new Promise((resolve) => {
      events.onmessage = (m) => {
        const ev = JSON.parse(m.data);
        if (ev.type === "response.output_audio_transcript.done") resolve(ev.transcript);
      };
    });
    await pc.setLocalDescription(await pc.createOffer());
    const resp = await fetch(base + "/v1/realtime/calls", {
      method: "POST", headers: { ...auth, "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
    });
    const location_ = resp.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    const transcript = await heard;
    const hangup = await fetch(base + location_, { method: "DELETE", headers: auth });
    mic.getTracks().forEach((t) => t.stop());
    pc.close();
    window.__result = { status: resp.status, location: location_, transcript, hangup: hangup.status };
  } catch (e) {
    window.__result = { error: String(e) };
  }
})();
</script>"#;

/// A page on another origin (served by the test on its own port) places a call with an `ek_`
/// client secret: CORS in real Chromium, preflights included. A page on an origin not listed in
/// `[server] cors_origins` cannot.
#[cfg_attr(
    not(voxgate_e2e_chromium),
    ignore = "needs Debian chromium and npm ci --prefix e2e"
)]
#[tokio::test]
async fn a_page_on_another_origin_calls_with_a_client_secret_and_cors() {
    if tools().is_none() {
        return;
    }
    const KEY: &str = "vk-cross-origin-test-key-000";
    let site = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stranger = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!(
        "http://127.0.0.1:{}",
        site.local_addr().expect("addr").port()
    );
    let stranger_origin = format!(
        "http://127.0.0.1:{}",
        stranger.local_addr().expect("addr").port()
    );
    for listener in [site, stranger] {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async { axum::response::Html(CROSS_ORIGIN_PAGE) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let allowed = origin.clone();
    let h = harness_with(
        |_| {},
        move |cfg| {
            cfg.server.cors_origins = vec![allowed];
            one_key(cfg, "site", KEY);
        },
    )
    .await;
    // The site's server mints the secret with its key; the page only ever holds the ek_.
    let minted: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/client_secrets", h.addr))
        .bearer_auth(KEY)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("minted")
        .json()
        .await
        .expect("json");
    let secret = minted["value"].as_str().expect("ek_").to_owned();
    let hash = format!("http://{}|{secret}", h.addr);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let wav = dir.join("cross-origin-speech.wav");
    write_speech_wav(&wav);
    let s = node_client(
        "cross_origin_call.mjs",
        &[
            wav.as_ref(),
            format!("{origin}/#{hash}").as_ref(),
            format!("{stranger_origin}/#{hash}").as_ref(),
        ],
    )
    .await;
    assert!(s.get("error").is_none(), "{s}");
    let listed = &s["pages"][0];
    assert_eq!(listed["status"], 201, "{s}");
    assert!(
        listed["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("/v1/realtime/calls/rtc_")),
        "the page read the Location: {s}"
    );
    assert!(
        listed["transcript"]
            .as_str()
            .is_some_and(|t| t.starts_with("You said")),
        "{s}"
    );
    assert_eq!(listed["hangup"], 200, "{s}");
    // The page on an unlisted origin: the browser refuses (the preflight grants nothing).
    let unlisted = &s["pages"][1];
    assert!(
        unlisted["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{s}"
    );
}
