//! Back-pressure over real sockets: an OpenAI-protocol client that stops reading while the model
//! talks. voxgate keeps reading the model, drops audio for that client (counted), queues no more
//! than its bound (read from the metrics), keeps every control event, and other sessions go on.

mod common;

use common::{RpcClient, WAIT, harness, rss_kb, slow_reader_asking_for};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use voxgate::metrics;

const WORDS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_audio_not_memory_and_others_are_unaffected() {
    let h = harness().await;
    let rss_before = rss_kb();
    // A client with a small socket buffer asks the model to say 2000 words: ~400 s of audio.
    let mut slow = slow_reader_asking_for(h.addr, WORDS).await;
    let frames = (WORDS as u64 + 2) * 2; // 200 ms a word, 100 ms a delta

    // voxgate keeps reading the model although the client reads nothing: every audio delta is
    // either queued for the client or dropped.
    let read_all = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let carried = metrics::TO_CLIENT.frames.get() + metrics::AUDIO_FRAMES_DROPPED.get();
            if carried >= frames {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        read_all.is_ok(),
        "the model's audio was not all read: {} carried, {} dropped",
        metrics::TO_CLIENT.frames.get(),
        metrics::AUDIO_FRAMES_DROPPED.get()
    );
    assert!(
        metrics::AUDIO_FRAMES_DROPPED.get() > frames / 2,
        "most audio for the stalled client was dropped"
    );
    // The whole process (voxgate and the in-process simulator, whose schedule holds the ~26 MB
    // reply it is sending) stays within a stated bound; before the session reactor, a client
    // that read nothing grew voxgate by gigabytes.
    let grown_mb = rss_kb().saturating_sub(rss_before) / 1024;
    assert!(grown_mb < 64, "resident memory grew {grown_mb} MB");
    let limits = voxgate::session::outbox::OutboxLimits::default();
    let peak = metrics::CLIENT_BACKLOG_PEAK_BYTES.get() as usize;
    assert!(
        peak <= limits.audio_limit + 1024 * 1024,
        "backlog bounded: peak {peak} bytes"
    );

    // Meanwhile another session runs normally.
    let mut other = RpcClient::ready(h.addr).await;
    other
        .start(json!({"threadId": "other", "outputModality": "text", "version": "v2"}))
        .await;
    other.notification("thread/realtime/started").await;
    other
        .request(
            "thread/realtime/appendText",
            json!({"threadId": "other", "text": "hello"}),
        )
        .await;
    let done = other.notification("thread/realtime/transcript/done").await;
    assert!(done["text"].as_str().is_some_and(|t| t.contains("hello")));

    // The slow client reads again: every transcript delta is there, then the response ends.
    let mut deltas = 0;
    let finished = tokio::time::timeout(WAIT * 3, async {
        while let Some(Ok(msg)) = slow.next().await {
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            match v["type"].as_str() {
                Some("response.output_audio_transcript.delta") => deltas += 1,
                Some("response.done") => return true,
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(finished, Ok(true), "the session survived the stall");
    assert_eq!(deltas, WORDS + 2, "no control event was dropped");
}
