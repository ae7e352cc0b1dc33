//! Rollover is make-before-break: the next model session's socket is opened in the background
//! `SUCCESSOR_LEAD` before the rollover is due, held until the turn boundary, and switched to
//! without dropping first; a successor still opening is waited for; one that failed to open
//! falls back to dropping the old socket and opening a new one at the switch.

use super::*;
use crate::session::core::SUCCESSOR_LEAD;

const AGE: Duration = Duration::from_secs(60);

fn rolling_conversation() -> Call {
    call_with(Face::Rpc, ClientSide::Notifications, |c| {
        c.rollover_after = Some(AGE);
        c.model_idle = None;
    })
}

fn session_updates(call: &Call) -> usize {
    call.to_model
        .iter()
        .filter(|f| f.contains("\"session.update\""))
        .count()
}

#[test]
fn the_successor_opens_ahead_and_the_switch_drops_nothing_first() {
    let mut call = rolling_conversation();
    let start = call.start;
    call.run_for(AGE - SUCCESSOR_LEAD - Duration::from_secs(1));
    assert!(call.successor.is_empty(), "not before its lead");
    call.run_for(Duration::from_secs(2));
    assert_eq!(
        call.successor,
        vec![(start + AGE - SUCCESSOR_LEAD, "open")],
        "asked for once, exactly at the lead"
    );
    call.input(Input::SuccessorReady);
    call.run_for(SUCCESSOR_LEAD);
    assert_eq!(call.successor.last(), Some(&(start + AGE, "switch")));
    assert!(call.model_drops.is_empty() && call.model_connects.is_empty());
    // The reactor installs the held socket and says so: the new session is configured.
    call.input(Input::ModelConnected);
    assert_eq!(session_updates(&call), 2);
    assert!(call.closed_at.is_none());
    // The new session's age counts from when its socket was asked for.
    call.run_for(AGE - SUCCESSOR_LEAD - Duration::from_secs(1));
    assert_eq!(call.successor.len(), 3, "{:?}", call.successor);
    assert_eq!(
        call.successor[2].0,
        start + AGE - SUCCESSOR_LEAD + AGE - SUCCESSOR_LEAD
    );
}

#[test]
fn a_successor_still_opening_is_waited_for_and_a_failed_one_falls_back() {
    let mut call = rolling_conversation();
    call.run_for(AGE + Duration::from_secs(1));
    assert_eq!(call.successor.len(), 1, "opening: no switch yet");
    assert!(call.model_drops.is_empty());
    call.input(Input::SuccessorFailed("refused".into()));
    assert_eq!(call.model_drops.len(), 1, "the old one goes at the switch");
    assert_eq!(call.model_connects.len(), 1, "and a new one is opened");
    call.input(Input::ModelConnected);
    assert_eq!(session_updates(&call), 2);
    assert!(call.closed_at.is_none());
}

#[test]
fn a_lost_model_socket_forgets_the_successor() {
    let mut call = call_with(Face::Rpc, ClientSide::Notifications, |c| {
        c.rollover_after = Some(AGE);
        c.model_idle = None;
        c.reconnect = crate::session::reconnect::ReconnectPolicy {
            attempts: 3,
            backoff: Duration::from_millis(100),
        };
    });
    call.run_for(AGE - SUCCESSOR_LEAD);
    assert_eq!(call.successor.len(), 1);
    call.input(Input::ModelDropped);
    assert_eq!(call.successor.last().map(|s| s.1), Some("drop"));
}
