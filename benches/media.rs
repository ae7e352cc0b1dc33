//! Relay media costs per 20 ms of full-duplex audio: libopus alone (the floor) against voxgate's
//! whole per-frame relay pipeline, and SDP offer -> answer time.
//! Run: `cargo bench --bench media`. Figures go in BENCHMARKS.md.

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;
use voxgate::engine::{Acks, ClientCommand, Engine, EngineConfig, Input};
use voxgate::media::codec::{FRAME_SAMPLES, OpusCodec};
use voxgate::media::playout::{PlayoutClock, Tick};
use voxgate::protocol::{AudioChunk, ModelEvent, ModelVersion};

fn speech_frame(n: usize) -> Vec<i16> {
    (0..FRAME_SAMPLES)
        .map(|i| {
            let t = (n * FRAME_SAMPLES + i) as f64 / 24_000.0;
            let env = (t * 6.0 * std::f64::consts::TAU).sin().abs() * 0.6 + 0.4;
            let v: f64 = (1..6)
                .map(|h| (t * 180.0 * f64::from(h) * std::f64::consts::TAU).sin() / f64::from(h))
                .sum();
            (v * env * 9000.0) as i16
        })
        .collect()
}

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        version: ModelVersion::V2,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.update"}),
        acks: Acks::default(),
        local_playout: true,
        delegation: true,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Connected);
    while e.poll_output().is_some() {}
    e
}

/// A browser-like offer (audio sendrecv + data channel) made by a str0m client.
fn offer_sdp() -> String {
    let mut rtc = str0m::Rtc::new(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendRecv,
        None,
        None,
        None,
    );
    api.add_channel("oai-events".into());
    let (offer, _pending) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

fn bench(c: &mut Criterion) {
    let frames: Vec<Vec<i16>> = (0..50).map(speech_frame).collect();
    let mut codec = OpusCodec::new().expect("codec");
    let packets: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| codec.encode(f).expect("encode"))
        .collect();

    for complexity in [10, 5, 0] {
        let mut enc = opus::Encoder::new(24_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("encoder");
        enc.set_complexity(complexity).expect("complexity");
        let mut out = vec![0u8; 1500];
        let mut i = 0;
        c.bench_function(&format!("opus_encode_20ms_complexity_{complexity}"), |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                black_box(enc.encode(&frames[i], &mut out).expect("encode"))
            })
        });
    }

    // The floor: decode one caller frame and encode one model frame with libopus alone.
    let mut i = 0;
    c.bench_function("codec_only_duplex_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            black_box(codec.decode(&packets[i]).expect("decode").len());
            black_box(codec.encode(&frames[i]).expect("encode"));
        })
    });

    // voxgate's per-frame relay work around the codec, both directions:
    // uplink: Opus decode -> PCM16 base64 chunk -> engine step -> input_audio_buffer.append frame;
    // downlink: model audio delta parse -> engine step -> base64 decode -> playout -> Opus encode.
    let mut e = engine();
    let mut playout = PlayoutClock::default();
    let deltas: Vec<String> = frames
        .iter()
        .map(|f| {
            let bytes: Vec<u8> = f.iter().flat_map(|s| s.to_le_bytes()).collect();
            json!({"type": "response.output_audio.delta", "response_id": "r", "item_id": "it",
                "output_index": 0, "content_index": 0,
                "delta": base64::engine::general_purpose::STANDARD.encode(bytes)})
            .to_string()
        })
        .collect();
    let mut i = 0;
    c.bench_function("relay_pipeline_duplex_20ms", |b| {
        b.iter(|| {
            i = (i + 1) % frames.len();
            // Uplink.
            let pcm = codec.decode(&packets[i]).expect("decode");
            let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
            e.handle_input(Input::Client(ClientCommand::AppendAudio(AudioChunk {
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
                sample_rate: 24_000,
                num_channels: 1,
                samples_per_channel: Some(FRAME_SAMPLES as u32),
                item_id: None,
            })));
            while let Some(out) = e.poll_output() {
                if let voxgate::engine::Output::ToModel(f) = out {
                    black_box(ModelVersion::V2.build(&f));
                }
            }
            // Downlink.
            let ev = ModelVersion::V2.parse(&deltas[i]).expect("parses");
            let ModelEvent::AudioOut(chunk) = ev.clone() else {
                unreachable!()
            };
            e.handle_input(Input::Model(ev));
            while e.poll_output().is_some() {}
            let raw = base64::engine::general_purpose::STANDARD
                .decode(chunk.data.as_bytes())
                .expect("b64");
            let pcm: Vec<i16> = raw
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            let _ = playout.push(chunk.item_id, &pcm);
            if let Tick::Frame { pcm, .. } = playout.next_frame() {
                black_box(codec.encode(&pcm).expect("encode"));
            }
        })
    });

    // Offer -> answer as the calls handler does it: parse and check the offer, build the ICE-lite
    // peer on the shared media port, produce the answer.
    let offer = offer_sdp();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let _guard = rt.enter();
    c.bench_function("sdp_offer_to_answer_relay", |b| {
        b.iter(|| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
            black_box(
                voxgate::media::call::CallMedia::accept(
                    &offer,
                    addr,
                    addr,
                    voxgate::media::call::new_ufrag(),
                    Instant::now(),
                    voxgate::media::call::MediaTimeouts {
                        connect: std::time::Duration::from_secs(15),
                        silence: std::time::Duration::from_secs(30),
                        ice_grace: std::time::Duration::from_secs(30),
                    },
                    Instant::now(),
                )
                .expect("answer"),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
