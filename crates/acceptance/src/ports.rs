//! Free loopback ports for servers, SIPp and clients started by the tests.
//!
//! Ports are drawn at random from 20000..32000, which is below Linux's ephemeral
//! range (32768..60999): a port the kernel hands out for an outgoing connection can
//! then never steal a port that a test picked but has not bound yet. A candidate is
//! only returned when it can be bound on 127.0.0.1 for UDP *and* TCP, and a port is
//! never returned twice by the same process, so tests running in parallel threads
//! of one test binary do not collide.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const LOW: u16 = 20000;
const HIGH: u16 = 32000;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static RNG: AtomicU64 = AtomicU64::new(0);

/// A cheap pseudo-random number (xorshift, seeded from time and pid). Not for crypto.
pub fn random_u64() -> u64 {
    let mut x = RNG.load(Ordering::Relaxed);
    if x == 0 {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        x = t ^ (u64::from(std::process::id()) << 32) ^ 0x2545_f491_4f6c_dd1d;
        if x == 0 {
            x = 1;
        }
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn bindable(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let tcp = TcpListener::bind(addr);
    let udp = UdpSocket::bind(addr);
    tcp.is_ok() && udp.is_ok()
}

/// Picks `count` consecutive ports (`p`, `p+1`, ...) free for UDP and TCP. With
/// `even`, `p` is even (RTP/RTCP pairs).
fn pick(count: u16, even: bool) -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    for _ in 0..5000 {
        let span = u64::from(HIGH - LOW - count);
        let mut p = LOW + (random_u64() % span) as u16;
        if even {
            p &= !1;
        }
        let ps: Vec<u16> = (p..p + count).collect();
        if ps.iter().any(|q| used.contains(q)) {
            continue;
        }
        if ps.iter().all(|&q| bindable(q)) {
            used.extend(ps);
            return p;
        }
    }
    // Extremely unlikely; fall back to a kernel-chosen port (single port only).
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
    let p = l
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0);
    assert!(p != 0, "no free port found on 127.0.0.1");
    used.insert(p);
    p
}

/// A port free on 127.0.0.1 for both UDP and TCP.
pub fn free_port() -> u16 {
    pick(1, false)
}

/// `n` distinct ports, each free for UDP and TCP.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// `count` consecutive ports `p..p+count`, each free for UDP and TCP; `p` even when
/// `even` (RTP/RTCP, SIPp's media ports `-mp P` which binds P and P+2).
pub fn free_port_block(count: u16, even: bool) -> u16 {
    pick(count.max(1), even)
}

/// An even port `p` with `p` and `p+1` both free (UDP and TCP): RTP+RTCP, or a
/// baresip SIP port (baresip also binds SIP/TLS on SIP+1).
pub fn free_port_pair() -> u16 {
    pick(2, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ps = free_ports(50);
        let set: HashSet<u16> = ps.iter().copied().collect();
        assert_eq!(set.len(), 50);
        for p in ps {
            assert!((LOW..HIGH).contains(&p));
            assert!(bindable(p));
        }
        let q = free_port_pair();
        assert_eq!(q % 2, 0);
        assert!(bindable(q) && bindable(q + 1));
    }
}
