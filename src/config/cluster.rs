//! `[cluster]`: running several voxgate nodes as one gateway over a shared Redis. Unset
//! `redis_url` (the default) is a single node with everything in memory, exactly as before.

use serde::Deserialize;

/// What new sessions do while the cluster store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreDown {
    /// Refuse them with 503: per-key limits cannot be enforced cluster-wide.
    #[default]
    Refuse,
    /// Admit them under this node's own (per-node) limits.
    Local,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://host:port/db` (or `redis+unix:///path/redis.sock`); unset: a single node, nothing shared.
    pub redis_url: Option<String>,
    /// This node's name in the cluster; default: generated at start.
    pub node_id: Option<String>,
    /// How other nodes reach this node's HTTP (`http://10.0.0.5:8080`); default: the listen
    /// address as bound.
    pub advertise_url: Option<String>,
    /// How often this node refreshes its records; a dead node's expire within 3× this.
    pub heartbeat_secs: u64,
    /// The secret nodes present to each other when they forward a request (same on every
    /// node; prefer the env variable `VOXGATE_CLUSTER__SECRET`). Never logged.
    pub secret: Option<String>,
    pub on_store_down: OnStoreDown,
    /// Prefix of every Redis key voxgate writes (several clusters may share one Redis).
    pub key_prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            node_id: None,
            advertise_url: None,
            heartbeat_secs: 5,
            secret: None,
            on_store_down: OnStoreDown::Refuse,
            key_prefix: "voxgate".into(),
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        self.redis_url.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        let invalid = |key: &'static str, message: &str| super::ConfigError::Invalid {
            key,
            message: message.into(),
        };
        let Some(url) = &self.redis_url else {
            return Ok(());
        };
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|s| url.starts_with(s))
        {
            return Err(invalid(
                "cluster.redis_url",
                "must be a redis://, rediss:// or redis+unix:// URL",
            ));
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs > 300 {
            return Err(invalid(
                "cluster.heartbeat_secs",
                "must be between 1 and 300",
            ));
        }
        match &self.secret {
            Some(s) if s.len() >= 16 => {}
            _ => {
                return Err(invalid(
                    "cluster.secret",
                    "a cluster needs a shared secret of at least 16 characters (set \
                     VOXGATE_CLUSTER__SECRET on every node)",
                ));
            }
        }
        if let Some(u) = &self.advertise_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(invalid(
                "cluster.advertise_url",
                "must be an http:// or https:// URL",
            ));
        }
        if let Some(id) = &self.node_id
            && (id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(invalid(
                "cluster.node_id",
                "letters, digits, `-` and `_`, at most 64",
            ));
        }
        Ok(())
    }
}
