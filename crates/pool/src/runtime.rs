//! The tokio part: heartbeats, the LISTEN/NOTIFY change feed and home claims.
//!
//! Three tasks share one [`PoolView`] (a mutex held for microseconds; the front
//! end's core asks it once per routed request):
//! - the heartbeat: writes this front end's row every `heartbeat` and marks the
//!   view (a front end whose writes fail loses its own lease and refuses, see
//!   [`Route::Unavailable`](crate::Route::Unavailable));
//! - the listener: a dedicated PostgreSQL connection LISTENing on
//!   [`confab_store::POOL_CHANNEL`]; every notification is applied to the view;
//!   when the connection is lost the view is reloaded from the tables once it
//!   is back (notifications sent meanwhile are lost);
//! - the claimer: records the view's home assignments (compare-and-set) and
//!   applies the winner's answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_store::{PoolEvent, PoolMember, Store};
use parking_lot::Mutex;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::view::{Claim, PoolView};

/// Errors starting the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the pool's back end: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("listening for pool changes: {0}")]
    Listen(#[from] sqlx::Error),
}

/// This front end in its pool.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The pool's name (its FQDN).
    pub pool: String,
    /// This front end's name (its FQDN).
    pub member: String,
    /// Where the pool's other front ends send this one SIP (`ip:port`, UDP).
    pub sip_addr: std::net::SocketAddr,
    pub heartbeat: Duration,
    /// A front end whose heartbeat is older than this is dead.
    pub lease: Duration,
}

/// A running pool membership.
pub struct PoolHandle {
    view: Arc<Mutex<PoolView>>,
    claims: mpsc::UnboundedSender<Claim>,
    tasks: Vec<JoinHandle<()>>,
}

impl PoolHandle {
    /// The shared view.
    pub fn view(&self) -> Arc<Mutex<PoolView>> {
        self.view.clone()
    }

    /// Hands the view's queued home claims to the back end.
    pub fn submit_claims(view: &mut PoolView, tx: &mpsc::UnboundedSender<Claim>) {
        for c in view.take_claims() {
            let _ = tx.send(c);
        }
    }

    /// Where claims go (see [`PoolHandle::submit_claims`]).
    pub fn claim_sender(&self) -> mpsc::UnboundedSender<Claim> {
        self.claims.clone()
    }

    /// Waits for the tasks to end (after `stop` was signalled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Wall clock, epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Joins the pool: first heartbeat, LISTEN, snapshot, then the three tasks.
/// `registrations` reports this front end's registration count for the heartbeat.
pub async fn start(
    store: Store,
    url: &str,
    settings: PoolSettings,
    registrations: Arc<dyn Fn() -> i64 + Send + Sync>,
    stop: watch::Receiver<bool>,
) -> Result<PoolHandle, PoolError> {
    let started_ms = now_ms();
    let (pool_name, member_name, sip_text) = (
        settings.pool.clone(),
        settings.member.clone(),
        settings.sip_addr.to_string(),
    );
    let row = move |regs: i64| PoolMember {
        pool: pool_name.clone(),
        member: member_name.clone(),
        sip_addr: sip_text.clone(),
        heartbeat_ms: now_ms(),
        started_ms,
        registrations: regs,
    };
    let lease_ms = u64::try_from(settings.lease.as_millis()).unwrap_or(u64::MAX);
    let view = Arc::new(Mutex::new(PoolView::new(
        &settings.pool,
        &settings.member,
        lease_ms,
    )));
    // Listen before reading the snapshot, so that no change falls in between.
    let mut listener = PgListener::connect(url).await?;
    listener.listen(confab_store::POOL_CHANNEL).await?;
    let first = row(registrations());
    store.pool_heartbeat(&first).await?;
    let members = store.pool_members(&settings.pool).await?;
    let homes = store.pool_homes(&settings.pool).await?;
    {
        let mut v = view.lock();
        v.load_snapshot(members, homes);
        v.heartbeat_ok(first.heartbeat_ms);
    }
    info!(pool = %settings.pool, member = %settings.member, sip = %settings.sip_addr, "joined the pool");

    let mut tasks = Vec::new();
    // Heartbeat.
    {
        let (store, view, mut stop) = (store.clone(), view.clone(), stop.clone());
        let period = settings.heartbeat;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let m = row(registrations());
                let hb = m.heartbeat_ms;
                // Bounded: a hung back end must not keep the old lease alive.
                let r = tokio::time::timeout(period.max(Duration::from_secs(1)), store.pool_heartbeat(&m)).await;
                match r {
                    Ok(Ok(())) => {
                        if failing {
                            info!("the pool's back end is reachable again: serving");
                            failing = false;
                        }
                        view.lock().heartbeat_ok(hb);
                    }
                    Ok(Err(e)) => {
                        if !failing {
                            warn!(error = %e, "pool heartbeat failed: this front end refuses sign-ins and routed requests once its lease ends");
                            failing = true;
                        }
                    }
                    Err(_) => {
                        if !failing {
                            warn!("pool heartbeat timed out: this front end refuses sign-ins and routed requests once its lease ends");
                            failing = true;
                        }
                    }
                }
            }
        }));
    }
    // Listener.
    {
        let (store, view, mut stop) = (store.clone(), view.clone(), stop.clone());
        let pool = settings.pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut reload = false;
            loop {
                if reload {
                    match tokio::try_join!(store.pool_members(&pool), store.pool_homes(&pool)) {
                        Ok((members, homes)) => {
                            view.lock().load_snapshot(members, homes);
                            info!("pool change feed reconnected; view reloaded");
                            reload = false;
                        }
                        Err(e) => {
                            debug!(error = %e, "reloading the pool view failed; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
                let n = tokio::select! {
                    n = listener.try_recv() => n,
                    _ = stop.changed() => return,
                };
                match n {
                    Ok(Some(n)) => match PoolEvent::decode(n.payload()) {
                        Some(ev) => view.lock().apply(ev),
                        None => debug!(payload = n.payload(), "unknown pool notification ignored"),
                    },
                    // The connection was lost; the next try_recv reconnects.
                    Ok(None) => {
                        warn!("pool change feed lost its connection; reconnecting");
                        reload = true;
                    }
                    Err(e) => {
                        debug!(error = %e, "pool change feed: reconnecting");
                        reload = true;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
        }));
    }
    // Claimer.
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<Claim>();
    {
        let (view, mut stop) = (view.clone(), stop.clone());
        let pool = settings.pool.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let c = tokio::select! {
                    c = claims_rx.recv() => c,
                    _ = stop.changed() => return,
                };
                let Some(c) = c else { return };
                let r = store
                    .claim_home(&pool, &c.address, &c.member, c.previous.as_deref(), now_ms())
                    .await;
                match r {
                    Ok(winner) => {
                        if winner != c.member {
                            info!(user = %c.address, home = %winner, "another front end homed the user first");
                        } else {
                            info!(user = %c.address, home = %winner, previous = ?c.previous, "user homed");
                        }
                        view.lock().claimed(&c.address, &winner);
                    }
                    Err(e) => warn!(user = %c.address, error = %e, "recording a home front end failed"),
                }
            }
        }));
    }
    drop(stop);
    Ok(PoolHandle {
        view,
        claims: claims_tx,
        tasks,
    })
}
