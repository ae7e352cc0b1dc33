//! `ClientRequest`: one JSON-RPC request decoded into what it asks for — the method recognised,
//! its params typed and checked (an audio payload's format and base64 validated) — before any
//! state is touched. Pure and transport-free: the connection decides what a request may do given
//! its own state (initialized, capabilities); this only says what the request is.

use crate::protocol::AudioChunk;
use crate::protocol::rpc::{self as p, RpcError};
use serde_json::Value;

#[derive(Debug)]
pub enum ClientRequest {
    Initialize(p::InitializeParams),
    Start(Box<p::StartParams>),
    /// A start asking for something voxgate does not do: `{}`, then an `error` naming it.
    StartRefused {
        thread_id: String,
        message: String,
    },
    AppendAudio {
        thread_id: String,
        chunk: AudioChunk,
    },
    AppendText(p::AppendTextParams),
    Stop(p::ThreadParams),
    ListVoices,
    ReadTranscript(p::ThreadParams),
    AppendSpeech(p::AppendSpeechParams),
    /// `thread/start`: a new thread (codex's params configure a coding thread; a realtime-only
    /// app-server takes none of them).
    ThreadStart,
    ThreadResume(p::ThreadParams),
    ThreadUnsubscribe(p::ThreadParams),
}

impl ClientRequest {
    /// Whether `method` is one of the `thread/realtime/*` methods this face serves.
    pub fn is_realtime_method(method: &str) -> bool {
        matches!(
            method,
            p::METHOD_START
                | p::METHOD_APPEND_AUDIO
                | p::METHOD_APPEND_TEXT
                | p::METHOD_STOP
                | p::METHOD_LIST_VOICES
                | p::METHOD_READ_TRANSCRIPT
                | p::METHOD_APPEND_SPEECH
        )
    }

    /// Decode a request: -32601 for a method this face does not serve, -32600 with the detail
    /// for params that do not fit it.
    pub fn decode(method: &str, params: Value) -> Result<Self, RpcError> {
        Ok(match method {
            p::METHOD_INITIALIZE => ClientRequest::Initialize(p::parse_params(params)?),
            p::METHOD_START => match super::start_options::refusal(&params) {
                Some(message) => {
                    let ids: p::ThreadParams = p::parse_params(params)?;
                    ClientRequest::StartRefused {
                        thread_id: ids.thread_id,
                        message,
                    }
                }
                None => ClientRequest::Start(Box::new(p::parse_params(params)?)),
            },
            p::METHOD_APPEND_AUDIO => {
                let params: p::AppendAudioParams = p::parse_params(params)?;
                ClientRequest::AppendAudio {
                    thread_id: params.thread_id,
                    chunk: validate_audio(params.audio)?,
                }
            }
            p::METHOD_APPEND_TEXT => ClientRequest::AppendText(p::parse_params(params)?),
            p::METHOD_STOP => ClientRequest::Stop(p::parse_params(params)?),
            p::METHOD_LIST_VOICES => ClientRequest::ListVoices,
            p::METHOD_READ_TRANSCRIPT => ClientRequest::ReadTranscript(p::parse_params(params)?),
            p::METHOD_APPEND_SPEECH => ClientRequest::AppendSpeech(p::parse_params(params)?),
            p::METHOD_THREAD_START => {
                if !(params.is_null() || params.is_object()) {
                    return Err(RpcError::invalid_params("params must be an object"));
                }
                ClientRequest::ThreadStart
            }
            p::METHOD_THREAD_RESUME => ClientRequest::ThreadResume(p::parse_params(params)?),
            p::METHOD_THREAD_UNSUBSCRIBE => {
                ClientRequest::ThreadUnsubscribe(p::parse_params(params)?)
            }
            _ => {
                return Err(RpcError::new(
                    p::METHOD_NOT_FOUND,
                    format!("Method not found: {method}"),
                ));
            }
        })
    }
}

/// Check appendAudio's payload: real base64 of PCM16 24 kHz mono.
fn validate_audio(a: p::AudioParam) -> Result<AudioChunk, RpcError> {
    if a.sample_rate != 24_000 || a.num_channels != 1 {
        return Err(RpcError::invalid_params(format!(
            "audio must be PCM16 24000 Hz mono (got {} Hz, {} channels)",
            a.sample_rate, a.num_channels
        )));
    }
    let bytes = crate::protocol::model::check_base64(&a.data)
        .map_err(|e| RpcError::invalid_params(format!("audio.data is not valid base64: {e}")))?;
    if bytes % 2 != 0 {
        return Err(RpcError::invalid_params(
            "audio.data has an odd byte count; PCM16 needs 2 bytes per sample",
        ));
    }
    Ok(AudioChunk {
        data: a.data,
        sample_rate: a.sample_rate,
        num_channels: a.num_channels,
        samples_per_channel: a.samples_per_channel,
        item_id: a.item_id,
    })
}
