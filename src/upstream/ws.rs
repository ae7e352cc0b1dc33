//! The model websocket client (protocol.md §2.1): connects with the required headers, then runs a
//! reader task and a writer task so a send never waits on a read. Inbound text frames are parsed
//! with the session's wire version; audio sends go through a bounded queue that drops (counted)
//! under pressure, control frames never drop. Pings are answered by tungstenite while reading.

use crate::metrics;
use crate::protocol::{ModelEvent, ModelVersion};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue};

/// A send that takes longer than this means the model is not reading: the session fails.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the upstream reports to the session task.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// The raw text of an inbound frame (only with `keep_raw`), sent before its parsed event.
    Raw(String),
    Model(ModelEvent),
    Closed,
    Failed(String),
}

/// Everything needed to open the model socket.
#[derive(Clone)]
pub struct UpstreamRequest {
    pub url: String,
    pub api_key: Option<String>,
    pub session_id: String,
    pub version: ModelVersion,
    pub connect_timeout: Duration,
    pub audio_queue: usize,
    /// Also report every frame's raw text (clients that speak the OpenAI protocol themselves).
    pub keep_raw: bool,
    /// Connection attempts before giving up (exponential backoff from 200 ms between them).
    pub connect_attempts: u32,
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

/// The sending half held by the session task; dropping it closes the socket.
pub struct UpstreamLink {
    control: mpsc::UnboundedSender<String>,
    audio: mpsc::Sender<String>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl UpstreamLink {
    /// Queue a control frame (never dropped).
    pub fn send_control(&self, frame: String) -> bool {
        self.control.send(frame).is_ok()
    }

    /// Queue an audio frame; false when it was dropped because the queue is full.
    pub fn send_audio(&self, frame: String) -> bool {
        match self.audio.try_send(frame) {
            Ok(()) => true,
            Err(_) => {
                metrics::AUDIO_FRAMES_DROPPED.inc();
                false
            }
        }
    }
}

impl Drop for UpstreamLink {
    fn drop(&mut self) {
        // The writer ends by itself once both queues are closed (sending a close frame);
        // the reader would otherwise wait for the peer.
        self.tasks[1].abort();
    }
}

/// `connect`, retried with exponential backoff up to `req.connect_attempts` times.
pub async fn connect_with_retries(
    req: &UpstreamRequest,
    events: mpsc::Sender<UpstreamEvent>,
) -> Result<UpstreamLink, String> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match connect(req, events.clone()).await {
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

/// Connect and start the reader/writer tasks; events arrive on `events`.
pub async fn connect(
    req: &UpstreamRequest,
    events: mpsc::Sender<UpstreamEvent>,
) -> Result<UpstreamLink, String> {
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
                    .read_buffer_size(crate::http::WS_READ_BUFFER),
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

    let (mut sink, mut stream) = ws.split();
    let (control_tx, mut control_rx) = mpsc::unbounded_channel::<String>();
    let (audio_tx, mut audio_rx) = mpsc::channel::<String>(req.audio_queue.max(1));

    let write_events = events.clone();
    let writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                biased;
                f = control_rx.recv() => f,
                f = audio_rx.recv() => f,
            };
            let Some(frame) = frame else {
                let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
                return;
            };
            let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::text(frame))).await;
            let error = match sent {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("failed to send to the realtime model: {e}"),
                Err(_) => format!("sending to the realtime model stalled for {SEND_TIMEOUT:?}"),
            };
            let _ = write_events.send(UpstreamEvent::Failed(error)).await;
            return;
        }
    });

    let version = req.version;
    let keep_raw = req.keep_raw;
    let reader = tokio::spawn(async move {
        loop {
            let event = match stream.next().await {
                None | Some(Ok(Message::Close(_))) => UpstreamEvent::Closed,
                Some(Ok(Message::Text(text))) => {
                    if keep_raw
                        && events
                            .send(UpstreamEvent::Raw(text.as_str().to_owned()))
                            .await
                            .is_err()
                    {
                        return;
                    }
                    match version.parse(text.as_str()) {
                        Ok(ev) => UpstreamEvent::Model(ev),
                        Err(reason) => {
                            metrics::MODEL_FRAMES_SKIPPED.inc();
                            tracing::debug!(%reason, "skipped realtime frame");
                            continue;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    UpstreamEvent::Failed("unexpected binary realtime websocket event".into())
                }
                Some(Ok(_)) => continue,
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => UpstreamEvent::Closed,
                Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => UpstreamEvent::Closed,
                Some(Err(e)) => {
                    UpstreamEvent::Failed(format!("realtime websocket read failed: {e}"))
                }
            };
            let terminal = !matches!(event, UpstreamEvent::Model(_));
            if events.send(event).await.is_err() || terminal {
                return;
            }
        }
    });

    Ok(UpstreamLink {
        control: control_tx,
        audio: audio_tx,
        tasks: [writer, reader],
    })
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
