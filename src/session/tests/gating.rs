//! Playback-aware input gating on a relay call, in virtual time with a real str0m caller: while
//! the model's reply plays, the caller's quiet audio (the reply's echo on a phone line) never
//! reaches the model; speaking over the reply does (a barge-in, with its first 300 ms); after the
//! reply, everything goes again.

use super::*;

fn gated_call() -> Call {
    let mut call = relay_call_configured(
        MediaTimeouts {
            connect: CONNECT,
            silence: Duration::from_secs(60),
            ice_grace: ICE_GRACE,
        },
        |cfg| cfg.engine.input_gate = Some(crate::engine::input_gate::GateConfig::default()),
    );
    call.run_for(Duration::from_secs(1));
    assert!(call.caller().connected);
    call
}

fn appends(call: &Call) -> usize {
    call.frames_of("input_audio_buffer.append").len()
}

#[test]
fn echo_while_the_model_speaks_is_held_back_and_a_barge_in_gets_through() {
    let mut call = gated_call();
    // The caller's line carries a quiet echo, all the time.
    call.caller().amplitude = 400.0;
    let now = call.now;
    call.caller().next_send = Some(now);
    call.run_for(Duration::from_millis(500));
    let before = appends(&call);
    assert!(
        before >= 20,
        "nothing plays: the caller is heard ({before})"
    );
    // A two-second reply plays: the echo is held back.
    for _ in 0..20 {
        call.model(audio_delta("reply", 100));
    }
    call.run_for(Duration::from_millis(1000));
    let during = appends(&call) - before;
    assert!(during <= 2, "the echo reached the model: {during} appends");
    // The person talks over it: a barge-in, with its preroll.
    call.caller().amplitude = 8000.0;
    call.run_for(Duration::from_millis(300));
    let barge = appends(&call) - before - during;
    assert!(
        barge >= 15,
        "the barge-in and its preroll go to the model: {barge}"
    );
}

#[test]
fn after_the_reply_the_caller_is_heard_again() {
    let mut call = gated_call();
    call.caller().amplitude = 400.0;
    let now = call.now;
    call.caller().next_send = Some(now);
    for _ in 0..5 {
        call.model(audio_delta("short", 100));
    }
    // The 500 ms reply plays out, then the quiet caller is forwarded again.
    call.run_for(Duration::from_millis(700));
    let after_reply = appends(&call);
    call.run_for(Duration::from_millis(500));
    assert!(
        appends(&call) - after_reply >= 20,
        "the gate closed behind the reply"
    );
}
