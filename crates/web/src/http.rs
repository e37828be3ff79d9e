//! The HTTP listener with a request deadline: every accepted connection must
//! finish a request (the server writes its answer) within `header_timeout` of
//! opening or of its previous answer, or it is closed. That ends partial
//! requests (slowloris) and idle keep-alive connections alike; a connection
//! upgraded to SIP over WebSocket disarms it and follows the SIP idle clock.
//!
//! axum's `serve` has no such timeout (hyper's `header_read_timeout` needs a
//! builder axum does not expose), so the deadline lives in the connection's I/O.

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
use tokio::time::{Instant, Sleep};

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
    io: TcpStream,
    deadline: Arc<Deadline>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl DeadlineIo {
    fn new(io: TcpStream, timeout: Duration) -> DeadlineIo {
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

/// A TCP listener handing out [`DeadlineIo`]s.
pub struct DeadlineListener {
    pub(crate) inner: TcpListener,
    pub(crate) timeout: Duration,
    pub(crate) backoff: confab_transport::AcceptBackoff,
}

impl Listener for DeadlineListener {
    type Io = DeadlineIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    self.backoff.succeeded();
                    let _ = io.set_nodelay(true);
                    return (DeadlineIo::new(io, self.timeout), addr);
                }
                Err(e) => {
                    let (delay, log) = self.backoff.failed(Instant::now());
                    if let Some(held) = log {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, failures_since_last_line = held, "HTTP accept failed (out of file descriptors?); backing off");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
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
