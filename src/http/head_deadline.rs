//! `HeadDeadline`: the HTTP listener's guard against slowloris. Every accepted connection must
//! deliver a complete request head (through its blank line) within the deadline, counted from
//! the accept, and again from each response that keeps the connection open for another request;
//! a connection that does not is closed (hyper sees a timed-out read) and counted. Once a
//! response switches protocols (`101`, a websocket) the deadline is off for good: websockets
//! have their own liveness rules. Request bodies have their own deadline in the handlers that
//! read them (`[server] request_timeout_secs`, the same figure).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// A TCP listener whose connections must send their request heads in time.
pub struct HeadDeadlineListener {
    inner: TcpListener,
    limit: Duration,
}

impl HeadDeadlineListener {
    pub fn new(inner: TcpListener, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl axum::serve::Listener for HeadDeadlineListener {
    type Io = HeadDeadlineIo;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Every socket sends at once: with Nagle on, a small frame written behind another (an
        // RPC reply, then an audio notification) waits for the client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        (HeadDeadlineIo::new(tcp, self.limit), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Where a connection is in the head-deadline rule.
enum Phase {
    /// Waiting for a request head; `tail` holds the last bytes read, to find `\r\n\r\n` across
    /// reads.
    AwaitingHead { tail: [u8; 3], len: usize },
    /// A head arrived; its response has not started.
    Serving,
    /// The protocol switched: no deadline any more.
    Upgraded,
}

/// A connection (TCP, or TLS over TCP) under the head-deadline rule.
pub struct HeadDeadlineIo<S = TcpStream> {
    tcp: S,
    limit: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// The reader's waker from its last pending read: re-arming the deadline wakes it, so the
    /// deadline is polled (and can fire) while the reader waits for the next head.
    reader: Option<Waker>,
}

impl<S> HeadDeadlineIo<S> {
    pub(crate) fn new(tcp: S, limit: Duration) -> Self {
        Self {
            tcp,
            limit,
            phase: Phase::AwaitingHead {
                tail: [0; 3],
                len: 0,
            },
            deadline: Box::pin(tokio::time::sleep(limit)),
            reader: None,
        }
    }

    /// Look for the end of the head in newly read bytes.
    fn saw(&mut self, bytes: &[u8]) {
        let Phase::AwaitingHead { tail, len } = &mut self.phase else {
            return;
        };
        let mut window: Vec<u8> = tail[..*len].to_vec();
        window.extend_from_slice(bytes);
        if window.windows(4).any(|w| w == b"\r\n\r\n") {
            self.phase = Phase::Serving;
            return;
        }
        let keep = window.len().min(3);
        let start = window.len() - keep;
        tail[..keep].copy_from_slice(&window[start..]);
        *len = keep;
    }

    /// A response starts: a switch of protocol ends the rule, any other re-arms it for the next
    /// request on the connection.
    fn wrote(&mut self, first: &[u8]) {
        if !matches!(self.phase, Phase::Serving) || !first.starts_with(b"HTTP/1.") {
            return;
        }
        if first.get(9..12) == Some(b"101") {
            self.phase = Phase::Upgraded;
        } else {
            self.phase = Phase::AwaitingHead {
                tail: [0; 3],
                len: 0,
            };
            let at = Instant::now() + self.limit;
            self.deadline.as_mut().reset(at);
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadlineIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if matches!(this.phase, Phase::AwaitingHead { .. }) {
                    let fresh = buf.filled()[before..].to_vec();
                    this.saw(&fresh);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if matches!(this.phase, Phase::Serving) {
                    this.reader = Some(cx.waker().clone());
                }
                if matches!(this.phase, Phase::AwaitingHead { .. })
                    && this.deadline.as_mut().poll(cx).is_ready()
                {
                    crate::metrics::HEAD_TIMEOUTS.inc();
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadDeadlineIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.wrote(buf);
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.wrote(first);
        }
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
