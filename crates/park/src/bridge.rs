//! The media bridge of a retrieved (or rung back) call: each leg's reader task
//! takes the RTP its party sends (only from the address its SDP named; RTCP and
//! anything else dropped) and, once the leg is bridged, sends it unchanged
//! through the other leg's socket to the other party. Before that (on hold)
//! what the party sends is read and dropped. No allocation per packet: one
//! buffer per task, `try_send_to` from the peer's socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use confab_media::rtp::RtpFilter;
use confab_media::sdp::Negotiated;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::ua::LegId;

/// The other leg's socket and party.
pub type Target = (Arc<UdpSocket>, SocketAddr);

/// Where a leg's packets go once bridged.
#[derive(Clone, Default)]
pub struct Peer(Arc<Mutex<Option<Target>>>);

impl Peer {
    pub fn set(&self, to: Option<Target>) {
        if let Ok(mut g) = self.0.lock() {
            *g = to;
        }
    }

    fn get(&self) -> Option<Target> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

/// Reads what `leg`'s party sends to `socket`; relays it to `peer` when set.
pub fn spawn_reader(
    leg: LegId,
    socket: Arc<UdpSocket>,
    n: &Negotiated,
    peer: Peer,
) -> JoinHandle<()> {
    let filter = RtpFilter::new(n.remote);
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let (mut relayed, mut ignored) = (0u64, 0u64);
        // The peer is looked up again every 50 packets (one second of audio),
        // not per packet.
        let mut to = None;
        loop {
            let Ok((len, src)) = socket.recv_from(&mut buf).await else {
                return;
            };
            if filter.accept(src, &buf[..len]).is_err() {
                ignored += 1;
                if ignored.is_power_of_two() {
                    debug!(leg, %src, ignored, "park: RTP ignored");
                }
                continue;
            }
            if to.is_none() || relayed.is_multiple_of(50) {
                to = peer.get();
            }
            if let Some((s, addr)) = &to {
                let _ = s.try_send_to(&buf[..len], *addr);
                relayed += 1;
            } else {
                to = None;
                relayed = 0;
            }
        }
    })
}
