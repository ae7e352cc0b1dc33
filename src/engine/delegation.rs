//! The `<realtime_delegation>` text handed to the agent core (protocol.md §3.2), with XML escaping.

use super::transcript::TranscriptEntry;

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Build the delegation text; `None` when there is nothing to delegate.
pub fn delegation_text(input_transcript: &str, active: &[TranscriptEntry]) -> Option<String> {
    let lines = active
        .iter()
        .map(|e| format!("{}: {}", e.role.as_str(), e.text))
        .collect::<Vec<_>>()
        .join("\n");
    let input = if input_transcript.trim().is_empty() {
        lines.as_str()
    } else {
        input_transcript
    };
    if input.is_empty() && lines.is_empty() {
        return None;
    }
    let mut text = String::from("<realtime_delegation>\n");
    text.push_str("  <input>");
    text.push_str(&xml_escape(input));
    text.push_str("</input>\n");
    if !lines.is_empty() {
        text.push_str("  <transcript_delta>");
        text.push_str(&xml_escape(&lines));
        text.push_str("</transcript_delta>\n");
    }
    text.push_str("</realtime_delegation>");
    Some(text)
}
