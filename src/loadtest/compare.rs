//! `voxgate loadtest compare A B`: two runs' `results.json` side by side — each headline figure of
//! A and B, the change, and whether B is better or worse (at least 5 % apart), with a note when
//! the runs were not set up alike. For a person reading a CI log or judging a change.

use super::results::{LATENCY_ROWS, num};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// Changes smaller than this (in %) are "about the same".
const SAME_PCT: f64 = 5.0;

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub lower_is_better: bool,
}

impl Row {
    /// "better", "worse", "≈" (within 5 %), or "" when a side is missing.
    pub fn judgement(&self) -> &'static str {
        let (Some(a), Some(b)) = (self.a, self.b) else {
            return "";
        };
        let pct = if a == 0.0 {
            if b == 0.0 { 0.0 } else { 100.0 }
        } else {
            (b - a) / a.abs() * 100.0
        };
        if pct.abs() < SAME_PCT {
            "≈"
        } else if (b < a) == self.lower_is_better {
            "better"
        } else {
            "worse"
        }
    }

    fn change(&self) -> String {
        match (self.a, self.b) {
            (Some(a), Some(b)) if a != 0.0 => {
                format!("{:+.1} ({:+.1} %)", b - a, (b - a) / a.abs() * 100.0)
            }
            (Some(a), Some(b)) => format!("{:+.1}", b - a),
            _ => "–".into(),
        }
    }
}

/// The figures compared, in reading order.
pub fn rows(a: &Value, b: &Value) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |label: String, path: &[&str], lower_is_better: bool| {
        let get = |v: &Value| path.iter().fold(v, |v, k| &v[*k]).as_f64();
        if get(a).is_some() || get(b).is_some() {
            rows.push(Row {
                label,
                a: get(a),
                b: get(b),
                lower_is_better,
            });
        }
    };
    push(
        "sessions established".into(),
        &["sessions", "established"],
        false,
    );
    push("error rate".into(), &["sessions", "error_rate"], true);
    for (name, _, key) in LATENCY_ROWS {
        for p in ["p50", "p99"] {
            let counted = |v: &Value| v[*key]["count"].as_u64().unwrap_or(0) > 0;
            if counted(a) || counted(b) {
                push(format!("{name} {p} (ms)"), &[key, p], true);
            }
        }
    }
    for k in [
        "round_trip_p50",
        "round_trip_p99",
        "first_audio_p50",
        "first_audio_p99",
    ] {
        push(
            format!("added by voxgate, {} (ms)", k.replace('_', " ")),
            &["added_latency_ms", k],
            true,
        );
    }
    push("audio frames lost".into(), &["frames", "lost"], true);
    push("audio frames late".into(), &["frames", "late"], true);
    push(
        "audio frames dropped by voxgate".into(),
        &["gateway", "audio_frames_dropped"],
        true,
    );
    push(
        "voxgate CPU (% of a core)".into(),
        &["resources", "steady_cpu_pct"],
        true,
    );
    push(
        "voxgate CPU per session (%)".into(),
        &["resources", "steady_cpu_pct_per_session"],
        true,
    );
    push(
        "voxgate memory max (KiB)".into(),
        &["resources", "rss_max_kb"],
        true,
    );
    push(
        "voxgate memory per session (KiB)".into(),
        &["resources", "rss_per_session_kb"],
        true,
    );
    rows
}

fn setup(r: &Value) -> String {
    format!(
        "{} {} sessions × {} s",
        r["config"]["transport"].as_str().unwrap_or("?"),
        num(&r["config"]["sessions"]),
        num(&r["config"]["duration_s"])
    )
}

/// The comparison as the terminal shows it.
pub fn render(a_name: &str, a: &Value, b_name: &str, b: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "voxgate loadtest compare\n  A: {a_name} ({})\n  B: {b_name} ({})",
        setup(a),
        setup(b)
    );
    if setup(a) != setup(b) || a["config"]["scenario"] != b["config"]["scenario"] {
        let _ = writeln!(
            out,
            "  note: the runs were not set up alike; compare with care"
        );
    }
    let rows = rows(a, b);
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(10);
    let _ = writeln!(
        out,
        "\n{:<width$} {:>12} {:>12} {:>20}  B vs A",
        "figure", "A", "B", "change"
    );
    let show = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| num(&v.into()));
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<width$} {:>12} {:>12} {:>20}  {}",
            r.label,
            show(r.a),
            show(r.b),
            r.change(),
            r.judgement()
        );
    }
    let worse = rows.iter().filter(|r| r.judgement() == "worse").count();
    let better = rows.iter().filter(|r| r.judgement() == "better").count();
    let _ = writeln!(
        out,
        "\n{better} better, {worse} worse (by {SAME_PCT} % or more)"
    );
    out
}

fn load(path: &Path) -> anyhow::Result<Value> {
    use anyhow::Context;
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a loadtest results.json", file.display()))?;
    anyhow::ensure!(
        v["config"].is_object() && v["sessions"].is_object(),
        "{} is not a loadtest results.json",
        file.display()
    );
    Ok(v)
}

/// Print the comparison of two results (a `results.json` or the directory holding one).
pub fn run(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (va, vb) = (load(a)?, load(b)?);
    print!(
        "{}",
        render(&a.display().to_string(), &va, &b.display().to_string(), &vb)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_with(p99: f64, cpu: f64, established: u64) -> Value {
        json!({
            "config": {"transport": "ws", "sessions": 20, "duration_s": 10, "scenario": {}},
            "sessions": {"established": established, "error_rate": 0},
            "first_audio_ms": {"count": 40, "p50": 510.0, "p99": p99},
            "setup_ms": {"count": 20, "p50": 3.0, "p99": 6.0},
            "rtt_ms": {"count": 0},
            "resources": {"steady_cpu_pct": cpu, "rss_max_kb": 20480},
        })
    }

    #[test]
    fn each_figure_is_judged_by_its_direction_and_small_changes_are_the_same() {
        let a = run_with(600.0, 10.0, 20);
        let b = run_with(540.0, 12.0, 20);
        let rows = rows(&a, &b);
        let get = |label: &str| rows.iter().find(|r| r.label == label).expect(label);
        assert_eq!(get("first audio p99 (ms)").judgement(), "better");
        assert_eq!(get("voxgate CPU (% of a core)").judgement(), "worse");
        assert_eq!(get("sessions established").judgement(), "≈");
        assert_eq!(get("first audio p50 (ms)").judgement(), "≈");
        assert!(
            !rows.iter().any(|r| r.label.starts_with("echo round trip")),
            "no samples, no row"
        );
        let text = render("a.json", &a, "b.json", &b);
        assert!(text.contains("first audio p99 (ms)"), "{text}");
        assert!(text.contains("-60.0 (-10.0 %)"), "{text}");
        assert!(text.contains("1 better, 1 worse"), "{text}");
        assert!(!text.contains("not set up alike"), "{text}");
    }

    #[test]
    fn runs_set_up_differently_are_flagged() {
        let a = run_with(600.0, 10.0, 20);
        let mut b = a.clone();
        b["config"]["sessions"] = json!(50);
        assert!(render("a", &a, "b", &b).contains("not set up alike"));
    }
}
