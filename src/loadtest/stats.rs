//! What a load run measures: per-session counters and samples (`SessionStats`), merged into the
//! run's `Aggregate` as sessions report, and summarised as percentiles.

use serde::Serialize;
use std::collections::BTreeMap;

/// Samples and counts of one session since it last reported.
#[derive(Debug, Default, Clone)]
pub struct SessionStats {
    pub first_audio_ms: Vec<f64>,
    pub rtt_ms: Vec<f64>,
    pub delegation_ms: Vec<f64>,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub frames_lost: u64,
    pub frames_late: u64,
    pub turns: u64,
    pub barge_ins: u64,
    pub delegations_requested: u64,
    pub delegations_done: u64,
    pub errors: BTreeMap<String, u64>,
}

/// The whole run so far.
#[derive(Debug, Default, Clone)]
pub struct Aggregate {
    pub sessions_attempted: u64,
    pub sessions_established: u64,
    pub sessions_failed: u64,
    pub sessions_active: u64,
    pub setup_ms: Vec<f64>,
    pub s: SessionStats,
}

impl Aggregate {
    pub fn merge(&mut self, s: &mut SessionStats) {
        let t = &mut self.s;
        t.first_audio_ms.append(&mut s.first_audio_ms);
        t.rtt_ms.append(&mut s.rtt_ms);
        t.delegation_ms.append(&mut s.delegation_ms);
        t.frames_sent += std::mem::take(&mut s.frames_sent);
        t.frames_received += std::mem::take(&mut s.frames_received);
        t.frames_lost += std::mem::take(&mut s.frames_lost);
        t.frames_late += std::mem::take(&mut s.frames_late);
        t.turns += std::mem::take(&mut s.turns);
        t.barge_ins += std::mem::take(&mut s.barge_ins);
        t.delegations_requested += std::mem::take(&mut s.delegations_requested);
        t.delegations_done += std::mem::take(&mut s.delegations_done);
        for (k, v) in std::mem::take(&mut s.errors) {
            *t.errors.entry(k).or_default() += v;
        }
    }

    pub fn error(&mut self, kind: &str) {
        *self.s.errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// Share of sessions that failed, or of turns that got no reply, whichever is worse.
    pub fn error_rate(&self) -> f64 {
        let sessions = ratio(self.sessions_failed, self.sessions_attempted);
        let no_reply = self.s.errors.get("no_response").copied().unwrap_or(0);
        sessions.max(ratio(no_reply, self.s.turns))
    }
}

/// One point of the run over time: sessions up, and the main latency (echo round trip with
/// `--echo`, else first audio) of the samples that arrived since the point before.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TimePoint {
    /// Seconds since the phase started.
    pub t: f64,
    pub active_sessions: u64,
    pub latency_samples: usize,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// Builds the run's [`TimePoint`]s from the growing aggregate.
#[derive(Debug, Default)]
pub struct Timeline {
    pub points: Vec<TimePoint>,
    seen: usize,
}

impl Timeline {
    pub fn sample(&mut self, t: f64, a: &Aggregate, echo: bool) {
        let all = if echo {
            &a.s.rtt_ms
        } else {
            &a.s.first_audio_ms
        };
        let fresh = all.get(self.seen..).unwrap_or_default();
        self.seen = all.len();
        let d = Dist::of(fresh);
        self.points.push(TimePoint {
            t: round3(t),
            active_sessions: a.sessions_active,
            latency_samples: d.count,
            latency_p50_ms: (d.count > 0).then_some(d.p50),
            latency_p99_ms: (d.count > 0).then_some(d.p99),
        });
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Percentiles of a set of samples (milliseconds).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Dist {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        Self {
            count: v.len(),
            p50: percentile(&v, 0.50),
            p90: percentile(&v, 0.90),
            p99: percentile(&v, 0.99),
            max: round3(v[v.len() - 1]),
            mean: round3(mean),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    round3(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Dist::of(&v);
        assert_eq!((d.p50, d.p90, d.p99, d.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Dist::of(&[]).count, 0);
    }

    #[test]
    fn the_timeline_reports_each_windows_own_latency_and_sessions_up() {
        let mut a = Aggregate::default();
        let mut tl = Timeline::default();
        a.sessions_active = 2;
        a.s.first_audio_ms.extend([100.0, 300.0]);
        tl.sample(0.5, &a, false);
        tl.sample(1.0, &a, false);
        a.sessions_active = 1;
        a.s.first_audio_ms.push(50.0);
        tl.sample(1.5, &a, false);
        let p = &tl.points;
        assert_eq!((p[0].active_sessions, p[0].latency_samples), (2, 2));
        assert_eq!(p[0].latency_p99_ms, Some(300.0));
        assert_eq!((p[1].latency_samples, p[1].latency_p50_ms), (0, None));
        assert_eq!((p[2].active_sessions, p[2].latency_p50_ms), (1, Some(50.0)));
    }

    #[test]
    fn error_rate_is_the_worse_of_failed_sessions_and_unanswered_turns() {
        let mut a = Aggregate {
            sessions_attempted: 10,
            sessions_failed: 1,
            ..Default::default()
        };
        a.s.turns = 4;
        a.error("no_response");
        a.error("no_response");
        assert_eq!(a.error_rate(), 0.5);
    }
}
