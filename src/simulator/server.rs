//! Socket side of the simulator: an axum server accepting `GET …/realtime` websocket upgrades
//! (v1 when `intent=quicksilver` is in the query) and `GET …/live/sessions` (v3, GPT-Live), one [`SimConversation`] per socket, and a
//! broadcast record of connections and received frames for tests and debugging.

use super::conversation::{SimConversation, SimOutput};
use crate::config::SimulatorConfig;
use crate::protocol::ModelVersion;
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// What the simulator saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SimRecord {
    Connected {
        conn: u64,
        path_and_query: String,
        authorization: Option<String>,
        session_id: Option<String>,
        user_agent: Option<String>,
        has_openai_beta: bool,
    },
    Frame {
        conn: u64,
        text: String,
    },
    Pong {
        conn: u64,
    },
    /// `POST /v1/realtime/calls`: the body's shape (multipart part names and types) and session.
    CallOffer {
        parts: Vec<(String, String)>,
        session: Option<serde_json::Value>,
        call_id: Option<String>,
    },
    /// `POST /v1/realtime/calls/{id}/hangup` ended a live call.
    CallHungUp {
        call_id: String,
    },
    Disconnected {
        conn: u64,
    },
}

pub(crate) struct SimState {
    pub(crate) cfg: SimulatorConfig,
    pub(crate) next_conn: AtomicU64,
    pub(crate) records: broadcast::Sender<SimRecord>,
    /// Model connections still to refuse (503) after a `drop:` (`refuse_after_drop`).
    pub(crate) refusing: std::sync::atomic::AtomicU32,
    /// Live WebRTC calls: call id → how to hang it up.
    pub(crate) hangups:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
    /// Live WebRTC calls: call id → where to hand a sideband socket.
    pub(crate) calls: std::sync::Mutex<
        std::collections::HashMap<String, tokio::sync::mpsc::Sender<super::calls::Sideband>>,
    >,
}

/// A running simulator; dropping it stops the server.
pub struct Simulator {
    pub addr: SocketAddr,
    records: broadcast::Sender<SimRecord>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Bind `listen` (port 0 for any) and serve until dropped.
    pub async fn start(listen: SocketAddr, cfg: SimulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (records, _) = broadcast::channel(4096);
        let state = Arc::new(SimState {
            cfg,
            next_conn: AtomicU64::new(1),
            records: records.clone(),
            refusing: std::sync::atomic::AtomicU32::new(0),
            calls: std::sync::Mutex::new(std::collections::HashMap::new()),
            hangups: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        let app = router(state);
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator server stopped");
            }
        });
        Ok(Self {
            addr,
            records,
            task,
        })
    }

    /// Base URL to configure as `[upstream] base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Subscribe to what the simulator sees from now on.
    pub fn records(&self) -> broadcast::Receiver<SimRecord> {
        self.records.subscribe()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route(
            "/v1/realtime/calls",
            axum::routing::post(super::calls::create),
        )
        .route(
            "/v1/realtime/calls/{call_id}/hangup",
            axum::routing::post(super::calls::hangup),
        )
        .route(
            "/v1/live/sessions",
            axum::routing::post(super::calls::create_live).get(upgrade),
        )
        .fallback(upgrade)
        .with_state(state)
}

async fn upgrade(
    State(state): State<Arc<SimState>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> axum::response::Response {
    let live = uri.path().ends_with("/live/sessions");
    // GPT-Live's sideband: `…/live/sessions/{id}/attach`.
    let live_attach = uri
        .path()
        .strip_suffix("/attach")
        .and_then(|p| p.rsplit_once("/live/sessions/"))
        .map(|(_, id)| id.to_owned());
    let Some(ws) = ws
        .ok()
        .filter(|_| live || live_attach.is_some() || uri.path().ends_with("/realtime"))
    else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            "simulator serves websocket GET /v1/realtime and /v1/live/sessions",
        )
            .into_response();
    };
    if state
        .refusing
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the simulator refuses this connection (simulator.refuse_after_drop)",
        )
            .into_response();
    }
    let query = query.unwrap_or_default();
    let call_id = query
        .split('&')
        .find_map(|p| p.strip_prefix("call_id="))
        .map(str::to_owned)
        .or(live_attach);
    let version = if live {
        ModelVersion::V3
    } else if query.split('&').any(|p| p == "intent=quicksilver") {
        ModelVersion::V1
    } else {
        ModelVersion::V2
    };
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let _ = state.records.send(SimRecord::Connected {
        conn,
        path_and_query: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        authorization: header("authorization"),
        session_id: header("x-session-id"),
        user_agent: header("user-agent"),
        has_openai_beta: headers.contains_key("openai-beta"),
    });
    if let Some(call_id) = call_id {
        if state.cfg.reject_sideband {
            return crate::http::calls::api_error(
                axum::http::StatusCode::FORBIDDEN,
                "sideband_refused",
                "the simulator refuses sideband joins (simulator.reject_sideband)",
                None,
            );
        }
        if state.cfg.sideband_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(
                state.cfg.sideband_delay_ms,
            ))
            .await;
        }
        let attach = state
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&call_id)
            .cloned();
        let Some(attach) = attach else {
            return crate::http::calls::api_error(
                axum::http::StatusCode::NOT_FOUND,
                "call_not_found",
                format!("no call `{call_id}`"),
                None,
            );
        };
        let records = state.records.clone();
        return ws.on_upgrade(move |socket| super::calls::sideband(socket, attach, conn, records));
    }
    ws.on_upgrade(move |socket| run(socket, state, version, conn))
}

async fn run(mut socket: WebSocket, state: Arc<SimState>, version: ModelVersion, conn: u64) {
    let mut sim = SimConversation::new(version, state.cfg.clone(), conn);
    sim.open();
    let expires = (state.cfg.max_session_ms > 0).then(|| {
        tokio::time::Instant::now() + std::time::Duration::from_millis(state.cfg.max_session_ms)
    });
    let drops_at = (state.cfg.drop_after_ms > 0).then(|| {
        tokio::time::Instant::now() + std::time::Duration::from_millis(state.cfg.drop_after_ms)
    });
    'conn: loop {
        while let Some(out) = sim.poll_output() {
            let msg = match out {
                SimOutput::Text(t) => Message::text(t),
                SimOutput::Binary(b) => Message::Binary(b.into()),
                SimOutput::Ping => Message::Ping(axum::body::Bytes::from_static(b"sim")),
                SimOutput::Close => break 'conn,
                SimOutput::Drop => {
                    state
                        .refusing
                        .store(state.cfg.refuse_after_drop, Ordering::Relaxed);
                    let _ = state.records.send(SimRecord::Disconnected { conn });
                    return; // no close frame: the socket is just gone
                }
            };
            if socket.send(msg).await.is_err() {
                break 'conn;
            }
        }
        let due = sim.next_due();
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let _ = state.records.send(SimRecord::Frame { conn, text: t.to_string() });
                    sim.handle_client_text(t.as_str(), std::time::Instant::now());
                }
                Some(Ok(Message::Binary(_))) => sim.handle_binary(),
                Some(Ok(Message::Pong(_))) => {
                    let _ = state.records.send(SimRecord::Pong { conn });
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => break 'conn,
            },
            _ = sleep_until_opt(due) => sim.handle_timeout(std::time::Instant::now()),
            () = async {
                match expires {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let expired = if version == ModelVersion::V3 {
                    serde_json::json!({"type": "session.closed", "event_id": "event_sim_expired",
                        "reason": "expired"})
                } else {
                    serde_json::json!({"type": "error", "event_id": "event_sim_expired",
                        "error": {"type": "invalid_request_error", "code": "session_expired",
                        "message": "Your session hit the maximum duration.", "param": null}})
                };
                let _ = socket.send(Message::text(expired.to_string())).await;
                break 'conn;
            }
            () = async {
                match drops_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                // A network failure, not a close: the socket is just gone.
                state
                    .refusing
                    .store(state.cfg.refuse_after_drop, Ordering::Relaxed);
                let _ = state.records.send(SimRecord::Disconnected { conn });
                return;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    let _ = state.records.send(SimRecord::Disconnected { conn });
}

async fn sleep_until_opt(due: Option<std::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
