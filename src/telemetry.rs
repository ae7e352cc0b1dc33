//! OpenTelemetry for voxgate's own spans: when `[telemetry] otlp_endpoint` is set, the tracing
//! spans (one per JSON-RPC request, named after its method; one per conversation) are exported
//! over OTLP/HTTP (protobuf) in batches, a request's span joins the caller's trace (its W3C
//! `trace`), a conversation's span is the child of the request that started it, and delegated
//! work carries the trace on (codex's `trace`, HTTP `traceparent`). Unset: nothing is exported,
//! and delegated work carries on the caller's own `traceparent` unchanged, as W3C Trace Context
//! asks of a service that takes no part in the trace.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::TelemetryConfig;
use crate::rpc::trace::TraceParent;

/// Longest an export request may take before it is given up (the batch is dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's HTTP client: voxgate's reqwest, run on the tokio runtime that built it (the
/// SDK's batch thread awaits it from outside the runtime).
#[derive(Debug, Clone)]
struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let send = async move {
            let mut req = client
                .request(parts.method, parts.uri.to_string())
                .timeout(EXPORT_TIMEOUT)
                .body(body.to_vec());
            for (name, value) in &parts.headers {
                req = req.header(name, value);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = self.runtime.spawn(send).await??;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        Ok(out)
    }
}

/// The installed exporter: flush and stop it before the process ends.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Export what is left, then stop (blocks: call off the async threads).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry: the last spans could not be exported");
        }
    }
}

/// A tracing layer exporting spans per `cfg`, or `None` when no endpoint is set. Must be called
/// on the tokio runtime.
pub fn layer<S>(
    cfg: &TelemetryConfig,
) -> anyhow::Result<Option<(impl tracing_subscriber::Layer<S>, Telemetry)>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let Some(url) = cfg.traces_url() else {
        return Ok(None);
    };
    let client = RuntimeHttpClient {
        client: reqwest::Client::new(),
        runtime: tokio::runtime::Handle::current(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_millis(cfg.export_interval_ms))
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("voxgate");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok(Some((layer, Telemetry { provider })))
}

/// Make the caller's trace (a W3C `traceparent` it sent) the parent of `span`.
pub fn join_remote_trace(span: &tracing::Span, parent: &TraceParent) {
    let (Ok(trace_id), Ok(span_id)) = (
        TraceId::from_hex(&parent.trace_id),
        SpanId::from_hex(&parent.parent_id),
    ) else {
        return;
    };
    let flags = u8::from_str_radix(&parent.flags, 16).unwrap_or(0);
    let remote = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// Make `parent` the trace parent of `child` (without nesting `child` under it in the logs).
pub fn follow(child: &tracing::Span, parent: &tracing::Span) {
    let cx = parent.context();
    if cx.span().span_context().is_valid() {
        let _ = child.set_parent(cx);
    }
}

tokio::task_local! {
    /// The `traceparent` of the request being handled on this task, when its caller sent one.
    static CALLER_TRACE: Option<String>;
}

/// Run `work` (a request's handling) as done for a caller that sent `traceparent`: what it
/// starts can hand the trace on (`caller_traceparent`) even with no exporter.
pub async fn for_caller<F: std::future::Future>(traceparent: Option<String>, work: F) -> F::Output {
    CALLER_TRACE.scope(traceparent, work).await
}

/// The `traceparent` the request being handled on this task came with, if any.
pub fn caller_traceparent() -> Option<String> {
    CALLER_TRACE.try_with(Clone::clone).ok().flatten()
}

/// What work handed on by `span` is to carry: `span`'s own W3C `traceparent` when voxgate
/// exports traces, else the caller's (`caller`) unchanged, else `None`.
pub fn handed_on(span: &tracing::Span, caller: Option<&str>) -> Option<String> {
    traceparent(span).or_else(|| caller.map(str::to_owned))
}

/// `span`'s W3C `traceparent`, for work it hands on; `None` when telemetry is off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}
