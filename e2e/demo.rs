//! Chromium as the caller. The demo page at `/`, used for real: headless Chromium (Debian
//! package) with a fake microphone plays speech-like audio, the page calls voxgate over WebRTC,
//! shows the live transcript and the delegated work, and hangs up (a screenshot is left in
//! target/tmp for a person to look at). And a browser caller's ICE restart on a live call.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::path::{Path, PathBuf};

use std::time::Duration;

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
    let h = harness_with(
        |sim| sim.audio_transcript = "please delegate: check the build".into(),
        |_| {},
    )
    .await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let wav = dir.join("demo-speech.wav");
    write_speech_wav(&wav);
    let shot = dir.join("demo-page.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/clients/demo_page.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(format!("http://{}", h.addr))
            .arg(&wav)
            .arg(&shot)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium run finishes in time")
    .expect("run node");
    let s = client_summary(&out);
    assert!(s.get("error").is_none(), "{s}");
    assert_eq!(s["title"], "voxgate demo");
    let transcript = s["transcript"].as_str().unwrap_or_default();
    assert!(
        transcript.contains("You: please delegate: check the build"),
        "{transcript}"
    );
    assert!(transcript.contains("Model:"), "{transcript}");
    let agent = s["agent"].as_str().unwrap_or_default();
    assert!(agent.contains("▶ check the build"), "{agent}");
    assert!(agent.contains("• Done: check the build"), "{agent}");
    assert!(agent.contains("■ Completed"), "{agent}");
    assert_eq!(s["status"], "Hung up.");
    let audio = s["audio"].as_str().unwrap_or_default();
    assert!(
        audio.starts_with("Model audio: "),
        "the page shows the model's audio arriving: {audio}"
    );
    assert!(shot.exists());
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/clients/ice_restart.mjs");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(format!("http://{}", h.addr))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium run finishes in time")
    .expect("run node");
    let s = client_summary(&out);
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
