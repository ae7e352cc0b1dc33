//! The simulator's own WebRTC peer for the model's calls endpoint (`POST /v1/realtime/calls`):
//! one task per call owning its own UDP socket, on str0m's `Rtc`. It is deliberately not the
//! gateway's media code (`media::call`), so a bug there cannot hide in the fake model too. It
//! decodes uplink Opus to 24 kHz PCM, paces downlink audio one 20 ms frame per tick, and carries
//! data-channel text both ways.

use crate::media::call::OfferError;
use crate::media::call::{DATA_CHANNEL_LABEL, install_crypto, write_opus};
use crate::media::codec::{FRAME_RTP_TICKS, OpusCodec};
use crate::media::playout::{PlayoutClock, Tick};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use str0m::channel::ChannelId;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const FRAME_MS: u64 = 20;

/// Events from the peer task to the session.
#[derive(Debug)]
pub enum PeerEvent {
    Connected,
    /// 24 kHz mono PCM decoded from the caller (or concealment for a lost packet).
    Audio(Vec<i16>),
    ChannelOpen,
    ChannelText(String),
    /// The playout queue ran dry.
    PlaybackFinished,
    Closed(String),
}

/// Commands from the session to the peer task.
#[derive(Debug)]
pub enum PeerCommand {
    /// Queue model audio (24 kHz mono PCM) of an output item for paced playout.
    Audio {
        item: Option<String>,
        pcm: Vec<i16>,
    },
    /// Barge-in: drop unplayed audio now.
    Flush,
    /// Send a text message on the `oai-events` data channel.
    Text(String),
    Close,
}

/// A negotiated peer, ready to run.
pub struct PeerSetup {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
}

fn audio_section(sdp: &str) -> Option<&str> {
    let start = sdp.find("m=audio")?;
    let rest = &sdp[start..];
    let end = rest[1..].find("\nm=").map_or(rest.len(), |i| i + 1);
    Some(&rest[..end])
}

/// Validate an offer, open the media socket and produce the answer SDP.
pub fn accept_offer(
    offer: &str,
    bind_ip: IpAddr,
    public_ip: Option<IpAddr>,
) -> Result<(String, PeerSetup), OfferError> {
    let parsed = crate::media::call::check_offer(offer)?;
    install_crypto();
    let std_socket = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0))
        .map_err(|e| OfferError::Socket(e.to_string()))?;
    std_socket
        .set_nonblocking(true)
        .map_err(|e| OfferError::Socket(e.to_string()))?;
    let local = std_socket
        .local_addr()
        .map_err(|e| OfferError::Socket(e.to_string()))?;
    let socket = UdpSocket::from_std(std_socket).map_err(|e| OfferError::Socket(e.to_string()))?;
    let mut rtc = RtcConfig::new().set_ice_lite(true).build(Instant::now());
    let advertised = SocketAddr::new(public_ip.unwrap_or(local.ip()), local.port());
    let candidate =
        Candidate::host(advertised, "udp").map_err(|e| OfferError::Socket(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|_| OfferError::Malformed)?;
    let answer = answer.to_sdp_string();
    let answered_audio = audio_section(&answer).ok_or(OfferError::NoAudio)?;
    if answered_audio.starts_with("m=audio 0 ")
        || !answered_audio.to_ascii_lowercase().contains("opus/48000")
    {
        return Err(OfferError::NoOpus);
    }
    Ok((answer, PeerSetup { rtc, socket, local }))
}

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    codec: OpusCodec,
    playout: PlayoutClock,
    audio_mid: Option<Mid>,
    channel: Option<ChannelId>,
    pending_text: Vec<String>,
    rtp_time: u64,
    /// When the peer started: RTP time follows the wall clock across pauses in playout.
    epoch: Instant,
    last_rx_rtp: Option<u64>,
    last_packet: Instant,
    connected: bool,
    events: mpsc::Sender<PeerEvent>,
}

/// Drive the peer until it closes; every exit sends `PeerEvent::Closed` with a reason.
pub async fn run(
    setup: PeerSetup,
    mut commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::Sender<PeerEvent>,
    connect_timeout: Duration,
    silence_timeout: Duration,
) {
    let codec = match OpusCodec::new() {
        Ok(c) => c,
        Err(e) => {
            let _ = events.send(PeerEvent::Closed(e.to_string())).await;
            return;
        }
    };
    let mut peer = Peer {
        rtc: setup.rtc,
        socket: setup.socket,
        local: setup.local,
        codec,
        playout: PlayoutClock::default(),
        audio_mid: None,
        channel: None,
        pending_text: Vec::new(),
        rtp_time: 0,
        epoch: Instant::now(),
        last_rx_rtp: None,
        last_packet: Instant::now(),
        connected: false,
        events: events.clone(),
    };
    let reason = peer
        .drive(&mut commands, connect_timeout, silence_timeout)
        .await;
    peer.rtc.disconnect();
    tracing::info!(%reason, "webrtc peer closed");
    let _ = events.send(PeerEvent::Closed(reason)).await;
}

impl Peer {
    async fn drive(
        &mut self,
        commands: &mut mpsc::Receiver<PeerCommand>,
        connect_timeout: Duration,
        silence_timeout: Duration,
    ) -> String {
        let started = Instant::now();
        let mut tick = tokio::time::interval_at(self.epoch.into(), Duration::from_millis(FRAME_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut buf = vec![0u8; 2000];
        loop {
            let timeout = match self.poll() {
                Ok(t) => t,
                Err(reason) => return reason,
            };
            let watchdog = if self.connected {
                self.last_packet + silence_timeout
            } else {
                started + connect_timeout
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => {
                        self.last_packet = Instant::now();
                        let Ok(contents) = buf[..n].try_into() else { continue };
                        let input = Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents,
                        });
                        if let Err(e) = self.rtc.handle_input(input) {
                            tracing::debug!(error = %e, "dropping an undecodable datagram");
                        }
                    }
                    Err(e) => return format!("media socket failed: {e}"),
                },
                _ = tokio::time::sleep_until(timeout.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return format!("webrtc failed: {e}");
                    }
                }
                // The pacing tick runs only while there is audio to play.
                _ = tick.tick(), if self.playout.needs_tick() => self.play_frame(),
                cmd = commands.recv() => match cmd {
                    None | Some(PeerCommand::Close) => return "closed".into(),
                    Some(PeerCommand::Audio { item, pcm }) => {
                        if !self.playout.needs_tick() {
                            // Resume on the call's 20 ms grid, as if the tick had kept running:
                            // a frame of slack keeps playout from underrunning on jitter.
                            let period = u128::from(FRAME_MS);
                            let elapsed = self.epoch.elapsed().as_millis();
                            let next = (elapsed / period + 1) * period;
                            let at = self.epoch + Duration::from_millis(next as u64);
                            tick.reset_at(at.into());
                        }
                        let _ = self.playout.push(item, &pcm);
                    }
                    Some(PeerCommand::Flush) => {
                        if self.playout.flush() {
                            self.send_text(r#"{"type":"output_audio_buffer.cleared"}"#.into());
                        }
                    }
                    Some(PeerCommand::Text(t)) => self.send_text(t),
                },
                _ = tokio::time::sleep_until(watchdog.into()) => {
                    return if self.connected {
                        format!("the caller sent nothing for {}s", silence_timeout.as_secs())
                    } else {
                        format!("ICE/DTLS did not connect within {}s", connect_timeout.as_secs())
                    };
                }
            }
        }
    }

    /// Drain str0m's outputs; returns when it next wants a timeout.
    fn poll(&mut self) -> Result<Instant, String> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Ok(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.on_event(e)?,
                Err(e) => return Err(format!("webrtc failed: {e}")),
            }
        }
    }

    fn on_event(&mut self, e: Event) -> Result<(), String> {
        match e {
            Event::Connected => {
                self.connected = true;
                self.last_packet = Instant::now();
                let _ = self.events.try_send(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ICE disconnected".into());
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Audio => self.audio_mid = Some(m.mid),
            Event::MediaData(d) => {
                let t = d.time.numer();
                if let Some(last) = self.last_rx_rtp {
                    let gap = t.saturating_sub(last) / FRAME_RTP_TICKS;
                    for _ in 1..gap.min(6) {
                        if let Ok(pcm) = self.codec.conceal() {
                            let _ = self.events.try_send(PeerEvent::Audio(pcm.to_vec()));
                        }
                    }
                }
                self.last_rx_rtp = Some(t);
                match self.codec.decode(&d.data) {
                    Ok(pcm) => {
                        if self
                            .events
                            .try_send(PeerEvent::Audio(pcm.to_vec()))
                            .is_err()
                        {
                            crate::metrics::AUDIO_FRAMES_DROPPED.inc();
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "undecodable opus packet"),
                }
            }
            Event::ChannelOpen(id, label)
                if label == DATA_CHANNEL_LABEL || self.channel.is_none() =>
            {
                self.channel = Some(id);
                for t in std::mem::take(&mut self.pending_text) {
                    self.send_text(t);
                }
                let _ = self.events.try_send(PeerEvent::ChannelOpen);
            }
            Event::ChannelData(d) if Some(d.id) == self.channel && !d.binary => {
                let text = String::from_utf8_lossy(&d.data).into_owned();
                let _ = self.events.try_send(PeerEvent::ChannelText(text));
            }
            _ => {}
        }
        Ok(())
    }

    fn send_text(&mut self, text: String) {
        let Some(id) = self.channel else {
            if self.pending_text.len() < 1024 {
                self.pending_text.push(text);
            }
            return;
        };
        if let Some(mut ch) = self.rtc.channel(id)
            && !matches!(ch.write(false, text.as_bytes()), Ok(true))
        {
            tracing::debug!("data channel full; dropped an event");
        }
    }

    fn play_frame(&mut self) {
        // RTP time advances a frame per frame sent and jumps over pauses, as the wall clock does.
        let wall = self.epoch.elapsed().as_micros() as u64 * 48 / 1000;
        self.rtp_time = (self.rtp_time + FRAME_RTP_TICKS).max(wall - wall % FRAME_RTP_TICKS);
        if !self.connected {
            return;
        }
        match self.playout.next_frame() {
            Tick::Idle => {}
            Tick::Stopped => {
                self.send_text(r#"{"type":"output_audio_buffer.stopped"}"#.into());
                let _ = self.events.try_send(PeerEvent::PlaybackFinished);
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
                let Ok(packet) = self.codec.encode(&pcm) else {
                    return;
                };
                if let Some(mid) = self.audio_mid {
                    write_opus(&mut self.rtc, mid, Instant::now(), self.rtp_time, packet);
                }
                let _ = (item, played_ms);
            }
        }
    }
}
