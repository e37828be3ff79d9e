//! The Mediation role collocated with this front end (`[mediation]`, on by
//! default): binds its UDP port before the front end's core is built (the core
//! hands calls to the PSTN to that address and trusts it), then runs
//! `confab_mediation::server` with the voice configuration the front end follows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use confab_frontend::Metrics;
use confab_mediation::{CallRecord, Config, Mediation, UdpRelays};
use confab_store::{CallDetail, Store};
use confab_voice::VoiceConfig;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::ServeConfig;

/// The Mediation server's socket, bound.
pub struct Bound {
    socket: UdpSocket,
    pub addr: SocketAddr,
}

/// A routable address for `addr` (a wildcard becomes loopback).
fn concrete(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// Binds the Mediation server's port when the role is enabled.
pub async fn bind(cfg: &ServeConfig) -> anyhow::Result<Option<Bound>> {
    if !cfg.mediation.enabled {
        return Ok(None);
    }
    let want = cfg
        .mediation
        .sip
        .unwrap_or_else(|| SocketAddr::new(cfg.sip.ip(), 0));
    let socket = confab_mediation::server::bind_udp(want)
        .with_context(|| format!("binding the Mediation server's SIP port {want}"))?;
    let addr = concrete(socket.local_addr()?);
    info!(mediation = %addr, "Mediation role (collocated): gateways send calls to {addr}");
    Ok(Some(Bound { socket, addr }))
}

/// Call records written in one transaction at most.
const RECORD_BATCH: usize = 256;

/// Epoch milliseconds of `t` (an instant in the past).
fn epoch_ms(t: Instant) -> i64 {
    let ago = Instant::now().saturating_duration_since(t);
    let wall = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn detail(r: &CallRecord) -> CallDetail {
    CallDetail {
        direction: r.direction.as_str().to_owned(),
        caller: r.caller.clone(),
        callee: r.callee.clone(),
        number: r.number.clone(),
        trunk: r.trunk.clone().unwrap_or_default(),
        started: epoch_ms(r.started),
        answered: r.answered.map_or(0, epoch_ms),
        ended: epoch_ms(r.ended),
        code: i64::from(r.code),
        attempts: r
            .attempts
            .iter()
            .map(|(t, c)| format!("{t}:{c}"))
            .collect::<Vec<_>>()
            .join(" "),
        relayed_packets: r
            .relayed_packets
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// Starts the Mediation server; `front_end` is this front end's UDP address.
/// Returns where voice configuration changes go, and its tasks.
pub fn start(
    bound: Bound,
    cfg: &ServeConfig,
    store: Store,
    metrics: Arc<Metrics>,
    front_end: SocketAddr,
    voice: Arc<VoiceConfig>,
    stop: watch::Receiver<bool>,
) -> (mpsc::Sender<Arc<VoiceConfig>>, Vec<JoinHandle<()>>) {
    let front_end = concrete(front_end);
    let mut mcfg = Config::new(bound.addr, &cfg.domain, front_end);
    mcfg.pool = vec![front_end];
    mcfg.relay_trunks = cfg.mediation.relay_trunks.clone();
    mcfg.failover_timeout = Duration::from_millis(cfg.mediation.failover_timeout_ms);
    let core = Mediation::new(mcfg, voice);
    let relays = UdpRelays::new(bound.addr.ip(), cfg.mediation.max_relays);
    let (voice_tx, voice_rx) = mpsc::channel(4);
    let (rec_tx, mut rec_rx) = mpsc::channel::<CallRecord>(1024);
    let counters = Arc::new(confab_mediation::server::Counters::default());
    let run = tokio::spawn(confab_mediation::server::run(
        bound.socket,
        core,
        relays,
        voice_rx,
        rec_tx,
        counters,
        stop,
    ));
    let records = tokio::spawn(async move {
        // Batches: whatever queued while the previous batch was written.
        while let Some(first) = rec_rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < RECORD_BATCH {
                match rec_rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let details: Vec<CallDetail> = batch.iter().map(detail).collect();
            for r in &batch {
                for (trunk, code) in &r.attempts {
                    metrics.trunks.attempt(trunk, *code);
                }
                info!(
                    direction = r.direction.as_str(),
                    caller = %r.caller,
                    callee = %r.callee,
                    trunk = r.trunk.as_deref().unwrap_or("-"),
                    code = r.code,
                    answered = r.answered.is_some(),
                    relayed_packets = r.relayed_packets.unwrap_or(0),
                    "call record"
                );
            }
            if let Err(e) = store.record_calls(&details).await {
                warn!(error = %e, calls = details.len(), "writing call records failed");
            }
        }
    });
    (voice_tx, vec![run, records])
}
