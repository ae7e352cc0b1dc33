//! Cluster mode: several voxgate nodes behind a load balancer acting as one gateway, sharing
//! state through Redis (`[cluster] redis_url`). This module owns the node's membership (its
//! heartbeat, its draining flag, its exit), the cluster-wide parts of tenancy (client secrets,
//! per-key leases and rate counters) and the ownership records that let any node route a
//! request naming a call or thread to the node that runs it. Without `redis_url` nothing here
//! exists and every node is on its own, as before.
//!
//! Nodes trust each other through a shared secret (`[cluster] secret`): a forwarded request
//! carries it and the caller's key *id* (never the caller's key), which the owner checks
//! against its own copy of the key table exactly as for a local caller.

mod app_state;
pub mod forward;
pub mod rpc_link;
pub mod store;

use crate::auth::{AuthError, Principal};
use crate::config::{ClusterConfig, OnStoreDown};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use store::{Admission, ClusterStore, StoreDown};

/// Headers a node adds when it forwards a request to the owner of a call or thread.
pub const AUTH_HEADER: &str = "x-voxgate-cluster-auth";
pub const KEY_HEADER: &str = "x-voxgate-cluster-key";
pub const FLAGS_HEADER: &str = "x-voxgate-cluster-flags";

/// Where a call or thread runs, as far as this node can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On this node (or nowhere the store knows of): handle it here.
    Local,
    /// On another live node, reachable at `url`.
    Remote { node: String, url: String },
    /// Its owner's record names a node that is gone: the call or thread is gone with it.
    Gone,
}

/// A session slot held in the cluster store; given back when dropped.
pub struct ClusterLease {
    cluster: Weak<Cluster>,
    key_id: String,
    lease: String,
}

impl Drop for ClusterLease {
    fn drop(&mut self) {
        let Some(cluster) = self.cluster.upgrade() else {
            return;
        };
        lock(&cluster.leases).remove(&self.lease);
        let (key_id, lease) = (
            std::mem::take(&mut self.key_id),
            std::mem::take(&mut self.lease),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // Not given back (store down): it expires with the next missed heartbeat.
                if let Err(e) = cluster.store.release(&key_id, &lease).await {
                    cluster.store_failed(&e);
                }
            });
        }
    }
}

pub struct Cluster {
    pub node_id: String,
    /// How other nodes reach this node.
    pub url: String,
    store: ClusterStore,
    secret: String,
    on_store_down: OnStoreDown,
    heartbeat: Duration,
    up: AtomicBool,
    /// lease id → key id of every session admitted here and still running.
    leases: Mutex<HashMap<String, String>>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Constant-time string equality (the cluster secret).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (crate::auth::sha256(a), crate::auth::sha256(b));
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What this node is and holds right now, read for each heartbeat.
pub trait NodeState: Send + Sync {
    fn draining(&self) -> bool;
    fn sessions(&self) -> usize;
    fn holdings(&self) -> crate::session::registry::Holdings;
}

impl Cluster {
    /// Join the cluster described by `cfg` as a node reachable at `listen` (unless
    /// `advertise_url` says otherwise). Nothing waits for Redis: the heartbeat says when it is
    /// reached, and the store reconnects by itself.
    pub fn new(cfg: &ClusterConfig, listen: std::net::SocketAddr) -> Result<Arc<Self>, String> {
        let url = cfg.redis_url.as_deref().ok_or("no [cluster] redis_url")?;
        let heartbeat = Duration::from_secs(cfg.heartbeat_secs.max(1));
        let store = ClusterStore::open(url, &cfg.key_prefix, heartbeat * 3)
            .map_err(|e| format!("[cluster] redis_url: {e}"))?;
        let node_id = cfg
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff));
        let url = cfg
            .advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        crate::metrics::CLUSTER_STORE_UP.set(0);
        Ok(Arc::new(Self {
            node_id,
            url,
            store,
            secret: cfg.secret.clone().unwrap_or_default(),
            on_store_down: cfg.on_store_down,
            heartbeat,
            up: AtomicBool::new(false),
            leases: Mutex::new(HashMap::new()),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?,
        }))
    }

    pub fn store_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    fn store_failed(&self, e: &StoreDown) {
        if self.up.swap(false, Ordering::SeqCst) {
            tracing::warn!(error = %e, node = %self.node_id,
                "cluster store unreachable: running sessions go on; new ones follow [cluster] on_store_down");
        }
        crate::metrics::CLUSTER_STORE_UP.set(0);
    }

    fn store_ok(&self) {
        if !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!(node = %self.node_id, url = %self.url, "cluster store reachable");
        }
        crate::metrics::CLUSTER_STORE_UP.set(1);
    }

    /// Heartbeat until the process ends: refresh this node's record, its ownership records
    /// and leases; one right away so the node is routable as soon as it listens.
    pub fn run_heartbeat(self: &Arc<Self>, node: Weak<dyn NodeState>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let (Some(cluster), Some(node)) = (me.upgrade(), node.upgrade()) else {
                    return;
                };
                cluster.beat(node.as_ref()).await;
                let every = cluster.heartbeat;
                drop((cluster, node));
                tokio::time::sleep(every).await;
            }
        });
    }

    /// One heartbeat (also sent at once when the node starts draining).
    pub async fn beat(&self, node: &dyn NodeState) {
        let held = node.holdings();
        let leases: Vec<(String, String)> = lock(&self.leases)
            .iter()
            .map(|(lease, key)| (key.clone(), lease.clone()))
            .collect();
        let hb = store::Heartbeat {
            node: &self.node_id,
            url: &self.url,
            draining: node.draining(),
            sessions: node.sessions(),
            calls: &held.calls,
            threads: &held.threads,
            leases: &leases,
        };
        match self.store.heartbeat(&hb).await {
            Ok((nodes, sessions)) => {
                self.store_ok();
                crate::metrics::CLUSTER_NODES.set(i64::try_from(nodes).unwrap_or(i64::MAX));
                crate::metrics::CLUSTER_SESSIONS.set(i64::try_from(sessions).unwrap_or(i64::MAX));
            }
            Err(e) => self.store_failed(&e),
        }
    }

    /// A clean exit: this node's record goes now rather than after its TTL.
    pub async fn leave(&self) {
        if let Err(e) = self.store.leave(&self.node_id).await {
            tracing::debug!(error = %e, "could not say goodbye to the cluster store");
        }
    }

    /// Admit a session for `p` under its key's cluster-wide limits. `Ok(None)`: the store is
    /// down and `on_store_down = "local"`, so the caller admits it under this node's limits.
    pub async fn admit(self: &Arc<Self>, p: &Principal) -> Result<Option<ClusterLease>, AuthError> {
        let lease = format!("{}:{:016x}", self.node_id, rand::random::<u64>());
        match self
            .store
            .admit(
                &p.key_id,
                &lease,
                p.limits.max_concurrent_sessions,
                p.limits.sessions_per_minute,
            )
            .await
        {
            Ok(Admission::Admitted) => {
                self.store_ok();
                lock(&self.leases).insert(lease.clone(), p.key_id.clone());
                Ok(Some(ClusterLease {
                    cluster: Arc::downgrade(self),
                    key_id: p.key_id.clone(),
                    lease,
                }))
            }
            Ok(Admission::ConcurrencyLimit) => Err(crate::auth::concurrency_error(
                p.limits.max_concurrent_sessions.unwrap_or(0),
            )),
            Ok(Admission::RateLimit) => Err(crate::auth::rate_error(
                p.limits.sessions_per_minute.unwrap_or(0),
            )),
            Err(e) => {
                self.store_failed(&e);
                self.when_down()
            }
        }
    }

    /// What a request that needs the store does while it is down.
    fn when_down<T>(&self) -> Result<Option<T>, AuthError> {
        match self.on_store_down {
            OnStoreDown::Local => Ok(None),
            OnStoreDown::Refuse => Err(store_down_error()),
        }
    }

    /// Mint a client secret for `key_id` valid on every node. Returns (value, unix expiry s).
    pub async fn mint(
        &self,
        key_id: &str,
        ttl_secs: u64,
        session: Option<serde_json::Value>,
        max: usize,
    ) -> Result<(String, u64), AuthError> {
        let value = crate::auth::new_secret_value();
        let exp_ms = crate::protocol::rpc::now_ms() + ttl_secs * 1000;
        let stored = store::StoredSecret {
            key: key_id.to_owned(),
            session,
            exp: exp_ms,
        };
        let hash = hex::encode(crate::auth::sha256(&value));
        match self
            .store
            .mint_secret(&hash, &stored, Duration::from_secs(ttl_secs), max)
            .await
        {
            Ok(true) => Ok((value, exp_ms / 1000)),
            Ok(false) => Err(crate::auth::secret_cap_error(max)),
            Err(e) => {
                self.store_failed(&e);
                Err(store_down_error())
            }
        }
    }

    /// The stored secret `token` names: (key id, bound session), or why it cannot be used.
    pub async fn secret(
        &self,
        token: &str,
    ) -> Result<(String, Option<serde_json::Value>), AuthError> {
        let hash = hex::encode(crate::auth::sha256(token));
        match self.store.secret(&hash).await {
            Ok(Some(s)) if s.exp > crate::protocol::rpc::now_ms() => Ok((s.key, s.session)),
            Ok(Some(_)) => Err(crate::auth::expired_secret_error()),
            Ok(None) => Err(crate::auth::invalid_secret_error()),
            Err(e) => {
                self.store_failed(&e);
                Err(store_down_error())
            }
        }
    }

    /// Revoke a client secret everywhere.
    pub async fn revoke(&self, token: &str, key_id: &str) -> bool {
        let hash = hex::encode(crate::auth::sha256(token));
        self.store
            .revoke_secret(&hash, key_id)
            .await
            .unwrap_or(false)
    }

    /// Say now (not at the next heartbeat) that this node runs call `call_id` for `owner`.
    pub async fn claim_call(&self, call_id: &str, owner: &str) {
        let res = async {
            self.store.own_call(&self.node_id, call_id, owner).await?;
            self.store.own_thread(&self.node_id, owner, call_id).await
        }
        .await;
        if let Err(e) = res {
            self.store_failed(&e);
        }
    }

    /// Say now that this node holds `owner`'s thread `thread_id`.
    pub async fn claim_thread(&self, owner: &str, thread_id: &str) {
        if let Err(e) = self.store.own_thread(&self.node_id, owner, thread_id).await {
            self.store_failed(&e);
        }
    }

    async fn route_to(&self, node: Option<String>) -> Route {
        let Some(node) = node else {
            return Route::Local;
        };
        if node == self.node_id {
            return Route::Local;
        }
        match self.store.node(&node).await {
            Ok(Some(rec)) => Route::Remote { node, url: rec.url },
            Ok(None) => Route::Gone,
            Err(e) => {
                self.store_failed(&e);
                Route::Local
            }
        }
    }

    /// Where call `call_id` runs, for `scope` (a key id; `None`: an operator). Another key's
    /// call is `Local` (this node then answers "not found", revealing nothing).
    pub async fn route_call(&self, scope: Option<&str>, call_id: &str) -> Route {
        match self.store.call_owner(call_id).await {
            Ok(Some(o)) if scope.is_none_or(|s| s == o.owner) => self.route_to(Some(o.node)).await,
            Ok(_) => Route::Local,
            Err(e) => {
                self.store_failed(&e);
                Route::Local
            }
        }
    }

    /// Whether call `call_id` runs somewhere in the cluster for a key other than `owner`
    /// (unknown, or the store down: `false`).
    pub async fn call_of_another_key(&self, call_id: &str, owner: &str) -> bool {
        match self.store.call_owner(call_id).await {
            Ok(Some(o)) => o.owner != owner,
            Ok(None) => false,
            Err(e) => {
                self.store_failed(&e);
                false
            }
        }
    }

    /// Where `owner`'s thread `thread_id` lives.
    pub async fn route_thread(&self, owner: &str, thread_id: &str) -> Route {
        match self.store.thread_node(owner, thread_id).await {
            Ok(node) => self.route_to(node).await,
            Err(e) => {
                self.store_failed(&e);
                Route::Local
            }
        }
    }

    /// The caller a forwarding node vouches for: `None` when the request was not forwarded
    /// (no cluster header), an error when the header is there but the secret is wrong.
    pub fn vouched(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Option<Result<(String, bool, bool), AuthError>> {
        let presented = headers.get(AUTH_HEADER)?;
        let ok = presented
            .to_str()
            .is_ok_and(|p| !self.secret.is_empty() && same(p, &self.secret));
        if !ok {
            return Some(Err(AuthError {
                status: 401,
                code: "invalid_cluster_secret",
                message: "The cluster secret is not this cluster's.".into(),
            }));
        }
        let key = headers
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let flags = headers
            .get(FLAGS_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let admin = flags.split(',').any(|f| f == "admin");
        let via_secret = flags.split(',').any(|f| f == "secret");
        Some(Ok((key, admin, via_secret)))
    }

    /// The headers that make the owner node treat a forwarded request as `p`'s.
    pub fn vouch_headers(&self, p: &Principal) -> Vec<(&'static str, String)> {
        let mut flags = Vec::new();
        if p.admin {
            flags.push("admin");
        }
        if p.via_secret {
            flags.push("secret");
        }
        vec![
            (AUTH_HEADER, self.secret.clone()),
            (KEY_HEADER, p.key_id.clone()),
            (FLAGS_HEADER, flags.join(",")),
        ]
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// 503 while the store is down and `on_store_down = "refuse"`.
pub fn store_down_error() -> AuthError {
    AuthError {
        status: 503,
        code: "cluster_store_unavailable",
        message: "The cluster store is unreachable, so per-key limits cannot be enforced; new \
                  sessions are refused until it is back. Retry shortly."
            .into(),
    }
}
