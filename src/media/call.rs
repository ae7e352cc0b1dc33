//! `CallMedia`: the media state of one WebRTC call voxgate terminates (relay mode), sans-IO.
//! It owns the str0m `Rtc` (ICE-lite, DTLS-SRTP, one Opus m-line, the `oai-events` data
//! channel), the Opus codec at the model's 24 kHz, the downlink [`PlayoutClock`] and every media
//! deadline: str0m's own timers, the 20 ms pacing tick, ICE/DTLS connect and caller silence.
//! Datagrams and time come in as calls; transmits and [`MediaEvent`]s go out through
//! `poll_transmit`/`poll_event`. It owns no socket and reads no clock. Every mutation of the
//! `Rtc` is followed by a full drain of its outputs (str0m's rule). Raw SDP is never logged.

use super::codec::{FRAME_RTP_TICKS, OpusCodec};
pub use super::offer::{LOGGED_CODECS, OfferError, check_offer, describe_offer};
use super::offer::{audio_section, fingerprints};
use super::playout::{PlayoutClock, Tick};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

pub const DATA_CHANNEL_LABEL: &str = "oai-events";
pub const FRAME: Duration = Duration::from_millis(20);
/// Data-channel events kept while the channel is not open yet; older ones beyond are dropped.
const PENDING_TEXT_LIMIT: usize = 256;
/// Consecutive lost uplink frames concealed at most.
const MAX_CONCEALED: u64 = 5;

/// What the call reports to its session.
#[derive(Debug, PartialEq)]
pub enum MediaEvent {
    Connected,
    /// 24 kHz mono PCM decoded from the caller (or concealment for a lost packet).
    Audio(Vec<i16>),
    ChannelOpen,
    ChannelText(String),
    /// The playout queue ran dry after playing.
    PlaybackFinished,
    /// The call is over (ICE gone, timeouts, DTLS failure); nothing more will come.
    Closed(String),
}

/// A datagram to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Timeouts of a call's media.
#[derive(Debug, Clone, Copy)]
pub struct MediaTimeouts {
    /// ICE/DTLS must connect within this.
    pub connect: Duration,
    /// A connected caller that sends nothing for this long is gone.
    pub silence: Duration,
    /// A caller whose ICE connection dropped has this long to come back (its network blinked,
    /// it moved between networks) before the call ends; zero: the call ends at once.
    pub ice_grace: Duration,
}

pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// A random ICE username fragment: the key datagrams of a call are routed by.
pub fn new_ufrag() -> String {
    format!("vx{:016x}", rand::random::<u64>())
}

pub struct CallMedia {
    rtc: Rtc,
    /// The local address datagrams arrive on (the shared media port).
    local: SocketAddr,
    ufrag: String,
    /// The caller's DTLS fingerprints from its first offer.
    fingerprints: Vec<String>,
    codec: OpusCodec,
    playout: PlayoutClock,
    audio_mid: Option<Mid>,
    channel: Option<ChannelId>,
    pending_text: VecDeque<String>,
    /// The grid pacing ticks fall on (shared by every call, so their ticks coincide).
    grid: Instant,
    rtp_time: u64,
    next_tick: Option<Instant>,
    rtc_timeout: Instant,
    last_rx_rtp: Option<u64>,
    last_packet: Instant,
    started: Instant,
    connected: bool,
    /// The latest instant the call was driven at.
    now: Instant,
    /// When the caller's ICE connection dropped, while it has not come back.
    ice_lost_at: Option<Instant>,
    timeouts: MediaTimeouts,
    /// The played position of the item now playing, written since the session last looked.
    played: Option<(String, u64)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MediaEvent>,
    closed: bool,
}

impl CallMedia {
    /// Answer `offer`: media will arrive on `local` and is advertised as `advertised` in the
    /// answer's one host candidate; ICE uses `ufrag` as its local username fragment.
    pub fn accept(
        offer: &str,
        local: SocketAddr,
        advertised: SocketAddr,
        ufrag: String,
        grid: Instant,
        timeouts: MediaTimeouts,
        now: Instant,
    ) -> Result<(String, CallMedia), OfferError> {
        let parsed = check_offer(offer)?;
        install_crypto();
        let codec = OpusCodec::new().map_err(|e| OfferError::Socket(e.to_string()))?;
        let creds = IceCreds {
            ufrag: ufrag.clone(),
            pass: format!("{:032x}", rand::random::<u128>()),
        };
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .build(now);
        let candidate =
            Candidate::host(advertised, "udp").map_err(|e| OfferError::Socket(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|_| OfferError::Malformed)?
            .to_sdp_string();
        let answered_audio = audio_section(&answer).ok_or(OfferError::NoAudio)?;
        if answered_audio.starts_with("m=audio 0 ")
            || !answered_audio.to_ascii_lowercase().contains("opus/48000")
        {
            return Err(OfferError::NoOpus);
        }
        let mut media = CallMedia {
            rtc,
            local,
            ufrag,
            fingerprints: fingerprints(offer),
            codec,
            playout: PlayoutClock::default(),
            audio_mid: None,
            channel: None,
            pending_text: VecDeque::new(),
            grid,
            rtp_time: 0,
            next_tick: None,
            rtc_timeout: now,
            last_rx_rtp: None,
            last_packet: now,
            started: now,
            connected: false,
            now,
            ice_lost_at: None,
            timeouts,
            played: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closed: false,
        };
        media.drain();
        Ok((answer, media))
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// A new offer from the caller on the live call — an ICE restart (`pc.restartIce()`, after
    /// its network changed or its ICE failed) or a renegotiation of the same media — answered by
    /// the same peer: the DTLS session, the data channel and the playout go on. After an ICE
    /// restart the answer carries a new local username fragment ([`CallMedia::ufrag`]), which
    /// the caller's checks are addressed (and must be routed) by.
    pub fn renegotiate(&mut self, now: Instant, offer: &str) -> Result<String, OfferError> {
        if self.closed {
            return Err(OfferError::Ended);
        }
        let parsed = check_offer(offer)?;
        if fingerprints(offer) != self.fingerprints {
            // Another DTLS identity: not this caller's peer.
            return Err(OfferError::Mismatch);
        }
        self.now = self.now.max(now);
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(parsed)
            .map_err(|e| {
                tracing::debug!(error = %e, "renegotiation refused");
                OfferError::Mismatch
            })?
            .to_sdp_string();
        if let Some(ufrag) = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(str::trim)
            .filter(|u| *u != self.ufrag)
        {
            tracing::info!("the caller restarted ICE");
            self.ufrag = ufrag.to_owned();
        }
        self.drain();
        Ok(answer)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A datagram from `source` arrived at `now`.
    pub fn receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) {
        if self.closed {
            return;
        }
        self.last_packet = now;
        self.now = self.now.max(now);
        let Ok(contents) = contents.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            tracing::debug!(error = %e, "dropping an undecodable datagram");
        }
        self.drain();
    }

    /// When the call next needs `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let watchdog = if self.connected {
            self.last_packet + self.timeouts.silence
        } else {
            self.started + self.timeouts.connect
        };
        let mut at = self.rtc_timeout.min(watchdog);
        if let Some(lost) = self.ice_lost_at {
            at = at.min(lost + self.timeouts.ice_grace);
        }
        if let Some(tick) = self.next_tick {
            at = at.min(tick);
        }
        Some(at)
    }

    /// Time moved to `now`: run str0m's timers, due pacing ticks and the watchdogs.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.now = self.now.max(now);
        // The watchdogs first: their reason is the clearest one when str0m would notice too.
        if self
            .ice_lost_at
            .is_some_and(|lost| now >= lost + self.timeouts.ice_grace)
        {
            return self.close(format!(
                "ICE disconnected and did not come back within {}s",
                self.timeouts.ice_grace.as_secs()
            ));
        }
        if self.connected && now >= self.last_packet + self.timeouts.silence {
            return self.close(format!(
                "the caller sent nothing for {}s",
                self.timeouts.silence.as_secs()
            ));
        }
        if !self.connected && now >= self.started + self.timeouts.connect {
            return self.close(format!(
                "ICE/DTLS did not connect within {}s",
                self.timeouts.connect.as_secs()
            ));
        }
        if now >= self.rtc_timeout {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                return self.close(format!("webrtc failed: {e}"));
            }
            self.drain();
        }
        while let Some(tick) = self.next_tick.filter(|t| *t <= now) {
            self.play_frame(tick);
            self.next_tick = self.playout.needs_tick().then_some(tick + FRAME);
        }
    }

    /// Queue model audio (24 kHz mono PCM) of an output item for paced playout. False when the
    /// playout queue is full and the audio was dropped.
    pub fn queue_audio(&mut self, now: Instant, item: Option<String>, pcm: &[i16]) -> bool {
        if self.closed {
            return true;
        }
        if !self.playout.push(item, pcm) {
            return false;
        }
        if self.next_tick.is_none() && self.playout.needs_tick() {
            // Resume on the shared 20 ms grid, a frame ahead: the slack keeps playout from
            // underrunning on jitter, and every call's ticks fall on the same instants.
            let frame = FRAME.as_micros();
            let elapsed = now.saturating_duration_since(self.grid).as_micros();
            let next = (elapsed / frame + 1) * frame;
            self.next_tick = Some(self.grid + Duration::from_micros(next as u64));
        }
        true
    }

    /// Barge-in: drop unplayed audio now (tells the caller `output_audio_buffer.cleared`).
    pub fn flush(&mut self) {
        if self.playout.flush() {
            self.send_text(r#"{"type":"output_audio_buffer.cleared"}"#.into());
        }
    }

    /// What the caller has heard of the item now playing, if it moved since the last look.
    pub fn take_played(&mut self) -> Option<(String, u64)> {
        self.played.take()
    }

    /// Send a text message on the `oai-events` data channel (kept until it opens).
    pub fn send_text(&mut self, text: String) {
        let Some(id) = self.channel else {
            if self.pending_text.len() >= PENDING_TEXT_LIMIT {
                self.pending_text.pop_front();
            }
            self.pending_text.push_back(text);
            return;
        };
        if let Some(mut ch) = self.rtc.channel(id)
            && !matches!(ch.write(false, text.as_bytes()), Ok(true))
        {
            tracing::debug!("data channel full; dropped an event");
        }
        self.drain();
    }

    /// Hang up: `farewell` (if any) goes out on the data channel, then the peer closes
    /// gracefully — RTCP BYE, SCTP shutdown and a DTLS close_notify — so the caller knows at once.
    pub fn hang_up(&mut self, farewell: Option<String>) {
        if self.closed {
            return;
        }
        if let Some(text) = farewell.filter(|_| self.channel.is_some()) {
            self.send_text(text);
        }
        if let Err(e) = self.rtc.close() {
            tracing::debug!(error = %e, "webrtc close failed");
        }
        self.pending_text.clear();
        self.drain();
        self.closed = true;
        self.next_tick = None;
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    fn close(&mut self, reason: String) {
        if self.closed {
            return;
        }
        self.rtc.disconnect();
        self.drain();
        self.closed = true;
        self.next_tick = None;
        self.events.push_back(MediaEvent::Closed(reason));
    }

    /// Drain str0m's outputs until it asks for a timeout; then write the next event that waited
    /// for the data channel to open, if any, and drain again (one mutation, one full drain).
    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    let Some(id) = self.channel.filter(|_| !self.pending_text.is_empty()) else {
                        return;
                    };
                    if let Some(text) = self.pending_text.pop_front()
                        && let Some(mut ch) = self.rtc.channel(id)
                        && !matches!(ch.write(false, text.as_bytes()), Ok(true))
                    {
                        tracing::debug!("data channel full; dropped an event");
                    }
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Transmit {
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Ok(Output::Event(e)) => {
                    if let Err(reason) = self.on_event(e) {
                        self.close(reason);
                        return;
                    }
                }
                Err(e) => {
                    self.close(format!("webrtc failed: {e}"));
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), String> {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(MediaEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if self.timeouts.ice_grace.is_zero() {
                    return Err("ICE disconnected".into());
                }
                if self.ice_lost_at.is_none() {
                    tracing::info!(
                        grace_secs = self.timeouts.ice_grace.as_secs(),
                        "the caller's ICE connection dropped; waiting for it to come back"
                    );
                    self.ice_lost_at = Some(self.now);
                }
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if self.ice_lost_at.is_some() => {
                self.ice_lost_at = None;
                tracing::info!("the caller's ICE connection is back");
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio => self.audio_mid = Some(m.mid),
            Event::MediaData(d) => {
                let t = d.time.numer();
                if let Some(last) = self.last_rx_rtp {
                    let gap = t.saturating_sub(last) / FRAME_RTP_TICKS;
                    for _ in 1..gap.min(MAX_CONCEALED + 1) {
                        if let Ok(pcm) = self.codec.conceal() {
                            self.events.push_back(MediaEvent::Audio(pcm.to_vec()));
                        }
                    }
                }
                self.last_rx_rtp = Some(t);
                match self.codec.decode(&d.data) {
                    Ok(pcm) => self.events.push_back(MediaEvent::Audio(pcm.to_vec())),
                    Err(e) => tracing::debug!(error = %e, "undecodable opus packet"),
                }
            }
            Event::ChannelOpen(id, label)
                if label == DATA_CHANNEL_LABEL || self.channel.is_none() =>
            {
                // What waited for the channel is written once this drain is done, one message
                // per mutation (see `drain`).
                self.channel = Some(id);
                self.events.push_back(MediaEvent::ChannelOpen);
            }
            Event::ChannelData(d) if Some(d.id) == self.channel && !d.binary => {
                let text = String::from_utf8_lossy(&d.data).into_owned();
                self.events.push_back(MediaEvent::ChannelText(text));
            }
            _ => {}
        }
        Ok(())
    }

    /// One pacing tick at `at`: the next 20 ms of playout, encoded and written as RTP.
    fn play_frame(&mut self, at: Instant) {
        // RTP time advances a frame per frame sent and jumps over pauses, as the wall clock does.
        let wall = at.saturating_duration_since(self.grid).as_micros() as u64 * 48 / 1000;
        self.rtp_time = (self.rtp_time + FRAME_RTP_TICKS).max(wall - wall % FRAME_RTP_TICKS);
        if !self.connected {
            return;
        }
        match self.playout.next_frame() {
            Tick::Idle => {}
            Tick::Stopped => {
                self.send_text(r#"{"type":"output_audio_buffer.stopped"}"#.into());
                self.events.push_back(MediaEvent::PlaybackFinished);
            }
            Tick::Frame {
                pcm,
                item,
                played_ms,
                started,
            } => {
                if started {
                    self.send_text(r#"{"type":"output_audio_buffer.started"}"#.into());
                }
                if let Ok(packet) = self.codec.encode(&pcm) {
                    self.write_rtp(at, packet);
                }
                if let Some(item) = item {
                    self.played = Some((item, played_ms));
                }
            }
        }
    }

    fn write_rtp(&mut self, at: Instant, packet: Vec<u8>) {
        if let Some(mid) = self.audio_mid {
            write_opus(&mut self.rtc, mid, at, self.rtp_time, packet);
        }
        self.drain();
    }
}

/// Write one Opus packet on `mid` at RTP time `rtp_time` (Opus's 48 kHz RTP clock), with the
/// payload type the peers negotiated. Nothing is written before Opus is negotiated. (Drain the
/// `Rtc`'s output after this: it is a mutation.)
pub fn write_opus(rtc: &mut Rtc, mid: Mid, at: Instant, rtp_time: u64, packet: Vec<u8>) {
    let pt = rtc.writer(mid).and_then(|w| {
        w.payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
    });
    if let Some(pt) = pt
        && let Some(writer) = rtc.writer(mid)
    {
        let time = MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ);
        if let Err(e) = writer.write(pt, at, time, packet) {
            tracing::debug!(error = %e, "rtp write failed");
        }
    }
}
