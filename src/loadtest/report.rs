//! The run's report: `results.json` (everything measured) and `report.html` (summary tables,
//! latency histograms and the gateway's CPU/RSS over time as SVG drawn with plotters).

use super::sysmon::Sample;
use plotters::prelude::*;
use serde_json::Value;
use std::fmt::Write as _;

/// Bars of `samples` (ms) in up to 40 equal bins; an empty chart when there are none.
pub fn histogram_svg(title: &str, samples: &[f64]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 260)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = samples.iter().copied().fold(0.0f64, f64::max).max(1.0);
        let bins = 40usize;
        let width = max / bins as f64;
        let mut counts = vec![0u32; bins];
        for s in samples {
            let i = ((s / width) as usize).min(bins - 1);
            counts[i] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..max * 1.02, 0u32..top + top / 10 + 1);
        if let Ok(mut chart) = chart {
            let _ = chart.configure_mesh().x_desc("ms").y_desc("count").draw();
            let _ = chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = i as f64 * width;
                Rectangle::new([(x0, 0), (x0 + width, *c)], BLUE.mix(0.6).filled())
            }));
        }
        let _ = root.present();
    }
    svg
}

/// A line over the run's time axis of one resource of the gateway.
pub fn timeline_svg(title: &str, unit: &str, points: &[(f64, f64)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 260)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let t_max = points.iter().map(|p| p.0).fold(1.0f64, f64::max);
        let y_max = points.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max);
        if let Ok(mut chart) = chart {
            let _ = chart.configure_mesh().x_desc("s").y_desc(unit).draw();
            let _ = chart.draw_series(LineSeries::new(points.iter().copied(), RED.stroke_width(2)));
        }
        let _ = root.present();
    }
    svg
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn dist_row(out: &mut String, name: &str, d: &Value) {
    if d["count"].as_u64().unwrap_or(0) == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(name),
        d["count"],
        d["p50"],
        d["p90"],
        d["p99"],
        d["max"]
    );
}

/// The HTML page for `results` with its charts.
pub fn html(results: &Value, latency: &[(&str, &[f64])], resources: &[Sample]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>voxgate loadtest</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}\
         .charts{{display:flex;flex-wrap:wrap;gap:12px}}.fail{{color:#b00}}.pass{{color:#070}}</style></head><body>"
    );
    let verdict = match super::results::verdict(results).0 {
        "FAILED" => "<span class=fail>FAILED</span>",
        "PASSED" => "<span class=pass>PASSED</span>",
        other => other,
    };
    let _ = write!(
        out,
        "<h1>voxgate loadtest — {verdict}</h1><p>{} sessions over <b>{}</b> for {} s against {} (seed {}).</p>",
        results["config"]["sessions"],
        esc(results["config"]["transport"].as_str().unwrap_or("")),
        results["config"]["duration_s"],
        esc(results["config"]["target"].as_str().unwrap_or("")),
        results["config"]["seed"],
    );
    for v in results["thresholds"]["violations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = write!(out, "<p class=fail>{}</p>", esc(v.as_str().unwrap_or("")));
    }
    out.push_str("<h2>Latency (ms)</h2><table><tr><th>figure</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>");
    for (name, key) in [
        ("setup (offer→answer / start→started)", "setup_ms"),
        ("first audio after end of speech", "first_audio_ms"),
        ("echo round trip through voxgate", "rtt_ms"),
        ("echo round trip direct to the model", "direct_rtt_ms"),
        ("delegation → result spoken", "delegation_ms"),
    ] {
        dist_row(&mut out, name, &results[key]);
    }
    out.push_str("</table>");
    if let Some(added) = results["added_latency_ms"].as_object() {
        out.push_str(
            "<h2>Gateway-added latency (ms)</h2><table><tr><th>figure</th><th>value</th></tr>",
        );
        for (k, v) in added {
            let _ = write!(out, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Sessions, frames, errors</h2><table><tr><th>figure</th><th>value</th></tr>");
    for section in ["sessions", "frames", "turns", "gateway"] {
        if let Some(o) = results[section].as_object() {
            for (k, v) in o {
                let _ = write!(out, "<tr><td>{section}.{}</td><td>{v}</td></tr>", esc(k));
            }
        }
    }
    if let Some(o) = results["errors"].as_object() {
        for (k, v) in o {
            let _ = write!(out, "<tr><td>errors.{}</td><td>{v}</td></tr>", esc(k));
        }
    }
    out.push_str("</table><h2>Charts</h2><div class=charts>");
    for (title, samples) in latency {
        if !samples.is_empty() {
            out.push_str(&histogram_svg(title, samples));
        }
    }
    let cpu: Vec<(f64, f64)> = resources.iter().map(|s| (s.t, s.cpu_pct)).collect();
    let rss: Vec<(f64, f64)> = resources
        .iter()
        .map(|s| (s.t, s.rss_kb as f64 / 1024.0))
        .collect();
    out.push_str(&timeline_svg("voxgate CPU", "% of one core", &cpu));
    out.push_str(&timeline_svg("voxgate RSS", "MiB", &rss));
    out.push_str("</div></body></html>\n");
    out
}
