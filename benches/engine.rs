//! Hot-path benchmarks: a v2 (and v3) inbound audio delta parsed and stepped through the engine,
//! the outbound frames built per audio chunk, the notification serialized for JSON-RPC clients,
//! and a GPT-Live-face client's audio read and written.
//! Run: `cargo bench --bench engine`. Figures go in BENCHMARKS.md.

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use voxgate::engine::{Acks, Engine, EngineConfig, Input, Output};
use voxgate::protocol::rpc::Notification;
use voxgate::protocol::{AudioChunk, ModelFrame, ModelVersion};

fn pcm_b64(ms: usize) -> String {
    let bytes: Vec<u8> = (0..ms * 48).map(|i| (i * 7 % 251) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn engine() -> Engine {
    engine_of(ModelVersion::V2)
}

fn engine_of(version: ModelVersion) -> Engine {
    let mut e = Engine::new(EngineConfig {
        version,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.update"}),
        acks: Acks::default(),
        local_playout: false,
        delegation: true,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Connected);
    while e.poll_output().is_some() {}
    e
}

fn bench(c: &mut Criterion) {
    for ms in [20usize, 100] {
        let frame = json!({"type": "response.output_audio.delta", "event_id": "event_abc", "response_id": "resp_1",
            "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": pcm_b64(ms)})
        .to_string();
        let mut e = engine();
        c.bench_function(
            &format!("v2_audio_delta_{ms}ms_parse_and_engine_step"),
            |b| {
                b.iter(|| {
                    let ev = ModelVersion::V2.parse(black_box(&frame)).expect("parses");
                    e.handle_input(Input::Model(ev));
                    while let Some(out) = e.poll_output() {
                        black_box(&out);
                        if let Output::ToClient(n) = out {
                            black_box(n);
                        }
                    }
                })
            },
        );

        let chunk = AudioChunk {
            data: pcm_b64(ms),
            sample_rate: 24_000,
            num_channels: 1,
            samples_per_channel: None,
            item_id: Some("item_1".into()),
        };
        let n = Notification::OutputAudioDelta(chunk.clone());
        c.bench_function(&format!("output_audio_notification_{ms}ms_to_json"), |b| {
            b.iter(|| black_box(n.to_json(black_box("thread-1"))))
        });

        let append = ModelFrame::AudioAppend {
            audio: chunk.data.clone(),
        };
        c.bench_function(&format!("v2_input_audio_append_{ms}ms_build"), |b| {
            b.iter(|| black_box(ModelVersion::V2.build(black_box(&append))))
        });
    }
    let text = ModelFrame::FunctionOutput {
        call_id: "call_1".into(),
        output: "The background agent finished.".into(),
    };
    c.bench_function("v2_function_output_build", |b| {
        b.iter(|| black_box(ModelVersion::V2.build(black_box(&text))))
    });
    live(c);
}

/// GPT-Live: the model's audio parsed and stepped (v3 upstream), and a GPT-Live client's audio
/// through voxgate's live face both ways (`session::live_codec`).
fn live(c: &mut Criterion) {
    use voxgate::session::live_codec::{LiveCodec, LiveDialect};
    let audio = pcm_b64(20);
    let frame = json!({"type": "session.output_audio.delta", "event_id": "ev_1",
        "delta": audio, "start_ms": 1200, "end_ms": 1220})
    .to_string();
    let mut e = engine_of(ModelVersion::V3);
    c.bench_function("v3_audio_delta_20ms_parse_and_engine_step", |b| {
        b.iter(|| {
            let ev = ModelVersion::V3.parse(black_box(&frame)).expect("parses");
            e.handle_input(Input::Model(ev));
            while let Some(out) = e.poll_output() {
                black_box(&out);
            }
        })
    });
    let codec = LiveCodec::new(LiveDialect::Frameless, "live_1".into(), "m".into());
    let append = json!({"type": "input_audio.append", "audio": audio}).to_string();
    c.bench_function("live_client_audio_append_20ms_parse", |b| {
        b.iter(|| black_box(codec.client_event(black_box(&append)).expect("audio")))
    });
    let mut codec = codec;
    let n = Notification::OutputAudioDelta(AudioChunk {
        data: audio.clone(),
        sample_rate: 24_000,
        num_channels: 1,
        samples_per_channel: None,
        item_id: None,
    });
    c.bench_function("live_client_output_audio_20ms_build", |b| {
        b.iter(|| black_box(codec.server_event(black_box(&n))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
