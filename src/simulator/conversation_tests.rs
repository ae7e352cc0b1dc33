//! The simulator behaves as the service does where clients notice: replies are asked for,
//! one `session.updated` per update, spoken turns follow the configured script.

use super::*;

fn sim(version: ModelVersion) -> (SimConversation, Instant) {
    let mut s = SimConversation::new(version, SimulatorConfig::default(), 1);
    s.open();
    let now = Instant::now();
    s.handle_timeout(now);
    drain(&mut s);
    (s, now)
}

fn drain(s: &mut SimConversation) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(o) = s.poll_output() {
        if let SimOutput::Text(t) = o {
            out.push(serde_json::from_str(&t).expect("json"));
        }
    }
    out
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn user_item(text: &str) -> String {
    json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": text}]}})
    .to_string()
}

#[test]
fn an_item_waits_for_response_create_and_gets_one_reply() {
    let (mut s, now) = sim(ModelVersion::V2);
    s.handle_client_text(&user_item("what time is it"), now);
    let after_item = drain(&mut s);
    assert_eq!(
        types(&after_item),
        ["conversation.item.added", "conversation.item.done"]
    );
    s.handle_client_text(r#"{"type":"response.create"}"#, now);
    let reply = drain(&mut s);
    let t = types(&reply);
    assert_eq!(t.iter().filter(|t| **t == "response.created").count(), 1);
    assert!(!t.contains(&"error"), "{t:?}");
    let done = reply
        .iter()
        .find(|e| e["type"] == "response.output_audio_transcript.done")
        .expect("a spoken reply");
    assert_eq!(done["transcript"], "You said: what time is it");
}

#[test]
fn codex_typed_turns_and_v1_items_are_answered_without_response_create() {
    let (mut s, now) = sim(ModelVersion::V2);
    s.handle_client_text(&user_item("[USER] hi"), now);
    assert!(types(&drain(&mut s)).contains(&"response.created"));
    let (mut s, now) = sim(ModelVersion::V1);
    s.handle_client_text(&user_item("hi"), now);
    assert!(
        types(&drain(&mut s)).contains(&"conversation.output_transcript.delta"),
        "quicksilver has no response.create"
    );
}

#[test]
fn one_session_update_gets_one_session_updated() {
    let (mut s, now) = sim(ModelVersion::V2);
    s.handle_client_text(
        r#"{"type":"session.update","session":{"type":"realtime","instructions":"x"}}"#,
        now,
    );
    assert_eq!(types(&drain(&mut s)), ["session.updated"]);
}

#[test]
fn spoken_turns_follow_the_script_and_its_last_line_repeats() {
    let (mut s, mut now) = sim(ModelVersion::V2);
    let loud = audio::tone(100, 0);
    let quiet = vec![0u8; loud.len()];
    let mut heard = Vec::new();
    for _ in 0..4 {
        for _ in 0..3 {
            s.handle_pcm(&loud, now);
        }
        for _ in 0..6 {
            s.handle_pcm(&quiet, now);
        }
        // Let the reply finish before the next turn (a turn mid-reply would cut it short).
        now += Duration::from_secs(30);
        s.handle_timeout(now);
        heard.extend(
            drain(&mut s)
                .into_iter()
                .filter(|e| e["type"] == "conversation.item.input_audio_transcription.completed")
                .map(|e| e["transcript"].as_str().unwrap_or_default().to_owned()),
        );
    }
    let script = crate::config::DEFAULT_SPOKEN_SCRIPT;
    assert_eq!(heard, [script[0], script[1], script[2], script[2]]);
}
