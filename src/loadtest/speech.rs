//! Synthetic speech for load: 20 ms PCM16 24 kHz frames of an amplitude-modulated harmonic buzz
//! (voice-like spectrum, loud enough for server VAD) and silence. Frames can carry a marker —
//! a magic value and a sequence number in their first samples — so an echoing model's copy of a
//! frame is recognised byte for byte and its round trip timed.

/// Samples per 20 ms frame at 24 kHz.
pub const FRAME_SAMPLES: usize = 480;
pub const FRAME_MS: u64 = 20;
const MAGIC: i16 = 0x5A5A;

/// The `index`-th speech frame of a voice with fundamental `f0_hz` (deterministic).
pub fn speech_frame(index: u64, f0_hz: f64) -> Vec<i16> {
    let mut out = Vec::with_capacity(FRAME_SAMPLES);
    for i in 0..FRAME_SAMPLES {
        let t = (index as f64 * FRAME_SAMPLES as f64 + i as f64) / 24_000.0;
        // Syllable-rate envelope (≈ 5 Hz) over a harmonic stack.
        let env = 0.45 + 0.55 * (t * 5.0 * std::f64::consts::TAU).sin().abs();
        let v: f64 = (1..=5)
            .map(|h| (t * f0_hz * h as f64 * std::f64::consts::TAU).sin() / h as f64)
            .sum();
        out.push((v * env * 7000.0) as i16);
    }
    out
}

pub fn silence_frame() -> Vec<i16> {
    vec![0; FRAME_SAMPLES]
}

/// Stamp `seq` into the frame's first three samples.
pub fn mark(frame: &mut [i16], seq: u32) {
    if frame.len() >= 3 {
        frame[0] = MAGIC;
        frame[1] = (seq & 0xFFFF) as u16 as i16;
        frame[2] = (seq >> 16) as u16 as i16;
    }
}

/// The sequence number a marked frame carries (PCM16LE bytes), if it is one.
pub fn read_mark(pcm: &[u8]) -> Option<u32> {
    if pcm.len() < 6 || i16::from_le_bytes([pcm[0], pcm[1]]) != MAGIC {
        return None;
    }
    let lo = u16::from_le_bytes([pcm[2], pcm[3]]) as u32;
    let hi = u16::from_le_bytes([pcm[4], pcm[5]]) as u32;
    Some(lo | (hi << 16))
}

pub fn to_bytes(frame: &[i16]) -> Vec<u8> {
    frame.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_frame_reads_back_its_sequence() {
        let mut f = speech_frame(3, 140.0);
        mark(&mut f, 0x0102_0304);
        assert_eq!(read_mark(&to_bytes(&f)), Some(0x0102_0304));
        assert_eq!(read_mark(&to_bytes(&speech_frame(3, 140.0))), None);
    }

    #[test]
    fn speech_is_loud_enough_for_vad_and_silence_is_silent() {
        let bytes = to_bytes(&speech_frame(0, 140.0));
        assert!(crate::simulator::audio::rms(&bytes) > 600);
        assert_eq!(crate::simulator::audio::rms(&to_bytes(&silence_frame())), 0);
    }
}
