//! A synthetic caller on the JSON-RPC face (`/rpc`): `thread/realtime/start`, audio as
//! `appendAudio`, the reply as `outputAudio/delta` notifications, `stop` at the end.

use super::session::{
    REPORT_EVERY_TICKS, SessionCtx, audio_head, connect_ws, frame_interval, str_field,
};
use super::talker::Talker;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub async fn run(ctx: &SessionCtx) -> Result<(), String> {
    let started = Instant::now();
    let ws = connect_ws(ctx, "/rpc").await?;
    let (mut tx, mut rx) = ws.split();
    let thread = format!("lt-{}-{}", ctx.slot, ctx.seed);
    let init = json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "voxgate-loadtest",
        "version": env!("CARGO_PKG_VERSION")}, "capabilities": {"experimentalApi": true}}});
    let start = json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": thread,
        "outputModality": "audio"}});
    for m in [init, start] {
        tx.send(Message::text(m.to_string()))
            .await
            .map_err(|_| "closed_by_server")?;
    }
    let up = tokio::time::timeout(ctx.setup_timeout, async {
        while let Some(Ok(m)) = rx.next().await {
            let Message::Text(t) = m else { continue };
            if t.contains("\"thread/realtime/started\"") {
                return Ok(());
            }
            if t.contains("\"thread/realtime/error\"") || t.contains("\"error\":{") {
                return Err("start_refused".to_owned());
            }
        }
        Err("closed_by_server".to_owned())
    })
    .await
    .map_err(|_| "setup_timeout")?;
    up?;
    ctx.established(started.elapsed());
    let mut talker = Talker::new(ctx.talker.clone(), ctx.seed, Instant::now());
    let mut tick = frame_interval();
    let mut ticks = 0u32;
    let mut next_id = 10u64;
    let result = loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= ctx.ends_at {
                    break Ok(());
                }
                let out = talker.tick(now);
                next_id += 1;
                if let Some(f) = out.frame {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(super::speech::to_bytes(&f));
                    let msg = format!(
                        r#"{{"id":{next_id},"method":"thread/realtime/appendAudio","params":{{"threadId":"{thread}","audio":{{"data":"{b64}","sampleRate":24000,"numChannels":1,"samplesPerChannel":{}}}}}}}"#,
                        f.len()
                    );
                    if tx.send(Message::text(msg)).await.is_err() {
                        break Err("closed_by_server".into());
                    }
                }
                if let Some(text) = out.text {
                    next_id += 1;
                    let m = json!({"id": next_id, "method": "thread/realtime/appendText",
                        "params": {"threadId": thread, "text": text}});
                    if tx.send(Message::text(m.to_string())).await.is_err() {
                        break Err("closed_by_server".into());
                    }
                }
                ticks += 1;
                if ticks.is_multiple_of(REPORT_EVERY_TICKS) {
                    ctx.report(&mut talker.stats);
                }
            }
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break Err("closed_by_server".into()) };
                let Message::Text(t) = msg else { continue };
                if let Some(end) = on_message(&mut talker, t.as_str()) {
                    break end;
                }
            }
        }
    };
    talker.finish();
    let stop = json!({"id": 3, "method": "thread/realtime/stop", "params": {"threadId": thread}});
    let _ = tx.send(Message::text(stop.to_string())).await;
    let _ = tx.send(Message::Close(None)).await;
    ctx.ended(&mut talker.stats, true);
    result
}

/// Handle one server message; `Some` ends the session.
fn on_message(talker: &mut Talker, t: &str) -> Option<Result<(), String>> {
    let now = Instant::now();
    let method = str_field(t, "method")?;
    match method {
        "thread/realtime/outputAudio/delta" => {
            if let Some(b64) = str_field(t, "data") {
                let (head, ms) = audio_head(b64);
                talker.on_audio(now, Some(&head), ms);
            }
        }
        "thread/realtime/transcript/done" => {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
                && let Some(text) = v["params"]["text"].as_str()
            {
                talker.on_transcript(now, text);
            }
        }
        "thread/realtime/itemAdded" if t.contains("speech_started") => {
            talker.on_speech_started(now)
        }
        "thread/realtime/error" => {
            *talker.stats.errors.entry("model_error".into()).or_default() += 1;
        }
        "thread/realtime/closed" => return Some(Err("closed_by_server".into())),
        _ => {}
    }
    None
}
