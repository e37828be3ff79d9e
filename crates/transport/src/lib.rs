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

use bytes::{Bytes, BytesMut};
use confab_frontend::{ConnId, Dest, Output, Transport};
use confab_sip::{Frame, Framer, Limits, Message, ParseError};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
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
}

/// Transport limits.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    pub sip: Limits,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Messages queued for one connection before it is considered stuck.
    pub send_queue: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            sip: Limits::default(),
            max_connections: 100_000,
            max_connections_per_ip: 20_000,
            send_queue: 1024,
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
    tx: mpsc::Sender<Bytes>,
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
    limits: TransportLimits,
    events: mpsc::Sender<Event>,
}

/// A registered connection: its id and the queue its writer drains.
pub struct Registered {
    pub id: ConnId,
    pub rx: mpsc::Receiver<Bytes>,
    pub tx: mpsc::Sender<Bytes>,
}

impl Connections {
    pub fn new(limits: TransportLimits, events: mpsc::Sender<Event>) -> Arc<Self> {
        Arc::new(Connections {
            table: Mutex::new(Table::default()),
            next: AtomicU64::new(1),
            limits,
            events,
        })
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

    /// Registers a new connection, enforcing the global and per-address limits.
    pub fn register(&self, transport: Transport, peer: SocketAddr) -> Option<Registered> {
        let mut t = self.table.lock();
        if t.conns.len() >= self.limits.max_connections {
            return None;
        }
        let n = t.per_ip.entry(peer.ip()).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.limits.send_queue);
        t.conns.insert(
            id,
            ConnEntry {
                tx: tx.clone(),
                transport,
                peer,
            },
        );
        t.by_addr.insert((transport, peer), id);
        Some(Registered { id, rx, tx })
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

    fn sender_for(&self, dest: &Dest) -> Option<mpsc::Sender<Bytes>> {
        let t = self.table.lock();
        if let Some(id) = dest.conn
            && let Some(e) = t.conns.get(&id)
        {
            return Some(e.tx.clone());
        }
        let id = t.by_addr.get(&(dest.transport, dest.addr))?;
        t.conns.get(id).map(|e| e.tx.clone())
    }

    /// Closes a connection from our side.
    pub fn close(&self, id: ConnId) {
        // Dropping the table's sender ends the writer, which ends the connection.
        self.unregister(id);
    }
}

/// The transport layer: sockets and connections.
pub struct Transports {
    udp: Arc<UdpSocket>,
    conns: Arc<Connections>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
}

impl Transports {
    /// Binds UDP and TCP on `sip` and, when given, TLS on `tls`, and starts
    /// accepting. Incoming messages go to `conns.events()`.
    pub async fn start(
        sip: SocketAddr,
        tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
        conns: Arc<Connections>,
    ) -> Result<Transports, TransportError> {
        let udp = bind_udp(sip).map_err(|source| TransportError::Bind {
            transport: "UDP",
            addr: sip,
            source,
        })?;
        let udp_addr = udp.local_addr().unwrap_or(sip);
        let tcp = TcpListener::bind(sip)
            .await
            .map_err(|source| TransportError::Bind {
                transport: "TCP",
                addr: sip,
                source,
            })?;
        let tcp_addr = tcp.local_addr().unwrap_or(sip);
        let udp = Arc::new(udp);
        tokio::spawn(udp_loop(udp.clone(), conns.clone()));
        tokio::spawn(accept_loop(tcp, None, conns.clone()));
        let mut tls_addr = None;
        if let Some((addr, cfg)) = tls {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| TransportError::Bind {
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
            conns,
            udp_addr,
            tcp_addr,
            tls_addr,
        })
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

    /// Carries out one output of the core.
    pub fn deliver(&self, out: Output) {
        match out {
            Output::Send { dest, data } => self.send(dest, data),
            Output::Close { conn } => self.conns.close(conn),
        }
    }

    fn send(&self, dest: Dest, data: Bytes) {
        match dest.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.try_send_to(&data, dest.addr) {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        let udp = self.udp.clone();
                        tokio::spawn(async move {
                            let _ = udp.send_to(&data, dest.addr).await;
                        });
                    } else {
                        debug!(peer = %dest.addr, error = %e, "UDP send failed");
                    }
                }
            }
            _ => match self.conns.sender_for(&dest) {
                Some(tx) => {
                    if tx.try_send(data).is_err() {
                        warn!(peer = %dest.addr, "connection send queue full or closed: message dropped");
                    }
                }
                None if dest.transport == Transport::Tcp => {
                    // Open a connection to the contact.
                    let conns = self.conns.clone();
                    if let Some(reg) = conns.register(Transport::Tcp, dest.addr) {
                        let _ = reg.tx.try_send(data);
                        tokio::spawn(connect_and_run(conns, dest.addr, reg));
                    }
                }
                None => {
                    debug!(peer = %dest.addr, transport = ?dest.transport, "no connection to send on")
                }
            },
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
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                debug!(error = %e, "UDP receive error");
                continue;
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
        let ev = match Message::parse(Bytes::copy_from_slice(data), &limits) {
            Ok(m) => Event::Message(m, dest),
            Err(e) => Event::Malformed(e, dest),
        };
        if conns.events.send(ev).await.is_err() {
            return;
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
    loop {
        let (stream, peer) = match l.accept().await {
            Ok(v) => v,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(reg) = conns.register(transport, peer) else {
            warn!(%peer, "connection refused: connection limit reached");
            continue;
        };
        let conns = conns.clone();
        match &tls {
            None => {
                tokio::spawn(run_stream(stream, peer, transport, reg, conns));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => run_stream(s, peer, transport, reg, conns).await,
                        Ok(Err(e)) => {
                            debug!(%peer, error = %e, "TLS handshake failed");
                            conns.unregister(reg.id);
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out");
                            conns.unregister(reg.id);
                        }
                    }
                });
            }
        }
    }
}

async fn connect_and_run(conns: Arc<Connections>, addr: SocketAddr, reg: Registered) {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            run_stream(s, addr, Transport::Tcp, reg, conns).await;
        }
        _ => {
            debug!(%addr, "outbound TCP connection failed");
            conns.unregister(reg.id);
        }
    }
}

/// Reads and writes one stream connection until it closes.
async fn run_stream<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    reg: Registered,
    conns: Arc<Connections>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Registered { id, mut rx, tx } = reg;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if wr.write_all(&data).await.is_err() {
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
    'read: loop {
        let buf: &mut BytesMut = framer.buffer();
        buf.reserve(4096);
        match rd.read_buf(buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Ping)) => {
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Message(data))) => {
                    let ev = match Message::parse(data, &limits) {
                        Ok(m) => Event::Message(m, dest),
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
