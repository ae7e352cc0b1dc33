//! `SessionCore` driven in memory, in virtual time: a relay call against a str0m caller peer with
//! datagrams carried by hand, the model's socket and the client's as outboxes read (or not) by
//! the test. No sockets, no tokio; whole minutes of a call run in milliseconds.

use super::Face;
use super::core::{ClientSide, CoreConfig, Input, Output, SessionCore};
use super::outbox::OutboxLimits;
use crate::agent::AgentUpdate;
use crate::engine::{Acks, AgentCommand, EngineConfig};
use crate::media::call::{CallMedia, MediaTimeouts};
use crate::media::codec::OpusCodec;
use crate::protocol::ModelVersion;
use crate::protocol::rpc::{CloseReason, Notification};
use base64::Engine as _;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::channel::ChannelId;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Rtc, RtcConfig};

const CONNECT: Duration = Duration::from_secs(15);
const SILENCE: Duration = Duration::from_secs(30);
const ICE_GRACE: Duration = Duration::from_secs(5);
const FRAME: Duration = Duration::from_millis(20);

fn caller_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 5000))
}

fn gateway_addr() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 7000))
}

fn config(face: Face) -> CoreConfig {
    CoreConfig {
        face,
        engine: EngineConfig {
            version: ModelVersion::V2,
            realtime_session_id: "s".into(),
            session_update: json!({"type": "session.update", "session": {"type": "realtime"}}),
            acks: Acks::default(),
            local_playout: face == Face::WebrtcRelay,
            delegation: true,
            errors_end_session: true,
            replay: Default::default(),
            input_gate: None,
        },
        task_timeout: Duration::from_secs(3),
        max_duration: None,
        answer: (face == Face::WebrtcRelay).then(|| "v=0 (answer)".into()),
        model_limits: OutboxLimits::default(),
        client_limits: OutboxLimits::default(),
        model_idle: None,
        detach_grace: None,
        rollover_after: None,
        reconnect: crate::session::reconnect::ReconnectPolicy {
            attempts: 0,
            backoff: Duration::from_millis(250),
        },
    }
}

/// The caller: a str0m peer that offers Opus and the `oai-events` channel, as a browser does.
struct Caller {
    rtc: Rtc,
    mid: Mid,
    channel: ChannelId,
    codec: OpusCodec,
    connected: bool,
    channel_open: bool,
    next_timeout: Instant,
    /// While set, the caller sends a 20 ms frame at this instant and every 20 ms after.
    next_send: Option<Instant>,
    rtp_time: u64,
    /// How loud the caller's frames are (a sine's peak, PCM16 units).
    amplitude: f64,
    heard: Vec<Instant>,
    texts: Vec<String>,
    /// The other side closed the peer (DTLS close_notify).
    closed_by_peer: bool,
}

/// One call in virtual time: the caller, the session core, and what reached the model and the
/// client faces.
struct Call {
    now: Instant,
    start: Instant,
    caller: Option<Caller>,
    core: SessionCore,
    /// The wire between them works (false: every datagram is lost).
    wire: bool,
    /// Where the caller's datagrams come from (its network may change).
    caller_at: SocketAddr,
    /// The client socket takes what the core queues for it.
    client_reads: bool,
    to_model: Vec<String>,
    to_client: Vec<String>,
    notes: Vec<Notification>,
    agent: Vec<AgentCommand>,
    closed_at: Option<(Instant, &'static str)>,
    last_datagram: Option<Instant>,
    pings: Vec<Instant>,
    /// When the core dropped the model socket, and when it asked for a new one.
    model_drops: Vec<Instant>,
    model_connects: Vec<Instant>,
    /// The successor socket: asked for, switched to, dropped.
    successor: Vec<(Instant, &'static str)>,
}

fn relay_call() -> Call {
    relay_call_with(MediaTimeouts {
        connect: CONNECT,
        silence: SILENCE,
        ice_grace: ICE_GRACE,
    })
}

fn relay_call_with(timeouts: MediaTimeouts) -> Call {
    relay_call_configured(timeouts, |_| {})
}

fn relay_call_configured(timeouts: MediaTimeouts, tweak: impl FnOnce(&mut CoreConfig)) -> Call {
    let start = Instant::now();
    crate::media::call::install_crypto();
    let mut rtc = RtcConfig::new().build(start);
    rtc.add_local_candidate(Candidate::host(caller_addr(), "udp").expect("candidate"));
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let channel = change.add_channel("oai-events".into());
    let (offer, pending) = change.apply().expect("offer");
    let (answer, media) = CallMedia::accept(
        &offer.to_sdp_string(),
        gateway_addr(),
        gateway_addr(),
        "vxtest".into(),
        start,
        timeouts,
        start,
    )
    .expect("answer");
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).expect("sdp"))
        .expect("accept");
    let caller = Caller {
        rtc,
        mid,
        channel,
        codec: OpusCodec::new().expect("codec"),
        connected: false,
        channel_open: false,
        next_timeout: start,
        next_send: None,
        rtp_time: 0,
        amplitude: 8000.0,
        heard: Vec::new(),
        texts: Vec::new(),
        closed_by_peer: false,
    };
    let mut cfg = config(Face::WebrtcRelay);
    tweak(&mut cfg);
    let core = SessionCore::new(cfg, ClientSide::relay(media), start);
    Call::new(start, Some(caller), core)
}

fn call_with(face: Face, side: ClientSide, cfg: impl FnOnce(&mut CoreConfig)) -> Call {
    let start = Instant::now();
    let mut c = config(face);
    cfg(&mut c);
    Call::new(start, None, SessionCore::new(c, side, start))
}

impl Call {
    fn new(start: Instant, caller: Option<Caller>, core: SessionCore) -> Self {
        let mut call = Call {
            now: start,
            start,
            caller,
            core,
            wire: true,
            caller_at: caller_addr(),
            client_reads: true,
            to_model: Vec::new(),
            to_client: Vec::new(),
            notes: Vec::new(),
            agent: Vec::new(),
            closed_at: None,
            last_datagram: None,
            pings: Vec::new(),
            model_drops: Vec::new(),
            model_connects: Vec::new(),
            successor: Vec::new(),
        };
        call.input(Input::ModelConnected);
        call
    }

    fn input(&mut self, input: Input<'_>) {
        self.core.handle_input(self.now, input);
        self.settle();
    }

    fn model(&mut self, event: Value) {
        let text = event.to_string();
        self.input(Input::ModelText(&text));
    }

    /// Move everything that can move at `now` until nothing does.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(out) = self.core.poll_output() {
                moved = true;
                match out {
                    Output::Transmit(t) => {
                        if let Some(c) = self.caller.as_mut().filter(|_| self.wire) {
                            let input = str0m::Input::Receive(
                                self.now,
                                Receive {
                                    proto: Protocol::Udp,
                                    source: gateway_addr(),
                                    destination: t.destination,
                                    contents: t.contents.as_slice().try_into().expect("datagram"),
                                },
                            );
                            c.rtc
                                .handle_input(input)
                                .expect("caller takes the datagram");
                        }
                    }
                    Output::Notify(n) => self.notes.push(n),
                    Output::Observe(_) => {}
                    Output::Agent(cmd) => self.agent.push(cmd),
                    Output::PingModel => self.pings.push(self.now),
                    Output::DropModel => self.model_drops.push(self.now),
                    Output::Said { .. } => {}
                    Output::ConnectModel => self.model_connects.push(self.now),
                    Output::OpenSuccessor => self.successor.push((self.now, "open")),
                    Output::SwitchToSuccessor => self.successor.push((self.now, "switch")),
                    Output::DropSuccessor => self.successor.push((self.now, "drop")),
                    Output::Close(why) => self.closed_at = Some((self.now, why)),
                }
            }
            let (model_out, client_out) = self.core.outboxes();
            while let Some((f, _)) = model_out.pop(self.now) {
                moved = true;
                self.to_model.push(f);
            }
            while self.client_reads
                && let Some((f, _)) = client_out.pop(self.now)
            {
                moved = true;
                self.to_client.push(f);
            }
            moved |= self.drain_caller();
            if !moved {
                return;
            }
        }
    }

    /// The caller's outputs: datagrams to the core, events recorded.
    fn drain_caller(&mut self) -> bool {
        let Some(c) = self.caller.as_mut() else {
            return false;
        };
        let mut datagrams = Vec::new();
        let mut moved = false;
        loop {
            let Ok(out) = c.rtc.poll_output() else {
                // The caller's own peer gave up (its DTLS timed out): it is gone.
                self.caller = None;
                return true;
            };
            match out {
                str0m::Output::Timeout(t) => {
                    c.next_timeout = t;
                    break;
                }
                str0m::Output::Transmit(t) => datagrams.push(t.contents.to_vec()),
                str0m::Output::Event(e) => {
                    moved = true;
                    match e {
                        Event::Connected => c.connected = true,
                        Event::ChannelOpen(..) => c.channel_open = true,
                        Event::Closed => c.closed_by_peer = true,
                        Event::MediaData(_) => c.heard.push(self.now),
                        Event::ChannelData(d) => {
                            c.texts.push(String::from_utf8_lossy(&d.data).into_owned())
                        }
                        _ => {}
                    }
                }
            }
        }
        for d in datagrams {
            moved = true;
            if self.wire {
                self.last_datagram = Some(self.now);
                self.core.handle_input(
                    self.now,
                    Input::Datagram {
                        source: self.caller_at,
                        contents: &d,
                    },
                );
            }
        }
        moved
    }

    /// Run the call in virtual time until `end`.
    fn run_until(&mut self, end: Instant) {
        loop {
            self.settle();
            let caller = self.caller.as_ref().map(|c| {
                c.next_send
                    .map_or(c.next_timeout, |s| s.min(c.next_timeout))
            });
            let next = [caller, self.core.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            if let Some(c) = self.caller.as_mut() {
                if c.next_timeout <= self.now
                    && c.rtc.handle_input(str0m::Input::Timeout(self.now)).is_err()
                {
                    self.caller = None;
                    continue;
                }
                if let Some(at) = c.next_send.filter(|at| *at <= self.now) {
                    c.next_send = Some(at + FRAME);
                    c.send_frame(at);
                }
            }
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_input(self.now, Input::Timeout);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// The `voxgate.session.closed` event the caller got on its data channel.
    fn farewell(&mut self) -> Value {
        let text = self
            .caller()
            .texts
            .iter()
            .find(|t| t.contains("voxgate.session.closed"))
            .cloned()
            .expect("the caller is told");
        serde_json::from_str(&text).expect("json")
    }

    fn caller(&mut self) -> &mut Caller {
        self.caller.as_mut().expect("a relay call")
    }

    fn frames_of(&self, ty: &str) -> Vec<Value> {
        self.to_model
            .iter()
            .filter_map(|f| serde_json::from_str::<Value>(f).ok())
            .filter(|v| v["type"] == ty)
            .collect()
    }
}

impl Caller {
    fn send_frame(&mut self, at: Instant) {
        let pcm: Vec<i16> = (0..480)
            .map(|i| ((i as f64 * 0.2).sin() * self.amplitude) as i16)
            .collect();
        let packet = self.codec.encode(&pcm).expect("encode");
        self.rtp_time += 960;
        crate::media::call::write_opus(&mut self.rtc, self.mid, at, self.rtp_time, packet);
    }

    fn say(&mut self, text: &str) {
        if let Some(mut ch) = self.rtc.channel(self.channel) {
            ch.write(false, text.as_bytes()).expect("channel write");
        }
    }
}

fn audio_delta(item: &str, ms: usize) -> Value {
    let bytes = vec![0u8; ms * 48];
    json!({"type": "response.output_audio.delta", "response_id": "r1", "item_id": item,
        "output_index": 0, "content_index": 0,
        "delta": base64::engine::general_purpose::STANDARD.encode(bytes)})
}

fn connected_relay_call() -> Call {
    let mut call = relay_call();
    call.run_for(Duration::from_secs(1));
    assert!(call.caller().connected, "ICE and DTLS connected");
    assert!(call.caller().channel_open, "the oai-events channel opened");
    call
}

#[test]
fn a_relay_call_connects_and_audio_flows_both_ways_at_real_time_pace() {
    let mut call = connected_relay_call();
    let t0 = call.now;
    call.caller().next_send = Some(t0);
    call.run_for(Duration::from_millis(1000));
    let appends = call.frames_of("input_audio_buffer.append");
    assert!(
        (49..=51).contains(&appends.len()),
        "a second of speech reaches the model as ~50 appends, got {}",
        appends.len()
    );
    // Half a second of the model's audio arrives at once; the caller hears it paced.
    call.caller().next_send = None;
    let heard_before = call.caller().heard.len();
    for _ in 0..5 {
        call.model(audio_delta("out1", 100));
    }
    call.run_for(Duration::from_secs(1));
    let heard = call.caller().heard[heard_before..].to_vec();
    assert_eq!(heard.len(), 25, "500 ms is 25 frames");
    for pair in heard.windows(2) {
        assert_eq!(pair[1] - pair[0], FRAME, "one frame per 20 ms tick");
    }
    let texts = &call.caller().texts;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("output_audio_buffer.started"))
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("output_audio_buffer.stopped"))
    );
    assert!(
        !texts.iter().any(|t| t.contains("output_audio.delta")),
        "audio never rides the data channel"
    );
}

#[test]
fn barge_in_flushes_playout_and_truncates_at_the_played_position() {
    let mut call = connected_relay_call();
    call.model(audio_delta("out1", 1000));
    call.run_for(Duration::from_millis(210));
    let played = call.caller().heard.len() as u64;
    assert!((9..=11).contains(&played), "{played} frames played");
    call.model(json!({"type": "input_audio_buffer.speech_started", "item_id": "u1"}));
    let truncate = call.frames_of("conversation.item.truncate");
    assert_eq!(truncate.len(), 1);
    assert_eq!(truncate[0]["item_id"], "out1");
    assert_eq!(truncate[0]["audio_end_ms"], played * 20);
    call.run_for(Duration::from_millis(200));
    assert_eq!(
        call.caller().heard.len() as u64,
        played,
        "nothing plays after the flush"
    );
    assert!(
        call.caller()
            .texts
            .iter()
            .any(|t| t.contains("output_audio_buffer.cleared"))
    );
}

#[test]
fn data_channel_events_reach_the_model_and_the_caller_may_opt_into_agent_events() {
    let mut call = connected_relay_call();
    call.caller()
        .say(r#"{"type":"voxgate.subscribe_agent_events"}"#);
    call.caller()
        .say(r#"{"type":"conversation.item.create","item":{"type":"message"}}"#);
    call.run_for(Duration::from_millis(100));
    assert_eq!(call.frames_of("conversation.item.create").len(), 1);
    assert!(
        call.frames_of("voxgate.subscribe_agent_events").is_empty(),
        "the opt-in is voxgate's, not the model's"
    );
    call.model(json!({"type": "conversation.item.done", "item": {"id": "fc1", "type": "function_call",
        "name": "background_agent", "call_id": "call_1", "arguments": "{\"prompt\":\"count files\"}"}}));
    call.run_for(Duration::from_millis(100));
    assert!(matches!(call.agent[..], [AgentCommand::Start { .. }]));
    assert!(
        call.caller()
            .texts
            .iter()
            .any(|t| t.contains("voxgate.agent.started")),
        "{:?}",
        call.caller().texts
    );
    assert!(
        !call
            .caller()
            .texts
            .iter()
            .any(|t| t.contains("background_agent")),
        "the plumbing stays hidden"
    );
}

#[test]
fn a_hang_up_tells_the_caller_why_then_closes_the_peer() {
    let mut call = connected_relay_call();
    call.input(Input::Command(crate::engine::ClientCommand::Stop));
    call.run_for(Duration::from_millis(200));
    assert!(call.closed_at.is_some());
    assert_eq!(call.farewell()["reason"], "requested");
    assert!(
        call.caller().closed_by_peer,
        "the caller's peer saw the close at once"
    );
}

#[test]
fn a_lost_model_is_told_to_the_caller_with_its_error() {
    let mut call = connected_relay_call();
    call.input(Input::ModelFailed(
        "realtime websocket read failed: reset".into(),
    ));
    call.run_for(Duration::from_millis(200));
    let v = call.farewell();
    assert_eq!(v["reason"], "error");
    assert_eq!(v["message"], "realtime websocket read failed: reset");
}

mod deadlines;
mod gating;
mod successor;
