//! The simulator's WebRTC face, as the real service has it: `POST /v1/realtime/calls` answers an
//! offer with the same media stack voxgate uses (str0m + Opus), plays the model's audio over RTP,
//! carries events on the data channel, and `GET /v1/realtime?call_id=…` joins a sideband socket
//! that sees the call's events and can send client events. Lets passthrough run offline.

use super::audio;
use super::conversation::{SimConversation, SimOutput};
use super::peer::{self, PeerCommand, PeerEvent};
use super::server::{SimRecord, SimState};
use crate::http::calls::{api_error, read_offer};
use crate::protocol::ModelVersion;
use axum::extract::ws::{Message, WebSocket};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Server events queued for a sideband socket: one that falls this far behind is closed (the
/// call goes on without it).
const SIDEBAND_BACKLOG: usize = 1024;
/// Client events read from a sideband socket ahead of the call: past this, reading waits.
const SIDEBAND_INBOUND: usize = 64;

/// A sideband socket handed to a call's task.
pub struct Sideband {
    pub conn: u64,
    pub out: mpsc::Sender<String>,
    pub inbound: mpsc::Receiver<String>,
}

pub(crate) async fn create(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    if let Err(refused) = require_bearer(&headers) {
        return *refused;
    }
    let offer = match read_offer(&headers, req, 256 * 1024).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let instructions = offer
        .session
        .as_ref()
        .and_then(|s| s.get("instructions"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if instructions.contains("sim:fail500") {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The simulator was asked to fail.",
            None,
        );
    }
    let session = offer.session.clone();
    let (answer, call_id) = match open_call(&state, &offer.sdp, offer.session, ModelVersion::V2) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let _ = state.records.send(SimRecord::CallOffer {
        parts: offer.parts.clone(),
        session,
        call_id: Some(call_id.clone()),
    });
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, format!("/v1/realtime/calls/{call_id}")),
        ],
        answer,
    )
        .into_response()
}

/// The service refuses a request without a bearer (any value will do here).
fn require_bearer(headers: &HeaderMap) -> Result<(), Box<Response>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    Err(Box::new(api_error(
        StatusCode::UNAUTHORIZED,
        "missing_api_key",
        "Missing bearer authentication in header",
        None,
    )))
}

/// Accept an offer and run the call: its peer, its conversation (`version`), its sideband
/// attachments and hang-up. Returns (answer SDP, call id).
fn open_call(
    state: &Arc<SimState>,
    sdp: &str,
    session: Option<Value>,
    version: ModelVersion,
) -> Result<(String, String), Box<Response>> {
    let (answer, setup) =
        match peer::accept_offer(sdp, std::net::IpAddr::from([127, 0, 0, 1]), None) {
            Ok(v) => v,
            Err(e) => {
                return Err(Box::new(api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_offer",
                    e.to_string(),
                    Some("sdp"),
                )));
            }
        };
    let n = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let call_id = match version {
        ModelVersion::V3 => format!("live_sim{n:08}"),
        _ => format!("rtc_sim{n:08}"),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(4096);
    let (evt_tx, evt_rx) = mpsc::channel(1024);
    let (attach_tx, attach_rx) = mpsc::channel(4);
    state
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(call_id.clone(), attach_tx);
    tokio::spawn(peer::run(
        setup,
        cmd_rx,
        evt_tx,
        Duration::from_secs(15),
        Duration::from_secs(30),
    ));
    let hangup = std::sync::Arc::new(tokio::sync::Notify::new());
    state
        .hangups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(call_id.clone(), hangup.clone());
    let task_state = state.clone();
    let id = call_id.clone();
    tokio::spawn(async move {
        run_call(
            &task_state,
            n,
            version,
            session,
            cmd_tx,
            evt_rx,
            attach_rx,
            hangup,
        )
        .await;
        task_state
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
        task_state
            .hangups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    });
    Ok((answer, call_id))
}

/// `POST /v1/live/sessions` (GPT-Live WebRTC): JSON `{"session", "transport": {"type": "webrtc",
/// "sdp"}}`, answered `{"session": {"id"}, "transport": {"type": "webrtc", "sdp"}}`.
pub(crate) async fn create_live(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = require_bearer(&headers) {
        return *refused;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "The request body is not JSON.",
            None,
        );
    };
    let Some(sdp) = req["transport"]["sdp"].as_str().filter(|s| !s.is_empty()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "missing_required_parameter",
            "Missing required parameter: 'transport.sdp'.",
            Some("transport.sdp"),
        );
    };
    let session = req.get("session").cloned();
    match open_call(&state, sdp, session.clone(), ModelVersion::V3) {
        Ok((answer, id)) => {
            let _ = state.records.send(SimRecord::CallOffer {
                parts: vec![("body".into(), "application/json".into())],
                session,
                call_id: Some(id.clone()),
            });
            axum::Json(json!({"session": {"id": id},
                "transport": {"type": "webrtc", "sdp": answer}}))
            .into_response()
        }
        Err(r) => *r,
    }
}

/// `POST /v1/realtime/calls/{id}/hangup`, as the service has it: the call ends (the caller's
/// peer is closed, the sideband ends).
pub(crate) async fn hangup(
    State(state): State<Arc<SimState>>,
    axum::extract::Path(call_id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = require_bearer(&headers) {
        return *refused;
    }
    let found = state
        .hangups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&call_id)
        .cloned();
    let Some(hangup) = found else {
        return api_error(
            StatusCode::NOT_FOUND,
            "call_not_found",
            format!("no call `{call_id}`"),
            None,
        );
    };
    hangup.notify_one();
    let _ = state.records.send(SimRecord::CallHungUp { call_id });
    StatusCode::OK.into_response()
}

/// Serve a sideband socket: hand its two directions to the call's task.
pub(crate) async fn sideband(
    socket: WebSocket,
    attach: mpsc::Sender<Sideband>,
    conn: u64,
    records: tokio::sync::broadcast::Sender<SimRecord>,
) {
    use futures_util::{SinkExt, StreamExt};
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(SIDEBAND_BACKLOG);
    let (in_tx, in_rx) = mpsc::channel::<String>(SIDEBAND_INBOUND);
    if attach
        .send(Sideband {
            conn,
            out: out_tx,
            inbound: in_rx,
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(t) = out_rx.recv().await {
            if sink.send(Message::text(t)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        if let Message::Text(t) = msg {
            let _ = records.send(SimRecord::Frame {
                conn,
                text: t.to_string(),
            });
            if in_tx.send(t.to_string()).await.is_err() {
                break;
            }
        }
    }
    writer.abort();
    let _ = records.send(SimRecord::Disconnected { conn });
}

#[allow(clippy::too_many_arguments)]
async fn run_call(
    state: &SimState,
    conn: u64,
    version: ModelVersion,
    session: Option<Value>,
    peer_tx: mpsc::Sender<PeerCommand>,
    mut peer_rx: mpsc::Receiver<PeerEvent>,
    mut attach: mpsc::Receiver<Sideband>,
    hangup: std::sync::Arc<tokio::sync::Notify>,
) {
    let mut sim = SimConversation::new(version, state.cfg.clone(), conn);
    let now = std::time::Instant::now;
    let first = match version {
        ModelVersion::V3 => "session.start",
        _ => "session.update",
    };
    if let Some(s) = session {
        sim.handle_client_text(&json!({"type": first, "session": s}).to_string(), now());
    }
    let mut side: Option<Sideband> = None;
    loop {
        while let Some(out) = sim.poll_output() {
            match out {
                SimOutput::Text(t) => {
                    if t.contains("\"response.output_audio.delta\"")
                        || t.contains("\"session.output_audio.delta\"")
                    {
                        if let Some((item, pcm)) = audio_of(&t) {
                            let _ = peer_tx.try_send(PeerCommand::Audio { item, pcm });
                        }
                        continue;
                    }
                    if let Some(s) = &side
                        && let Err(e) = s.out.try_send(t.clone())
                    {
                        // Gone, or SIDEBAND_BACKLOG behind: dropping it ends its writer, which
                        // closes the socket.
                        if matches!(e, mpsc::error::TrySendError::Full(_)) {
                            tracing::warn!(
                                conn = s.conn,
                                "simulator: closing a sideband that fell behind"
                            );
                        }
                        side = None;
                    }
                    let _ = peer_tx.try_send(PeerCommand::Text(t));
                }
                SimOutput::Close | SimOutput::Drop => {
                    let _ = peer_tx.try_send(PeerCommand::Close);
                    return;
                }
                SimOutput::Binary(_) | SimOutput::Ping => {}
            }
        }
        let due = sim.next_due();
        tokio::select! {
            ev = peer_rx.recv() => match ev {
                Some(PeerEvent::Audio(pcm)) => {
                    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
                    sim.handle_pcm(&bytes, now());
                }
                Some(PeerEvent::ChannelText(t)) => sim.handle_client_text(&t, now()),
                Some(PeerEvent::Closed(_)) | None => return,
                Some(_) => {}
            },
            Some(s) = attach.recv() => side = Some(s),
            () = hangup.notified() => {
                let _ = peer_tx.try_send(PeerCommand::Close);
                return;
            }
            Some(t) = next_inbound(&mut side) => sim.handle_client_text(&t, now()),
            _ = sleep_until_opt(due) => sim.handle_timeout(now()),
        }
    }
}

fn audio_of(frame: &str) -> Option<(Option<String>, Vec<i16>)> {
    let v: Value = serde_json::from_str(frame).ok()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.get("delta")?.as_str()?)
        .ok()?;
    let pcm = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let _ = audio::SAMPLE_RATE;
    Some((
        v.get("item_id").and_then(Value::as_str).map(str::to_owned),
        pcm,
    ))
}

async fn next_inbound(side: &mut Option<Sideband>) -> Option<String> {
    match side {
        Some(s) => s.inbound.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(due: Option<std::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
