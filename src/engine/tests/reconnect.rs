//! A lost model socket and the new model session: the conversation so far is told to it as
//! history, the timeline says what happened, and a delegation made in the old session delivers
//! its result into the new one.

use super::*;

#[test]
fn a_new_model_session_is_told_the_conversation_and_the_timeline_shows_the_switch() {
    let mut e = engine(ModelVersion::V2);
    e.handle_input(Input::Client(ClientCommand::AppendText {
        text: "my name is Ada".into(),
        role: TextRole::User,
    }));
    model(
        &mut e,
        ModelEvent::OutputTranscriptDone {
            text: "Hello Ada".into(),
        },
    );
    drain(&mut e);
    e.handle_input(Input::ModelLost("reset".into()));
    let lost = drain(&mut e);
    assert!(lost.iter().any(
        |o| matches!(o, Output::ToClient(Notification::ItemCompleted(v))
        if v["type"] == "realtimeSessionClosed" && v["outcome"] == "failed")
    ));
    // Asked while no socket is open: waits for the new one.
    e.handle_input(Input::Client(ClientCommand::AppendText {
        text: "still there?".into(),
        role: TextRole::User,
    }));
    assert!(frames(&drain(&mut e)).is_empty());
    e.handle_input(Input::Connected);
    let outs = drain(&mut e);
    let sent = frames(&outs);
    assert!(matches!(sent[0], ModelFrame::SessionUpdate { .. }));
    let history: Vec<(String, String, String)> = sent
        .iter()
        .filter_map(|f| match f {
            ModelFrame::HistoryItem {
                text,
                id,
                previous_item_id,
                ..
            } => Some((text.clone(), id.clone(), previous_item_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        history,
        [
            (
                "[USER] my name is Ada".into(),
                "item_vg_s2_0".into(),
                "root".into()
            ),
            (
                "Hello Ada".into(),
                "item_vg_s2_1".into(),
                "item_vg_s2_0".into()
            ),
        ]
    );
    assert_eq!(
        sent.last(),
        Some(&ModelFrame::Text {
            role: TextRole::User,
            text: "[USER] still there?".into()
        }),
        "what waited goes after the history"
    );
    assert!(outs.iter().any(
        |o| matches!(o, Output::ToClient(Notification::ItemCompleted(v))
        if v["type"] == "realtimeSessionStarted" && v["realtimeSessionId"] == "s-2")
    ));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, Output::ToClient(Notification::Started { .. })))
    );
}

#[test]
fn a_delegation_from_the_lost_session_delivers_into_the_new_one() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "look it up"));
    drain(&mut e);
    e.handle_input(Input::ModelLost("eof".into()));
    e.handle_input(Input::Connected);
    drain(&mut e);
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Failed("no network".into()),
    }));
    assert_eq!(
        frames(&drain(&mut e)),
        vec![
            ModelFrame::Text {
                role: TextRole::User,
                text: "[BACKEND] FAILED: no network".into()
            },
            ModelFrame::ResponseCreate
        ],
        "the old call id means nothing to the new session"
    );
}

#[test]
fn a_spoken_turn_awaiting_its_reply_is_no_turn_boundary_for_a_rollover() {
    let mut e = engine(ModelVersion::V2);
    assert!(e.at_turn_boundary());
    model(&mut e, ModelEvent::SpeechStarted { item_id: None });
    assert!(!e.at_turn_boundary(), "the user is speaking");
    // Transcribed, but the model has not started its reply: a switch now would lose the turn.
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "what time is it".into(),
        },
    );
    assert!(!e.at_turn_boundary(), "the reply to the turn is due");
    model(
        &mut e,
        ModelEvent::ResponseCreated {
            response_id: Some("r1".into()),
        },
    );
    assert!(!e.at_turn_boundary(), "the reply plays");
    model(
        &mut e,
        ModelEvent::ResponseDone {
            response_id: Some("r1".into()),
        },
    );
    assert!(e.at_turn_boundary());
}

#[test]
fn without_automatic_replies_a_transcribed_turn_is_a_turn_boundary() {
    for session in [
        json!({"type": "transcription"}),
        json!({"type": "realtime", "audio": {"input": {"turn_detection": null}}}),
        json!({"type": "realtime", "audio": {"input": {"turn_detection":
            {"type": "server_vad", "create_response": false}}}}),
    ] {
        assert!(!super::super::session_switch::turns_get_replies(
            &json!({"type": "session.update", "session": session})
        ));
    }
    assert!(super::super::session_switch::turns_get_replies(
        &json!({"type": "session.update", "session": {"type": "quicksilver"}})
    ));
}

/// The reply the person was owed when the model socket went (one playing, or a transcribed turn
/// not answered yet) is asked of the next model session; with nothing owed, nothing is asked.
#[test]
fn a_reply_cut_off_or_due_when_the_model_is_lost_is_asked_of_the_next_session() {
    let creates = |outs: &[Output]| {
        frames(outs)
            .iter()
            .filter(|f| matches!(f, ModelFrame::ResponseCreate))
            .count()
    };
    // Cut off mid-reply.
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::ResponseCreated {
            response_id: Some("r1".into()),
        },
    );
    e.handle_input(Input::ModelLost("reset".into()));
    drain(&mut e);
    e.handle_input(Input::Connected);
    assert_eq!(creates(&drain(&mut e)), 1);
    // A turn transcribed, its reply not started.
    let mut e = engine(ModelVersion::V2);
    model(&mut e, ModelEvent::SpeechStarted { item_id: None });
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "what time is it".into(),
        },
    );
    e.handle_input(Input::ModelLost("reset".into()));
    drain(&mut e);
    e.handle_input(Input::Connected);
    assert_eq!(creates(&drain(&mut e)), 1);
    // Between turns: the successor is only told the conversation.
    let mut e = engine(ModelVersion::V2);
    e.handle_input(Input::ModelLost("reset".into()));
    drain(&mut e);
    e.handle_input(Input::Connected);
    assert_eq!(creates(&drain(&mut e)), 0);
}
