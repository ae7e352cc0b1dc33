//! `[auth]`: how clients authenticate on every face, API keys (as hashes) and their limits.

use serde::Deserialize;

/// How clients authenticate on every face.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: allowed only when `[server] listen` is a loopback address.
    #[default]
    None,
    /// Every face needs an API key (or, on the realtime faces, a client secret minted with one).
    Keys,
}

/// Limits of one API key (and of the client secrets minted with it).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyLimits {
    pub max_concurrent_sessions: Option<usize>,
    pub sessions_per_minute: Option<usize>,
    pub max_session_secs: Option<u64>,
    /// voxgate delegation on the OpenAI-compatible face for this key.
    pub delegation: bool,
}

impl Default for KeyLimits {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: None,
            sessions_per_minute: None,
            max_session_secs: None,
            delegation: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and metrics (never the key).
    pub id: String,
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`); the key itself is never stored.
    pub sha256: String,
    #[serde(default)]
    pub limits: KeyLimits,
    /// An operator key: may hang up, observe and stop any key's calls and threads.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub keys: Vec<ApiKeyConfig>,
    /// Environment variable with comma-separated raw keys (hashed at start; limits: default_limits).
    pub keys_env: Option<String>,
    pub default_limits: KeyLimits,
    /// Outstanding client secrets per key.
    pub max_client_secrets_per_key: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthMode::None,
            keys: Vec::new(),
            keys_env: None,
            default_limits: KeyLimits::default(),
            max_client_secrets_per_key: 100,
        }
    }
}
