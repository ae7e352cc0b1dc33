//! How `AppState` admits callers and sessions, alone or in a cluster: who a request's caller is
//! (an API key, an `ek_…` secret — from the cluster store when clustered — or a caller another
//! node vouches for), minting secrets, admitting sessions under their key's limits (cluster-wide
//! leases when clustered), joining the cluster, and what the node reports in its heartbeats.

use crate::app::AppState;
use std::sync::Arc;

impl AppState {
    /// Admit a new session for `p`: refused while draining, else the key's limits decide
    /// (cluster-wide when this node is in a cluster).
    pub async fn admit(
        &self,
        p: &crate::auth::Principal,
    ) -> Result<crate::auth::SessionPermit, crate::auth::AuthError> {
        if self.is_draining() {
            return Err(crate::auth::AuthError {
                status: 503,
                code: "draining",
                message: "voxgate is shutting down and accepts no new sessions; retry on another instance"
                    .into(),
            });
        }
        if let Some(cluster) = self.cluster()
            && let Some(lease) = cluster.admit(p).await?
        {
            return Ok(crate::auth::SessionPermit::clustered(p, lease));
        }
        self.auth.admit(p)
    }

    /// This node's cluster, when `[cluster] redis_url` is set and the node listens.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Join the cluster (when configured) as the node listening on `addr`: heartbeats start.
    pub fn join_cluster(self: &Arc<Self>, addr: std::net::SocketAddr) -> Result<(), String> {
        if !self.cfg.cluster.enabled() {
            return Ok(());
        }
        let cluster = crate::cluster::Cluster::new(&self.cfg.cluster, addr)?;
        tracing::info!(node = %cluster.node_id, url = %cluster.url, "joining the cluster");
        let _ = self.cluster.set(cluster.clone());
        let me: Arc<dyn crate::cluster::NodeState> = self.clone();
        cluster.run_heartbeat(Arc::downgrade(&me));
        Ok(())
    }

    /// Who is calling, from a request's headers: a caller another cluster node vouches for,
    /// an `ek_…` secret (from the cluster store when clustered), or an API key.
    pub async fn caller(
        &self,
        headers: &axum::http::HeaderMap,
        allow_secret: bool,
    ) -> Result<crate::auth::Principal, crate::auth::AuthError> {
        let token = crate::auth::bearer(headers);
        let Some(cluster) = self.cluster() else {
            return self.auth.authenticate(token.as_deref(), allow_secret);
        };
        if let Some(vouched) = cluster.vouched(headers) {
            let (key, admin, via_secret) = vouched?;
            return self.auth.principal_for(&key, admin, via_secret, None);
        }
        match token.as_deref() {
            Some(t) if t.starts_with("ek_") && allow_secret => {
                let (key, session) = cluster.secret(t).await?;
                self.auth.principal_for(&key, false, true, session)
            }
            t => self.auth.authenticate(t, allow_secret),
        }
    }

    /// Mint an `ek_…` client secret for `p`: in the cluster store when clustered (valid on
    /// every node), else in this node's memory.
    pub async fn mint_secret(
        &self,
        p: &crate::auth::Principal,
        ttl_secs: u64,
        session: Option<serde_json::Value>,
    ) -> Result<(String, u64), crate::auth::AuthError> {
        match self.cluster() {
            Some(cluster) => {
                self.auth.check_mint(p, ttl_secs)?;
                cluster
                    .mint(
                        &p.key_id,
                        ttl_secs,
                        session,
                        self.auth.max_secrets_per_key(),
                    )
                    .await
            }
            None => self.auth.mint(p, ttl_secs, session),
        }
    }
}

impl crate::cluster::NodeState for AppState {
    fn draining(&self) -> bool {
        self.is_draining()
    }

    fn sessions(&self) -> usize {
        self.sessions.running_count()
    }

    fn holdings(&self) -> crate::session::registry::Holdings {
        self.sessions.holdings()
    }
}
