//! Sessions whose client is a websocket voxgate hands to the session reactor: an
//! OpenAI-protocol client (`/v1/realtime`) and a GPT-Live-dialect client (`/v1/live`,
//! `/v1/live/sessions`). Each is validated and prepared like any start, then launched with its
//! socket; a start that cannot be prepared gives the socket back with why.

use super::*;
use crate::session::live_codec::{LiveCodec, LiveDialect, LiveOpening};
use axum::extract::ws::WebSocket;

/// A refused socket start: the socket back, and why.
pub type SocketRefused = Box<(WebSocket, String)>;

/// The owner a session is recorded under.
fn owner_of(principal: Option<&crate::auth::Principal>) -> String {
    principal.map_or_else(|| "anonymous".to_owned(), |p| p.key_id.clone())
}

impl AppState {
    /// A websocket client's start, prepared (model URL included), its slot and owner set.
    fn prepare_socket_start(
        &self,
        p: &StartParams,
        socket: Box<WebSocket>,
        principal: Option<&crate::auth::Principal>,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(Prepared, String, Box<WebSocket>), SocketRefused> {
        let prepared = self
            .prepare(p)
            .and_then(|prep| self.model_url(&prep).map(|url| (prep, url)));
        match prepared {
            Ok((mut prep, url)) => {
                prep.permit = permit;
                prep.owner = owner_of(principal);
                Ok((prep, url, socket))
            }
            Err(message) => Err(Box::new((*socket, message))),
        }
    }

    /// Start a session for an OpenAI-protocol websocket client (`GET /v1/realtime?model=…`):
    /// raw events both ways, voxgate's delegation added when `[openai] delegation` is on.
    pub fn start_openai_session(
        &self,
        thread_id: &str,
        model: Option<String>,
        v1: bool,
        socket: Box<WebSocket>,
        principal: Option<&crate::auth::Principal>,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(), SocketRefused> {
        let version = if v1 {
            ModelVersion::V1
        } else {
            ModelVersion::V2
        };
        let mut p = StartParams::websocket(thread_id, version);
        p.model = model;
        let (prep, url, socket) = self.prepare_socket_start(&p, socket, principal, permit)?;
        let delegation =
            self.cfg.openai.delegation && principal.is_none_or(|p| p.limits.delegation);
        // The client configures its own session (or a client secret's bound one); voxgate only
        // adds its tools (or nothing).
        let session_type = if v1 { "quicksilver" } else { "realtime" };
        let mut session = principal
            .and_then(|p| p.bound_session.clone())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({"type": session_type}));
        if delegation && !v1 {
            session["tools"] = session_config::delegation_tools();
            session["tool_choice"] = "auto".into();
        }
        self.launch(
            thread_id,
            prep,
            url,
            Launch::OpenAi {
                socket,
                session,
                delegation,
            },
        );
        Ok(())
    }

    /// Start the conversation of a GPT-Live-dialect client that opened with `opening`: voxgate's
    /// session toward the model (`[upstream] version`) with the client's instructions, voice
    /// (when the model's palette has it) and conversation so far; delegation on voxgate's agent
    /// cores, or the client's own (GPT-Live `client` mode) with `[openai] delegation = false`.
    pub fn start_live_session(
        &self,
        thread_id: &str,
        dialect: LiveDialect,
        opening: LiveOpening,
        socket: Box<WebSocket>,
        principal: Option<&crate::auth::Principal>,
        permit: Option<crate::auth::SessionPermit>,
    ) -> Result<(), SocketRefused> {
        let version = self.cfg.upstream.version;
        let mut p = StartParams::websocket(thread_id, version);
        p.voice = opening
            .voice
            .filter(|v| session_config::voices(version).contains(&v.as_str()));
        p.prompt = opening
            .instructions
            .map_or(Default::default(), session_config::PromptParam::Text);
        // A GPT-Live model name means something to a GPT-Live model only.
        p.model = opening.model.filter(|_| version == ModelVersion::V3);
        p.mode = Some(SessionMode::Conversational);
        let (mut prep, url, socket) = self.prepare_socket_start(&p, socket, principal, permit)?;
        session_config::append_conversation_so_far(
            &mut prep.settings.instructions,
            &opening.initial_items,
        );
        let mut codec = LiveCodec::new(dialect, prep.session_id.clone(), prep.model.clone());
        // A client that delegates on its own (codex): GPT-Live's `client` mode, to it.
        if !self.cfg.openai.delegation {
            codec = codec.with_client_delegation();
        }
        let delegation = principal.is_none_or(|p| p.limits.delegation);
        self.launch(
            thread_id,
            prep,
            url,
            Launch::Live {
                socket,
                codec,
                delegation,
            },
        );
        Ok(())
    }
}
