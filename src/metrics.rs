//! Process-wide Prometheus metrics. Labels never carry secrets, ids or SDP.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::LazyLock;

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

pub static SESSIONS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    let g = IntGauge::new("voxgate_sessions_active", "Conversations running now")
        .expect("valid metric");
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
});
pub static SESSIONS_STARTED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("voxgate_sessions_started_total", "Conversations started"));
pub static SESSIONS_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        Opts::new("voxgate_sessions_closed_total", "Conversations ended"),
        &["reason"],
    )
    .expect("valid metric");
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
});
pub static AUDIO_FRAMES_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_audio_frames_dropped_total",
        "Audio frames dropped under back-pressure",
    )
});
pub static MODEL_FRAMES_SKIPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_model_frames_skipped_total",
        "Inbound model frames skipped (unknown/malformed)",
    )
});
pub static HANDOFFS_STARTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_handoffs_started_total",
        "Delegated agent tasks started",
    )
});
pub static UPSTREAM_CONNECT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    let h = Histogram::with_opts(HistogramOpts::new(
        "voxgate_upstream_connect_seconds",
        "Time to open the model websocket",
    ))
    .expect("valid metric");
    let _ = REGISTRY.register(Box::new(h.clone()));
    h
});

/// Render every metric in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
