//! `OpusCodec`: Opus ↔ PCM16 at 24 kHz mono, the model's native format. libopus decodes the
//! browser's 48 kHz Opus straight to 24 kHz and encodes 24 kHz PCM directly (the RTP clock stays
//! 48 kHz per RFC 7587), so no separate resampler is needed. Lost packets are concealed (PLC).

/// Samples per 20 ms frame at 24 kHz.
pub const FRAME_SAMPLES: usize = 480;
/// RTP clock ticks per 20 ms frame (Opus RTP clock is always 48 kHz).
pub const FRAME_RTP_TICKS: u64 = 960;
pub const SAMPLE_RATE: u32 = 24_000;

pub struct OpusCodec {
    decoder: opus::Decoder,
    encoder: opus::Encoder,
    pcm: Vec<i16>,
    packet: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

impl OpusCodec {
    pub fn new() -> Result<Self, CodecError> {
        let decoder = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)
            .map_err(|e| CodecError(e.to_string()))?;
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)
                .map_err(|e| CodecError(e.to_string()))?;
        // Complexity 10 (the best quality) is also the cheapest setting measured for 24 kHz VOIP
        // speech here: 71 µs per 20 ms frame vs 190 µs at 5 (`cargo bench --bench media`).
        let _ = encoder.set_complexity(10);
        Ok(Self {
            decoder,
            encoder,
            pcm: vec![0; FRAME_SAMPLES * 6],
            packet: vec![0; 1500],
        })
    }

    /// Decode one RTP payload to 24 kHz PCM (up to 120 ms).
    pub fn decode(&mut self, payload: &[u8]) -> Result<&[i16], CodecError> {
        let n = self
            .decoder
            .decode(payload, &mut self.pcm, false)
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(&self.pcm[..n])
    }

    /// Conceal one lost 20 ms frame.
    pub fn conceal(&mut self) -> Result<&[i16], CodecError> {
        let n = self
            .decoder
            .decode(&[], &mut self.pcm[..FRAME_SAMPLES], false)
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(&self.pcm[..n])
    }

    /// Encode exactly one 20 ms frame (480 samples).
    pub fn encode(&mut self, frame: &[i16]) -> Result<Vec<u8>, CodecError> {
        let n = self
            .encoder
            .encode(frame, &mut self.packet)
            .map_err(|e| CodecError(e.to_string()))?;
        Ok(self.packet[..n].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_encode_and_decode() {
        let mut c = OpusCodec::new().expect("codec");
        let mut energy_in = 0f64;
        let mut energy_out = 0f64;
        for f in 0..25 {
            let frame: Vec<i16> = (0..FRAME_SAMPLES)
                .map(|i| {
                    let t = (f * FRAME_SAMPLES + i) as f64 / 24_000.0;
                    ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16
                })
                .collect();
            energy_in += frame.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            let packet = c.encode(&frame).expect("encode");
            assert!(!packet.is_empty() && packet.len() < 400);
            let pcm = c.decode(&packet).expect("decode");
            assert_eq!(pcm.len(), FRAME_SAMPLES);
            energy_out += pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
        }
        let ratio = energy_out / energy_in;
        assert!((0.5..1.5).contains(&ratio), "energy ratio {ratio}");
        assert_eq!(c.conceal().expect("plc").len(), FRAME_SAMPLES);
    }
}
