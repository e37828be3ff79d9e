//! The tokio side of the chat service: its own SIP listener (UDP and TCP, through
//! `confab-transport`), one task owning the [`ChatCore`], a store worker that saves
//! posts in order, a poller that reloads the directory when an administrator changes
//! something (within ~200 ms), and the full-text indexer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_frontend::Metrics;
use confab_store::Store;
use confab_transport::{Connections, Event, TransportLimits, Transports};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::compliance::ComplianceEvent;
use crate::core::{ChatCore, CoreConfig, StoreRequest};
use confab_store::NewComplianceRecord;

/// Settings of a running chat service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// SIP domain.
    pub domain: String,
    /// Where to listen (UDP and TCP); port 0 picks one.
    pub bind: SocketAddr,
    /// Chat-server URI (`sip:chatsrv@DOMAIN`).
    pub server_uri: Option<String>,
    /// Lookup URI (`sip:ocschat@DOMAIN`; another chat pool of the topology has its own).
    pub lookup_uri: Option<String>,
    /// Only the rooms of this pool (several chat pools on one store).
    pub pool_scope: Option<crate::PoolScope>,
    /// Session-Expires of our 200s.
    pub session_expires: u32,
    /// How often the store is polled for administrative changes.
    pub poll_interval: Duration,
    /// Record joins, leaves and history reads in the compliance outbox (posts and
    /// administrative changes are recorded by the store while its compliance flag is on).
    pub compliance: bool,
    /// Where the chat gauges and counters go (`confab_chat_*` in `/metrics`).
    pub metrics: Option<Arc<Metrics>>,
    /// This server in a chat pool (heartbeats; with PostgreSQL, posts, joins and
    /// leaves shared with the pool's other active servers): see [`crate::pool`].
    pub pool: Option<crate::pool::Membership>,
}

impl ServiceConfig {
    pub fn new(domain: &str, bind: SocketAddr) -> ServiceConfig {
        ServiceConfig {
            domain: domain.to_owned(),
            bind,
            server_uri: None,
            lookup_uri: None,
            pool_scope: None,
            session_expires: 300,
            poll_interval: Duration::from_millis(200),
            compliance: false,
            metrics: None,
            pool: None,
        }
    }
}

/// A started chat service.
pub struct Running {
    /// The address the service listens on (UDP and TCP).
    pub addr: SocketAddr,
    /// The lookup and chat-server URIs it answers.
    pub lookup_uri: String,
    pub server_uri: String,
    pub task: tokio::task::JoinHandle<()>,
    /// Hands the service posts stored elsewhere (file posts) to deliver.
    pub posts: PostSender,
}

/// Delivers posts stored outside the chat service (already in the store) to the
/// room's participants: the narrow way into a running [`ChatCore`].
#[derive(Clone, Debug)]
pub struct PostSender(mpsc::Sender<confab_store::ChatPost>);

impl PostSender {
    /// Queues `post` for delivery; false when the service is gone or overloaded
    /// (the post stays in the store and reaches users through backfill).
    pub fn deliver(&self, post: confab_store::ChatPost) -> bool {
        self.0.try_send(post).is_ok()
    }
}

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("chat store: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("chat SIP listener: {0}")]
    Transport(#[from] confab_transport::TransportError),
    #[error("chat pool: {0}")]
    Pool(#[from] crate::pool::PoolError),
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Starts the chat service on `store`; it stops when `stop` turns true.
pub async fn start(
    cfg: ServiceConfig,
    store: Store,
    mut stop: watch::Receiver<bool>,
) -> Result<Running, ServiceError> {
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(65_536);
    let conns = Connections::new(TransportLimits::default(), ev_tx);
    let transports = Transports::start(cfg.bind, None, conns).await?;
    let addr = transports.tcp_addr();
    let host_port = match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let mut core_cfg = CoreConfig::new(&cfg.domain, &host_port);
    if let Some(uri) = &cfg.server_uri {
        core_cfg.server_uri = uri.clone();
    }
    if let Some(uri) = &cfg.lookup_uri {
        core_cfg.lookup_uri = uri.clone();
    }
    core_cfg.pool_scope = cfg.pool_scope.clone();
    core_cfg.session_expires = cfg.session_expires.max(30);
    core_cfg.compliance = cfg.compliance;
    core_cfg.pool_server = cfg.pool.as_ref().map(|m| m.server.clone());
    let lookup_uri = core_cfg.lookup_uri.clone();
    let server_uri = core_cfg.server_uri.clone();
    let mut core = ChatCore::new(core_cfg, rand::random());

    let mut rev = store.chat_rev().await?;
    let dir = store.chat_directory().await?;
    let keep = dir.config.default_history.clamp(1, 500);
    let recent = store.recent_chat_posts(keep).await?;
    info!(rooms = dir.rooms.len(), %addr, "persistent chat service ready");
    core.apply_directory(dir, recent);

    // Administrative changes: reload the directory and the backfill cache.
    let (dir_tx, mut dir_rx) = mpsc::channel(4);
    let poll_store = store.clone();
    let mut poll_stop = stop.clone();
    let poll_interval = cfg.poll_interval;
    let poller = tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll_interval);
        let mut index_tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = poll_stop.changed() => return,
                _ = index_tick.tick() => {
                    if let Err(e) = poll_store.chat_index_pending().await {
                        warn!(error = %e, "indexing chat posts failed");
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            let now_rev = match poll_store.chat_rev().await {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "reading the chat revision failed");
                    continue;
                }
            };
            if now_rev == rev {
                continue;
            }
            let loaded = async {
                let dir = poll_store.chat_directory().await?;
                let keep = dir.config.default_history.clamp(1, 500);
                let recent = poll_store.recent_chat_posts(keep).await?;
                Ok::<_, confab_store::StoreError>((dir, recent))
            }
            .await;
            match loaded {
                Ok(v) => {
                    rev = now_rev;
                    if dir_tx.send(v).await.is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "reloading the chat directory failed"),
            }
        }
    });

    let pool = match &cfg.pool {
        Some(m) => Some(crate::pool_link::start(&store, m, addr, stop.clone()).await?),
        None => None,
    };
    let (mut remote_rx, mut dead_rx, pool_tx, load_tx, pool_tasks) = match pool {
        Some(p) => (
            Some(p.remote),
            Some(p.dead),
            Some(p.notify),
            Some(p.load),
            p.tasks,
        ),
        None => (None, None, None, None, Vec::new()),
    };
    let pool_server = cfg.pool.as_ref().map(|m| m.server.clone());

    // Posts are saved one at a time, in order; each result goes back to the core.
    let (save_tx, mut save_rx) = mpsc::unbounded_channel::<StoreRequest>();
    let (saved_tx, mut saved_rx) = mpsc::unbounded_channel::<(u64, Result<i64, String>)>();
    let worker_store = store.clone();
    let worker = tokio::spawn(async move {
        while let Some(req) = save_rx.recv().await {
            match req {
                StoreRequest::SavePost {
                    op,
                    room_id,
                    author,
                    ts_ms,
                    text,
                } => {
                    let r = match &pool_server {
                        // Tells the pool's other servers in the same transaction.
                        Some(server) => {
                            worker_store
                                .insert_chat_post_notify(server, &room_id, &author, ts_ms, &text)
                                .await
                        }
                        None => {
                            worker_store
                                .insert_chat_post(&room_id, &author, ts_ms, &text)
                                .await
                        }
                    }
                    .map_err(|e| e.to_string());
                    if saved_tx.send((op, r)).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let (posts_tx, mut posts_rx) = mpsc::channel::<confab_store::ChatPost>(1024);
    // The task keeps a sender, so the channel never closes under it.
    let posts_keep = posts_tx.clone();
    let task = tokio::spawn(async move {
        let _posts_keep = posts_keep;
        let mut out = Vec::with_capacity(256);
        let mut reqs = Vec::new();
        let mut records = Vec::new();
        let mut pool_events = Vec::new();
        let metrics = cfg.metrics.clone();
        let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let deadline = core
                .next_deadline()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                _ = stop.changed() => break,
                ev = ev_rx.recv() => {
                    let Some(ev) = ev else { break };
                    let now = Instant::now();
                    let wall = wall_ms();
                    handle(&mut core, ev, now, wall);
                    for _ in 0..512 {
                        match ev_rx.try_recv() {
                            Ok(ev) => handle(&mut core, ev, now, wall),
                            Err(_) => break,
                        }
                    }
                }
                post = posts_rx.recv() => {
                    if let Some(p) = post {
                        core.deliver_stored_post(p);
                    }
                }
                saved = saved_rx.recv() => {
                    if let Some((op, r)) = saved {
                        core.on_post_saved(op, r);
                    }
                }
                loaded = dir_rx.recv() => {
                    if let Some((dir, recent)) = loaded {
                        info!("applied chat directory changes from the store");
                        core.apply_directory(dir, recent);
                    }
                }
                _ = sleep => core.on_tick(Instant::now()),
                _ = metrics_tick.tick() => {
                    if let Some(m) = &metrics {
                        publish_metrics(&core, m);
                    }
                    if let Some(tx) = &load_tx {
                        let _ = tx.send(crate::pool_link::load_of(&core));
                    }
                }
                remote = recv_opt(&mut remote_rx) => match remote {
                    Some(r) => crate::pool_link::apply(&mut core, r),
                    None => remote_rx = None,
                },
                dead = recv_opt(&mut dead_rx) => match dead {
                    Some(dead) => {
                        for server in dead {
                            if core.remote_servers().contains(&server) {
                                info!(%server, "a chat server of the pool is gone: its users leave their rooms");
                                core.on_server_gone(&server);
                            }
                        }
                    }
                    None => dead_rx = None,
                },
            }
            if let Some(tx) = &pool_tx {
                core.drain_pool_events(&mut pool_events);
                if !pool_events.is_empty() {
                    let _ = tx.send(std::mem::take(&mut pool_events));
                }
            }
            core.drain_store_requests(&mut reqs);
            for r in reqs.drain(..) {
                let _ = save_tx.send(r);
            }
            core.drain_compliance(&mut records);
            if !records.is_empty() {
                // Recorded before the replies produced with them are sent.
                record_compliance(&store, &mut records).await;
            }
            core.drain_output(&mut out);
            transports.deliver_all(&mut out);
        }
        drop(save_tx);
        let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
        let _ = poller.await;
        drop(pool_tx);
        for t in pool_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        info!("persistent chat service stopped");
    });
    Ok(Running {
        addr,
        lookup_uri,
        server_uri,
        task,
        posts: PostSender(posts_tx),
    })
}

/// Receives from an optional channel (pending forever without one).
async fn recv_opt<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn publish_metrics(core: &ChatCore, m: &Metrics) {
    Metrics::set(&m.chat_rooms, core.directory().data.rooms.len());
    Metrics::set(&m.chat_joined_users, core.memberships());
    Metrics::set(&m.chat_posts_total, core.stats.posts as usize);
    Metrics::set(&m.chat_deliveries_total, core.stats.deliveries as usize);
    Metrics::set(&m.chat_remote_posts_total, core.stats.remote_posts as usize);
    Metrics::set(&m.chat_remote_joined_users, core.remote_memberships());
}

/// Writes compliance events to the outbox (three tries; a failure is logged as an
/// error: the events are then lost, which the log says).
async fn record_compliance(store: &Store, records: &mut Vec<ComplianceEvent>) {
    let ts_ms = wall_ms();
    let recs: Vec<NewComplianceRecord> = records
        .drain(..)
        .map(|e| NewComplianceRecord {
            kind: e.kind.as_str().to_owned(),
            room_id: e.room_id,
            user: e.user,
            ts_ms,
            content: e.content,
        })
        .collect();
    for attempt in 1..=3 {
        match store.record_chat_compliance(&recs).await {
            Ok(_) => return,
            Err(e) if attempt < 3 => {
                warn!(error = %e, attempt, "recording compliance events failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, events = recs.len(), "compliance events could not be recorded")
            }
        }
    }
}

fn handle(core: &mut ChatCore, ev: Event, now: Instant, wall: i64) {
    match ev {
        Event::Message(m, src) => core.on_message(m, src, now, wall),
        Event::Malformed(e, src) => core.on_parse_error(&e, src),
        Event::Closed(_) | Event::Unreachable { .. } => {}
    }
}
