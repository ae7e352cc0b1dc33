//! A synthetic caller on the OpenAI-compatible websocket face (`/v1/realtime`): the same client
//! measures a direct round trip to the simulator (the baseline) and one through voxgate.

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
    let ws = connect_ws(ctx, "/v1/realtime?model=gpt-realtime").await?;
    let (mut tx, mut rx) = ws.split();
    // Set up = the session exists (`session.created`).
    let created = tokio::time::timeout(ctx.setup_timeout, async {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m
                && t.contains("\"session.created\"")
            {
                return true;
            }
        }
        false
    })
    .await;
    if created != Ok(true) {
        return Err("setup_timeout".into());
    }
    ctx.established(started.elapsed());
    let mut talker = Talker::new(ctx.talker.clone(), ctx.seed, Instant::now());
    let mut tick = frame_interval();
    let mut ticks = 0u32;
    let result = loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                if now >= ctx.ends_at {
                    break Ok(());
                }
                let out = talker.tick(now);
                if let Some(f) = out.frame {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(super::speech::to_bytes(&f));
                    let msg = format!(r#"{{"type":"input_audio_buffer.append","audio":"{b64}"}}"#);
                    if tx.send(Message::text(msg)).await.is_err() {
                        break Err("closed_by_server".into());
                    }
                }
                if let Some(text) = out.text {
                    let item = json!({"type": "conversation.item.create", "item": {"type": "message",
                        "role": "user", "content": [{"type": "input_text", "text": text}]}});
                    if tx.send(Message::text(item.to_string())).await.is_err() {
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
                on_event(&mut talker, t.as_str());
            }
        }
    };
    talker.finish();
    let _ = tx.send(Message::Close(None)).await;
    ctx.ended(&mut talker.stats, true);
    result
}

fn on_event(talker: &mut Talker, t: &str) {
    let now = Instant::now();
    let Some(ty) = str_field(t, "type") else {
        return;
    };
    match ty {
        "response.output_audio.delta" | "response.audio.delta" => {
            if let Some(b64) = str_field(t, "delta") {
                let (head, ms) = audio_head(b64);
                talker.on_audio(now, Some(&head), ms);
            }
        }
        "input_audio_buffer.speech_started" => talker.on_speech_started(now),
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(t)
                && let Some(text) = v["transcript"].as_str()
            {
                talker.on_transcript(now, text);
            }
        }
        "error" => {
            *talker.stats.errors.entry("model_error".into()).or_default() += 1;
        }
        _ => {}
    }
}
