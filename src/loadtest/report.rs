//! The run's report: `results.json` (everything measured) and `report.html` (summary tables,
//! latency histograms and the gateway's CPU/RSS over time as SVG drawn with plotters).

use super::sysmon::Sample;
use plotters::prelude::*;
use serde_json::Value;
use std::fmt::Write as _;

/// Chart size and type sizes (plotters draws text at about 0.8 of the size asked for: labels come
/// out near 15 px, titles near 22 px), readable at 100 % zoom; checked in e2e_loadtest.
const CHART: (u32, u32) = (640, 320);
const TITLE_PX: u32 = 28;
const LABEL_PX: u32 = 19;

/// Bars of `samples` (ms) in up to 40 equal bins over the samples' own range (a run whose
/// figures all sit near one value still shows their spread); an empty chart when there are none.
pub fn histogram_svg(title: &str, samples: &[f64]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = samples.iter().copied().fold(f64::MIN, f64::max).max(0.0);
        let min = samples.iter().copied().fold(f64::MAX, f64::min).min(max);
        let pad = ((max - min) * 0.05).max(1.0);
        let (lo, hi) = ((min - pad).max(0.0), max + pad);
        let bins = 40usize;
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0u32; bins];
        for s in samples {
            let i = (((s - lo) / width) as usize).min(bins - 1);
            counts[i] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", TITLE_PX))
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0u32..top + top / 10 + 1);
        if let Ok(mut chart) = chart {
            let _ = chart
                .configure_mesh()
                .x_desc("ms")
                .y_desc("count")
                .label_style(("sans-serif", LABEL_PX))
                .axis_desc_style(("sans-serif", LABEL_PX))
                .draw();
            let _ = chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0), (x0 + width, *c)], BLUE.mix(0.6).filled())
            }));
        }
        let _ = root.present();
    }
    svg
}

/// A named, coloured line of (seconds, value) points.
pub type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// Lines over the run's time axis: each series a name, a colour and its points.
pub fn timeline_svg(title: &str, unit: &str, series: &[Series<'_>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART).into_drawing_area();
        let _ = root.fill(&WHITE);
        let all = || series.iter().flat_map(|s| s.2.iter());
        let t_max = all().map(|p| p.0).fold(1.0f64, f64::max);
        let y_max = all().map(|p| p.1).fold(1.0f64, f64::max) * 1.1;
        let chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", TITLE_PX))
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max);
        if let Ok(mut chart) = chart {
            let _ = chart
                .configure_mesh()
                .x_desc("s")
                .y_desc(unit)
                .label_style(("sans-serif", LABEL_PX))
                .axis_desc_style(("sans-serif", LABEL_PX))
                .draw();
            for (name, colour, points) in series {
                let colour = *colour;
                if let Ok(drawn) = chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                )) {
                    drawn.label(*name).legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                }
            }
            if series.len() > 1 {
                let _ = chart
                    .configure_series_labels()
                    .label_font(("sans-serif", LABEL_PX))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw();
            }
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

fn dist_row(out: &mut String, name: &str, what: &str, d: &Value) {
    if d["count"].as_u64().unwrap_or(0) == 0 {
        return;
    }
    let num = super::results::num;
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=what>{}</td></tr>",
        esc(name),
        num(&d["count"]),
        num(&d["p50"]),
        num(&d["p90"]),
        num(&d["p99"]),
        num(&d["max"]),
        esc(what)
    );
}

/// The HTML page for `results` with its charts.
pub fn html(results: &Value, latency: &[(&str, &[f64])], resources: &[Sample]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>voxgate loadtest</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td.what{{text-align:left}}td.what{{color:#555}}\
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
    out.push_str("<h2>Latency (ms)</h2><table><tr><th>figure</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>what it measures</th></tr>");
    for (name, what, key) in super::results::LATENCY_ROWS {
        dist_row(&mut out, name, what, &results[*key]);
    }
    out.push_str("</table>");
    if let Some(added) = results["added_latency_ms"].as_object() {
        out.push_str(
            "<h2>Latency voxgate adds (ms)</h2><table><tr><th>figure</th><th>value</th></tr>",
        );
        for (k, v) in added {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&k.replace('_', " ")),
                super::results::num(v)
            );
        }
        out.push_str("</table>");
    }
    for (heading, sections) in [
        ("Sessions and turns", &["sessions", "turns", "frames"][..]),
        ("Inside voxgate (from its /metrics)", &["gateway"][..]),
        ("Errors by kind", &["errors"][..]),
    ] {
        let rows: Vec<(String, &str, String)> = sections
            .iter()
            .flat_map(|section| {
                results[*section]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(k, v)| {
                        let (label, what) = super::results::figure_label(section, k);
                        (label, what, super::results::num(v))
                    })
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "<h2>{heading}</h2><table><tr><th>figure</th><th>value</th><th>what it counts</th></tr>"
        );
        for (label, what, value) in rows {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=what>{}</td></tr>",
                esc(&label),
                esc(&value),
                esc(what)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h2>Over time</h2><div class=charts>");
    let timeline = results["timeline"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let series = |key: &str| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|p| Some((p["t"].as_f64()?, p[key].as_f64()?)))
            .collect()
    };
    out.push_str(&timeline_svg(
        "sessions up",
        "sessions",
        &[("active", GREEN, series("active_sessions"))],
    ));
    let which = results["timeline_latency"].as_str().unwrap_or("latency");
    out.push_str(&timeline_svg(
        &format!("{which} over time"),
        "ms",
        &[
            ("p50", BLUE, series("latency_p50_ms")),
            ("p99", RED, series("latency_p99_ms")),
        ],
    ));
    let cpu: Vec<(f64, f64)> = resources.iter().map(|s| (s.t, s.cpu_pct)).collect();
    let rss: Vec<(f64, f64)> = resources
        .iter()
        .map(|s| (s.t, s.rss_kb as f64 / 1024.0))
        .collect();
    out.push_str(&timeline_svg(
        "voxgate CPU",
        "% of one core",
        &[("cpu", RED, cpu)],
    ));
    out.push_str(&timeline_svg(
        "voxgate memory (RSS)",
        "MiB",
        &[("rss", RED, rss)],
    ));
    out.push_str("</div><h2>Latency distributions</h2><div class=charts>");
    for (title, samples) in latency {
        if !samples.is_empty() {
            out.push_str(&histogram_svg(title, samples));
        }
    }
    out.push_str("</div></body></html>\n");
    out
}
