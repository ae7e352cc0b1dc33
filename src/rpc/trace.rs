//! W3C trace context for JSON-RPC requests: a valid `traceparent` (from the request's `trace`
//! field, else env `TRACEPARENT`) becomes the parent of the request's span, recorded as its
//! `trace_id` and `parent_span_id` fields, and is what the request's work hands on when
//! voxgate exports no trace of its own (`crate::telemetry::for_caller`).

use crate::protocol::rpc::TraceContext;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub parent_id: String,
    pub flags: String,
}

impl TraceParent {
    /// As a `traceparent` header value (version 00).
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

/// The caller's trace for a request: its `trace` field when valid, else env `TRACEPARENT`
/// (a stdio client's parent process).
pub fn caller_trace(trace: Option<&TraceContext>) -> Option<TraceParent> {
    trace
        .and_then(|t| parse_traceparent(&t.traceparent))
        .or_else(|| {
            std::env::var("TRACEPARENT")
                .ok()
                .and_then(|t| parse_traceparent(&t))
        })
}

/// Parse `version-traceid-parentid-flags` (version 00; ids lowercase hex, not all zero).
pub fn parse_traceparent(s: &str) -> Option<TraceParent> {
    let parts: Vec<&str> = s.trim().split('-').collect();
    let [version, trace_id, parent_id, flags] = parts.as_slice() else {
        return None;
    };
    let hex = |v: &str, n: usize| {
        v.len() == n
            && v.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2)
        || *version == "ff"
        || !hex(trace_id, 32)
        || !hex(parent_id, 16)
        || !hex(flags, 2)
    {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(TraceParent {
        trace_id: (*trace_id).to_owned(),
        parent_id: (*parent_id).to_owned(),
        flags: (*flags).to_owned(),
    })
}

/// Who a request came over: what the span of each request records.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// `websocket` or `stdio`.
    pub transport: &'static str,
    /// The connection's number (as in the logs).
    pub connection: u64,
    /// The client's name from `initialize` (`clientInfo.name`), bounded; empty before it.
    pub client: &'a str,
}

/// The span for one request, child of the caller's trace when one is given: `rpc.request` in
/// the logs, exported to OpenTelemetry under the method's name with the transport, connection
/// and client.
pub fn request_span(
    method: &str,
    trace: Option<&TraceContext>,
    meta: &RequestMeta<'_>,
) -> tracing::Span {
    let parent = caller_trace(trace);
    let span = tracing::info_span!(
        "rpc.request",
        otel.name = %method,
        otel.kind = "server",
        rpc.system = "jsonrpc",
        method = %method,
        transport = meta.transport,
        connection = meta.connection,
        client = %meta.client,
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    if let Some(p) = parent {
        span.record("trace_id", tracing::field::display(&p.trace_id));
        span.record("parent_span_id", tracing::field::display(&p.parent_id));
        crate::telemetry::join_remote_trace(&span, &p);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_parses() {
        let p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id, "00f067aa0ba902b7");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    /// A span's name and its recorded fields.
    type SpanSeen = (String, Vec<(String, String)>);

    /// The spans opened while `f` runs, with their recorded fields.
    fn spans_during(f: impl FnOnce()) -> Vec<SpanSeen> {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<SpanSeen>>>);
        struct Fields(Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push((f.name().to_owned(), format!("{v:?}")));
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let mut fields = Fields(Vec::new());
                attrs.record(&mut fields);
                let name = attrs.metadata().name().to_owned();
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((name, fields.0));
            }
            fn on_record(
                &self,
                _: &tracing::span::Id,
                values: &tracing::span::Record<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let mut fields = Fields(Vec::new());
                values.record(&mut fields);
                if let Some(last) = self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last_mut()
                {
                    last.1.extend(fields.0);
                }
            }
        }
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, f);
        capture
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    const META: RequestMeta<'static> = RequestMeta {
        transport: "websocket",
        connection: 7,
        client: "codex",
    };

    #[test]
    fn a_requests_trace_field_becomes_its_spans_parent() {
        let trace = TraceContext {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: None,
        };
        let spans = spans_during(|| {
            let _span = request_span("thread/realtime/start", Some(&trace), &META);
        });
        let (name, fields) = &spans[0];
        assert_eq!(name, "rpc.request");
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(field("method").as_deref(), Some("thread/realtime/start"));
        assert_eq!(field("transport").as_deref(), Some("\"websocket\""));
        assert_eq!(field("connection").as_deref(), Some("7"));
        assert_eq!(field("client").as_deref(), Some("codex"));
        assert_eq!(
            field("trace_id").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(field("parent_span_id").as_deref(), Some("00f067aa0ba902b7"));
        // A malformed one is no parent.
        let bad = TraceContext {
            traceparent: "nonsense".into(),
            tracestate: None,
        };
        let spans = spans_during(|| {
            let _span = request_span("x", Some(&bad), &META);
        });
        assert!(spans[0].1.iter().all(|(n, _)| n != "trace_id"), "{spans:?}");
    }
}
