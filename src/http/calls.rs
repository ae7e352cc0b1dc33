//! `POST /v1/realtime/calls` (voice clients post an SDP offer; relay mode: voxgate answers and
//! terminates WebRTC) and hang-up (`DELETE /v1/realtime/calls/{id}`, `POST …/{id}/hangup`).
//! Errors are OpenAI-shaped JSON and never echo the SDP.

use crate::app::{AppState, CallError, WebrtcMode};
use crate::media::call::{self as peer, OfferError};
use crate::protocol::rpc::StartParams;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// The response for an authentication or limit failure.
pub fn auth_error(e: crate::auth::AuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::UNAUTHORIZED);
    api_error(status, e.code, e.message, None)
}

/// An OpenAI-shaped error response.
pub fn api_error(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    param: Option<&str>,
) -> Response {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    let body =
        json!({"error": {"type": kind, "code": code, "message": message.into(), "param": param}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn new_call_id() -> String {
    let a: u64 = rand::random();
    let b: u32 = rand::random();
    format!("rtc_{a:016x}{b:08x}")
}

/// An SDP offer and the optional OpenAI `session` object sent with it.
pub struct Offer {
    pub sdp: String,
    pub session: Option<Value>,
    /// Multipart parts as (name, content type), in order; empty for a raw `application/sdp` body.
    pub parts: Vec<(String, String)>,
}

/// Read an offer posted as `application/sdp` or `multipart/form-data` (`sdp`, `session`).
pub async fn read_offer(
    headers: &HeaderMap,
    req: Request,
    limit: usize,
) -> Result<Offer, Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_large = || {
        api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "offer_too_large",
            format!("the offer exceeds {limit} bytes"),
            Some("sdp"),
        )
    };
    if ctype.starts_with("application/sdp") {
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large())?;
        let sdp = String::from_utf8(body.to_vec()).map_err(|_| {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalid_offer",
                "the offer is not UTF-8 text",
                Some("sdp"),
            )
        })?;
        return Ok(Offer {
            sdp,
            session: None,
            parts: Vec::new(),
        });
    }
    if ctype.starts_with("multipart/form-data") {
        let (parts, body) = req.into_parts();
        let limited = axum::body::Body::new(http_body_util::Limited::new(body, limit));
        let req = Request::from_parts(parts, limited);
        let mut form = Multipart::from_request(req, &()).await.map_err(|_| {
            api_error(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                "malformed multipart body",
                None,
            )
        })?;
        let mut sdp = None;
        let mut session = None;
        let mut parts = Vec::new();
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(_) => {
                    return Err(api_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_form",
                        "malformed multipart body",
                        None,
                    ));
                }
            };
            let name = field.name().unwrap_or("").to_owned();
            parts.push((name.clone(), field.content_type().unwrap_or("").to_owned()));
            let bytes: Bytes = field.bytes().await.map_err(|_| too_large())?;
            match name.as_str() {
                "sdp" => sdp = Some(String::from_utf8_lossy(&bytes).into_owned()),
                "session" => {
                    session = Some(serde_json::from_slice::<Value>(&bytes).map_err(|_| {
                        api_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_session",
                            "the session part is not valid JSON",
                            Some("session"),
                        )
                    })?)
                }
                _ => {}
            }
        }
        let sdp = sdp.ok_or_else(|| {
            api_error(
                StatusCode::BAD_REQUEST,
                "missing_sdp",
                "the form has no `sdp` part",
                Some("sdp"),
            )
        })?;
        return Ok(Offer {
            sdp,
            session,
            parts,
        });
    }
    Err(api_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_type",
        "send the offer as application/sdp or as multipart/form-data with an `sdp` part",
        None,
    ))
}

/// Start params from an OpenAI `session` object (instructions, voice, model, output modality).
fn start_params(call_id: &str, session: Option<&Value>) -> Result<StartParams, String> {
    let mut p = json!({"threadId": call_id, "outputModality": "audio"});
    if let Some(s) = session {
        if let Some(i) = s.get("instructions").and_then(Value::as_str) {
            p["prompt"] = i.into();
        }
        if let Some(v) = s
            .pointer("/audio/output/voice")
            .or_else(|| s.get("voice"))
            .and_then(Value::as_str)
        {
            p["voice"] = v.into();
        }
        if let Some(m) = s.get("model").and_then(Value::as_str) {
            p["model"] = m.into();
        }
    }
    serde_json::from_value(p).map_err(|e| e.to_string())
}

/// Map an upstream call-create failure to the status a client should see: the upstream's 4xx
/// stays, 5xx becomes 502, no answer at all is 502.
fn upstream_error(e: &crate::upstream::call::CallCreateError) -> Response {
    let status = match e.status {
        Some(s @ 400..=499) => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
        _ => StatusCode::BAD_GATEWAY,
    };
    api_error(status, "upstream_call_failed", e.message.clone(), None)
}

#[derive(serde::Deserialize)]
pub struct CallQuery {
    /// Override `[webrtc] mode` for this call: `relay` or `passthrough`.
    mode: Option<WebrtcMode>,
}

pub async fn create(
    State(app): State<Arc<AppState>>,
    Query(q): Query<CallQuery>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let principal = match app.caller(&headers, true).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    // The offer must arrive in time; only then does the call take one of its key's slots, so
    // an unfinished body holds none.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(app.cfg.server.request_timeout_secs),
        read_offer(&headers, req, app.cfg.webrtc.max_offer_bytes),
    );
    let mut offer = match read.await {
        Ok(Ok(o)) => o,
        Ok(Err(r)) => return r,
        Err(_) => {
            return api_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the offer did not arrive within {}s",
                    app.cfg.server.request_timeout_secs
                ),
                Some("sdp"),
            );
        }
    };
    let permit = match app.admit(&principal).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    if offer.session.is_none() {
        offer.session = principal.bound_session.clone();
    }
    let mode = q.mode.unwrap_or(app.cfg.webrtc.mode);
    let started = match place_call(
        &app,
        &principal,
        permit,
        &offer.sdp,
        offer.session.as_ref(),
        mode,
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (
                header::LOCATION,
                format!("/v1/realtime/calls/{}", started.thread_id),
            ),
        ],
        started.answer,
    )
        .into_response()
}

/// Answer an offer with a call of `mode` for `principal` (its slot is `permit`), `session` in
/// OpenAI's shape; claimed in the cluster before the caller learns its id. `Err` is the response
/// a client gets (OpenAI-shaped JSON, never the SDP).
pub async fn place_call(
    app: &AppState,
    principal: &crate::auth::Principal,
    permit: crate::auth::SessionPermit,
    sdp: &str,
    session: Option<&Value>,
    mode: WebrtcMode,
) -> Result<crate::app::WebrtcStart, Response> {
    tracing::info!(offer = %peer::describe_offer(sdp), ?mode, "call offer received");
    let call_id = new_call_id();
    let params = match start_params(&call_id, session) {
        Ok(p) => p,
        Err(m) => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "invalid_session",
                m,
                Some("session"),
            ));
        }
    };
    let started = match app
        .start_webrtc(
            params,
            sdp,
            mode,
            crate::app::Origin::HttpCall,
            &principal.key_id,
            Some(permit),
        )
        .await
    {
        Ok(a) => a,
        Err(CallError::Offer(e @ OfferError::Socket(_))) => {
            return Err(api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "media_unavailable",
                e.to_string(),
                None,
            ));
        }
        Err(CallError::Offer(e)) => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "invalid_offer",
                e.to_string(),
                Some("sdp"),
            ));
        }
        Err(CallError::Setup(m)) => {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                "invalid_session",
                m,
                Some("session"),
            ));
        }
        Err(CallError::Upstream(e)) => return Err(upstream_error(&e)),
    };
    tracing::info!(call_id = %started.thread_id, answer = %peer::describe_offer(&started.answer), ?mode, "call answered");
    // Routable from every node before the caller learns the id.
    if let Some(cluster) = app.cluster() {
        cluster
            .claim_call(&started.thread_id, &principal.key_id)
            .await;
    }
    Ok(started)
}

/// The caller of a request on a call or thread: an API key or a client secret it minted (or
/// the caller another cluster node vouches for).
pub async fn caller(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<crate::auth::Principal, crate::auth::AuthError> {
    app.caller(headers, true).await
}

/// A request on a call this node does not run: in a cluster, the answer of the node that runs
/// it (`None`: nobody does, as far as this node can tell — the caller answers "not found").
/// A request another node already forwarded is never forwarded again.
pub async fn on_owner_of_call(
    app: &AppState,
    headers: &HeaderMap,
    principal: &crate::auth::Principal,
    call_id: &str,
    req: crate::cluster::forward::PeerRequest<'_>,
) -> Option<Response> {
    let cluster = app.cluster()?;
    if headers.contains_key(crate::cluster::AUTH_HEADER) || !plain_id(call_id) {
        return None;
    }
    match cluster.route_call(principal.scope(), call_id).await {
        crate::cluster::Route::Remote { url, .. } => {
            crate::cluster::forward::http(cluster, &url, req, principal).await
        }
        crate::cluster::Route::Local | crate::cluster::Route::Gone => None,
    }
}

/// An id safe to put in a forwarded request's path as it is.
pub fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub async fn hangup(
    State(app): State<Arc<AppState>>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let principal = match caller(&app, &headers).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    // Only the caller's own calls (an operator's: any); anything else is "not found".
    match app.sessions.call(principal.scope(), &call_id) {
        Some(call) => {
            call.stop();
            StatusCode::OK.into_response()
        }
        None => {
            let path = format!("/v1/realtime/calls/{call_id}");
            if let Some(answer) = on_owner_of_call(
                &app,
                &headers,
                &principal,
                &call_id,
                crate::cluster::forward::PeerRequest {
                    kind: "hangup",
                    method: reqwest::Method::DELETE,
                    path_and_query: &path,
                    content_type: None,
                    body: axum::body::Bytes::new(),
                },
            )
            .await
            {
                return answer;
            }
            api_error(
                StatusCode::NOT_FOUND,
                "call_not_found",
                "no such active call",
                None,
            )
        }
    }
}
