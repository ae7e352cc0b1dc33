//! Node to node: a request that names a call or thread another node owns is carried to that
//! node as the caller's (vouched for with the cluster secret, the caller's key never sent) and
//! its answer handed back unchanged. HTTP requests are replayed; a sideband websocket is
//! spliced frame for frame. An owner that cannot be reached answers as a call or thread that
//! does not exist: within the connect timeout, never a hang.

use super::Cluster;
use crate::auth::Principal;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};

type PeerSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Bounds the connect and handshake to a peer node.
const PEER_CONNECT: std::time::Duration = std::time::Duration::from_secs(3);

/// An HTTP request to replay on the node that owns what it names.
pub struct PeerRequest<'a> {
    /// What it is, for metrics (`hangup`, `transcript`, `ice_restart`).
    pub kind: &'static str,
    pub method: reqwest::Method,
    pub path_and_query: &'a str,
    pub content_type: Option<&'a str>,
    pub body: axum::body::Bytes,
}

/// Replay `req` on the owner node at `base` as `p`'s and return its answer. `None`: the owner
/// could not be reached (the caller answers "not found").
pub async fn http(
    cluster: &Cluster,
    base: &str,
    req: PeerRequest<'_>,
    p: &Principal,
) -> Option<Response> {
    let PeerRequest {
        kind,
        method,
        path_and_query,
        content_type,
        body,
    } = req;
    crate::metrics::CLUSTER_FORWARDED
        .with_label_values(&[kind])
        .inc();
    let mut req = cluster
        .http()
        .request(method, format!("{base}{path_and_query}"))
        .body(body);
    for (name, value) in cluster.vouch_headers(p) {
        req = req.header(name, value);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(kind, error = %e.without_url(), "the owner node could not be reached");
            return None;
        }
    };
    let status = axum::http::StatusCode::from_u16(resp.status().as_u16())
        .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.ok()?;
    let mut out = (status, body).into_response();
    if let Some(ct) = ct
        && let Ok(v) = axum::http::HeaderValue::from_str(&ct)
    {
        out.headers_mut().insert("content-type", v);
    }
    Some(out)
}

/// Open a websocket to the owner node at `base` as `p`. `Err`: it could not be reached.
pub async fn connect_ws(
    cluster: &Cluster,
    base: &str,
    path_and_query: &str,
    p: &Principal,
) -> Result<PeerSocket, String> {
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(format!("peer url {base:?} is not http(s)"));
    };
    let mut req = format!("{ws_base}{path_and_query}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    for (name, value) in cluster.vouch_headers(p) {
        let v = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
        req.headers_mut().insert(name, v);
    }
    match tokio::time::timeout(PEER_CONNECT, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(resp))) => Err(format!("HTTP {}", resp.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Carry frames both ways between a client's websocket and the owner node's until either
/// side closes; the close (code and reason) is passed on.
pub async fn splice(client: WebSocket, peer: PeerSocket) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut peer_tx, mut peer_rx) = peer.split();
    let up = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            let out = match msg {
                Message::Text(t) => tungstenite::Message::text(t.as_str()),
                Message::Binary(b) => tungstenite::Message::binary(b.to_vec()),
                Message::Close(frame) => {
                    let frame = frame.map(|f| tungstenite::protocol::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().to_owned().into(),
                    });
                    let _ = peer_tx.send(tungstenite::Message::Close(frame)).await;
                    break;
                }
                _ => continue,
            };
            if peer_tx.send(out).await.is_err() {
                break;
            }
        }
        let _ = peer_tx.close().await;
    };
    let down = async {
        while let Some(Ok(msg)) = peer_rx.next().await {
            let out = match msg {
                tungstenite::Message::Text(t) => Message::text(t.as_str()),
                tungstenite::Message::Binary(b) => Message::binary(b.to_vec()),
                tungstenite::Message::Close(frame) => {
                    let frame = frame.map(|f| CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().to_owned().into(),
                    });
                    let _ = client_tx.send(Message::Close(frame)).await;
                    break;
                }
                _ => continue,
            };
            if client_tx.send(out).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    // Whichever side ends first ends the splice.
    tokio::select! {
        () = up => {},
        () = down => {},
    }
}
