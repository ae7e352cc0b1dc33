//! `GET /v1/threads/{id}/transcript`: a thread's transcript for the key that owns it, while its
//! conversation runs and for the retention period after it ended. Anyone else's thread, or one
//! that does not exist (or was forgotten), is the same 404.

use super::calls::{api_error, auth_error, caller};
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
    let principal = match caller(&app, &headers) {
        Ok(p) => p,
        Err(e) => return auth_error(e),
    };
    match app.sessions.transcript(&principal.key_id, &thread_id) {
        Some(t) => axum::Json(t).into_response(),
        None => api_error(
            StatusCode::NOT_FOUND,
            "thread_not_found",
            "no such thread",
            None,
        ),
    }
}
