//! The thin tokio layer: the transports of `confab-transport` (UDP towards the
//! pool and UDP trunks, TCP and TLS connections with gateways), the core's
//! timers, the RTP relay's sockets, and call records handed to a bounded channel
//! (never a database round trip on the signalling path).
//!
//! Where each message of the core goes: over the connection its address came
//! from (a gateway's TCP/TLS connection), else over a new connection when the
//! address is a TCP/TLS trunk's gateway, or was the peer of a TCP/TLS
//! connection that closed (a gateway's inbound one: then to the trunk of that
//! transport at its IP), else over UDP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use confab_frontend::{ConnId, Dest, Output, Transport};
use confab_transport::{Event, Transports};
use confab_voice::{TrunkTransport, VoiceConfig};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::b2bua::{Action, CallRecord, Mediation};
use crate::relay::UdpRelays;
use crate::streams::unreachable_answers;

/// Dropped call records are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(1);

/// What a running Mediation server exposes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Call records dropped because the record writer fell behind (shared with
    /// the front end's metrics).
    pub records_dropped: Arc<AtomicU64>,
    /// Call records handed to the writer and not yet taken: added here before
    /// each record is queued (taken back when the queue is full); the writer
    /// subtracts each one it takes.
    pub records_queued: Arc<AtomicU64>,
    /// Connections to gateways that could not be opened (refused, TLS failure).
    pub unreachable: AtomicU64,
}

/// The open TCP/TLS connections messages arrived on, by peer address, and the
/// peers of those that closed.
#[derive(Default)]
struct Streams {
    by_addr: HashMap<SocketAddr, (Transport, ConnId)>,
    by_id: HashMap<ConnId, SocketAddr>,
    gone: HashMap<SocketAddr, Transport>,
}

/// Closed connections' peers remembered at most (then forgotten all at once).
const GONE_MAX: usize = 4096;

impl Streams {
    fn seen(&mut self, dest: &Dest) {
        if let Some(id) = dest.conn
            && dest.transport != Transport::Udp
        {
            self.by_addr.insert(dest.addr, (dest.transport, id));
            self.by_id.insert(id, dest.addr);
            self.gone.remove(&dest.addr);
        }
    }

    fn closed(&mut self, id: ConnId) {
        if let Some(addr) = self.by_id.remove(&id)
            && let Some((transport, c)) = self.by_addr.get(&addr).copied()
            && c == id
        {
            self.by_addr.remove(&addr);
            if self.gone.len() >= GONE_MAX {
                self.gone.clear();
            }
            self.gone.insert(addr, transport);
        }
    }
}

fn trunk_transport(t: Transport) -> Option<TrunkTransport> {
    match t {
        Transport::Udp => Some(TrunkTransport::Udp),
        Transport::Tcp => Some(TrunkTransport::Tcp),
        Transport::Tls => Some(TrunkTransport::Tls),
        Transport::Ws | Transport::Wss => None,
    }
}

/// Where a message for `to` goes (see the module's documentation).
fn dest_for(to: SocketAddr, streams: &Streams, voice: &VoiceConfig) -> Dest {
    if let Some((transport, id)) = streams.by_addr.get(&to) {
        return Dest {
            transport: *transport,
            addr: to,
            conn: Some(*id),
        };
    }
    let trunks = &voice.data().trunks;
    let trunk = trunks
        .iter()
        .find(|t| t.transport != TrunkTransport::Udp && t.gateway == to)
        .or_else(|| {
            let gone = trunk_transport(*streams.gone.get(&to)?)?;
            trunks
                .iter()
                .find(|t| t.transport == gone && t.gateway.ip() == to.ip())
        });
    match trunk {
        Some(t) => Dest {
            transport: if t.transport == TrunkTransport::Tls {
                Transport::Tls
            } else {
                Transport::Tcp
            },
            addr: t.gateway,
            conn: None,
        },
        None => Dest {
            transport: Transport::Udp,
            addr: to,
            conn: None,
        },
    }
}

/// Runs the Mediation server on `transports` (whose events arrive on `events`)
/// until `stop` turns true. `voice` brings configuration changes; ended calls'
/// records go to `records`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    transports: Transports,
    mut events: mpsc::Receiver<Event>,
    mut core: Mediation,
    mut relays: UdpRelays,
    mut voice: mpsc::Receiver<Arc<VoiceConfig>>,
    records: mpsc::Sender<CallRecord>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut voice_open = true;
    let mut last_drop_log: Option<Instant> = None;
    let mut unlogged_drops = 0u64;
    let mut streams = Streams::default();
    let mut outs: Vec<Output> = Vec::new();
    loop {
        let deadline = core
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Message(msg, dest)) => {
                    let Some(t) = trunk_transport(dest.transport) else { continue };
                    streams.seen(&dest);
                    core.on_message_over(&msg, dest.addr, t, Instant::now(), &mut relays)
                }
                Some(Event::Malformed(e, dest)) => {
                    if let Some(data) = e.response() {
                        transports.deliver(Output::Send { dest, data });
                    }
                    continue;
                }
                Some(Event::Closed(id)) => {
                    streams.closed(id);
                    continue;
                }
                Some(Event::Unreachable { dest, queued, reason }) => {
                    counters.unreachable.fetch_add(1, Ordering::Relaxed);
                    info!(gateway = %dest.addr, transport = ?dest.transport, %reason, "mediation: gateway unreachable; its requests count as answered 503");
                    let Some(t) = trunk_transport(dest.transport) else { continue };
                    let mut actions = Vec::new();
                    for answer in unreachable_answers(&queued, &reason) {
                        actions.extend(core.on_message_over(&answer, dest.addr, t, Instant::now(), &mut relays));
                    }
                    actions
                }
                None => break,
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
                    let dest = dest_for(to, &streams, core.voice());
                    if dest.transport != Transport::Udp
                        && dest.conn.is_none()
                        && data.starts_with(b"ACK ")
                    {
                        // An ACK goes on the connection its answer came on; with
                        // none open (a refused connection's 503) nobody awaits it.
                        debug!(%to, "mediation: ACK with no connection dropped");
                        continue;
                    }
                    outs.push(Output::Send { dest, data });
                }
                Action::Record(r) => {
                    // Counted before it is queued, so the writer's subtraction
                    // never comes first.
                    counters.records_queued.fetch_add(1, Ordering::Relaxed);
                    if records.try_send(r).is_err() {
                        counters.records_queued.fetch_sub(1, Ordering::Relaxed);
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
        transports.deliver_all(&mut outs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_voice::{Homes, Trunk, VoiceData};

    fn voice() -> VoiceConfig {
        let trunk = |name: &str, gw: &str, transport| Trunk {
            from_topology: false,
            name: name.into(),
            gateway: gw.parse().unwrap(),
            transport,
            rules: vec![],
        };
        let data = VoiceData {
            trunks: vec![
                trunk("u", "127.0.0.2:5060", TrunkTransport::Udp),
                trunk("t", "127.0.0.3:5060", TrunkTransport::Tcp),
                trunk("s", "127.0.0.4:5061", TrunkTransport::Tls),
            ],
            ..VoiceData::default()
        };
        VoiceConfig::build(data, Homes::default()).unwrap()
    }

    #[test]
    fn messages_go_over_the_connection_they_came_on_else_by_the_trunk() {
        let v = voice();
        let mut s = Streams::default();
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        // Pool and UDP trunk: UDP, also at a TCP/TLS trunk's IP.
        assert_eq!(
            dest_for(at("127.0.0.4:5060"), &s, &v).transport,
            Transport::Udp
        );
        assert_eq!(
            dest_for(at("127.0.0.1:5060"), &s, &v).transport,
            Transport::Udp
        );
        assert_eq!(
            dest_for(at("127.0.0.2:5060"), &s, &v).transport,
            Transport::Udp
        );
        // TCP and TLS trunks: a connection to the gateway's address.
        let d = dest_for(at("127.0.0.3:5060"), &s, &v);
        assert_eq!(
            (d.transport, d.addr),
            (Transport::Tcp, at("127.0.0.3:5060"))
        );
        let d = dest_for(at("127.0.0.4:5061"), &s, &v);
        assert_eq!(
            (d.transport, d.addr),
            (Transport::Tls, at("127.0.0.4:5061"))
        );
        // A gateway's inbound connection: answers go back on it ...
        let inbound = Dest {
            transport: Transport::Tls,
            addr: at("127.0.0.4:40001"),
            conn: Some(ConnId(7)),
        };
        s.seen(&inbound);
        assert_eq!(dest_for(at("127.0.0.4:40001"), &s, &v), inbound);
        // ... and once it closed, to the gateway's own port.
        s.closed(ConnId(7));
        let d = dest_for(at("127.0.0.4:40001"), &s, &v);
        assert_eq!(
            (d.transport, d.addr),
            (Transport::Tls, at("127.0.0.4:5061"))
        );
    }
}
