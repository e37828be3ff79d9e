//! The tokio side of SIP transport: UDP, TCP and TLS listeners, the table of open
//! connections (also used by the WebSocket endpoint), outbound TCP connections, and
//! delivery of the front end's [`Output`]s.
//!
//! Everything here is I/O plumbing; parsing happens in the reading tasks (so it
//! spreads over cores), and all SIP decisions are taken by the sans-IO
//! `confab_frontend::Core` fed through an [`Event`] channel.

use std::collections::hash_map::Entry;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use confab_frontend::{ConnId, Dest, Output, Transport};
use confab_sip::{Frame, Framer, Limits, Message, ParseError};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};

pub mod limits;
pub mod queue;
pub use limits::{AcceptBackoff, FlowState, Liveness, LogLimiter, Refused, raise_fd_limit};
use queue::{QueueRx, QueueTx};
use tracing::{debug, info, warn};

/// What the transports hand to the core.
// Messages are by far the most common event; boxing them would cost an allocation
// per message for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Event {
    /// A parsed message and where it came from.
    Message(Message, Dest),
    /// A message that could not be parsed (answer it if possible).
    Malformed(ParseError, Dest),
    /// A connection closed.
    Closed(ConnId),
    /// An outbound connection could not be opened (refused, timed out, TLS
    /// handshake failed): the messages queued for it were not sent. RFC 3261
    /// §8.1.3.1 treats this like a `503` answer to each request among them.
    Unreachable {
        dest: Dest,
        queued: Vec<Bytes>,
        reason: String,
    },
}

/// Transport limits.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    pub sip: Limits,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Messages queued for one connection before it is considered stuck.
    pub send_queue: usize,
    /// A connection that is not a registered flow is closed after this long
    /// without a complete SIP message (pings do not count).
    pub idle_timeout: Duration,
    /// A SIP message, a TLS handshake or an HTTP request must be complete this
    /// long after its first byte.
    pub header_timeout: Duration,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            sip: Limits::default(),
            max_connections: 100_000,
            max_connections_per_ip: 128,
            send_queue: 16_384,
            idle_timeout: Duration::from_secs(120),
            header_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot bind {transport} on {addr}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

struct ConnEntry {
    tx: QueueTx,
    /// Whether (until when) the connection carries a registration.
    flow: Arc<FlowState>,
    /// Wakes the connection's reader when the core closes the connection.
    closed: Arc<Notify>,
    transport: Transport,
    peer: SocketAddr,
}

#[derive(Default)]
struct Table {
    conns: FxHashMap<ConnId, ConnEntry>,
    by_addr: FxHashMap<(Transport, SocketAddr), ConnId>,
    per_ip: FxHashMap<IpAddr, usize>,
}

/// Open connections of every connection-oriented transport.
pub struct Connections {
    table: Mutex<Table>,
    next: AtomicU64,
    /// Messages dropped because a connection's send queue was full.
    dropped: AtomicU64,
    limits: TransportLimits,
    events: mpsc::Sender<Event>,
    /// Connections refused because one address had `max_connections_per_ip`.
    refused_per_ip: AtomicU64,
    /// Connections refused because `max_connections` were open.
    refused_total: AtomicU64,
    /// Connections closed for idleness (no complete message, not a registered flow).
    closed_idle: AtomicU64,
    /// Connections closed because a message (or handshake) was not complete in time.
    closed_slow: AtomicU64,
    /// Refusals are logged at most once per interval, with the count since.
    refusal_log: LogLimiter,
    /// The time registrations are counted from (see [`FlowState`]).
    epoch: Instant,
}

/// A registered connection: its id and the queue its writer drains.
pub struct Registered {
    pub id: ConnId,
    pub rx: QueueRx,
    pub tx: QueueTx,
    /// Notified when [`Connections::close`] is called: the reader must stop and
    /// the connection end.
    pub closed: Arc<Notify>,
    /// Set when a `200` answer to a REGISTER leaves over this connection.
    pub flow: Arc<FlowState>,
}

impl Connections {
    pub fn new(limits: TransportLimits, events: mpsc::Sender<Event>) -> Arc<Self> {
        Arc::new(Connections {
            table: Mutex::new(Table::default()),
            next: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            limits,
            events,
            refused_per_ip: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
            closed_idle: AtomicU64::new(0),
            closed_slow: AtomicU64::new(0),
            refusal_log: LogLimiter::new(Duration::from_secs(10)),
            epoch: Instant::now(),
        })
    }

    /// Connections refused so far: (per-address limit, total limit).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_per_ip.load(Ordering::Relaxed),
            self.refused_total.load(Ordering::Relaxed),
        )
    }

    /// Connections closed so far by the server's timeouts: (idle, slow message).
    pub fn timed_out(&self) -> (u64, u64) {
        (
            self.closed_idle.load(Ordering::Relaxed),
            self.closed_slow.load(Ordering::Relaxed),
        )
    }

    /// The idle/header clock of a new connection (see [`Liveness`]).
    pub fn liveness(&self, flow: Arc<FlowState>) -> Liveness {
        Liveness::new(
            self.limits.idle_timeout,
            self.limits.header_timeout,
            flow,
            Instant::now(),
        )
    }

    /// Counts a connection closed by [`Liveness`].
    pub fn note_timeout(&self, why: limits::Expired, transport: Transport, peer: SocketAddr) {
        match why {
            limits::Expired::Idle => {
                self.closed_idle.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, ?transport, "closing an idle connection (no SIP message, not a registered flow)");
            }
            limits::Expired::Slow => {
                self.closed_slow.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, ?transport, "closing a connection: message not complete in time");
            }
        }
    }

    pub fn limits(&self) -> &TransportLimits {
        &self.limits
    }

    /// The channel to the core.
    pub fn events(&self) -> &mpsc::Sender<Event> {
        &self.events
    }

    pub fn count(&self) -> usize {
        self.table.lock().conns.len()
    }

    /// Messages dropped so far because a connection's send queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Registers a new connection, enforcing the global and per-address limits.
    /// A refusal is counted (see [`Connections::refused`]) and logged at most once
    /// per 10 s.
    pub fn register(&self, transport: Transport, peer: SocketAddr) -> Result<Registered, Refused> {
        let refused = {
            let mut t = self.table.lock();
            if t.conns.len() >= self.limits.max_connections {
                Refused::Total
            } else if t.per_ip.get(&peer.ip()).copied().unwrap_or(0)
                >= self.limits.max_connections_per_ip
            {
                Refused::PerAddress
            } else {
                *t.per_ip.entry(peer.ip()).or_insert(0) += 1;
                let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed));
                let (tx, rx) = queue::queue(self.limits.send_queue);
                let closed = Arc::new(Notify::new());
                let flow = Arc::new(FlowState::new(self.epoch));
                t.conns.insert(
                    id,
                    ConnEntry {
                        tx: tx.clone(),
                        flow: flow.clone(),
                        closed: closed.clone(),
                        transport,
                        peer,
                    },
                );
                t.by_addr.insert((transport, peer), id);
                return Ok(Registered {
                    id,
                    rx,
                    tx,
                    closed,
                    flow,
                });
            }
        };
        let counter = match refused {
            Refused::Total => &self.refused_total,
            Refused::PerAddress => &self.refused_per_ip,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.refusal_log.allow(Instant::now()) {
            let (limit, which) = match refused {
                Refused::Total => (self.limits.max_connections, "limits.max_connections"),
                Refused::PerAddress => (
                    self.limits.max_connections_per_ip,
                    "limits.max_connections_per_ip",
                ),
            };
            warn!(%peer, ?transport, limit, setting = which, refused_since_last_line = suppressed, "connection refused: limit reached (logged at most every 10 s)");
        }
        Err(refused)
    }

    /// Forgets a connection and tells the core.
    pub fn unregister(&self, id: ConnId) {
        let removed = {
            let mut t = self.table.lock();
            match t.conns.remove(&id) {
                Some(e) => {
                    if t.by_addr.get(&(e.transport, e.peer)) == Some(&id) {
                        t.by_addr.remove(&(e.transport, e.peer));
                    }
                    if let Entry::Occupied(mut o) = t.per_ip.entry(e.peer.ip()) {
                        *o.get_mut() -= 1;
                        if *o.get() == 0 {
                            o.remove();
                        }
                    }
                    true
                }
                None => false,
            }
        };
        if removed {
            let _ = self.events.try_send(Event::Closed(id));
        }
    }

    /// Queues `data` on the connection `dest` names (its id, else its address).
    /// `None` when there is no such connection.
    fn try_send(&self, dest: &Dest, data: Bytes) -> Option<Result<(), queue::SendError>> {
        let t = self.table.lock();
        let entry = match dest.conn.and_then(|id| t.conns.get(&id)) {
            Some(e) => e,
            None => {
                let id = t.by_addr.get(&(dest.transport, dest.addr))?;
                t.conns.get(id)?
            }
        };
        // A registration accepted over this connection makes it a registered
        // flow for as long as the registration lasts (RFC 5626: the client keeps
        // it alive): the idle timeout does not apply meanwhile.
        if let Some(secs) = limits::register_ok_expires(&data) {
            entry
                .flow
                .registered_for(Duration::from_secs(secs), Instant::now());
        }
        Some(entry.tx.try_send(data))
    }

    /// Closes a connection from our side.
    pub fn close(&self, id: ConnId) {
        // Wake the reader (it stops reading and drops its sender); with the table's
        // sender gone too, the writer flushes what is queued and shuts down.
        let closed = self.table.lock().conns.get(&id).map(|e| e.closed.clone());
        if let Some(c) = closed {
            c.notify_one();
        }
        self.unregister(id);
    }
}

/// The transport layer: sockets and connections.
pub struct Transports {
    udp: Arc<UdpSocket>,
    /// Batches of datagrams for the UDP sending task (see [`Transports::deliver_all`]).
    udp_out: mpsc::Sender<Vec<(SocketAddr, Bytes)>>,
    conns: Arc<Connections>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    /// Outbound TLS connections (see [`Transports::set_tls_client`]).
    tls_client: Option<Arc<rustls::ClientConfig>>,
}

impl Transports {
    /// Binds UDP and TCP on `sip` and, when given, TLS on `tls`, and starts
    /// accepting. Incoming messages go to `conns.events()`.
    pub async fn start(
        sip: SocketAddr,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
        conns: Arc<Connections>,
    ) -> Result<Transports, TransportError> {
        let (udp, tcp) = bind_udp_and_tcp(sip)?;
        let udp_addr = udp.local_addr().unwrap_or(sip);
        let tcp_addr = tcp.local_addr().unwrap_or(sip);
        let udp = Arc::new(udp);
        tokio::spawn(udp_loop(udp.clone(), conns.clone()));
        let (udp_out, udp_rx) = mpsc::channel(UDP_SEND_BATCHES);
        tokio::spawn(udp_send_loop(udp.clone(), udp_rx));
        tokio::spawn(accept_loop(tcp, None, conns.clone()));
        let mut tls_addr = None;
        if let Some((addr, cfg)) = tls {
            let l = listen_tcp(addr).map_err(|source| TransportError::Bind {
                transport: "TLS",
                addr,
                source,
            })?;
            tls_addr = Some(l.local_addr().unwrap_or(addr));
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            tokio::spawn(accept_loop(l, Some(acceptor), conns.clone()));
        }
        info!(%udp_addr, %tcp_addr, tls = ?tls_addr, "SIP transports listening");
        Ok(Transports {
            udp,
            udp_out,
            conns,
            udp_addr,
            tcp_addr,
            tls_addr,
            tls_client: None,
        })
    }

    /// Lets [`Transports::deliver`] open TLS connections: a message for a TLS
    /// destination with no connection opens one with `cfg`, checking the peer's
    /// certificate against its IP address. Without it such messages are dropped.
    pub fn set_tls_client(&mut self, cfg: Arc<rustls::ClientConfig>) {
        self.tls_client = Some(cfg);
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn connections(&self) -> &Arc<Connections> {
        &self.conns
    }

    /// Batches of datagrams waiting for the UDP sending task.
    pub fn udp_send_queue_depth(&self) -> usize {
        self.udp_out.max_capacity() - self.udp_out.capacity()
    }

    /// The kernel's view of the UDP socket: bytes waiting to be read and datagrams
    /// dropped because the receive buffer was full (Linux only; `None` elsewhere).
    pub fn udp_socket_stats(&self) -> Option<UdpSocketStats> {
        udp_socket_stats(&self.udp)
    }

    /// The SIP UDP socket (to sample [`udp_socket_stats`] from another task).
    pub fn udp_socket(&self) -> Arc<UdpSocket> {
        self.udp.clone()
    }

    /// Carries out every output in `outs` (emptying it). UDP datagrams are handed
    /// in one batch to a sending task, so the kernel's work for them (on loopback
    /// that includes the receiver's side) runs off the caller's thread; the
    /// caller (the single core task) only queues.
    pub fn deliver_all(&self, outs: &mut Vec<Output>) {
        let mut batch: Vec<(SocketAddr, Bytes)> = Vec::new();
        for out in outs.drain(..) {
            match out {
                Output::Send { dest, data } if dest.transport == Transport::Udp => {
                    if batch.is_empty() {
                        batch.reserve(64);
                    }
                    batch.push((dest.addr, data));
                }
                other => self.deliver(other),
            }
        }
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.udp_out.try_send(batch) {
            // The sending task is behind (or gone): send from here.
            let batch = match e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b,
            };
            for (addr, data) in batch {
                self.send_udp(addr, data);
            }
        }
    }

    /// Carries out one output of the core.
    pub fn deliver(&self, out: Output) {
        match out {
            Output::Send { dest, data } => self.send(dest, data),
            Output::Close { conn } => self.conns.close(conn),
        }
    }

    fn send(&self, dest: Dest, data: Bytes) {
        match dest.transport {
            Transport::Udp => self.send_udp(dest.addr, data),
            _ => match self.conns.try_send(&dest, data.clone()) {
                Some(res) => {
                    if res.is_err() {
                        // Logged at 1, 2, 4, 8... drops: under overload a line per
                        // message would add to the overload.
                        let n = self.conns.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            warn!(peer = %dest.addr, dropped_total = n, "connection send queue full or closed: message dropped");
                        }
                    }
                }
                None if dest.transport == Transport::Tcp => {
                    // Open a connection to the contact.
                    let conns = self.conns.clone();
                    if let Ok(reg) = conns.register(Transport::Tcp, dest.addr) {
                        let _ = reg.tx.try_send(data);
                        tokio::spawn(connect_and_run(conns, dest.addr, reg, None));
                    }
                }
                None if dest.transport == Transport::Tls && self.tls_client.is_some() => {
                    let conns = self.conns.clone();
                    if let Ok(reg) = conns.register(Transport::Tls, dest.addr) {
                        let _ = reg.tx.try_send(data);
                        let connector = self
                            .tls_client
                            .clone()
                            .map(tokio_rustls::TlsConnector::from);
                        tokio::spawn(connect_and_run(conns, dest.addr, reg, connector));
                    }
                }
                None => {
                    debug!(peer = %dest.addr, transport = ?dest.transport, "no connection to send on")
                }
            },
        }
    }
}

impl Transports {
    fn send_udp(&self, addr: SocketAddr, data: Bytes) {
        if let Err(e) = self.udp.try_send_to(&data, addr) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let udp = self.udp.clone();
                tokio::spawn(async move {
                    let _ = udp.send_to(&data, addr).await;
                });
            } else {
                debug!(peer = %addr, error = %e, "UDP send failed");
            }
        }
    }
}

/// What the kernel holds for a UDP socket (`/proc/self/net/udp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdpSocketStats {
    /// Bytes queued for reading.
    pub rx_queue_bytes: u64,
    /// Datagrams dropped because the receive buffer was full.
    pub drops: u64,
}

/// What the kernel holds for `sock` (Linux only; `None` elsewhere or when the
/// table can't be read).
#[cfg(target_os = "linux")]
pub fn udp_socket_stats(sock: &UdpSocket) -> Option<UdpSocketStats> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // The socket's inode names its line in the kernel's table.
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd()))
        .ok()?
        .ino();
    let table = if sock.local_addr().ok()?.is_ipv4() {
        "/proc/self/net/udp"
    } else {
        "/proc/self/net/udp6"
    };
    let text = std::fs::read_to_string(table).ok()?;
    parse_udp_table(&text, inode)
}

/// What the kernel holds for `sock`: not known on this system.
#[cfg(not(target_os = "linux"))]
pub fn udp_socket_stats(_sock: &UdpSocket) -> Option<UdpSocketStats> {
    None
}

/// The line of `inode` in a `/proc/net/udp` table: `tx_queue:rx_queue` is the
/// fifth field (hexadecimal), the inode the tenth, drops the last.
fn parse_udp_table(text: &str, inode: u64) -> Option<UdpSocketStats> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 13 || f[9].parse::<u64>().ok()? != inode {
            return None;
        }
        let rx = f[4].split_once(':')?.1;
        Some(UdpSocketStats {
            rx_queue_bytes: u64::from_str_radix(rx, 16).ok()?,
            drops: f[f.len() - 1].parse().ok()?,
        })
    })
}

/// Batches of outgoing datagrams queued for the UDP sending task.
const UDP_SEND_BATCHES: usize = 4096;
/// Datagrams read per wake-up of the UDP receiving task before yielding.
const UDP_RECV_BATCH: usize = 64;

/// Sends the batches the core produced.
async fn udp_send_loop(sock: Arc<UdpSocket>, mut rx: mpsc::Receiver<Vec<(SocketAddr, Bytes)>>) {
    while let Some(batch) = rx.recv().await {
        for (addr, data) in batch {
            loop {
                match sock.try_send_to(&data, addr) {
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Socket buffer full: wait for room, keep the order.
                        if sock.writable().await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        debug!(peer = %addr, error = %e, "UDP send failed");
                        break;
                    }
                }
            }
        }
    }
}

/// Attempts at a port free for both UDP and TCP when `sip` asks for any port.
const ANY_PORT_ATTEMPTS: usize = 16;

/// Binds UDP on `sip`, then TCP on the UDP socket's port. When `sip` asks for any
/// port, the port the kernel gave UDP may be taken for TCP (another listener or
/// an outgoing connection's local port): then both are tried again on another.
fn bind_udp_and_tcp(sip: SocketAddr) -> Result<(UdpSocket, TcpListener), TransportError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = bind_udp(sip).map_err(|source| TransportError::Bind {
            transport: "UDP",
            addr: sip,
            source,
        })?;
        let udp_addr = udp.local_addr().unwrap_or(sip);
        match listen_tcp(udp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if sip.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < ANY_PORT_ATTEMPTS =>
            {
                debug!(
                    port = udp_addr.port(),
                    "TCP port taken; binding both on another port"
                );
            }
            Err(source) => {
                return Err(TransportError::Bind {
                    transport: "TCP",
                    addr: udp_addr,
                    source,
                });
            }
        }
    }
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Large buffers absorb bursts (the 200 kB default drops datagrams under load).
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

async fn udp_loop(sock: Arc<UdpSocket>, conns: Arc<Connections>) {
    let limits = conns.limits.sip;
    let mut buf = vec![0u8; 65_536];
    let mut batch: Vec<Event> = Vec::with_capacity(UDP_RECV_BATCH);
    loop {
        if let Err(e) = sock.readable().await {
            debug!(error = %e, "UDP socket error");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // Read what is queued (up to a batch) with non-blocking calls, parse it
        // here, then hand the whole batch over: one wake-up of the core per batch
        // instead of one per datagram.
        let read_at = std::time::Instant::now();
        while batch.len() < UDP_RECV_BATCH {
            let (n, peer) = match sock.try_recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // e.g. ICMP port unreachable reported on the socket
                    debug!(error = %e, "UDP receive error");
                    break;
                }
            };
            let data = &buf[..n];
            if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                continue; // keep-alive
            }
            let dest = Dest {
                transport: Transport::Udp,
                addr: peer,
                conn: None,
            };
            batch.push(
                match Message::parse(Bytes::copy_from_slice(data), &limits) {
                    Ok(mut m) => {
                        m.set_received_at(read_at);
                        Event::Message(m, dest)
                    }
                    Err(e) => Event::Malformed(e, dest),
                },
            );
        }
        if batch.is_empty() {
            continue;
        }
        let Ok(permits) = conns.events.reserve_many(batch.len()).await else {
            return;
        };
        for (permit, ev) in permits.zip(batch.drain(..)) {
            permit.send(ev);
        }
    }
}

async fn accept_loop(
    l: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Arc<Connections>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let mut backoff = AcceptBackoff::new();
    let handshake_timeout = conns.limits.header_timeout;
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(v) => {
                backoff.succeeded();
                v
            }
            Err(e) => {
                // EMFILE and friends: back off (50 ms doubling up to 1 s) instead
                // of spinning, and say so at most every 10 s.
                let (delay, log) = backoff.failed(Instant::now());
                if let Some(suppressed) = log {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, failures_since_last_line = suppressed, "accept failed (out of file descriptors?); backing off");
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(reg) = conns.register(transport, peer) else {
            // Counted and logged by `register`; dropping the stream closes it.
            continue;
        };
        let conns = conns.clone();
        match &tls {
            None => {
                tokio::spawn(run_tcp(stream, peer, transport, reg, conns));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => run_generic(s, peer, transport, reg, conns).await,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            conns.unregister(reg.id);
                        }
                        Err(_) => {
                            conns.note_timeout(limits::Expired::Slow, transport, peer);
                            conns.unregister(reg.id);
                        }
                    }
                });
            }
        }
    }
}

/// Opens an outbound connection (TLS when `tls` is given, checking the peer's
/// certificate against its IP address) and runs it. When it cannot be opened,
/// what was queued for it goes back to the core in [`Event::Unreachable`].
async fn connect_and_run(
    conns: Arc<Connections>,
    addr: SocketAddr,
    reg: Registered,
    tls: Option<tokio_rustls::TlsConnector>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let reason = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            match tls {
                None => return run_tcp(s, addr, transport, reg, conns).await,
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                    let handshake = connector.connect(name, s);
                    match tokio::time::timeout(conns.limits.header_timeout, handshake).await {
                        Ok(Ok(s)) => return run_generic(s, addr, transport, reg, conns).await,
                        Ok(Err(e)) => format!("TLS handshake failed: {e}"),
                        Err(_) => "TLS handshake timed out".to_owned(),
                    }
                }
            }
        }
        Ok(Err(e)) => format!("connection failed: {e}"),
        Err(_) => "connection timed out".to_owned(),
    };
    debug!(%addr, ?transport, %reason, "outbound connection failed");
    let mut rx = reg.rx;
    let mut queued = Vec::new();
    while let Some(data) = rx.try_recv() {
        queued.push(data);
    }
    let dest = Dest {
        transport,
        addr,
        conn: Some(reg.id),
    };
    conns.unregister(reg.id);
    if !queued.is_empty() {
        let _ = conns
            .events
            .send(Event::Unreachable {
                dest,
                queued,
                reason,
            })
            .await;
    }
}

/// How long an outbound TCP connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending connections the kernel may queue for a listener (clamped to
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1,024: when thousands
/// of clients connect at once (a site coming back after an outage, or a load test)
/// the queue overflows and the kernel drops SYNs, which clients retry only after
/// 1, 3, 7... seconds.
const LISTEN_BACKLOG: u32 = 65_535;

/// A TCP listener on `addr` with [`LISTEN_BACKLOG`].
fn listen_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Bytes of queued messages joined into one write on a stream connection.
const WRITE_COALESCE: usize = 64 * 1024;
/// Room made in a stream's read buffer before each read; a connection whose last
/// read filled that room gets [`READ_CHUNK_BUSY`] (one read per burst).
const READ_CHUNK: usize = 4096;
const READ_CHUNK_BUSY: usize = 64 * 1024;

/// The read half of a stream connection, as [`run_stream`] reads it.
trait StreamRead: Send {
    /// Reads what is available into `buf`, making room for `chunk` more bytes.
    fn read_some(
        &mut self,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> impl std::future::Future<Output = std::io::Result<usize>> + Send;
}

/// Plain TCP waits for the socket to be readable *before* it makes room in the
/// buffer: an idle connection then holds no read buffer at all (4 KiB each
/// otherwise, i.e. most of an idle endpoint's memory).
impl StreamRead for tokio::net::tcp::OwnedReadHalf {
    async fn read_some(&mut self, buf: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
        loop {
            self.readable().await?;
            buf.reserve(chunk);
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                }
                other => return other,
            }
        }
    }
}

/// Any other stream (TLS): read into reserved room. A TLS session keeps its own
/// buffers anyway.
struct Generic<S>(tokio::io::ReadHalf<S>);

impl<S: AsyncRead + Send> StreamRead for Generic<S> {
    async fn read_some(&mut self, buf: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
        buf.reserve(chunk);
        self.0.read_buf(buf).await
    }
}

/// Runs a plain TCP connection.
async fn run_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    reg: Registered,
    conns: Arc<Connections>,
) {
    let (rd, wr) = stream.into_split();
    run_stream(rd, wr, peer, transport, reg, conns).await;
}

/// Runs a connection over any other stream (TLS).
async fn run_generic<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    reg: Registered,
    conns: Arc<Connections>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    run_stream(Generic(rd), wr, peer, transport, reg, conns).await;
}

/// Reads and writes one stream connection until it closes.
async fn run_stream<R, W>(
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    transport: Transport,
    reg: Registered,
    conns: Arc<Connections>,
) where
    R: StreamRead,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let Registered {
        id,
        mut rx,
        tx,
        closed,
        flow,
    } = reg;
    let writer = tokio::spawn(async move {
        // Coalesce what is queued into one write (one syscall for a burst of
        // responses on a busy connection). The buffer lives for one burst only:
        // an idle connection holds no write buffer.
        while let Some(data) = rx.recv().await {
            let res = if rx.is_empty() {
                wr.write_all(&data).await
            } else {
                let mut out = BytesMut::with_capacity(WRITE_COALESCE.min(16 * data.len()));
                out.extend_from_slice(&data);
                while out.len() < WRITE_COALESCE {
                    match rx.try_recv() {
                        Some(more) => out.extend_from_slice(&more),
                        None => break,
                    }
                }
                wr.write_all(&out).await
            };
            if res.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let limits = conns.limits.sip;
    let mut framer = Framer::new(limits.max_message_bytes);
    let dest = Dest {
        transport,
        addr: peer,
        conn: Some(id),
    };
    let mut chunk = READ_CHUNK;
    // Idle and header deadlines. The timer is armed lazily: when it fires, the
    // real deadline is computed and the timer moved if it is later (no timer
    // operation per message on a busy connection).
    let mut live = conns.liveness(flow);
    let timer = tokio::time::sleep_until(live.deadline());
    tokio::pin!(timer);
    'read: loop {
        let buf: &mut BytesMut = framer.buffer();
        let before = buf.capacity() - buf.len();
        let room = before.max(chunk);
        let read = tokio::select! {
            r = rd.read_some(buf, chunk) => r,
            _ = closed.notified() => {
                debug!(%peer, "connection closed by the server");
                break;
            }
            _ = &mut timer => {
                match live.check(Instant::now()) {
                    Ok(next) => {
                        timer.as_mut().reset(next);
                        continue;
                    }
                    Err(why) => {
                        conns.note_timeout(why, transport, peer);
                        break;
                    }
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                chunk = if n >= room {
                    READ_CHUNK_BUSY
                } else {
                    READ_CHUNK
                };
            }
        }
        let now = Instant::now();
        loop {
            match framer.next_frame() {
                Ok(None) => {
                    // Nothing partial left: give the buffer back, so an idle
                    // connection holds no read buffer (the frames already cut
                    // keep their part of it alive as long as they need it).
                    let buf = framer.buffer();
                    if buf.is_empty() {
                        *buf = BytesMut::new();
                    }
                    let partial = buf.iter().any(|b| !matches!(b, b'\r' | b'\n'));
                    if live.set_partial(partial, now) {
                        // A message started: its deadline may be earlier.
                        timer.as_mut().reset(live.deadline());
                    }
                    break;
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Message(data))) => {
                    live.on_message(now);
                    let ev = match Message::parse(data, &limits) {
                        Ok(mut m) => {
                            m.set_received_at(std::time::Instant::now());
                            Event::Message(m, dest)
                        }
                        Err(e) => Event::Malformed(e, dest),
                    };
                    if conns.events.send(ev).await.is_err() {
                        break 'read;
                    }
                }
                Err(e) => {
                    // The stream can't be re-synchronised: answer when the header
                    // section can be read (bad Content-Length), then close.
                    debug!(%peer, error = %e, "closing connection: framing error");
                    if e == confab_sip::FramingError::BadContentLength {
                        let head = Bytes::copy_from_slice(framer.buffer());
                        if let Err(pe) = Message::parse(head, &limits) {
                            let _ = conns.events.send(Event::Malformed(pe, dest)).await;
                        }
                    }
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    conns.unregister(id);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_table_line_is_found_by_inode() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0100007F:13C4 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 4242 2 0000000000000000 17\n\
  2: 0100007F:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4243 2 0000000000000000 0\n";
        assert_eq!(
            parse_udp_table(text, 4242),
            Some(UdpSocketStats {
                rx_queue_bytes: 0xA00,
                drops: 17
            })
        );
        assert_eq!(parse_udp_table(text, 1), None);
        assert_eq!(parse_udp_table("garbage\n1: x", 1), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn unread_datagrams_show_in_the_receive_queue() {
        let Ok(sock) = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0))) else {
            panic!("bind");
        };
        let before = udp_socket_stats(&sock).unwrap_or_default();
        assert_eq!(before.rx_queue_bytes, 0);
        let Ok(peer) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            panic!("bind peer");
        };
        let Ok(to) = sock.local_addr() else {
            panic!("local addr");
        };
        for _ in 0..3 {
            let _ = peer.send_to(&[b'x'; 100], to);
        }
        let after = udp_socket_stats(&sock).unwrap_or_default();
        assert!(after.rx_queue_bytes >= 300, "{after:?}");
    }
}
