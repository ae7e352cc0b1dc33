//! What voxgate accepts of a caller's SDP offer before any media work (Opus audio, full DTLS
//! fingerprints, str0m-parsable), why it refuses one (`OfferError`, never echoing the SDP), and
//! the only description of an offer that may be logged (`describe_offer`: counts and bounded,
//! escaped codec names).

use str0m::change::SdpOffer;

/// Why an offer was refused (400, OpenAI-shaped; never echoes the SDP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not valid SDP")]
    Malformed,
    #[error("the offer has no audio m-line")]
    NoAudio,
    #[error("the offer's audio supports no codec voxgate speaks (Opus 48 kHz is required)")]
    NoOpus,
    #[error("the offer's DTLS fingerprint is not a full sha-256, sha-384 or sha-512 hash")]
    Fingerprint,
    #[error("could not set up media: {0}")]
    Socket(String),
    #[error("the offer does not fit the call's media (a renegotiation keeps its m-lines)")]
    Mismatch,
    #[error("the call has ended")]
    Ended,
    #[error("voxgate does not terminate this call's media (passthrough): the upstream does")]
    NotRelayed,
}

/// Counts of an offer, safe to log (no credentials, no fingerprints). Codec names are the
/// caller's text: at most [`LOGGED_CODECS`] of them, each cut to 16 characters of
/// `[A-Za-z0-9._-]` (anything else becomes `?`).
pub fn describe_offer(sdp: &str) -> String {
    let media = sdp.lines().filter(|l| l.starts_with("m=")).count();
    let candidates = sdp.lines().filter(|l| l.starts_with("a=candidate")).count();
    let all = sdp
        .lines()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|c| c.split('/').next());
    let codecs: Vec<String> = all
        .clone()
        .take(LOGGED_CODECS)
        .map(|c| {
            c.chars()
                .take(16)
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                        ch
                    } else {
                        '?'
                    }
                })
                .collect()
        })
        .collect();
    let more = all.count().saturating_sub(LOGGED_CODECS);
    let more = if more > 0 {
        format!(" (+{more} more)")
    } else {
        String::new()
    };
    format!(
        "{} bytes, {media} m-lines, {candidates} candidates, codecs {codecs:?}{more}",
        sdp.len()
    )
}

/// Codec names an offer's log line carries at most.
pub const LOGGED_CODECS: usize = 12;

/// The fingerprint hashes a DTLS peer may use: anything weaker or truncated is refused.
fn check_fingerprints(sdp: &str) -> Result<(), OfferError> {
    for line in sdp.lines() {
        let Some(fp) = line.trim_end().strip_prefix("a=fingerprint:") else {
            continue;
        };
        let (alg, hex) = fp.split_once(' ').ok_or(OfferError::Fingerprint)?;
        let bytes = match alg.to_ascii_lowercase().as_str() {
            "sha-256" => 32,
            "sha-384" => 48,
            "sha-512" => 64,
            _ => return Err(OfferError::Fingerprint),
        };
        let parts: Vec<&str> = hex.trim().split(':').collect();
        let valid = parts.len() == bytes
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            return Err(OfferError::Fingerprint);
        }
    }
    Ok(())
}

pub(super) fn audio_section(sdp: &str) -> Option<&str> {
    let start = sdp.find("m=audio")?;
    let rest = &sdp[start..];
    let end = rest[1..].find("\nm=").map_or(rest.len(), |i| i + 1);
    Some(&rest[..end])
}

/// Check an offer has Opus audio before any work is done on it.
pub fn check_offer(offer: &str) -> Result<SdpOffer, OfferError> {
    if !offer.trim_start().starts_with("v=0") {
        return Err(OfferError::Malformed);
    }
    let audio = audio_section(offer).ok_or(OfferError::NoAudio)?;
    if !audio.to_ascii_lowercase().contains("opus/48000") {
        return Err(OfferError::NoOpus);
    }
    check_fingerprints(offer)?;
    SdpOffer::from_sdp_string(offer).map_err(|_| OfferError::Malformed)
}

/// The DTLS fingerprints an offer names, normalised: a renegotiation must keep them.
pub(super) fn fingerprints(sdp: &str) -> Vec<String> {
    let mut all: Vec<String> = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=fingerprint:"))
        .map(str::to_ascii_lowercase)
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_chosen_codec_names_are_bounded_and_escaped_in_the_log_line() {
        let mut sdp = String::from("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
        sdp.push_str(&format!(
            "a=rtpmap:111 {}\u{1b}[31m/48000\r\n",
            "x".repeat(60_000)
        ));
        for i in 0..40 {
            sdp.push_str(&format!("a=rtpmap:{i} c{i}/8000\r\n"));
        }
        let line = describe_offer(&sdp);
        assert!(line.len() < 400, "{} bytes", line.len());
        assert!(!line.contains('\u{1b}'));
        assert!(line.contains("xxxxxxxxxxxxxxxx\""), "{line}");
        assert!(line.contains("(+29 more)"), "{line}");
    }

    #[test]
    fn weak_or_truncated_fingerprints_are_refused() {
        let full = vec!["AB"; 32].join(":");
        assert_eq!(
            check_fingerprints(&format!("a=fingerprint:sha-256 {full}\r\n")),
            Ok(())
        );
        let short = vec!["AB"; 20].join(":");
        for bad in [
            format!("a=fingerprint:md5 {}", vec!["AB"; 16].join(":")),
            format!("a=fingerprint:sha-1 {short}"),
            format!("a=fingerprint:sha-256 {short}"),
            "a=fingerprint:sha-256".to_owned(),
            format!("a=fingerprint:sha-256 {}", vec!["ZZ"; 32].join(":")),
        ] {
            assert_eq!(
                check_fingerprints(&bad),
                Err(OfferError::Fingerprint),
                "{bad}"
            );
        }
    }
}
