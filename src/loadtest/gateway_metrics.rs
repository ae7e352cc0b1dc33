//! Reads voxgate's own `/metrics` before and after a run: truncations sent, frames dropped,
//! sessions closed, and the per-direction processing latency histogram, as deltas.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Sample lines of one scrape: series (name with labels) → value.
pub struct Snapshot(BTreeMap<String, f64>);

pub async fn scrape(base: &str, api_key: &str) -> Option<Snapshot> {
    let resp = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(api_key)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    Some(parse(&resp.text().await.ok()?))
}

fn parse(text: &str) -> Snapshot {
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((series, value)) = line.rsplit_once(' ')
            && let Ok(v) = value.parse::<f64>()
        {
            m.insert(series.to_owned(), v);
        }
    }
    Snapshot(m)
}

impl Snapshot {
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn sum_prefix(&self, prefix: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Upper bound (ms) of the bucket holding the 99th percentile of a histogram's delta.
    fn p99_ms(&self, before: &Snapshot, name: &str, labels: &str) -> Option<f64> {
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&format!("{name}_bucket{{{labels},le=\""))?;
                let le = rest.strip_suffix("\"}")?;
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, v - before.get(k)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets
            .iter()
            .find(|(_, c)| *c >= total * 0.99)
            .map(|(le, _)| le * 1000.0)
    }

    /// What moved between `before` and this scrape.
    pub fn since(&self, before: &Snapshot) -> Value {
        let d = |s: &str| self.get(s) - before.get(s);
        let dp = |p: &str| self.sum_prefix(p) - before.sum_prefix(p);
        let p99 = |dir: &str| {
            self.p99_ms(
                before,
                "voxgate_processing_seconds",
                &format!("direction=\"{dir}\""),
            )
            .map_or(Value::Null, |v| {
                if v.is_finite() {
                    json!(v)
                } else {
                    json!("> 100")
                }
            })
        };
        json!({
            "truncations": d("voxgate_truncations_total"),
            "audio_frames_in": d("voxgate_audio_frames_total{direction=\"in\"}"),
            "audio_frames_out": d("voxgate_audio_frames_total{direction=\"out\"}"),
            "audio_frames_dropped": d("voxgate_audio_frames_dropped_total"),
            "sessions_started": dp("voxgate_sessions_started_total"),
            "sessions_closed": dp("voxgate_sessions_closed_total"),
            "response_create_deferred": d("voxgate_response_create_total{disposition=\"deferred\"}"),
            "handoffs_started": d("voxgate_handoffs_started_total"),
            "processing_p99_ms_to_model_bucket": p99("to_model"),
            "processing_p99_ms_to_client_bucket": p99("to_client"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_bucket_p99_come_from_two_scrapes() {
        let before = parse("voxgate_truncations_total 2\n");
        let after = parse(
            "# HELP x\nvoxgate_truncations_total 5\n\
             voxgate_processing_seconds_bucket{direction=\"to_model\",le=\"0.0001\"} 90\n\
             voxgate_processing_seconds_bucket{direction=\"to_model\",le=\"0.001\"} 100\n\
             voxgate_processing_seconds_bucket{direction=\"to_model\",le=\"+Inf\"} 100\n",
        );
        let v = after.since(&before);
        assert_eq!(v["truncations"], 3.0);
        assert_eq!(v["processing_p99_ms_to_model_bucket"], 1.0);
    }
}
