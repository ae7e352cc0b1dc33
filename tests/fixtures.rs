//! Wire-format tests driven by `proto-fixtures/`: every inbound row parses to its normalized
//! event (or is skipped), every outbound frame is byte-exact, and the engine scenarios produce
//! exactly the frames, notifications and agent commands listed.

use serde_json::{Value, json};
use std::path::PathBuf;
use voxgate::engine::{
    Acks, AgentCommand, AgentEvent, ClientCommand, Engine, EngineConfig, Input, Output, TaskOutcome,
};
use voxgate::protocol::rpc::CloseReason;
use voxgate::protocol::session_config::{self, SessionSettings};
use voxgate::protocol::{ModelEvent, ModelFrame, ModelVersion, TextRole};

fn fixture_lines(rel: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("proto-fixtures")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{rel}:{}: {e}", i + 1)))
        .collect()
}

fn check_inbound(version: ModelVersion, rel: &str) {
    for (i, row) in fixture_lines(rel).iter().enumerate() {
        let raw = row["in"].as_str().expect("in is a string");
        let got = version
            .parse(raw)
            .ok()
            .map(|ev| serde_json::to_value(ev).expect("serializable"));
        let want = if row["out"].is_null() {
            None
        } else {
            Some(row["out"].clone())
        };
        assert_eq!(got, want, "{rel}:{} parsing {raw}", i + 1);
    }
}

#[test]
fn v2_inbound_rows_parse_to_normalized_events_or_skip() {
    check_inbound(ModelVersion::V2, "v2/inbound.jsonl");
}

#[test]
fn v3_inbound_rows_parse_to_normalized_events_or_skip() {
    check_inbound(ModelVersion::V3, "v3/inbound.jsonl");
}

#[test]
fn v1_inbound_rows_parse_to_normalized_events_or_skip() {
    check_inbound(ModelVersion::V1, "v1/inbound.jsonl");
}

fn check_outbound(version: ModelVersion, rel: &str) {
    for (i, row) in fixture_lines(rel).iter().enumerate() {
        let frame: ModelFrame =
            serde_json::from_value(row["frame"].clone()).expect("frame fixture");
        let got = version.build(&frame);
        assert_eq!(got.as_deref(), row["expect"].as_str(), "{rel}:{}", i + 1);
    }
}

#[test]
fn v2_outbound_frames_are_byte_exact() {
    check_outbound(ModelVersion::V2, "v2/outbound.jsonl");
}

#[test]
fn v3_outbound_frames_are_byte_exact() {
    check_outbound(ModelVersion::V3, "v3/outbound.jsonl");
}

#[test]
fn v1_outbound_frames_are_byte_exact() {
    check_outbound(ModelVersion::V1, "v1/outbound.jsonl");
}

#[test]
fn first_session_update_is_byte_exact_per_version_and_mode() {
    for (i, row) in fixture_lines("session_update.jsonl").iter().enumerate() {
        let settings: SessionSettings =
            serde_json::from_value(row["settings"].clone()).expect("settings");
        let want = row["expect"]
            .as_str()
            .expect("expect")
            .replace(
                "<BACKGROUND_AGENT_DESCRIPTION>",
                session_config::BACKGROUND_AGENT_DESCRIPTION,
            )
            .replace(
                "<BACKGROUND_AGENT_PROMPT_DESCRIPTION>",
                session_config::BACKGROUND_AGENT_PROMPT_DESCRIPTION,
            )
            .replace(
                "<REMAIN_SILENT_DESCRIPTION>",
                session_config::REMAIN_SILENT_DESCRIPTION,
            );
        let frame = ModelFrame::SessionUpdate {
            update: session_config::session_update(&settings),
        };
        assert_eq!(
            settings.version.build(&frame).as_deref(),
            Some(want.as_str()),
            "session_update.jsonl:{}",
            i + 1
        );
    }
}

fn test_acks() -> Acks {
    Acks {
        completed: "ACK_DONE".into(),
        steering: "ACK_STEER".into(),
        no_message: "ACK_EMPTY".into(),
        failed: "ACK_FAILED: {reason}".into(),
        cancelled: "ACK_CANCELLED".into(),
        nothing_to_delegate: "ACK_NOTHING".into(),
    }
}

fn output_json(out: &Output, version: ModelVersion) -> Value {
    match out {
        Output::ToModel(f) => json!({"expect_model": version.build(f)}),
        Output::ToClient(n) => {
            json!({"expect_client": serde_json::from_str::<Value>(&n.to_json("t")).expect("json")})
        }
        Output::ToAgent(AgentCommand::Start { handoff_id, text }) => {
            json!({"expect_agent": {"start": {"handoff_id": handoff_id, "text": text}}})
        }
        Output::ToAgent(AgentCommand::Steer { text }) => json!({"expect_agent": {"steer": text}}),
        Output::ToAgent(AgentCommand::Cancel) => json!({"expect_agent": "cancel"}),
        Output::ToAgent(AgentCommand::Release) => json!({"expect_agent": "release"}),
        Output::ClearAudio => json!({"expect_clear_audio": true}),
        Output::Close(r) => json!({"expect_close": r.as_str()}),
    }
}

fn run_scenario(version: ModelVersion, rel: &str) {
    let mut engine = Engine::new(EngineConfig {
        version,
        realtime_session_id: "sess-t".into(),
        session_update: match version {
            ModelVersion::V3 => {
                json!({"type": "session.start", "session": {"model": "gpt-live-1", "instructions": "x"}})
            }
            _ => {
                json!({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
            }
        },
        acks: test_acks(),
        local_playout: false,
        delegation: true,
        errors_end_session: true,
        replay: Default::default(),
        input_gate: None,
    });
    // `VOXGATE_BLESS_FIXTURES=1`: rewrite the scenario's expected outputs from what the engine
    // does now (review the diff: it is the contract).
    let bless = std::env::var_os("VOXGATE_BLESS_FIXTURES").is_some();
    let mut blessed: Vec<String> = Vec::new();
    for (i, step) in fixture_lines(rel).iter().enumerate() {
        let at = format!("{rel}:{}", i + 1);
        if bless {
            let key = step.as_object().and_then(|o| o.keys().next().cloned());
            if key.as_deref().is_some_and(|k| k.starts_with("expect_")) {
                continue;
            }
            while let Some(out) = engine.poll_output() {
                blessed.push(output_json(&out, version).to_string());
            }
            blessed.push(step.to_string());
        }
        let obj = step.as_object().expect("step object");
        let (key, val) = obj.iter().next().expect("one key");
        let input = match key.as_str() {
            "connected" => Some(Input::Connected),
            "model" => {
                let raw = val.as_str().expect("raw frame");
                Some(Input::Model(
                    version.parse(raw).unwrap_or_else(|e| panic!("{at}: {e}")),
                ))
            }
            "text" => Some(Input::Client(ClientCommand::AppendText {
                text: val.as_str().expect("text").into(),
                role: serde_json::from_value::<TextRole>(step["role"].clone()).unwrap_or_default(),
            })),
            "stop" => Some(Input::Client(ClientCommand::Stop)),
            "speech" => Some(Input::Client(ClientCommand::AppendSpeech(
                val.as_str().expect("speech").into(),
            ))),
            "model_quiet" => Some(Input::ModelQuiet),
            "upstream_closed" => Some(Input::UpstreamClosed),
            "agent_message" => Some(Input::Agent(AgentEvent::Message {
                handoff_id: val["handoff_id"].as_str().expect("id").into(),
                text: val["text"].as_str().expect("text").into(),
            })),
            "agent_end" => Some(Input::Agent(AgentEvent::Ended {
                handoff_id: val["handoff_id"].as_str().expect("id").into(),
                outcome: match &val["outcome"] {
                    Value::String(s) if s == "completed" => TaskOutcome::Completed,
                    Value::String(s) if s == "cancelled" => TaskOutcome::Cancelled,
                    other => {
                        TaskOutcome::Failed(other["failed"].as_str().expect("failed reason").into())
                    }
                },
            })),
            _ => None,
        };
        if bless {
            if let Some(input) = input {
                engine.handle_input(input);
            }
            continue;
        }
        match input {
            Some(input) => {
                // Before each input, every earlier output must have been expected.
                if let Some(left) = engine.poll_output() {
                    panic!(
                        "{at}: unexpected output before this step: {}",
                        output_json(&left, version)
                    );
                }
                engine.handle_input(input);
            }
            None => {
                let got = engine
                    .poll_output()
                    .unwrap_or_else(|| panic!("{at}: expected {step}, got nothing"));
                assert_eq!(&output_json(&got, version), step, "{at}");
            }
        }
    }
    if bless {
        while let Some(out) = engine.poll_output() {
            blessed.push(output_json(&out, version).to_string());
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("proto-fixtures")
            .join(rel);
        std::fs::write(&path, blessed.join("\n") + "\n").expect("write fixture");
        return;
    }
    if let Some(left) = engine.poll_output() {
        panic!(
            "{rel}: unexpected output at the end: {}",
            output_json(&left, version)
        );
    }
}

#[test]
fn v2_scenario_delegation_steering_and_response_queue() {
    run_scenario(
        ModelVersion::V2,
        "v2/scenario_delegation_steering_queue.jsonl",
    );
}

#[test]
fn v3_scenario_turns_end_without_done_events_and_delegations_answer_as_commentary() {
    run_scenario(ModelVersion::V3, "v3/scenario_delegation_turns.jsonl");
}

#[test]
fn v1_scenario_handoff_appends_steers_and_failure_resolves() {
    run_scenario(ModelVersion::V1, "v1/scenario_handoff_appends.jsonl");
}

#[test]
fn skipped_rows_really_are_skipped_not_errors() {
    // A sanity check that the parser never panics on hostile input.
    for raw in [
        "",
        "null",
        "{}",
        "{\"type\":null}",
        "{\"type\":\"error\"}",
        "\u{0}",
    ] {
        let _ = ModelVersion::V2.parse(raw);
        let _ = ModelVersion::V1.parse(raw);
    }
    assert!(matches!(
        ModelVersion::V2.parse("{\"type\":\"error\"}"),
        Ok(ModelEvent::Error { .. })
    ));
    let _ = CloseReason::Requested;
}

// ---- The GPT-Live dialects voxgate serves (proto-fixtures/live/) ----

use voxgate::protocol::rpc::{Notification, TranscriptRole};
use voxgate::session::live_codec::{LiveCodec, LiveDialect, LiveInput, parse_opening};

fn live_dialect(name: &str) -> LiveDialect {
    match name {
        "frameless" => LiveDialect::Frameless,
        "gpt_live" => LiveDialect::GptLive,
        other => panic!("unknown dialect {other}"),
    }
}

/// A client event's meaning as the fixtures write it.
fn live_input_json(input: &LiveInput) -> Value {
    match input {
        LiveInput::Command(cmd) => command_json(cmd),
        LiveInput::DelegationContext {
            delegation_id,
            text,
            spoken,
        } => json!({"delegation_context": delegation_id, "text": text, "spoken": spoken}),
    }
}

/// A client command as the fixtures write it.
fn command_json(cmd: &ClientCommand) -> Value {
    match cmd {
        ClientCommand::AppendAudio(a) => json!({"append_audio": a.data}),
        ClientCommand::AppendText { text, role } => {
            json!({"append_text": text, "role": role.as_str()})
        }
        ClientCommand::AppendSpeech(text) => json!({"append_speech": text}),
        ClientCommand::Stop => json!("stop"),
        ClientCommand::RawEvent(raw) => json!({"raw": raw}),
    }
}

/// A conversation notification from its fixture description.
fn notification_of(row: &Value) -> Notification {
    let role = || match row["role"].as_str() {
        Some("user") => TranscriptRole::User,
        _ => TranscriptRole::Assistant,
    };
    if row["started"] == true {
        Notification::Started {
            realtime_session_id: "live_1".into(),
            version: ModelVersion::V2,
        }
    } else if let Some(audio) = row["audio"].as_str() {
        Notification::OutputAudioDelta(voxgate::protocol::AudioChunk {
            data: audio.into(),
            sample_rate: 24_000,
            num_channels: 1,
            samples_per_channel: None,
            item_id: None,
        })
    } else if let Some(delta) = row["delta"].as_str() {
        Notification::TranscriptDelta {
            role: role(),
            delta: delta.into(),
        }
    } else if let Some(text) = row["done"].as_str() {
        Notification::TranscriptDone {
            role: role(),
            text: text.into(),
        }
    } else if let Some(message) = row["error"].as_str() {
        Notification::Error {
            message: message.into(),
        }
    } else if let Some(reason) = row["closed"].as_str() {
        Notification::Closed {
            reason: match reason {
                "requested" => CloseReason::Requested,
                "transport_closed" => CloseReason::TransportClosed,
                _ => CloseReason::Error,
            },
        }
    } else {
        Notification::ItemAdded(row["item_added"].clone())
    }
}

fn check_live(dialect: LiveDialect, client_delegation: bool, rel: &str) {
    let mut codec = LiveCodec::new(dialect, "live_1".into(), "gpt-live-1-codex".into());
    if client_delegation {
        codec = codec.with_client_delegation();
    }
    for (i, row) in fixture_lines(rel).iter().enumerate() {
        let at = format!("{rel}:{}", i + 1);
        if let Some(raw) = row["client"].as_str() {
            match codec.client_event(raw) {
                Ok(input) => assert_eq!(live_input_json(&input), row["command"], "{at}"),
                Err(e) => assert_eq!(json!(e.code), row["error"], "{at}: {}", e.message),
            }
        } else if let Some(d) = row.get("delegation_created") {
            let got = codec.delegation_created(
                d["id"].as_str().expect("id"),
                d["request"].as_str().expect("request"),
            );
            assert_eq!(Some(got.as_str()), row["expect"].as_str(), "{at}");
        } else {
            let got = codec.server_event(&notification_of(&row["notification"]));
            assert_eq!(got.as_deref(), row["expect"].as_str(), "{at}");
        }
    }
}

#[test]
fn frameless_client_events_and_server_events_are_byte_exact() {
    check_live(LiveDialect::Frameless, false, "live/frameless.jsonl");
}

#[test]
fn gpt_live_client_events_and_server_events_are_byte_exact() {
    check_live(LiveDialect::GptLive, false, "live/gpt_live.jsonl");
}

#[test]
fn client_mode_delegation_events_are_byte_exact() {
    check_live(
        LiveDialect::Frameless,
        true,
        "live/client_delegation_frameless.jsonl",
    );
    check_live(
        LiveDialect::GptLive,
        true,
        "live/client_delegation_gpt_live.jsonl",
    );
}

#[test]
fn live_openings_ask_for_what_they_say_or_are_refused() {
    for (i, row) in fixture_lines("live/openings.jsonl").iter().enumerate() {
        let at = format!("live/openings.jsonl:{}", i + 1);
        let dialect = live_dialect(row["dialect"].as_str().expect("dialect"));
        match parse_opening(dialect, row["opening"].as_str().expect("opening")) {
            Ok(o) => {
                let items: Vec<Value> = o
                    .initial_items
                    .iter()
                    .map(|(role, text)| json!([role.as_str(), text]))
                    .collect();
                let got = json!({"model": o.model, "instructions": o.instructions,
                    "voice": o.voice, "initial_items": items});
                assert_eq!(got, row["expect"], "{at}");
            }
            Err(e) => assert_eq!(json!(e.code), row["error"], "{at}: {}", e.message),
        }
    }
}
