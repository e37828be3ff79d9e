//! The thin tokio layer: one UDP socket for both legs, the core's timers, the RTP
//! relay's sockets, and call records handed to a bounded channel (never a
//! database round trip on the signalling path).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_voice::VoiceConfig;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::b2bua::{Action, CallRecord, Mediation};
use crate::relay::UdpRelays;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;

/// Dropped call records are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// Kernel buffer size of the Mediation server's socket, each way.
const SOCKET_BUFFER: usize = 8 << 20;

/// Binds the Mediation server's UDP socket with large kernel buffers, as the
/// front end's transport does: the ~200 kB default overflows on a burst of calls
/// (or while the process waits for a core), and every datagram dropped there
/// costs its sender a 500 ms retransmission (bench/mediation.sh).
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps both at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// What a running Mediation server exposes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Call records dropped because the record writer fell behind.
    pub records_dropped: AtomicU64,
}

/// Runs the Mediation server on `socket` until `stop` turns true.
/// `voice` brings configuration changes; ended calls' records go to `records`.
pub async fn run(
    socket: UdpSocket,
    mut core: Mediation,
    mut relays: UdpRelays,
    mut voice: mpsc::Receiver<Arc<VoiceConfig>>,
    records: mpsc::Sender<CallRecord>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut voice_open = true;
    let mut last_drop_log: Option<Instant> = None;
    let mut unlogged_drops = 0u64;
    loop {
        let deadline = core
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, src)) => core.on_datagram(Bytes::copy_from_slice(&buf[..n]), src, Instant::now(), &mut relays),
                Err(e) => { debug!(error = %e, "mediation: receive failed"); continue; }
            },
            _ = tokio::time::sleep_until(deadline.into()) => core.poll(Instant::now(), &mut relays),
            v = voice.recv(), if voice_open => {
                match v {
                    Some(v) => core.set_voice_config(v),
                    None => voice_open = false,
                }
                continue;
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() { break; }
                continue;
            }
        };
        for a in actions {
            match a {
                Action::Send { to, data } => {
                    if let Err(e) = socket.send_to(&data, to).await {
                        debug!(%to, error = %e, "mediation: send failed");
                    }
                }
                Action::Record(r) => {
                    if records.try_send(r).is_err() {
                        let total = counters.records_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        unlogged_drops += 1;
                        // One line a second at most: a line per dropped record
                        // (thousands a second under load) cost this loop more
                        // than the calls themselves (bench/mediation.sh).
                        let now = Instant::now();
                        if last_drop_log.is_none_or(|t| now.duration_since(t) >= DROP_LOG_EVERY) {
                            warn!(
                                dropped = unlogged_drops,
                                total, "mediation: call records dropped (writer behind)"
                            );
                            unlogged_drops = 0;
                            last_drop_log = Some(now);
                        }
                    }
                }
            }
        }
    }
}
