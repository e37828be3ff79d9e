//! `confab serve` in a topology of several pools (`confab-director`): every
//! pool's front end routes another pool's users to that pool, and a Director
//! (`[director] enabled`, or the topology's `director` role) sends every user
//! to theirs.

use std::sync::Arc;

use anyhow::Context as _;
use confab_director::router::Role;
use confab_director::{PoolsHandle, PoolsRouter, SignInPolicy};
use confab_frontend::SharedHomeRouter;
use confab_store::{KIND_DIRECTOR, KIND_FRONT_END, Store};
use tokio::sync::watch;
use tracing::info;

use crate::config::ServeConfig;

/// Records this server's pool and its kind, follows the topology's pools, and
/// returns the router the core uses. `pool`: this server's pool membership
/// (`crate::pool_serve::join`); `None` (no pool): nothing to do.
pub async fn start(
    cfg: &ServeConfig,
    store: &Store,
    url: &str,
    pool: Option<SharedHomeRouter>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<(PoolsHandle, Arc<PoolsRouter>)>> {
    let Some(inner) = pool else {
        return Ok(None);
    };
    let name = cfg.pool.name.clone().unwrap_or_else(|| cfg.domain.clone());
    let kind = if cfg.director.enabled {
        KIND_DIRECTOR
    } else {
        KIND_FRONT_END
    };
    store
        .set_pool_kind(&name, kind)
        .await
        .context("recording the pool's kind")?;
    let handle = confab_director::start(store.clone(), url, cfg.pool.lease_ms, stop)
        .await
        .context("following the topology's pools")?;
    let role = if cfg.director.enabled {
        info!(pool = %name, "running as a Director: sign-ins are sent to the users' home pools");
        Role::Director {
            policy: SignInPolicy::new(cfg.director.redirect_agents.iter().map(String::as_str)),
        }
    } else {
        Role::FrontEnd { pool: name, inner }
    };
    let router = Arc::new(PoolsRouter::new(handle.map(), role, handle.claim_sender()));
    Ok(Some((handle, router)))
}
