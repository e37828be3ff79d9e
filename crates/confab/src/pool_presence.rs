//! `confab serve` in a pool: the presence of the users this front end serves is
//! shared with the pool's other front ends and theirs is applied to the core
//! (`confab_pool::presence`, `confab_frontend::SharedPresence`; docs/decisions.md,
//! "One pool: presence across front ends").

use std::time::{Duration, Instant};

use confab_frontend::{Core, SharedPresence};
use confab_pool::PoolHandle;
use confab_pool::presence::{PresenceFeed, PresenceIn};
use confab_store::{SharedState, Store};
use tokio::sync::watch;

/// The running feed with the names the states are shared under.
pub struct Sharing {
    feed: PresenceFeed,
    pool: String,
    member: String,
}

/// Starts sharing when this front end is in a pool (`None` otherwise).
pub async fn start(
    core: &mut Core,
    pool: Option<&PoolHandle>,
    store: &Store,
    url: &str,
    lease: Duration,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Sharing>> {
    let Some(handle) = pool else {
        return Ok(None);
    };
    let view = handle.view();
    let (pool, member) = {
        let v = view.lock();
        (v.pool().to_owned(), v.me().to_owned())
    };
    let feed = confab_pool::presence::start(store.clone(), url, view, lease, stop).await?;
    core.share_presence();
    Ok(Some(Sharing { feed, pool, member }))
}

/// The next state from the pool (never, when not in a pool or once its feed
/// ended at shutdown).
pub async fn next(sharing: Option<&mut Sharing>) -> PresenceIn {
    if let Some(s) = sharing
        && let Some(incoming) = s.feed.incoming.recv().await
    {
        return incoming;
    }
    std::future::pending().await
}

/// Applies what another front end shared.
pub fn apply(core: &mut Core, incoming: PresenceIn, now: Instant) {
    match incoming {
        PresenceIn::State(s) => {
            let shared = SharedPresence::from_lync(&s.address, s.availability, s.activity, s.note);
            core.apply_pool_presence(&s.member, shared, now);
        }
        PresenceIn::Forget(member) => core.forget_pool_member(&member, now),
    }
}

/// Hands the core's presence changes to the writer.
pub fn share(core: &mut Core, sharing: Option<&Sharing>) {
    let Some(s) = sharing else { return };
    let mut changes = Vec::new();
    core.drain_presence_changes(&mut changes);
    if changes.is_empty() {
        return;
    }
    let batch: Vec<SharedState> = changes
        .into_iter()
        .map(|c| SharedState {
            pool: s.pool.clone(),
            member: s.member.clone(),
            availability: c.lync_availability(),
            address: c.user,
            activity: c.state.activity,
            note: c.state.note,
        })
        .collect();
    let _ = s.feed.out.send(batch);
}

/// Waits for the feed's tasks after the stop signal.
pub async fn join(sharing: Option<Sharing>) {
    if let Some(s) = sharing {
        drop(s.feed.out);
        for t in s.feed.tasks {
            let _ = t.await;
        }
    }
}
