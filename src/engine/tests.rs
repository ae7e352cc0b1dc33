//! Engine behaviour, one scenario per test, no sockets.

use super::*;
use crate::protocol::AudioChunk;
use base64::Engine as _;

pub(super) fn engine(version: ModelVersion) -> Engine {
    engine_with(version, true)
}

/// An engine whose model errors end the conversation (`errors_end_session`) or not.
fn engine_with(version: ModelVersion, errors_end_session: bool) -> Engine {
    let mut e = Engine::new(EngineConfig {
        version,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.update"}),
        acks: Acks {
            completed: "DONE".into(),
            steering: "STEER".into(),
            no_message: "EMPTY".into(),
            failed: "FAILED: {reason}".into(),
            cancelled: "CANCELLED".into(),
            nothing_to_delegate: "NOTHING".into(),
        },
        local_playout: false,
        delegation: true,
        errors_end_session,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Connected);
    drain(&mut e);
    e
}

/// The timeline's `realtimeSessionClosed` pair for the test engine's first session.
pub(super) fn session_closed(outcome: &str, item: u64) -> [Output; 2] {
    let item = json!({"id": format!("s-i{item}"), "realtimeSessionId": "s",
        "type": "realtimeSessionClosed", "outcome": outcome});
    [
        Output::ToClient(Notification::ItemStarted(item.clone())),
        Output::ToClient(Notification::ItemCompleted(item)),
    ]
}

pub(super) fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

pub(super) fn model(e: &mut Engine, ev: ModelEvent) -> Vec<Output> {
    e.handle_input(Input::Model(ev));
    drain(e)
}

pub(super) fn frames(outs: &[Output]) -> Vec<ModelFrame> {
    outs.iter()
        .filter_map(|o| match o {
            Output::ToModel(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn agent_cmds(outs: &[Output]) -> Vec<AgentCommand> {
    outs.iter()
        .filter_map(|o| match o {
            Output::ToAgent(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn handoff(call: &str, transcript: &str) -> ModelEvent {
    ModelEvent::HandoffRequested {
        handoff_id: call.into(),
        item_id: format!("item_{call}"),
        input_transcript: transcript.into(),
    }
}

pub(super) fn handoff_item(outs: &[Output]) -> Value {
    outs.iter()
        .find_map(|o| match o {
            Output::ToClient(Notification::ItemAdded(item))
                if item["type"] == "handoff_request" =>
            {
                Some(item.clone())
            }
            _ => None,
        })
        .expect("handoff_request item")
}

pub(super) fn fn_output(call: &str, output: &str) -> ModelFrame {
    ModelFrame::FunctionOutput {
        call_id: call.into(),
        output: output.into(),
    }
}

pub(super) fn audio(item: &str, ms: u64) -> ModelEvent {
    let bytes = vec![0u8; (ms * 48) as usize];
    ModelEvent::AudioOut(AudioChunk {
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        sample_rate: 24_000,
        num_channels: 1,
        samples_per_channel: None,
        item_id: Some(item.into()),
    })
}

#[test]
fn transcript_entries_since_last_handoff_only() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "first question".into(),
        },
    );
    model(&mut e, ModelEvent::ResponseCreated { response_id: None });
    model(
        &mut e,
        ModelEvent::OutputTranscriptDelta {
            delta: "first ".into(),
        },
    );
    model(
        &mut e,
        ModelEvent::OutputTranscriptDelta {
            delta: "answer".into(),
        },
    );
    let outs = model(&mut e, handoff("c1", "do one"));
    assert_eq!(
        handoff_item(&outs)["active_transcript"],
        json!([{"role": "user", "text": "first question"}, {"role": "assistant", "text": "first answer"},
            {"role": "user", "text": "do one"}])
    );
    model(&mut e, ModelEvent::SpeechStarted { item_id: None });
    model(
        &mut e,
        ModelEvent::InputTranscriptDelta {
            delta: "second".into(),
        },
    );
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Completed,
    }));
    drain(&mut e);
    let outs = model(&mut e, handoff("c2", "do two"));
    assert_eq!(
        handoff_item(&outs)["active_transcript"],
        json!([{"role": "user", "text": "second"}, {"role": "user", "text": "do two"}])
    );
}

#[test]
fn input_transcript_not_duplicated_in_active_transcript() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "  fix the build ".into(),
        },
    );
    let outs = model(&mut e, handoff("c1", "fix the build"));
    assert_eq!(
        handoff_item(&outs)["active_transcript"],
        json!([{"role": "user", "text": "  fix the build "}])
    );
}

#[test]
fn done_replaces_the_last_same_role_entry() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::InputTranscriptDelta {
            delta: "hel".into(),
        },
    );
    model(
        &mut e,
        ModelEvent::InputTranscriptDelta { delta: "".into() },
    );
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "hello".into(),
        },
    );
    let entries = e.transcript().entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].text, "hello");
}

#[test]
fn delegation_text_escapes_xml() {
    let mut e = engine(ModelVersion::V2);
    let outs = model(&mut e, handoff("c1", "a < b && c > d"));
    assert_eq!(
        agent_cmds(&outs),
        vec![AgentCommand::Start {
            handoff_id: "c1".into(),
            text: "<realtime_delegation>\n  <input>a &lt; b &amp;&amp; c &gt; d</input>\n  <transcript_delta>user: a &lt; b &amp;&amp; c &gt; d</transcript_delta>\n</realtime_delegation>".into(),
        }]
    );
}

#[test]
fn empty_input_uses_transcript_lines_and_nothing_at_all_resolves_without_delegating() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::InputTranscriptDone {
            text: "book a table".into(),
        },
    );
    let outs = model(&mut e, handoff("c1", "  "));
    assert_eq!(
        agent_cmds(&outs),
        vec![AgentCommand::Start {
            handoff_id: "c1".into(),
            text: "<realtime_delegation>\n  <input>user: book a table</input>\n  <transcript_delta>user: book a table</transcript_delta>\n</realtime_delegation>".into(),
        }]
    );
    let mut e = engine(ModelVersion::V2);
    let outs = model(&mut e, handoff("c9", ""));
    assert!(agent_cmds(&outs).is_empty());
    assert_eq!(
        frames(&outs),
        vec![fn_output("c9", "NOTHING"), ModelFrame::ResponseCreate]
    );
}

#[test]
fn progress_messages_arrive_before_the_final_ack() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "task"));
    for text in ["step 1", "step 2"] {
        e.handle_input(Input::Agent(AgentEvent::Message {
            handoff_id: "c1".into(),
            text: text.into(),
        }));
    }
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Completed,
    }));
    assert_eq!(
        frames(&drain(&mut e)),
        vec![
            ModelFrame::Text {
                role: TextRole::User,
                text: "[BACKEND] step 1".into()
            },
            ModelFrame::Text {
                role: TextRole::User,
                text: "[BACKEND] step 2".into()
            },
            fn_output("c1", "DONE"),
            ModelFrame::ResponseCreate,
        ]
    );
}

#[test]
fn second_background_agent_call_steers_and_acks_with_queued_response_create() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "first"));
    model(
        &mut e,
        ModelEvent::ResponseCreated {
            response_id: Some("r1".into()),
        },
    );
    let outs = model(&mut e, handoff("c2", "more"));
    assert!(
        matches!(agent_cmds(&outs).as_slice(), [AgentCommand::Steer { text }] if text.contains("<input>more</input>"))
    );
    // The ack goes out now; response.create waits for the active response.
    assert_eq!(frames(&outs), vec![fn_output("c2", "STEER")]);
    assert_eq!(
        frames(&model(
            &mut e,
            ModelEvent::ResponseDone { response_id: None }
        )),
        vec![ModelFrame::ResponseCreate]
    );
    // The active call is still the first one.
    e.handle_input(Input::Agent(AgentEvent::Message {
        handoff_id: "c1".into(),
        text: "ok".into(),
    }));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Completed,
    }));
    let f = frames(&drain(&mut e));
    assert_eq!(f[1], fn_output("c1", "DONE"));
}

#[test]
fn remain_silent_answers_empty_output_without_response_create() {
    let mut e = engine(ModelVersion::V2);
    let outs = model(
        &mut e,
        ModelEvent::NoopRequested {
            call_id: "c1".into(),
        },
    );
    assert_eq!(frames(&outs), vec![fn_output("c1", "")]);
    assert!(!e.response_queue().is_active());
}

#[test]
fn response_create_deferred_while_active_and_flushed_once_on_done() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, ModelEvent::ResponseCreated { response_id: None });
    model(&mut e, handoff("c1", "a"));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Completed,
    }));
    let outs = drain(&mut e);
    assert_eq!(frames(&outs), vec![fn_output("c1", "EMPTY")]);
    model(&mut e, handoff("c2", "b"));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c2".into(),
        outcome: TaskOutcome::Completed,
    }));
    assert_eq!(frames(&drain(&mut e)), vec![fn_output("c2", "EMPTY")]);
    // Two requests coalesced into one, sent on cancel.
    let outs = model(
        &mut e,
        ModelEvent::ResponseCancelled {
            response_id: Some("r".into()),
        },
    );
    assert_eq!(frames(&outs), vec![ModelFrame::ResponseCreate]);
    assert_eq!(
        frames(&model(
            &mut e,
            ModelEvent::ResponseDone { response_id: None }
        )),
        vec![]
    );
}

#[test]
fn race_guard_error_is_absorbed_and_retried_after_done() {
    let mut e = engine(ModelVersion::V2);
    let outs = model(
        &mut e,
        ModelEvent::Error {
            message: "Conversation already has an active response in progress: resp_1. Wait."
                .into(),
        },
    );
    assert!(outs.is_empty(), "{outs:?}");
    assert!(!e.is_closed());
    assert_eq!(
        frames(&model(
            &mut e,
            ModelEvent::ResponseDone { response_id: None }
        )),
        vec![ModelFrame::ResponseCreate]
    );
}

#[test]
fn other_upstream_error_gives_error_then_closed_error() {
    let mut e = engine(ModelVersion::V2);
    let outs = model(
        &mut e,
        ModelEvent::Error {
            message: "bad".into(),
        },
    );
    let [started, completed] = session_closed("failed", 2);
    assert_eq!(
        outs,
        vec![
            Output::ToClient(Notification::Error {
                message: "bad".into()
            }),
            started,
            completed,
            Output::ToClient(Notification::Closed {
                reason: CloseReason::Error
            }),
            Output::Close(CloseReason::Error),
        ]
    );
    assert!(
        model(
            &mut e,
            ModelEvent::InputTranscriptDone {
                text: "late".into()
            }
        )
        .is_empty()
    );
}

#[test]
fn v1_never_truncates_or_requests_responses() {
    let mut e = engine(ModelVersion::V1);
    model(&mut e, audio("out1", 400));
    assert!(frames(&model(&mut e, ModelEvent::SpeechStarted { item_id: None })).is_empty());
    model(&mut e, handoff("h1", "x"));
    e.handle_input(Input::Agent(AgentEvent::Message {
        handoff_id: "h1".into(),
        text: "m".into(),
    }));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "h1".into(),
        outcome: TaskOutcome::Completed,
    }));
    let f = frames(&drain(&mut e));
    assert_eq!(
        f,
        vec![ModelFrame::HandoffAppend {
            handoff_id: "h1".into(),
            output_text: "\"Agent Final Message\":\n\nm".into()
        }]
    );
}

#[test]
fn v1_agent_message_without_active_handoff_uses_codex_id() {
    let mut e = engine(ModelVersion::V1);
    model(&mut e, handoff("h1", "x"));
    // Simulate the handoff being gone while the task still reports (e.g. replaced then ended).
    e.handoff.active = None;
    e.handle_input(Input::Agent(AgentEvent::Message {
        handoff_id: "h1".into(),
        text: "m".into(),
    }));
    assert_eq!(
        frames(&drain(&mut e)),
        vec![ModelFrame::HandoffAppend {
            handoff_id: "codex".into(),
            output_text: "\"Agent Final Message\":\n\nm".into()
        }]
    );
}

#[test]
fn failed_delegated_task_still_resolves_its_call() {
    for (outcome, text) in [
        (TaskOutcome::Failed("disk full".into()), "FAILED: disk full"),
        (TaskOutcome::Cancelled, "CANCELLED"),
        (TaskOutcome::Completed, "EMPTY"),
    ] {
        let mut e = engine(ModelVersion::V2);
        model(&mut e, handoff("c1", "task"));
        e.handle_input(Input::Agent(AgentEvent::Ended {
            handoff_id: "c1".into(),
            outcome,
        }));
        assert_eq!(
            frames(&drain(&mut e)),
            vec![fn_output("c1", text), ModelFrame::ResponseCreate]
        );
    }
}

#[test]
fn failed_task_after_messages_still_resolves() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "task"));
    e.handle_input(Input::Agent(AgentEvent::Message {
        handoff_id: "c1".into(),
        text: "half".into(),
    }));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Failed("x".into()),
    }));
    let f = frames(&drain(&mut e));
    assert_eq!(
        f[1..],
        [fn_output("c1", "FAILED: x"), ModelFrame::ResponseCreate]
    );
}

#[test]
fn events_for_a_stale_task_are_dropped() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "task"));
    e.handle_input(Input::Agent(AgentEvent::Message {
        handoff_id: "old".into(),
        text: "x".into(),
    }));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "old".into(),
        outcome: TaskOutcome::Completed,
    }));
    assert!(drain(&mut e).is_empty());
}

#[test]
fn stop_releases_the_running_task_and_closes_requested() {
    let mut e = engine(ModelVersion::V2);
    model(&mut e, handoff("c1", "task"));
    e.handle_input(Input::Client(ClientCommand::Stop));
    let [started, completed] = session_closed("ended", 2);
    assert_eq!(
        drain(&mut e),
        vec![
            Output::ToAgent(AgentCommand::Release),
            started,
            completed,
            Output::ToClient(Notification::Closed {
                reason: CloseReason::Requested
            }),
            Output::Close(CloseReason::Requested),
        ]
    );
}

#[test]
fn upstream_eof_closes_with_transport_closed() {
    let mut e = engine(ModelVersion::V2);
    e.handle_input(Input::UpstreamClosed);
    let [started, completed] = session_closed("ended", 2);
    assert_eq!(
        drain(&mut e),
        vec![
            started,
            completed,
            Output::ToClient(Notification::Closed {
                reason: CloseReason::TransportClosed
            }),
            Output::Close(CloseReason::TransportClosed),
        ]
    );
}

#[test]
fn input_before_connect_is_sent_right_after_session_update() {
    let mut e = Engine::new(EngineConfig {
        version: ModelVersion::V2,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.update"}),
        acks: Acks::default(),
        local_playout: false,
        delegation: true,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Client(ClientCommand::AppendText {
        text: "early".into(),
        role: TextRole::User,
    }));
    assert!(drain(&mut e).is_empty());
    e.handle_input(Input::Connected);
    let outs = drain(&mut e);
    assert!(matches!(
        &outs[0],
        Output::ToModel(ModelFrame::SessionUpdate { .. })
    ));
    // codex's order: the timeline's realtimeSessionStarted, then `started`.
    assert!(matches!(
        &outs[1],
        Output::ToClient(Notification::ItemStarted(item)) if item["type"] == "realtimeSessionStarted"
    ));
    assert!(matches!(
        &outs[3],
        Output::ToClient(Notification::Started { .. })
    ));
    assert_eq!(
        outs[4],
        Output::ToModel(ModelFrame::Text {
            role: TextRole::User,
            text: "[USER] early".into()
        })
    );
}

#[test]
fn user_prefix_only_for_v2_user_text_not_empty_or_prefixed() {
    let cases = [
        (ModelVersion::V2, TextRole::User, "hi", "[USER] hi"),
        (ModelVersion::V2, TextRole::User, "", ""),
        (ModelVersion::V2, TextRole::User, "[USER] hi", "[USER] hi"),
        (ModelVersion::V2, TextRole::Developer, "rule", "rule"),
        (ModelVersion::V2, TextRole::Assistant, "said", "said"),
        (ModelVersion::V1, TextRole::User, "hi", "hi"),
    ];
    for (version, role, input, want) in cases {
        let mut e = engine(version);
        e.handle_input(Input::Client(ClientCommand::AppendText {
            text: input.into(),
            role,
        }));
        assert_eq!(
            frames(&drain(&mut e)),
            vec![ModelFrame::Text {
                role,
                text: want.into()
            }],
            "{version} {input}"
        );
    }
}

#[test]
fn append_text_never_requests_a_response() {
    let mut e = engine(ModelVersion::V2);
    e.handle_input(Input::Client(ClientCommand::AppendText {
        text: "x".into(),
        role: TextRole::User,
    }));
    assert!(!frames(&drain(&mut e)).contains(&ModelFrame::ResponseCreate));
    assert!(!e.response_queue().is_active());
}

#[test]
fn with_delegation_off_calls_are_left_to_the_client() {
    let mut e = Engine::new(EngineConfig {
        version: ModelVersion::V2,
        realtime_session_id: "s".into(),
        session_update: json!({"type": "session.update"}),
        acks: Acks::default(),
        local_playout: false,
        delegation: false,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    e.handle_input(Input::Connected);
    drain(&mut e);
    assert!(model(&mut e, handoff("c1", "do it")).is_empty());
    assert!(
        model(
            &mut e,
            ModelEvent::NoopRequested {
                call_id: "c2".into()
            }
        )
        .is_empty()
    );
    let raw = r#"{"type":"session.update","session":{"type":"realtime","tools":[]}}"#;
    e.handle_input(Input::Client(ClientCommand::RawEvent(raw.into())));
    assert_eq!(
        frames(&drain(&mut e)),
        vec![ModelFrame::Raw { text: raw.into() }],
        "no tools injected"
    );
}

#[test]
fn a_clients_response_create_waits_for_the_active_response() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::ResponseCreated {
            response_id: Some("r1".into()),
        },
    );
    let create = r#"{"type":"response.create","response":{"instructions":"short"}}"#;
    e.handle_input(Input::Client(ClientCommand::RawEvent(create.into())));
    assert!(
        frames(&drain(&mut e)).is_empty(),
        "deferred while a response is active"
    );
    // The delegation asks too: two requests wait, each for its own response.
    model(&mut e, handoff("c1", "x"));
    e.handle_input(Input::Agent(AgentEvent::Ended {
        handoff_id: "c1".into(),
        outcome: TaskOutcome::Completed,
    }));
    assert_eq!(frames(&drain(&mut e)), vec![fn_output("c1", "EMPTY")]);
    // The client's goes first, exactly as sent (its instructions kept), then voxgate's.
    assert_eq!(
        frames(&model(
            &mut e,
            ModelEvent::ResponseDone { response_id: None }
        )),
        vec![ModelFrame::Raw {
            text: create.into()
        }]
    );
    assert_eq!(
        frames(&model(
            &mut e,
            ModelEvent::ResponseDone { response_id: None }
        )),
        vec![ModelFrame::ResponseCreate]
    );
    // Idle: a client's response.create goes out as it came.
    model(&mut e, ModelEvent::ResponseDone { response_id: None });
    e.handle_input(Input::Client(ClientCommand::RawEvent(create.into())));
    assert_eq!(
        frames(&drain(&mut e)),
        vec![ModelFrame::Raw {
            text: create.into()
        }]
    );
}

#[test]
fn a_clients_audio_append_goes_up_byte_for_byte_whatever_its_key_order() {
    let mut e = engine(ModelVersion::V2);
    for raw in [
        r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
        // The Python SDK's order and spacing: the type after the audio.
        r#"{"audio": "AAAA", "type": "input_audio_buffer.append"}"#,
    ] {
        e.handle_input(Input::Client(ClientCommand::RawEvent(raw.into())));
        let out = frames(&drain(&mut e));
        assert_eq!(out, vec![ModelFrame::Raw { text: raw.into() }]);
        assert!(out[0].is_audio_append(), "counted as input audio: {raw}");
    }
    let create = r#"{"event_id": "e1", "type": "response.create"}"#;
    e.handle_input(Input::Client(ClientCommand::RawEvent(create.into())));
    assert!(!frames(&drain(&mut e))[0].is_audio_append());
}

mod errors;
mod reconnect;

#[test]
fn a_cancelled_response_is_told_to_the_client_as_a_response_cancelled_item() {
    let mut e = engine(ModelVersion::V2);
    model(
        &mut e,
        ModelEvent::ResponseCreated {
            response_id: Some("r1".into()),
        },
    );
    let outs = model(
        &mut e,
        ModelEvent::ResponseCancelled {
            response_id: Some("r1".into()),
        },
    );
    assert!(
        outs.contains(&Output::ToClient(Notification::ItemAdded(
            json!({"type": "response.cancelled", "response_id": "r1"})
        ))),
        "{outs:?}"
    );
    assert!(e.at_turn_boundary(), "the response is over");
}
