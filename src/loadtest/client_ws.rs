//! A synthetic caller on the OpenAI-compatible websocket face (`/v1/realtime`): the same client
//! measures a direct round trip to the simulator (the baseline) and one through voxgate.

use super::session::{SessionCtx, WsFace, audio_head, connect_ws, drive_ws, frame_b64, str_field};
use super::talker::{Talker, TickOut};
use futures_util::StreamExt;
use serde_json::json;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub async fn run(ctx: &SessionCtx) -> Result<(), String> {
    let started = Instant::now();
    let mut ws = connect_ws(ctx, "/v1/realtime?model=gpt-realtime").await?;
    // Set up = the session exists (`session.created`).
    let created = tokio::time::timeout(ctx.setup_timeout, async {
        while let Some(Ok(m)) = ws.next().await {
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
    drive_ws(ctx, ws, &mut OpenAiWs).await
}

struct OpenAiWs;

impl WsFace for OpenAiWs {
    fn encode(&mut self, out: TickOut) -> Vec<String> {
        let mut msgs = Vec::new();
        if let Some(f) = out.frame {
            let b64 = frame_b64(&f);
            msgs.push(format!(
                r#"{{"type":"input_audio_buffer.append","audio":"{b64}"}}"#
            ));
        }
        if let Some(text) = out.text {
            let item = json!({"type": "conversation.item.create", "item": {"type": "message",
                "role": "user", "content": [{"type": "input_text", "text": text}]}});
            msgs.push(item.to_string());
            // An item is context; the reply is asked for (as the OpenAI SDKs do).
            msgs.push(r#"{"type":"response.create"}"#.to_owned());
        }
        msgs
    }

    fn on_text(&mut self, talker: &mut Talker, t: &str) -> Option<Result<(), String>> {
        let now = Instant::now();
        match str_field(t, "type")? {
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
        None
    }
}
