//! The tokio part: follows every pool's changes (LISTEN on the pools' channel,
//! the same notifications the pools' own front ends follow) into the
//! [`PoolMap`], and records a Director's home claims.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_store::{HomeEvent, PoolEvent, Store};
use parking_lot::Mutex;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::map::{HomeClaim, PoolMap};

/// Errors starting to follow the topology.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the back end: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("listening for pool changes: {0}")]
    Listen(#[from] sqlx::Error),
}

/// A running follower.
pub struct PoolsHandle {
    map: Arc<Mutex<PoolMap>>,
    claims: mpsc::UnboundedSender<HomeClaim>,
    tasks: Vec<JoinHandle<()>>,
}

impl PoolsHandle {
    /// The shared map.
    pub fn map(&self) -> Arc<Mutex<PoolMap>> {
        self.map.clone()
    }

    /// Where home claims go.
    pub fn claim_sender(&self) -> mpsc::UnboundedSender<HomeClaim> {
        self.claims.clone()
    }

    /// Waits for the tasks to end (after `stop` was signalled).
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn snapshot(store: &Store, map: &Mutex<PoolMap>) -> Result<(), confab_store::StoreError> {
    let (members, kinds, users, homes) = tokio::try_join!(
        store.all_pool_members(),
        store.pool_kinds(),
        store.user_pools(),
        store.all_pool_homes()
    )?;
    map.lock().load_snapshot(members, kinds, users, homes);
    Ok(())
}

/// Starts following the topology's pools (PostgreSQL only). `lease_ms`: a
/// server whose heartbeat is older is dead.
pub async fn start(
    store: Store,
    url: &str,
    lease_ms: u64,
    stop: watch::Receiver<bool>,
) -> Result<PoolsHandle, DirectoryError> {
    let map = Arc::new(Mutex::new(PoolMap::new(lease_ms)));
    // Listen before reading the snapshot, so that no change falls in between.
    let mut listener = PgListener::connect(url).await?;
    listener.listen(confab_store::POOL_CHANNEL).await?;
    snapshot(&store, &map).await?;
    info!(pools = ?map.lock().front_end_pools(), "following the topology's pools");
    let mut tasks = Vec::new();
    {
        let (store, map, mut stop) = (store.clone(), map.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut reload = false;
            loop {
                if reload {
                    match snapshot(&store, &map).await {
                        Ok(()) => reload = false,
                        Err(e) => {
                            debug!(error = %e, "reloading the pools failed; retrying");
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
                    Ok(Some(n)) => {
                        let payload = n.payload();
                        if let Some(ev) = PoolEvent::decode(payload) {
                            map.lock().apply_pool(ev);
                        } else if let Some(ev) = HomeEvent::decode(payload) {
                            map.lock().apply_home(ev);
                        }
                    }
                    Ok(None) => {
                        warn!("the pools' change feed lost its connection; reconnecting");
                        reload = true;
                    }
                    Err(e) => {
                        debug!(error = %e, "the pools' change feed: reconnecting");
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
    let (claims_tx, mut claims_rx) = mpsc::unbounded_channel::<HomeClaim>();
    {
        let (map, mut stop) = (map.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let c = tokio::select! {
                    c = claims_rx.recv() => c,
                    _ = stop.changed() => return,
                };
                let Some(c) = c else { return };
                match store
                    .claim_home(&c.pool, &c.address, &c.member, c.previous.as_deref(), now_ms())
                    .await
                {
                    Ok(winner) => {
                        info!(user = %c.address, pool = %c.pool, home = %winner, "user homed by the Director");
                        map.lock().claimed(&c.pool, &c.address, &winner);
                    }
                    Err(e) => warn!(user = %c.address, error = %e, "recording a home front end failed"),
                }
            }
        }));
    }
    drop(stop);
    Ok(PoolsHandle {
        map,
        claims: claims_tx,
        tasks,
    })
}
