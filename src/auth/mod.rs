//! Authentication and per-key limits for every face. API keys are stored as SHA-256 hashes and
//! compared in constant time; `ek_…` client secrets are minted per key with a TTL, usable on the
//! realtime faces (never to mint more). A `SessionPermit` holds a key's concurrency slot for the
//! life of a session and carries its maximum duration. Secrets never reach logs or errors.

use crate::config::{AuthConfig, AuthMode, KeyLimits};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An OpenAI-shaped auth failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl AuthError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

pub fn concurrency_error(max: usize) -> AuthError {
    AuthError::new(
        429,
        "concurrent_session_limit",
        format!("This key already has {max} concurrent sessions; close one first."),
    )
}

pub fn rate_error(per_min: usize) -> AuthError {
    AuthError::new(
        429,
        "session_rate_limit",
        format!("This key may start {per_min} sessions per minute; try again shortly."),
    )
}

pub fn secret_cap_error(max: usize) -> AuthError {
    AuthError::new(
        429,
        "client_secret_limit",
        format!("This key has {max} outstanding client secrets."),
    )
}

pub fn invalid_secret_error() -> AuthError {
    AuthError::new(
        401,
        "invalid_client_secret",
        "The client secret is invalid or has been revoked.",
    )
}

pub fn expired_secret_error() -> AuthError {
    AuthError::new(
        401,
        "expired_client_secret",
        "The client secret has expired.",
    )
}

/// A fresh `ek_…` value (192 random bits).
pub fn new_secret_value() -> String {
    format!(
        "ek_{:016x}{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub limits: KeyLimits,
    /// Session configuration bound to the client secret used, if any.
    pub bound_session: Option<Value>,
    pub via_secret: bool,
    /// An operator key (`admin = true`): acts on any key's calls and threads.
    pub admin: bool,
}

impl Principal {
    /// Whose things this principal may act on: its own, or anyone's for an operator.
    pub fn scope(&self) -> Option<&str> {
        (!self.admin).then_some(self.key_id.as_str())
    }
}

struct KeyEntry {
    id: String,
    hash: [u8; 32],
    limits: KeyLimits,
    admin: bool,
}

#[derive(Default)]
struct Usage {
    active: usize,
    recent: VecDeque<Instant>,
}

struct Secret {
    key_id: String,
    expires: Instant,
    session: Option<Value>,
}

pub struct Auth {
    mode: AuthMode,
    keys: Vec<KeyEntry>,
    max_secrets_per_key: usize,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
    secrets: Mutex<HashMap<[u8; 32], Secret>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// Constant-time equality of two hashes.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request: `Authorization: Bearer …`, or the browser websocket form
/// `Sec-WebSocket-Protocol: …, openai-insecure-api-key.<key>`.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(t.trim().to_owned());
    }
    headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("openai-insecure-api-key."))
        })
        .map(str::to_owned)
}

/// Releases the key's concurrency slot when the session ends: this node's count, or (in a
/// cluster) the lease in the shared store.
pub struct SessionPermit {
    key_id: String,
    usage: Option<Arc<Mutex<HashMap<String, Usage>>>>,
    /// Held for its `Drop`, which gives the slot back to the cluster store.
    _lease: Option<crate::cluster::ClusterLease>,
    pub max_duration: Option<Duration>,
}

impl SessionPermit {
    /// A permit backed by a cluster-wide lease.
    pub fn clustered(p: &Principal, lease: crate::cluster::ClusterLease) -> Self {
        Self {
            key_id: p.key_id.clone(),
            usage: None,
            _lease: Some(lease),
            max_duration: p.limits.max_session_secs.map(Duration::from_secs),
        }
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        if let Some(usage) = &self.usage
            && let Some(u) = lock(usage).get_mut(&self.key_id)
        {
            u.active = u.active.saturating_sub(1);
        }
    }
}

impl std::fmt::Debug for SessionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPermit")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Auth {
    pub fn new(cfg: &AuthConfig) -> Self {
        let mut keys: Vec<KeyEntry> = cfg
            .keys
            .iter()
            .filter_map(|k| {
                let bytes = hex::decode(&k.sha256).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                Some(KeyEntry {
                    id: k.id.clone(),
                    hash,
                    limits: k.limits.clone(),
                    admin: k.admin,
                })
            })
            .collect();
        if let Some(var) = &cfg.keys_env {
            for (i, raw) in std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .enumerate()
            {
                keys.push(KeyEntry {
                    id: format!("env-{i}"),
                    hash: sha256(raw),
                    limits: cfg.default_limits.clone(),
                    admin: false,
                });
            }
        }
        Self {
            mode: cfg.mode,
            keys,
            max_secrets_per_key: cfg.max_client_secrets_per_key,
            usage: Arc::default(),
            secrets: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Identify the caller. `allow_secret`: whether an `ek_…` client secret is accepted here.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        allow_secret: bool,
    ) -> Result<Principal, AuthError> {
        self.authenticate_at(token, allow_secret, Instant::now())
    }

    pub fn authenticate_at(
        &self,
        token: Option<&str>,
        allow_secret: bool,
        now: Instant,
    ) -> Result<Principal, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(Principal {
                key_id: "anonymous".into(),
                limits: KeyLimits::default(),
                bound_session: None,
                via_secret: false,
                admin: false,
            });
        }
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            AuthError::new(
                401,
                "missing_api_key",
                "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
            )
        })?;
        let hash = sha256(token);
        if token.starts_with("ek_") {
            if !allow_secret {
                return Err(AuthError::new(
                    403,
                    "client_secret_not_allowed",
                    "Client secrets cannot be used on this endpoint.",
                ));
            }
            let secrets = lock(&self.secrets);
            let found = secrets.iter().find(|(h, _)| same(h, &hash)).map(|(_, s)| s);
            let Some(secret) = found else {
                return Err(invalid_secret_error());
            };
            if secret.expires <= now {
                return Err(expired_secret_error());
            }
            let limits = self
                .keys
                .iter()
                .find(|k| k.id == secret.key_id)
                .map(|k| k.limits.clone())
                .unwrap_or_default();
            return Ok(Principal {
                key_id: secret.key_id.clone(),
                limits,
                bound_session: secret.session.clone(),
                via_secret: true,
                admin: false,
            });
        }
        // Check every key (constant time per key) so timing does not tell which one matched.
        let mut matched = None;
        for k in &self.keys {
            if same(&k.hash, &hash) {
                matched = Some(k);
            }
        }
        let k = matched
            .ok_or_else(|| AuthError::new(401, "invalid_api_key", "Incorrect API key provided."))?;
        Ok(Principal {
            key_id: k.id.clone(),
            limits: k.limits.clone(),
            bound_session: None,
            via_secret: false,
            admin: k.admin,
        })
    }

    /// Admit a new session for `p` under its limits.
    pub fn admit(&self, p: &Principal) -> Result<SessionPermit, AuthError> {
        self.admit_at(p, Instant::now())
    }

    pub fn admit_at(&self, p: &Principal, now: Instant) -> Result<SessionPermit, AuthError> {
        let mut usage = lock(&self.usage);
        let u = usage.entry(p.key_id.clone()).or_default();
        if let Some(max) = p.limits.max_concurrent_sessions
            && u.active >= max
        {
            return Err(concurrency_error(max));
        }
        if let Some(per_min) = p.limits.sessions_per_minute {
            while u
                .recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
            {
                u.recent.pop_front();
            }
            if u.recent.len() >= per_min {
                return Err(rate_error(per_min));
            }
        }
        u.active += 1;
        u.recent.push_back(now);
        Ok(SessionPermit {
            key_id: p.key_id.clone(),
            usage: Some(self.usage.clone()),
            _lease: None,
            max_duration: p.limits.max_session_secs.map(Duration::from_secs),
        })
    }

    /// Mint an `ek_…` secret for `p` (an API key, not a secret). Returns (value, expires_at unix s).
    pub fn mint(
        &self,
        p: &Principal,
        ttl_secs: u64,
        session: Option<Value>,
    ) -> Result<(String, u64), AuthError> {
        self.check_mint(p, ttl_secs)?;
        let now = Instant::now();
        let mut secrets = lock(&self.secrets);
        secrets.retain(|_, s| s.expires > now);
        if secrets.values().filter(|s| s.key_id == p.key_id).count() >= self.max_secrets_per_key {
            return Err(secret_cap_error(self.max_secrets_per_key));
        }
        let value = new_secret_value();
        secrets.insert(
            sha256(&value),
            Secret {
                key_id: p.key_id.clone(),
                expires: now + Duration::from_secs(ttl_secs),
                session,
            },
        );
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok((value, unix + ttl_secs))
    }

    /// Outstanding client secrets a key may hold.
    pub fn max_secrets_per_key(&self) -> usize {
        self.max_secrets_per_key
    }

    /// The principal for `key_id` as this node's key table has it (a caller another cluster
    /// node authenticated, or the owner of a secret stored in the cluster).
    pub fn principal_for(
        &self,
        key_id: &str,
        admin: bool,
        via_secret: bool,
        bound_session: Option<Value>,
    ) -> Result<Principal, AuthError> {
        if self.mode == AuthMode::None {
            return Ok(Principal {
                key_id: key_id.to_owned(),
                limits: KeyLimits::default(),
                bound_session,
                via_secret,
                admin: false,
            });
        }
        let k =
            self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| {
                AuthError::new(401, "invalid_api_key", "Incorrect API key provided.")
            })?;
        Ok(Principal {
            key_id: k.id.clone(),
            limits: k.limits.clone(),
            bound_session,
            via_secret,
            admin: admin && k.admin && !via_secret,
        })
    }

    /// Whether `p` may mint a secret with this lifetime.
    pub fn check_mint(&self, p: &Principal, ttl_secs: u64) -> Result<(), AuthError> {
        if p.via_secret {
            return Err(AuthError::new(
                403,
                "client_secret_not_allowed",
                "Client secrets cannot mint client secrets.",
            ));
        }
        if !(10..=7200).contains(&ttl_secs) {
            return Err(AuthError::new(
                400,
                "invalid_expires_after",
                "expires_after.seconds must be between 10 and 7200.",
            ));
        }
        Ok(())
    }

    /// Revoke a client secret (its holder can no longer start sessions).
    pub fn revoke(&self, value: &str) -> bool {
        let hash = sha256(value);
        let mut secrets = lock(&self.secrets);
        let key = secrets.keys().find(|h| same(h, &hash)).copied();
        key.is_some_and(|k| secrets.remove(&k).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyConfig;

    fn auth(limits: KeyLimits) -> Auth {
        Auth::new(&AuthConfig {
            mode: AuthMode::Keys,
            keys: vec![ApiKeyConfig {
                id: "team".into(),
                sha256: hex::encode(sha256("sk-good")),
                limits,
                admin: false,
            }],
            keys_env: None,
            default_limits: KeyLimits::default(),
            max_client_secrets_per_key: 2,
        })
    }

    #[test]
    fn keys_are_checked_by_hash() {
        let a = auth(KeyLimits::default());
        assert_eq!(
            a.authenticate(Some("sk-good"), false).expect("ok").key_id,
            "team"
        );
        assert_eq!(
            a.authenticate(Some("sk-bad"), false).unwrap_err().status,
            401
        );
        assert_eq!(
            a.authenticate(None, false).unwrap_err().code,
            "missing_api_key"
        );
    }

    #[test]
    fn secrets_expire_are_scoped_and_revocable() {
        let a = auth(KeyLimits::default());
        let key = a.authenticate(Some("sk-good"), false).expect("key");
        let (ek, _) = a.mint(&key, 10, None).expect("mint");
        assert!(ek.starts_with("ek_"));
        assert!(a.authenticate(Some(&ek), true).expect("ok").via_secret);
        assert_eq!(
            a.authenticate(Some(&ek), false).unwrap_err().status,
            403,
            "wrong scope"
        );
        let later = Instant::now() + Duration::from_secs(11);
        assert_eq!(
            a.authenticate_at(Some(&ek), true, later).unwrap_err().code,
            "expired_client_secret"
        );
        assert!(a.revoke(&ek));
        assert_eq!(
            a.authenticate(Some(&ek), true).unwrap_err().code,
            "invalid_client_secret"
        );
        let secret = a
            .authenticate(Some(&{ a.mint(&key, 60, None).expect("mint").0 }), true)
            .expect("ok");
        assert_eq!(
            a.mint(&secret, 60, None).unwrap_err().status,
            403,
            "secrets cannot mint"
        );
        assert_eq!(a.mint(&key, 5, None).unwrap_err().status, 400);
        a.mint(&key, 60, None).expect("second outstanding");
        assert_eq!(
            a.mint(&key, 60, None).unwrap_err().status,
            429,
            "cap on outstanding secrets"
        );
    }

    #[test]
    fn concurrency_and_rate_limits_answer_429_and_permits_release() {
        let a = auth(KeyLimits {
            max_concurrent_sessions: Some(1),
            sessions_per_minute: Some(2),
            max_session_secs: None,
            delegation: true,
        });
        let p = a.authenticate(Some("sk-good"), false).expect("ok");
        let first = a.admit(&p).expect("first");
        assert_eq!(a.admit(&p).unwrap_err().code, "concurrent_session_limit");
        drop(first);
        let second = a.admit(&p).expect("slot released");
        drop(second);
        assert_eq!(a.admit(&p).unwrap_err().code, "session_rate_limit");
        assert!(
            a.admit_at(&p, Instant::now() + Duration::from_secs(61))
                .is_ok()
        );
    }
}
