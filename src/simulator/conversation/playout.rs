//! How a `SimConversation` plays its responses out: one active response and the queue behind
//! it, each response scheduled as timed steps (frames, audio, finish), cancelled by barge-in,
//! and the audio deltas it sends in the version's shape.

use super::*;

impl SimConversation {
    /// An auto-response: starts now, or after the active one.
    pub(super) fn request(&mut self, plan: Plan, now: Instant) {
        if self.active.is_some() {
            self.queued.push_back(plan);
        } else {
            self.start(plan, now);
        }
    }

    pub(super) fn cancel_active(&mut self, now: Instant) {
        let Some(active) = self.active.take() else {
            return;
        };
        self.schedule.clear();
        if self.version == ModelVersion::V2 {
            self.emit(json!({"type": "response.done", "response": {
                "id": active, "object": "realtime.response", "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": []
            }}));
        }
        self.start_next(now);
    }

    fn start_next(&mut self, now: Instant) {
        if self.active.is_some() {
            return;
        }
        if let Some(plan) = self.queued.pop_front() {
            self.start(plan, now);
        }
    }

    pub(super) fn start(&mut self, plan: Plan, now: Instant) {
        let response_id = self.id("resp");
        self.active = Some(response_id.clone());
        let mut at = now;
        let v2 = self.version == ModelVersion::V2;
        let push = |s: &mut VecDeque<Scheduled>, at: Instant, step: Step| {
            s.push_back(Scheduled { at, step })
        };
        if v2 {
            push(
                &mut self.schedule,
                at,
                Step::Frame(json!({"type": "response.created", "response": {
                    "id": response_id, "object": "realtime.response", "status": "in_progress", "output": []
                }})),
            );
        }
        match plan {
            Plan::Handoff { input_transcript } => {
                let handoff_id = self.id("handoff");
                let item_id = self.id("item");
                push(
                    &mut self.schedule,
                    at,
                    Step::Frame(json!({
                        "type": "conversation.handoff.requested",
                        "handoff_id": handoff_id, "item_id": item_id, "input_transcript": input_transcript
                    })),
                );
            }
            Plan::Call { name, arguments } => {
                let item_id = self.id("item");
                let call_id = self.id("call");
                let item = json!({"id": item_id, "type": "function_call", "status": "completed",
                    "name": name, "call_id": call_id, "arguments": arguments});
                let mut added = item.clone();
                added["status"] = "in_progress".into();
                added["arguments"] = "".into();
                for f in [
                    json!({"type": "response.output_item.added", "response_id": response_id, "output_index": 0, "item": added}),
                    json!({"type": "conversation.item.added", "item": added}),
                    json!({"type": "response.function_call_arguments.delta", "response_id": response_id,
                        "item_id": item_id, "output_index": 0, "call_id": call_id, "delta": arguments}),
                    json!({"type": "response.function_call_arguments.done", "response_id": response_id,
                        "item_id": item_id, "output_index": 0, "call_id": call_id, "name": name, "arguments": arguments}),
                    json!({"type": "response.output_item.done", "response_id": response_id, "output_index": 0, "item": item}),
                    json!({"type": "conversation.item.done", "item": item}),
                ] {
                    push(&mut self.schedule, at, Step::Frame(f));
                }
            }
            Plan::Speak(text) => {
                let item_id = self.id("item");
                let item = json!({"id": item_id, "type": "message", "role": "assistant",
                    "status": "in_progress", "content": []});
                if v2 {
                    push(
                        &mut self.schedule,
                        at,
                        Step::Frame(json!({"type": "response.output_item.added",
                        "response_id": response_id, "output_index": 0, "item": item})),
                    );
                }
                push(
                    &mut self.schedule,
                    at,
                    Step::Frame(json!({"type": "conversation.item.added", "item": item})),
                );
                let words = split_words(&text);
                let text_only = v2 && self.output_text_only;
                let total_ms = (words.len() as u64 * 200).max(400);
                let chunks = total_ms.div_ceil(self.cfg.chunk_ms).max(1);
                for i in 0..chunks.max(words.len() as u64) {
                    if let Some(word) = words.get(i as usize) {
                        let f = match (v2, text_only) {
                            (true, true) => {
                                json!({"type": "response.output_text.delta", "response_id": response_id,
                                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": word})
                            }
                            (true, false) => {
                                json!({"type": "response.output_audio_transcript.delta", "response_id": response_id,
                                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": word})
                            }
                            (false, _) => {
                                json!({"type": "conversation.output_transcript.delta", "item_id": item_id, "delta": word})
                            }
                        };
                        push(&mut self.schedule, at, Step::Frame(f));
                    }
                    if !text_only && i < chunks {
                        let pcm = audio::tone(self.cfg.chunk_ms, i * self.cfg.chunk_ms * 24);
                        push(
                            &mut self.schedule,
                            at,
                            Step::Audio {
                                item_id: item_id.clone(),
                                response_id: v2.then(|| response_id.clone()),
                                pcm,
                            },
                        );
                        if self.cfg.realtime {
                            at += Duration::from_millis(self.cfg.chunk_ms);
                        }
                    }
                }
                let mut done_item = item.clone();
                done_item["status"] = "completed".into();
                let done = if text_only {
                    json!({"type": "response.output_text.done", "response_id": response_id,
                        "item_id": item_id, "output_index": 0, "content_index": 0, "text": text})
                } else {
                    json!({"type": "response.output_audio_transcript.done", "response_id": response_id,
                        "item_id": item_id, "output_index": 0, "content_index": 0, "transcript": text})
                };
                push(&mut self.schedule, at, Step::Frame(done));
                if v2 && !text_only {
                    push(
                        &mut self.schedule,
                        at,
                        Step::Frame(json!({"type": "response.output_audio.done",
                        "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0})),
                    );
                }
                push(
                    &mut self.schedule,
                    at,
                    Step::Frame(json!({"type": "conversation.item.done", "item": done_item})),
                );
            }
        }
        if v2 {
            push(
                &mut self.schedule,
                at,
                Step::Frame(json!({"type": "response.done", "response": {
                    "id": response_id, "object": "realtime.response", "status": "completed"
                }})),
            );
        }
        push(&mut self.schedule, at, Step::Finish);
        self.handle_timeout(now);
    }

    /// Run every scheduled step due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while self.schedule.front().is_some_and(|s| s.at <= now) {
            let Some(s) = self.schedule.pop_front() else {
                break;
            };
            match s.step {
                Step::Frame(v) => self.emit(v),
                Step::Audio {
                    item_id,
                    response_id,
                    pcm,
                } => self.send_audio_now(&item_id, response_id.as_deref(), &pcm),
                Step::Finish => {
                    self.active = None;
                    self.start_next(now);
                }
            }
        }
    }

    pub(super) fn send_audio_now(&mut self, item_id: &str, response_id: Option<&str>, pcm: &[u8]) {
        *self.sent_samples.entry(item_id.to_owned()).or_default() += (pcm.len() / 2) as u64;
        if let Some(live) = &mut self.live {
            live.add_output_ms(audio::duration_ms(pcm.len()));
        }
        let delta = B64.encode(pcm);
        let frame = match self.version {
            ModelVersion::V2 | ModelVersion::V3 => {
                json!({"type": "response.output_audio.delta", "response_id": response_id,
                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": delta})
            }
            ModelVersion::V1 => {
                json!({"type": "conversation.output_audio.delta", "item_id": item_id,
                "delta": delta, "sample_rate": audio::SAMPLE_RATE, "channels": 1})
            }
        };
        self.echo_offset += (pcm.len() / 2) as u64;
        self.emit(frame);
        if std::mem::take(&mut self.drop_mid_response) {
            self.out.push_back(SimOutput::Drop);
        }
    }
}
