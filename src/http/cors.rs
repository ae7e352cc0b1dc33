//! CORS for voxgate's HTTP faces (`[server] cors_origins`): a page on a listed origin may place
//! calls (`POST /v1/realtime/calls`, `/v1/live/sessions`), mint and use client secrets and read
//! transcripts from the browser; the preflight `OPTIONS` is answered here. Credentials travel as
//! bearer headers (an `ek_` secret), never cookies, so no credentialed CORS is offered. The
//! `Location` of a created call is exposed so the page can hang up.

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for these origins (`"*"`: any), or `None` when none are configured.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("openai-beta"),
            ])
            .expose_headers([header::LOCATION])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
