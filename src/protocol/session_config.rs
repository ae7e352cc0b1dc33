//! Session configuration per model version: the first `session.update` frame (v1 quicksilver,
//! v2 conversational, v2 transcription), voice palettes and validation, and how the instructions
//! are assembled from the prompt parameter, the override prompt and the startup context.

use super::model::{ModelVersion, TextRole};
use serde_json::{Value, json};

pub const V1_VOICES: &[&str] = &[
    "juniper", "maple", "spruce", "ember", "vale", "breeze", "arbor", "sol", "cove",
];
pub const V2_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar",
];
/// GPT-Live's palette, as codex 0.169 lists it for v3 (the v1 voices and the new ones).
pub const V3_VOICES: &[&str] = &[
    "juniper", "maple", "spruce", "ember", "vale", "breeze", "arbor", "sol", "cove", "aube",
    "bubbie", "haetsal", "hanul", "himari", "leher", "miko", "neer", "porto", "rindo", "rio",
    "rivage", "selva", "sonna", "tinta", "viola",
];
pub const DEFAULT_V1_VOICE: &str = "cove";
/// What codex 0.169 asks GPT-Live for when no voice is given.
pub const DEFAULT_V3_VOICE: &str = "cove";
pub const DEFAULT_LIVE_MODEL: &str = "gpt-live-1";
pub const DEFAULT_V2_VOICE: &str = "marin";
pub const DEFAULT_MODEL: &str = "gpt-realtime-1.5";
pub const TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";

/// voxgate's default prompt template (its own wording), readable in `default_prompt.md`.
pub const DEFAULT_PROMPT: &str = include_str!("default_prompt.md");

pub const BACKGROUND_AGENT_DESCRIPTION: &str = "Hand a task to a capable background agent that can \
research, read and change files, run tools and take multi-step actions. Use it whenever the user \
asks for something you cannot answer from the conversation alone. Progress arrives later as \
[BACKEND] messages.";
pub const BACKGROUND_AGENT_PROMPT_DESCRIPTION: &str =
    "The task for the agent, self-contained, in the user's own terms.";
pub const REMAIN_SILENT_DESCRIPTION: &str = "Say nothing this turn: use when the user is not \
addressing you or no reply is needed.";

pub fn voices(version: ModelVersion) -> &'static [&'static str] {
    match version {
        ModelVersion::V1 => V1_VOICES,
        ModelVersion::V2 => V2_VOICES,
        ModelVersion::V3 => V3_VOICES,
    }
}

pub fn default_voice(version: ModelVersion) -> &'static str {
    match version {
        ModelVersion::V1 => DEFAULT_V1_VOICE,
        ModelVersion::V2 => DEFAULT_V2_VOICE,
        ModelVersion::V3 => DEFAULT_V3_VOICE,
    }
}

/// Resolve the voice (start param → config → version default) and check it against the palette.
pub fn resolve_voice(
    version: ModelVersion,
    requested: Option<&str>,
    configured: Option<&str>,
) -> Result<String, String> {
    let voice = requested
        .filter(|v| !v.is_empty())
        .or(configured.filter(|v| !v.is_empty()))
        .unwrap_or(default_voice(version));
    let palette = voices(version);
    if palette.contains(&voice) {
        Ok(voice.to_owned())
    } else {
        Err(format!(
            "realtime voice `{voice}` is not supported for {version}; supported voices: {}",
            palette.join(", ")
        ))
    }
}

/// The tri-state `prompt` start parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PromptParam {
    /// Field absent: use the default prompt template.
    #[default]
    Absent,
    /// Explicit `null`: empty instructions.
    Null,
    /// A string: exactly it (`""` means empty instructions).
    Text(String),
}

/// A GPT-Live client's `initial_items` (the conversation so far) told to the model: after the
/// instructions, one line per item, in a section the model can tell apart from its orders.
pub fn append_conversation_so_far(instructions: &mut String, items: &[(TextRole, String)]) {
    if items.is_empty() {
        return;
    }
    if !instructions.is_empty() {
        instructions.push_str("\n\n");
    }
    instructions.push_str("<conversation_so_far>\n");
    for (role, text) in items {
        instructions.push_str(role.as_str());
        instructions.push_str(": ");
        instructions.push_str(text);
        instructions.push('\n');
    }
    instructions.push_str("</conversation_so_far>");
}

/// Instructions for the first `session.update` (protocol.md §1 "Prompt").
pub fn resolve_instructions(
    prompt: &PromptParam,
    override_prompt: Option<&str>,
    default_template: &str,
    startup_context: Option<&str>,
) -> String {
    // A blank configured override is no override, as codex treats it.
    let override_prompt = override_prompt.filter(|o| !o.trim().is_empty());
    let prompt = match (override_prompt, prompt) {
        (Some(o), _) => o.to_owned(),
        (None, PromptParam::Absent) => default_template.to_owned(),
        (None, PromptParam::Null) => String::new(),
        (None, PromptParam::Text(s)) => s.clone(),
    };
    let context = startup_context
        .filter(|c| !c.is_empty())
        .map(|body| format!("<startup_context>\n{body}\n</startup_context>"))
        .unwrap_or_default();
    match (prompt.is_empty(), context.is_empty()) {
        (false, false) => format!("{prompt}\n\n{context}"),
        (false, true) => prompt,
        (true, _) => context,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputModality {
    #[default]
    Audio,
    Text,
}

impl OutputModality {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputModality::Audio => "audio",
            OutputModality::Text => "text",
        }
    }
}

/// Conversational (speech-to-speech with tools) or transcription-only (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    #[default]
    Conversational,
    Transcription,
}

/// Everything needed to build the first `session.update`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SessionSettings {
    pub version: ModelVersion,
    pub mode: SessionMode,
    pub output_modality: OutputModality,
    pub instructions: String,
    pub voice: String,
    /// The model, named in the session itself on v3 (`session.start`); v1/v2 name it in the URL.
    #[serde(default)]
    pub model: String,
}

fn pcm_format() -> Value {
    json!({"type": "audio/pcm", "rate": 24000})
}

/// The `session` object of the first `session.update` (also the `session` part of a call offer).
pub fn session_object(s: &SessionSettings) -> Value {
    match (s.version, s.mode) {
        // GPT-Live's configuration is strict (unknown fields are refused): only what it knows.
        // Delegation in client mode: the model hands work to voxgate, which runs its agent core.
        (ModelVersion::V3, _) => json!({
            "model": s.model,
            "instructions": s.instructions,
            "audio": {"output": {"voice": s.voice}},
            "delegation": {"type": "client"}
        }),
        (ModelVersion::V1, _) => json!({
            "type": "quicksilver",
            "instructions": s.instructions,
            "audio": {"input": {"format": pcm_format()}, "output": {"voice": s.voice}}
        }),
        (ModelVersion::V2, SessionMode::Transcription) => json!({
            "type": "transcription",
            "audio": {"input": {
                "format": pcm_format(),
                "transcription": {"model": TRANSCRIPTION_MODEL}
            }}
        }),
        (ModelVersion::V2, SessionMode::Conversational) => json!({
            "type": "realtime",
            "instructions": s.instructions,
            "output_modalities": [s.output_modality.as_str()],
            "audio": {
                "input": {
                    "format": pcm_format(),
                    "noise_reduction": {"type": "near_field"},
                    "transcription": {"model": TRANSCRIPTION_MODEL},
                    "turn_detection": {
                        "type": "server_vad",
                        "interrupt_response": true,
                        "create_response": true,
                        "silence_duration_ms": 500
                    }
                },
                "output": {"format": pcm_format(), "voice": s.voice}
            },
            "tools": delegation_tools(),
            "tool_choice": "auto"
        }),
    }
}

/// voxgate's two delegation tools in the v2 function-tool shape.
pub fn delegation_tools() -> Value {
    json!([
        {
            "type": "function",
            "name": "background_agent",
            "description": BACKGROUND_AGENT_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {
                    "prompt": {"type": "string", "description": BACKGROUND_AGENT_PROMPT_DESCRIPTION}
                },
                "required": ["prompt"],
                "additionalProperties": false
            }
        },
        {
            "type": "function",
            "name": "remain_silent",
            "description": REMAIN_SILENT_DESCRIPTION,
            "parameters": {"type": "object", "properties": {}, "additionalProperties": false}
        }
    ])
}

/// The full first frame: `{"type":"session.update","session":{…}}` (v3:
/// `{"type":"session.start","session":{…}}`).
pub fn session_update(s: &SessionSettings) -> Value {
    let ty = match s.version {
        ModelVersion::V3 => "session.start",
        ModelVersion::V1 | ModelVersion::V2 => "session.update",
    };
    json!({"type": ty, "session": session_object(s)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_follow_codex_rules_for_prompt_override_and_startup_context() {
        let template = "DEFAULT";
        // The default template, and the startup context wrapped after it.
        assert_eq!(
            resolve_instructions(&PromptParam::Absent, None, template, Some("ctx")),
            "DEFAULT\n\n<startup_context>\nctx\n</startup_context>"
        );
        // A blank configured override is treated as unset (it does not empty the instructions).
        assert_eq!(
            resolve_instructions(&PromptParam::Absent, Some("  "), template, None),
            "DEFAULT"
        );
        assert_eq!(
            resolve_instructions(&PromptParam::Absent, Some("OVERRIDE"), template, None),
            "OVERRIDE"
        );
        // `null` prompt: none, only the context.
        assert_eq!(
            resolve_instructions(&PromptParam::Null, None, template, Some("ctx")),
            "<startup_context>\nctx\n</startup_context>"
        );
        assert_eq!(
            resolve_instructions(&PromptParam::Text("MINE".into()), None, template, Some("")),
            "MINE"
        );
    }
}
