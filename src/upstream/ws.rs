//! The model websocket client (protocol.md §2.1): opens the socket with the required headers
//! (retrying with backoff where asked) and hands it to the session's reactor, which reads and
//! writes it itself. Pings are answered by tungstenite while the reactor reads.

use crate::metrics;
use crate::protocol::ModelVersion;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};

/// Read buffer of each websocket voxgate serves or opens. tungstenite's default (128 KiB) is
/// touched in full as frames stream through it, which made it most of a session's memory; an
/// audio frame is ~1.3 KB and larger messages still arrive whole (the buffer only sets the read
/// chunk).
pub const WS_READ_BUFFER: usize = 16 * 1024;

/// An open model socket.
pub type ModelSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Everything needed to open the model socket.
#[derive(Clone)]
pub struct UpstreamRequest {
    pub url: String,
    pub api_key: Option<String>,
    pub session_id: String,
    pub version: ModelVersion,
    pub connect_timeout: Duration,
    /// Connection attempts before giving up...
    pub connect_attempts: u32,
    /// ...with this wait before the second, doubling after (at most 5 s).
    pub connect_backoff: Duration,
}

impl std::fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamRequest")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("session_id", &self.session_id)
            .field("version", &self.version)
            .finish()
    }
}

/// `connect`, retried with exponential backoff up to `req.connect_attempts` times.
pub async fn connect_with_retries(req: &UpstreamRequest) -> Result<ModelSocket, String> {
    let mut delay = req.connect_backoff;
    let mut attempt = 1;
    loop {
        match connect(req).await {
            Ok(link) => return Ok(link),
            Err(e) if attempt >= req.connect_attempts.max(1) => return Err(e),
            Err(e) => {
                tracing::info!(attempt, error = %e, "realtime connect failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}

/// Open the model socket.
pub async fn connect(req: &UpstreamRequest) -> Result<ModelSocket, String> {
    let mut request = req
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("invalid realtime URL: {e}"))?;
    let headers = request.headers_mut();
    if let Some(key) = &req.api_key {
        let value = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "API key contains characters not allowed in a header".to_owned())?;
        headers.insert("authorization", value);
    }
    let sid = HeaderValue::from_str(&req.session_id).map_err(|_| {
        "realtime session id contains characters not allowed in a header".to_owned()
    })?;
    headers.insert("x-session-id", sid);
    headers.insert(
        "user-agent",
        HeaderValue::from_static(concat!("voxgate/", env!("CARGO_PKG_VERSION"))),
    );

    let started = std::time::Instant::now();
    let (ws, _resp) = tokio::time::timeout(
        req.connect_timeout,
        tokio_tungstenite::connect_async_with_config(
            request,
            Some(
                tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(WS_READ_BUFFER),
            ),
            true,
        ),
    )
    .await
    .map_err(|_| {
        format!(
            "timed out connecting to the realtime model after {:?}",
            req.connect_timeout
        )
    })?
    .map_err(describe_connect_error)?;
    metrics::UPSTREAM_CONNECT_SECONDS.observe(started.elapsed().as_secs_f64());

    Ok(ws)
}

fn describe_connect_error(e: tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => {
            format!(
                "realtime model refused the connection: HTTP {}",
                resp.status()
            )
        }
        other => format!("failed to connect to the realtime model: {other}"),
    }
}
