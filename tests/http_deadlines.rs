//! The HTTP listener's head deadline over real sockets: a connection that never completes a
//! request head — silent from the start, half a head, or idle on keep-alive after a response —
//! is closed once `request_timeout_secs` has passed, while a websocket opened before them all
//! lives on.

mod common;

use common::{RpcClient, WAIT, harness_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read until the server closes the connection; what it sent on the way.
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was still open");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn connections_that_never_finish_a_request_head_are_closed_and_websockets_are_not() {
    let h = harness_with(|_| {}, |cfg| cfg.server.request_timeout_secs = 1).await;
    let mut rpc = RpcClient::ready(h.addr).await;

    let mut silent = TcpStream::connect(h.addr).await.expect("connect");
    let mut half = TcpStream::connect(h.addr).await.expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut kept = TcpStream::connect(h.addr).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");

    assert_eq!(
        until_closed(&mut silent).await,
        "",
        "silent: nothing is answered"
    );
    assert_eq!(
        until_closed(&mut half).await,
        "",
        "half a head: nothing is answered"
    );
    let answered = until_closed(&mut kept).await;
    assert!(
        answered.starts_with("HTTP/1.1 200"),
        "kept-alive: {answered}"
    );
    assert!(
        voxgate::metrics::HEAD_TIMEOUTS.get() >= 3,
        "each closing is counted"
    );

    // The websocket opened before them all has outlived their deadline and still works.
    rpc.start(json!({"threadId": "t", "outputModality": "text", "version": "v2"}))
        .await;
    rpc.notification("thread/realtime/started").await;
}
