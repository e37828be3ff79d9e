//! The media node: one tokio task owning the [`Pacer`] of every stream this
//! server sends, woken by one timer at the next packet's due time. Packets go
//! out with `try_send_to` on each stream's own UDP socket (no await, no
//! allocation per packet; a full socket buffer drops the packet and counts it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::pacer::{Pacer, StreamId, StreamSpec};

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

struct Token {
    tag: u64,
    socket: Arc<UdpSocket>,
    done: Option<mpsc::UnboundedSender<u64>>,
}

enum Cmd {
    Play {
        tag: u64,
        spec: Box<StreamSpec>,
        socket: Arc<UdpSocket>,
        done: Option<mpsc::UnboundedSender<u64>>,
    },
    Stop(u64),
    Stats(oneshot::Sender<NodeStats>),
}

/// Pacing figures since the last [`MediaNode::stats`] call.
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    pub streams: usize,
    pub packets: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Packets the kernel did not take (socket buffer full, unreachable).
    pub send_errors: u64,
}

/// A handle on the node's task (cheap to clone). The task ends when every
/// handle is dropped.
#[derive(Clone)]
pub struct MediaNode {
    tx: mpsc::UnboundedSender<Cmd>,
    next_tag: Arc<AtomicU64>,
}

impl MediaNode {
    /// Starts the node's task.
    pub fn spawn() -> (MediaNode, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(rx));
        (
            MediaNode {
                tx,
                next_tag: Arc::new(AtomicU64::new(1)),
            },
            task,
        )
    }

    /// Streams `spec` from `socket`; when the prompt ends (not when stopped) the
    /// returned tag is sent to `done`.
    pub fn play(
        &self,
        spec: StreamSpec,
        socket: Arc<UdpSocket>,
        done: Option<mpsc::UnboundedSender<u64>>,
    ) -> u64 {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Cmd::Play {
            tag,
            spec: Box::new(spec),
            socket,
            done,
        });
        tag
    }

    /// Stops a stream (unknown or ended tags are ignored).
    pub fn stop(&self, tag: u64) {
        let _ = self.tx.send(Cmd::Stop(tag));
    }

    /// Pacing figures since the last call (and resets them).
    pub async fn stats(&self) -> Option<NodeStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

async fn run(mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let epoch = Instant::now();
    let mut pacer: Pacer<Token> = Pacer::new(epoch, ntp_now());
    let mut ids: HashMap<u64, StreamId> = HashMap::new();
    let mut ended: Vec<(StreamId, Token)> = Vec::new();
    let mut send_errors = 0u64;
    let far = Duration::from_secs(3600);
    let sleep = tokio::time::sleep(far);
    tokio::pin!(sleep);
    loop {
        let deadline = pacer.next_due().unwrap_or_else(|| Instant::now() + far);
        sleep.as_mut().reset(deadline.into());
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Play { tag, spec, socket, done }) => {
                    let id = pacer.add(Instant::now(), *spec, Token { tag, socket, done });
                    ids.insert(tag, id);
                }
                Some(Cmd::Stop(tag)) => {
                    if let Some(id) = ids.remove(&tag) {
                        pacer.remove(id);
                    }
                }
                Some(Cmd::Stats(reply)) => {
                    let l = &pacer.lateness;
                    let _ = reply.send(NodeStats {
                        streams: pacer.len(),
                        packets: l.count(),
                        p50: l.quantile(0.5),
                        p99: l.quantile(0.99),
                        max: l.quantile(1.0),
                        send_errors,
                    });
                    pacer.lateness.clear();
                    send_errors = 0;
                }
            },
            () = &mut sleep => {
                pacer.tick(
                    Instant::now(),
                    &mut |p| {
                        if p.token.socket.try_send_to(p.data, p.to).is_err() {
                            send_errors += 1;
                        }
                    },
                    &mut ended,
                );
                for (_, token) in ended.drain(..) {
                    ids.remove(&token.tag);
                    if let Some(done) = token.done {
                        let _ = done.send(token.tag);
                    }
                }
            }
        }
    }
}

/// Binds a UDP socket for RTP on `ip` (an even port when one is free within a
/// few tries, RTCP being the next one; any port otherwise).
pub async fn bind_rtp(ip: std::net::IpAddr) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let mut last = None;
    for _ in 0..8 {
        let s = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = s.local_addr()?;
        if addr.port() % 2 == 0 {
            return Ok((Arc::new(s), addr));
        }
        last = Some((s, addr));
    }
    match last {
        Some((s, addr)) => Ok((Arc::new(s), addr)),
        None => Err(std::io::Error::other("no port")),
    }
}
