//! Every deadline `SessionCore` owns fires exactly when it should, in virtual time: ICE/DTLS
//! connect, caller silence, maximum duration, agent task, a stalled client or model socket, a
//! silent model, a detached conversation's grace.

use super::*;

#[test]
fn a_caller_that_never_connects_ends_the_call_at_the_connect_deadline() {
    let mut call = relay_call();
    call.wire = false;
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    assert_eq!(at - call.start, CONNECT);
    assert!(
        call.notes
            .iter()
            .any(|n| matches!(n, Notification::Error { message }
        if message.contains("ICE/DTLS did not connect within 15s")))
    );
    assert!(call.notes.contains(&Notification::Closed {
        reason: CloseReason::Error
    }));
}

#[test]
fn a_caller_whose_ice_drops_and_comes_back_within_the_grace_keeps_its_call() {
    let mut call = relay_call_with(MediaTimeouts {
        connect: CONNECT,
        silence: Duration::from_secs(60),
        ice_grace: Duration::from_secs(30),
    });
    call.run_for(Duration::from_secs(1));
    assert!(call.caller().connected);
    // The caller's network goes away long enough for ICE to notice (str0m: ~17.5 s)...
    call.wire = false;
    call.run_for(Duration::from_secs(19));
    assert!(call.closed_at.is_none(), "still within the grace");
    // ...and comes back within the grace: the call goes on.
    call.wire = true;
    call.run_for(Duration::from_secs(20));
    assert!(call.closed_at.is_none(), "{:?}", call.notes);
    let heard = call.caller().heard.len();
    call.model(audio_delta("after", 200));
    call.run_for(Duration::from_secs(1));
    assert_eq!(
        call.caller().heard.len() - heard,
        10,
        "the caller hears the model again"
    );
}

#[test]
fn a_caller_that_moves_networks_and_restarts_ice_keeps_its_call_and_channel() {
    let mut call = relay_call_with(MediaTimeouts {
        connect: CONNECT,
        silence: Duration::from_secs(60),
        ice_grace: Duration::from_secs(30),
    });
    call.run_for(Duration::from_secs(1));
    assert!(call.caller().connected && call.caller().channel_open);
    let old_ufrag = "vxtest";
    // The caller's network goes away: ICE on the gateway notices and the grace starts...
    call.wire = false;
    call.run_for(Duration::from_secs(19));
    // ...the caller comes back from another address and offers an ICE restart.
    let moved = SocketAddr::from(([10, 0, 0, 9], 6000));
    let caller = call.caller();
    let mut api = caller.rtc.sdp_api();
    api.ice_restart(false);
    let (offer, pending) = api.apply().expect("a restart offer");
    let now = call.now;
    let (answer, ufrag) = call
        .core
        .renegotiate(now, &offer.to_sdp_string())
        .expect("the restart is answered");
    assert_ne!(
        ufrag, old_ufrag,
        "an ICE restart answers with new credentials"
    );
    assert!(answer.contains(&format!("a=ice-ufrag:{ufrag}")));
    call.caller()
        .rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).expect("sdp"))
        .expect("the caller takes the answer");
    // The restart (taken with the answer) cleared the caller's old candidates; its new one:
    call.caller()
        .rtc
        .add_local_candidate(Candidate::host(moved, "udp").expect("candidate"));
    call.caller_at = moved;
    call.wire = true;
    // Past the end of the grace (ICE was lost ~17.5 s after the outage began, plus 30 s) the
    // call still runs: the restart brought ICE back.
    call.run_for(Duration::from_secs(35));
    assert!(call.closed_at.is_none(), "{:?}", call.notes);
    let heard = call.caller().heard.len();
    call.model(audio_delta("after", 200));
    call.run_for(Duration::from_secs(1));
    assert_eq!(
        call.caller().heard.len() - heard,
        10,
        "audio reaches the new address"
    );
    let texts = call.caller().texts.len();
    call.model(json!({"type": "response.done", "response": {"id": "r1", "status": "completed", "output": []}}));
    call.run_for(Duration::from_millis(100));
    assert!(
        call.caller().texts.len() > texts,
        "the data channel goes on"
    );
}

#[test]
fn a_renegotiation_that_is_not_the_callers_is_refused_and_the_call_goes_on() {
    let mut call = relay_call();
    call.run_for(Duration::from_secs(1));
    let now = call.now;
    assert_eq!(
        call.core.renegotiate(now, "v=0\r\nnot sdp"),
        Err(crate::media::call::OfferError::NoAudio)
    );
    // A well-formed offer from another peer (another DTLS identity) is not the caller's.
    let mut stranger = RtcConfig::new().build(now);
    let mut change = stranger.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _) = change.apply().expect("offer");
    assert_eq!(
        call.core.renegotiate(now, &offer.to_sdp_string()),
        Err(crate::media::call::OfferError::Mismatch)
    );
    let heard = call.caller().heard.len();
    call.model(audio_delta("after", 200));
    call.run_for(Duration::from_secs(1));
    assert_eq!(call.caller().heard.len() - heard, 10);
}

#[test]
fn a_silent_caller_ends_the_call_at_the_silence_deadline() {
    let silence = Duration::from_secs(5);
    let mut call = relay_call_with(MediaTimeouts {
        connect: CONNECT,
        silence,
        ice_grace: ICE_GRACE,
    });
    call.run_for(Duration::from_secs(2));
    assert!(call.caller().connected);
    call.wire = false;
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    let last = call.last_datagram.expect("the caller sent something");
    assert_eq!(at - last, silence);
    assert!(
        call.notes
            .iter()
            .any(|n| matches!(n, Notification::Error { message }
        if message.contains("the caller sent nothing for 5s")))
    );
}

#[test]
fn a_vanished_caller_is_noticed_by_ice_before_the_silence_watchdog() {
    let mut call = connected_relay_call();
    call.wire = false;
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    let last = call.last_datagram.expect("the caller sent something");
    assert!(at - last <= SILENCE, "{:?}", at - last);
    assert!(
        call.notes
            .iter()
            .any(|n| matches!(n, Notification::Error { message }
        if message.contains("the WebRTC caller went away")))
    );
    assert!(call.notes.contains(&Notification::Closed {
        reason: CloseReason::Error
    }));
}

#[test]
fn the_session_ends_at_its_maximum_duration() {
    let mut call = call_with(Face::OpenaiWs, ClientSide::openai(true), |c| {
        c.max_duration = Some(Duration::from_secs(5));
    });
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    assert_eq!(at - call.start, Duration::from_secs(5));
    assert!(
        call.to_client
            .iter()
            .any(|t| t.contains("session_expired") && t.contains("maximum duration of 5s")),
        "{:?}",
        call.to_client
    );
}

#[test]
fn an_agent_task_that_never_ends_is_timed_out_and_the_call_resolved() {
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |_| {});
    call.model(json!({"type": "conversation.item.done", "item": {"id": "fc1", "type": "function_call",
        "name": "background_agent", "call_id": "call_1", "arguments": "{\"prompt\":\"count files\"}"}}));
    assert!(matches!(call.agent[..], [AgentCommand::Start { .. }]));
    call.run_for(Duration::from_millis(2999));
    assert_eq!(
        call.agent.len(),
        1,
        "still running just before the deadline"
    );
    call.run_for(Duration::from_millis(1));
    assert_eq!(call.agent.last(), Some(&AgentCommand::Cancel));
    let outputs = call.frames_of("conversation.item.create");
    let output = outputs
        .iter()
        .find(|f| f["item"]["type"] == "function_call_output")
        .expect("the call is resolved");
    assert_eq!(output["item"]["call_id"], "call_1");
    assert!(
        output["item"]["output"]
            .as_str()
            .is_some_and(|o| o.contains("timed out after 3s")),
        "{output}"
    );
    // A late update from the cancelled task changes nothing.
    call.input(Input::Agent(AgentUpdate::Message("late".into())));
    assert!(call.closed_at.is_none());
}

#[test]
fn a_stalled_client_loses_audio_but_never_control_events_then_the_session_ends() {
    let limits = OutboxLimits {
        audio_limit: 64 * 1024,
        hard_limit: 4 * 1024 * 1024,
        stall: Duration::from_secs(30),
    };
    let mut call = call_with(Face::OpenaiWs, ClientSide::openai(true), |c| {
        c.client_limits = limits;
    });
    call.client_reads = false;
    // Ten seconds of the model talking while the client reads nothing.
    for i in 0..500 {
        call.model(audio_delta("out1", 20));
        if i % 10 == 0 {
            call.model(json!({"type": "response.output_audio_transcript.delta", "delta": format!("w{i} ")}));
        }
        call.run_for(FRAME);
    }
    let (_, client_out) = call.core.outboxes();
    assert!(
        client_out.queued_bytes() <= limits.audio_limit + 64 * 1024,
        "bounded: {} bytes queued",
        client_out.queued_bytes()
    );
    assert!(call.core.stats().audio_dropped > 400, "audio was dropped");
    assert!(call.closed_at.is_none(), "10 s of stall is tolerated");
    // The client reads again: every transcript delta is there, in order.
    call.client_reads = true;
    call.settle();
    let deltas: Vec<&String> = call
        .to_client
        .iter()
        .filter(|t| t.contains("output_audio_transcript.delta"))
        .collect();
    assert_eq!(deltas.len(), 50, "no control event was dropped");
    assert!(deltas[49].contains("w490"));
    // A client that never reads again ends the session at the stall deadline.
    call.client_reads = false;
    call.model(json!({"type": "response.output_audio_transcript.delta", "delta": "x"}));
    let stalled_from = call.now;
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    assert_eq!(at - stalled_from, limits.stall);
}

#[test]
fn a_model_that_stops_reading_fails_the_session_with_a_clear_error() {
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |_| {});
    // The test stops taking frames for the model: nothing drains the model outbox.
    let (model_out, _) = call.core.outboxes();
    assert!(model_out.is_empty());
    let t0 = call.now;
    call.core.handle_input(
        t0,
        Input::Command(crate::engine::ClientCommand::AppendText {
            text: "hello".into(),
            role: Default::default(),
        }),
    );
    let deadline = call.core.poll_timeout().expect("a stall deadline");
    assert_eq!(deadline - t0, OutboxLimits::default().stall);
    call.core.handle_input(deadline, Input::Timeout);
    let mut notes = Vec::new();
    let mut closed = false;
    while let Some(out) = call.core.poll_output() {
        match out {
            Output::Notify(n) => notes.push(n),
            Output::Close(_) => closed = true,
            _ => {}
        }
    }
    assert!(closed);
    assert!(
        notes
            .iter()
            .any(|n| matches!(n, Notification::Error { message }
        if message.contains("sending to the realtime model stalled")))
    );
}

#[test]
fn a_silent_model_is_pinged_at_half_its_idle_time_and_lost_at_the_whole() {
    let idle = Duration::from_secs(30);
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |c| {
        c.model_idle = Some(idle);
    });
    let t0 = call.now;
    // A model that answers the ping lives on.
    call.run_for(Duration::from_secs(20));
    assert_eq!(call.pings, vec![t0 + idle / 2]);
    call.input(Input::ModelAlive);
    let answered = call.now;
    call.run_for(Duration::from_secs(20));
    assert_eq!(call.pings.last(), Some(&(answered + idle / 2)));
    assert!(call.closed_at.is_none());
    // One that does not is lost at the whole idle time after it was last heard.
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    assert_eq!(at - answered, idle);
    assert!(
        call.notes
            .iter()
            .any(|n| matches!(n, Notification::Error { message }
        if message.contains("stopped responding")))
    );
}

#[test]
fn a_detached_conversation_keeps_what_was_missed_and_ends_at_the_grace() {
    let grace = Duration::from_secs(30);
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |c| {
        c.detach_grace = Some(grace);
    });
    let words = |call: &mut Call, text: &str| {
        call.model(json!({"type": "response.output_audio_transcript.delta", "delta": text}));
    };
    // Detached: nothing reaches subscribers, everything is kept.
    call.input(Input::Attached(false));
    let heard = call.notes.len();
    words(&mut call, "one ");
    words(&mut call, "two");
    assert_eq!(call.notes.len(), heard, "nobody listens while detached");
    call.run_for(Duration::from_secs(10));
    // Back within the grace: the missed words first, in order, then live ones.
    call.input(Input::Attached(true));
    words(&mut call, " three");
    let deltas: Vec<String> = call.notes[heard..]
        .iter()
        .filter_map(|n| match n {
            Notification::TranscriptDelta { delta, .. } => Some(delta.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, ["one ", "two", " three"]);
    // Detached again and nobody comes back: closed at exactly the grace.
    call.input(Input::Attached(false));
    let left = call.now;
    call.run_for(Duration::from_secs(60));
    let (at, _) = call.closed_at.expect("closed");
    assert_eq!(at - left, grace);
}

#[test]
fn with_no_grace_a_conversation_ends_when_its_last_client_leaves() {
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |c| {
        c.detach_grace = Some(Duration::ZERO);
    });
    call.input(Input::Attached(false));
    assert_eq!(call.closed_at.map(|(at, _)| at), Some(call.start));
    assert!(call.notes.contains(&Notification::Closed {
        reason: CloseReason::Requested
    }));
}
