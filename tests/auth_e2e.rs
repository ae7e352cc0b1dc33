//! Authentication and limits on every face, over real sockets: API keys (hashed, constant-time),
//! `ek_…` client secrets (scope, binding), per-key concurrency and maximum session duration.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};
use voxgate::config::{ApiKeyConfig, AuthMode, KeyLimits};

const KEY: &str = "sk-voxgate-client-key";

fn sha(s: &str) -> String {
    hex::encode(voxgate::auth::sha256(s))
}

async fn keyed(limits: KeyLimits) -> Harness {
    keyed_with(limits, |_| {}).await
}

/// One key (`KEY`, id `team`) with `limits`, and the rest of the config as `tweak` sets it.
async fn keyed_with(
    limits: KeyLimits,
    tweak: impl FnOnce(&mut voxgate::config::Config),
) -> Harness {
    harness_with(
        |_| {},
        move |cfg| {
            cfg.auth.mode = AuthMode::Keys;
            cfg.auth.keys = vec![ApiKeyConfig {
                id: "team".into(),
                sha256: sha(KEY),
                limits,
                admin: false,
            }];
            tweak(cfg);
        },
    )
    .await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a websocket with an optional bearer; Err(status) when the upgrade is refused.
async fn ws(addr: std::net::SocketAddr, path: &str, bearer: Option<&str>) -> Result<Ws, u16> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    if let Some(b) = bearer {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {b}")).expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected connect error: {e}"),
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).expect("json");
        }
    }
}

async fn mint(addr: std::net::SocketAddr, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/v1/realtime/client_secrets"))
        .json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_face_refuses_missing_and_wrong_keys() {
    let h = keyed(KeyLimits::default()).await;
    assert_eq!(ws(h.addr, "/rpc", None).await.err(), Some(401));
    assert_eq!(ws(h.addr, "/rpc", Some("sk-wrong")).await.err(), Some(401));
    assert_eq!(
        ws(h.addr, "/v1/realtime?model=m", None).await.err(),
        Some(401)
    );
    assert_eq!(
        ws(h.addr, "/v1/realtime?model=m", Some("sk-wrong"))
            .await
            .err(),
        Some(401)
    );
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("content-type", "application/sdp")
        .body("v=0")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert_eq!(mint(h.addr, None, json!({})).await.0, 401);

    let mut rpc = ws(h.addr, "/rpc", Some(KEY)).await.expect("rpc with key");
    rpc.send(Message::text(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}}}).to_string()))
        .await
        .expect("send");
    assert!(next_json(&mut rpc).await["result"]["userAgent"].is_string());
    let mut rt = ws(h.addr, "/v1/realtime?model=m", Some(KEY))
        .await
        .expect("realtime with key");
    assert_eq!(next_json(&mut rt).await["type"], "session.created");
}

#[tokio::test]
async fn client_secrets_work_on_realtime_faces_only_and_carry_their_session() {
    let h = keyed(KeyLimits::default()).await;
    let mut frames = SimFrames::new(&h.sim);
    let (status, secret) = mint(
        h.addr,
        Some(KEY),
        json!({"expires_after": {"anchor": "created_at", "seconds": 120},
        "session": {"type": "realtime", "instructions": "Bound to the secret."}}),
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    let ek = secret["value"].as_str().expect("value").to_owned();
    assert!(ek.starts_with("ek_"));
    assert!(secret["expires_at"].as_u64().is_some());
    assert_eq!(secret["session"]["instructions"], "Bound to the secret.");

    // Usable on /v1/realtime, and the bound session is what the model is configured with.
    let mut rt = ws(h.addr, "/v1/realtime?model=m", Some(&ek))
        .await
        .expect("secret accepted");
    assert_eq!(next_json(&mut rt).await["type"], "session.created");
    let first: Value = serde_json::from_str(&frames.next_frame().await).expect("json");
    assert_eq!(first["session"]["instructions"], "Bound to the secret.");
    assert_eq!(first["session"]["tools"][0]["name"], "background_agent");

    // Never to mint more, never on the app-server face.
    assert_eq!(mint(h.addr, Some(&ek), json!({})).await.0, 403);
    assert_eq!(ws(h.addr, "/rpc", Some(&ek)).await.err(), Some(403));
    // TTL bounds.
    assert_eq!(
        mint(h.addr, Some(KEY), json!({"expires_after": {"seconds": 5}}))
            .await
            .0,
        400
    );
    assert_eq!(
        mint(
            h.addr,
            Some(KEY),
            json!({"expires_after": {"seconds": 7201}})
        )
        .await
        .0,
        400
    );
    // Also accepted on the calls endpoint and the sideband (auth passes; then the request's own
    // errors show: a bad offer, an unknown call).
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .bearer_auth(&ek)
        .header("content-type", "application/sdp")
        .body("not an offer")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        ws(h.addr, "/v1/realtime?call_id=rtc_nope", Some(&ek))
            .await
            .err(),
        Some(404)
    );
    assert_eq!(
        ws(h.addr, "/v1/realtime?call_id=rtc_nope", None)
            .await
            .err(),
        Some(401)
    );
    // A made-up secret is refused.
    assert_eq!(
        ws(h.addr, "/v1/realtime?model=m", Some("ek_0000"))
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn the_next_concurrent_session_over_the_limit_is_429() {
    let h = keyed(KeyLimits {
        max_concurrent_sessions: Some(1),
        ..KeyLimits::default()
    })
    .await;
    let mut first = ws(h.addr, "/v1/realtime?model=m", Some(KEY))
        .await
        .expect("first");
    assert_eq!(next_json(&mut first).await["type"], "session.created");
    assert_eq!(
        ws(h.addr, "/v1/realtime?model=m", Some(KEY)).await.err(),
        Some(429)
    );
    // Closing the first frees the slot.
    first.close(None).await.expect("close");
    let mut ok = None;
    for _ in 0..50 {
        if let Ok(w) = ws(h.addr, "/v1/realtime?model=m", Some(KEY)).await {
            ok = Some(w);
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        ok.is_some(),
        "the slot was released when the first session ended"
    );
}

#[tokio::test]
async fn sessions_over_their_maximum_duration_close_with_a_clear_reason() {
    let h = keyed(KeyLimits {
        max_session_secs: Some(1),
        ..KeyLimits::default()
    })
    .await;
    let mut rt = ws(h.addr, "/v1/realtime?model=m", Some(KEY))
        .await
        .expect("open");
    loop {
        let v = next_json(&mut rt).await;
        if v["type"] == "error" {
            assert_eq!(v["error"]["code"], "session_expired");
            assert_eq!(
                v["error"]["message"],
                "the session exceeded its maximum duration of 1s"
            );
            break;
        }
    }
    // Then the socket closes.
    loop {
        match tokio::time::timeout(WAIT, rt.next())
            .await
            .expect("close in time")
        {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
}

/// Wait (bounded) for a JSON-RPC message matching `pred`.
async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next_json(ws).await;
        if pred(&v) {
            return v;
        }
    }
}

/// An initialized JSON-RPC connection with the key.
async fn rpc_client(addr: std::net::SocketAddr) -> Ws {
    rpc_client_with(addr, KEY).await
}

/// An initialized JSON-RPC connection with `key`.
async fn rpc_client_with(addr: std::net::SocketAddr, key: &str) -> Ws {
    let mut rpc = ws(addr, "/rpc", Some(key)).await.expect("rpc with key");
    rpc.send(Message::text(json!({"id": 0, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}, "capabilities": {"experimentalApi": true}}}).to_string()))
        .await
        .expect("send");
    until(&mut rpc, |v| v["id"] == 0).await;
    rpc
}

async fn start_thread(rpc: &mut Ws, thread: &str) -> Value {
    rpc.send(Message::text(json!({"id": 1, "method": "thread/realtime/start", "params": {"threadId": thread, "outputModality": "text"}}).to_string()))
        .await
        .expect("send");
    until(rpc, |v| {
        v["params"]["threadId"] == thread
            && (v["method"] == "thread/realtime/started" || v["method"] == "thread/realtime/error")
    })
    .await
}

#[tokio::test]
async fn conversations_whose_rpc_client_left_release_their_key_slots_after_the_grace() {
    let h = keyed_with(
        KeyLimits {
            max_concurrent_sessions: Some(2),
            ..KeyLimits::default()
        },
        |cfg| {
            cfg.session.detach_grace_secs = 1;
        },
    )
    .await;
    let mut a = rpc_client(h.addr).await;
    for t in ["a1", "a2"] {
        assert_eq!(
            start_thread(&mut a, t).await["method"],
            "thread/realtime/started"
        );
    }
    let refused = start_thread(&mut a, "a3").await;
    assert_eq!(
        refused["method"], "thread/realtime/error",
        "the key is at its cap"
    );
    // A second client shares a1 (it appends to it); then the first client goes away.
    let mut b = rpc_client(h.addr).await;
    b.send(Message::text(json!({"id": 5, "method": "thread/realtime/appendText", "params": {"threadId": "a1", "text": "still here"}}).to_string()))
        .await
        .expect("send");
    until(&mut b, |v| v["id"] == 5).await;
    drop(a);
    // a2 had nobody else: it detaches, ends after its one-second grace and frees its slot; a1
    // goes on for b.
    let freed = tokio::time::timeout(WAIT, async {
        while h.app.sessions.running_count() != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "{} running", h.app.sessions.running_count());
    assert!(
        h.app.sessions.is_running("team", "a1"),
        "a shared thread survives"
    );
    assert_eq!(
        start_thread(&mut b, "b1").await["method"],
        "thread/realtime/started"
    );
    // b leaves too: nothing is held by nobody.
    drop(b);
    let idle = tokio::time::timeout(WAIT, h.app.sessions.wait_idle()).await;
    assert!(idle.is_ok(), "{} running", h.app.sessions.running_count());
    let mut c = rpc_client(h.addr).await;
    for t in ["c1", "c2"] {
        assert_eq!(
            start_thread(&mut c, t).await["method"],
            "thread/realtime/started"
        );
    }
}

#[tokio::test]
async fn unfinished_offers_time_out_and_hold_no_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = keyed_with(
        KeyLimits {
            max_concurrent_sessions: Some(1),
            ..KeyLimits::default()
        },
        |cfg| {
            cfg.server.request_timeout_secs = 1;
        },
    )
    .await;
    // An offer whose body never finishes holds no slot of its key...
    let mut body = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/realtime/calls HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/sdp\r\nContent-Length: 4000\r\n\r\nv=0\r\n"
    );
    body.write_all(head.as_bytes()).await.expect("write");
    // ...so the key's one slot is free for a real call meanwhile.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .bearer_auth(KEY)
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    // And the unfinished one is answered 408 once its time is up.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, body.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn metrics_want_a_key_in_keys_mode() {
    let h = keyed(KeyLimits::default()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", h.addr);
    let anonymous = http.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status().as_u16(), 401);
    let keyed = http.get(&url).bearer_auth(KEY).send().await.expect("get");
    assert_eq!(keyed.status().as_u16(), 200);
    assert!(
        keyed
            .text()
            .await
            .expect("body")
            .contains("voxgate_sessions_active")
    );
}

const KEY_B: &str = "sk-voxgate-other-tenant";
const KEY_OPS: &str = "sk-voxgate-operator";

/// Keys of two tenants (A = `KEY`, B = `KEY_B`) and an operator.
async fn two_tenants() -> Harness {
    harness_with(
        |_| {},
        |cfg| {
            cfg.auth.mode = AuthMode::Keys;
            let key = |id: &str, k: &str, admin: bool| ApiKeyConfig {
                id: id.into(),
                sha256: sha(k),
                limits: KeyLimits::default(),
                admin,
            };
            cfg.auth.keys = vec![
                key("team-a", KEY, false),
                key("team-b", KEY_B, false),
                key("ops", KEY_OPS, true),
            ];
        },
    )
    .await
}

async fn post_call(addr: std::net::SocketAddr, key: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/realtime/calls"))
        .bearer_auth(key)
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

async fn delete(addr: std::net::SocketAddr, path: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .delete(format!("http://{addr}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("delete");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_key_cannot_reach_another_keys_calls_or_threads() {
    let h = two_tenants().await;
    let calls = |owner: &'static str, id: &str| h.app.sessions.call(Some(owner), id).is_some();
    // A's call: B's hang-up, B's client secret, B's sideband all find nothing.
    let loc = post_call(h.addr, KEY).await;
    let call_id = loc.rsplit('/').next().expect("id").to_owned();
    let (status, body) = delete(h.addr, &loc, KEY_B).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "call_not_found");
    let (_, secret) = mint(h.addr, Some(KEY_B), json!({})).await;
    let ek_b = secret["value"].as_str().expect("B's secret").to_owned();
    assert_eq!(delete(h.addr, &loc, &ek_b).await.0, 404);
    let hangup = reqwest::Client::new()
        .post(format!("http://{}{loc}/hangup", h.addr))
        .bearer_auth(KEY_B)
        .send()
        .await
        .expect("post");
    assert_eq!(hangup.status().as_u16(), 404);
    // B's ICE restart on A's call: not found either (an owner's may go through).
    let restart = reqwest::Client::new()
        .patch(format!("http://{}{loc}", h.addr))
        .bearer_auth(KEY_B)
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("patch");
    assert_eq!(restart.status().as_u16(), 404);
    let sideband = format!("/v1/realtime?call_id={call_id}");
    assert_eq!(ws(h.addr, &sideband, Some(KEY_B)).await.err(), Some(404));
    assert!(calls("team-a", &call_id), "A's call runs on");
    // A's own sideband works.
    assert!(ws(h.addr, &sideband, Some(KEY)).await.is_ok());

    // A's JSON-RPC thread: the sideband does not attach to conversations, even for A.
    let mut a = rpc_client_with(h.addr, KEY).await;
    assert_eq!(
        start_thread(&mut a, "demo").await["method"],
        "thread/realtime/started"
    );
    assert_eq!(
        ws(h.addr, "/v1/realtime?call_id=demo", Some(KEY))
            .await
            .err(),
        Some(404)
    );
    // B's "demo" is B's own: appending reaches nothing of A's, stopping stops nothing of A's.
    let mut b = rpc_client_with(h.addr, KEY_B).await;
    b.send(Message::text(
        json!({"id": 7, "method": "thread/realtime/appendText",
        "params": {"threadId": "demo", "text": "hello from B"}})
        .to_string(),
    ))
    .await
    .expect("send");
    // As for a thread that does not exist.
    let not_found = until(&mut b, |v| v["id"] == 7).await;
    assert_eq!(not_found["error"]["message"], "thread not found: demo");
    b.send(Message::text(
        json!({"id": 8, "method": "thread/realtime/stop",
        "params": {"threadId": "demo"}})
        .to_string(),
    ))
    .await
    .expect("send");
    until(&mut b, |v| v["method"] == "thread/realtime/closed").await;
    assert!(
        h.app.sessions.is_running("team-a", "demo"),
        "A's thread runs on"
    );
    // B starting a thread named after A's call makes B's own thread; A's call runs on.
    assert_eq!(
        start_thread(&mut b, &call_id).await["method"],
        "thread/realtime/started"
    );
    assert!(calls("team-a", &call_id));
    // A hears nothing of B's thread, and A's own thread still answers A.
    a.send(Message::text(
        json!({"id": 9, "method": "thread/realtime/appendText",
        "params": {"threadId": "demo", "text": "still mine"}})
        .to_string(),
    ))
    .await
    .expect("send");
    let done = until(&mut a, |v| {
        v["method"] == "thread/realtime/transcript/done" && v["params"]["role"] == "assistant"
    })
    .await;
    assert_eq!(done["params"]["threadId"], "demo");
    assert!(
        done["params"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("still mine")),
        "{done}"
    );

    // The owner hangs up its own call; an operator may hang up anyone's.
    let second = post_call(h.addr, KEY).await;
    assert_eq!(delete(h.addr, &loc, KEY).await.0, 200);
    assert_eq!(delete(h.addr, &second, KEY_OPS).await.0, 200);
}

async fn get_transcript(addr: std::net::SocketAddr, thread: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/v1/threads/{thread}/transcript"))
        .bearer_auth(key)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_threads_transcript_is_readable_by_its_owner_while_it_runs_and_after_it_ends() {
    let h = two_tenants().await;
    let mut a = rpc_client_with(h.addr, KEY).await;
    start_thread(&mut a, "notes").await;
    a.send(Message::text(json!({"id": 2, "method": "thread/realtime/appendText", "params": {"threadId": "notes", "text": "hello there"}}).to_string()))
        .await
        .expect("send");
    until(&mut a, |v| v["method"] == "thread/realtime/transcript/done").await;

    let (status, t) = get_transcript(h.addr, "notes", KEY).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["running"], true);
    assert_eq!(t["turns"][0]["role"], "assistant", "{t}");
    assert_eq!(t["turns"][0]["text"], "You said: hello there");
    // Another key's read is indistinguishable from a thread that does not exist.
    let (status, body) = get_transcript(h.addr, "notes", KEY_B).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "thread_not_found");
    let mut b = rpc_client_with(h.addr, KEY_B).await;
    b.send(Message::text(json!({"id": 3, "method": "thread/realtime/transcript/read", "params": {"threadId": "notes"}}).to_string()))
        .await
        .expect("send");
    let refused = until(&mut b, |v| v["id"] == 3).await;
    assert_eq!(refused["error"]["message"], "thread not found: notes");

    // After the conversation ended, the owner still reads it (JSON-RPC too).
    a.send(Message::text(
        json!({"id": 4, "method": "thread/realtime/stop", "params": {"threadId": "notes"}})
            .to_string(),
    ))
    .await
    .expect("send");
    until(&mut a, |v| v["method"] == "thread/realtime/closed").await;
    let ended = tokio::time::timeout(WAIT, h.app.sessions.wait_idle()).await;
    assert!(ended.is_ok());
    a.send(Message::text(json!({"id": 5, "method": "thread/realtime/transcript/read", "params": {"threadId": "notes"}}).to_string()))
        .await
        .expect("send");
    let read = until(&mut a, |v| v["id"] == 5).await;
    assert_eq!(read["result"]["running"], false, "{read}");
    assert_eq!(read["result"]["turns"][0]["text"], "You said: hello there");
}

#[tokio::test]
async fn another_key_cannot_ride_a_calls_sideband_with_existing_call() {
    let h = two_tenants().await;
    let mut records = h.sim.records();
    let loc = post_call(h.addr, KEY).await;
    let call_id = loc.rsplit('/').next().expect("id").to_owned();
    let mut b = rpc_client_with(h.addr, KEY_B).await;
    b.send(Message::text(
        json!({"id": 1, "method": "thread/realtime/start", "params": {"threadId": "tb",
            "outputModality": "audio", "transport": {"type": "existingCall", "callId": call_id}}})
        .to_string(),
    ))
    .await
    .expect("send");
    let v = until(&mut b, |v| {
        v["params"]["threadId"] == "tb"
            && (v["method"] == "thread/realtime/started" || v["method"] == "thread/realtime/error")
    })
    .await;
    assert_eq!(v["method"], "thread/realtime/error", "{v}");
    assert!(
        v["params"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("404") && m.contains(&call_id)),
        "{v}"
    );
    assert!(
        h.app.sessions.call(Some("team-a"), &call_id).is_some(),
        "A's call runs on"
    );
    // Refused before any request: nothing tried to join the call's sideband.
    while let Ok(r) = records.try_recv() {
        if let voxgate::simulator::SimRecord::Connected { path_and_query, .. } = r {
            assert!(!path_and_query.contains(&call_id), "{path_and_query}");
        }
    }
}
