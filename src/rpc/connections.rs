//! The JSON-RPC websocket connections a process holds: a count, and the signal that closes them
//! when the server stops (upgraded sockets outlive axum's graceful shutdown, so what they still
//! owe — a drain's `closed` — must be written before the process exits).

/// The JSON-RPC websocket connections the process holds, and whether they are told to close.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    pub open: usize,
    pub closing: bool,
}

/// A JSON-RPC websocket connection's place in [`crate::app::AppState`]'s count (given back when dropped).
pub struct ConnectionSlot(tokio::sync::watch::Sender<Connections>);

impl ConnectionSlot {
    pub(crate) fn new(count: tokio::sync::watch::Sender<Connections>) -> Self {
        Self(count)
    }

    /// Resolves when the process closes its connections.
    pub async fn closing(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| c.closing).await;
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.send_modify(|c| c.open = c.open.saturating_sub(1));
    }
}
