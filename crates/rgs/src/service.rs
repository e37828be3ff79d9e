//! The Response Group service's tokio layer: a UDP SIP socket the front end
//! sends workflow calls to (and agent offers leave from), the [`RgsUa`], an RTP
//! socket per caller and per agent leg, prompts and music streamed by the
//! shared [`MediaNode`], and one receive task per socket that reads RFC 4733
//! digits (caller) and, once a call is connected, relays each packet to the
//! other leg (RTP from any other address is ignored).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use confab_media::dtmf::DtmfDetector;
use confab_media::node::{MediaNode, bind_rtp};
use confab_media::pacer::{AtEnd, StreamSpec};
use confab_media::prompt::Prompt;
use confab_media::rtp::RtpFilter;
use confab_media::sdp::Negotiated;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::model::{PromptSpec, RgsConfig};
use crate::ua::{CallId, LegId, Out, RgsUa, UaConfig};

/// Where the service listens and whom it sends offers through.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub domain: String,
    /// SIP (UDP), normally loopback port 0.
    pub sip_bind: SocketAddr,
    /// The front end's SIP address (UDP): offers to agents go there.
    pub proxy: SocketAddr,
    /// RTP ports open on this address (reachable by clients).
    pub rtp_ip: IpAddr,
}

/// The running service.
pub struct Running {
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

/// Where a socket's packets go once connected: out of `out` to `to`, taken only
/// from `from`.
#[derive(Clone)]
struct Relay {
    out: Arc<UdpSocket>,
    to: SocketAddr,
}

type RelaySlot = Arc<Mutex<Option<Relay>>>;

struct CallerMedia {
    socket: Arc<UdpSocket>,
    negotiated: Negotiated,
    stream: Option<u64>,
    reader: JoinHandle<()>,
    relay: RelaySlot,
}

struct LegMedia {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
    relay: RelaySlot,
    from: Arc<Mutex<Option<SocketAddr>>>,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn make_prompt(p: &PromptSpec) -> Prompt {
    let made = match p {
        PromptSpec::Tones(t) => Prompt::tones(t),
        PromptSpec::File(f) => {
            let f = f.clone();
            tokio::task::spawn_blocking(move || Prompt::from_wav_file(Path::new(&f)))
                .await
                .unwrap_or_else(|e| {
                    Err(confab_media::prompt::PromptError::BadTones {
                        spec: e.to_string(),
                        reason: "loader failed",
                    })
                })
        }
    };
    made.unwrap_or_else(|e| {
        warn!(prompt = %p, error = %e, "rgs: prompt unavailable: playing silence");
        Prompt::silence(1000)
    })
}

fn relay_target(slot: &RelaySlot) -> Option<Relay> {
    slot.lock().ok().and_then(|g| g.clone())
}

/// The caller's packets: digits before the call is connected, relayed after.
fn spawn_caller_reader(
    call: CallId,
    socket: Arc<UdpSocket>,
    n: &Negotiated,
    relay: RelaySlot,
    digits: mpsc::UnboundedSender<(CallId, char)>,
) -> JoinHandle<()> {
    let filter = RtpFilter::new(n.remote);
    let event_pt = n.event_pt;
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut dtmf = DtmfDetector::new();
        loop {
            let Ok((len, src)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(p) = filter.accept(src, &buf[..len]) else {
                continue;
            };
            let is_event = Some(p.payload_type) == event_pt;
            if is_event && let Some(d) = dtmf.on_event(p.timestamp, p.payload) {
                let _ = digits.send((call, d));
            }
            if let Some(r) = relay_target(&relay) {
                let _ = r.out.try_send_to(&buf[..len], r.to);
            }
        }
    })
}

/// An agent leg's packets, relayed to the caller once connected.
fn spawn_leg_reader(
    socket: Arc<UdpSocket>,
    relay: RelaySlot,
    from: Arc<Mutex<Option<SocketAddr>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((len, src)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let expected = from.lock().ok().and_then(|g| *g);
            if expected != Some(src) || len < 12 || buf[0] >> 6 != 2 {
                continue;
            }
            if let Some(r) = relay_target(&relay) {
                let _ = r.out.try_send_to(&buf[..len], r.to);
            }
        }
    })
}

struct Runtime {
    node: MediaNode,
    rtp_ip: IpAddr,
    callers: HashMap<CallId, CallerMedia>,
    legs: HashMap<LegId, LegMedia>,
    by_stream: HashMap<u64, CallId>,
    prompts: HashMap<PromptSpec, Prompt>,
    done_tx: mpsc::UnboundedSender<u64>,
    digits_tx: mpsc::UnboundedSender<(CallId, char)>,
}

impl Runtime {
    fn stop_stream(&mut self, call: CallId) {
        if let Some(m) = self.callers.get_mut(&call)
            && let Some(tag) = m.stream.take()
        {
            self.node.stop(tag);
            self.by_stream.remove(&tag);
        }
    }

    async fn prompt(&mut self, p: Option<PromptSpec>) -> Prompt {
        let Some(p) = p else {
            return Prompt::silence(1000);
        };
        if let Some(made) = self.prompts.get(&p) {
            return made.clone();
        }
        let made = make_prompt(&p).await;
        if self.prompts.len() > 256 {
            self.prompts.clear();
        }
        self.prompts.insert(p, made.clone());
        made
    }

    async fn carry_out(&mut self, ua: &mut RgsUa, socket: &UdpSocket, out: Out) {
        match out {
            Out::Send { to, data } => {
                if let Err(e) = socket.send_to(&data, to).await {
                    debug!(%to, error = %e, "rgs: SIP send failed");
                }
            }
            Out::OpenCaller { call, negotiated } => match bind_rtp(self.rtp_ip).await {
                Ok((rtp, local)) => {
                    let relay: RelaySlot = Arc::new(Mutex::new(None));
                    let reader = spawn_caller_reader(
                        call,
                        rtp.clone(),
                        &negotiated,
                        relay.clone(),
                        self.digits_tx.clone(),
                    );
                    self.callers.insert(
                        call,
                        CallerMedia {
                            socket: rtp,
                            negotiated,
                            stream: None,
                            reader,
                            relay,
                        },
                    );
                    ua.caller_ready(call, local, Instant::now());
                }
                Err(e) => {
                    warn!(error = %e, "rgs: no RTP port");
                    ua.fail(call, Instant::now());
                }
            },
            Out::Play {
                call,
                prompt,
                looped,
            } => {
                self.stop_stream(call);
                let prompt = self.prompt(prompt).await;
                let Some(m) = self.callers.get_mut(&call) else {
                    return;
                };
                let spec = StreamSpec {
                    prompt,
                    codec: m.negotiated.codec,
                    remote: m.negotiated.remote,
                    rtcp: true,
                    send: m.negotiated.direction.we_send(),
                    at_end: if looped { AtEnd::Loop } else { AtEnd::Stop },
                    ssrc: rand::random(),
                    seq: rand::random(),
                    timestamp: rand::random(),
                };
                let done = (!looped).then(|| self.done_tx.clone());
                let tag = self.node.play(spec, m.socket.clone(), done);
                m.stream = Some(tag);
                self.by_stream.insert(tag, call);
            }
            Out::OpenLeg { call: _, leg } => match bind_rtp(self.rtp_ip).await {
                Ok((rtp, local)) => {
                    let relay: RelaySlot = Arc::new(Mutex::new(None));
                    let from = Arc::new(Mutex::new(None));
                    let reader = spawn_leg_reader(rtp.clone(), relay.clone(), from.clone());
                    self.legs.insert(
                        leg,
                        LegMedia {
                            socket: rtp,
                            reader,
                            relay,
                            from,
                        },
                    );
                    ua.leg_ready(leg, local, Instant::now());
                }
                Err(e) => {
                    warn!(error = %e, "rgs: no RTP port for an agent leg");
                }
            },
            Out::Bridge { call, leg, remote } => {
                self.stop_stream(call);
                let (Some(c), Some(l)) = (self.callers.get(&call), self.legs.get(&leg)) else {
                    return;
                };
                if let Ok(mut g) = l.from.lock() {
                    *g = Some(remote);
                }
                if let Ok(mut g) = c.relay.lock() {
                    *g = Some(Relay {
                        out: l.socket.clone(),
                        to: remote,
                    });
                }
                if let Ok(mut g) = l.relay.lock() {
                    *g = Some(Relay {
                        out: c.socket.clone(),
                        to: c.negotiated.remote,
                    });
                }
                debug!(call, leg, %remote, "rgs: relaying RTP");
            }
            Out::CloseLeg { leg } => {
                if let Some(l) = self.legs.remove(&leg) {
                    l.reader.abort();
                }
            }
            Out::Close { call } => {
                self.stop_stream(call);
                if let Some(m) = self.callers.remove(&call) {
                    m.reader.abort();
                }
            }
        }
    }
}

/// Starts the service with `rgs` now and every later configuration from
/// `updates`.
pub async fn start(
    cfg: ServiceConfig,
    rgs: Arc<RgsConfig>,
    mut updates: mpsc::Receiver<Arc<RgsConfig>>,
    node: MediaNode,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<Running> {
    let socket = UdpSocket::bind(cfg.sip_bind).await?;
    let addr = socket.local_addr()?;
    let mut ua = RgsUa::new(
        UaConfig {
            sip: addr,
            proxy: cfg.proxy,
            domain: cfg.domain.clone(),
        },
        rgs,
        rand::random::<u64>(),
    );
    info!(sip = %addr, rtp = %cfg.rtp_ip, "response group service started");
    let rtp_ip = cfg.rtp_ip;
    let task = tokio::spawn(async move {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
        let (digits_tx, mut digits_rx) = mpsc::unbounded_channel::<(CallId, char)>();
        let mut rt = Runtime {
            node,
            rtp_ip,
            callers: HashMap::new(),
            legs: HashMap::new(),
            by_stream: HashMap::new(),
            prompts: HashMap::new(),
            done_tx,
            digits_tx,
        };
        let mut buf = vec![0u8; 65_535];
        loop {
            let timer = ua
                .next_timer()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((len, src)) => {
                        ua.set_wall_clock(wall_ms());
                        ua.on_datagram(Bytes::copy_from_slice(&buf[..len]), src, Instant::now());
                    }
                    Err(e) => debug!(error = %e, "rgs: SIP receive error"),
                },
                Some(v) = updates.recv() => {
                    ua.set_config(v);
                    rt.prompts.clear();
                }
                Some(tag) = done_rx.recv() => {
                    if let Some(call) = rt.by_stream.remove(&tag)
                        && let Some(m) = rt.callers.get_mut(&call)
                        && m.stream == Some(tag)
                    {
                        m.stream = None;
                        ua.set_wall_clock(wall_ms());
                        ua.played(call, Instant::now());
                    }
                }
                Some((call, d)) = digits_rx.recv() => {
                    ua.set_wall_clock(wall_ms());
                    ua.digit(call, d, Instant::now());
                }
                () = tokio::time::sleep_until(timer.into()) => {
                    ua.set_wall_clock(wall_ms());
                    ua.on_timer(Instant::now());
                }
                _ = stop.changed() => break,
            }
            loop {
                let outs = ua.take_output();
                if outs.is_empty() {
                    break;
                }
                for out in outs {
                    rt.carry_out(&mut ua, &socket, out).await;
                }
            }
        }
        let calls: Vec<CallId> = rt.callers.keys().copied().collect();
        for c in calls {
            rt.stop_stream(c);
        }
        for (_, m) in rt.callers.drain() {
            m.reader.abort();
        }
        for (_, l) in rt.legs.drain() {
            l.reader.abort();
        }
    });
    Ok(Running { addr, task })
}
