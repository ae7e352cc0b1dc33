//! Engine behaviour around barge-in: truncation at the received or played position, per output
//! item, v2 only, and local playout (WebRTC relay); GPT-Live (v3) drops queued playout instead.
//! No sockets.

use super::tests::{audio, drain, engine, frames, model};
use super::*;

#[test]
fn truncate_on_speech_started_clamps_to_received_audio() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, audio("out1", 300));
    model(&mut e, audio("out1", 200));
    // The player claims more than was received: clamp.
    e.handle_input(Input::AudioPlayed {
        item_id: "out1".into(),
        played_ms: 9_999,
    });
    let outs = model(
        &mut e,
        ModelEvent::SpeechStarted {
            item_id: Some("in_7".into()),
        },
    );
    assert_eq!(
        frames(&outs),
        vec![ModelFrame::Truncate {
            item_id: "out1".into(),
            audio_end_ms: 500
        }]
    );
    // Cleared: a second speech_started truncates nothing.
    assert!(frames(&model(&mut e, ModelEvent::SpeechStarted { item_id: None })).is_empty());
}

#[test]
fn truncate_uses_the_played_position_when_known() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, audio("out1", 1000));
    e.handle_input(Input::AudioPlayed {
        item_id: "out1".into(),
        played_ms: 240,
    });
    let outs = model(&mut e, ModelEvent::SpeechStarted { item_id: None });
    assert_eq!(
        frames(&outs),
        vec![ModelFrame::Truncate {
            item_id: "out1".into(),
            audio_end_ms: 240
        }]
    );
}

#[test]
fn new_output_item_resets_and_done_clears_tracking() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, audio("out1", 400));
    model(&mut e, audio("out2", 100));
    let outs = model(
        &mut e,
        ModelEvent::SpeechStarted {
            item_id: Some("out2".into()),
        },
    );
    assert_eq!(
        frames(&outs),
        vec![ModelFrame::Truncate {
            item_id: "out2".into(),
            audio_end_ms: 100
        }]
    );
    model(&mut e, audio("out3", 100));
    model(&mut e, ModelEvent::ResponseDone { response_id: None });
    assert!(frames(&model(&mut e, ModelEvent::SpeechStarted { item_id: None })).is_empty());
    // speech_started naming an earlier output item refers to old audio: no truncation.
    model(&mut e, audio("out4", 100));
    assert!(
        frames(&model(
            &mut e,
            ModelEvent::SpeechStarted {
                item_id: Some("out1".into())
            }
        ))
        .is_empty()
    );
}

#[test]
fn with_local_playout_a_finished_response_can_still_be_truncated_at_the_played_position() {
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
    drain(&mut e);
    model(&mut e, audio("out1", 1200));
    model(&mut e, ModelEvent::ResponseDone { response_id: None });
    e.handle_input(Input::AudioPlayed {
        item_id: "out1".into(),
        played_ms: 340,
    });
    let outs = model(
        &mut e,
        ModelEvent::SpeechStarted {
            item_id: Some("in_2".into()),
        },
    );
    assert_eq!(outs[0], Output::ClearAudio);
    assert_eq!(
        frames(&outs),
        vec![ModelFrame::Truncate {
            item_id: "out1".into(),
            audio_end_ms: 340
        }]
    );
    // Once playback finished, there is nothing left to cut.
    model(&mut e, audio("out2", 200));
    e.handle_input(Input::PlaybackFinished);
    assert!(frames(&model(&mut e, ModelEvent::SpeechStarted { item_id: None })).is_empty());
}

fn live_engine(local_playout: bool) -> Engine {
    let mut e = Engine::new(EngineConfig {
        version: ModelVersion::V3,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.start"}),
        acks: Acks::default(),
        local_playout,
        delegation: true,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Connected);
    drain(&mut e);
    e
}

#[test]
fn v3_barge_in_drops_queued_playout_and_never_truncates() {
    let mut e = live_engine(true);
    model(
        &mut e,
        ModelEvent::OutputTranscriptDelta {
            delta: "It is a long ".into(),
        },
    );
    model(&mut e, audio("", 800));
    // The person talks over the model: GPT-Live stops by itself; voxgate drops what is
    // queued for the caller and tells the model nothing (no truncation in GPT-Live).
    let outs = model(
        &mut e,
        ModelEvent::InputTranscriptDelta {
            delta: "wait".into(),
        },
    );
    assert_eq!(outs.first(), Some(&Output::ClearAudio), "{outs:?}");
    assert!(frames(&outs).is_empty(), "{outs:?}");
    // The interrupted reply's turn ended where it was cut.
    assert!(
        outs.iter().any(|o| matches!(o,
            Output::ToClient(Notification::TranscriptDone { role: TranscriptRole::Assistant, text })
                if text == "It is a long ")),
        "{outs:?}"
    );
    // Talking on while the model is silent clears nothing more.
    let outs = model(
        &mut e,
        ModelEvent::InputTranscriptDelta {
            delta: " a moment".into(),
        },
    );
    assert!(!outs.contains(&Output::ClearAudio), "{outs:?}");
}

#[test]
fn v3_barge_in_without_local_playout_has_nothing_to_clear() {
    let mut e = live_engine(false);
    model(
        &mut e,
        ModelEvent::OutputTranscriptDelta {
            delta: "Hello ".into(),
        },
    );
    let outs = model(
        &mut e,
        ModelEvent::InputTranscriptDelta {
            delta: "stop".into(),
        },
    );
    assert!(!outs.contains(&Output::ClearAudio), "{outs:?}");
    assert!(frames(&outs).is_empty(), "{outs:?}");
}
