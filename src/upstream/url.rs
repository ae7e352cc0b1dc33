//! Realtime websocket URL construction (protocol.md §2.1): path normalization, scheme mapping and
//! the exact query order (existing pairs, v1 `intent=quicksilver`, `model` or `call_id`, extras).

use crate::protocol::ModelVersion;

fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Build the websocket URL for a model session (`model`) or a sideband join (`call_id`).
pub fn realtime_ws_url(
    base_url: &str,
    version: ModelVersion,
    model: Option<&str>,
    call_id: Option<&str>,
    extra_query: &str,
) -> Result<String, String> {
    let base = base_url.trim();
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| format!("`{base}` is not an absolute URL (expected https://host/v1)"))?;
    let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(format!(
                "unsupported URL scheme `{other}` (use http, https, ws or wss)"
            ));
        }
    };
    let (rest, existing_query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("`{base}` has no host"));
    }
    if version == ModelVersion::V3 {
        return Ok(live_url(
            ws_scheme,
            authority,
            path,
            existing_query,
            call_id,
            extra_query,
        ));
    }
    let path = if path.is_empty() || path == "/" {
        "/v1/realtime".to_owned()
    } else if path.ends_with("/v1") {
        format!("{path}/realtime")
    } else if path.ends_with("/v1/") {
        format!("{path}realtime")
    } else if path.ends_with("/realtime") {
        path.to_owned()
    } else {
        format!("{}/realtime", path.trim_end_matches('/'))
    };
    let mut query: Vec<String> = existing_query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if version == ModelVersion::V1 {
        query.push("intent=quicksilver".into());
    }
    match (call_id, model) {
        (Some(id), _) => query.push(format!("call_id={}", encode_query_value(id))),
        (None, Some(m)) => query.push(format!("model={}", encode_query_value(m))),
        (None, None) => {}
    }
    query.extend(
        extra_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
    );
    let mut url = format!("{ws_scheme}://{authority}{path}");
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(url)
}

/// GPT-Live (v3): `{base}/live/sessions` (the model is named in `session.start`, not the URL);
/// a sideband attaches at `{base}/live/sessions/{id}/attach`.
fn live_url(
    ws_scheme: &str,
    authority: &str,
    path: &str,
    existing_query: Option<&str>,
    call_id: Option<&str>,
    extra_query: &str,
) -> String {
    let base = path.trim_end_matches('/');
    let base = base
        .strip_suffix("/live/sessions")
        .or_else(|| base.strip_suffix("/realtime"))
        .unwrap_or(base);
    let base = if base.is_empty() { "/v1" } else { base };
    let mut url = format!("{ws_scheme}://{authority}{base}/live/sessions");
    if let Some(id) = call_id {
        url.push('/');
        url.push_str(&encode_query_value(id));
        url.push_str("/attach");
    }
    let query: Vec<&str> = existing_query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .chain(extra_query.split('&'))
        .filter(|p| !p.is_empty())
        .collect();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use ModelVersion::{V1, V2};

    fn url(base: &str, v: ModelVersion) -> String {
        realtime_ws_url(base, v, Some("gpt-realtime-1.5"), None, "").expect("valid")
    }

    #[test]
    fn paths_normalize_to_v1_realtime() {
        assert_eq!(
            url("https://api.openai.com/v1", V2),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime-1.5"
        );
        assert_eq!(
            url("https://api.openai.com/v1/", V2),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime-1.5"
        );
        assert_eq!(
            url("http://127.0.0.1:9", V2),
            "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime-1.5"
        );
        assert_eq!(
            url("http://127.0.0.1:9/", V2),
            "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime-1.5"
        );
        assert_eq!(
            url("wss://h/x/realtime", V2),
            "wss://h/x/realtime?model=gpt-realtime-1.5"
        );
    }

    #[test]
    fn query_order_is_existing_intent_model_extras() {
        let u = realtime_ws_url("https://h/v1?a=1", V1, Some("m"), None, "x=2&y=3").expect("valid");
        assert_eq!(
            u,
            "wss://h/v1/realtime?a=1&intent=quicksilver&model=m&x=2&y=3"
        );
    }

    #[test]
    fn sideband_uses_call_id_instead_of_model() {
        assert_eq!(
            realtime_ws_url("https://h/v1", V2, Some("m"), Some("rtc_x"), "").expect("valid"),
            "wss://h/v1/realtime?call_id=rtc_x"
        );
        assert_eq!(
            realtime_ws_url("https://h/v1", V1, None, Some("rtc_x"), "").expect("valid"),
            "wss://h/v1/realtime?intent=quicksilver&call_id=rtc_x"
        );
    }

    #[test]
    fn v3_speaks_to_live_sessions_and_attaches_a_sideband_by_id() {
        use ModelVersion::V3;
        for base in [
            "https://h/v1",
            "https://h/v1/",
            "https://h",
            "https://h/v1/realtime",
        ] {
            assert_eq!(
                realtime_ws_url(base, V3, Some("gpt-live-1"), None, "").expect("valid"),
                "wss://h/v1/live/sessions",
                "{base}"
            );
        }
        assert_eq!(
            realtime_ws_url("http://127.0.0.1:9/v1?a=1", V3, None, Some("sess_1"), "x=2")
                .expect("valid"),
            "ws://127.0.0.1:9/v1/live/sessions/sess_1/attach?a=1&x=2"
        );
    }

    #[test]
    fn bad_scheme_is_rejected() {
        assert!(realtime_ws_url("ftp://h", V2, None, None, "").is_err());
        assert!(realtime_ws_url("h/v1", V2, None, None, "").is_err());
    }
}
