//! The HTTP listener with a request deadline: every accepted connection must
//! finish a request (the server writes its answer) within `header_timeout` of
//! opening or of its previous answer, or it is closed. That ends partial
//! requests (slowloris) and idle keep-alive connections alike; a connection
//! upgraded to SIP over WebSocket disarms it and follows the SIP idle clock.
//!
//! axum's `serve` has no such timeout (hyper's `header_read_timeout` needs a
//! builder axum does not expose), so the deadline lives in the connection's I/O.
//!
//! With TLS (HTTPS, the default) the listener accepts TCP connections in a task
//! of its own and runs each TLS handshake in its own task, bounded by the same
//! deadline and by a cap on handshakes in progress, so that a slow handshake
//! never holds up the accept loop; finished handshakes are handed to axum.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// TLS handshakes in progress at most; further connections are closed at once.
const MAX_HANDSHAKES: usize = 1024;

/// Whether a connection's HTTP deadline still applies.
#[derive(Debug)]
pub struct Deadline {
    armed: AtomicBool,
}

impl Deadline {
    /// The connection left HTTP (WebSocket upgrade): no deadline any more.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }
}

/// A TCP connection whose reads fail with `TimedOut` once the deadline passed
/// (hyper then closes it).
pub struct DeadlineIo {
    io: Stream,
    deadline: Arc<Deadline>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

/// A plain or TLS connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl DeadlineIo {
    fn new(io: Stream, timeout: Duration) -> DeadlineIo {
        DeadlineIo {
            io,
            deadline: Arc::new(Deadline {
                armed: AtomicBool::new(true),
            }),
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                if this.deadline.armed() && this.sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "HTTP request not complete in time",
                    )));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            // An answer is going out: the next request has its own deadline.
            let next = Instant::now() + this.timeout;
            this.sleep.as_mut().reset(next);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A listener handing out [`DeadlineIo`]s: plain TCP, or TLS connections whose
/// handshake finished.
pub struct DeadlineListener {
    mode: Mode,
    local: SocketAddr,
    timeout: Duration,
}

enum Mode {
    Plain {
        inner: TcpListener,
        backoff: confab_transport::AcceptBackoff,
    },
    /// Handshaken connections from the acceptor task (which ends when this is dropped).
    Tls(mpsc::Receiver<(DeadlineIo, SocketAddr)>),
}

impl DeadlineListener {
    /// Plain HTTP on `inner`.
    pub fn plain(inner: TcpListener, timeout: Duration) -> io::Result<DeadlineListener> {
        Ok(DeadlineListener {
            local: inner.local_addr()?,
            mode: Mode::Plain {
                inner,
                backoff: confab_transport::AcceptBackoff::new(),
            },
            timeout,
        })
    }

    /// HTTPS on `inner`: a task accepts and handshakes (each within `timeout`).
    pub fn tls(
        inner: TcpListener,
        timeout: Duration,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<DeadlineListener> {
        let local = inner.local_addr()?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(accept_tls(inner, TlsAcceptor::from(config), timeout, tx));
        Ok(DeadlineListener {
            mode: Mode::Tls(rx),
            local,
            timeout,
        })
    }
}

async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
    tx: mpsc::Sender<(DeadlineIo, SocketAddr)>,
) {
    let mut backoff = confab_transport::AcceptBackoff::new();
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            a = TcpListener::accept(&listener) => a,
            _ = tx.closed() => return,
        };
        match accepted {
            Ok((io, addr)) => {
                backoff.succeeded();
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    tracing::debug!(%addr, "HTTPS: too many TLS handshakes in progress; closing");
                    continue;
                };
                let _ = io.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let done = tokio::time::timeout(timeout, acceptor.accept(io)).await;
                    drop(permit);
                    match done {
                        Ok(Ok(tls)) => {
                            let io = DeadlineIo::new(Stream::Tls(Box::new(tls)), timeout);
                            let _ = tx.send((io, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "HTTPS: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%addr, "HTTPS: TLS handshake not complete in time")
                        }
                    }
                });
            }
            Err(e) => {
                let (delay, log) = backoff.failed(Instant::now());
                if let Some(held) = log {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, failures_since_last_line = held, "HTTPS accept failed (out of file descriptors?); backing off");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

impl Listener for DeadlineListener {
    type Io = DeadlineIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let timeout = self.timeout;
        match &mut self.mode {
            Mode::Plain { inner, backoff } => loop {
                match TcpListener::accept(inner).await {
                    Ok((io, addr)) => {
                        backoff.succeeded();
                        let _ = io.set_nodelay(true);
                        return (DeadlineIo::new(Stream::Plain(io), timeout), addr);
                    }
                    Err(e) => {
                        let (delay, log) = backoff.failed(Instant::now());
                        if let Some(held) = log {
                            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, failures_since_last_line = held, "HTTP accept failed (out of file descriptors?); backing off");
                        }
                        tokio::time::sleep(delay).await;
                    }
                }
            },
            Mode::Tls(rx) => match rx.recv().await {
                Some(conn) => conn,
                // The acceptor task ended (it only does when this listener is
                // dropped): nothing more will come.
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What handlers learn about their connection: the peer, and the deadline a
/// WebSocket upgrade disarms.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer: SocketAddr,
    pub deadline: Arc<Deadline>,
}

impl Connected<IncomingStream<'_, DeadlineListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, DeadlineListener>) -> Self {
        PeerInfo {
            peer: *stream.remote_addr(),
            deadline: stream.io().deadline.clone(),
        }
    }
}
