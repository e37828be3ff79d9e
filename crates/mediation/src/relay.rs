//! The RTP relay: a plain packet forwarder for calls whose gateway and client
//! cannot reach each other. Each relayed call gets two UDP ports on the Mediation
//! server, one facing each side; what arrives on one leaves through the other.
//! The destination is the address the side announced in its SDP until its first
//! packet arrives, then the packet's source (latching, for clients behind NAT).
//! Only the first media stream is relayed (no RTCP port, no codecs).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::b2bua::{Relays, Side};

/// Where media for one side goes: announced in SDP, then latched on the first
/// packet that side sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latch {
    pub announced: Option<SocketAddr>,
    pub latched: Option<SocketAddr>,
}

impl Latch {
    /// A packet from this side's party arrived from `src`.
    pub fn on_packet(&mut self, src: SocketAddr) {
        if self.latched.is_none() {
            self.latched = Some(src);
        }
    }

    /// The side's party announced `media` in SDP. Another address than before
    /// (a transfer brought a new party) drops the latch: the next packet latches.
    pub fn announce(&mut self, media: SocketAddr) {
        if self.announced.is_some_and(|a| a != media) {
            self.latched = None;
        }
        self.announced = Some(media);
    }

    /// Where packets for this side's party go.
    pub fn dest(&self) -> Option<SocketAddr> {
        self.latched.or(self.announced)
    }
}

/// Packets relayed, both ways, by every relay of a [`UdpRelays`].
#[derive(Debug, Default)]
pub struct RelayStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

struct Session {
    /// Our port facing the pool side (the pool's party sends there) and the
    /// gateway side.
    pool_addr: SocketAddr,
    gateway_addr: SocketAddr,
    latches: Arc<Mutex<[Latch; 2]>>,
    packets: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Pool => 0,
        Side::Gateway => 1,
    }
}

/// Relay ports on real UDP sockets (one task per relayed call).
pub struct UdpRelays {
    ip: IpAddr,
    max: usize,
    sessions: HashMap<u64, Session>,
    stats: Arc<RelayStats>,
}

impl UdpRelays {
    /// Relays bound on `ip`, at most `max` calls at once. Must be used inside a
    /// tokio runtime.
    pub fn new(ip: IpAddr, max: usize) -> Self {
        UdpRelays {
            ip,
            max,
            sessions: HashMap::new(),
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    pub fn active(&self) -> usize {
        self.sessions.len()
    }

    fn bind(&self) -> Option<UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(self.ip, 0)).ok()?;
        s.set_nonblocking(true).ok()?;
        UdpSocket::from_std(s).ok()
    }

    fn open(&mut self, call: u64) -> Option<&mut Session> {
        if !self.sessions.contains_key(&call) {
            if self.sessions.len() >= self.max {
                return None;
            }
            let pool = self.bind()?;
            let gateway = self.bind()?;
            let pool_addr = pool.local_addr().ok()?;
            let gateway_addr = gateway.local_addr().ok()?;
            let latches = Arc::new(Mutex::new([Latch::default(); 2]));
            let packets = Arc::new(AtomicU64::new(0));
            let task = tokio::spawn(forward(
                pool,
                gateway,
                latches.clone(),
                packets.clone(),
                self.stats.clone(),
            ));
            debug!(call, %pool_addr, %gateway_addr, "RTP relay opened");
            self.sessions.insert(
                call,
                Session {
                    pool_addr,
                    gateway_addr,
                    latches,
                    packets,
                    task,
                },
            );
        }
        self.sessions.get_mut(&call)
    }
}

impl Relays for UdpRelays {
    fn announce(&mut self, call: u64, from: Side, media: SocketAddr) -> Option<SocketAddr> {
        let s = self.open(call)?;
        if let Ok(mut l) = s.latches.lock() {
            l[index(from)].announce(media);
        }
        // The other side sends to our port facing it.
        Some(match from {
            Side::Pool => s.gateway_addr,
            Side::Gateway => s.pool_addr,
        })
    }

    fn close(&mut self, call: u64) -> u64 {
        match self.sessions.remove(&call) {
            Some(s) => {
                s.task.abort();
                let n = s.packets.load(Ordering::Relaxed);
                debug!(call, packets = n, "RTP relay closed");
                n
            }
            None => 0,
        }
    }
}

impl Drop for UdpRelays {
    fn drop(&mut self) {
        for s in self.sessions.values() {
            s.task.abort();
        }
    }
}

async fn forward(
    pool: UdpSocket,
    gateway: UdpSocket,
    latches: Arc<Mutex<[Latch; 2]>>,
    packets: Arc<AtomicU64>,
    stats: Arc<RelayStats>,
) {
    let mut a = [0u8; 2048];
    let mut b = [0u8; 2048];
    loop {
        // A packet on the port facing `from` goes out of the other port to the
        // other side's party.
        let (from, n, src) = tokio::select! {
            r = pool.recv_from(&mut a) => match r { Ok((n, src)) => (Side::Pool, n, src), Err(_) => continue },
            r = gateway.recv_from(&mut b) => match r { Ok((n, src)) => (Side::Gateway, n, src), Err(_) => continue },
        };
        let dest = match latches.lock() {
            Ok(mut l) => {
                l[index(from)].on_packet(src);
                l[index(from.other())].dest()
            }
            Err(_) => return,
        };
        let Some(dest) = dest else { continue };
        let (sock, buf) = match from {
            Side::Pool => (&gateway, &a[..n]),
            Side::Gateway => (&pool, &b[..n]),
        };
        if sock.send_to(buf, dest).await.is_ok() {
            packets.fetch_add(1, Ordering::Relaxed);
            stats.packets.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_party_announced_is_latched_again() {
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) = (
            "10.0.0.1:4000".parse().unwrap(),
            "10.0.0.2:4000".parse().unwrap(),
            "10.0.0.3:4000".parse().unwrap(),
        );
        let mut l = Latch::default();
        l.announce(a);
        l.on_packet(b);
        l.announce(a); // a re-INVITE with the same address keeps the latch
        assert_eq!(l.dest(), Some(b));
        l.announce(c); // a transfer's new party
        assert_eq!(l.dest(), Some(c));
        l.on_packet(c);
        assert_eq!(l.dest(), Some(c));
    }

    #[test]
    fn latches_on_the_first_packet_only() {
        let mut l = Latch {
            announced: Some("10.0.0.1:4000".parse().unwrap()),
            latched: None,
        };
        assert_eq!(l.dest(), Some("10.0.0.1:4000".parse().unwrap()));
        l.on_packet("192.0.2.7:5000".parse().unwrap());
        l.on_packet("192.0.2.8:6000".parse().unwrap());
        assert_eq!(l.dest(), Some("192.0.2.7:5000".parse().unwrap()));
    }

    #[tokio::test]
    async fn forwards_both_ways_and_latches() {
        let mut relays = UdpRelays::new("127.0.0.1".parse().unwrap(), 1);
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The client announces an address it does not use: latching fixes it.
        let for_gw = relays
            .announce(7, Side::Pool, "127.0.0.1:9".parse().unwrap())
            .unwrap();
        let for_client = relays
            .announce(7, Side::Gateway, gw.local_addr().unwrap())
            .unwrap();
        assert_ne!(for_gw, for_client);
        // A second call does not fit (max 1).
        assert!(
            relays
                .announce(8, Side::Pool, "127.0.0.1:9".parse().unwrap())
                .is_none()
        );
        let mut buf = [0u8; 64];
        client.send_to(b"from-client", for_client).await.unwrap();
        let (n, src) =
            tokio::time::timeout(std::time::Duration::from_secs(5), gw.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(&buf[..n], b"from-client");
        assert_eq!(src, for_gw);
        gw.send_to(b"from-gw", for_gw).await.unwrap();
        let (n, src) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.recv_from(&mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(&buf[..n], b"from-gw");
        assert_eq!(src, for_client);
        assert_eq!(relays.stats().packets.load(Ordering::Relaxed), 2);
        assert_eq!(relays.close(7), 2);
        assert_eq!(relays.active(), 0);
    }
}
