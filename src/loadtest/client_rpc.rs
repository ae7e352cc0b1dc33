//! A synthetic caller on the JSON-RPC face (`/rpc`): `thread/realtime/start`, audio as
//! `appendAudio`, the reply as `outputAudio/delta` notifications, `stop` at the end.

use super::session::{SessionCtx, WsFace, audio_head, connect_ws, drive_ws, frame_b64, str_field};
use super::talker::{Talker, TickOut};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub async fn run(ctx: &SessionCtx) -> Result<(), String> {
    let started = Instant::now();
    let mut ws = connect_ws(ctx, "/rpc").await?;
    let thread = format!("lt-{}-{}", ctx.slot, ctx.seed);
    let init = json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "voxgate-loadtest",
        "version": env!("CARGO_PKG_VERSION")}, "capabilities": {"experimentalApi": true}}});
    let start = json!({"id": 2, "method": "thread/realtime/start", "params": {"threadId": thread,
        "outputModality": "audio"}});
    for m in [init, start] {
        ws.send(Message::text(m.to_string()))
            .await
            .map_err(|_| "closed_by_server")?;
    }
    // Set up = start → `thread/realtime/started`.
    let up = tokio::time::timeout(ctx.setup_timeout, async {
        while let Some(Ok(m)) = ws.next().await {
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
    drive_ws(
        ctx,
        ws,
        &mut Rpc {
            thread,
            next_id: 10,
        },
    )
    .await
}

struct Rpc {
    thread: String,
    next_id: u64,
}

impl WsFace for Rpc {
    fn encode(&mut self, out: TickOut) -> Vec<String> {
        let mut msgs = Vec::new();
        let thread = &self.thread;
        if let Some(f) = out.frame {
            self.next_id += 1;
            let (id, n, b64) = (self.next_id, f.len(), frame_b64(&f));
            msgs.push(format!(
                r#"{{"id":{id},"method":"thread/realtime/appendAudio","params":{{"threadId":"{thread}","audio":{{"data":"{b64}","sampleRate":24000,"numChannels":1,"samplesPerChannel":{n}}}}}}}"#
            ));
        }
        if let Some(text) = out.text {
            self.next_id += 1;
            let m = json!({"id": self.next_id, "method": "thread/realtime/appendText",
                "params": {"threadId": thread, "text": text}});
            msgs.push(m.to_string());
        }
        msgs
    }

    fn on_text(&mut self, talker: &mut Talker, t: &str) -> Option<Result<(), String>> {
        let now = Instant::now();
        match str_field(t, "method")? {
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
            "thread/realtime/error" => {
                *talker.stats.errors.entry("model_error".into()).or_default() += 1;
            }
            "thread/realtime/closed" => return Some(Err("closed_by_server".into())),
            _ => {}
        }
        None
    }

    fn goodbye(&mut self) -> Vec<String> {
        vec![
            json!({"id": 3, "method": "thread/realtime/stop", "params": {"threadId": self.thread}})
                .to_string(),
        ]
    }
}
