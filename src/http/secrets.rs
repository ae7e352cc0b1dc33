//! `POST /v1/realtime/client_secrets`: mint a short-lived `ek_…` secret for a browser or phone,
//! in OpenAI's request and response shape. Needs an API key (a client secret cannot mint more);
//! an optional `session` is bound to the secret and applied to sessions created with it. With
//! `[[webrtc.ice_servers]]` configured the response also carries `ice_servers` (voxgate's
//! extension) so the page holding the secret can build its peer connection in one step.

use super::calls::{api_error, auth_error};
use crate::app::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

pub async fn create(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let principal = match app.caller(&headers, false).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    let secs = app.cfg.server.request_timeout_secs;
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(secs),
        axum::body::to_bytes(req.into_body(), MAX_BODY),
    );
    let body = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return api_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {MAX_BODY} bytes"),
                None,
            );
        }
        Err(_) => {
            return api_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the body did not arrive within {secs}s"),
                None,
            );
        }
    };
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "the body must be a JSON object",
                    None,
                );
            }
        }
    };
    let ttl = req
        .pointer("/expires_after/seconds")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    let session = req.get("session").cloned().filter(Value::is_object);
    match app.mint_secret(&principal, ttl, session.clone()).await {
        Ok((value, expires_at)) => {
            tracing::info!(key = %principal.key_id, ttl, "client secret minted");
            let mut body = json!({"value": value, "expires_at": expires_at,
                "session": session.unwrap_or_else(|| json!({"type": "realtime"}))});
            // voxgate extension: what the browser holding the secret needs to get through NAT.
            let ice = app.cfg.webrtc.rtc_ice_servers();
            if !ice.is_empty() {
                body["ice_servers"] = ice.into();
            }
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => auth_error(e),
    }
}
