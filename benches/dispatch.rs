//! P5: delegation dispatch latency — from the model's `conversation.item.done(background_agent)`
//! frame leaving a (fake) model socket to the agent request arriving at a webhook receiver, through
//! the real websocket client, parser, engine, session task and reqwest. Everything on loopback in
//! one process (one clock). Prints p50/p99/max over N delegations.
//! Run: `cargo bench --bench dispatch` (N via DISPATCH_SAMPLES, default 500). With
//! `DISPATCH_VERSION=v3` the model is GPT-Live: its `session.delegation.created` (after the
//! person's transcript) to the agent request, resolved by the `session.commentary.append`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use voxgate::app::AppState;
use voxgate::config::{AgentKind, Config, UpstreamKind};

async fn webhook_receiver(hits: mpsc::UnboundedSender<Instant>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let hits = hits.clone();
            async move {
                let _ = hits.send(Instant::now());
                "{\"type\":\"message\",\"text\":\"ok\"}\n{\"type\":\"done\"}\n"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn main() {
    let samples: usize = std::env::var("DISPATCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let v3 = std::env::var("DISPATCH_VERSION").is_ok_and(|v| v == "v3");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (hit_tx, mut hit_rx) = mpsc::unbounded_channel();
        let hook = webhook_receiver(hit_tx).await;
        let model = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let model_addr = model.local_addr().expect("addr");

        let mut cfg = Config::default();
        cfg.upstream.kind = UpstreamKind::Openai;
        cfg.upstream.base_url = format!("http://{model_addr}/v1");
        cfg.upstream.api_key = Some("sk-bench".into());
        cfg.agent.kind = AgentKind::Webhook;
        cfg.agent.webhook.url = hook;
        if v3 {
            cfg.upstream.version = voxgate::protocol::ModelVersion::V3;
        }
        let app = AppState::build(cfg).await.expect("app");
        let params =
            serde_json::from_value(json!({"threadId": "bench", "outputModality": "audio"}))
                .expect("params");
        app.start_conversation(params, "bench", None)
            .expect("start");

        let (tcp, _) = model.accept().await.expect("gateway connects");
        tcp.set_nodelay(true).expect("nodelay");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
        let _session_update = ws.next().await;
        if v3 {
            ws.send(Message::text(
                json!({"type": "session.started", "session": {"id": "sess_bench"}}).to_string(),
            ))
            .await
            .expect("send");
        }
        let mut lat = Vec::with_capacity(samples);
        for i in 0..samples {
            let frame = if v3 {
                ws.send(Message::text(
                    json!({"type": "session.input_transcript.delta",
                        "delta": "check the build status"})
                    .to_string(),
                ))
                .await
                .expect("send");
                json!({"type": "session.delegation.created", "offset_ms": 1000,
                    "delegation": {"id": format!("del_{i}"), "type": "delegation",
                    "target": "client"}})
            } else {
                json!({"type": "conversation.item.done", "item": {"id": format!("fc_{i}"),
                    "type": "function_call", "name": "background_agent",
                    "call_id": format!("call_{i}"),
                    "arguments": "{\"prompt\":\"check the build status\"}"}})
            }
            .to_string();
            let t0 = Instant::now();
            ws.send(Message::text(frame)).await.expect("send");
            let t1 = tokio::time::timeout(Duration::from_secs(10), hit_rx.recv())
                .await
                .expect("hit")
                .expect("open");
            lat.push(t1.duration_since(t0));
            // Wait until the call is resolved so the next one starts a fresh task.
            loop {
                let Some(Ok(Message::Text(t))) = ws.next().await else {
                    panic!("gateway closed")
                };
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["item"]["type"] == "function_call_output"
                    || (v["type"] == "session.commentary.append" && !v["delegation_id"].is_null())
                {
                    break;
                }
            }
            if !v3 {
                // Let the response queue go idle again (as the model would).
                ws.send(Message::text(
                    json!({"type": "response.done", "response": {"id": format!("r{i}")}})
                        .to_string(),
                ))
                .await
                .expect("send");
            }
        }
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
        println!(
            "P5 dispatch {} -> agent request: n={} p50={:?} p99={:?} max={:?}",
            if v3 {
                "delegation.created (v3)"
            } else {
                "item.done"
            },
            lat.len(),
            pct(0.50),
            pct(0.99),
            lat[lat.len() - 1]
        );
    });
}
