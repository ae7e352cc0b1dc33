//! TLS on voxgate's listener (rustls, aws-lc-rs): `https://` and `wss://` for every face, so a
//! browser off localhost may use the microphone and SDKs that insist on `wss://` connect. The
//! certificate comes from `[server] tls_cert`/`tls_key` (PEM), or `voxgate serve --dev-tls`
//! makes a self-signed one for a LAN demo (written next to nothing secret: the key stays in
//! memory; the certificate is written so a client can trust it).
//!
//! [`TlsListener`] keeps the accept loop free of handshakes: each runs in its own task, bounded
//! in time by the request timeout and in number by [`MAX_HANDSHAKES`] (beyond it, connections
//! wait in the kernel's backlog); a finished handshake is handed to hyper under the same
//! head-deadline rule as plain connections.

use super::head_deadline::HeadDeadlineIo;
use anyhow::Context as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// TLS handshakes in flight at once.
pub const MAX_HANDSHAKES: usize = 256;

/// A server certificate ready to serve, and how to recognise it.
pub struct TlsIdentity {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate (hex, colon-separated), for logs and pinning.
    pub fingerprint: String,
}

fn identity(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<TlsIdentity> {
    let leaf = chain
        .first()
        .context("the certificate file holds no certificate")?;
    use sha2::Digest as _;
    let fingerprint = sha2::Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}

/// Load `[server] tls_cert` (PEM chain, leaf first) and `tls_key` (PEM private key).
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<TlsIdentity> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("server.tls_cert: reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!(
                "server.tls_cert: {} is not a PEM certificate chain",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        anyhow::bail!(
            "server.tls_cert: {} holds no PEM certificate",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("server.tls_key: {} is not a PEM private key", key.display()))?;
    identity(chain, key)
}

/// A self-signed certificate for `hosts` (names and IP addresses), its PEM written to `dir`
/// (the private key never leaves memory). Returns the identity and the certificate's path.
pub fn dev_self_signed(hosts: &[String], dir: &Path) -> anyhow::Result<(TlsIdentity, PathBuf)> {
    let certified = rcgen::generate_simple_self_signed(hosts.to_vec())
        .context("generating a self-signed certificate")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("voxgate-dev-cert.pem");
    std::fs::write(&path, certified.cert.pem())
        .with_context(|| format!("writing {}", path.display()))?;
    let chain = vec![certified.cert.der().clone()];
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the generated key: {e}"))?;
    Ok((identity(chain, key)?, path))
}

/// The names a dev certificate covers: loopback, the host's name, and the listen address.
pub fn dev_hosts(listen: &SocketAddr) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(name) = std::fs::read_to_string("/etc/hostname") {
        let name = name.trim();
        if !name.is_empty() {
            hosts.push(name.to_owned());
        }
    }
    let ip = listen.ip();
    if !ip.is_unspecified() {
        hosts.push(ip.to_string());
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A listener whose connections arrive TLS-terminated, handshaken off the accept loop.
pub struct TlsListener {
    ready: mpsc::Receiver<(HeadDeadlineIo<TlsStream<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsListener {
    pub fn new(
        mut tcp: TcpListener,
        acceptor: TlsAcceptor,
        limit: Duration,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, addr) = axum::serve::Listener::accept(&mut tcp).await;
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((HeadDeadlineIo::new(tls, limit), addr)).await;
                        }
                        Ok(Err(e)) => {
                            crate::metrics::TLS_HANDSHAKES_FAILED.inc();
                            tracing::debug!(error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            crate::metrics::TLS_HANDSHAKES_FAILED.inc();
                            tracing::debug!("TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self { ready, local, task })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = HeadDeadlineIo<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop is gone (only when the listener is dropped): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
