//! Presence shared between the front ends of a pool (tokio part; the front end's
//! side is `confab_frontend::SharedPresence`, the table `pool_presence`).
//!
//! - the writer: writes the states this front end shares (batched: whatever is
//!   queued goes in one transaction, each user's last state only) with `pg_notify` on
//!   [`confab_store::PRESENCE_CHANNEL`];
//! - the listener: a dedicated PostgreSQL connection LISTENing on that channel;
//!   it first hands over the states of the live front ends' users from the table
//!   (again after a reconnect), then every other front end's notification. A
//!   front end whose lease ended (checked in memory against the pool's view,
//!   every half lease: no database query) is handed over as
//!   [`PresenceIn::Forget`], so its users stop showing their last state.

use std::sync::Arc;
use std::time::Duration;

use confab_store::{PRESENCE_CHANNEL, SharedState, Store};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::runtime::{PoolError, now_ms};
use crate::view::PoolView;

/// What the listener hands to the front end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceIn {
    /// Another front end's user's state.
    State(SharedState),
    /// That front end left the pool: forget what it shared.
    Forget(String),
}

/// The running presence sharing of one front end.
pub struct PresenceFeed {
    /// States to share (this front end's users).
    pub out: mpsc::UnboundedSender<Vec<SharedState>>,
    /// The other front ends' states.
    pub incoming: mpsc::Receiver<PresenceIn>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts sharing presence in the pool of `view`.
pub async fn start(
    store: Store,
    url: &str,
    view: Arc<Mutex<PoolView>>,
    lease: Duration,
    stop: watch::Receiver<bool>,
) -> Result<PresenceFeed, PoolError> {
    let (pool, me) = {
        let v = view.lock();
        (v.pool().to_owned(), v.me().to_owned())
    };
    // What this front end shared before a restart is stale.
    store.pool_presence_forget(&pool, &me).await?;
    let mut listener = PgListener::connect(url).await?;
    listener.listen(PRESENCE_CHANNEL).await?;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<SharedState>>();
    let (in_tx, in_rx) = mpsc::channel::<PresenceIn>(1024);
    let mut tasks = Vec::new();
    // Writer.
    {
        let (store, mut stop) = (store.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    b = out_rx.recv() => b,
                    _ = stop.changed() => return,
                };
                let Some(mut batch) = batch else { return };
                while let Ok(more) = out_rx.try_recv() {
                    batch.extend(more);
                }
                // Only each user's last state counts (a sign-in storm is one write
                // per user, not one per change).
                let mut seen = FxHashSet::default();
                batch.reverse();
                batch.retain(|s| seen.insert(s.address.clone()));
                batch.reverse();
                if let Err(e) = store.pool_presence_share(&batch, now_ms()).await {
                    warn!(error = %e, states = batch.len(), "sharing presence with the pool failed");
                }
            }
        }));
    }
    // Listener.
    {
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut senders: FxHashSet<String> = FxHashSet::default();
            let mut reload = true;
            let mut check = tokio::time::interval((lease / 2).max(Duration::from_millis(100)));
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                if reload {
                    match store.pool_presence(&pool).await {
                        Ok(states) => {
                            let now = now_ms();
                            let live: Vec<SharedState> = {
                                let v = view.lock();
                                states
                                    .into_iter()
                                    .filter(|s| s.member != me && v.is_live(&s.member, now))
                                    .collect()
                            };
                            debug!(states = live.len(), "loaded the pool's shared presence");
                            for s in live {
                                senders.insert(s.member.clone());
                                if in_tx.send(PresenceIn::State(s)).await.is_err() {
                                    return;
                                }
                            }
                            reload = false;
                        }
                        Err(e) => {
                            debug!(error = %e, "loading the pool's shared presence failed; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                                _ = stop.changed() => return,
                            }
                        }
                    }
                }
                tokio::select! {
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => {
                            let Some(s) = SharedState::decode(n.payload()) else {
                                debug!("unknown presence notification ignored");
                                continue;
                            };
                            if s.pool != pool || s.member == me {
                                continue;
                            }
                            senders.insert(s.member.clone());
                            if in_tx.send(PresenceIn::State(s)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            info!("presence feed lost its connection; reconnecting");
                            reload = true;
                        }
                        Err(e) => {
                            debug!(error = %e, "presence feed: reconnecting");
                            reload = true;
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.changed() => return,
                            }
                        }
                    },
                    _ = check.tick() => {
                        let now = now_ms();
                        let dead: Vec<String> = {
                            let v = view.lock();
                            senders.iter().filter(|m| !v.is_live(m, now)).cloned().collect()
                        };
                        for m in dead {
                            info!(member = %m, "front end left the pool: its users' presence is dropped");
                            senders.remove(&m);
                            if in_tx.send(PresenceIn::Forget(m)).await.is_err() {
                                return;
                            }
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    drop(stop);
    Ok(PresenceFeed {
        out: out_tx,
        incoming: in_rx,
        tasks,
    })
}
