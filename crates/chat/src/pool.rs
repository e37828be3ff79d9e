//! Persistent Chat pools (issue 11): up to four active chat servers on one
//! persistent-chat store serve every room together, passive ones stand by.
//!
//! - [`PoolView`] (sans-IO, fed the servers' heartbeats and the wall clock in epoch
//!   milliseconds): which servers of the pool are live and active, and which of
//!   them a user's requests go to ([`PoolView::targets_for`], a stable spread by
//!   user with the other live servers as fall-backs).
//! - [`ChatRouter`]: the front end's [`AppRouter`] over a shared view: the chat
//!   URIs of a user go to a live active server of the pool.
//! - [`watch_pool`]: keeps a view current from the store's LISTEN/NOTIFY feed
//!   (front ends and chat servers).
//! - [`heartbeat`]: a server's row in `chat_servers`, with its load.
//! - [`standby`]: a passive server waits until an administrator activates it
//!   (`confab chat pool activate FQDN`).
//!
//! The chat service itself ([`crate::service`]) carries posts, joins and leaves
//! between the active servers: see `docs/persistent-chat.md` (Pools).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use confab_frontend::{AppRouter, Dest, Transport};
use confab_store::{CHAT_CHANNEL, ChatPoolEvent, ChatServer, ChatServerState, Store};
use parking_lot::Mutex;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Wall clock, epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The chat servers of the store as one process sees them.
#[derive(Debug, Clone, Default)]
pub struct PoolView {
    servers: BTreeMap<String, ChatServer>,
    lease_ms: i64,
}

/// FNV-1a: stable across processes, so every front end sends a user to the same server.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PoolView {
    /// An empty view; a server whose heartbeat is older than `lease` is dead.
    pub fn new(lease: Duration) -> PoolView {
        PoolView {
            servers: BTreeMap::new(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Replaces the view with the stored rows.
    pub fn load(&mut self, servers: Vec<ChatServer>) {
        self.servers = servers.into_iter().map(|s| (s.server.clone(), s)).collect();
    }

    /// Applies a notification (only heartbeats change the view).
    pub fn apply(&mut self, ev: &ChatPoolEvent) {
        if let ChatPoolEvent::Server(s) = ev {
            let newer = self
                .servers
                .get(&s.server)
                .is_none_or(|old| old.heartbeat_ms <= s.heartbeat_ms);
            if newer {
                self.servers.insert(s.server.clone(), s.clone());
            }
        }
    }

    /// Every server known, by name.
    pub fn servers(&self) -> impl Iterator<Item = &ChatServer> {
        self.servers.values()
    }

    /// Whether `s`'s lease holds at `now_ms`.
    pub fn is_live(&self, s: &ChatServer, now_ms: i64) -> bool {
        now_ms.saturating_sub(s.heartbeat_ms) <= self.lease_ms
    }

    /// The live active servers of `pool` (every pool when `None`), by name.
    pub fn live_active(&self, pool: Option<&str>, now_ms: i64) -> Vec<&ChatServer> {
        self.servers
            .values()
            .filter(|s| pool.is_none_or(|p| s.pool.eq_ignore_ascii_case(p)))
            .filter(|s| s.state == ChatServerState::Active && self.is_live(s, now_ms))
            .collect()
    }

    /// Where `user`'s chat requests go, most preferred first: the live active
    /// servers of `pool`, starting at one picked by a stable hash of the user (the
    /// same on every front end while the set of servers stays), then the others.
    pub fn targets_for(&self, pool: Option<&str>, user: &str, now_ms: i64) -> Vec<SocketAddr> {
        let live: Vec<SocketAddr> = self
            .live_active(pool, now_ms)
            .into_iter()
            .filter_map(|s| s.sip_addr.parse().ok())
            .collect();
        if live.is_empty() {
            return live;
        }
        let n = live.len();
        let first =
            usize::try_from(stable_hash(&user.to_ascii_lowercase()) % n as u64).unwrap_or(0);
        (0..n).map(|i| live[(first + i) % n]).collect()
    }

    /// Servers other than `me` whose lease ended at `now_ms`.
    pub fn dead_others(&self, me: &str, now_ms: i64) -> Vec<String> {
        self.servers
            .values()
            .filter(|s| s.server != me && !self.is_live(s, now_ms))
            .map(|s| s.server.clone())
            .collect()
    }
}

/// The front end's chat routing: the chat URIs (`sip:ocschat@`, the chat-server
/// URI) of a user go to the live active servers of their pool
/// ([`PoolView::targets_for`]). Several chat pools on one store: each pool's URIs
/// go to that pool's servers ([`ChatRouter::with_pool`]).
#[derive(Debug)]
pub struct ChatRouter {
    view: Arc<Mutex<PoolView>>,
    /// The chat URIs routed (`user@domain`, lower case) and the pool of each.
    routes: Vec<(String, Option<String>)>,
}

fn aor_of(u: &str) -> String {
    u.trim()
        .strip_prefix("sip:")
        .unwrap_or(u.trim())
        .to_ascii_lowercase()
}

impl ChatRouter {
    /// `uris`: the lookup and chat-server URIs (`sip:` prefix accepted) of `pool`.
    pub fn new(view: Arc<Mutex<PoolView>>, uris: &[String], pool: Option<String>) -> ChatRouter {
        ChatRouter {
            view,
            routes: Vec::new(),
        }
        .with_pool(uris, pool)
    }

    /// Also routes `uris` to the live active servers of `pool`.
    pub fn with_pool(mut self, uris: &[String], pool: Option<String>) -> ChatRouter {
        for u in uris {
            self.routes.push((aor_of(u), pool.clone()));
        }
        self
    }
}

impl AppRouter for ChatRouter {
    fn targets(&self, aor: &str, user: Option<&str>) -> Option<Vec<Dest>> {
        let (_, pool) = self.routes.iter().find(|(u, _)| u == aor)?;
        let view = self.view.lock();
        // A pool whose servers write no heartbeat here (another store): the
        // route's own destination.
        if let Some(p) = pool
            && !view.servers().any(|s| s.pool.eq_ignore_ascii_case(p))
        {
            return None;
        }
        let addrs = view.targets_for(pool.as_deref(), user.unwrap_or(""), now_ms());
        Some(
            addrs
                .into_iter()
                .map(|addr| Dest {
                    transport: Transport::Tcp,
                    addr,
                    conn: None,
                })
                .collect(),
        )
    }
}

/// Errors of the pool's tasks.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the chat store: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("listening for chat pool changes: {0}")]
    Listen(#[from] sqlx::Error),
}

/// Keeps `view` current: a snapshot, then every notification on the chat channel
/// (heartbeats update the view; every event also goes to `events` when given).
/// After a lost connection the view is reloaded and `events` gets `None` (events
/// may have been missed meanwhile). Needs PostgreSQL (`url`).
pub async fn watch_pool(
    store: Store,
    url: &str,
    view: Arc<Mutex<PoolView>>,
    events: Option<mpsc::UnboundedSender<Option<ChatPoolEvent>>>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, PoolError> {
    // Listen before reading the snapshot, so that no change falls in between.
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHAT_CHANNEL).await?;
    let servers = store.chat_servers().await?;
    view.lock().load(servers);
    Ok(tokio::spawn(async move {
        let mut reload = false;
        loop {
            if reload {
                match store.chat_servers().await {
                    Ok(servers) => {
                        view.lock().load(servers);
                        info!("chat pool change feed reconnected; view reloaded");
                        if let Some(tx) = &events
                            && tx.send(None).is_err()
                        {
                            return;
                        }
                        reload = false;
                    }
                    Err(e) => {
                        debug!(error = %e, "reloading the chat pool view failed; retrying");
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
                Ok(Some(n)) => match ChatPoolEvent::decode(n.payload()) {
                    Some(ev) => {
                        view.lock().apply(&ev);
                        if let Some(tx) = &events
                            && tx.send(Some(ev)).is_err()
                        {
                            return;
                        }
                    }
                    None => debug!(
                        payload = n.payload(),
                        "unknown chat pool notification ignored"
                    ),
                },
                Ok(None) => {
                    warn!("chat pool change feed lost its connection; reconnecting");
                    reload = true;
                }
                Err(e) => {
                    debug!(error = %e, "chat pool change feed: reconnecting");
                    reload = true;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }))
}

/// This server in its pool.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The pool's name (its FQDN).
    pub pool: String,
    /// This server's name (its FQDN).
    pub server: String,
    /// The PostgreSQL URL of the pool's store (for LISTEN); `None` on SQLite (a
    /// pool of one: heartbeats only).
    pub listen_url: Option<String>,
    pub heartbeat: Duration,
    /// A server whose heartbeat is older than this is dead.
    pub lease: Duration,
}

impl Membership {
    pub fn new(pool: &str, server: &str) -> Membership {
        Membership {
            pool: pool.to_owned(),
            server: server.to_owned(),
            listen_url: None,
            heartbeat: Duration::from_secs(1),
            lease: Duration::from_secs(3),
        }
    }
}

/// The load a server reports in its heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub joined: i64,
    pub rooms: i64,
    pub posts: i64,
    pub deliveries: i64,
}

/// One heartbeat row of this server (rates over the last interval: `prev` is the
/// previous load and when it was taken).
pub fn row(
    m: &Membership,
    sip: SocketAddr,
    state: ChatServerState,
    started_ms: i64,
    load: Load,
    prev: Option<(Load, i64)>,
) -> ChatServer {
    let now = now_ms();
    let rate = |now_v: i64, then_v: i64, then_ms: i64| {
        let dt = now.saturating_sub(then_ms).max(1);
        now_v
            .saturating_sub(then_v)
            .max(0)
            .saturating_mul(1_000_000)
            / dt
    };
    let (post_rate_milli, delivery_rate_milli) = prev.map_or((0, 0), |(p, at)| {
        (
            rate(load.posts, p.posts, at),
            rate(load.deliveries, p.deliveries, at),
        )
    });
    ChatServer {
        server: m.server.clone(),
        pool: m.pool.clone(),
        sip_addr: sip.to_string(),
        state,
        heartbeat_ms: now,
        started_ms,
        joined: load.joined,
        rooms: load.rooms,
        posts: load.posts,
        deliveries: load.deliveries,
        post_rate_milli,
        delivery_rate_milli,
    }
}

/// Writes this server's heartbeat every `m.heartbeat` (bounded, so that a hung
/// store does not keep an old lease alive) with the load `load` reports, until
/// `stop`; `tick` is called after each write (the service checks for dead peers).
pub fn heartbeat(
    store: Store,
    m: Membership,
    sip: SocketAddr,
    state: ChatServerState,
    load: watch::Receiver<Load>,
    mut stop: watch::Receiver<bool>,
    tick: Option<mpsc::UnboundedSender<()>>,
) -> tokio::task::JoinHandle<()> {
    let started_ms = now_ms();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(m.heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut prev: Option<(Load, i64)> = None;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            let now_load = *load.borrow();
            let r = row(&m, sip, state, started_ms, now_load, prev);
            prev = Some((now_load, r.heartbeat_ms));
            let w = tokio::time::timeout(
                m.heartbeat.max(Duration::from_secs(1)),
                store.chat_server_heartbeat(&r),
            )
            .await;
            match w {
                Ok(Ok(())) => {
                    if failing {
                        info!("chat pool heartbeat works again");
                        failing = false;
                    }
                }
                Ok(Err(e)) => {
                    if !failing {
                        warn!(error = %e, "chat pool heartbeat failed: front ends stop sending users here once the lease ends");
                        failing = true;
                    }
                }
                Err(_) => {
                    if !failing {
                        warn!(
                            "chat pool heartbeat timed out: front ends stop sending users here once the lease ends"
                        );
                        failing = true;
                    }
                }
            }
            if let Some(t) = &tick
                && t.send(()).is_err()
            {
                return;
            }
        }
    })
}

/// A passive server: heartbeats as passive (so `confab chat status` lists it)
/// and returns once an administrator made it active (`confab chat pool activate`,
/// heard by LISTEN/NOTIFY), or `false` when `stop` turned first.
pub async fn standby(
    store: Store,
    m: &Membership,
    sip: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<bool, PoolError> {
    if store.chat_server_state(&m.server).await? == Some(ChatServerState::Active) {
        return Ok(true);
    }
    let Some(url) = m.listen_url.clone() else {
        // SQLite: nobody can tell us; stand by until stopped.
        let mut stop = stop;
        let _ = stop.changed().await;
        return Ok(false);
    };
    let mut listener = PgListener::connect(&url).await?;
    listener.listen(CHAT_CHANNEL).await?;
    // Checked again after LISTEN: an activation in between is not missed.
    if store.chat_server_state(&m.server).await? == Some(ChatServerState::Active) {
        return Ok(true);
    }
    let (hb_stop_tx, hb_stop) = watch::channel(false);
    let (_load_tx, load) = watch::channel(Load::default());
    let hb = heartbeat(
        store.clone(),
        m.clone(),
        sip,
        ChatServerState::Passive,
        load,
        hb_stop,
        None,
    );
    info!(server = %m.server, pool = %m.pool, "passive Persistent Chat server standing by (activate it with `confab chat pool activate {}`)", m.server);
    let mut stop = stop;
    let activated = loop {
        let n = tokio::select! {
            n = listener.try_recv() => n,
            _ = stop.changed() => break false,
        };
        match n {
            Ok(Some(n)) => {
                if let Some(ChatPoolEvent::SetState { server, state }) =
                    ChatPoolEvent::decode(n.payload())
                    && server.eq_ignore_ascii_case(&m.server)
                    && state == ChatServerState::Active
                {
                    break true;
                }
            }
            Ok(None) | Err(_) => {
                // Reconnecting: the activation may have been missed.
                tokio::time::sleep(Duration::from_millis(500)).await;
                if matches!(
                    store.chat_server_state(&m.server).await,
                    Ok(Some(ChatServerState::Active))
                ) {
                    break true;
                }
            }
        }
    };
    let _ = hb_stop_tx.send(true);
    let _ = hb.await;
    if activated {
        info!(server = %m.server, "activated by an administrator: serving");
    }
    Ok(activated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, addr: &str, state: ChatServerState, hb: i64) -> ChatServer {
        ChatServer {
            server: name.into(),
            pool: "pchat.example.com".into(),
            sip_addr: addr.into(),
            state,
            heartbeat_ms: hb,
            started_ms: 0,
            joined: 0,
            rooms: 0,
            posts: 0,
            deliveries: 0,
            post_rate_milli: 0,
            delivery_rate_milli: 0,
        }
    }

    #[test]
    fn users_spread_over_live_active_servers_only() {
        let mut v = PoolView::new(Duration::from_secs(3));
        v.load(vec![
            server("a", "127.0.0.2:5041", ChatServerState::Active, 10_000),
            server("b", "127.0.0.3:5041", ChatServerState::Active, 10_000),
            server("c", "127.0.0.4:5041", ChatServerState::Passive, 10_000),
        ]);
        let a: SocketAddr = "127.0.0.2:5041".parse().unwrap();
        let b: SocketAddr = "127.0.0.3:5041".parse().unwrap();
        let mut firsts = std::collections::BTreeSet::new();
        for i in 0..32 {
            let user = format!("user{i}@example.com");
            let t = v.targets_for(None, &user, 11_000);
            assert_eq!(t.len(), 2, "the passive server is never a target");
            assert!(t.contains(&a) && t.contains(&b));
            // Stable: the same user gets the same order.
            assert_eq!(t, v.targets_for(None, &user.to_uppercase(), 11_000));
            firsts.insert(t[0]);
        }
        assert_eq!(firsts.len(), 2, "users are spread over both servers");
        // b's lease ends: everyone goes to a.
        v.apply(&ChatPoolEvent::Server(server(
            "a",
            "127.0.0.2:5041",
            ChatServerState::Active,
            14_000,
        )));
        assert_eq!(v.targets_for(None, "user1@example.com", 14_000), vec![a]);
        assert_eq!(
            v.dead_others("a", 14_000),
            vec!["b".to_owned(), "c".to_owned()]
        );
        // Another pool's servers are not targets.
        assert!(
            v.targets_for(Some("other.example.com"), "u@example.com", 14_000)
                .is_empty()
        );
        // An older heartbeat heard late does not roll the view back.
        v.apply(&ChatPoolEvent::Server(server(
            "a",
            "127.0.0.2:5041",
            ChatServerState::Active,
            1,
        )));
        assert_eq!(v.targets_for(None, "user1@example.com", 14_000), vec![a]);
    }

    #[test]
    fn router_answers_for_its_uris_only() {
        let mut v = PoolView::new(Duration::from_secs(3));
        v.load(vec![server(
            "a",
            "127.0.0.2:5041",
            ChatServerState::Active,
            now_ms(),
        )]);
        let r = ChatRouter::new(
            Arc::new(Mutex::new(v)),
            &[
                "sip:ocschat@example.com".to_owned(),
                "sip:chatsrv@Example.com".to_owned(),
            ],
            None,
        );
        let t = r
            .targets("chatsrv@example.com", Some("bob@example.com"))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].addr, "127.0.0.2:5041".parse::<SocketAddr>().unwrap());
        assert!(
            r.targets("other@example.com", Some("bob@example.com"))
                .is_none()
        );
    }

    #[test]
    fn each_pools_uris_go_to_its_own_servers() {
        let now = now_ms();
        let mut b = server("b", "127.0.0.3:5041", ChatServerState::Active, now);
        b.pool = "pchat2.example.com".into();
        let mut v = PoolView::new(Duration::from_secs(3));
        v.load(vec![
            server("a", "127.0.0.2:5041", ChatServerState::Active, now),
            b,
        ]);
        let r = ChatRouter::new(
            Arc::new(Mutex::new(v)),
            &["sip:ocschat@example.com".to_owned()],
            Some("pchat.example.com".into()),
        )
        .with_pool(
            &["sip:ocschat.pchat2.example.com@example.com".to_owned()],
            Some("pchat2.example.com".into()),
        )
        .with_pool(
            &["sip:ocschat.pchat3.example.com@example.com".to_owned()],
            Some("pchat3.example.com".into()),
        );
        let addrs = |aor: &str| -> Option<Vec<SocketAddr>> {
            r.targets(aor, Some("bob@example.com"))
                .map(|t| t.into_iter().map(|d| d.addr).collect())
        };
        for _ in 0..3 {
            assert_eq!(
                addrs("ocschat@example.com"),
                Some(vec!["127.0.0.2:5041".parse().unwrap()])
            );
            assert_eq!(
                addrs("ocschat.pchat2.example.com@example.com"),
                Some(vec!["127.0.0.3:5041".parse().unwrap()])
            );
        }
        // A pool whose servers heartbeat elsewhere: the route's own destination.
        assert_eq!(addrs("ocschat.pchat3.example.com@example.com"), None);
    }
}
