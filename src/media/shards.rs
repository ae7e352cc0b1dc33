//! `MediaShards`: every relay call's media on one UDP port. A few sockets (one per worker
//! thread) share the port with `SO_REUSEPORT`; the kernel spreads callers over them by address.
//! Each shard task reads datagrams and hands each to the session it belongs to — by the caller's
//! address once known, else by the ICE username fragment in a STUN binding request — through
//! the session's bounded datagram queue (full: the datagram is dropped and counted, as the
//! network would). Sessions send their own transmits straight on a shard socket, so a datagram
//! costs one hop each way at most. Routes are registered per call and removed when it ends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Datagrams queued for one session before more are dropped.
pub const DATAGRAM_QUEUE: usize = 256;
const MAX_DATAGRAM: usize = 2048;

/// A datagram for a session.
#[derive(Debug)]
pub struct Datagram {
    pub at: Instant,
    pub source: SocketAddr,
    pub contents: Vec<u8>,
}

type Route = mpsc::Sender<Datagram>;

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, Route>,
}

pub struct MediaShards {
    sockets: Vec<Arc<UdpSocket>>,
    local: SocketAddr,
    advertised: SocketAddr,
    routes: Arc<Mutex<Routes>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// A call's registration; dropping it removes the route (and every alias it gained).
pub struct MediaRoute {
    ufrag: String,
    /// Further username fragments of the same call (its ICE restarts), at most [`MAX_ALIASES`].
    aliases: Vec<String>,
    routes: Arc<Mutex<Routes>>,
    socket: Arc<UdpSocket>,
}

impl MediaRoute {
    /// Send a transmit on the shared port without waiting (a full socket buffer drops it, as
    /// the network would).
    pub fn send(&self, destination: SocketAddr, contents: &[u8]) {
        if self.socket.try_send_to(contents, destination).is_err() {
            crate::metrics::MEDIA_DATAGRAMS_DROPPED.inc();
        }
    }
}

/// ICE restarts one call is routed for; beyond, the oldest alias goes.
pub const MAX_ALIASES: usize = 4;

impl MediaRoute {
    /// Route datagrams addressed to `ufrag` (the call's credentials after an ICE restart) to the
    /// same queue. The first username fragment stays routed: checks on the old pair may still
    /// be in flight.
    pub fn also_route(&mut self, ufrag: &str) {
        if ufrag == self.ufrag || self.aliases.iter().any(|a| a == ufrag) {
            return;
        }
        let mut routes = lock(&self.routes);
        let Some(tx) = routes.by_ufrag.get(&self.ufrag).cloned() else {
            return;
        };
        if self.aliases.len() >= MAX_ALIASES {
            let oldest = self.aliases.remove(0);
            routes.by_ufrag.remove(&oldest);
        }
        routes.by_ufrag.insert(ufrag.to_owned(), tx);
        self.aliases.push(ufrag.to_owned());
    }
}

impl Drop for MediaRoute {
    fn drop(&mut self) {
        let mut routes = lock(&self.routes);
        routes.by_ufrag.remove(&self.ufrag);
        for a in &self.aliases {
            routes.by_ufrag.remove(a);
        }
    }
}

fn lock(routes: &Mutex<Routes>) -> std::sync::MutexGuard<'_, Routes> {
    routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bind_shared(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Room for bursts of many calls between two reads.
    let _ = socket.set_recv_buffer_size(4 * 1024 * 1024);
    let _ = socket.set_send_buffer_size(4 * 1024 * 1024);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

impl MediaShards {
    /// Bind `shards` sockets on `bind_ip:port` (0: one ephemeral port, shared by all) and start
    /// their reader tasks. `public_ip` is what ICE candidates advertise, when set.
    pub fn start(
        bind_ip: IpAddr,
        port: u16,
        public_ip: Option<IpAddr>,
        shards: usize,
    ) -> std::io::Result<Self> {
        let first = bind_shared(SocketAddr::new(bind_ip, port))?;
        let local = first.local_addr()?;
        let mut std_sockets = vec![first];
        for _ in 1..shards.max(1) {
            std_sockets.push(bind_shared(local)?);
        }
        let routes = Arc::new(Mutex::new(Routes::default()));
        let mut sockets = Vec::new();
        let mut tasks = Vec::new();
        for s in std_sockets {
            let socket = Arc::new(UdpSocket::from_std(s)?);
            let task = tokio::spawn(read_shard(socket.clone(), routes.clone()));
            tasks.push(task.abort_handle());
            sockets.push(socket);
        }
        let advertised = SocketAddr::new(public_ip.unwrap_or(local.ip()), local.port());
        Ok(Self {
            sockets,
            local,
            advertised,
            routes,
            tasks,
        })
    }

    /// Where media arrives.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What ICE candidates advertise.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised
    }

    /// Route datagrams for ICE username fragment `ufrag` to a new queue.
    pub fn register(&self, ufrag: &str) -> (MediaRoute, mpsc::Receiver<Datagram>) {
        let (tx, rx) = mpsc::channel(DATAGRAM_QUEUE);
        lock(&self.routes).by_ufrag.insert(ufrag.to_owned(), tx);
        let socket = self.sockets[rand::random_range(0..self.sockets.len())].clone();
        (
            MediaRoute {
                ufrag: ufrag.to_owned(),
                aliases: Vec::new(),
                routes: self.routes.clone(),
                socket,
            },
            rx,
        )
    }

    /// Calls with a route (for tests and metrics).
    pub fn routes(&self) -> usize {
        lock(&self.routes).by_ufrag.len()
    }
}

impl Drop for MediaShards {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The local ufrag a STUN binding request is addressed to (`USERNAME` is `local:remote`).
fn stun_ufrag(contents: &[u8]) -> Option<&str> {
    let msg = str0m::ice::StunMessage::parse(contents).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    msg.username()?.split(':').next()
}

async fn read_shard(socket: Arc<UdpSocket>, routes: Arc<Mutex<Routes>>) {
    // The shard's own view of which address belongs to which call: no lock per datagram.
    let mut by_addr: HashMap<SocketAddr, Route> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut since_prune = 0u32;
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "media socket read failed");
                continue;
            }
        };
        let contents = &buf[..n];
        let route = match stun_ufrag(contents) {
            Some(ufrag) => {
                let found = lock(&routes).by_ufrag.get(ufrag).cloned();
                match found {
                    Some(r) => {
                        by_addr.insert(source, r.clone());
                        Some(r)
                    }
                    None => by_addr.get(&source).cloned(),
                }
            }
            None => by_addr.get(&source).cloned(),
        };
        let Some(route) = route else {
            crate::metrics::MEDIA_DATAGRAMS_DROPPED.inc();
            continue;
        };
        let datagram = Datagram {
            at: Instant::now(),
            source,
            contents: contents.to_vec(),
        };
        match route.try_send(datagram) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::metrics::MEDIA_DATAGRAMS_DROPPED.inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                by_addr.remove(&source);
            }
        }
        // Forget addresses of calls that ended (their queues are closed) now and then.
        since_prune += 1;
        if since_prune >= 4096 {
            since_prune = 0;
            by_addr.retain(|_, r| !r.is_closed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shards_share_one_port_and_routes_go_away_with_their_call() {
        let shards = MediaShards::start(IpAddr::from([127, 0, 0, 1]), 0, None, 2).expect("bind");
        assert_ne!(shards.local_addr().port(), 0);
        let (mut route, _rx) = shards.register("abc");
        assert_eq!(shards.routes(), 1);
        route.also_route("restarted");
        assert_eq!(
            shards.routes(),
            2,
            "an ICE restart's credentials are routed too"
        );
        drop(route);
        assert_eq!(shards.routes(), 0);
    }

    #[test]
    fn a_stun_binding_request_names_its_call() {
        let req = str0m::ice::StunMessage::binding_request(
            "local1:remote1",
            str0m::ice::TransId::new(),
            false,
            0,
            1,
            false,
        );
        let mut buf = vec![0u8; 512];
        let n = req
            .to_bytes(Some(b"password"), &mut buf, |_, _| [0u8; 20])
            .expect("encode");
        assert_eq!(stun_ufrag(&buf[..n]), Some("local1"));
        assert_eq!(stun_ufrag(b"\x80\x00 not stun"), None);
    }
}
