//! `voxgate loadtest` end to end, as CI gates a build with it: the real binary drives 20
//! sessions × 5 s through each face (`rpc`, `ws`, `webrtc` with real str0m peers) against a real
//! `voxgate serve` on the embedded simulator, passes its thresholds, and writes `results.json`
//! and an HTML report with its plots. In echo mode against a separate `voxgate simulate --echo`
//! with `--direct`, it measures what voxgate adds; a threshold nobody can meet exits 3.

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(20);
/// A loadtest run of 5 s (plus a 10 s baseline at most) ends well within this.
const RUN_WAIT: Duration = Duration::from_secs(90);

fn voxgate() -> Command {
    common::voxgate_bin(env!("CARGO_BIN_EXE_voxgate"))
}

/// Spawn and wait for the line that names the listening address.
async fn spawn_listening(mut cmd: Command, prefix: &str) -> (Child, String) {
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("listening line in time")
            .expect("read")
            .expect("exited before listening");
        if let Some(a) = line.strip_prefix(prefix) {
            return (child, a.trim().to_owned());
        }
    }
}

async fn gateway(upstream: Option<&str>) -> (Child, String) {
    let mut c = voxgate();
    c.args(["serve", "--listen", "127.0.0.1:0"]);
    if let Some(sim) = upstream {
        c.env("VOXGATE_UPSTREAM__KIND", "openai")
            .env("VOXGATE_UPSTREAM__BASE_URL", format!("http://{sim}/v1"))
            .env("OPENAI_API_KEY", "sk-loadtest-upstream");
    }
    spawn_listening(c, "voxgate listening on ").await
}

/// Run `voxgate loadtest` with `args` (whitespace-separated); returns its exit code and the parsed results.json.
async fn loadtest(out: &Path, args: &str) -> (i32, Value, String) {
    let output = tokio::time::timeout(
        RUN_WAIT,
        voxgate()
            .arg("loadtest")
            .args(args.split_whitespace())
            .arg("--out")
            .arg(out)
            .arg("--quiet")
            .output(),
    )
    .await
    .expect("loadtest finished in time")
    .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let results = std::fs::read_to_string(out.join("results.json")).expect("results.json written");
    let results: Value = serde_json::from_str(&results).expect("results.json is JSON");
    (output.status.code().unwrap_or(-1), results, stdout)
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("loadtest-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn twenty_sessions_pass_their_thresholds(transport: &str) {
    let (_gw, addr) = gateway(None).await;
    let out = out_dir(transport);
    let target = format!("http://{addr}");
    let (code, r, stdout) = loadtest(
        &out,
        &format!(
            "--target {target} --transport {transport} --sessions 20 --duration 5 --speech-ms 600 --pause-ms 300 --barge-in 0.3 --delegation 0.2 --max-error-rate 0.05 --max-p99-ms 5000 --max-p99-setup-ms 5000"
        ),
    )
    .await;
    assert_eq!(code, 0, "loadtest failed its thresholds:\n{stdout}");
    assert_eq!(r["thresholds"]["passed"], true);
    assert!(
        r["sessions"]["established"].as_u64() >= Some(20),
        "{}",
        r["sessions"]
    );
    assert_eq!(r["sessions"]["failed"], 0, "{}", r["errors"]);
    assert_eq!(
        r["setup_ms"]["count"].as_u64(),
        r["sessions"]["established"].as_u64()
    );
    assert!(
        r["first_audio_ms"]["count"].as_u64() > Some(0),
        "no reply was heard"
    );
    assert!(
        r["frames"]["sent"].as_u64() > Some(20 * 100),
        "{}",
        r["frames"]
    );
    assert!(r["frames"]["received"].as_u64() > Some(0));
    // The gateway's own counters moved, read from its /metrics, and its CPU/RSS were sampled.
    assert!(
        r["gateway"]["audio_frames_in"].as_f64() > Some(0.0),
        "{}",
        r["gateway"]
    );
    assert!(r["gateway"]["sessions_started"].as_f64() >= Some(20.0));
    assert!(
        r["resources"]["rss_max_kb"].as_u64() > Some(0),
        "{}",
        r["resources"]
    );
    assert!(
        !r["resources"]["samples"]
            .as_array()
            .expect("samples")
            .is_empty()
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written");
    assert!(html.contains("<svg"), "the report has no plot");
    assert!(html.contains("voxgate CPU") && html.contains("voxgate memory (RSS)"));
    // Latency and sessions over time, in results.json and drawn.
    assert!(html.contains("sessions up") && html.contains("first audio over time"));
    let timeline = r["timeline"].as_array().expect("timeline");
    assert!(
        timeline
            .iter()
            .any(|p| p["active_sessions"].as_u64() >= Some(20)),
        "{timeline:?}"
    );
    assert!(
        timeline.iter().any(|p| p["latency_p99_ms"].is_number()),
        "{timeline:?}"
    );
    // Figures have human labels and say what they count; no raw keys.
    assert!(
        html.contains("<td>truncations</td>"),
        "labelled gateway rows"
    );
    assert!(html.contains("replies cut where the caller stopped hearing them"));
    assert!(
        !html.contains("gateway.") && !html.contains("_bucket"),
        "raw keys in the report"
    );
    assert!(stdout.contains("verdict: PASSED"), "{stdout}");
    // Counts are whole numbers, as a person writes them.
    let frames = stdout
        .lines()
        .find(|l| l.starts_with("audio frames: "))
        .expect("a frames line");
    assert!(!frames.contains('.'), "{frames}");
    let md = std::fs::read_to_string(out.join("summary.md")).expect("summary.md written");
    assert!(md.starts_with("## voxgate loadtest: PASSED"), "{md}");
    assert!(md.contains("| first audio |"), "{md}");
}

#[tokio::test]
async fn rpc_loadtest_passes_its_thresholds() {
    twenty_sessions_pass_their_thresholds("rpc").await;
}

#[tokio::test]
async fn ws_loadtest_passes_its_thresholds() {
    twenty_sessions_pass_their_thresholds("ws").await;
}

#[tokio::test]
async fn webrtc_loadtest_passes_its_thresholds() {
    twenty_sessions_pass_their_thresholds("webrtc").await;
}

#[tokio::test]
async fn echo_mode_measures_what_voxgate_adds_over_the_model_alone() {
    let mut sim = voxgate();
    sim.args(["simulate", "--listen", "127.0.0.1:0", "--echo"]);
    let (_sim, sim_addr) = spawn_listening(sim, "simulator listening on ").await;
    let (_gw, addr) = gateway(Some(&sim_addr)).await;
    let out = out_dir("echo");
    let (target, direct) = (format!("http://{addr}"), format!("http://{sim_addr}"));
    let (code, r, stdout) = loadtest(
        &out,
        &format!(
            "--target {target} --direct {direct} --echo --transport rpc --sessions 10 --duration 3 --max-error-rate 0"
        ),
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    let rtt = r["rtt_ms"]["count"].as_u64().unwrap_or(0);
    let direct_rtt = r["direct_rtt_ms"]["count"].as_u64().unwrap_or(0);
    assert!(
        rtt > 500 && direct_rtt > 500,
        "{} / {}",
        r["rtt_ms"],
        r["direct_rtt_ms"]
    );
    // Every echoed frame is recognised by its marker; frames still in flight at the end are the
    // only ones that may be missing.
    let frames = &r["frames"];
    assert!(
        frames["received"].as_u64().unwrap_or(0) + 10 * 5 >= frames["sent"].as_u64().unwrap_or(0),
        "{frames}"
    );
    for k in [
        "round_trip_p50",
        "round_trip_p99",
        "per_direction_p50",
        "per_direction_p99",
    ] {
        assert!(
            r["added_latency_ms"][k].is_number(),
            "{k} missing: {}",
            r["added_latency_ms"]
        );
    }
}

#[tokio::test]
async fn an_unmet_threshold_exits_non_zero_and_says_why() {
    let (_gw, addr) = gateway(None).await;
    let out = out_dir("unmet");
    let target = format!("http://{addr}");
    let (code, r, stdout) = loadtest(
        &out,
        &format!(
            "--target {target} --transport ws --sessions 2 --duration 3 --speech-ms 400 --pause-ms 200 --max-p99-setup-ms 0.000001"
        ),
    )
    .await;
    assert_eq!(code, 3, "{stdout}");
    assert_eq!(r["thresholds"]["passed"], false);
    assert!(stdout.contains("THRESHOLD EXCEEDED: p99 setup"), "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written");
    assert!(html.contains("FAILED"));
}

#[tokio::test]
async fn without_thresholds_the_verdict_says_so_and_a_dead_target_is_connection_refused() {
    let (_gw, addr) = gateway(None).await;
    let out = out_dir("no-thresholds");
    let (code, r, stdout) = loadtest(
        &out,
        &format!(
            "--target http://{addr} --transport ws --sessions 2 --duration 2 --speech-ms 400 --pause-ms 200"
        ),
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["thresholds"]["set"], false);
    assert!(stdout.contains("verdict: no thresholds set"), "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html written");
    assert!(html.contains("no thresholds set") && !html.contains("PASSED"));

    // Nothing listens: said at once, as such.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let output = tokio::time::timeout(
        WAIT,
        common::voxgate_bin(env!("CARGO_BIN_EXE_voxgate"))
            .args([
                "loadtest",
                "--target",
                &format!("http://127.0.0.1:{port}"),
                "--sessions",
                "1",
                "--duration",
                "1",
            ])
            .stderr(std::process::Stdio::piped())
            .output(),
    )
    .await
    .expect("fails fast")
    .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("connection refused: nothing listens at"),
        "{stderr}"
    );
}

/// `loadtest compare` on two real runs' results.
#[tokio::test]
async fn two_runs_compare_side_by_side() {
    let (_gw, addr) = gateway(None).await;
    let target = format!("http://{addr}");
    let (a, b) = (out_dir("compare-a"), out_dir("compare-b"));
    for (out, sessions) in [(&a, 5), (&b, 8)] {
        let (code, _, stdout) = loadtest(
            out,
            &format!("--target {target} --transport ws --sessions {sessions} --duration 3"),
        )
        .await;
        assert_eq!(code, 0, "{stdout}");
    }
    let out = tokio::time::timeout(
        WAIT,
        voxgate()
            .args(["loadtest", "compare"])
            .arg(&a)
            .arg(b.join("results.json"))
            .output(),
    )
    .await
    .expect("compare in time")
    .expect("run compare");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("A: ") && text.contains("(ws 5 sessions × 3 s)"),
        "{text}"
    );
    assert!(text.contains("not set up alike"), "5 vs 8 sessions: {text}");
    for row in [
        "sessions established",
        "first audio p99 (ms)",
        "voxgate memory max (KiB)",
    ] {
        assert!(text.contains(row), "{row}: {text}");
    }
    assert!(
        text.contains("better,") && text.contains("worse (by 5 % or more)"),
        "{text}"
    );
    let bad = voxgate()
        .args(["loadtest", "compare"])
        .arg(&a)
        .arg(a.join("nothing-here.json"))
        .output()
        .await
        .expect("run compare");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nothing-here.json"),
        "names the file it could not read"
    );
}

/// The report as a person sees it: rendered by Chromium, every chart's and table's text at
/// least 14 px (a screenshot is left in target/tmp/loadtest-report.png).
#[cfg_attr(
    not(voxgate_e2e_chromium),
    ignore = "needs Debian chromium and npm ci --prefix e2e"
)]
#[tokio::test]
async fn the_report_reads_at_a_glance_in_chromium() {
    let (_gw, addr) = gateway(None).await;
    let b = out_dir("report-shot");
    let (code, _, stdout) = loadtest(
        &b,
        &format!("--target http://{addr} --transport ws --sessions 8 --duration 3"),
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("loadtest-report.png");
    let page = format!("file://{}", b.join("report.html").display());
    let s = common::node_client("screenshot.mjs", &[page.as_ref(), shot.as_ref()]).await;
    assert!(s.get("error").is_none(), "{s}");
    assert!(s["charts"].as_u64() >= Some(5), "{s}");
    assert!(
        s["minSvgFontPx"].as_f64() >= Some(14.0),
        "chart text too small: {s}"
    );
    assert!(s["minTableFontPx"].as_f64() >= Some(14.0), "{s}");
    assert!(shot.exists());
}
