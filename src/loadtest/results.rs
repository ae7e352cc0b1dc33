//! The run's results: `results.json` (scenario, every measured figure, the gateway's counters and
//! resources, threshold verdicts) built from a measured phase and its baseline, and the summary
//! table printed at the end.

use super::scenario::Scenario;
use super::stats::{self, Dist};
use super::{LoadtestArgs, Phase, gateway_metrics, sysmon};

pub(super) fn results_json(
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

pub(super) fn print_summary(r: &serde_json::Value) {
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
