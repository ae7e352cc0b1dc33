//! End-to-end tests of the real `voxgate` binary: `serve` on an ephemeral port with the embedded
//! simulator, `rpc --stdio`, a standalone `simulate` process as the upstream, and config errors.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(20);

fn voxgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    c.env_remove("OPENAI_API_KEY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("VOXGATE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Read stdout lines until one starts with `prefix`; return the rest of that line.
async fn wait_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().expect("stdout piped");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(WAIT, reader.read_line(&mut line))
            .await
            .expect("line in time")
            .expect("read");
        assert!(n > 0, "process ended before printing {prefix:?}");
        if let Some(rest) = line.trim().strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

async fn rpc_session(addr: &str) {
    let (mut ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/rpc")),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    let send = async |v: Value, ws: &mut tokio_tungstenite::WebSocketStream<_>| {
        ws.send(Message::text(v.to_string())).await.expect("send");
    };
    send(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "e2e", "version": "1"},
        "capabilities": {"experimentalApi": true}}}), &mut ws).await;
    send(json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "bin", "outputModality": "audio"}}), &mut ws).await;
    send(json!({"id": 3, "method": "thread/realtime/appendText", "params": {"threadId": "bin", "text": "delegate: count the files"}}), &mut ws).await;
    let mut saw_started = false;
    let mut saw_final = false;
    while !saw_final {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        match v["method"].as_str() {
            Some("thread/realtime/started") => saw_started = true,
            Some("thread/realtime/transcript/done")
                if v["params"]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Done: count the files")) =>
            {
                saw_final = true
            }
            Some("thread/realtime/error") | Some("thread/realtime/closed") => {
                panic!("unexpected {v}")
            }
            _ => {}
        }
    }
    assert!(saw_started);
    send(
        json!({"id": 4, "method": "thread/realtime/stop", "params": {"threadId": "bin"}}),
        &mut ws,
    )
    .await;
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["method"] == "thread/realtime/closed" {
            assert_eq!(v["params"]["reason"], "requested");
            break;
        }
    }
}

#[tokio::test]
async fn serve_runs_on_the_embedded_simulator_with_no_api_key() {
    let mut child = voxgate()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .spawn()
        .expect("spawn");
    let addr = wait_line(&mut child, "voxgate listening on").await;
    rpc_session(&addr).await;
    let health = reqwest_get(&addr, "/healthz").await;
    assert_eq!(health, "ok\n");
    // The demo page knows it talks to the simulator (and says so), and that no key is needed.
    let page = reqwest_get(&addr, "/").await;
    assert!(
        page.contains(r#"<body data-upstream="simulator" data-auth="none">"#),
        "{page}"
    );
    assert!(page.contains("built-in <b>simulator</b>"));
}

/// A standalone `voxgate simulate` process, and `voxgate serve` pointed at it through env
/// overrides (plus `env`); the processes and the gateway's address.
async fn gateway_on_a_simulator_process(env: &[(&str, &str)]) -> (Child, Child, String) {
    let mut sim = voxgate()
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .spawn()
        .expect("spawn simulator");
    let sim_addr = wait_line(&mut sim, "simulator listening on").await;
    let mut gw = voxgate();
    gw.args(["serve", "--listen", "127.0.0.1:0"])
        .env("VOXGATE_UPSTREAM__KIND", "openai")
        .env(
            "VOXGATE_UPSTREAM__BASE_URL",
            format!("http://{sim_addr}/v1"),
        )
        .env("OPENAI_API_KEY", "sk-e2e");
    for (k, v) in env {
        gw.env(k, v);
    }
    let mut gw = gw.spawn().expect("spawn gateway");
    let addr = wait_line(&mut gw, "voxgate listening on").await;
    (sim, gw, addr)
}

#[tokio::test]
async fn serve_against_a_standalone_simulator_process_via_env_overrides() {
    let (_sim, _gw, addr) = gateway_on_a_simulator_process(&[]).await;
    rpc_session(&addr).await;
}

type StdoutLines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// `voxgate rpc --stdio` with its stdin to write and its stdout lines to read.
fn rpc_stdio() -> (Child, tokio::process::ChildStdin, StdoutLines) {
    let mut child = voxgate()
        .args(["rpc", "--stdio"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    (child, stdin, BufReader::new(stdout).lines())
}

#[tokio::test]
async fn rpc_stdio_speaks_newline_delimited_json() {
    let (mut child, mut stdin, mut lines) = rpc_stdio();
    for req in [
        json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "stdio", "version": "1"}, "capabilities": {"experimentalApi": true}}}),
        json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "s", "outputModality": "text"}}),
        json!({"id": 3, "method": "thread/realtime/appendText", "params": {"threadId": "s", "text": "hello stdio"}}),
    ] {
        stdin
            .write_all(format!("{req}\n").as_bytes())
            .await
            .expect("write");
    }
    stdin.flush().await.expect("flush");
    let mut got = Vec::new();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("line in time")
            .expect("read")
            .expect("open");
        let v: Value = serde_json::from_str(&line).expect("json line");
        let done =
            v["method"] == "thread/realtime/transcript/done" && v["params"]["role"] == "assistant";
        got.push(v);
        if done {
            break;
        }
    }
    assert_eq!(
        got[0]["result"]["userAgent"]
            .as_str()
            .map(|s| s.starts_with("voxgate/")),
        Some(true)
    );
    assert!(got.iter().any(|v| v["method"] == "thread/realtime/started"));
    assert_eq!(
        got.last().map(|v| v["params"]["text"].clone()),
        Some(json!("You said: hello stdio"))
    );
    stdin
        .write_all(
            b"{\"id\":4,\"method\":\"thread/realtime/stop\",\"params\":{\"threadId\":\"s\"}}\n",
        )
        .await
        .expect("write");
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("line in time")
            .expect("read")
            .expect("open");
        let v: Value = serde_json::from_str(&line).expect("json line");
        if v["method"] == "thread/realtime/closed" {
            assert_eq!(v["params"]["reason"], "requested");
            break;
        }
    }
    drop(stdin);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits on EOF")
        .expect("status");
    assert!(status.success());
}

#[tokio::test]
async fn unknown_config_key_fails_fast_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("voxgate-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[upstream]\nmodle = \"x\"\n").expect("write");
    let out = voxgate()
        .args(["serve", "--config"])
        .arg(&path)
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("modle"), "{stderr}");
}

/// Minimal HTTP GET over a raw socket (no extra client dependency).
async fn reqwest_get(addr: &str, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn rpc_stdio_survives_invalid_utf8_and_writes_closed_at_end_of_input() {
    let (mut child, mut stdin, mut lines) = rpc_stdio();
    let init = json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "stdio", "version": "1"}, "capabilities": {"experimentalApi": true}}});
    let start = json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "u", "outputModality": "text"}});
    stdin
        .write_all(format!("{init}\n{start}\n").as_bytes())
        .await
        .expect("write");
    // One line of invalid UTF-8 (dropped unanswered, as codex does: its id cannot be read),
    // then a valid request, answered.
    stdin
        .write_all(b"{\"id\":3,\"method\":\"\xff\xfe\"}\n{\"id\":4,\"method\":\"thread/realtime/listVoices\"}\n")
        .await
        .expect("write");
    stdin.flush().await.expect("flush");
    let mut got = Vec::new();
    let mut next = async || -> Option<Value> {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("line in time")
            .expect("read")?;
        Some(serde_json::from_str(&line).expect("json line"))
    };
    while !got.iter().any(|v: &Value| v["id"] == 4) {
        got.push(next().await.expect("more output"));
    }
    assert!(
        got.iter().all(|v| v.get("error").is_none() && v["id"] != 3),
        "the unreadable line gets no reply: {got:?}"
    );
    // End of input: the running conversation is stopped and its `closed` written, then exit.
    drop(stdin);
    let mut closed = false;
    while let Some(v) = next().await {
        closed |= v["method"] == "thread/realtime/closed" && v["params"]["threadId"] == "u";
    }
    assert!(closed, "closed written at end of input");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "{status}");
}

/// Resumes a stopped process however the test ends.
struct Resume(u32);
impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_model_that_hangs_with_its_socket_open_is_detected() {
    let (sim, _gw, addr) =
        // No reconnect: this test is about noticing the hang (a reconnect to a frozen process
        // would hang in its handshake until the connect timeout).
        gateway_on_a_simulator_process(&[
            ("VOXGATE_UPSTREAM__IDLE_TIMEOUT_SECS", "2"),
            ("VOXGATE_UPSTREAM__RECONNECT_ATTEMPTS", "0"),
        ])
        .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/rpc"))
        .await
        .expect("connect");
    for v in [
        json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "e2e", "version": "1"},
            "capabilities": {"experimentalApi": true}}}),
        json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": "h", "outputModality": "text"}}),
    ] {
        ws.send(Message::text(v.to_string())).await.expect("send");
    }
    let mut next = async || -> Value {
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
    };
    while next().await["method"] != "thread/realtime/started" {}
    // The model process freezes: its socket stays open and says nothing, pings go unanswered.
    let pid = sim.id().expect("simulator pid");
    let _resume = Resume(pid);
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let error = loop {
        let v = next().await;
        if v["method"] == "thread/realtime/error" {
            break v;
        }
    };
    assert!(
        error["params"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("stopped responding")),
        "{error}"
    );
    let closed = loop {
        let v = next().await;
        if v["method"] == "thread/realtime/item/completed" {
            assert_eq!(v["params"]["item"]["type"], "realtimeSessionClosed", "{v}");
            assert_eq!(v["params"]["item"]["outcome"], "failed", "{v}");
            continue;
        }
        if v["method"] != "thread/realtime/item/started" {
            break v;
        }
    };
    assert_eq!(closed["method"], "thread/realtime/closed");
    assert_eq!(closed["params"]["reason"], "error");
}

/// First-hour mistakes are said at start, naming what to set: no key for a real upstream, a
/// variable whose value breaks the config, a `VOXGATE_` variable with one `_` where `__` was meant.
#[tokio::test]
async fn startup_names_the_environment_variable_to_fix() {
    let refusal = async |var: &str, value: &str| {
        let out = voxgate()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(var, value)
            .stderr(Stdio::piped())
            .output()
            .await
            .expect("run");
        assert!(!out.status.success(), "{var}={value} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = refusal("VOXGATE_UPSTREAM__KIND", "openai").await;
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    let stderr = refusal("VOXGATE_SERVER__MAX_FRAME_BYTES", "lots").await;
    assert!(
        stderr.contains("VOXGATE_SERVER__MAX_FRAME_BYTES")
            && stderr.contains("server.max_frame_bytes"),
        "{stderr}"
    );

    let mut gw = voxgate()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VOXGATE_SERVER_LISTEN", "127.0.0.1:9")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_line(&mut gw, "voxgate listening on").await;
    let _ = gw.kill().await;
    let out = gw.wait_with_output().await.expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("VOXGATE_SERVER_LISTEN")
            && stderr.contains("did you mean VOXGATE_SERVER__LISTEN?"),
        "{stderr}"
    );
    // Not a terminal: plain text, no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

/// `voxgate check-config` prints the effective configuration with secrets redacted, and fails
/// naming the key when the configuration is invalid.
#[tokio::test]
async fn check_config_prints_the_effective_config_without_secrets() {
    let out = voxgate()
        .args(["check-config"])
        .env("VOXGATE_UPSTREAM__API_KEY", "sk-do-not-print-me")
        .env("VOXGATE_SERVER__LISTEN", "localhost:9000")
        .output()
        .await
        .expect("run");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("# voxgate: the configuration is valid"),
        "{stdout}"
    );
    assert!(stdout.contains("listen = \"localhost:9000\""), "{stdout}");
    assert!(stdout.contains("api_key = \"<redacted>\""), "{stdout}");
    assert!(!stdout.contains("sk-do-not-print-me"), "{stdout}");
    let out = voxgate()
        .args(["check-config"])
        .env("VOXGATE_SERVER__OUTBOUND_QUEUE", "0")
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.outbound_queue"), "{stderr}");
}

/// `--help` offers only what a command uses, with its defaults: `loadtest` reads no gateway
/// config (no --config/--log-json there), `serve` does; defaults are shown.
#[tokio::test]
async fn help_shows_each_commands_own_options_with_defaults() {
    let help = |args: &'static [&'static str]| async move {
        let out = voxgate().args(args).output().await.expect("run --help");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let loadtest = help(&["loadtest", "--help"]).await;
    assert!(
        !loadtest.contains("--config") && !loadtest.contains("--log-json"),
        "{loadtest}"
    );
    assert!(
        loadtest.contains("Concurrent sessions [default: 10]"),
        "{loadtest}"
    );
    assert!(loadtest.contains("compare"), "{loadtest}");
    let serve = help(&["serve", "--help"]).await;
    assert!(
        serve.contains("--config") && serve.contains("--log-json"),
        "{serve}"
    );
    assert!(serve.contains("default 127.0.0.1:8080"), "{serve}");
    let simulate = help(&["simulate", "--help"]).await;
    assert!(simulate.contains("[default: 127.0.0.1:8090]"), "{simulate}");
    let top = help(&["--help"]).await;
    assert!(!top.contains("--config"), "{top}");
    assert!(top.contains("voxgate serve"), "{top}");
    let rpc = voxgate().arg("rpc").output().await.expect("run rpc");
    assert!(
        !rpc.status.success(),
        "rpc without --stdio is a usage error"
    );
}
