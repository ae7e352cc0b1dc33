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
        "timeline_latency": if sc.echo { "echo round trip" } else { "first audio" },
        "timeline": phase.timeline,
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
            "set": args.max_error_rate.is_some() || args.max_p99_ms.is_some()
                || args.max_p99_setup_ms.is_some() || args.max_p99_added_ms.is_some(),
            "passed": violations.is_empty(), "violations": violations,
        },
    })
}

/// A figure as a person reads it: whole numbers without a decimal point, others to 0.1.
pub(super) fn num(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f:.1}"),
        None => v.as_str().map_or_else(|| "–".to_owned(), str::to_owned),
    }
}

/// The verdict: thresholds exceeded (each), passed, or none set.
pub(super) fn verdict(r: &serde_json::Value) -> (&'static str, Vec<String>) {
    let violations: Vec<String> = r["thresholds"]["violations"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !violations.is_empty() {
        ("FAILED", violations)
    } else if r["thresholds"]["set"] == true {
        ("PASSED", violations)
    } else {
        ("no thresholds set", violations)
    }
}

/// How a person reads a figure of `results.json`'s count sections: a label and what it counts.
pub(super) fn figure_label(section: &str, key: &str) -> (String, &'static str) {
    let known: Option<(&str, &'static str)> = match (section, key) {
        ("sessions", "attempted") => Some(("sessions attempted", "sessions the load test opened")),
        ("sessions", "established") => Some(("sessions established", "sessions that got ready")),
        ("sessions", "failed") => Some(("sessions failed", "refused, timed out or ended in error")),
        ("sessions", "error_rate") => Some((
            "error rate",
            "the worse of failed sessions and unanswered turns (0–1)",
        )),
        ("sessions", "setups_per_sec") => {
            Some(("setups per second", "sessions established / run length"))
        }
        ("frames", "sent") => Some(("audio frames sent", "20 ms frames the callers sent")),
        ("frames", "received") => Some((
            "audio frames received",
            "model audio frames the callers got",
        )),
        ("frames", "lost") => Some((
            "audio frames lost",
            "echoed frames that never came back (--echo)",
        )),
        ("frames", "late") => Some(("audio frames late", "echoed frames later than --late-ms")),
        ("turns", "turns") => Some(("turns", "spoken turns the callers took")),
        ("turns", "barge_ins") => Some(("barge-ins", "turns that interrupted the model's reply")),
        ("turns", "delegations_requested") => {
            Some(("delegations asked", "turns asking for delegated work"))
        }
        ("turns", "delegations_done") => Some(("delegations done", "delegated results heard")),
        ("gateway", "truncations") => Some((
            "truncations",
            "replies cut where the caller stopped hearing them (barge-ins into audio still playing)",
        )),
        ("gateway", "audio_frames_in") => Some((
            "audio frames in",
            "caller audio voxgate passed to the model",
        )),
        ("gateway", "audio_frames_out") => {
            Some(("audio frames out", "model audio voxgate passed to callers"))
        }
        ("gateway", "audio_frames_dropped") => Some((
            "audio frames dropped",
            "model audio dropped for callers that did not keep up",
        )),
        ("gateway", "sessions_started") => {
            Some(("sessions started", "conversations voxgate started"))
        }
        ("gateway", "sessions_closed") => Some(("sessions closed", "conversations voxgate ended")),
        ("gateway", "response_create_deferred") => Some((
            "response.create deferred",
            "held back until the active response ended (one-active-response rule)",
        )),
        ("gateway", "handoffs_started") => {
            Some(("delegations started", "background_agent calls voxgate ran"))
        }
        ("gateway", "processing_p99_ms_to_model_bucket") => Some((
            "voxgate processing p99, to the model (ms)",
            "voxgate's own time per frame toward the model (histogram bucket bound)",
        )),
        ("gateway", "processing_p99_ms_to_client_bucket") => Some((
            "voxgate processing p99, to callers (ms)",
            "voxgate's own time per frame toward the caller (histogram bucket bound)",
        )),
        _ => None,
    };
    match known {
        Some((label, what)) => (label.to_owned(), what),
        None if section == "errors" => (
            format!("errors: {}", key.replace('_', " ")),
            "errors of this kind",
        ),
        None => (key.replace('_', " "), ""),
    }
}

/// The latency rows: label, what it measures, and the results key.
pub(super) const LATENCY_ROWS: &[(&str, &str, &str)] = &[
    ("setup", "connect to session ready", "setup_ms"),
    (
        "first audio",
        "end of speech to the model's first audio (includes its end-of-turn silence: 500 ms on the simulator)",
        "first_audio_ms",
    ),
    (
        "echo round trip",
        "audio out and back through voxgate (--echo)",
        "rtt_ms",
    ),
    (
        "echo round trip, direct",
        "the same straight to the model (--direct)",
        "direct_rtt_ms",
    ),
    (
        "delegation",
        "delegation asked to its result heard",
        "delegation_ms",
    ),
];

pub(super) fn print_summary(r: &serde_json::Value) {
    println!(
        "\nvoxgate loadtest: {} {} sessions for {} s against {}",
        num(&r["config"]["sessions"]),
        r["config"]["transport"].as_str().unwrap_or(""),
        num(&r["config"]["duration_s"]),
        r["config"]["target"].as_str().unwrap_or("")
    );
    println!(
        "sessions: {} attempted, {} established, {} failed (error rate {})",
        num(&r["sessions"]["attempted"]),
        num(&r["sessions"]["established"]),
        num(&r["sessions"]["failed"]),
        num(&r["sessions"]["error_rate"])
    );
    println!(
        "\n{:<25} {:>8} {:>10} {:>10} {:>10}  what it measures",
        "latency", "count", "p50 ms", "p99 ms", "max ms"
    );
    for (name, what, key) in LATENCY_ROWS {
        let d = &r[*key];
        if d["count"].as_u64().unwrap_or(0) > 0 {
            println!(
                "{name:<25} {:>8} {:>10} {:>10} {:>10}  {what}",
                num(&d["count"]),
                num(&d["p50"]),
                num(&d["p99"]),
                num(&d["max"])
            );
        }
    }
    if let Some(a) = r["added_latency_ms"].as_object() {
        for (k, v) in a {
            println!(
                "added by voxgate, {:<24} {:>7} ms",
                k.replace('_', " "),
                num(v)
            );
        }
    }
    println!(
        "\naudio frames: {} sent, {} received, {} lost, {} late",
        num(&r["frames"]["sent"]),
        num(&r["frames"]["received"]),
        num(&r["frames"]["lost"]),
        num(&r["frames"]["late"])
    );
    println!(
        "turns: {}, barge-ins {}, delegations {} of {} done, truncations {} (a reply cut where \
         the caller stopped hearing it: only a barge-in into audio still playing makes one)",
        num(&r["turns"]["turns"]),
        num(&r["turns"]["barge_ins"]),
        num(&r["turns"]["delegations_done"]),
        num(&r["turns"]["delegations_requested"]),
        num(&r["gateway"]["truncations"])
    );
    if let Some(e) = r["errors"].as_object().filter(|e| !e.is_empty()) {
        let list: Vec<String> = e.iter().map(|(k, v)| format!("{k} {}", num(v))).collect();
        println!("errors: {}", list.join(", "));
    }
    println!(
        "voxgate: {} % of a core ({} % per session), memory max {} KiB ({} KiB per session)",
        num(&r["resources"]["steady_cpu_pct"]),
        num(&r["resources"]["steady_cpu_pct_per_session"]),
        num(&r["resources"]["rss_max_kb"]),
        num(&r["resources"]["rss_per_session_kb"])
    );
    let (word, violations) = verdict(r);
    for v in &violations {
        println!("THRESHOLD EXCEEDED: {v}");
    }
    println!("verdict: {word}");
}

/// `summary.md`: the same figures as a Markdown table, for CI logs and pull requests.
pub(super) fn summary_markdown(r: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (word, violations) = verdict(r);
    let _ = writeln!(
        out,
        "## voxgate loadtest: {word}\n\n{} {} sessions for {} s against `{}` — {} established, {} failed (error rate {}).\n",
        num(&r["config"]["sessions"]),
        r["config"]["transport"].as_str().unwrap_or(""),
        num(&r["config"]["duration_s"]),
        r["config"]["target"].as_str().unwrap_or(""),
        num(&r["sessions"]["established"]),
        num(&r["sessions"]["failed"]),
        num(&r["sessions"]["error_rate"]),
    );
    let _ = writeln!(
        out,
        "| latency | count | p50 ms | p99 ms | max ms | what it measures |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for (name, what, key) in LATENCY_ROWS {
        let d = &r[*key];
        if d["count"].as_u64().unwrap_or(0) > 0 {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {what} |",
                num(&d["count"]),
                num(&d["p50"]),
                num(&d["p99"]),
                num(&d["max"])
            );
        }
    }
    let _ = writeln!(
        out,
        "\nvoxgate: {} % of a core, {} KiB memory at most.",
        num(&r["resources"]["steady_cpu_pct"]),
        num(&r["resources"]["rss_max_kb"])
    );
    for v in violations {
        let _ = writeln!(out, "\n- threshold exceeded: {v}");
    }
    out
}
