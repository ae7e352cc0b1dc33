//! `voxgate loadtest`: drives many synthetic voice sessions against a running voxgate through one
//! face (`rpc`, `ws`, `webrtc`), at real-time pace, and reports setup time, first-audio latency,
//! echo round trips (and, with `--direct`, what voxgate adds over the model alone), frames lost
//! and late, errors by kind, truncations, and the gateway's CPU and RSS. Writes `results.json`
//! and `report.html`, and exits non-zero when a threshold is exceeded. It connects only to the
//! addresses it is given and stops by itself.

pub mod client_rpc;
pub mod client_webrtc;
pub mod client_ws;
pub mod compare;
mod gateway_metrics;
pub mod report;
mod results;
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

/// `voxgate loadtest` subcommands (a run itself needs none).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LoadtestAction {
    /// Compare two runs: each headline figure of A and B, the change, better or worse.
    Compare {
        /// The first run's results.json (or its --out directory).
        a: PathBuf,
        /// The second run's results.json (or its --out directory).
        b: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadtestArgs {
    #[command(subcommand)]
    pub action: Option<LoadtestAction>,
    /// The voxgate to load, e.g. http://127.0.0.1:8080.
    #[arg(long, required = true)]
    pub target: Option<String>,
    /// The face the callers use [default: ws].
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Concurrent sessions [default: 10].
    #[arg(long)]
    pub sessions: Option<usize>,
    /// Run length in seconds [default: 30].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Directory for results.json and report.html.
    #[arg(long, default_value = "loadtest-out")]
    pub out: PathBuf,
    /// TOML scenario file (keys as the long flags, with `_`); flags win over it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Sessions started per second while ramping up [default: 50].
    #[arg(long)]
    pub ramp: Option<f64>,
    /// Length of each session; a slot starts a new session when one ends (default: the whole run).
    #[arg(long)]
    pub session_secs: Option<f64>,
    /// Speech per turn (ms, ±20 %) [default: 1200].
    #[arg(long)]
    pub speech_ms: Option<u64>,
    /// Pause between turns (ms, ±20 %) [default: 800].
    #[arg(long)]
    pub pause_ms: Option<u64>,
    /// Audio per message on rpc and ws (a multiple of 20 ms) [default: 20].
    #[arg(long)]
    pub frame_ms: Option<u64>,
    /// Probability a turn barges in on the model's reply at a random offset [default: 0].
    #[arg(long)]
    pub barge_in: Option<f64>,
    /// Probability a turn asks for delegated work instead of speaking [default: 0].
    #[arg(long)]
    pub delegation: Option<f64>,
    /// Seed of the callers' random choices (same seed, same run) [default: 1].
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
    /// An echoed frame slower than this counts as late (ms) [default: 100].
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
            frame_ms: self.frame_ms.or(file.frame_ms).unwrap_or(20),
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
pub(crate) struct Phase {
    agg: Aggregate,
    monitor: Option<sysmon::Monitor>,
    timeline: Vec<stats::TimePoint>,
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
        frame_ms: sc.frame_ms,
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
    let mut timeline = stats::Timeline::default();
    loop {
        tokio::select! {
            _ = every.tick() => {
                let (active, line) = {
                    let a = shared.lock();
                    timeline.sample(started.elapsed().as_secs_f64(), &a, echo);
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
    Ok(Phase {
        agg,
        monitor,
        timeline: timeline.points,
    })
}

/// Fail fast when nothing listens at `base` (an `http://host:port` URL).
async fn reachable(base: &str) -> anyhow::Result<()> {
    let authority = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let connect = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(authority),
    )
    .await;
    match connect {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => anyhow::bail!(
            "connection refused: nothing listens at {base} (is `voxgate serve` running there?)"
        ),
        Ok(Err(e)) => anyhow::bail!("cannot reach {base}: {e}"),
        Err(_) => anyhow::bail!("cannot reach {base}: no answer to a connect within 5 s"),
    }
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
    if let Some(LoadtestAction::Compare { a, b }) = &args.action {
        compare::run(a, b)?;
        return Ok(0);
    }
    let sc = args.scenario()?;
    let target = base_url(args.target.as_deref().unwrap_or_default())?;
    let direct = args.direct.as_deref().map(base_url).transpose()?;
    // Nothing listening is said as such, at once, not as a failed load test minutes later.
    for base in std::iter::once(&target).chain(direct.as_ref()) {
        reachable(base).await?;
    }
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
    let results = results::results_json(
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
    results::print_summary(&results);
    let md_path = args.out.join("summary.md");
    std::fs::write(&md_path, results::summary_markdown(&results))
        .with_context(|| format!("writing {}", md_path.display()))?;
    println!(
        "wrote {}, {} and {}",
        json_path.display(),
        html_path.display(),
        md_path.display()
    );
    Ok(if results["thresholds"]["passed"] == true {
        0
    } else {
        EXIT_THRESHOLD
    })
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
