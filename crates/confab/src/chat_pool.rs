//! Persistent Chat pools in `confab serve` and `confab chat status|pool`: a chat
//! machine's membership in its pool (from the topology), a passive server's
//! standby, the front end's routing over the pool's live active servers, and the
//! administrator's view and activation. The mechanics are in `confab_chat::pool`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use confab_chat::pool::{ChatRouter, Membership, PoolView, now_ms, watch_pool};
use confab_store::{Backend, ChatServerState, Store};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::ServeConfig;

/// `confab chat pool ...`
#[derive(Subcommand)]
pub enum PoolCommand {
    /// Make a (passive) chat server active: it starts serving within a second
    /// (LISTEN/NOTIFY) and front ends send users to it (the analog of moving a
    /// server to the active list with Set-CsPersistentChatActiveServer)
    Activate {
        /// The server's FQDN (its machine in the topology)
        fqdn: String,
    },
    /// Make a chat server passive: takes effect when it next starts (stop it to
    /// move its users to the other active servers at once)
    Deactivate { fqdn: String },
}

fn is_postgres(url: &str) -> bool {
    Backend::from_url(url).ok() == Some(Backend::Postgres)
}

/// A chat machine's place in its pool (`None` when the topology does not name it).
pub fn membership(cfg: &ServeConfig, store_url: &str) -> Option<Membership> {
    let server = cfg.chat.server_name.as_ref()?;
    let pool = cfg.chat.pool.clone().unwrap_or_else(|| server.clone());
    let mut m = Membership::new(&pool, server);
    m.listen_url = is_postgres(store_url).then(|| store_url.to_owned());
    m.heartbeat = Duration::from_millis(cfg.chat.heartbeat_ms.clamp(100, 60_000));
    m.lease = Duration::from_millis(cfg.chat.lease_ms).max(m.heartbeat * 2);
    Some(m)
}

/// Whether this server starts passive: an administrator's `confab chat pool
/// activate|deactivate` wins over the topology's `persistent_chat`.
pub async fn starts_passive(
    cfg: &ServeConfig,
    store: &Store,
    m: &Membership,
) -> anyhow::Result<bool> {
    let set = store
        .chat_server_state(&m.server)
        .await
        .context("reading this chat server's state")?;
    Ok(match set {
        Some(s) => s == ChatServerState::Passive,
        None => cfg.chat.passive,
    })
}

/// The lookup and chat-server URIs of a Persistent Chat pool: the topology's
/// default chat pool keeps `sip:ocschat@DOMAIN` and `sip:chatsrv@DOMAIN` (what
/// provisioning gives users and SIPE INVITEs); another pool `pool` gets
/// `sip:ocschat.POOL@DOMAIN` and `sip:chatsrv.POOL@DOMAIN` (like Lync's
/// `New-CsPersistentChatEndpoint`, a SIP URI of its own for the pool).
pub fn pool_uris(domain: &str, pool: &str, default: bool) -> (String, String) {
    let domain = domain.to_ascii_lowercase();
    if default {
        (
            format!("sip:ocschat@{domain}"),
            format!("sip:chatsrv@{domain}"),
        )
    } else {
        let pool = pool.to_ascii_lowercase();
        (
            format!("sip:ocschat.{pool}@{domain}"),
            format!("sip:chatsrv.{pool}@{domain}"),
        )
    }
}

/// On a front end: routing of the chat URIs over the live active servers of the
/// chat pool, kept current by LISTEN/NOTIFY on its PostgreSQL store. `None`
/// (the topology's first active server gets every user) without a PostgreSQL
/// chat store or when the feed cannot start.
pub async fn router(
    cfg: &ServeConfig,
    chat_store: &Store,
    uris: &[String],
    stop: watch::Receiver<bool>,
) -> Option<Arc<dyn confab_frontend::AppRouter>> {
    let url = cfg.chat.database.as_deref()?;
    if !is_postgres(url) || cfg.chat.pool_servers.is_empty() {
        return None;
    }
    let lease = Duration::from_millis(cfg.chat.lease_ms.max(200));
    let view = Arc::new(Mutex::new(PoolView::new(lease)));
    match watch_pool(chat_store.clone(), url, view.clone(), None, stop).await {
        Ok(_task) => {
            info!(pool = ?cfg.chat.pool, "chat URIs go to the live active servers of the chat pool");
            let mut router = ChatRouter::new(view, uris, cfg.chat.pool.clone());
            for other in &cfg.chat.other_pools {
                let (lookup, server) = pool_uris(&cfg.domain, &other.pool, false);
                router = router.with_pool(&[lookup, server], Some(other.pool.clone()));
            }
            Some(Arc::new(router))
        }
        Err(e) => {
            warn!(error = %e, "cannot follow the chat pool; every chat user goes to the topology's first active chat server");
            None
        }
    }
}

/// `confab chat status`: every chat server of the store.
pub async fn status(cfg: &ServeConfig, store: &Store, json_out: bool) -> anyhow::Result<()> {
    let servers = store.chat_servers().await?;
    let lease = i64::try_from(cfg.chat.lease_ms).unwrap_or(i64::MAX);
    let now = now_ms();
    let rate = |m: i64| format!("{}.{:02}", m / 1000, (m % 1000) / 10);
    if json_out {
        let v: Vec<serde_json::Value> = servers
            .iter()
            .map(|s| {
                let age = now.saturating_sub(s.heartbeat_ms);
                json!({
                    "server": s.server,
                    "pool": s.pool,
                    "sip": s.sip_addr,
                    "state": s.state.as_str(),
                    "live": age <= lease,
                    "heartbeat_age_ms": age,
                    "joined": s.joined,
                    "rooms": s.rooms,
                    "posts": s.posts,
                    "deliveries": s.deliveries,
                    "posts_per_s": s.post_rate_milli as f64 / 1000.0,
                    "deliveries_per_s": s.delivery_rate_milli as f64 / 1000.0,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    if servers.is_empty() {
        println!("no chat server has run on this store");
        return Ok(());
    }
    println!(
        "{:<28} {:<24} {:<8} {:<6} {:>9} {:>7} {:>6} {:>8} {:>13}",
        "SERVER",
        "POOL",
        "STATE",
        "LIVE",
        "HEARTBEAT",
        "JOINED",
        "ROOMS",
        "POSTS/S",
        "DELIVERIES/S"
    );
    for s in &servers {
        let age = now.saturating_sub(s.heartbeat_ms);
        println!(
            "{:<28} {:<24} {:<8} {:<6} {:>8}s {:>7} {:>6} {:>8} {:>13}",
            s.server,
            s.pool,
            s.state.as_str(),
            if age <= lease { "yes" } else { "DEAD" },
            age / 1000,
            s.joined,
            s.rooms,
            rate(s.post_rate_milli),
            rate(s.delivery_rate_milli),
        );
    }
    Ok(())
}

/// `confab chat pool activate|deactivate FQDN`.
pub async fn run(store: &Store, command: PoolCommand) -> anyhow::Result<()> {
    let (fqdn, state) = match command {
        PoolCommand::Activate { fqdn } => (fqdn, ChatServerState::Active),
        PoolCommand::Deactivate { fqdn } => (fqdn, ChatServerState::Passive),
    };
    let fqdn = fqdn.trim().to_ascii_lowercase();
    if !confab_store::is_valid_host_name(&fqdn) {
        anyhow::bail!("{fqdn:?} is not a host name");
    }
    store.set_chat_server_state(&fqdn, state, now_ms()).await?;
    let known = store.chat_servers().await?.iter().any(|s| s.server == fqdn);
    match (state, known) {
        (ChatServerState::Active, true) => println!("{fqdn} is active: it serves within a second"),
        (ChatServerState::Active, false) => {
            println!(
                "{fqdn} will be active when it starts (no chat server of that name has run on this store yet)"
            )
        }
        (ChatServerState::Passive, _) => {
            println!(
                "{fqdn} is passive from its next start; restart it (or stop it) to move its users"
            )
        }
    }
    Ok(())
}
