//! What every synthetic session shares with the run: where to connect, how to talk, when to stop,
//! and the run's aggregate it reports into. Transports call `established` once set up and
//! `report` about once a second, so the live progress line stays current.

use super::stats::{Aggregate, SessionStats};
use super::talker::{Talker, TalkerConfig, TickOut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Shared {
    pub agg: Mutex<Aggregate>,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            agg: Mutex::new(Aggregate::default()),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Aggregate> {
        self.agg
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct SessionCtx {
    /// `http://host:port` of the target.
    pub base: String,
    pub api_key: String,
    pub talker: TalkerConfig,
    pub seed: u64,
    pub slot: usize,
    pub ends_at: Instant,
    pub setup_timeout: Duration,
    pub shared: Arc<Shared>,
    /// Pre-encoded Opus packets for WebRTC callers (speech loop, silence).
    pub opus: Arc<super::client_webrtc::OpusLoop>,
}

impl SessionCtx {
    pub fn ws_base(&self) -> String {
        self.base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
    }

    pub fn established(&self, setup: Duration) {
        let mut a = self.shared.lock();
        a.sessions_established += 1;
        a.sessions_active += 1;
        a.setup_ms.push(setup.as_secs_f64() * 1000.0);
    }

    pub fn report(&self, stats: &mut SessionStats) {
        self.shared.lock().merge(stats);
    }

    /// The session is over: final stats, and whether it was up.
    pub fn ended(&self, stats: &mut SessionStats, was_up: bool) {
        let mut a = self.shared.lock();
        a.merge(stats);
        if was_up {
            a.sessions_active = a.sessions_active.saturating_sub(1);
        }
    }
}

/// The client's websocket to the target.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a websocket to `path` on the target with the API key, within the setup timeout; the error
/// is the session's error kind.
pub async fn connect_ws(ctx: &SessionCtx, path: &str) -> Result<Socket, String> {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};
    let mut req = format!("{}{path}", ctx.ws_base())
        .into_client_request()
        .map_err(|_| "bad_target")?;
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", ctx.api_key)) {
        req.headers_mut().insert("authorization", v);
    }
    let connect = tokio_tungstenite::connect_async_with_config(req, None, true);
    match tokio::time::timeout(ctx.setup_timeout, connect).await {
        Err(_) => Err("setup_timeout".into()),
        Ok(Err(tungstenite::Error::Http(r))) => Err(format!("http_{}", r.status().as_u16())),
        Ok(Err(_)) => Err("connect".into()),
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// What a websocket face makes of the talker: the messages for a tick's output, and what a text
/// message from the server means (`Some` ends the session).
pub trait WsFace {
    fn encode(&mut self, out: super::talker::TickOut) -> Vec<String>;
    fn on_text(&mut self, talker: &mut Talker, text: &str) -> Option<Result<(), String>>;
    /// Messages that end the session politely.
    fn goodbye(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The websocket faces' session loop: every 20 ms send what the talker says, hand every text
/// message to the face, report stats once a second, and stop at `ends_at`.
pub async fn drive_ws(ctx: &SessionCtx, ws: Socket, face: &mut impl WsFace) -> Result<(), String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut tx, mut rx) = ws.split();
    let mut talker = Talker::new(ctx.talker.clone(), ctx.seed, Instant::now());
    let mut tick = frame_interval();
    let mut ticks = 0u32;
    let per_message = (ctx.talker.frame_ms / super::speech::FRAME_MS).max(1) as usize;
    let mut batch = FrameBatch::default();
    let result = 'session: loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= ctx.ends_at {
                    break Ok(());
                }
                let out = batch.add(now, talker.tick(now), per_message, &mut talker);
                for msg in face.encode(out) {
                    if tx.send(Message::text(msg)).await.is_err() {
                        break 'session Err("closed_by_server".into());
                    }
                }
                ticks += 1;
                if ticks.is_multiple_of(REPORT_EVERY_TICKS) {
                    ctx.report(&mut talker.stats);
                }
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break Err("closed_by_server".into()) };
                let Message::Text(t) = msg else { continue };
                if let Some(end) = face.on_text(&mut talker, t.as_str()) {
                    break end;
                }
            }
        }
    };
    talker.finish();
    for msg in face.goodbye() {
        let _ = tx.send(Message::text(msg)).await;
    }
    let _ = tx.send(Message::Close(None)).await;
    ctx.ended(&mut talker.stats, true);
    result
}

/// Frames gathered into one message of `per_message` frames (`--frame-ms`).
#[derive(Default)]
struct FrameBatch {
    pcm: Vec<i16>,
    frames: usize,
}

impl FrameBatch {
    /// Add a tick's frame; the tick's output carries the whole batch once it is full.
    fn add(
        &mut self,
        now: Instant,
        mut out: TickOut,
        per_message: usize,
        talker: &mut Talker,
    ) -> TickOut {
        if per_message <= 1 {
            return out;
        }
        if let Some(f) = out.frame.take() {
            self.pcm.extend_from_slice(&f);
            self.frames += 1;
        }
        if self.frames >= per_message || (self.frames > 0 && out.text.is_some()) {
            talker.merge_last_frames(self.frames, now);
            self.frames = 0;
            out.frame = Some(std::mem::take(&mut self.pcm));
        }
        out
    }
}

/// Base64 of a frame's PCM16LE bytes.
pub fn frame_b64(frame: &[i16]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(super::speech::to_bytes(frame))
}

/// Frames per stats report (one second of 20 ms ticks).
pub const REPORT_EVERY_TICKS: u32 = 50;

/// The 20 ms pacing tick every transport sends on.
pub fn frame_interval() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(super::speech::FRAME_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The value of `"key":"…"` in a JSON text whose value needs no unescaping (ids, base64).
pub fn str_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = text.find(&pat)? + pat.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The first bytes of a base64 audio payload (enough for a frame marker) and its duration in ms.
pub fn audio_head(b64: &str) -> (Vec<u8>, u64) {
    use base64::Engine as _;
    let head = b64.get(..12).unwrap_or(b64);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(head)
        .unwrap_or_default();
    let samples = b64.len() as u64 * 3 / 4 / 2;
    (bytes, samples / 24)
}
