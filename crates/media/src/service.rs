//! The Announcement service's tokio layer: a UDP SIP socket the front end sends
//! calls to, the [`AnnouncementUa`], an RTP socket per call streamed by the
//! shared [`MediaNode`], and a small receive task per call that reads what the
//! caller sends (RTP from any other address is ignored; RFC 4733 digits are
//! logged).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_voice::{Announcement, VoiceConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::announce::{AnnouncementUa, CallId, Out, UaConfig};
use crate::dtmf::DtmfDetector;
use crate::node::{MediaNode, bind_rtp};
use crate::pacer::{AtEnd, StreamSpec};
use crate::prompt::Prompt;
use crate::rtp::RtpFilter;
use crate::sdp::Negotiated;

/// Where the service listens.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub domain: String,
    /// SIP (UDP), normally loopback port 0: only the front end talks to it.
    pub sip_bind: SocketAddr,
    /// The address RTP ports are opened on and named in SDP (reachable by clients).
    pub rtp_ip: IpAddr,
}

/// The running service.
pub struct Running {
    /// Its SIP address (an application route of the front end, a trusted peer).
    pub addr: SocketAddr,
    pub task: JoinHandle<()>,
}

struct Media {
    socket: Arc<UdpSocket>,
    negotiated: Negotiated,
    prompt: Prompt,
    stream: Option<u64>,
    reader: JoinHandle<()>,
}

/// A prompt for an announcement: its tones, or its WAV file (read off the task);
/// a prompt that cannot be made is one second of silence (logged).
async fn make_prompt(a: &Announcement) -> Prompt {
    let made = match (&a.tones, &a.audio_file) {
        (Some(t), _) => Prompt::tones(t),
        (None, Some(f)) => {
            let f = f.clone();
            tokio::task::spawn_blocking(move || Prompt::from_wav_file(Path::new(&f)))
                .await
                .unwrap_or_else(|e| {
                    Err(crate::prompt::PromptError::BadTones {
                        spec: e.to_string(),
                        reason: "loader failed",
                    })
                })
        }
        (None, None) => Ok(Prompt::silence(1000)),
    };
    made.unwrap_or_else(|e| {
        warn!(announcement = %a.name, error = %e, "announcement prompt unavailable: playing silence");
        Prompt::silence(1000)
    })
}

/// Reads the caller's RTP: drops what comes from elsewhere, logs digits.
fn spawn_reader(call: CallId, socket: Arc<UdpSocket>, n: &Negotiated) -> JoinHandle<()> {
    let filter = RtpFilter::new(n.remote);
    let event_pt = n.event_pt;
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut dtmf = DtmfDetector::new();
        let mut ignored = 0u64;
        loop {
            let Ok((len, src)) = socket.recv_from(&mut buf).await else {
                return;
            };
            match filter.accept(src, &buf[..len]) {
                Ok(p) if Some(p.payload_type) == event_pt => {
                    if let Some(d) = dtmf.on_event(p.timestamp, p.payload) {
                        debug!(call, digit = %d, "announcement: caller pressed a key");
                    }
                }
                Ok(_) => {}
                Err(why) => {
                    ignored += 1;
                    if ignored.is_power_of_two() {
                        debug!(call, %src, ?why, ignored, "announcement: RTP ignored");
                    }
                }
            }
        }
    })
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
    let seed = rand::random::<u64>();
    let mut ua = AnnouncementUa::new(
        UaConfig {
            sip: addr,
            domain: cfg.domain.clone(),
        },
        voice,
        seed,
    );
    let rtp_ip = cfg.rtp_ip;
    info!(sip = %addr, rtp = %rtp_ip, "announcement service started");
    let task = tokio::spawn(async move {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
        let mut media: HashMap<CallId, Media> = HashMap::new();
        let mut by_stream: HashMap<u64, CallId> = HashMap::new();
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
                    Err(e) => debug!(error = %e, "announcement: SIP receive error"),
                },
                Some(v) = updates.recv() => ua.set_voice(v),
                Some(tag) = done_rx.recv() => {
                    if let Some(call) = by_stream.remove(&tag) {
                        if let Some(m) = media.get_mut(&call) {
                            m.stream = None;
                        }
                        ua.played(call, Instant::now());
                    }
                }
                () = tokio::time::sleep_until(timer.into()) => ua.on_timer(Instant::now()),
                _ = stop.changed() => break,
            }
            // Carry out the UA's work; opening media feeds the UA again.
            loop {
                let outs = ua.take_output();
                if outs.is_empty() {
                    break;
                }
                for out in outs {
                    match out {
                        Out::Send { to, data } => {
                            if let Err(e) = socket.send_to(&data, to).await {
                                debug!(%to, error = %e, "announcement: SIP send failed");
                            }
                        }
                        Out::OpenMedia {
                            call,
                            announcement,
                            negotiated,
                        } => match bind_rtp(rtp_ip).await {
                            Ok((rtp, local)) => {
                                let prompt = make_prompt(&announcement).await;
                                let reader = spawn_reader(call, rtp.clone(), &negotiated);
                                ua.answer(call, local, &negotiated, Instant::now());
                                media.insert(
                                    call,
                                    Media {
                                        socket: rtp,
                                        negotiated,
                                        prompt,
                                        stream: None,
                                        reader,
                                    },
                                );
                            }
                            Err(e) => {
                                warn!(error = %e, "announcement: no RTP port");
                                ua.fail(call, Instant::now());
                            }
                        },
                        Out::Play { call } => {
                            if let Some(m) = media.get_mut(&call) {
                                let spec = StreamSpec {
                                    prompt: m.prompt.clone(),
                                    codec: m.negotiated.codec,
                                    remote: m.negotiated.remote,
                                    rtcp: true,
                                    send: m.negotiated.direction.we_send(),
                                    at_end: AtEnd::Stop,
                                    ssrc: rand::random(),
                                    seq: rand::random(),
                                    timestamp: rand::random(),
                                };
                                let tag = node.play(spec, m.socket.clone(), Some(done_tx.clone()));
                                m.stream = Some(tag);
                                by_stream.insert(tag, call);
                            }
                        }
                        Out::Close { call } => {
                            if let Some(m) = media.remove(&call) {
                                if let Some(tag) = m.stream {
                                    node.stop(tag);
                                    by_stream.remove(&tag);
                                }
                                m.reader.abort();
                            }
                        }
                    }
                }
            }
        }
        for (_, m) in media.drain() {
            if let Some(tag) = m.stream {
                node.stop(tag);
            }
            m.reader.abort();
        }
    });
    Ok(Running { addr, task })
}
