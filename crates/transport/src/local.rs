//! In-process peers: two SIP servers of one process (the front end and its
//! collocated Mediation role) that talk over UDP can hand each other their
//! datagrams without the kernel.
//!
//! Each side keeps listening on its UDP socket and addresses the other by its
//! UDP address, exactly as before; only the delivery changes. A datagram for a
//! linked address is parsed with the receiver's limits and queued on the
//! receiver's event channel, stamped with the sender's UDP address as its
//! source: what the receiver's core sees is what it would have read from its
//! socket. The savings are the send and receive system calls and the kernel's
//! loopback path on both sides of every message.
//!
//! Delivery keeps the semantics of a loopback datagram: in order from one
//! sender, and dropped (counted) when the receiver is so far behind that
//! [`MAX_WAITING`] datagrams already wait for room in its queue, as a full
//! socket buffer drops them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use confab_frontend::{Dest, Transport};
use confab_sip::Message;
use tokio::sync::mpsc;

use crate::{Connections, Event};

/// Datagrams waiting for room in a receiver's full event queue, at most (per
/// sender); beyond this they are dropped, as a full socket buffer would.
pub const MAX_WAITING: usize = 4096;

/// One linked receiver.
struct Peer {
    /// The receiver's UDP address (datagrams sent there are handed over).
    addr: SocketAddr,
    /// The source the receiver sees: the sender's own UDP address.
    from: SocketAddr,
    conns: Arc<Connections>,
}

/// The in-process receivers of one [`crate::Transports`]; set once, read on every
/// UDP send.
#[derive(Default)]
pub(crate) struct LocalPeers {
    peers: OnceLock<Vec<Peer>>,
    delivered: AtomicU64,
    dropped: AtomicU64,
    waiting: Arc<AtomicUsize>,
}

/// Why [`crate::Transports::link_local`] refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("in-process peers are already linked")]
    AlreadyLinked,
    #[error("cannot link {0}: an in-process peer needs a concrete address, not a wildcard")]
    Wildcard(SocketAddr),
}

impl LocalPeers {
    pub(crate) fn link(
        &self,
        from: SocketAddr,
        peers: Vec<(SocketAddr, Arc<Connections>)>,
    ) -> Result<(), LinkError> {
        if from.ip().is_unspecified() {
            return Err(LinkError::Wildcard(from));
        }
        if let Some((addr, _)) = peers.iter().find(|(a, _)| a.ip().is_unspecified()) {
            return Err(LinkError::Wildcard(*addr));
        }
        let peers = peers
            .into_iter()
            .map(|(addr, conns)| Peer { addr, from, conns })
            .collect();
        self.peers.set(peers).map_err(|_| LinkError::AlreadyLinked)
    }

    /// Hands `data` to the peer listening on `addr`, if one is linked; `false`
    /// when `addr` is no in-process peer (send it over the socket).
    pub(crate) fn try_deliver(&self, addr: SocketAddr, data: &Bytes) -> bool {
        let Some(peers) = self.peers.get() else {
            return false;
        };
        let Some(peer) = peers.iter().find(|p| p.addr == addr) else {
            return false;
        };
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return true; // a keep-alive: nothing for the receiver's core
        }
        let dest = Dest {
            transport: Transport::Udp,
            addr: peer.from,
            conn: None,
        };
        let ev = match Message::parse(data.clone(), &peer.conns.limits.sip) {
            Ok(mut m) => {
                m.set_received_at(std::time::Instant::now());
                Event::Message(m, dest)
            }
            Err(e) => Event::Malformed(e, dest),
        };
        if self.waiting.load(Ordering::Acquire) > 0 {
            // Earlier datagrams wait for room: queue behind them.
            self.wait_for_room(peer, ev);
            return true;
        }
        match peer.conns.events.try_send(ev) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(ev)) => self.wait_for_room(peer, ev),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// The receiver's queue is full: wait for room off the caller's thread, up to
    /// [`MAX_WAITING`] datagrams.
    fn wait_for_room(&self, peer: &Peer, ev: Event) {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let tx = peer.conns.events.clone();
        let waiting = self.waiting.clone();
        tokio::spawn(async move {
            let _ = tx.send(ev).await;
            waiting.fetch_sub(1, Ordering::AcqRel);
        });
    }

    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
