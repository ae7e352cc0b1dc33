//! TLS on the listener and CORS on the HTTP faces, with real clients: reqwest and a websocket
//! client over rustls that trust only the test's certificate, a plain-HTTP client on the TLS
//! port, the `voxgate serve --dev-tls` binary, and browser-style preflights.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

fn https_client(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("cert")])
        .build()
        .expect("client")
}

fn rustls_connector(pem: &str) -> tokio_tungstenite::Connector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_tungstenite::Connector::Rustls(Arc::new(config))
}

#[tokio::test]
async fn https_and_wss_work_with_a_trusted_certificate_and_plain_http_is_refused() {
    let (_h, pem, _, addr) = tls_gateway(|_| {}).await;
    let http = https_client(&pem);
    let ok = http
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .expect("https answers");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "ok\n");

    // A stock OpenAI-protocol session over wss://.
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!(
            "wss://localhost:{}/v1/realtime?model=gpt-realtime",
            addr.port()
        ),
        None,
        true,
        Some(rustls_connector(&pem)),
    )
    .await
    .expect("wss connects");
    ws.send(Message::text(
        json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
            .to_string(),
    ))
    .await
    .expect("send");
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("frame");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == "session.updated" && v["session"]["instructions"] == "Be brief." {
            break;
        }
    }

    // A client that does not trust the certificate is refused by its own TLS, not served.
    let untrusting = reqwest::Client::new();
    assert!(
        untrusting
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port: no answer an HTTP client can read, and the listener goes on.
    let before = voxgate::metrics::TLS_HANDSHAKES_FAILED.get();
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );
    let ok = http
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .expect("still serving");
    assert_eq!(ok.status(), 200);
    assert!(voxgate::metrics::TLS_HANDSHAKES_FAILED.get() > before);
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_tls_handshakes_of_others() {
    let (_h, pem, _, addr) = tls_gateway(|_| {}).await;
    // Ten connections that never say hello: handshakes run off the accept loop.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    // Well within the request timeout (10 s) that a handshake on the accept loop would wait
    // out for each of them in turn.
    let ok = tokio::time::timeout(
        WAIT / 2,
        https_client(&pem)
            .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
            .send(),
    )
    .await
    .expect("answered while others sit silent")
    .expect("answered");
    assert_eq!(ok.status(), 200);
    drop(idle);
}

#[tokio::test]
async fn configured_pem_files_are_loaded_and_bad_ones_are_clear_errors() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tls-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let id = voxgate::http::tls::load(&cert, &key).expect("loads");
    assert_eq!(id.fingerprint.len(), 32 * 3 - 1, "{}", id.fingerprint);
    // The key where the certificate should be, and the other way round.
    let e = voxgate::http::tls::load(&key, &key).err().expect("refused");
    assert!(format!("{e:#}").contains("server.tls_cert"), "{e:#}");
    let e = voxgate::http::tls::load(&cert, &cert)
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("server.tls_key"), "{e:#}");
}

#[tokio::test]
async fn serve_dev_tls_prints_an_https_line_and_serves_its_logged_certificate() {
    let mut child = voxgate_bin(env!("CARGO_BIN_EXE_voxgate"))
        .args(["serve", "--dev-tls", "--listen", "127.0.0.1:0"])
        .spawn()
        .expect("spawn voxgate");
    let pid = child.id().expect("pid");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut addr = None;
    let open = loop {
        let line = tokio::time::timeout(WAIT * 3, lines.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("voxgate printed its lines");
        if let Some(a) = line.strip_prefix("voxgate listening on ") {
            addr = Some(a.to_owned());
        }
        if line.starts_with("open ") {
            break line;
        }
    };
    let addr: std::net::SocketAddr = addr.expect("listening line first").parse().expect("addr");
    assert_eq!(open, format!("open https://{addr}/ for the demo page"));
    let cert = std::env::temp_dir()
        .join(format!("voxgate-dev-tls-{pid}"))
        .join("voxgate-dev-cert.pem");
    let pem = std::fs::read_to_string(&cert).expect("the dev certificate was written");
    let page = https_client(&pem)
        .get(format!("https://localhost:{}/", addr.port()))
        .send()
        .await
        .expect("https answers");
    assert_eq!(page.status(), 200);
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(cert.parent().expect("dir"));
}

async fn preflight(addr: std::net::SocketAddr, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("http://{addr}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn cors_answers_preflights_for_listed_origins_only() {
    let h = harness_with(
        |_| {},
        |cfg| cfg.server.cors_origins = vec!["http://app.example:5173".into()],
    )
    .await;
    for path in [
        "/v1/realtime/calls",
        "/v1/realtime/client_secrets",
        "/v1/live/sessions",
    ] {
        let r = preflight(h.addr, path, "http://app.example:5173").await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let hdr = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        assert_eq!(
            hdr("access-control-allow-origin"),
            "http://app.example:5173",
            "{path}"
        );
        assert!(
            hdr("access-control-allow-methods").contains("post"),
            "{path}"
        );
        assert!(
            hdr("access-control-allow-headers").contains("authorization"),
            "{path}"
        );
        // Another origin gets no grant.
        let r = preflight(h.addr, path, "http://evil.example").await;
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    // A real request from the page: the call's Location is readable by its script.
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/realtime/calls", h.addr))
        .header("origin", "http://app.example:5173")
        .header("content-type", "application/sdp")
        .body(relay_offer())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://app.example:5173"
    );
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .expect("ascii")
            .to_ascii_lowercase()
            .contains("location")
    );
}

#[tokio::test]
async fn without_cors_origins_no_page_elsewhere_is_granted() {
    let h = harness().await;
    let r = preflight(h.addr, "/v1/realtime/calls", "http://app.example:5173").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
