//! Upstream WebRTC calls (protocol.md §2.4, passthrough mode): forward the caller's offer to the
//! model service's calls endpoint (multipart with the session, or raw SDP; GPT-Live: JSON to
//! `/live/sessions`), retry 5xx/429 with backoff, and extract the call id (the `Location` header;
//! GPT-Live: `session.id`) for the sideband join; hang the call up upstream when voxgate's side of
//! it ends.

use serde_json::Value;
use std::time::Duration;

/// Why the upstream refused or failed to create the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallCreateError {
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    pub message: String,
}

/// The call id in a `Location`: the rightmost path segment that starts with `rtc_` (longer than 4)
/// or is a 36-character UUID; the query is ignored.
pub fn call_id_from_location(location: &str) -> Result<String, String> {
    let path = location.split(['?', '#']).next().unwrap_or("");
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    path.rsplit('/')
        .find(|seg| (seg.starts_with("rtc_") && seg.len() > 4) || is_uuid(seg))
        .map(str::to_owned)
        .ok_or_else(|| format!("realtime call Location does not contain a call id: {location}"))
}

/// `{base}/realtime/calls` for a base like `https://api.openai.com/v1`.
pub fn calls_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/realtime") {
        format!("{base}/calls")
    } else {
        format!("{base}/realtime/calls")
    }
}

fn error_message(status: u16, body: &str) -> String {
    let upstream = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    format!("the realtime service refused the call (HTTP {status}): {upstream}")
}

/// An upstream answer: status, `Location`, body.
struct Answered {
    status: u16,
    location: Option<String>,
    body: String,
}

/// Send a create request, retrying connection failures, 5xx and 429 (three attempts in all,
/// 250 ms then 500 ms apart); any other answer is returned as it came.
async fn send_with_retries(
    make: impl Fn() -> Result<reqwest::RequestBuilder, CallCreateError>,
) -> Result<Answered, CallCreateError> {
    let mut delay = Duration::from_millis(250);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = match make()?.send().await {
            Ok(r) => r,
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e.without_url(), attempt, "realtime call create failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            Err(e) => {
                return Err(CallCreateError {
                    status: None,
                    message: format!("cannot reach the realtime service: {}", e.without_url()),
                });
            }
        };
        let status = resp.status().as_u16();
        if (status >= 500 || status == 429) && attempt < 3 {
            tracing::warn!(status, attempt, "realtime call create failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            continue;
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(CallCreateError {
                status: Some(status),
                message: error_message(status, &body),
            });
        }
        return Ok(Answered {
            status,
            location,
            body,
        });
    }
}

fn part(text: String, mime: &str) -> Result<reqwest::multipart::Part, CallCreateError> {
    reqwest::multipart::Part::text(text)
        .mime_str(mime)
        .map_err(|e| CallCreateError {
            status: None,
            message: e.to_string(),
        })
}

/// Create the call upstream; returns (answer SDP, call id).
pub async fn create_call(
    http: &reqwest::Client,
    base_url: &str,
    api_key: Option<&str>,
    offer: &str,
    session: Option<&Value>,
) -> Result<(String, String), CallCreateError> {
    let url = calls_url(base_url);
    let answered = send_with_retries(|| {
        let mut req = http.post(&url);
        if let Some(key) = api_key {
            req = req.bearer_auth(key);
        }
        Ok(match session {
            Some(s) => req.multipart(
                reqwest::multipart::Form::new()
                    .part("sdp", part(offer.to_owned(), "application/sdp")?)
                    .part("session", part(s.to_string(), "application/json")?),
            ),
            None => req
                .header("content-type", "application/sdp")
                .body(offer.to_owned()),
        })
    })
    .await?;
    let status = Some(answered.status);
    let location = answered.location.ok_or(CallCreateError {
        status,
        message: "realtime call response missing Location".into(),
    })?;
    let call_id =
        call_id_from_location(&location).map_err(|message| CallCreateError { status, message })?;
    Ok((answered.body, call_id))
}

/// `{base}/live/sessions` for a base like `https://api.openai.com/v1`.
pub fn live_sessions_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/realtime").unwrap_or(base);
    format!("{base}/live/sessions")
}

/// Create a GPT-Live (v3) WebRTC session upstream: `POST {base}/live/sessions` with
/// `{"session": …, "transport": {"type": "webrtc", "sdp": offer}}`; returns (answer SDP,
/// session id) from `{"session": {"id"}, "transport": {"sdp"}}`.
pub async fn create_live_session(
    http: &reqwest::Client,
    base_url: &str,
    api_key: Option<&str>,
    offer: &str,
    session: &Value,
) -> Result<(String, String), CallCreateError> {
    let url = live_sessions_url(base_url);
    let body =
        serde_json::json!({"session": session, "transport": {"type": "webrtc", "sdp": offer}});
    let answered = send_with_retries(|| {
        let mut req = http.post(&url).json(&body);
        if let Some(key) = api_key {
            req = req.bearer_auth(key);
        }
        Ok(req)
    })
    .await?;
    let status = Some(answered.status);
    let created: Value = serde_json::from_str(&answered.body).map_err(|_| CallCreateError {
        status,
        message: "the GPT-Live session response is not JSON".into(),
    })?;
    let id = created["session"]["id"]
        .as_str()
        .filter(|id| !id.is_empty());
    let sdp = created["transport"]["sdp"]
        .as_str()
        .filter(|s| !s.is_empty());
    match (id, sdp) {
        (Some(id), Some(sdp)) => Ok((sdp.to_owned(), id.to_owned())),
        _ => Err(CallCreateError {
            status,
            message: "the GPT-Live session response lacks session.id or transport.sdp".into(),
        }),
    }
}

/// A passthrough call to end upstream when voxgate's side of it ends.
#[derive(Clone)]
pub struct UpstreamCall {
    pub http: reqwest::Client,
    pub base_url: String,
    pub api_key: Option<String>,
    pub call_id: String,
}

/// How long a hang-up may take before it is given up (the call then ends by the service's own
/// timeouts).
const HANG_UP_WITHIN: Duration = Duration::from_secs(5);

impl UpstreamCall {
    /// `POST {base}/realtime/calls/{id}/hangup`, best effort: a call the service already ended
    /// answers 404, which is fine.
    pub async fn hang_up(&self) {
        let url = format!("{}/{}/hangup", calls_url(&self.base_url), self.call_id);
        let mut req = self.http.post(url).timeout(HANG_UP_WITHIN);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(call_id = %self.call_id, "upstream call hung up");
            }
            Ok(r) => {
                tracing::debug!(call_id = %self.call_id, status = r.status().as_u16(),
                    "upstream call hang-up answered");
            }
            Err(e) => {
                tracing::warn!(call_id = %self.call_id, error = %e.without_url(),
                    "upstream call hang-up failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_is_the_rightmost_rtc_or_uuid_segment() {
        assert_eq!(
            call_id_from_location("/v1/realtime/calls/rtc_abc").as_deref(),
            Ok("rtc_abc")
        );
        assert_eq!(
            call_id_from_location("/v1/realtime/calls/calls/rtc_x").as_deref(),
            Ok("rtc_x")
        );
        assert_eq!(
            call_id_from_location("https://h/v1/realtime/calls/rtc_x?foo=rtc_y").as_deref(),
            Ok("rtc_x")
        );
        assert_eq!(
            call_id_from_location("/calls/123e4567-e89b-12d3-a456-426614174000").as_deref(),
            Ok("123e4567-e89b-12d3-a456-426614174000")
        );
        assert_eq!(
            call_id_from_location("/v1/realtime/calls/rtc_"),
            Err(
                "realtime call Location does not contain a call id: /v1/realtime/calls/rtc_".into()
            )
        );
        assert!(call_id_from_location("/v1/realtime/calls/abc").is_err());
    }

    #[test]
    fn calls_url_completes_the_base() {
        assert_eq!(
            calls_url("https://api.openai.com/v1"),
            "https://api.openai.com/v1/realtime/calls"
        );
        assert_eq!(calls_url("http://h/v1/"), "http://h/v1/realtime/calls");
        assert_eq!(
            calls_url("http://h/v1/realtime"),
            "http://h/v1/realtime/calls"
        );
    }
}
