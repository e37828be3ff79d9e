//! The Mediation role collocated with this front end (`[mediation]`, on by
//! default): binds its ports (UDP and TCP on one port, TLS on another, through
//! `confab-transport`) before the front end's core is built (the core hands
//! calls to the PSTN to the UDP address and trusts it), then runs
//! `confab_mediation::server` with the voice configuration the front end follows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use confab_frontend::Metrics;
use confab_mediation::{CallRecord, Config, Mediation, UdpRelays};
use confab_store::{CallDetail, Store};
use confab_transport::{Connections, Event, TransportLimits, Transports};
use confab_voice::VoiceConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::ServeConfig;

/// The Mediation server's transports, listening.
pub struct Bound {
    transports: Transports,
    events: mpsc::Receiver<Event>,
    /// UDP (the pool's calls, UDP trunks) and TCP.
    pub addr: SocketAddr,
    /// TLS.
    pub tls_addr: Option<SocketAddr>,
    /// Its TCP/TLS connections (gateways'), counted on a stand-alone server's
    /// `/metrics`.
    pub conns: Arc<Connections>,
}

/// Messages read and not yet handled by the Mediation server's core.
const EVENT_QUEUE: usize = 4096;

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

/// Binds the Mediation server's ports when the role is enabled: UDP and TCP on
/// `[mediation] sip`, TLS on `[mediation] tls` with `tls` (the server's
/// certificate); outbound TLS to gateways checks their certificates against
/// `[mediation] gateway_ca`.
pub async fn bind(
    cfg: &ServeConfig,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<Option<Bound>> {
    if !cfg.mediation.enabled {
        return Ok(None);
    }
    let want = cfg
        .mediation
        .sip
        .unwrap_or_else(|| SocketAddr::new(cfg.sip.ip(), 0));
    let want_tls = cfg
        .mediation
        .tls
        .unwrap_or_else(|| SocketAddr::new(want.ip(), 0));
    let client = confab_tls::client_config(cfg.mediation.gateway_ca.as_deref())
        .context("[mediation] gateway_ca")?;
    let (tx, events) = mpsc::channel(EVENT_QUEUE);
    let limits = TransportLimits {
        // A gateway's connection carries no message for the whole length of a
        // call: kept open (the first hour; a closed one is opened again).
        idle_timeout: Duration::from_secs(3600),
        ..TransportLimits::default()
    };
    let conns = Connections::new(limits, tx);
    let mut transports = Transports::start(want, Some((want_tls, tls)), conns.clone())
        .await
        .with_context(|| {
            format!("binding the Mediation server's SIP ports {want}, TLS {want_tls}")
        })?;
    transports.set_tls_client(client);
    let addr = concrete(transports.udp_addr());
    let tls_addr = transports.tls_addr().map(concrete);
    info!(mediation = %addr, tls = ?tls_addr, "Mediation role: gateways send calls to {addr} (UDP, TCP)");
    Ok(Some(Bound {
        transports,
        events,
        addr,
        tls_addr,
        conns,
    }))
}

/// Call records written in one transaction at most (the store writes them as
/// multi-row INSERTs).
const RECORD_BATCH: usize = 1024;
/// Call records queued between the Mediation loop and the writer at most (more
/// are dropped, counted in `/metrics`): 8 s of 2,000 calls/s. A record is a few
/// hundred bytes with its strings, so a full queue holds a few MB.
const RECORD_QUEUE: usize = 16_384;

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
    mcfg.tls_local = bound.tls_addr;
    mcfg.pool = if cfg.mediation.pool.is_empty() {
        vec![front_end]
    } else {
        cfg.mediation.pool.iter().copied().map(concrete).collect()
    };
    mcfg.relay_trunks = cfg.mediation.relay_trunks.clone();
    mcfg.failover_timeout = Duration::from_millis(cfg.mediation.failover_timeout_ms);
    let core = Mediation::new(mcfg, voice);
    let relays = UdpRelays::new(bound.addr.ip(), cfg.mediation.max_relays);
    let (voice_tx, voice_rx) = mpsc::channel(4);
    let (rec_tx, mut rec_rx) = mpsc::channel::<CallRecord>(RECORD_QUEUE);
    let counters = Arc::new(confab_mediation::server::Counters {
        records_dropped: metrics.records.calls_queue_full.clone(),
        records_queued: metrics.records.call_queue.clone(),
        ..Default::default()
    });
    let run = tokio::spawn(confab_mediation::server::run(
        bound.transports,
        bound.events,
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
            let n = batch.len() as u64;
            metrics.records.call_queue.fetch_sub(n, Ordering::Relaxed);
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
            match store.record_calls(&details).await {
                Ok(()) => {
                    metrics
                        .records
                        .calls_written
                        .fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    metrics
                        .records
                        .calls_write_failed
                        .fetch_add(n, Ordering::Relaxed);
                    warn!(error = %e, calls = details.len(), "writing call records failed");
                }
            }
        }
    });
    (voice_tx, vec![run, records])
}

/// A machine whose only role is mediation (`[mediation] only`, set by the
/// topology): the Mediation server alone, for the front ends of `[mediation]
/// pool` (their calls to the PSTN are accepted; calls from gateways go to the
/// first), on the pool's back end (the voice configuration) and monitoring store.
pub async fn run_only(cfg: &ServeConfig) -> anyhow::Result<()> {
    let Some(&front_end) = cfg.mediation.pool.first() else {
        anyhow::bail!(
            "a stand-alone Mediation server needs the front ends it serves ([mediation] pool)"
        );
    };
    let url = cfg.database_url().map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::open(&url)
        .await
        .with_context(|| format!("opening the database {}", confab_store::redact_url(&url)))?;
    let monitoring_store = match &cfg.monitoring.database {
        Some(murl) => Store::open(murl).await.with_context(|| {
            format!(
                "opening the monitoring database {}",
                confab_store::redact_url(murl)
            )
        })?,
        None => store.clone(),
    };
    let material = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => confab_tls::load_pem(c, k)
            .with_context(|| format!("loading TLS certificate {}", c.display()))?,
        (None, None) => {
            confab_tls::load_or_create(&cfg.data_dir, std::slice::from_ref(&cfg.domain))
                .context("creating a self-signed TLS certificate")?
        }
        _ => anyhow::bail!("tls_cert and tls_key must be given together"),
    };
    let tls = confab_tls::server_config(&material).context("building the TLS configuration")?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::signals::shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let Some(bound) = bind(cfg, tls.clone()).await? else {
        anyhow::bail!("[mediation] enabled = false on a machine whose only role is mediation");
    };
    let (voice, mut voice_rx, voice_task) = crate::voice_feed::start(
        store.clone(),
        &url,
        crate::voice_homes::HomeSource::for_config(cfg),
        stop_rx.clone(),
    )
    .await?;
    let (addr, tls_addr) = (bound.addr, bound.tls_addr);
    // `/metrics` on the web address, as a front end's: the trunks' counters and
    // the call-record writer's, with the same TLS and `[web] metrics_allow`.
    let metrics = Arc::new(Metrics::default());
    let metrics_allow = confab_web::access::parse_list(&cfg.web.metrics_allow)
        .map_err(|e| anyhow::anyhow!("[web] metrics_allow: {e}"))?;
    if !cfg.web.tls {
        warn!("[web] tls = false: /metrics is served over plain HTTP");
    }
    let mut stop_http = stop_rx.clone();
    let (metrics_addr, http_task) = confab_web::serve_metrics(
        cfg.http,
        confab_web::WebState {
            metrics: metrics.clone(),
            conns: bound.conns.clone(),
            chat_search: None,
            metrics_allow: Arc::new(metrics_allow),
        },
        confab_web::WebOptions {
            tls: cfg.web.tls.then(|| tls.clone()),
            hsts_max_age_secs: cfg.web.hsts_max_age_secs,
            extra: None,
        },
        async move {
            let _ = stop_http.changed().await;
        },
    )
    .await
    .context("starting the metrics listener (the `http` address)")?;
    let (voice_tx, tasks) = start(
        bound,
        cfg,
        monitoring_store,
        metrics,
        front_end,
        voice,
        stop_rx.clone(),
    );
    let pool = cfg
        .mediation
        .pool
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    info!(sip = %addr, tls = ?tls_addr, metrics = %metrics_addr, front_ends = %pool, "mediation server started (mediation role only)");
    loop {
        tokio::select! {
            v = voice_rx.recv() => match v {
                Some(v) => { let _ = voice_tx.try_send(v); }
                None => break,
            },
            r = stop_rx.changed() => {
                if r.is_err() || *stop_rx.borrow() { break; }
            }
        }
    }
    for t in tasks.into_iter().chain([voice_task, http_task]) {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    Ok(())
}
