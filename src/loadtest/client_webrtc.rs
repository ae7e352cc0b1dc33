//! A synthetic WebRTC caller: a real str0m peer that offers Opus audio and the `oai-events` data
//! channel to `POST /v1/realtime/calls`, sends Opus at 20 ms pace over RTP (pre-encoded once per
//! run, so the load generator's CPU goes to networking, not encoding), counts the Opus it gets
//! back, talks on the data channel, and hangs up with `DELETE` at the end.

use super::session::{REPORT_EVERY_TICKS, SessionCtx, frame_interval, str_field};
use super::talker::Talker;
use crate::media::codec::{FRAME_RTP_TICKS, OpusCodec};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

/// One second of speech and a silence frame, Opus-encoded once for every caller.
pub struct OpusLoop {
    speech: Vec<Vec<u8>>,
    silence: Vec<u8>,
}

impl OpusLoop {
    pub fn new() -> Result<Self, String> {
        let mut codec = OpusCodec::new().map_err(|e| e.to_string())?;
        let speech = (0..50)
            .map(|i| codec.encode(&super::speech::speech_frame(i, 140.0)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        // Silence from a fresh encoder, settled: a packet encoded right after speech would carry
        // its decaying energy, and replaying it would sound like speech to the model's VAD.
        let mut quiet = OpusCodec::new().map_err(|e| e.to_string())?;
        let mut silence = Vec::new();
        for _ in 0..10 {
            silence = quiet
                .encode(&super::speech::silence_frame())
                .map_err(|e| e.to_string())?;
        }
        Ok(Self { speech, silence })
    }

    fn packet(&self, frame: &[i16], n: u64) -> Vec<u8> {
        if frame.iter().take(8).all(|s| *s == 0) {
            self.silence.clone()
        } else {
            self.speech[n as usize % self.speech.len()].clone()
        }
    }
}

struct Call {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    channel: ChannelId,
    channel_open: bool,
    connected: bool,
    rtp_time: u64,
    packets: u64,
    last_seq: Option<u64>,
}

pub async fn run(ctx: &SessionCtx) -> Result<(), String> {
    crate::media::call::install_crypto();
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|_| "socket")?;
    std_socket.set_nonblocking(true).map_err(|_| "socket")?;
    let local = std_socket.local_addr().map_err(|_| "socket")?;
    let socket = UdpSocket::from_std(std_socket).map_err(|_| "socket")?;
    let mut rtc = RtcConfig::new().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|_| "socket")?);
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let channel = change.add_channel(crate::media::call::DATA_CHANNEL_LABEL.into());
    let (offer, pending) = change.apply().ok_or("offer")?;
    let http = reqwest::Client::new();
    // Set up = offer sent → answer received (the caller's own peer creation is not voxgate's).
    let started = Instant::now();
    let resp = tokio::time::timeout(
        ctx.setup_timeout,
        http.post(format!("{}/v1/realtime/calls", ctx.base))
            .bearer_auth(&ctx.api_key)
            .header("content-type", "application/sdp")
            .body(offer.to_sdp_string())
            .send(),
    )
    .await
    .map_err(|_| "setup_timeout")?
    .map_err(|_| "connect")?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("http_{}", status.as_u16()));
    }
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = resp.text().await.map_err(|_| "connect")?;
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|_| "bad_answer")?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|_| "bad_answer")?;
    // Set up = offer → answer.
    ctx.established(started.elapsed());
    let mut call = Call {
        rtc,
        socket,
        local,
        mid,
        channel,
        channel_open: false,
        connected: false,
        rtp_time: 0,
        packets: 0,
        last_seq: None,
    };
    let mut talker = Talker::new(ctx.talker.clone(), ctx.seed, Instant::now());
    let result = call.drive(ctx, &mut talker, started).await;
    talker.finish();
    call.rtc.disconnect();
    if let Some(loc) = location {
        let url = if loc.starts_with("http") {
            loc
        } else {
            format!("{}{loc}", ctx.base)
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            http.delete(url).bearer_auth(&ctx.api_key).send(),
        )
        .await;
    }
    ctx.ended(&mut talker.stats, true);
    result
}

impl Call {
    async fn drive(
        &mut self,
        ctx: &SessionCtx,
        talker: &mut Talker,
        started: Instant,
    ) -> Result<(), String> {
        let mut tick = frame_interval();
        let mut ticks = 0u32;
        let mut buf = vec![0u8; 2000];
        loop {
            let timeout = self.poll(talker)?;
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, source) = r.map_err(|_| "socket")?;
                    let Ok(contents) = buf[..n].try_into() else { continue };
                    let input = Input::Receive(Instant::now(), Receive {
                        proto: Protocol::Udp, source, destination: self.local, contents,
                    });
                    let _ = self.rtc.handle_input(input);
                }
                _ = tokio::time::sleep_until(timeout.into()) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).map_err(|_| "webrtc_failed")?;
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now >= ctx.ends_at {
                        return Ok(());
                    }
                    if !self.connected {
                        if now.duration_since(started) > ctx.setup_timeout {
                            return Err("ice_timeout".into());
                        }
                        continue;
                    }
                    let out = talker.tick(now);
                    self.rtp_time += FRAME_RTP_TICKS;
                    if let Some(f) = out.frame {
                        self.packets += 1;
                        let packet = ctx.opus.packet(&f, self.packets);
                        self.write_audio(packet);
                    }
                    if let Some(text) = out.text {
                        let item = json!({"type": "conversation.item.create", "item": {"type": "message",
                            "role": "user", "content": [{"type": "input_text", "text": text}]}});
                        self.send_text(&item.to_string());
                        self.send_text(r#"{"type":"response.create"}"#);
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(REPORT_EVERY_TICKS) {
                        ctx.report(&mut talker.stats);
                    }
                }
            }
        }
    }

    fn write_audio(&mut self, packet: Vec<u8>) {
        crate::media::call::write_opus(
            &mut self.rtc,
            self.mid,
            Instant::now(),
            self.rtp_time,
            packet,
        );
    }

    fn send_text(&mut self, text: &str) {
        if self.channel_open
            && let Some(mut ch) = self.rtc.channel(self.channel)
        {
            let _ = ch.write(false, text.as_bytes());
        }
    }

    fn poll(&mut self, talker: &mut Talker) -> Result<Instant, String> {
        loop {
            match self.rtc.poll_output().map_err(|_| "webrtc_failed")? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => self.on_event(e, talker)?,
            }
        }
    }

    fn on_event(&mut self, e: Event, talker: &mut Talker) -> Result<(), String> {
        let now = Instant::now();
        match e {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ice_disconnected".into());
            }
            Event::ChannelOpen(id, _) if id == self.channel => self.channel_open = true,
            Event::MediaData(d) => {
                let seq = **d.seq_range.end();
                if let Some(last) = self.last_seq
                    && seq > last + 1
                {
                    talker.stats.frames_lost += seq - last - 1;
                }
                self.last_seq = Some(seq.max(self.last_seq.unwrap_or(0)));
                talker.on_audio(now, None, 20);
            }
            Event::ChannelData(d) if !d.binary => {
                let text = String::from_utf8_lossy(&d.data);
                match str_field(&text, "type") {
                    Some("input_audio_buffer.speech_started") => talker.on_speech_started(now),
                    Some("response.output_audio_transcript.done") => {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                            && let Some(t) = v["transcript"].as_str()
                        {
                            talker.on_transcript(now, t);
                        }
                    }
                    Some("error") => {
                        *talker.stats.errors.entry("model_error".into()).or_default() += 1;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}
