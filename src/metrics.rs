//! Process-wide Prometheus metrics, rendered at `GET /metrics`. Labels are small closed sets
//! (face, reason, direction, outcome): never secrets, ids or SDP.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::sync::LazyLock;

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    register(
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric"),
    )
}

/// Buckets for per-frame processing: 10 µs … 100 ms.
fn frame_buckets() -> Vec<f64> {
    vec![
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
        0.025, 0.05, 0.1,
    ]
}

pub static SESSIONS_ACTIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new("voxgate_sessions_active", "Conversations running now"),
            &["face"],
        )
        .expect("valid metric"),
    )
});
pub static SESSIONS_STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_sessions_started_total",
        "Conversations started",
        &["face"],
    )
});
pub static SESSIONS_CLOSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_sessions_closed_total",
        "Conversations ended, by the reason they closed with",
        &["face", "reason"],
    )
});
/// Audio frames carried, by direction: `in` (client → model) and `out` (model → client).
pub static AUDIO_FRAMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_audio_frames_total",
        "Audio frames carried (in: client to model, out: model to client)",
        &["direction"],
    )
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
/// Delegated tasks that ended, by outcome: `finished`, `failed`, `cancelled`.
pub static HANDOFFS_ENDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_handoffs_ended_total",
        "Delegated agent tasks ended, by outcome",
        &["outcome"],
    )
});
/// TLS handshakes that failed or timed out on the listener (a client that does not trust the
/// certificate, a port scanner, a plain-HTTP client on the TLS port).
pub static TLS_HANDSHAKES_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_tls_handshakes_failed_total",
        "TLS handshakes on the listener that failed or timed out",
    )
});
/// GPT-Live-dialect client events voxgate answered with an `error` event, by its code (a
/// closed set: `invalid_json`, `unknown_event`, `invalid_audio`, …).
pub static LIVE_EVENTS_REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_live_events_refused_total",
        "GPT-Live-dialect client events refused with an error event, by code",
        &["code"],
    )
});
/// `response.create` requests: `sent` at once or `deferred` behind an active response.
pub static RESPONSE_CREATE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_response_create_total",
        "response.create requests: sent at once, deferred by the one-active-response rule, or dropped with 16 already waiting",
        &["disposition"],
    )
});
/// Connections closed because their request head did not arrive within `request_timeout_secs`.
pub static HEAD_TIMEOUTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_http_head_timeouts_total",
        "HTTP connections closed for sending no complete request head in time",
    )
});
pub static TRUNCATIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_truncations_total",
        "conversation.item.truncate frames sent on barge-in",
    )
});
pub static AGENT_TASK_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "voxgate_agent_task_seconds",
        "Delegated agent task duration, by outcome",
        &["outcome"],
        vec![
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ],
    )
});
/// Time a frame spends in voxgate's session task, by direction (`to_model`, `to_client`).
pub static PROCESSING_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "voxgate_processing_seconds",
        "Per-frame processing latency inside the session, by direction",
        &["direction"],
        frame_buckets(),
    )
});
/// One direction's per-frame series, resolved once (a label lookup per frame showed in profiles).
pub struct AudioDirection {
    pub frames: IntCounter,
    pub processing: Histogram,
}

fn direction(frames: &str, processing: &str) -> AudioDirection {
    AudioDirection {
        frames: AUDIO_FRAMES.with_label_values(&[frames]),
        processing: PROCESSING_SECONDS.with_label_values(&[processing]),
    }
}

pub static TO_MODEL: LazyLock<AudioDirection> = LazyLock::new(|| direction("in", "to_model"));
pub static TO_CLIENT: LazyLock<AudioDirection> = LazyLock::new(|| direction("out", "to_client"));

pub static UPSTREAM_CONNECT_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(
        Histogram::with_opts(HistogramOpts::new(
            "voxgate_upstream_connect_seconds",
            "Time to open the model websocket",
        ))
        .expect("valid metric"),
    )
});
/// JSON-RPC conversations running without a client, within their detach grace period.
pub static SESSIONS_DETACHED: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_sessions_detached",
            "Conversations whose last client left, running on within detach_grace_secs",
        )
        .expect("valid metric"),
    )
});
pub static REPLAY_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_replay_dropped_total",
        "Notifications of a detached conversation dropped from its replay (old audio, overflow)",
    )
});
pub static UPSTREAM_RECONNECTS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_upstream_reconnects_total",
        "Model sockets reopened after one was lost, the conversation going on",
    )
});
pub static MODEL_ROLLOVERS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_model_rollovers_total",
        "Model sessions retired before their limit and succeeded at a turn boundary",
    )
});
pub static DRAINING: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_draining",
            "1 while voxgate drains for shutdown (not accepting sessions)",
        )
        .expect("valid metric"),
    )
});

/// The `face` label's values (how a conversation's client reaches voxgate).
pub const FACES: [&str; 4] = ["rpc", "openai_ws", "webrtc_relay", "webrtc_passthrough"];

pub static MEDIA_DATAGRAMS_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_media_datagrams_dropped_total",
        "Media datagrams dropped: no call to route them to, a call's queue full, or a full socket",
    )
});
pub static CLIENT_BACKLOG_PEAK_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_client_backlog_peak_bytes",
            "Most bytes ever queued for one client or model socket (bounded per socket)",
        )
        .expect("valid metric"),
    )
});
pub static SOCKETS_CLOSED_SLOW: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_slow_sockets_closed_total",
        "Sessions ended because a client or the model stopped reading what voxgate sent",
    )
});

/// Record a socket's backlog if it is the largest seen.
pub fn observe_backlog(bytes: usize) {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    if bytes > CLIENT_BACKLOG_PEAK_BYTES.get() {
        CLIENT_BACKLOG_PEAK_BYTES.set(bytes);
    }
}

/// Touch every metric so `/metrics` lists them all from the start (zero-valued).
pub fn init() {
    for face in FACES {
        SESSIONS_ACTIVE.with_label_values(&[face]);
        SESSIONS_STARTED.with_label_values(&[face]);
    }
    LazyLock::force(&TO_MODEL);
    LazyLock::force(&TO_CLIENT);
    for d in ["sent", "deferred", "dropped"] {
        RESPONSE_CREATE.with_label_values(&[d]);
    }
    for o in ["finished", "failed", "cancelled", "released"] {
        HANDOFFS_ENDED.with_label_values(&[o]);
        AGENT_TASK_SECONDS.with_label_values(&[o]);
    }
    LazyLock::force(&AUDIO_FRAMES_DROPPED);
    LazyLock::force(&MODEL_FRAMES_SKIPPED);
    LazyLock::force(&HANDOFFS_STARTED);
    LazyLock::force(&TRUNCATIONS);
    LazyLock::force(&UPSTREAM_CONNECT_SECONDS);
    LazyLock::force(&DRAINING);
    LazyLock::force(&MEDIA_DATAGRAMS_DROPPED);
    LazyLock::force(&CLIENT_BACKLOG_PEAK_BYTES);
    LazyLock::force(&SOCKETS_CLOSED_SLOW);
    LazyLock::force(&HEAD_TIMEOUTS);
    LazyLock::force(&SESSIONS_DETACHED);
    LazyLock::force(&REPLAY_DROPPED);
    LazyLock::force(&UPSTREAM_RECONNECTS);
    LazyLock::force(&MODEL_ROLLOVERS);
}

/// Render every metric in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
pub static CALL_RENEGOTIATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_call_renegotiations_total",
        "New offers on live relay calls (ICE restarts), by outcome: answered or refused",
        &["outcome"],
    )
});
pub static RPC_UNANSWERABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_rpc_unanswerable_total",
        "JSON-RPC messages dropped unanswered because no request id could be read from them, by reason: malformed, too_large, not_utf8, binary",
        &["reason"],
    )
});

/// Cluster mode (`[cluster] redis_url`): whether the shared store answers.
pub static CLUSTER_STORE_UP: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_cluster_store_up",
            "1 while the cluster store (Redis) answers, 0 while it does not",
        )
        .expect("valid metric"),
    )
});
/// Live nodes in the cluster (this one included), as of the last heartbeat.
pub static CLUSTER_NODES: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_cluster_nodes",
            "Live nodes in the cluster as of this node's last heartbeat",
        )
        .expect("valid metric"),
    )
});
/// Sessions running on every live node together, as of the last heartbeat.
pub static CLUSTER_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "voxgate_cluster_sessions_active",
            "Sessions running across the cluster as of this node's last heartbeat",
        )
        .expect("valid metric"),
    )
});
/// Requests this node handed to the node that owns the call or thread, by kind.
pub static CLUSTER_FORWARDED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_cluster_forwarded_total",
        "Requests forwarded to the node owning their call or thread",
        &["kind"],
    )
});
/// Operations sent to the cluster store, by what they were for.
pub static CLUSTER_STORE_OPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "voxgate_cluster_store_ops_total",
        "Round trips to the cluster store, by purpose",
        &["op"],
    )
});
/// Cluster store round trips that failed (unreachable, timed out, refused).
pub static CLUSTER_STORE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "voxgate_cluster_store_errors_total",
        "Cluster store round trips that failed",
    )
});
