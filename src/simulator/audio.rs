//! Simulator audio helpers: a deterministic PCM16 24 kHz tone for the model's speech and the RMS
//! energy measure its voice-activity detector uses.

pub const SAMPLE_RATE: u32 = 24_000;

/// `ms` of a soft 220 Hz tone as PCM16LE bytes, starting at sample `offset` (phase-continuous).
pub fn tone(ms: u64, offset: u64) -> Vec<u8> {
    let n = ms * u64::from(SAMPLE_RATE) / 1000;
    let mut out = Vec::with_capacity((n * 2) as usize);
    for i in 0..n {
        let t = (offset + i) as f64 / f64::from(SAMPLE_RATE);
        let s = (t * 220.0 * std::f64::consts::TAU).sin() * 6000.0;
        out.extend_from_slice(&(s as i16).to_le_bytes());
    }
    out
}

/// Root-mean-square of PCM16LE samples (0 for empty input).
pub fn rms(pcm: &[u8]) -> u32 {
    let samples = pcm.len() / 2;
    if samples == 0 {
        return 0;
    }
    let sum: f64 = pcm
        .chunks_exact(2)
        .map(|b| {
            let s = f64::from(i16::from_le_bytes([b[0], b[1]]));
            s * s
        })
        .sum();
    (sum / samples as f64).sqrt() as u32
}

/// Duration in milliseconds of `bytes` of 24 kHz mono PCM16.
pub fn duration_ms(bytes: usize) -> u64 {
    (bytes as u64 / 2) * 1000 / u64::from(SAMPLE_RATE)
}
