//! The engine side of a `SessionCore`: what the engine asks for carried out — frames for the
//! model (into its outbox, GPT-Live's closing frame kept for last), audio and notifications for
//! the conversation's client in the form its face takes, the relay call's playout flushed, agent
//! commands, the close.

use super::*;

impl SessionCore {
    pub(super) fn on_engine_output(&mut self, out: EngineOutput) {
        let now = self.now;
        match out {
            EngineOutput::ToModel(frame) => {
                match &frame {
                    ModelFrame::ResponseCreate => {
                        metrics::RESPONSE_CREATE.with_label_values(&["sent"]).inc();
                    }
                    ModelFrame::Truncate { .. } => metrics::TRUNCATIONS.inc(),
                    _ => {}
                }
                let class = if frame.is_audio_append() {
                    FrameClass::Audio
                } else {
                    FrameClass::Control
                };
                let Some(text) = self.engine.version().build(&frame) else {
                    return;
                };
                if matches!(frame, ModelFrame::SessionUpdate { .. }) {
                    self.own_updates_unanswered += 1;
                }
                if frame == ModelFrame::Close {
                    // Sent as the last frame, after whatever else is dropped at the end.
                    self.farewell_to_model = Some(text);
                    return;
                }
                if class == FrameClass::Control {
                    tracing::trace!(frame = %log_excerpt(&text), "to the model");
                }
                if self.model_out.push(now, text, class) {
                    if class == FrameClass::Audio {
                        self.stats.audio_to_model += 1;
                    }
                } else {
                    self.stats.audio_dropped += 1;
                    metrics::AUDIO_FRAMES_DROPPED.inc();
                }
            }
            EngineOutput::ToClient(Notification::OutputAudioDelta(chunk)) => match &mut self.client
            {
                ClientSide::Relay(call) => {
                    let Ok(bytes) =
                        base64::engine::general_purpose::STANDARD.decode(chunk.data.as_bytes())
                    else {
                        tracing::debug!("model sent audio that is not base64");
                        return;
                    };
                    let pcm: Vec<i16> = bytes
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    if call.media.queue_audio(now, chunk.item_id, &pcm) {
                        self.stats.audio_to_client += 1;
                    } else {
                        self.stats.audio_dropped += 1;
                        metrics::AUDIO_FRAMES_DROPPED.inc();
                    }
                }
                // The raw event already went to the client.
                ClientSide::OpenAi(_) => {}
                ClientSide::Live(codec) => {
                    if let Some(frame) = codec.server_event(&Notification::OutputAudioDelta(chunk))
                        && self.client_out.push(now, frame, FrameClass::Audio)
                    {
                        self.stats.audio_to_client += 1;
                    } else {
                        self.stats.audio_dropped += 1;
                        metrics::AUDIO_FRAMES_DROPPED.inc();
                    }
                }
                ClientSide::Notifications => {
                    self.stats.audio_to_client += 1;
                    self.out
                        .push_back(Output::Notify(Notification::OutputAudioDelta(chunk)));
                }
            },
            EngineOutput::ToClient(Notification::Started { .. }) if self.cfg.answer.is_some() => {}
            // A successor model session (announced under `{id}-{n}`, the first one under the
            // conversation's id): voxgate's own event for the clients that opted in.
            EngineOutput::ToClient(Notification::ItemCompleted(item))
                if item["type"] == "realtimeSessionStarted"
                    && item["realtimeSessionId"]
                        != self.cfg.engine.realtime_session_id.as_str() =>
            {
                self.session_event(&item);
                if !matches!(self.client, ClientSide::OpenAi(_)) {
                    self.out
                        .push_back(Output::Notify(Notification::ItemCompleted(item)));
                }
            }
            EngineOutput::ToClient(Notification::TranscriptDone { role, text }) => {
                // Every face's thread record hears what was said, detached or not.
                self.out.push_back(Output::Said {
                    role: role.as_str(),
                    text: text.clone(),
                });
                let n = Notification::TranscriptDone { role, text };
                if !matches!(self.client, ClientSide::OpenAi(_)) && !self.tell_live_client(&n) {
                    self.out.push_back(Output::Notify(n));
                }
            }
            // An OpenAI-protocol client hears the model's own events, nothing else.
            EngineOutput::ToClient(_) if matches!(self.client, ClientSide::OpenAi(_)) => {}
            EngineOutput::ToClient(n) => {
                if let Notification::Error { message } = &n {
                    self.last_error = Some(message.clone());
                }
                if !self.tell_live_client(&n) {
                    self.out.push_back(Output::Notify(n));
                }
            }
            EngineOutput::ClearAudio => {
                if let ClientSide::Relay(call) = &mut self.client {
                    call.media.flush();
                }
            }
            EngineOutput::ToAgent(cmd) => self.on_agent_command(cmd),
            EngineOutput::Close(reason) => self.close(reason),
        }
    }
}
