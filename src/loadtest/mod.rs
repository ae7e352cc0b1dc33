//! `voxgate loadtest`: drives many synthetic voice sessions against a running voxgate through one
//! face (`rpc`, `ws`, `webrtc`), at real-time pace, and reports setup time, first-audio latency,
//! echo round trips (and, with `--direct`, what voxgate adds over the model alone), frames lost
//! and late, errors by kind, truncations, and the gateway's CPU and RSS. Writes `results.json`
//! and `report.html`, and exits non-zero when a threshold is exceeded. It connects only to the
//! addresses it is given and stops by itself.

pub mod client_rpc;
pub mod client_webrtc;
pub mod client_ws;
mod gateway_metrics;
pub mod report;
pub mod scenario;
pub mod session;
pub mod speech;
pub mod stats;
pub mod sysmon;
pub mod talker;

use anyhow::Context;
use scenario::{Scenario, ScenarioFile, Transport};
use session::{SessionCtx, Shared};
use stats::{Aggregate, Dist};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit code when the run finished but a threshold was exceeded.
pub const EXIT_THRESHOLD: i32 = 3;

#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// The voxgate to load, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub target: String,
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Concurrent sessions.
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Run length in seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Directory for results.json and report.html.
    #[arg(long, default_value = "loadtest-out")]
    pub out: PathBuf,
    /// TOML scenario file (keys as the long flags, with `_`); flags win over it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Sessions started per second while ramping up.
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Length of each session; a slot starts a new session when one ends (default: the whole run).
    #[arg(long)]
    pub session_secs: Option<f64>,
    /// Speech per turn (ms, ±20 %).
    #[arg(long)]
    pub speech_ms: Option<u64>,
    /// Pause between turns (ms, ±20 %).
    #[arg(long)]
    pub pause_ms: Option<u64>,
    /// Probability a turn barges in on the model's reply at a random offset.
    #[arg(long)]
    pub barge_in: Option<f64>,
    /// Probability a turn asks for delegated work instead of speaking.
    #[arg(long)]
    pub delegation: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// The model echoes input audio (`voxgate simulate --echo`): time per-frame round trips.
    #[arg(long)]
    pub echo: bool,
    /// The model's own base URL (e.g. the simulator's http://127.0.0.1:8090): first measure the
    /// same traffic directly against it, to compute what voxgate adds.
    #[arg(long)]
    pub direct: Option<String>,
    /// voxgate's pid for CPU/RSS sampling (default: the process listening on the target port).
    #[arg(long)]
    pub pid: Option<u32>,
    /// API key sent as Bearer (also to --direct).
    #[arg(
        long,
        env = "VOXGATE_LOADTEST_API_KEY",
        default_value = "sk-loadtest",
        hide_env_values = true
    )]
    pub api_key: String,
    /// An echoed frame slower than this counts as late (ms).
    #[arg(long)]
    pub late_ms: Option<f64>,
    /// Fail (exit 3) when the error rate exceeds this fraction.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Fail when the p99 of the run's main latency (echo round trip, else first audio) exceeds this (ms).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail when the p99 setup time exceeds this (ms).
    #[arg(long)]
    pub max_p99_setup_ms: Option<f64>,
    /// Fail when voxgate's added p99 round trip (needs --direct and --echo) exceeds this (ms).
    #[arg(long)]
    pub max_p99_added_ms: Option<f64>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadtestArgs {
    fn scenario(&self) -> anyhow::Result<Scenario> {
        let file: ScenarioFile = match &self.scenario {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading scenario {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("scenario {}", p.display()))?
            }
            None => ScenarioFile::default(),
        };
        let s = Scenario {
            transport: self.transport.or(file.transport).unwrap_or(Transport::Ws),
            sessions: self.sessions.or(file.sessions).unwrap_or(10),
            duration_secs: self.duration.or(file.duration_secs).unwrap_or(30.0),
            ramp_per_sec: self.ramp.or(file.ramp_per_sec).unwrap_or(50.0),
            session_secs: self.session_secs.or(file.session_secs),
            speech_ms: self.speech_ms.or(file.speech_ms).unwrap_or(1200),
            pause_ms: self.pause_ms.or(file.pause_ms).unwrap_or(800),
            barge_in: self.barge_in.or(file.barge_in).unwrap_or(0.0),
            delegation: self.delegation.or(file.delegation).unwrap_or(0.0),
            seed: self.seed.or(file.seed).unwrap_or(1),
            echo: self.echo || file.echo.unwrap_or(false),
            late_ms: self.late_ms.or(file.late_ms).unwrap_or(100.0),
            turn_timeout_secs: file.turn_timeout_secs.unwrap_or(10.0),
            setup_timeout_secs: file.setup_timeout_secs.unwrap_or(15.0),
        };
        s.validate().map_err(anyhow::Error::msg)?;
        Ok(s)
    }
}

fn base_url(s: &str) -> anyhow::Result<String> {
    let s = s.trim_end_matches('/');
    anyhow::ensure!(
        s.starts_with("http://") || s.starts_with("https://"),
        "--target/--direct must be an http(s) URL like http://127.0.0.1:8080, got {s}"
    );
    Ok(s.to_owned())
}

/// One measured phase (the direct baseline or the run through voxgate).
struct Phase {
    agg: Aggregate,
    monitor: Option<sysmon::Monitor>,
}

struct PhasePlan<'a> {
    base: &'a str,
    transport: Transport,
    duration: Duration,
    label: &'a str,
    pid: Option<u32>,
}

async fn run_phase(
    sc: &Scenario,
    args: &LoadtestArgs,
    plan: PhasePlan<'_>,
) -> anyhow::Result<Phase> {
    let shared = Shared::new();
    let opus = Arc::new(client_webrtc::OpusLoop::new().map_err(anyhow::Error::msg)?);
    let started = Instant::now();
    let end = started + plan.duration;
    let echo = sc.echo;
    let talker = talker::TalkerConfig {
        echo,
        dtx: echo && plan.transport == Transport::Webrtc,
        speech_ms: sc.speech_ms,
        pause_ms: sc.pause_ms,
        barge_in: sc.barge_in,
        delegation: sc.delegation,
        turn_timeout: Duration::from_secs_f64(sc.turn_timeout_secs),
        late_ms: sc.late_ms,
    };
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..sc.sessions {
        let shared = shared.clone();
        let opus = opus.clone();
        let talker = talker.clone();
        let base = plan.base.to_owned();
        let api_key = args.api_key.clone();
        let transport = plan.transport;
        let offset = Duration::from_secs_f64(slot as f64 / sc.ramp_per_sec);
        let session_len = sc.session_secs.map(Duration::from_secs_f64);
        let setup_timeout = Duration::from_secs_f64(sc.setup_timeout_secs);
        let seed = sc.seed;
        slots.spawn(async move {
            tokio::time::sleep_until((started + offset).into()).await;
            let mut k = 0u64;
            while Instant::now() + Duration::from_millis(500) < end {
                let now = Instant::now();
                let ends_at = session_len.map_or(end, |l| (now + l).min(end));
                shared.lock().sessions_attempted += 1;
                let ctx = SessionCtx {
                    base: base.clone(),
                    api_key: api_key.clone(),
                    talker: talker.clone(),
                    seed: seed.wrapping_mul(1_000_003) ^ ((slot as u64) << 24) ^ k,
                    slot,
                    ends_at,
                    setup_timeout,
                    shared: shared.clone(),
                    opus: opus.clone(),
                };
                let r = match transport {
                    Transport::Ws => client_ws::run(&ctx).await,
                    Transport::Rpc => client_rpc::run(&ctx).await,
                    Transport::Webrtc => client_webrtc::run(&ctx).await,
                };
                k += 1;
                if let Err(kind) = r {
                    {
                        let mut a = shared.lock();
                        a.sessions_failed += 1;
                        a.error(&kind);
                    }
                    // Do not hammer a target that refuses: retry the slot after a beat.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
    let pid = plan.pid;
    let mut monitor = pid.map(|p| sysmon::Monitor::new(p, started));
    let bar = progress_bar(args.quiet, plan.duration, plan.label);
    let mut every = tokio::time::interval(sysmon::SAMPLE_EVERY);
    let hard_stop = end + Duration::from_secs_f64(sc.setup_timeout_secs) + Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let (active, line) = {
                    let a = shared.lock();
                    (a.sessions_active, progress_line(&a, sc.sessions))
                };
                if let Some(m) = monitor.as_mut() {
                    m.sample(active);
                }
                bar.set_position(started.elapsed().as_secs().min(plan.duration.as_secs()));
                bar.set_message(line);
                if Instant::now() >= hard_stop {
                    slots.abort_all();
                }
            }
            done = slots.join_next() => if done.is_none() { break },
        }
    }
    bar.finish_and_clear();
    let agg = shared.lock().clone();
    Ok(Phase { agg, monitor })
}

fn progress_bar(quiet: bool, duration: Duration, label: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(duration.as_secs().max(1));
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

fn progress_line(a: &Aggregate, n: usize) -> String {
    let lat = if a.s.rtt_ms.is_empty() {
        ("first-audio", Dist::of(&a.s.first_audio_ms))
    } else {
        ("rtt", Dist::of(&a.s.rtt_ms))
    };
    format!(
        "{}/{n} up · {} errors · {} p50 {:.1} p99 {:.1} ms",
        a.sessions_active,
        a.s.errors.values().sum::<u64>(),
        lat.0,
        lat.1.p50,
        lat.1.p99
    )
}

/// Run the load test; returns the process exit code (0, or [`EXIT_THRESHOLD`]).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<i32> {
    let sc = args.scenario()?;
    let target = base_url(&args.target)?;
    let direct = args.direct.as_deref().map(base_url).transpose()?;
    let pid = args.pid.or_else(|| {
        let port = reqwest::Url::parse(&target).ok()?.port_or_known_default()?;
        sysmon::find_listener(port)
    });
    let duration = Duration::from_secs_f64(sc.duration_secs);
    let baseline = match &direct {
        Some(d) => {
            let transport = if sc.transport == Transport::Webrtc {
                Transport::Webrtc
            } else {
                Transport::Ws
            };
            let plan = PhasePlan {
                base: d,
                transport,
                duration: duration.min(Duration::from_secs(10)),
                label: "direct  ",
                pid: None,
            };
            Some(run_phase(&sc, &args, plan).await?)
        }
        None => None,
    };
    let before = gateway_metrics::scrape(&target, &args.api_key).await;
    let plan = PhasePlan {
        base: &target,
        transport: sc.transport,
        duration,
        label: "voxgate ",
        pid,
    };
    let phase = run_phase(&sc, &args, plan).await?;
    let after = gateway_metrics::scrape(&target, &args.api_key).await;
    let results = results_json(
        &sc,
        &args,
        &target,
        &phase,
        baseline.as_ref(),
        before,
        after,
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json_path = args.out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let s = &phase.agg.s;
    let direct_rtt = baseline
        .as_ref()
        .map(|b| b.agg.s.rtt_ms.as_slice())
        .unwrap_or(&[]);
    let latency: Vec<(&str, &[f64])> = vec![
        ("setup (ms)", &phase.agg.setup_ms),
        ("first audio after end of speech (ms)", &s.first_audio_ms),
        ("echo round trip through voxgate (ms)", &s.rtt_ms),
        ("echo round trip direct (ms)", direct_rtt),
        ("delegation to result (ms)", &s.delegation_ms),
    ];
    let samples = phase
        .monitor
        .as_ref()
        .map(|m| m.samples.as_slice())
        .unwrap_or(&[]);
    let html_path = args.out.join("report.html");
    std::fs::write(&html_path, report::html(&results, &latency, samples))
        .with_context(|| format!("writing {}", html_path.display()))?;
    print_summary(&results);
    println!("wrote {} and {}", json_path.display(), html_path.display());
    Ok(if results["thresholds"]["passed"] == true {
        0
    } else {
        EXIT_THRESHOLD
    })
}

fn results_json(
    sc: &Scenario,
    args: &LoadtestArgs,
    target: &str,
    phase: &Phase,
    baseline: Option<&Phase>,
    before: Option<gateway_metrics::Snapshot>,
    after: Option<gateway_metrics::Snapshot>,
) -> serde_json::Value {
    use serde_json::json;
    let a = &phase.agg;
    let s = &a.s;
    let setup = Dist::of(&a.setup_ms);
    let first = Dist::of(&s.first_audio_ms);
    let rtt = Dist::of(&s.rtt_ms);
    let direct_rtt = baseline.map(|b| Dist::of(&b.agg.s.rtt_ms));
    let direct_first = baseline.map(|b| Dist::of(&b.agg.s.first_audio_ms));
    let mut added = serde_json::Map::new();
    if let Some(d) = direct_rtt.filter(|d| d.count > 0 && rtt.count > 0) {
        let p50 = stats::round3(rtt.p50 - d.p50);
        let p99 = stats::round3(rtt.p99 - d.p99);
        added.insert("round_trip_p50".into(), p50.into());
        added.insert("round_trip_p99".into(), p99.into());
        added.insert("per_direction_p50".into(), stats::round3(p50 / 2.0).into());
        added.insert("per_direction_p99".into(), stats::round3(p99 / 2.0).into());
    }
    if let Some(d) = direct_first.filter(|d| d.count > 0 && first.count > 0) {
        added.insert(
            "first_audio_p50".into(),
            stats::round3(first.p50 - d.p50).into(),
        );
        added.insert(
            "first_audio_p99".into(),
            stats::round3(first.p99 - d.p99).into(),
        );
    }
    let gateway = match (before, after) {
        (Some(b), Some(e)) => e.since(&b),
        _ => json!(null),
    };
    let (cpu_avg, rss_max) = phase
        .monitor
        .as_ref()
        .and_then(|m| {
            let t = sc.duration_secs;
            // Steady state: after the ramp, before the end.
            let ramp = sc.sessions as f64 / sc.ramp_per_sec;
            m.window((ramp + 1.0).min(t / 2.0), t - 0.5)
        })
        .unwrap_or((0.0, 0));
    let steady_sessions = sc.sessions.max(1) as f64;
    let main = if rtt.count > 0 { rtt } else { first };
    let mut violations = Vec::new();
    let error_rate = stats::round3(a.error_rate());
    if let Some(max) = args.max_error_rate
        && error_rate > max
    {
        violations.push(format!("error rate {error_rate} exceeds {max}"));
    }
    if let Some(max) = args.max_p99_ms {
        if main.count == 0 {
            violations.push(format!("no latency samples to hold against p99 ≤ {max} ms"));
        } else if main.p99 > max {
            violations.push(format!("p99 latency {} ms exceeds {max} ms", main.p99));
        }
    }
    if let Some(max) = args.max_p99_setup_ms
        && setup.p99 > max
    {
        violations.push(format!("p99 setup {} ms exceeds {max} ms", setup.p99));
    }
    if let Some(max) = args.max_p99_added_ms {
        match added
            .get("round_trip_p99")
            .and_then(serde_json::Value::as_f64)
        {
            Some(v) if v > max => {
                violations.push(format!("voxgate adds {v} ms p99 round trip, over {max} ms"))
            }
            Some(_) => {}
            None => violations.push("--max-p99-added-ms needs --direct and --echo".into()),
        }
    }
    if a.sessions_established == 0 {
        violations.push("no session was established".into());
    }
    json!({
        "config": {
            "target": target, "transport": sc.transport.as_str(), "sessions": sc.sessions,
            "duration_s": sc.duration_secs, "seed": sc.seed, "scenario": sc,
            "direct": args.direct, "gateway_pid": phase.monitor.as_ref().map(sysmon::Monitor::pid),
        },
        "sessions": {
            "attempted": a.sessions_attempted, "established": a.sessions_established,
            "failed": a.sessions_failed, "error_rate": error_rate,
            "setups_per_sec": stats::round3(a.sessions_established as f64 / sc.duration_secs),
        },
        "errors": s.errors,
        "setup_ms": setup,
        "first_audio_ms": first,
        "rtt_ms": rtt,
        "direct_rtt_ms": direct_rtt,
        "direct_first_audio_ms": direct_first,
        "delegation_ms": Dist::of(&s.delegation_ms),
        "added_latency_ms": if added.is_empty() { json!(null) } else { added.into() },
        "frames": {
            "sent": s.frames_sent, "received": s.frames_received,
            "lost": s.frames_lost, "late": s.frames_late,
        },
        "turns": {
            "turns": s.turns, "barge_ins": s.barge_ins,
            "delegations_requested": s.delegations_requested, "delegations_done": s.delegations_done,
        },
        "gateway": gateway,
        "resources": {
            "steady_cpu_pct": stats::round3(cpu_avg),
            "steady_cpu_pct_per_session": stats::round3(cpu_avg / steady_sessions),
            "rss_max_kb": rss_max,
            "rss_per_session_kb": stats::round3(rss_max as f64 / steady_sessions),
            "samples": phase.monitor.as_ref().map(|m| m.samples.clone()).unwrap_or_default(),
        },
        "thresholds": {
            "max_error_rate": args.max_error_rate, "max_p99_ms": args.max_p99_ms,
            "max_p99_setup_ms": args.max_p99_setup_ms, "max_p99_added_ms": args.max_p99_added_ms,
            "passed": violations.is_empty(), "violations": violations,
        },
    })
}

fn print_summary(r: &serde_json::Value) {
    println!(
        "\nvoxgate loadtest: {} × {} for {} s against {}",
        r["config"]["sessions"],
        r["config"]["transport"].as_str().unwrap_or(""),
        r["config"]["duration_s"],
        r["config"]["target"].as_str().unwrap_or("")
    );
    println!(
        "sessions  attempted {}  established {}  failed {}  error rate {}",
        r["sessions"]["attempted"],
        r["sessions"]["established"],
        r["sessions"]["failed"],
        r["sessions"]["error_rate"]
    );
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "latency (ms)", "count", "p50", "p99", "max"
    );
    for (name, key) in [
        ("setup", "setup_ms"),
        ("first audio after speech", "first_audio_ms"),
        ("echo round trip", "rtt_ms"),
        ("echo round trip, direct", "direct_rtt_ms"),
        ("delegation to result", "delegation_ms"),
    ] {
        let d = &r[key];
        if d["count"].as_u64().unwrap_or(0) > 0 {
            println!(
                "{name:<34} {:>8} {:>9} {:>9} {:>9}",
                d["count"], d["p50"], d["p99"], d["max"]
            );
        }
    }
    if let Some(a) = r["added_latency_ms"].as_object() {
        for (k, v) in a {
            println!("added by voxgate, {k:<22} {v} ms");
        }
    }
    println!(
        "frames    sent {}  received {}  lost {}  late {}",
        r["frames"]["sent"], r["frames"]["received"], r["frames"]["lost"], r["frames"]["late"]
    );
    println!(
        "turns     {}  barge-ins {}  delegations {}/{}  truncations {}",
        r["turns"]["turns"],
        r["turns"]["barge_ins"],
        r["turns"]["delegations_done"],
        r["turns"]["delegations_requested"],
        r["gateway"]["truncations"]
    );
    if let Some(e) = r["errors"].as_object().filter(|e| !e.is_empty()) {
        println!("errors    {}", serde_json::Value::Object(e.clone()));
    }
    println!(
        "voxgate   cpu {} % of a core ({} % per session)  rss max {} KiB ({} KiB per session)",
        r["resources"]["steady_cpu_pct"],
        r["resources"]["steady_cpu_pct_per_session"],
        r["resources"]["rss_max_kb"],
        r["resources"]["rss_per_session_kb"]
    );
    match r["thresholds"]["violations"].as_array() {
        Some(v) if !v.is_empty() => {
            for x in v {
                println!("THRESHOLD EXCEEDED: {}", x.as_str().unwrap_or(""));
            }
        }
        _ => println!("thresholds passed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(extra: &[&str]) -> anyhow::Result<Scenario> {
        let mut argv = vec!["loadtest", "--target", "http://127.0.0.1:1"];
        argv.extend_from_slice(extra);
        Cmd::try_parse_from(argv)?.args.scenario()
    }

    #[test]
    fn flags_win_over_the_scenario_file_which_wins_over_defaults() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/scenarios/conversation.toml"
        );
        let s = parse(&["--scenario", file, "--sessions", "3"]).expect("valid");
        assert_eq!(s.sessions, 3);
        assert_eq!(s.transport, Transport::Webrtc);
        assert_eq!(s.barge_in, 0.25);
        assert_eq!(s.late_ms, 100.0);
    }

    #[test]
    fn out_of_range_settings_are_refused_by_name() {
        let e = parse(&["--barge-in", "1.5"]).expect_err("refused");
        assert!(e.to_string().contains("barge_in"), "{e}");
        let e = parse(&["--sessions", "0"]).expect_err("refused");
        assert!(e.to_string().contains("sessions"), "{e}");
        assert!(base_url("127.0.0.1:8080").is_err());
    }
}
