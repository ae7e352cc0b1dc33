//! The client side of a `SessionCore`: JSON-RPC subscribers leaving and coming back (detach and
//! replay), the relay call's media events and data channel, and voxgate's own events for clients
//! that opted in.

use super::*;

impl SessionCore {
    /// The relay caller's new offer on its live call (an ICE restart): the answer, and the
    /// local ICE username fragment datagrams are addressed by from now on. A conversation
    /// without a relay call has no media to renegotiate.
    pub fn renegotiate(
        &mut self,
        now: Instant,
        offer: &str,
    ) -> Result<(String, String), crate::media::call::OfferError> {
        let ClientSide::Relay(call) = &mut self.client else {
            return Err(crate::media::call::OfferError::NotRelayed);
        };
        if self.closed {
            return Err(crate::media::call::OfferError::Ended);
        }
        self.now = self.now.max(now);
        let answer = call.media.renegotiate(now, offer)?;
        let ufrag = call.media.ufrag().to_owned();
        self.settle();
        self.check_outboxes();
        Ok((answer, ufrag))
    }
    /// The thread lost its last subscriber, or has one again.
    pub(super) fn on_attached(&mut self, attached: bool) {
        let now = self.now;
        let Some(d) = &mut self.detachment else {
            return;
        };
        if attached {
            let missed = d.reattach();
            // Before anything live: the outputs of earlier inputs are drained already.
            self.out.extend(missed.into_iter().map(Output::Notify));
        } else if d.grace().is_zero() {
            tracing::info!("stopping a conversation its last client left");
            self.client_command(ClientCommand::Stop);
        } else {
            d.detach(now);
        }
    }
    /// Tell a client that opted into voxgate's events (a relay caller or an OpenAI-protocol
    /// client) that the model session behind its conversation changed.
    pub(super) fn session_event(&mut self, item: &serde_json::Value) {
        let event = serde_json::json!({"type": "voxgate.session.resumed",
            "realtime_session_id": item["realtimeSessionId"]});
        match &mut self.client {
            ClientSide::Relay(call) if call.agent_events => call.media.send_text(event.to_string()),
            ClientSide::OpenAi(_) if self.voxgate_events => {
                self.client_out
                    .push(self.now, event.to_string(), FrameClass::Control);
            }
            _ => {}
        }
    }
    /// Tell a relay caller who opted in about the agent's work.
    pub(super) fn agent_event(&mut self, event: serde_json::Value) {
        if let ClientSide::Relay(call) = &mut self.client
            && call.agent_events
        {
            call.media.send_text(event.to_string());
        }
    }
    pub(super) fn sync_played(&mut self) {
        if let ClientSide::Relay(call) = &mut self.client
            && let Some((item_id, played_ms)) = call.media.take_played()
        {
            self.engine
                .handle_input(EngineInput::AudioPlayed { item_id, played_ms });
        }
    }
    pub(super) fn next_media_event(&mut self) -> Option<MediaEvent> {
        match &mut self.client {
            ClientSide::Relay(call) => call.media.poll_event(),
            _ => None,
        }
    }
    pub(super) fn on_media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Audio(pcm) => {
                let mut bytes = Vec::with_capacity(pcm.len() * 2);
                for s in &pcm {
                    bytes.extend_from_slice(&s.to_le_bytes());
                }
                self.client_command(ClientCommand::AppendAudio(AudioChunk {
                    data: base64::engine::general_purpose::STANDARD.encode(bytes),
                    sample_rate: 24_000,
                    num_channels: 1,
                    samples_per_channel: u32::try_from(pcm.len()).ok(),
                    item_id: None,
                }));
            }
            MediaEvent::ChannelText(t) if is_agent_events_opt_in(&t) => {
                if let ClientSide::Relay(call) = &mut self.client {
                    call.agent_events = true;
                }
            }
            MediaEvent::ChannelText(t) => self.client_command(ClientCommand::RawEvent(t)),
            MediaEvent::PlaybackFinished => {
                self.sync_played();
                self.engine.handle_input(EngineInput::PlaybackFinished);
            }
            MediaEvent::Connected => tracing::info!("webrtc caller connected"),
            MediaEvent::ChannelOpen => tracing::debug!("oai-events data channel open"),
            MediaEvent::Closed(reason) => {
                tracing::info!(%reason, "webrtc peer closed");
                self.engine
                    .handle_input(EngineInput::UpstreamFailed(format!(
                        "the WebRTC caller went away: {reason}"
                    )));
            }
        }
    }
}
