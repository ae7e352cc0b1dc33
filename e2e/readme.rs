//! Every fenced command and snippet in README.md, run as a reader would run it: the text is read
//! from README.md at test time, so a changed README is tested as changed. Two liberties, the same
//! for every snippet: tests never use fixed ports, so the README's addresses (`127.0.0.1:8080`,
//! codex's `127.0.0.1:4500`) become the test's ephemeral ones and `serve` gets
//! `VOXGATE_SERVER__LISTEN=127.0.0.1:0`; and `cargo run --release --` runs the binary this test
//! was built with (a bash function named `cargo` — the words of each command are the README's).
//! `every_block_of_the_readme_is_run_by_a_test` fails on a block nobody runs.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What each block of the README is, by the start of its text, and the test that runs it.
const BLOCKS: &[(&str, &str)] = &[
    (
        "cargo run --release -- serve\n",
        "the_serve_command_runs_the_gateway",
    ),
    ("cargo nextest run\n", "the_test_command_is_what_ci_runs"),
    ("export OPENAI_API_KEY=", "the_openai_serve_command_starts"),
    ("[upstream]", "every_voxgate_toml_block_is_a_valid_config"),
    (
        "cargo run --release -- rpc --stdio",
        "the_stdio_session_runs_as_pasted",
    ),
    (
        "{\"id\":1,\"method\":\"initialize\"",
        "the_stdio_session_runs_as_pasted",
    ),
    (
        "  experimental_realtime_ws_base_url",
        "the_codex_config_block_is_toml",
    ),
    (
        "[[webrtc.ice_servers]]",
        "every_voxgate_toml_block_is_a_valid_config",
    ),
    ("import asyncio", "the_python_sdk_snippet_runs"),
    (
        "curl -s http://127.0.0.1:8080/v1/realtime/client_secrets",
        "the_client_secret_curl_mints_a_secret",
    ),
    (
        "codex app-server --listen",
        "the_codex_agent_commands_start",
    ),
    (
        "[agent]\nkind = \"codex\"",
        "every_voxgate_toml_block_is_a_valid_config",
    ),
    (
        "[agent]\nkind = \"responses\"",
        "every_voxgate_toml_block_is_a_valid_config",
    ),
    (
        "[agent]\nkind = \"webhook\"",
        "every_voxgate_toml_block_is_a_valid_config",
    ),
    (
        "cargo run --release -- loadtest",
        "the_loadtest_command_runs_and_reports",
    ),
    ("[cluster]", "every_voxgate_toml_block_is_a_valid_config"),
    ("[telemetry]", "every_voxgate_toml_block_is_a_valid_config"),
    ("src/protocol/", "the_source_map_names_real_directories"),
];

struct Block {
    lang: String,
    text: String,
    line: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blocks() -> Vec<Block> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The one block starting with `start`.
fn block(start: &str) -> Block {
    let mut found: Vec<Block> = blocks()
        .into_iter()
        .filter(|b| b.text.starts_with(start))
        .collect();
    assert_eq!(found.len(), 1, "one README block starts with {start:?}");
    found.remove(0)
}

/// The block with the README's addresses replaced by the test's.
fn at(text: &str, addr: &str) -> String {
    text.replace("127.0.0.1:8080", addr)
}

/// bash running `script` with `cargo run --release --` meaning this build's voxgate.
fn bash(script: &str) -> Command {
    let prelude = r#"cargo() {
  if [ "$1 $2 $3" = "run --release --" ]; then shift 3; exec "$VOXGATE_BIN" "$@"; fi
  echo "the README test runs only 'cargo run --release -- …'" >&2; return 99
}
"#;
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("VOXGATE_BIN", env!("CARGO_BIN_EXE_voxgate"))
        .env("RUST_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
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

/// Read `child`'s stdout until a line contains `marker`; the text after it.
async fn line_after(child: &mut Child, marker: &str) -> String {
    let stdout = child.stdout.as_mut().expect("stdout piped");
    read_after(stdout, marker).await
}

/// Read `from` until a line contains `marker`; the text after it.
async fn read_after(from: impl tokio::io::AsyncRead + Unpin, marker: &str) -> String {
    let mut reader = BufReader::new(from);
    let mut line = String::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line))
            .await
            .expect("line in time")
            .expect("read");
        assert!(n > 0, "process ended before printing {marker:?}");
        if let Some(i) = line.find(marker) {
            return line[i + marker.len()..].trim().to_owned();
        }
    }
}

/// A README `serve` command running as a child; its address.
async fn serve(script: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = bash(script);
    cmd.env("VOXGATE_SERVER__LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn bash");
    let addr = line_after(&mut child, "voxgate listening on ").await;
    (child, addr)
}

async fn get(addr: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(WAIT)
        .send()
        .await
        .expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[test]
fn every_block_of_the_readme_is_run_by_a_test() {
    for b in blocks() {
        assert!(
            BLOCKS.iter().any(|(start, _)| b.text.starts_with(start)),
            "README.md line {} ({}): no test runs this block:\n{}",
            b.line,
            b.lang,
            b.text
        );
    }
    for (start, test) in BLOCKS {
        assert!(
            blocks().iter().any(|b| b.text.starts_with(start)),
            "{test}: its README block ({start:?}) is gone"
        );
    }
}

#[tokio::test]
async fn the_serve_command_runs_the_gateway() {
    let b = block("cargo run --release -- serve\n");
    let (_child, addr) = serve(&b.text, &[]).await;
    assert_eq!(get(&addr, "/healthz").await, (200, "ok\n".into()));
    let (status, page) = get(&addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("data-upstream=\"simulator\""));
}

#[test]
fn the_test_command_is_what_ci_runs() {
    let b = block("cargo nextest run\n");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == b.text.trim()),
        ".ci/run runs the README's test command"
    );
}

#[tokio::test]
async fn the_openai_serve_command_starts() {
    let b = block("export OPENAI_API_KEY=");
    let (_child, addr) = serve(&b.text, &[]).await;
    assert_eq!(get(&addr, "/healthz").await.0, 200);
    // It would talk to the model service: the page says so (no simulator notice).
    assert!(get(&addr, "/").await.1.contains("data-upstream=\"openai\""));
}

/// `voxgate check-config --config F` on each voxgate TOML block, with the variables its
/// comments name set.
#[tokio::test]
async fn every_voxgate_toml_block_is_a_valid_config() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-{}", rand_u64()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut checked = 0;
    for (i, b) in blocks().iter().enumerate() {
        if b.lang != "toml" || b.text.starts_with("  experimental_realtime") {
            continue;
        }
        let file = dir.join(format!("block{i}.toml"));
        std::fs::write(&file, &b.text).expect("write");
        let out = bash(&format!(
            "cargo run --release -- check-config --config {}",
            file.display()
        ))
        .env("OPENAI_API_KEY", "sk-readme")
        .env("TURN_CREDENTIAL", "turn-secret")
        .env("VOXGATE_WEBHOOK_SECRET", "webhook-secret")
        .env("VOXGATE_CLUSTER__SECRET", "a-cluster-secret-of-length")
        .output()
        .await
        .expect("check-config");
        assert!(
            out.status.success(),
            "README.md line {}: {}\n{}",
            b.line,
            String::from_utf8_lossy(&out.stderr),
            b.text
        );
        checked += 1;
    }
    assert_eq!(checked, 7, "every voxgate TOML block");
}

#[test]
fn the_codex_config_block_is_toml() {
    let b = block("  experimental_realtime_ws_base_url");
    let t: toml::Table = b.text.parse().expect("codex's config.toml lines parse");
    assert_eq!(t["realtime"]["version"].as_str(), Some("v3"));
}

/// `rpc --stdio`, and the JSON lines pasted one at a time, each after the answer to the one
/// before (as a person pastes them); what the README says will be seen is seen.
#[tokio::test]
async fn the_stdio_session_runs_as_pasted() {
    let cmd = block("cargo run --release -- rpc --stdio");
    let lines = block("{\"id\":1,\"method\":\"initialize\"");
    let mut child = bash(&cmd.text)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen: Vec<Value> = Vec::new();
    let mut read_until = async |seen: &mut Vec<Value>, pred: &dyn Fn(&Value) -> bool| loop {
        let line = tokio::time::timeout(Duration::from_secs(20), out.next_line())
            .await
            .expect("output in time")
            .expect("read")
            .expect("a line before the end");
        let v: Value = serde_json::from_str(&line).expect("each line is JSON");
        seen.push(v.clone());
        if pred(&v) {
            return;
        }
    };
    for line in lines.text.lines() {
        let req: Value = serde_json::from_str(line).expect("README line is JSON");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        let id = req["id"].clone();
        read_until(&mut seen, &|v| v["id"] == id).await;
        assert!(
            seen.last().is_some_and(|v| v.get("error").is_none()),
            "{seen:?}"
        );
        if req["params"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("delegate:"))
        {
            // "the model speaking the embedded agent's result"
            read_until(&mut seen, &|v| {
                v["method"] == "thread/realtime/transcript/done"
                    && v["params"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Here is what I found"))
            })
            .await;
        }
    }
    read_until(&mut seen, &|v| v["method"] == "thread/realtime/closed").await;
    let methods: Vec<&str> = seen.iter().filter_map(|v| v["method"].as_str()).collect();
    for m in [
        "thread/realtime/started",
        "thread/realtime/transcript/delta",
        "thread/realtime/transcript/done",
    ] {
        assert!(methods.contains(&m), "{m}: {methods:?}");
    }
    assert!(
        seen.iter()
            .any(|v| v["params"]["item"]["type"] == "handoff_request"),
        "the handoff_request item"
    );
    assert_eq!(
        seen.last().map(|v| v["params"]["reason"].clone()),
        Some("requested".into())
    );
}

#[cfg_attr(
    not(voxgate_e2e_openai_py),
    ignore = "needs the openai Python SDK: pip install -r e2e/requirements.txt"
)]
#[tokio::test]
async fn the_python_sdk_snippet_runs() {
    let h = harness().await;
    let b = block("import asyncio");
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(at(&b.text, &h.addr.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let said = line_after(&mut child, "").await;
    assert_eq!(said, "You said: hello");
}

#[tokio::test]
async fn the_client_secret_curl_mints_a_secret() {
    let h = harness_with(|_| {}, |cfg| one_key(cfg, "readme", "sk-readme-key")).await;
    let b = block("curl -s http://127.0.0.1:8080/v1/realtime/client_secrets");
    let out = bash(&at(&b.text, &h.addr.to_string()))
        .env("VOXGATE_KEY", "sk-readme-key")
        .output()
        .await
        .expect("curl");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert!(
        v["value"].as_str().is_some_and(|s| s.starts_with("ek_")),
        "{v}"
    );
    assert_eq!(v["session"]["instructions"], "Be brief.");
}

#[cfg_attr(
    not(voxgate_e2e_codex),
    ignore = "needs the codex CLI: npm ci --prefix e2e"
)]
#[tokio::test]
async fn the_codex_agent_commands_start() {
    let b = block("codex app-server --listen");
    let mut lines = b.text.lines();
    let codex_line = lines.next().expect("codex line");
    let serve_line = lines.next().expect("serve line");
    let codex_dir = root()
        .join("e2e/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin");
    let home =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("codex-home-{}", rand_u64()));
    std::fs::create_dir_all(&home).expect("codex home");
    let path = format!(
        "{}:{}",
        codex_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut codex = bash(&format!(
        "exec {}",
        codex_line.replace("127.0.0.1:4500", "127.0.0.1:0")
    ))
    .env("PATH", &path)
    .env("CODEX_HOME", &home)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("codex");
    // codex says where it listens on stderr.
    let url = read_after(codex.stderr.as_mut().expect("stderr"), "listening on: ").await;
    let (_voxgate, addr) = serve(&serve_line.replace("ws://127.0.0.1:4500", &url), &[]).await;
    assert_eq!(get(&addr, "/readyz").await.0, 200);
    let ready = url.replacen("ws://", "http://", 1) + "/readyz";
    let r = reqwest::get(ready).await.expect("codex readyz");
    assert!(r.status().is_success());
}

/// The README's load test against the README's gateway: it finishes by itself with a verdict
/// and writes its report where it says.
#[tokio::test]
async fn the_loadtest_command_runs_and_reports() {
    let (_gw, addr) = serve(&block("cargo run --release -- serve\n").text, &[]).await;
    let b = block("cargo run --release -- loadtest");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-lt-{}", rand_u64()));
    std::fs::create_dir_all(&dir).expect("dir");
    let out = tokio::time::timeout(
        Duration::from_secs(100),
        bash(&at(&b.text, &addr)).current_dir(&dir).output(),
    )
    .await
    .expect("the load test ends by itself")
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("verdict: no thresholds set"), "{stdout}");
    for f in ["results.json", "report.html", "summary.md"] {
        assert!(dir.join("lt").join(f).exists(), "lt/{f}");
    }
}

#[test]
fn the_source_map_names_real_directories() {
    let b = block("src/protocol/");
    let mut named = 0;
    for line in b.text.lines().filter(|l| !l.starts_with(' ')) {
        for dir in line
            .split_whitespace()
            .next()
            .into_iter()
            .flat_map(|w| w.split(','))
        {
            if !dir.is_empty() {
                assert!(Path::new(&root().join(dir)).exists(), "{dir} exists");
                named += 1;
            }
        }
    }
    assert!(named >= 10, "{named}");
}
