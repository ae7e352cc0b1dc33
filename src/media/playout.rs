//! `PlayoutClock`: the downlink queue of model audio for one WebRTC call. Audio is queued as it
//! arrives (faster than real time), taken out one 20 ms frame per tick, and the clock knows how
//! much of each output item was actually played, so a barge-in can flush the rest at once and
//! truncate at the played position. Sans-IO: `CallMedia` calls `next_frame` on its 20 ms tick.
//! The queue holds at most [`MAX_QUEUED_MS`] of audio; a model that sends more is cut (counted).

use super::codec::{FRAME_SAMPLES, SAMPLE_RATE};
use std::collections::VecDeque;

/// Most audio queued for playout: two minutes, far beyond any one reply.
pub const MAX_QUEUED_MS: u64 = 120_000;
const MAX_QUEUED_SAMPLES: usize = (MAX_QUEUED_MS * SAMPLE_RATE as u64 / 1000) as usize;

#[derive(Debug, Default)]
pub struct PlayoutClock {
    samples: VecDeque<i16>,
    /// Queued runs of samples per output item, in order.
    segments: VecDeque<(Option<String>, usize)>,
    /// Item currently playing and how many of its samples were played.
    playing: Option<(Option<String>, u64)>,
    /// True while audio is being played (for `output_audio_buffer.started/stopped`).
    active: bool,
}

/// What a tick produced.
#[derive(Debug, PartialEq)]
pub enum Tick {
    /// A frame to send, of `item`, with that item's played position after this frame.
    Frame {
        pcm: Vec<i16>,
        item: Option<String>,
        played_ms: u64,
        started: bool,
    },
    /// The queue ran dry after playing.
    Stopped,
    Idle,
}

impl PlayoutClock {
    /// Queue audio of `item`; false (and nothing queued) when the queue is full.
    pub fn push(&mut self, item: Option<String>, pcm: &[i16]) -> bool {
        if pcm.is_empty() {
            return true;
        }
        if self.samples.len() + pcm.len() > MAX_QUEUED_SAMPLES {
            return false;
        }
        self.samples.extend(pcm.iter().copied());
        match self.segments.back_mut() {
            Some((id, n)) if *id == item => *n += pcm.len(),
            _ => self.segments.push_back((item, pcm.len())),
        }
        true
    }

    /// True while there is audio to play or a `Stopped` still to report: the pacing tick only
    /// needs to run then.
    pub fn needs_tick(&self) -> bool {
        self.active || !self.samples.is_empty()
    }

    pub fn queued_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }

    /// Take the next 20 ms frame (padded with silence at the end of the queue).
    pub fn next_frame(&mut self) -> Tick {
        if self.samples.is_empty() {
            if std::mem::take(&mut self.active) {
                return Tick::Stopped;
            }
            return Tick::Idle;
        }
        let started = !self.active;
        self.active = true;
        let n = FRAME_SAMPLES.min(self.samples.len());
        let mut pcm: Vec<i16> = self.samples.drain(..n).collect();
        pcm.resize(FRAME_SAMPLES, 0);
        // Attribute the samples to items, front first.
        let mut left = n;
        let mut item = None;
        while left > 0 {
            let Some((id, count)) = self.segments.front_mut() else {
                break;
            };
            let take = left.min(*count);
            *count -= take;
            left -= take;
            item = id.clone();
            match &mut self.playing {
                Some((pid, played)) if *pid == *id => *played += take as u64,
                _ => self.playing = Some((id.clone(), take as u64)),
            }
            if *count == 0 {
                self.segments.pop_front();
            }
        }
        let played_ms = self
            .playing
            .as_ref()
            .map_or(0, |(_, p)| p * 1000 / u64::from(SAMPLE_RATE));
        Tick::Frame {
            pcm,
            item,
            played_ms,
            started,
        }
    }

    /// Played position of `item`, if it is the one playing or last played.
    pub fn played_ms(&self, item: &str) -> Option<u64> {
        match &self.playing {
            Some((Some(id), p)) if id == item => Some(p * 1000 / u64::from(SAMPLE_RATE)),
            _ => None,
        }
    }

    /// Drop everything not yet played (barge-in); returns whether anything was dropped.
    pub fn flush(&mut self) -> bool {
        let had = !self.samples.is_empty();
        self.samples.clear();
        self.segments.clear();
        had
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_20ms_steps_and_track_the_played_position() {
        let mut p = PlayoutClock::default();
        p.push(Some("a".into()), &vec![1; 1200]); // 50 ms
        let Tick::Frame {
            played_ms, started, ..
        } = p.next_frame()
        else {
            panic!()
        };
        assert_eq!((played_ms, started), (20, true));
        let Tick::Frame {
            played_ms, started, ..
        } = p.next_frame()
        else {
            panic!()
        };
        assert_eq!((played_ms, started), (40, false));
        let Tick::Frame { pcm, played_ms, .. } = p.next_frame() else {
            panic!()
        };
        assert_eq!(played_ms, 50);
        assert_eq!(pcm.len(), 480);
        assert_eq!(pcm[239], 1);
        assert_eq!(pcm[240], 0, "padded with silence");
        assert_eq!(p.next_frame(), Tick::Stopped);
        assert_eq!(p.next_frame(), Tick::Idle);
        assert_eq!(p.played_ms("a"), Some(50));
    }

    #[test]
    fn a_new_item_restarts_the_position_and_flush_drops_the_rest() {
        let mut p = PlayoutClock::default();
        p.push(Some("a".into()), &[1; 480]);
        p.push(Some("b".into()), &[2; 4800]);
        p.next_frame();
        let Tick::Frame {
            item, played_ms, ..
        } = p.next_frame()
        else {
            panic!()
        };
        assert_eq!((item.as_deref(), played_ms), (Some("b"), 20));
        assert!(p.flush());
        assert_eq!(p.queued_ms(), 0);
        assert_eq!(p.played_ms("b"), Some(20));
        assert_eq!(p.next_frame(), Tick::Stopped);
    }

    #[test]
    fn the_queue_refuses_audio_beyond_its_bound() {
        let mut p = PlayoutClock::default();
        let minute = vec![0i16; 24_000 * 60];
        assert!(p.push(None, &minute));
        assert!(p.push(None, &minute));
        assert!(!p.push(None, &[1; 480]), "two minutes is the bound");
        assert_eq!(p.queued_ms(), MAX_QUEUED_MS);
    }
}
