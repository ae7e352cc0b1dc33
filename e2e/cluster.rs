//! Cluster mode with real parts on loopback: a real `redis-server` (its own, on a unix socket in
//! a temp dir), three real `voxgate serve` nodes sharing it, and — for the front-door tests — a
//! real HAProxy round-robin in front. Calls, client secrets, per-key limits and JSON-RPC threads
//! work from any node; a node killed with SIGKILL takes its calls with it and frees its leases;
//! a Redis restart leaves running sessions alone and refuses, then admits, new ones.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const WAIT: Duration = Duration::from_secs(20);
const ALPHA: &str = "sk-alpha-cluster-test";
const BETA: &str = "sk-beta-cluster-test";
/// May start 3 sessions per minute.
const GAMMA: &str = "sk-gamma-cluster-test";
const CLUSTER_SECRET: &str = "cluster-secret-for-tests-0123456789";
/// Heartbeat of the test nodes: a dead node's records expire within 3 s.
const HEARTBEAT_SECS: u64 = 1;

fn tmpdir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cluster-{name}-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A `redis-server` of the test's own on a unix socket (no TCP port at all).
struct Redis {
    child: Option<Child>,
    dir: PathBuf,
}

impl Redis {
    async fn start(dir: &Path) -> Self {
        let mut r = Self {
            child: None,
            dir: dir.to_owned(),
        };
        r.restart().await;
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    async fn restart(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(mut s) = tokio::net::UnixStream::connect(self.socket()).await {
                let _ = s.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 7];
                if s.read_exact(&mut buf).await.is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// One `voxgate serve` node of the cluster, its log kept for a failing test.
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- log of node {} ---\n{log}", self.addr);
        }
    }
}

fn keys_config(dir: &Path) -> PathBuf {
    let path = dir.join("voxgate.toml");
    let hash = |k: &str| hex::encode(voxgate::auth::sha256(k));
    std::fs::write(
        &path,
        format!(
            r#"[auth]
mode = "keys"

[[auth.keys]]
id = "alpha"
sha256 = "{}"
[auth.keys.limits]
max_concurrent_sessions = 2

[[auth.keys]]
id = "beta"
sha256 = "{}"

[[auth.keys]]
id = "gamma"
sha256 = "{}"
[auth.keys.limits]
sessions_per_minute = 3
"#,
            hash(ALPHA),
            hash(BETA),
            hash(GAMMA)
        ),
    )
    .expect("write config");
    path
}

async fn node(config: Option<&Path>, redis: &str, id: &str) -> Node {
    node_with(config, Some(redis), id).await
}

/// A node; `redis: None`: a single node outside any cluster.
async fn node_with(config: Option<&Path>, redis: Option<&str>, id: &str) -> Node {
    // The figures in BENCHMARKS.md run the release binary (`VOXGATE_NODE_BIN`).
    let bin = std::env::var("VOXGATE_NODE_BIN").unwrap_or(env!("CARGO_BIN_EXE_voxgate").into());
    let mut c = voxgate_bin(&bin);
    if let Some(config) = config {
        c.env("VOXGATE_CONFIG", config);
    }
    c.env("RUST_LOG", "info,voxgate::cluster=debug")
        .env("VOXGATE_CLUSTER__SECRET", CLUSTER_SECRET)
        .env("VOXGATE_CLUSTER__NODE_ID", id)
        .env(
            "VOXGATE_CLUSTER__HEARTBEAT_SECS",
            HEARTBEAT_SECS.to_string(),
        )
        .env("VOXGATE_WEBRTC__CONNECT_TIMEOUT_SECS", "60")
        .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
        .stderr(std::process::Stdio::piped());
    match redis {
        Some(url) => c.env("VOXGATE_CLUSTER__REDIS_URL", url),
        None => c.env_remove("VOXGATE_CLUSTER__SECRET"),
    };
    let mut child = c.spawn().expect("spawn voxgate");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
            log.push_str(&l);
            log.push('\n');
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("listening line in time")
            .expect("read")
            .expect("voxgate exited before listening");
        if let Some(a) = line.strip_prefix("voxgate listening on ") {
            break a.trim().parse().expect("addr");
        }
    };
    let n = Node { child, addr, log };
    // Joined: its first heartbeat reached the store.
    wait_until(|| async {
        let body = http(n.addr, "GET", "/readyz", None, &[]).await.1;
        body.contains("cluster store: reachable") || (redis.is_none() && body.contains("ready"))
    })
    .await;
    n
}

async fn three_nodes(config: Option<&Path>, redis: &Redis) -> Vec<Node> {
    let url = redis.url();
    let (a, b, c) = tokio::join!(
        node(config, &url, "node-a"),
        node(config, &url, "node-b"),
        node(config, &url, "node-c")
    );
    vec![a, b, c]
}

/// Poll `check` until it holds (bounded by `WAIT`).
async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (status, body) of one HTTP/1.1 request.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return (0, String::new());
    };
    let (ctype, body) = body.unwrap_or(("text/plain", ""));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut buf = String::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_string(&mut buf))
        .await
        .expect("response in time");
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    )
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a websocket as `key`; `Err(status)` when refused.
async fn ws(addr: SocketAddr, path: &str, key: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("authorization", bearer(key).parse().expect("header"));
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("handshake in time")
    {
        Ok((s, _)) => Ok(s),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// Whether `addr` admits a session for `key` now (the session is closed at once).
async fn admits(addr: SocketAddr, key: &'static str) -> bool {
    match ws(addr, "/v1/realtime?model=gpt-realtime", key).await {
        Ok(mut s) => {
            let _ = s.close(None).await;
            true
        }
        Err(_) => false,
    }
}

/// Next text frame of an OpenAI-protocol socket as JSON (`None`: it closed).
async fn next_event(s: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, s.next())
            .await
            .expect("event in time")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).ok(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn event_of_type(s: &mut Ws, ty: &str) -> Value {
    loop {
        let e = next_event(s)
            .await
            .unwrap_or_else(|| panic!("closed before {ty}"));
        if e["type"] == ty {
            return e;
        }
    }
}

/// A text turn on an OpenAI-protocol session, answered (proves the session is alive).
async fn text_turn(s: &mut Ws, text: &str) {
    let item = json!({"type": "conversation.item.create", "item": {"type": "message",
        "role": "user", "content": [{"type": "input_text", "text": text}]}});
    s.send(Message::text(item.to_string())).await.expect("send");
    s.send(Message::text(
        json!({"type": "response.create"}).to_string(),
    ))
    .await
    .expect("send");
    event_of_type(s, "response.done").await;
}

fn location_call_id(headers_and_body: &str) -> Option<String> {
    headers_and_body.lines().find_map(|l| {
        l.strip_prefix("location: ")
            .or_else(|| l.strip_prefix("Location: "))
            .and_then(|p| p.trim().rsplit('/').next())
            .map(str::to_owned)
    })
}

/// POST a relay offer as `key`; (status, call id from Location).
async fn post_call(addr: SocketAddr, key: &str) -> (u16, Option<String>) {
    let offer = relay_offer();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "POST /v1/realtime/calls HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/sdp\r\nAuthorization: Bearer {key}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{offer}",
        offer.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = String::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_string(&mut buf))
        .await
        .expect("answer in time");
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let head = buf.split("\r\n\r\n").next().unwrap_or_default();
    (status, location_call_id(head))
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_secrets_limits_and_threads_work_from_any_node() {
    let (_dir, _redis, nodes) = keyed_cluster("any-node").await;
    let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);

    // A call created on A, observed through a sideband opened on C, hung up through B.
    let (status, call_id) = post_call(a, ALPHA).await;
    assert_eq!(status, 201);
    let call_id = call_id.expect("Location names the call");
    let path = format!("/v1/realtime?call_id={call_id}");
    assert_eq!(
        ws(c, &path, BETA).await.err(),
        Some(404),
        "another key's sideband is not found on any node"
    );
    let mut sideband = ws(c, &path, ALPHA).await.expect("sideband through C");
    let update = json!({"type": "session.update", "session": {"type": "realtime",
        "instructions": "be brief"}});
    sideband
        .send(Message::text(update.to_string()))
        .await
        .expect("send");
    // A sideband sees every server event of the call: the call's own opening session.updated
    // may come first. Ours is the one with our instructions.
    loop {
        let updated = event_of_type(&mut sideband, "session.updated").await;
        if updated["session"]["instructions"] == "be brief" {
            break;
        }
    }
    let hangup = format!("/v1/realtime/calls/{call_id}");
    let beta = bearer(BETA);
    let alpha = bearer(ALPHA);
    assert_eq!(
        http(b, "DELETE", &hangup, None, &[("Authorization", &beta)])
            .await
            .0,
        404,
        "another key cannot hang it up through any node"
    );
    assert_eq!(
        http(b, "DELETE", &hangup, None, &[("Authorization", &alpha)])
            .await
            .0,
        200,
        "hung up through B"
    );
    while next_event(&mut sideband).await.is_some() {}
    wait_until(|| async {
        http(b, "DELETE", &hangup, None, &[("Authorization", &alpha)])
            .await
            .0
            == 404
    })
    .await;

    // Another key cannot ride the call's sideband with existingCall through another node.
    let (_, other_call) = post_call(a, ALPHA).await;
    let other_call = other_call.expect("call id");
    let mut beta_rpc = RpcClient::ready_as(b, BETA).await;
    beta_rpc
        .start(json!({"threadId": "ride", "outputModality": "text",
            "transport": {"type": "existingCall", "callId": other_call}}))
        .await;
    let err = beta_rpc.notification("thread/realtime/error").await;
    // Refused by the ownership check before any join (each test node has its own simulator,
    // so a join would fail differently).
    assert_eq!(
        err["message"],
        format!("the realtime service refused the call (HTTP 404): no call `{other_call}`"),
        "{err}"
    );
    assert_eq!(
        http(
            a,
            "DELETE",
            &format!("/v1/realtime/calls/{other_call}"),
            None,
            &[("Authorization", &alpha)]
        )
        .await
        .0,
        200,
        "alpha's call ran on"
    );

    // A client secret minted on A works on B and C, and expires everywhere.
    let (status, body) = http(
        a,
        "POST",
        "/v1/realtime/client_secrets",
        Some((
            "application/json",
            r#"{"expires_after": {"anchor": "created_at", "seconds": 10}}"#,
        )),
        &[("Authorization", &alpha)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let minted: Value = serde_json::from_str(&body).expect("json");
    let ek = minted["value"].as_str().expect("value").to_owned();
    let ek_auth = bearer(&ek);
    for node in [b, c] {
        let (status, body) = http(
            node,
            "GET",
            "/v1/threads/nothing/transcript",
            None,
            &[("Authorization", &ek_auth)],
        )
        .await;
        assert_eq!(status, 404, "the secret is accepted on {node}: {body}");
    }
    let mut secret_session = ws(c, "/v1/realtime?model=gpt-realtime", &ek)
        .await
        .expect("a session with the secret on C");
    text_turn(&mut secret_session, "hello").await;
    drop(secret_session);
    // Expiry is the secret's own 10 s lifetime.
    wait_until(|| async {
        let mut expired = true;
        for node in [a, b, c] {
            let (status, body) = http(
                node,
                "GET",
                "/v1/threads/nothing/transcript",
                None,
                &[("Authorization", &ek_auth)],
            )
            .await;
            expired &= status == 401 && body.contains("expired_client_secret");
        }
        expired
    })
    .await;

    // Alpha may hold 2 sessions: exactly 2 of 30 simultaneous attempts over 3 nodes get in.
    // (The secret's session above has ended; wait for its lease to be given back.)
    wait_until(|| async { concurrent_alpha_sessions(a).await == 0 }).await;
    let attempts = (0..30).map(|i| {
        let node = nodes[i % 3].addr;
        tokio::spawn(async move { ws(node, "/v1/realtime?model=gpt-realtime", ALPHA).await })
    });
    let mut admitted = Vec::new();
    let mut refused = 0;
    for t in attempts {
        match t.await.expect("task") {
            Ok(s) => admitted.push(s),
            Err(429) => refused += 1,
            Err(other) => panic!("unexpected refusal {other}"),
        }
    }
    assert_eq!(
        (admitted.len(), refused),
        (2, 28),
        "exactly the limit, cluster-wide"
    );
    for s in &mut admitted {
        text_turn(s, "still here").await;
    }
    drop(admitted);
    // Leases are given back when sessions end: alpha gets in again, on any node.
    wait_until(|| admits(c, ALPHA)).await;

    // A JSON-RPC thread started on A is driven, stopped and read through B.
    let mut on_a = RpcClient::ready_as(a, ALPHA).await;
    on_a.start(json!({"threadId": "cluster-thread-1", "outputModality": "text"}))
        .await;
    on_a.notification("thread/realtime/started").await;
    let mut on_b = RpcClient::ready_as(b, ALPHA).await;
    let r = on_b
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "cluster-thread-1", "text": "hello from node b"}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "appendText through B: {r}");
    let mut beta_on_b = RpcClient::ready_as(b, BETA).await;
    let r = beta_on_b
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "cluster-thread-1", "text": "not mine"}),
        )
        .await;
    assert_eq!(
        r["error"]["message"], "thread not found: cluster-thread-1",
        "another key's thread is not found through any node"
    );
    on_a.notification("thread/realtime/transcript/done").await;
    let r = on_b
        .request(
            "thread/realtime/stop",
            json!({"threadId": "cluster-thread-1"}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "stop through B: {r}");
    let closed = on_a.notification("thread/realtime/closed").await;
    assert_eq!(closed["reason"], "requested");
    let (status, body) = http(
        b,
        "GET",
        "/v1/threads/cluster-thread-1/transcript",
        None,
        &[("Authorization", &alpha)],
    )
    .await;
    assert_eq!(status, 200, "transcript through B: {body}");
    assert!(body.contains("hello from node b"), "{body}");
    let (status, _) = http(
        b,
        "GET",
        "/v1/threads/cluster-thread-1/transcript",
        None,
        &[("Authorization", &beta)],
    )
    .await;
    assert_eq!(status, 404, "another key's transcript is not found");
    let metrics = http(b, "GET", "/metrics", None, &[("Authorization", &alpha)])
        .await
        .1;
    assert!(metrics.contains("voxgate_cluster_nodes 3"), "{metrics}");
    assert!(metrics.contains("voxgate_cluster_forwarded_total{kind=\"hangup\"}"));
}

/// Alpha's sessions the cluster counts (from the store, through a 3rd party: the metrics of
/// node `addr` report sessions cluster-wide as of its last heartbeat).
async fn concurrent_alpha_sessions(addr: SocketAddr) -> u64 {
    let alpha = bearer(ALPHA);
    let metrics = http(addr, "GET", "/metrics", None, &[("Authorization", &alpha)])
        .await
        .1;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("voxgate_cluster_sessions_active "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_takes_its_calls_and_frees_its_leases() {
    let (_dir, _redis, mut nodes) = keyed_cluster("node-death").await;
    let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);
    // Alpha holds both its sessions on A; beta has a call on A and a session on B.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            ws(a, "/v1/realtime?model=gpt-realtime", ALPHA)
                .await
                .expect("alpha on A"),
        );
    }
    assert_eq!(
        ws(b, "/v1/realtime?model=gpt-realtime", ALPHA).await.err(),
        Some(429),
        "alpha is at its limit cluster-wide"
    );
    let (status, call_id) = post_call(a, BETA).await;
    assert_eq!(status, 201);
    let call_id = call_id.expect("call id");
    let mut on_b = ws(b, "/v1/realtime?model=gpt-realtime", BETA)
        .await
        .expect("beta on B");
    text_turn(&mut on_b, "before").await;

    nodes[0].child.start_kill().expect("SIGKILL node A");
    let _ = nodes[0].child.wait().await;

    // A's call is gone for B and C at once (its node cannot be reached), never a hang.
    let beta = bearer(BETA);
    let hangup = format!("/v1/realtime/calls/{call_id}");
    for node in [b, c] {
        let (status, body) = http(node, "DELETE", &hangup, None, &[("Authorization", &beta)]).await;
        assert_eq!(status, 404, "{body}");
    }
    // Its leases expire (3 heartbeats): alpha gets both its sessions back, on B and C.
    wait_until(|| async {
        let first = ws(b, "/v1/realtime?model=gpt-realtime", ALPHA).await;
        let second = ws(c, "/v1/realtime?model=gpt-realtime", ALPHA).await;
        first.is_ok() && second.is_ok()
    })
    .await;
    // The cluster counts two nodes; B's session never noticed.
    wait_until(|| async {
        let alpha = bearer(ALPHA);
        http(c, "GET", "/metrics", None, &[("Authorization", &alpha)])
            .await
            .1
            .contains("voxgate_cluster_nodes 2")
    })
    .await;
    text_turn(&mut on_b, "after").await;
    drop(held);
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_rpc_client_hears_that_a_thread_on_a_killed_node_ended() {
    let (_dir, _redis, mut nodes) = open_cluster("rpc-node-death").await;
    let (a, b) = (nodes[0].addr, nodes[1].addr);
    // The thread runs on A; B's client uses it through B's link to A.
    let mut starter = RpcClient::ready(a).await;
    starter
        .start(json!({"threadId": "doomed", "outputModality": "text"}))
        .await;
    starter.notification("thread/realtime/started").await;
    let mut talker = RpcClient::ready(b).await;
    let r = talker
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "doomed", "text": "are you there"}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "{r}");
    talker.notification("thread/realtime/transcript/done").await;

    nodes[0].child.start_kill().expect("SIGKILL node A");
    let _ = nodes[0].child.wait().await;

    let error = talker.notification("thread/realtime/error").await;
    assert_eq!(error["threadId"], "doomed", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("went away")),
        "{error}"
    );
    let closed = talker.notification("thread/realtime/closed").await;
    assert_eq!(closed["threadId"], "doomed", "{closed}");
    assert_eq!(closed["reason"], "error", "{closed}");
    // B's connection goes on: a thread of its own runs there.
    talker
        .start(json!({"threadId": "survivor", "outputModality": "text"}))
        .await;
    talker.notification("thread/realtime/started").await;
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_leaves_sessions_running_and_refuses_new_ones_meanwhile() {
    let (_dir, mut redis, nodes) = keyed_cluster("redis-restart").await;
    let (b, c) = (nodes[1].addr, nodes[2].addr);
    let mut running = ws(b, "/v1/realtime?model=gpt-realtime", BETA)
        .await
        .expect("beta on B");
    text_turn(&mut running, "before").await;

    redis.kill().await;
    text_turn(&mut running, "while redis is down").await;
    wait_until(|| async {
        ws(c, "/v1/realtime?model=gpt-realtime", BETA).await.err() == Some(503)
    })
    .await;
    let (status, body) = http(c, "GET", "/readyz", None, &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cluster store: unreachable"), "{body}");

    redis.restart().await;
    wait_until(|| admits(c, BETA)).await;
    text_turn(&mut running, "after").await;
    let beta = bearer(BETA);
    let metrics = http(c, "GET", "/metrics", None, &[("Authorization", &beta)])
        .await
        .1;
    assert!(metrics.contains("voxgate_cluster_store_up 1"), "{metrics}");
}

/// HAProxy of the test's own: round-robin over `backends`, HTTP mode (websockets tunnel).
struct Haproxy {
    _child: Child,
    addr: SocketAddr,
}

impl Haproxy {
    async fn start(dir: &Path, backends: &[SocketAddr]) -> Self {
        // HAProxy binds its own port: take a free one from the OS, and try again should
        // anything take it in between.
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let servers: String = backends
                .iter()
                .enumerate()
                .map(|(i, a)| format!("  server n{i} {a}\n"))
                .collect();
            let cfg = dir.join(format!("haproxy-{attempt}.cfg"));
            std::fs::write(
                &cfg,
                format!(
                    "global\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 2s\n  \
                     timeout client 120s\n  timeout server 120s\n  timeout tunnel 120s\n\n\
                     frontend voxgate\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\n\
                     backend nodes\n  balance roundrobin\n{servers}"
                ),
            )
            .expect("write haproxy.cfg");
            let mut child = tokio::process::Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn haproxy");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // could not bind: next port
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Self {
                        _child: child,
                        addr,
                    };
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "haproxy did not come up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("haproxy could not bind a port");
    }
}

async fn forwarded_total(nodes: &[Node]) -> u64 {
    let mut total = 0;
    for n in nodes {
        let metrics = http(n.addr, "GET", "/metrics", None, &[]).await.1;
        total += metrics
            .lines()
            .filter(|l| l.starts_with("voxgate_cluster_forwarded_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// A Redis and three nodes with the test keys (alpha, beta, gamma).
async fn keyed_cluster(name: &str) -> (PathBuf, Redis, Vec<Node>) {
    let dir = tmpdir(name);
    let redis = Redis::start(&dir).await;
    let config = keys_config(&dir);
    let nodes = three_nodes(Some(&config), &redis).await;
    (dir, redis, nodes)
}

/// A Redis and three open-auth nodes.
async fn open_cluster(name: &str) -> (PathBuf, Redis, Vec<Node>) {
    let dir = tmpdir(name);
    let redis = Redis::start(&dir).await;
    let config = open_config(&dir);
    let nodes = three_nodes(Some(&config), &redis).await;
    (dir, redis, nodes)
}

/// A Redis, three open-auth nodes and HAProxy round-robin over them.
async fn balanced_cluster(name: &str) -> (PathBuf, Redis, Vec<Node>, Haproxy) {
    let (dir, redis, nodes) = open_cluster(name).await;
    let lb = Haproxy::start(&dir, &nodes.iter().map(|n| n.addr).collect::<Vec<_>>()).await;
    (dir, redis, nodes, lb)
}

/// An open-auth test config (loopback only): metrics readable without a key.
fn open_config(dir: &Path) -> PathBuf {
    let path = dir.join("open.toml");
    std::fs::write(&path, "[server]\nmetrics_public = true\n").expect("write config");
    path
}

#[cfg_attr(
    not(all(voxgate_e2e_redis, voxgate_e2e_haproxy)),
    ignore = "needs redis-server and haproxy (apt-get install redis-server haproxy)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_threads_work_through_a_round_robin_balancer() {
    let (_dir, _redis, nodes, lb) = balanced_cluster("haproxy-rpc").await;
    // Three connections through the balancer land on three different nodes.
    let mut starter = RpcClient::ready(lb.addr).await;
    let mut talker = RpcClient::ready(lb.addr).await;
    let mut stopper = RpcClient::ready(lb.addr).await;
    starter
        .start(json!({"threadId": "lb-thread", "outputModality": "text"}))
        .await;
    starter.notification("thread/realtime/started").await;
    let r = talker
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "lb-thread", "text": "hello through the balancer"}),
        )
        .await;
    assert_eq!(r["result"], json!({}), "{r}");
    let done = talker.notification("thread/realtime/transcript/done").await;
    assert_eq!(
        done["threadId"], "lb-thread",
        "the talker hears the thread too"
    );
    let r = stopper
        .request(
            "thread/realtime/transcript/read",
            json!({"threadId": "lb-thread"}),
        )
        .await;
    assert!(
        r["result"]
            .to_string()
            .contains("hello through the balancer"),
        "{r}"
    );
    let r = stopper
        .request("thread/realtime/stop", json!({"threadId": "lb-thread"}))
        .await;
    assert_eq!(r["result"], json!({}), "{r}");
    assert_eq!(
        starter.notification("thread/realtime/closed").await["reason"],
        "requested"
    );
    assert!(
        forwarded_total(&nodes).await >= 2,
        "requests were forwarded"
    );
}

#[cfg_attr(
    not(all(
        voxgate_e2e_redis,
        voxgate_e2e_haproxy,
        voxgate_e2e_aiortc,
        voxgate_e2e_openai_py
    )),
    ignore = "needs redis-server, haproxy, aiortc and the openai SDK (see .ci/run)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_and_the_openai_sdk_work_through_a_round_robin_balancer() {
    if !python_module("aiortc", "cluster") || !python_module("openai", "cluster") {
        return;
    }
    let (dir, _redis, _nodes, lb) = balanced_cluster("haproxy-clients").await;

    let wav = dir.join("speech.wav");
    write_speech_wav(&wav);
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(PYTHON)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/e2e/clients/aiortc_call.py"
            ))
            .args(["--base", &format!("http://{}", lb.addr)])
            .arg("--wav")
            .arg(&wav)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("aiortc client in time")
    .expect("run python3");
    let s = client_summary(&out);
    assert_eq!(s["post_status"], 201, "{s}");
    assert_eq!(s["spoken_reply"], true, "{s}");
    assert_eq!(s["delete_status"], 200, "hung up through the balancer: {s}");

    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(PYTHON)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/e2e/clients/openai_sdk.py"
            ))
            .args(["--ws", &format!("ws://{}/v1", lb.addr)])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sdk client in time")
    .expect("run python3");
    let s = client_summary(&out);
    assert!(s.get("failed").is_none(), "{s}");
    assert_eq!(s["invalid"], json!([]), "{s}");
    assert!(s["audio_bytes"].as_u64().unwrap_or(0) > 0, "{s}");
}

#[cfg_attr(
    not(all(voxgate_e2e_redis, voxgate_e2e_haproxy)),
    ignore = "needs redis-server and haproxy (apt-get install redis-server haproxy)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_through_the_balancer_has_no_errors_at_150_ws_sessions() {
    let (dir, _redis, nodes, lb) = balanced_cluster("haproxy-load").await;
    let out_dir = dir.join("load");
    let out = tokio::time::timeout(
        Duration::from_secs(100),
        voxgate_bin(env!("CARGO_BIN_EXE_voxgate"))
            .args(["loadtest", "--target", &format!("http://{}", lb.addr)])
            .args(["--transport", "ws", "--sessions", "150", "--duration", "5"])
            .args([
                "--speech-ms",
                "600",
                "--pause-ms",
                "300",
                "--max-error-rate",
                "0",
            ])
            .arg("--out")
            .arg(&out_dir)
            .arg("--quiet")
            .output(),
    )
    .await
    .expect("loadtest in time")
    .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "loadtest failed:\n{stdout}");
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("json");
    assert_eq!(results["sessions"]["failed"], 0, "{results}");
    // Every node took its share.
    for n in &nodes {
        let metrics = http(n.addr, "GET", "/metrics", None, &[]).await.1;
        let started: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("voxgate_sessions_started_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(started >= 40, "node {} started {started}", n.addr);
    }
}

/// p50 and p99 of `samples` (milliseconds).
#[cfg(voxgate_bench)]
fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[cfg(voxgate_bench)]
fn store_ops(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("voxgate_cluster_store_ops_total{op=\""))
        .filter_map(|l| {
            let (op, rest) = l.split_once('"')?;
            Some((op.to_owned(), rest.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The figures of BENCHMARKS.md "Cluster": `VOXGATE_BENCH=1 VOXGATE_NODE_BIN=target/release/voxgate
/// cargo nextest run --test e2e_cluster cluster_figures --no-capture`.
#[cfg(voxgate_bench)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_figures() {
    let dir = tmpdir("figures");
    let redis = Redis::start(&dir).await;
    let config = open_config(&dir);
    let nodes = three_nodes(Some(&config), &redis).await;
    let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);
    let single = node_with(Some(&config), None, "single").await;
    let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;

    // Hang-up: local on A vs forwarded from B to A.
    let (mut local, mut forwarded) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let (status, id) = post_call(a, "none").await;
        assert_eq!(status, 201);
        let path = format!("/v1/realtime/calls/{}", id.expect("id"));
        let via = if i % 2 == 0 { a } else { b };
        let t = std::time::Instant::now();
        assert_eq!(http(via, "DELETE", &path, None, &[]).await.0, 200);
        if via == a {
            local.push(ms(t))
        } else {
            forwarded.push(ms(t))
        }
    }
    let (l50, l99) = p50_p99(local);
    let (f50, f99) = p50_p99(forwarded);
    println!("| hang-up, local (A) | {l50:.2} | {l99:.2} |");
    println!("| hang-up, forwarded (B → A) | {f50:.2} | {f99:.2} |");

    // Sideband round trip (session.update → session.updated): on A vs proxied through C.
    let (_, id) = post_call(a, "none").await;
    let path = format!("/v1/realtime?call_id={}", id.expect("id"));
    for (label, via) in [
        ("sideband round trip, direct (A)", a),
        ("sideband round trip, proxied (C → A)", c),
    ] {
        let mut s = ws(via, &path, "none").await.expect("sideband");
        let mut samples = Vec::new();
        for i in 0..200 {
            let update = json!({"type": "session.update", "session": {"type": "realtime",
                "instructions": format!("round {i}")}});
            let t = std::time::Instant::now();
            s.send(Message::text(update.to_string()))
                .await
                .expect("send");
            event_of_type(&mut s, "session.updated").await;
            samples.push(ms(t));
        }
        let (p50, p99) = p50_p99(samples);
        println!("| {label} | {p50:.2} | {p99:.2} |");
    }

    // Session setup (websocket upgrade → session.created): clustered node vs a single node,
    // and the store round trips each setup costs.
    let before = store_ops(&http(b, "GET", "/metrics", None, &[]).await.1);
    let mut setups = [(b, Vec::new()), (single.addr, Vec::new())];
    for _ in 0..100 {
        for (addr, samples) in &mut setups {
            let t = std::time::Instant::now();
            let mut s = ws(*addr, "/v1/realtime?model=gpt-realtime", "none")
                .await
                .expect("ws");
            event_of_type(&mut s, "session.created").await;
            samples.push(ms(t));
            let _ = s.close(None).await;
        }
    }
    let [(_, clustered), (_, alone)] = setups;
    let (c50, c99) = p50_p99(clustered);
    let (s50, s99) = p50_p99(alone);
    println!("| session setup, cluster node | {c50:.2} | {c99:.2} |");
    println!("| session setup, single node | {s50:.2} | {s99:.2} |");
    println!("setup ratio cluster/single p50 {:.2}", c50 / s50);
    tokio::time::sleep(Duration::from_secs(2)).await; // releases land
    let after = store_ops(&http(b, "GET", "/metrics", None, &[]).await.1);
    for (op, n) in &after {
        let d = n - before.get(op).copied().unwrap_or(0);
        if op != "heartbeat" {
            println!("store ops per setup, {op}: {:.2}", d as f64 / 100.0);
        }
    }

    // Capacity: the same ws load against the single node and through HAProxy over the three
    // (all on this one 2-core machine).
    let lb = Haproxy::start(&dir, &[a, b, c]).await;
    let bin = std::env::var("VOXGATE_NODE_BIN").unwrap_or(env!("CARGO_BIN_EXE_voxgate").into());
    for sessions in [150, 300, 450] {
        for (label, target) in [("single node", single.addr), ("3 nodes + haproxy", lb.addr)] {
            let out_dir = dir.join(format!("load-{sessions}-{}", target.port()));
            let out = voxgate_bin(&bin)
                .args(["loadtest", "--target", &format!("http://{target}")])
                .args(["--transport", "ws", "--sessions", &sessions.to_string()])
                .args([
                    "--duration",
                    "10",
                    "--speech-ms",
                    "600",
                    "--pause-ms",
                    "300",
                ])
                .arg("--out")
                .arg(&out_dir)
                .arg("--quiet")
                .output()
                .await
                .expect("loadtest");
            let _ = out;
            let r: Value = serde_json::from_str(
                &std::fs::read_to_string(out_dir.join("results.json")).expect("results"),
            )
            .expect("json");
            println!(
                "| {sessions} | {label} | {} | {} | {} | {} |",
                r["sessions"]["established"],
                r["sessions"]["error_rate"],
                r["setup_ms"]["p99"],
                r["first_audio_ms"]["p99"]
            );
        }
    }
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_limits_hold_across_nodes() {
    let (_dir, _redis, nodes) = keyed_cluster("per-minute").await;
    let attempts = (0..12).map(|i| {
        let node = nodes[i % 3].addr;
        tokio::spawn(async move { ws(node, "/v1/realtime?model=gpt-realtime", GAMMA).await })
    });
    let mut admitted = 0;
    for t in attempts {
        match t.await.expect("task") {
            Ok(mut s) => {
                admitted += 1;
                let _ = s.close(None).await;
            }
            Err(status) => assert_eq!(status, 429),
        }
    }
    assert_eq!(admitted, 3, "3 per minute, cluster-wide");
    // Ending those sessions does not give starts back within the minute.
    for n in &nodes {
        assert_eq!(
            ws(n.addr, "/v1/realtime?model=gpt-realtime", GAMMA)
                .await
                .err(),
            Some(429)
        );
    }
}

#[cfg_attr(
    not(voxgate_e2e_redis),
    ignore = "needs redis-server (apt-get install redis-server)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_says_so_in_redis_and_local_mode_admits_without_it() {
    let dir = tmpdir("drain-local");
    let mut redis = Redis::start(&dir).await;
    let config = keys_config(&dir);
    let local = dir.join("local.toml");
    std::fs::write(
        &local,
        std::fs::read_to_string(&config).expect("config")
            + "\n[cluster]\non_store_down = \"local\"\n",
    )
    .expect("write");
    let draining = node(Some(&config), &redis.url(), "node-drains").await;
    let lenient = node(Some(&local), &redis.url(), "node-local").await;
    let field = |node: &'static str| {
        let sock = redis.socket();
        async move {
            let out = tokio::process::Command::new("redis-cli")
                .arg("-s")
                .arg(sock)
                .args(["HGET", &format!("voxgate:node:{node}"), "draining"])
                .output()
                .await
                .expect("redis-cli");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    };
    assert_eq!(field("node-drains").await, "0");
    let pid = draining.child.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    wait_until(|| async { field("node-drains").await != "0" }).await;
    // Its record says draining, or it already left the cluster (a clean exit deletes it).
    assert!(matches!(field("node-drains").await.as_str(), "1" | ""));

    // Redis gone: the node with on_store_down = "local" still admits, under its own limits.
    redis.kill().await;
    let mut s = ws(lenient.addr, "/v1/realtime?model=gpt-realtime", BETA)
        .await
        .expect("admitted locally while the store is down");
    text_turn(&mut s, "no store").await;
    let (status, body) = http(lenient.addr, "GET", "/readyz", None, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("unreachable"), "{body}");
}
