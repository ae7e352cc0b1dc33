//! `GET /v1/threads/{id}/transcript`: a thread's transcript for the key that owns it, while its
//! conversation runs and for the retention period after it ended. Anyone else's thread, or one
//! that does not exist (or was forgotten), is the same 404.

use super::calls::{api_error, auth_error, caller, plain_id};
use crate::app::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn transcript(
    State(app): State<Arc<AppState>>,
    Path(thread_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let principal = match caller(&app, &headers).await {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    match app.sessions.transcript(&principal.key_id, &thread_id) {
        Some(t) => axum::Json(t).into_response(),
        None if let Some(answer) = on_owner(&app, &headers, &principal, &thread_id).await => answer,
        None => api_error(
            StatusCode::NOT_FOUND,
            "thread_not_found",
            "no such thread",
            None,
        ),
    }
}

/// The transcript from the node that holds the thread, in a cluster (`None`: no node does).
async fn on_owner(
    app: &AppState,
    headers: &HeaderMap,
    principal: &crate::auth::Principal,
    thread_id: &str,
) -> Option<Response> {
    let cluster = app.cluster()?;
    if headers.contains_key(crate::cluster::AUTH_HEADER) || !plain_id(thread_id) {
        return None;
    }
    match cluster.route_thread(&principal.key_id, thread_id).await {
        crate::cluster::Route::Remote { url, .. } => {
            let path = format!("/v1/threads/{thread_id}/transcript");
            let req = crate::cluster::forward::PeerRequest {
                kind: "transcript",
                method: reqwest::Method::GET,
                path_and_query: &path,
                content_type: None,
                body: axum::body::Bytes::new(),
            };
            crate::cluster::forward::http(cluster, &url, req, principal).await
        }
        _ => None,
    }
}
