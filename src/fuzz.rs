//! The entry points of the coverage-guided fuzz targets in `fuzz/` (run with `cargo fuzz`), also
//! replayed over their seed corpora by an ordinary test. Each takes arbitrary bytes, hands them to
//! one of voxgate's parsers the way hostile input arrives — an SDP offer, a posted offer form, a
//! JSON-RPC message, a model event, a whole OpenAI-protocol conversation, a webhook's NDJSON
//! stream — and checks what must hold whatever the input. Returning is success; a panic is a bug.

use crate::engine::{Acks, ClientCommand, EngineConfig};
use crate::protocol::ModelVersion;
use crate::protocol::model::TextRole;
use crate::protocol::rpc as p;
use crate::rpc::request::ClientRequest;
use crate::session::Face;
use crate::session::core::{ClientSide, CoreConfig, Input, SessionCore};
use crate::session::outbox::OutboxLimits;
use futures_util::FutureExt;
use std::time::{Duration, Instant};

/// A fuzz target: takes any bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/seeds/<name>/` have them.
pub const TARGETS: [(&str, Target); 6] = [
    ("sdp_offer", sdp_offer),
    ("offer_form", offer_form),
    ("rpc_message", rpc_message),
    ("model_event", model_event),
    ("openai_face", openai_face),
    ("webhook_ndjson", webhook_ndjson),
];

/// An offer's text, as `check_offer` and the log line see it: the line stays bounded.
pub fn sdp_offer(data: &[u8]) {
    let sdp = String::from_utf8_lossy(data);
    let described = crate::media::call::describe_offer(&sdp);
    let bound = 200 + crate::media::call::LOGGED_CODECS * 20;
    assert!(
        described.len() <= bound,
        "log line of {} bytes",
        described.len()
    );
    let _ = crate::media::call::check_offer(&sdp);
}

/// A posted offer: the first line is the `Content-Type`, the rest the body (raw SDP or a
/// multipart form), read under a 16 KiB limit.
pub fn offer_form(data: &[u8]) {
    const LIMIT: usize = 16 * 1024;
    let (ctype, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_bytes(ctype) {
        headers.insert(axum::http::header::CONTENT_TYPE, v);
    }
    let mut req = axum::extract::Request::new(axum::body::Body::from(body.to_vec()));
    *req.headers_mut() = headers.clone();
    // The body is all in memory: reading it never waits.
    let read = crate::http::calls::read_offer(&headers, req, LIMIT).now_or_never();
    let Some(Ok(offer)) = read else { return };
    assert!(offer.sdp.len() <= LIMIT, "an offer past the limit was read");
    let _ = crate::media::call::check_offer(&offer.sdp);
}

/// One JSON-RPC message, parsed and decoded as the connection does before it acts; the reply
/// to an error is always JSON.
pub fn rpc_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let reply = match p::parse_incoming(text) {
        Err((id, err)) => p::response_err(&id, &err),
        Ok(p::Incoming::Request {
            id, method, params, ..
        }) => match ClientRequest::decode(&method, params) {
            Ok(_) => p::response_ok(&id, serde_json::json!({})),
            Err(err) => p::response_err(&id, &err),
        },
        Ok(_) => return,
    };
    assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
}

/// One model event, parsed as a v1 and as a v2 model would send it.
pub fn model_event(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for version in [ModelVersion::V1, ModelVersion::V2] {
        let _ = version.parse(text);
    }
}

/// A whole conversation on the OpenAI face (or, by the first byte, the JSON-RPC face), driven
/// through the sans-IO `SessionCore`: model events, client events, commands and the passing of
/// time, in the order the bytes say. What voxgate itself writes to the model must be JSON.
pub fn openai_face(data: &[u8]) {
    let mut ops = Ops(data);
    let flags = ops.byte().unwrap_or(0);
    let version = if flags & 1 == 0 {
        ModelVersion::V2
    } else {
        ModelVersion::V1
    };
    let face = if flags & 2 == 0 {
        Face::OpenaiWs
    } else {
        Face::Rpc
    };
    let delegation = flags & 4 == 0;
    let cfg = CoreConfig {
        face,
        engine: EngineConfig {
            version,
            realtime_session_id: "sess_fuzz".into(),
            session_update: serde_json::json!({"type": "session.update", "session": {"type": "realtime"}}),
            acks: Acks::default(),
            local_playout: false,
            delegation,
            errors_end_session: face == Face::Rpc,
            replay: Default::default(),
            input_gate: None,
        },
        task_timeout: Duration::from_secs(5),
        max_duration: Some(Duration::from_secs(600)),
        answer: None,
        model_limits: OutboxLimits::default(),
        client_limits: OutboxLimits::default(),
        model_idle: Some(Duration::from_secs(30)),
        detach_grace: (face == Face::Rpc).then_some(Duration::from_secs(30)),
        rollover_after: Some(Duration::from_secs(20)),
        reconnect: crate::session::reconnect::ReconnectPolicy {
            attempts: 2,
            backoff: Duration::from_millis(250),
        },
    };
    let client = match face {
        Face::OpenaiWs => ClientSide::openai(delegation),
        _ => ClientSide::Notifications,
    };
    let mut now = Instant::now();
    let mut core = SessionCore::new(cfg, client, now);
    // A client's events the model gets as they came (the model answers malformed ones).
    let mut passed = std::collections::HashSet::new();
    while let Some(op) = ops.byte() {
        match op % 9 {
            0 => core.handle_input(now, Input::ModelText(&ops.text())),
            1 => {
                let text = ops.text();
                passed.insert(text.clone());
                core.handle_input(now, Input::ClientText(text));
            }
            2 => {
                now += Duration::from_millis(u64::from(ops.byte().unwrap_or(0)) * 100);
                core.handle_input(now, Input::Timeout);
            }
            3 => core.handle_input(now, Input::ModelConnected),
            4 => core.handle_input(now, Input::ModelAlive),
            5 => {
                let cmd = ClientCommand::AppendText {
                    text: ops.text(),
                    role: TextRole::User,
                };
                core.handle_input(now, Input::Command(cmd));
            }
            6 => {
                let update = crate::agent::AgentUpdate::Message(ops.text());
                core.handle_input(now, Input::Agent(update));
            }
            7 => {
                let outcome = crate::engine::TaskOutcome::Failed(ops.text());
                core.handle_input(now, Input::Agent(crate::agent::AgentUpdate::End(outcome)));
            }
            _ => core.handle_input(now, Input::ModelClosed),
        }
        while core.poll_output().is_some() {}
        // What goes to the model is a client's event as it came or voxgate's own writing, always
        // JSON. What goes to an OpenAI client is the model's events as they came, or voxgate's.
        let (model, client) = core.outboxes();
        while let Some((frame, _)) = model.pop(now) {
            assert!(
                passed.contains(&frame)
                    || serde_json::from_str::<serde_json::Value>(&frame).is_ok(),
                "a frame for the model that is not JSON: {frame:.200}"
            );
        }
        while client.pop(now).is_some() {}
        if core.is_closed() {
            break;
        }
    }
}

/// A webhook's NDJSON reply, cut into chunks where the bytes say: the lines come out the same
/// however the stream is chunked, and each parses or explains why not.
pub fn webhook_ndjson(data: &[u8]) {
    use crate::agent::stream::LineSplitter;
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let mut whole = LineSplitter::default();
    let mut expected = whole.push(body);
    expected.extend(whole.finish());
    let mut chunked = LineSplitter::default();
    let mut lines = Vec::new();
    let step = usize::from(seed % 17) + 1;
    for chunk in body.chunks(step) {
        lines.extend(chunked.push(chunk));
    }
    lines.extend(chunked.finish());
    if !whole.overflowed() && !chunked.overflowed() {
        let trimmed = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|l| l.trim_end().to_owned())
                .filter(|l| !l.is_empty())
                .collect()
        };
        assert_eq!(
            trimmed(&lines),
            trimmed(&expected),
            "chunking changed the lines"
        );
    }
    for line in &lines {
        if let Err(message) = crate::agent::webhook::parse_line(line) {
            assert!(
                message.len() < 600,
                "an error message of {} bytes",
                message.len()
            );
        }
    }
}

/// Reads ops from the fuzzer's bytes: a byte, or a text with a two-byte length.
struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn text(&mut self) -> String {
        let len = match (self.byte(), self.byte()) {
            (Some(a), Some(b)) => usize::from(u16::from_le_bytes([a, b])),
            _ => 0,
        };
        let (text, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
}
