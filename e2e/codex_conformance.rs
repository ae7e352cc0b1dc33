//! voxgate's JSON-RPC face against codex 0.169's own protocol schema: a scripted session —
//! thread/start, text, speech, appendSpeech, a delegation, v2 and v1, a replaced conversation,
//! WebRTC, errors, resume and unsubscribe — runs over the `/rpc` websocket and over
//! `voxgate rpc --stdio`, and every request it makes, every response and every notification
//! voxgate sends is validated against the schema the pinned codex CLI generates
//! (`e2e/clients/codex_schema_check.py`, Python `jsonschema`). Any violation fails; fields codex's
//! schema does not name are reported.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn codex_bin() -> Option<PathBuf> {
    let native = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "e2e/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex",
    );
    if native.exists() && python_module("jsonschema", "codex schema conformance") {
        return Some(native);
    }
    assert!(
        std::env::var("CI").is_err(),
        "codex CLI or python jsonschema missing in CI (see .ci/run)"
    );
    eprintln!(
        "SKIPPING codex schema conformance: run `npm ci --prefix e2e` and pip install jsonschema"
    );
    None
}

/// One JSON-RPC connection: the `/rpc` websocket or a `voxgate rpc --stdio` child.
enum Wire {
    Ws(Box<RpcClient>),
    Stdio(Box<StdioWire>),
}

struct StdioWire {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Wire {
    async fn send(&mut self, v: &Value) {
        match self {
            Wire::Ws(c) => c.send_raw(v.to_string()).await,
            Wire::Stdio(w) => {
                w.stdin
                    .write_all(format!("{v}\n").as_bytes())
                    .await
                    .expect("write");
                w.stdin.flush().await.expect("flush");
            }
        }
    }

    /// The next message, or None when none came in time.
    async fn recv(&mut self) -> Option<Value> {
        match self {
            Wire::Ws(c) => tokio::time::timeout(WAIT * 2, c.next_message()).await.ok(),
            Wire::Stdio(w) => {
                let line = tokio::time::timeout(WAIT * 2, w.lines.next_line())
                    .await
                    .ok()?
                    .expect("read")
                    .expect("stdout open");
                let mut v: Value = serde_json::from_str(&line).expect("json line");
                if let Some(o) = v.as_object_mut() {
                    o.remove("emittedAtMs");
                }
                Some(v)
            }
        }
    }
}

/// The scripted session and what went over the wire, as the schema checker reads it.
struct Session {
    wire: Wire,
    next_id: u64,
    methods: std::collections::HashMap<u64, String>,
    log: Vec<Value>,
    /// Notifications that came while a response was awaited: a reply may come before the
    /// response to the request that asked for it, and the next wait must still see it.
    early: std::collections::VecDeque<Value>,
}

impl Session {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, "request").await
    }

    /// A request malformed on purpose: not checked itself, its error response is.
    async fn call_bad(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, "bad_request").await
    }

    async fn send(&mut self, method: &str, params: Value, kind: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.log
            .push(json!({"kind": kind, "method": method, "message": msg}));
        self.methods.insert(id, method.to_owned());
        self.wire.send(&msg).await;
        loop {
            let v = self.read_one().await;
            if v["id"] == id {
                return v;
            }
            if v.get("method").is_some() {
                self.early.push_back(v);
            }
        }
    }

    /// Wait for a message matching `pred`: first among the notifications that came early
    /// (those before it are passed over), then from the wire.
    async fn until(&mut self, pred: &dyn Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.early.iter().position(pred) {
            let found = self.early.drain(..=i).next_back();
            if let Some(v) = found {
                return v;
            }
        }
        self.early.clear();
        loop {
            let v = self.read_one().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// The next message from the wire, logged (a stall fails the test, naming the last ones).
    async fn read_one(&mut self) -> Value {
        let Some(v) = self.wire.recv().await else {
            // Is the connection stuck, or only the conversation? Ask it something.
            let probe =
                json!({"id": 999_999, "method": "thread/realtime/listVoices", "params": {}});
            self.wire.send(&probe).await;
            let mut answered = false;
            for _ in 0..50 {
                match self.wire.recv().await {
                    Some(v) if v["id"] == 999_999 => {
                        answered = true;
                        break;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            eprintln!("after the stall the connection answered a request: {answered}");
            let tail: Vec<String> = self
                .log
                .iter()
                .rev()
                .take(12)
                .map(|e| e["message"].to_string().chars().take(200).collect())
                .collect();
            panic!("nothing more came; the last messages, newest first: {tail:#?}");
        };
        if let Some(method) = v["method"].as_str() {
            self.log
                .push(json!({"kind": "notification", "method": method, "message": v}));
        } else if let Some(id) = v["id"].as_u64() {
            let method = self.methods.get(&id).cloned().unwrap_or_default();
            self.log
                .push(json!({"kind": "response", "method": method, "message": v}));
        }
        v
    }

    /// Start a conversation on `thread` (`extra` start params), have one typed turn answered,
    /// stop it.
    async fn typed_turn(&mut self, thread: &str, extra: Value, text: &str) {
        let mut params = json!({"threadId": thread, "outputModality": "audio"});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        self.call("thread/realtime/start", params).await;
        self.until(&|v| v["method"] == "thread/realtime/started")
            .await;
        self.call(
            "thread/realtime/appendText",
            json!({"threadId": thread, "text": text}),
        )
        .await;
        self.reply_done(thread).await;
        self.call("thread/realtime/stop", json!({"threadId": thread}))
            .await;
        self.until(&|v| v["method"] == "thread/realtime/closed")
            .await;
    }

    async fn reply_done(&mut self, thread: &str) -> Value {
        let thread = thread.to_owned();
        self.until(&move |v| {
            v["method"] == "thread/realtime/transcript/done"
                && v["params"]["role"] == "assistant"
                && v["params"]["threadId"] == thread.as_str()
        })
        .await
    }
}

async fn script(wire: Wire) -> Vec<Value> {
    let mut s = Session {
        wire,
        next_id: 0,
        methods: Default::default(),
        log: Vec::new(),
        early: Default::default(),
    };
    s.call(
        "initialize",
        json!({"clientInfo": {"name": "conformance", "version": "1"},
            "capabilities": {"experimentalApi": true, "optOutNotificationMethods": null}}),
    )
    .await;
    let started = s.call("thread/start", json!({})).await;
    let t = started["result"]["thread"]["id"]
        .as_str()
        .expect("thread id")
        .to_owned();
    s.until(&|v| v["method"] == "thread/started").await;
    s.call("thread/realtime/listVoices", json!({})).await;
    s.call(
        "thread/realtime/start",
        json!({"threadId": t, "outputModality": "audio", "version": "v2", "voice": "marin"}),
    )
    .await;
    s.until(&|v| v["method"] == "thread/realtime/started").await;
    s.call(
        "thread/realtime/appendText",
        json!({"threadId": t, "text": "hello"}),
    )
    .await;
    s.reply_done(&t).await;
    // Speech, then silence: a spoken turn.
    for (ms, loud) in [(300, true), (300, true), (700, false)] {
        s.call(
            "thread/realtime/appendAudio",
            json!({"threadId": t, "audio": {"data": b64(&pcm(ms, loud)), "sampleRate": 24000,
                "numChannels": 1, "samplesPerChannel": null}}),
        )
        .await;
    }
    s.reply_done(&t).await;
    s.call(
        "thread/realtime/appendSpeech",
        json!({"threadId": t, "text": "Please hold on."}),
    )
    .await;
    s.reply_done(&t).await;
    s.call(
        "thread/realtime/appendText",
        json!({"threadId": t, "text": "delegate: check the weather"}),
    )
    .await;
    s.until(&|v| {
        v["method"] == "thread/realtime/transcript/done"
            && v["params"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Here is what I found"))
    })
    .await;
    // Errors: an unknown thread, params that do not fit.
    s.call(
        "thread/realtime/appendText",
        json!({"threadId": "no-such-thread", "text": "x"}),
    )
    .await;
    s.call_bad("thread/realtime/appendAudio", json!({"threadId": t}))
        .await;
    // Replaced by a v1 conversation: the old one closes first. Then GPT-Live (v3): the same
    // timeline, its turns ended by voxgate.
    s.typed_turn(&t, json!({"version": "v1"}), "hello v1").await;
    s.typed_turn(&t, json!({"version": "v3", "voice": "viola"}), "hello v3")
        .await;
    // WebRTC: the answer arrives as `sdp`.
    s.call(
        "thread/realtime/start",
        json!({"threadId": "rtc", "outputModality": "audio",
            "transport": {"type": "webrtc", "sdp": relay_offer()}}),
    )
    .await;
    s.until(&|v| v["method"] == "thread/realtime/sdp").await;
    s.call("thread/realtime/stop", json!({"threadId": "rtc"}))
        .await;
    s.until(&|v| v["method"] == "thread/realtime/closed").await;
    s.call("thread/resume", json!({"threadId": t})).await;
    s.call("thread/unsubscribe", json!({"threadId": t})).await;
    // A thread nothing ran on, left by its only subscriber: `thread/closed`.
    let fresh = s.call("thread/start", json!({})).await;
    let fresh = fresh["result"]["thread"]["id"].clone();
    s.until(&|v| v["method"] == "thread/started").await;
    s.call("thread/unsubscribe", json!({"threadId": fresh}))
        .await;
    s.until(&|v| v["method"] == "thread/closed").await;
    s.log
}

fn check(bin: &std::path::Path, name: &str, log: &[Value]) {
    let schema = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("conformance-schema-{name}-{}", std::process::id()));
    let status = std::process::Command::new(bin)
        .args([
            "app-server",
            "generate-json-schema",
            "--experimental",
            "--out",
        ])
        .arg(&schema)
        .stdout(Stdio::null())
        .status()
        .expect("run codex");
    assert!(status.success(), "codex generate-json-schema");
    let transcript = schema.with_extension("jsonl");
    let lines: Vec<String> = log.iter().map(Value::to_string).collect();
    std::fs::write(&transcript, lines.join("\n") + "\n").expect("write transcript");
    let out = std::process::Command::new(PYTHON)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/e2e/clients/codex_schema_check.py"
        ))
        .arg(&schema)
        .arg(&transcript)
        .output()
        .expect("run the checker");
    let summary = client_summary(&out);
    eprintln!("{name}: {summary}");
    assert!(
        summary["checked"].as_u64().unwrap_or(0) >= 40,
        "the session was checked: {summary}"
    );
    assert_eq!(
        summary["errors"],
        json!([]),
        "voxgate's {name} face violates codex 0.169's schema"
    );
}

#[cfg_attr(
    not(all(voxgate_e2e_codex, voxgate_e2e_jsonschema)),
    ignore = "needs codex (npm ci --prefix e2e) and jsonschema (pip)"
)]
#[tokio::test]
async fn every_message_of_a_websocket_session_fits_codexs_schema() {
    let Some(bin) = codex_bin() else { return };
    let h = harness().await;
    let log = script(Wire::Ws(Box::new(RpcClient::connect(h.addr).await))).await;
    check(&bin, "websocket", &log);
}

#[cfg_attr(
    not(all(voxgate_e2e_codex, voxgate_e2e_jsonschema)),
    ignore = "needs codex (npm ci --prefix e2e) and jsonschema (pip)"
)]
#[tokio::test]
async fn every_message_of_a_stdio_session_fits_codexs_schema() {
    let Some(bin) = codex_bin() else { return };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .args(["rpc", "--stdio"])
        .env("RUST_LOG", "warn,voxgate::session=trace")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn voxgate rpc --stdio");
    let stdin = child.stdin.take().expect("stdin");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let log = script(Wire::Stdio(Box::new(StdioWire {
        _child: child,
        stdin,
        lines,
    })))
    .await;
    check(&bin, "stdio", &log);
}
