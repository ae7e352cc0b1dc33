//! `GET /v1/realtime/ice_servers`: the STUN/TURN servers (`[[webrtc.ice_servers]]`) a caller
//! behind NAT passes to `new RTCPeerConnection({iceServers})` before making its offer. It may
//! hold TURN credentials, so it takes an API key or an `ek_` client secret like a call does.

use crate::app::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn list(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = app.caller(&headers, true).await {
        return super::calls::auth_error(e);
    }
    axum::Json(serde_json::json!({"ice_servers": app.cfg.webrtc.rtc_ice_servers()})).into_response()
}
