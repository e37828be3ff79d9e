//! The Call Park service's tokio layer: a UDP SIP socket the front end sends
//! calls to orbit numbers to, the [`ParkUa`], an RTP socket per leg (music on
//! hold streamed by the shared [`MediaNode`]), and a small task per leg that
//! reads what its party sends and, once bridged, relays it to the other leg
//! ([`crate::bridge`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_media::Prompt;
use confab_media::node::{MediaNode, bind_rtp};
use confab_media::pacer::{AtEnd, StreamSpec};
use confab_media::sdp::Negotiated;
use confab_voice::{DEFAULT_HOLD_TONES, ParkOrbit, VoiceConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::bridge::{Peer, spawn_reader};
use crate::ua::{LegId, Out, ParkConfig, ParkUa};

/// Where the service listens.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub domain: String,
    /// SIP (UDP), normally loopback port 0: only the front end talks to it.
    pub sip_bind: SocketAddr,
    /// The front end's SIP address (UDP), where ring backs and MESSAGEs go.
    pub front_end: SocketAddr,
    /// The address RTP ports are opened on and named in SDP.
    pub rtp_ip: IpAddr,
    /// How long a ring back rings.
    pub ring: Duration,
}

/// The running service.
pub struct Running {
    /// Its SIP address (an application route of the front end, a trusted peer).
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

struct Media {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    negotiated: Option<Negotiated>,
    /// Where what this leg's party sends goes (set when bridged).
    peer: Peer,
    stream: Option<u64>,
    reader: Option<JoinHandle<()>>,
}

/// The music on hold of an orbit range: its WAV file or tones (the default
/// tones when it names neither or when the file cannot be read).
async fn hold_music(o: &ParkOrbit) -> Prompt {
    let made = match (&o.music_file, &o.music_tones) {
        (Some(f), _) => {
            let f = f.clone();
            tokio::task::spawn_blocking(move || Prompt::from_wav_file(Path::new(&f)))
                .await
                .ok()
                .and_then(Result::ok)
        }
        (None, Some(t)) => Prompt::tones(t).ok(),
        (None, None) => None,
    };
    match made {
        Some(p) => p,
        None => {
            if o.music_file.is_some() || o.music_tones.is_some() {
                warn!(orbit = %o.name, "music on hold unavailable: playing the default tones");
            }
            Prompt::tones(DEFAULT_HOLD_TONES).unwrap_or_else(|_| Prompt::silence(1000))
        }
    }
}

/// Starts the service. `voice` is the configuration now, `updates` every later one.
pub async fn start(
    cfg: ServiceConfig,
    voice: Arc<VoiceConfig>,
    mut updates: mpsc::Receiver<Arc<VoiceConfig>>,
    node: MediaNode,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<Running> {
    let socket = UdpSocket::bind(cfg.sip_bind).await?;
    let addr = socket.local_addr()?;
    let mut ua = ParkUa::new(
        ParkConfig {
            sip: addr,
            domain: cfg.domain.clone(),
            front_end: cfg.front_end,
            ring: cfg.ring,
        },
        voice,
        rand::random::<u64>(),
    );
    let rtp_ip = cfg.rtp_ip;
    info!(sip = %addr, rtp = %rtp_ip, "call park service started");
    let task = tokio::spawn(async move {
        let mut media: HashMap<LegId, Media> = HashMap::new();
        let mut early: HashMap<LegId, Negotiated> = HashMap::new();
        let mut buf = vec![0u8; 65_535];
        loop {
            let timer = ua
                .next_timer()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok((len, src)) => {
                        ua.on_datagram(Bytes::copy_from_slice(&buf[..len]), src, Instant::now());
                    }
                    Err(e) => debug!(error = %e, "park: SIP receive error"),
                },
                Some(v) = updates.recv() => ua.set_voice(v),
                () = tokio::time::sleep_until(timer.into()) => ua.on_timer(Instant::now()),
                _ = stop.changed() => break,
            }
            loop {
                let outs = ua.take_output();
                if outs.is_empty() {
                    break;
                }
                for out in outs {
                    run(out, &mut ua, &mut media, &mut early, &socket, &node, rtp_ip).await;
                }
            }
        }
        for (_, m) in media.drain() {
            if let Some(tag) = m.stream {
                node.stop(tag);
            }
            if let Some(r) = m.reader {
                r.abort();
            }
        }
    });
    Ok(Running { addr, task })
}

async fn run(
    out: Out,
    ua: &mut ParkUa,
    media: &mut HashMap<LegId, Media>,
    early: &mut HashMap<LegId, Negotiated>,
    socket: &UdpSocket,
    node: &MediaNode,
    rtp_ip: IpAddr,
) {
    match out {
        Out::Send { to, data } => {
            if let Err(e) = socket.send_to(&data, to).await {
                debug!(%to, error = %e, "park: SIP send failed");
            }
        }
        Out::Remote { leg, negotiated } => {
            if let Some(m) = media.get_mut(&leg) {
                if let Some(r) = m.reader.take() {
                    r.abort();
                }
                m.reader = Some(spawn_reader(
                    leg,
                    m.socket.clone(),
                    &negotiated,
                    m.peer.clone(),
                ));
                m.negotiated = Some(negotiated);
            } else {
                // The port is opened next (OpenMedia follows).
                early.insert(leg, negotiated);
            }
        }
        Out::OpenMedia { leg } => match bind_rtp(rtp_ip).await {
            Ok((rtp, local)) => {
                let negotiated = early.remove(&leg);
                let peer = Peer::default();
                let reader = negotiated
                    .as_ref()
                    .map(|n| spawn_reader(leg, rtp.clone(), n, peer.clone()));
                media.insert(
                    leg,
                    Media {
                        socket: rtp,
                        local,
                        negotiated,
                        peer,
                        stream: None,
                        reader,
                    },
                );
                ua.media_ready(leg, local, Instant::now());
            }
            Err(e) => {
                warn!(error = %e, "park: no RTP port");
                early.remove(&leg);
                ua.media_failed(leg, Instant::now());
            }
        },
        Out::Hold { leg, orbit } => {
            let music = hold_music(&orbit).await;
            if let Some(m) = media.get_mut(&leg)
                && let Some(n) = &m.negotiated
            {
                let spec = StreamSpec {
                    prompt: music,
                    codec: n.codec,
                    remote: n.remote,
                    rtcp: false,
                    send: n.direction.we_send(),
                    at_end: AtEnd::Loop,
                    ssrc: rand::random(),
                    seq: rand::random(),
                    timestamp: rand::random(),
                };
                m.stream = Some(node.play(spec, m.socket.clone(), None));
            }
        }
        Out::Bridge { a, b } => {
            for leg in [a, b] {
                if let Some(tag) = media.get_mut(&leg).and_then(|m| m.stream.take()) {
                    node.stop(tag);
                }
            }
            let side = |m: Option<&Media>| {
                m.and_then(|m| m.negotiated.as_ref().map(|n| (m.socket.clone(), n.remote)))
            };
            let (to_b, to_a) = (side(media.get(&b)), side(media.get(&a)));
            if let Some(m) = media.get(&a) {
                m.peer.set(to_b);
            }
            if let Some(m) = media.get(&b) {
                m.peer.set(to_a);
            }
            debug!(a, b, "park: legs bridged");
        }
        Out::Close { leg } => {
            early.remove(&leg);
            if let Some(m) = media.remove(&leg) {
                if let Some(tag) = m.stream {
                    node.stop(tag);
                }
                if let Some(r) = m.reader {
                    r.abort();
                }
                debug!(leg, local = %m.local, "park: media closed");
            }
        }
    }
}
