//! Relays between the public trap socket and the SNMP engine's private
//! loopback socket.
//!
//! The engine (async-snmp's notification receiver) answers informs and v3
//! discovery probes to the address a datagram came from. Each sender
//! therefore gets its own loopback relay socket: datagrams that passed the
//! [filter](super::filter) go to the engine from it, and whatever the engine
//! answers on it goes back to that sender from the public socket, so the
//! sender sees the answer come from the address it sent to. The table of
//! relays is bounded; the least recently used one is closed to make room,
//! and relays idle for [`IDLE`] are closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Senders relayed at the same time, at most.
pub const MAX_RELAYS: usize = 256;

/// A relay unused this long is closed.
pub const IDLE: Duration = Duration::from_secs(120);

/// A spawned task, aborted when this is dropped.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Relay {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    used: Instant,
    _replies: AbortOnDrop,
}

#[derive(Default)]
struct Table {
    by_source: HashMap<SocketAddr, Relay>,
    /// Relay socket address to the sender it stands for.
    by_relay: HashMap<SocketAddr, SocketAddr>,
}

/// The relay table, shared by the receiving task (which creates relays),
/// the engine's acceptance policy and the delivering task (which map relay
/// addresses back to senders).
#[derive(Clone, Default)]
pub struct Relays(Arc<Mutex<Table>>);

impl Relays {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sender a relay socket stands for, if it is one of ours.
    pub fn source_of(&self, relay: SocketAddr) -> Option<SocketAddr> {
        self.table().by_relay.get(&relay).copied()
    }

    /// Sends `data` from `source`'s relay (opened on first use) to the
    /// engine at `engine`. Answers are sent back through `public`.
    pub async fn forward(
        &self,
        public: &Arc<UdpSocket>,
        engine: SocketAddr,
        source: SocketAddr,
        data: &[u8],
    ) -> std::io::Result<()> {
        let socket = self.relay_for(public, engine, source)?;
        socket.send_to(data, engine).await.map(|_| ())
    }

    fn relay_for(
        &self,
        public: &Arc<UdpSocket>,
        engine: SocketAddr,
        source: SocketAddr,
    ) -> std::io::Result<Arc<UdpSocket>> {
        let now = Instant::now();
        let mut table = self.table();
        if let Some(relay) = table.by_source.get_mut(&source) {
            relay.used = now;
            return Ok(Arc::clone(&relay.socket));
        }
        let expired: Vec<SocketAddr> = table
            .by_source
            .iter()
            .filter(|(_, relay)| now.saturating_duration_since(relay.used) >= IDLE)
            .map(|(source, _)| *source)
            .collect();
        for old in expired {
            table.remove(old);
        }
        if table.by_source.len() >= MAX_RELAYS {
            let oldest = table
                .by_source
                .iter()
                .min_by_key(|(_, relay)| relay.used)
                .map(|(source, _)| *source);
            if let Some(oldest) = oldest {
                table.remove(oldest);
            }
        }
        let socket = std::net::UdpSocket::bind((engine.ip(), 0))?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let local = socket.local_addr()?;
        let replies = tokio::spawn(send_back(
            Arc::clone(&socket),
            Arc::clone(public),
            engine,
            source,
        ));
        table.by_relay.insert(local, source);
        table.by_source.insert(
            source,
            Relay {
                socket: Arc::clone(&socket),
                local,
                used: now,
                _replies: AbortOnDrop(replies),
            },
        );
        Ok(socket)
    }
}

impl Table {
    fn remove(&mut self, source: SocketAddr) {
        if let Some(relay) = self.by_source.remove(&source) {
            self.by_relay.remove(&relay.local);
        }
    }
}

/// Copies the engine's answers on `relay` to `source` through `public`.
async fn send_back(
    relay: Arc<UdpSocket>,
    public: Arc<UdpSocket>,
    engine: SocketAddr,
    source: SocketAddr,
) {
    loop {
        if relay.readable().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        // Allocated per answer: most relays never carry one.
        let mut buf = vec![0u8; async_snmp::UDP_RECEIVE_BUFFER_SIZE];
        match relay.try_recv_from(&mut buf) {
            Ok((len, from)) if from == engine => {
                if let Err(err) = public.send_to(&buf[..len], source).await {
                    tracing::debug!(%source, %err, "could not send an SNMP answer back");
                }
            }
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => {
                tracing::debug!(%source, %err, "relay socket error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
