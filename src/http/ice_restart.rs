//! `PATCH /v1/realtime/calls/{id}` with a new SDP offer: a caller on a live relay call restarts
//! ICE (`pc.restartIce()` after its network changed or its ICE failed) and gets the answer back,
//! as WHIP's resource URL does for its sessions (here with a whole offer, `application/sdp`,
//! rather than a trickle-ICE fragment: that is what a browser's `createOffer` gives). The call,
//! its data channel and its conversation go on; only the owner of the call may renegotiate it.

use super::calls::{api_error, auth_error, caller};
use crate::app::AppState;
use crate::media::call::OfferError;
use crate::metrics::CALL_RENEGOTIATIONS;
use crate::session::reactor::SessionCommand;
use crate::session::registry::Delivery;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// How long a session has to answer (it answers at once unless it is ending).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

pub async fn renegotiate(
    State(app): State<Arc<AppState>>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let principal = match caller(&app, &headers).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !ctype.starts_with("application/sdp") {
        return api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "send the new offer as application/sdp",
            None,
        );
    }
    let read = tokio::time::timeout(
        Duration::from_secs(app.cfg.server.request_timeout_secs),
        axum::body::to_bytes(req.into_body(), app.cfg.webrtc.max_offer_bytes),
    );
    let offer = match read.await {
        Ok(Ok(b)) => match String::from_utf8(b.to_vec()) {
            Ok(s) => s,
            Err(_) => return refused(&OfferError::Malformed),
        },
        Ok(Err(_)) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "offer_too_large",
                format!("the offer exceeds {} bytes", app.cfg.webrtc.max_offer_bytes),
                Some("sdp"),
            );
        }
        Err(_) => {
            return api_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the offer did not arrive in time",
                Some("sdp"),
            );
        }
    };
    let Some(call) = app.sessions.call(principal.scope(), &call_id) else {
        // In a cluster, the node running the call answers (its media port is the caller's).
        let path = format!("/v1/realtime/calls/{call_id}");
        let req = crate::cluster::forward::PeerRequest {
            kind: "ice_restart",
            method: reqwest::Method::PATCH,
            path_and_query: &path,
            content_type: Some("application/sdp"),
            body: offer.into(),
        };
        return super::calls::on_owner_of_call(&app, &headers, &principal, &call_id, req)
            .await
            .unwrap_or_else(not_found);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if call
        .send(SessionCommand::Renegotiate { offer, reply })
        .await
        == Delivery::NotRunning
    {
        return not_found();
    }
    match tokio::time::timeout(ANSWER_WITHIN, answer).await {
        Ok(Ok(Ok(answer))) => {
            CALL_RENEGOTIATIONS.with_label_values(&["answered"]).inc();
            tracing::info!(call_id = %call_id, "call renegotiated");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/sdp")],
                answer,
            )
                .into_response()
        }
        Ok(Ok(Err(OfferError::Ended))) | Ok(Err(_)) | Err(_) => not_found(),
        Ok(Ok(Err(e))) => refused(&e),
    }
}

fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "call_not_found",
        "no such active call",
        None,
    )
}

fn refused(e: &OfferError) -> Response {
    CALL_RENEGOTIATIONS.with_label_values(&["refused"]).inc();
    let status = match e {
        OfferError::NotRelayed => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    api_error(status, "invalid_offer", e.to_string(), Some("sdp"))
}
