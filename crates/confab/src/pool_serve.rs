//! `confab serve` as one front end of an Enterprise pool: joins the pool
//! (`confab-pool`) and answers the front end's [`HomeRouter`] from the pool's
//! in-memory view.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, bail};
use confab_frontend::{Dest, HomeRoute, HomeRouter, Metrics, Transport};
use confab_pool::{Claim, PoolHandle, PoolSettings, PoolView, Route};
use confab_store::Store;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::config::ServeConfig;

/// The front end's view of its pool (see `confab_frontend::home`).
pub struct PoolRouter {
    view: Arc<Mutex<PoolView>>,
    claims: mpsc::UnboundedSender<Claim>,
}

impl HomeRouter for PoolRouter {
    fn route(&self, user: &str, sign_in: bool) -> HomeRoute {
        let mut v = self.view.lock();
        let r = v.route(user, sign_in, confab_pool::runtime::now_ms());
        PoolHandle::submit_claims(&mut v, &self.claims);
        match r {
            Route::Local => HomeRoute::Local,
            // Between front ends: UDP from and to each one's SIP port, so that the
            // source address identifies the peer (see docs/decisions.md).
            Route::Peer { addr, .. } => HomeRoute::Peer(Dest {
                transport: Transport::Udp,
                addr,
                conn: None,
            }),
            Route::Unavailable(why) => HomeRoute::Unavailable(why.to_owned()),
        }
    }

    fn is_peer(&self, addr: SocketAddr) -> bool {
        self.view.lock().is_peer(addr)
    }
}

/// Joins the pool when `[pool] enabled`: `None` otherwise.
pub async fn join(
    cfg: &ServeConfig,
    store: &Store,
    url: &str,
    advertise_host: &str,
    udp: SocketAddr,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(PoolHandle, Arc<PoolRouter>)>> {
    let p = &cfg.pool;
    // A Director joins the back end as a server of its own pool (crate::pools_serve).
    if !p.enabled && !cfg.director.enabled {
        return Ok(None);
    }
    if store.backend() != confab_store::Backend::Postgres {
        bail!("[pool] enabled needs the pool's PostgreSQL back end as `database`");
    }
    let ip: IpAddr = match advertise_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
    {
        Ok(ip) => ip,
        Err(_) if !udp.ip().is_unspecified() => udp.ip(),
        Err(_) => bail!(
            "a pool's front end needs an IP address its peers can reach: bind `sip` to one or advertise one (got {advertise_host:?})"
        ),
    };
    let sip_addr = SocketAddr::new(ip, udp.port());
    let settings = PoolSettings {
        pool: p.name.clone().unwrap_or_else(|| cfg.domain.clone()),
        member: p.member.clone().unwrap_or_else(|| sip_addr.to_string()),
        sip_addr,
        heartbeat: Duration::from_millis(p.heartbeat_ms),
        lease: Duration::from_millis(p.lease_ms),
    };
    let regs = Arc::new(move || {
        i64::try_from(metrics.registrations.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
    });
    let handle = confab_pool::start(store.clone(), url, settings, regs, stop)
        .await
        .context("joining the pool")?;
    let router = Arc::new(PoolRouter {
        view: handle.view(),
        claims: handle.claim_sender(),
    });
    Ok(Some((handle, router)))
}
