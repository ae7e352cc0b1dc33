//! `ClusterStore`: every Redis operation voxgate makes, and nothing else. Each record carries a
//! TTL so a dead node's entries expire on their own: client secrets (their own lifetime), key
//! leases and ownership records (3 heartbeats, refreshed by the owner's heartbeat). Limits are
//! checked and taken in one Lua script, on the store's clock, so they hold exactly under
//! concurrency across nodes. Every round trip is bounded; a failure is an error, never a wait.
//! Heartbeats re-add this node's leases and records, so a Redis that restarted empty learns
//! again what runs (a lease released just as a heartbeat re-adds it lingers for one TTL).

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A round trip that takes longer than this counts as the store being down.
const ROUND_TRIP: Duration = Duration::from_millis(1500);

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
#[error("cluster store unavailable: {0}")]
pub struct StoreDown(pub String);

/// What admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    ConcurrencyLimit,
    RateLimit,
}

/// A client secret as stored: whose it is, its bound session, when it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSecret {
    pub key: String,
    #[serde(default)]
    pub session: Option<serde_json::Value>,
    /// Expiry, Unix milliseconds.
    pub exp: u64,
}

/// Another node as it announces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub url: String,
    pub draining: bool,
}

/// Who owns a call: the node running it and the key that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOwner {
    pub node: String,
    pub owner: String,
}

/// What one heartbeat writes.
pub struct Heartbeat<'a> {
    pub node: &'a str,
    pub url: &'a str,
    pub draining: bool,
    pub sessions: usize,
    /// `(call_id, owner)` of every call running here.
    pub calls: &'a [(String, String)],
    /// `(owner, thread_id)` of every thread this node holds.
    pub threads: &'a [(String, String)],
    /// `(key_id, lease)` of every session admitted here and still running.
    pub leases: &'a [(String, String)],
}

const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local maxc = tonumber(ARGV[2])
if maxc >= 0 and redis.call('ZCARD', KEYS[1]) >= maxc then return 1 end
local perm = tonumber(ARGV[3])
if perm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[2]) >= perm then return 2 end
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 61000)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[4])
return 0
";

const REFRESH_LEASES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 1])
end
return #KEYS
";

const MINT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
return 1
";

const LIVE_NODES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

#[derive(Clone)]
pub struct ClusterStore {
    conn: ConnectionManager,
    prefix: String,
    /// How long a record lives without a heartbeat (3 heartbeats).
    ttl: Duration,
    admit: std::sync::Arc<redis::Script>,
    refresh: std::sync::Arc<redis::Script>,
    mint: std::sync::Arc<redis::Script>,
    live: std::sync::Arc<redis::Script>,
}

fn count(op: &'static str) {
    crate::metrics::CLUSTER_STORE_OPS
        .with_label_values(&[op])
        .inc();
}

/// A part of a key that came from a client: length-prefixed, so `a:b`+`c` and `a`+`b:c` differ.
fn part(s: &str) -> String {
    format!("{}:{s}", s.len())
}

impl ClusterStore {
    /// A store on `url`, connected lazily and reconnected with backoff by the connection
    /// manager; nothing here waits for Redis to be up.
    pub fn open(url: &str, prefix: &str, ttl: Duration) -> Result<Self, StoreDown> {
        let client = redis::Client::open(url).map_err(|e| StoreDown(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(ROUND_TRIP))
            .set_response_timeout(Some(ROUND_TRIP))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreDown(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            ttl,
            admit: std::sync::Arc::new(redis::Script::new(ADMIT)),
            refresh: std::sync::Arc::new(redis::Script::new(REFRESH_LEASES)),
            mint: std::sync::Arc::new(redis::Script::new(MINT)),
            live: std::sync::Arc::new(redis::Script::new(LIVE_NODES)),
        })
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}:{kind}:{rest}", self.prefix)
    }

    fn secret_key(&self, hash_hex: &str) -> String {
        self.key("ek", hash_hex)
    }

    fn lease_key(&self, key_id: &str) -> String {
        self.key("lease", &part(key_id))
    }

    fn call_key(&self, call_id: &str) -> String {
        self.key("call", &part(call_id))
    }

    fn thread_key(&self, owner: &str, thread_id: &str) -> String {
        self.key("thread", &format!("{}:{}", part(owner), part(thread_id)))
    }

    fn node_key(&self, node: &str) -> String {
        self.key("node", node)
    }

    /// One bounded round trip; any failure (including a timeout) is `StoreDown`.
    async fn bounded<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreDown> {
        count(op);
        match tokio::time::timeout(ROUND_TRIP, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                crate::metrics::CLUSTER_STORE_ERRORS.inc();
                Err(StoreDown(format!("{op}: {:?}", e.kind())))
            }
            Err(_) => {
                crate::metrics::CLUSTER_STORE_ERRORS.inc();
                Err(StoreDown(format!("{op}: timed out")))
            }
        }
    }

    /// Take a session slot for `key_id` under its limits (`None`: no limit), as `lease`.
    pub async fn admit(
        &self,
        key_id: &str,
        lease: &str,
        max_concurrent: Option<usize>,
        per_minute: Option<usize>,
    ) -> Result<Admission, StoreDown> {
        let limit = |v: Option<usize>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut conn = self.conn.clone();
        let mut inv = self.admit.key(self.lease_key(key_id));
        inv.key(self.key("rate", &part(key_id)))
            .arg(self.ttl_ms())
            .arg(limit(max_concurrent))
            .arg(limit(per_minute))
            .arg(lease);
        let code: i64 = self.bounded("admit", inv.invoke_async(&mut conn)).await?;
        Ok(match code {
            0 => Admission::Admitted,
            1 => Admission::ConcurrencyLimit,
            _ => Admission::RateLimit,
        })
    }

    /// Give a session slot back.
    pub async fn release(&self, key_id: &str, lease: &str) -> Result<(), StoreDown> {
        let mut conn = self.conn.clone();
        let key = self.lease_key(key_id);
        self.bounded("release", conn.zrem::<_, _, ()>(key, lease))
            .await
    }

    /// Store a client secret (by its hash) unless `key_id` already has `max` outstanding.
    /// `false`: at the cap.
    pub async fn mint_secret(
        &self,
        hash_hex: &str,
        secret: &StoredSecret,
        ttl: Duration,
        max: usize,
    ) -> Result<bool, StoreDown> {
        // Kept past its expiry for a minute so a late use is told "expired", not "invalid".
        let keep_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX) + 60_000;
        let value = serde_json::to_string(secret).map_err(|e| StoreDown(e.to_string()))?;
        let mut conn = self.conn.clone();
        let mut inv = self.mint.key(self.key("eks", &part(&secret.key)));
        inv.key(self.secret_key(hash_hex))
            .arg(keep_ms)
            .arg(max)
            .arg(hash_hex)
            .arg(value);
        let stored: i64 = self.bounded("mint", inv.invoke_async(&mut conn)).await?;
        Ok(stored == 1)
    }

    pub async fn secret(&self, hash_hex: &str) -> Result<Option<StoredSecret>, StoreDown> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = self
            .bounded("secret", conn.get(self.secret_key(hash_hex)))
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub async fn revoke_secret(&self, hash_hex: &str, key_id: &str) -> Result<bool, StoreDown> {
        let mut conn = self.conn.clone();
        let (removed, _): (i64, i64) = self
            .bounded(
                "revoke",
                redis::pipe()
                    .del(self.secret_key(hash_hex))
                    .zrem(self.key("eks", &part(key_id)), hash_hex)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(removed > 0)
    }

    /// Say at once that this node runs `call_id` for `owner` (the heartbeat keeps it alive).
    pub async fn own_call(&self, node: &str, call_id: &str, owner: &str) -> Result<(), StoreDown> {
        let mut conn = self.conn.clone();
        let ttl = self.ttl_ms();
        self.bounded(
            "own",
            conn.pset_ex::<_, _, ()>(self.call_key(call_id), format!("{node}\t{owner}"), ttl),
        )
        .await
    }

    /// Say at once that this node holds `owner`'s `thread_id`.
    pub async fn own_thread(
        &self,
        node: &str,
        owner: &str,
        thread_id: &str,
    ) -> Result<(), StoreDown> {
        let mut conn = self.conn.clone();
        let ttl = self.ttl_ms();
        self.bounded(
            "own",
            conn.pset_ex::<_, _, ()>(self.thread_key(owner, thread_id), node, ttl),
        )
        .await
    }

    pub async fn call_owner(&self, call_id: &str) -> Result<Option<CallOwner>, StoreDown> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = self
            .bounded("lookup", conn.get(self.call_key(call_id)))
            .await?;
        Ok(raw.and_then(|r| {
            let (node, owner) = r.split_once('\t')?;
            Some(CallOwner {
                node: node.to_owned(),
                owner: owner.to_owned(),
            })
        }))
    }

    pub async fn thread_node(
        &self,
        owner: &str,
        thread_id: &str,
    ) -> Result<Option<String>, StoreDown> {
        let mut conn = self.conn.clone();
        self.bounded("lookup", conn.get(self.thread_key(owner, thread_id)))
            .await
    }

    pub async fn node(&self, node: &str) -> Result<Option<NodeRecord>, StoreDown> {
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> = self
            .bounded("lookup", conn.hgetall(self.node_key(node)))
            .await?;
        Ok(fields.get("url").map(|url| NodeRecord {
            url: url.clone(),
            draining: fields.get("draining").is_some_and(|d| d == "1"),
        }))
    }

    /// Refresh everything this node owns, in one pipeline; then read the live nodes and their
    /// session counts. Returns (live nodes, sessions across them).
    pub async fn heartbeat(&self, hb: &Heartbeat<'_>) -> Result<(usize, usize), StoreDown> {
        let ttl = self.ttl_ms();
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        let node_key = self.node_key(hb.node);
        pipe.hset_multiple(
            &node_key,
            &[
                ("url", hb.url.to_owned()),
                ("draining", if hb.draining { "1" } else { "0" }.to_owned()),
                ("sessions", hb.sessions.to_string()),
            ],
        )
        .ignore()
        .pexpire(&node_key, i64::try_from(ttl).unwrap_or(i64::MAX))
        .ignore();
        for (call, owner) in hb.calls {
            pipe.pset_ex(self.call_key(call), format!("{}\t{owner}", hb.node), ttl)
                .ignore();
        }
        for (owner, thread) in hb.threads {
            pipe.pset_ex(self.thread_key(owner, thread), hb.node, ttl)
                .ignore();
        }
        let nodes_key = self.key("nodes", "all");
        self.bounded("heartbeat", pipe.query_async::<()>(&mut conn))
            .await?;
        if !hb.leases.is_empty() {
            let mut inv = self.refresh.prepare_invoke();
            for (key_id, _) in hb.leases {
                inv.key(self.lease_key(key_id));
            }
            inv.arg(ttl);
            for (_, lease) in hb.leases {
                inv.arg(lease);
            }
            let _: i64 = self
                .bounded("heartbeat", inv.invoke_async(&mut conn))
                .await?;
        }
        let mut inv = self.live.key(&nodes_key);
        inv.arg(ttl).arg(hb.node);
        let live: Vec<String> = self
            .bounded("heartbeat", inv.invoke_async(&mut conn))
            .await?;
        let mut sessions = 0;
        for node in &live {
            let n: Option<usize> = self
                .bounded("heartbeat", conn.hget(self.node_key(node), "sessions"))
                .await?;
            sessions += n.unwrap_or(0);
        }
        Ok((live.len(), sessions))
    }

    /// Say this node is gone (a clean exit): its record goes at once, not after its TTL.
    pub async fn leave(&self, node: &str) -> Result<(), StoreDown> {
        let mut conn = self.conn.clone();
        self.bounded(
            "leave",
            redis::pipe()
                .del(self.node_key(node))
                .zrem(self.key("nodes", "all"), node)
                .query_async::<()>(&mut conn),
        )
        .await
    }
}
