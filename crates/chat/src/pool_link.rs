//! The chat service's link to its pool (see [`crate::pool`]): its heartbeat, its
//! joins and leaves sent to the pool, and the other servers' posts, joins and
//! leaves heard by LISTEN/NOTIFY and handed to the core in the order they came.
//!
//! A post notification names the post (id and room); it is read from the store
//! once, here, then delivered to every user joined through this server from
//! memory. When the feed's connection was lost the directory and backfill cache
//! are reloaded from the store (notifications sent meanwhile are lost, the posts
//! are not).

use std::net::SocketAddr;
use std::sync::Arc;

use confab_store::{ChatDirectory, ChatPoolEvent, ChatPost, ChatServerState, PostState, Store};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::core::ChatCore;
use crate::pool::{Load, Membership, PoolError, PoolView, heartbeat, now_ms, watch_pool};

/// What the pool's other servers did, for the core.
#[derive(Debug)]
pub(crate) enum Remote {
    Post(ChatPost),
    Member {
        server: String,
        room_id: String,
        user: String,
        joined: bool,
    },
    /// A server restarted: the users joined through it before are gone.
    Restarted(String),
    /// The change feed reconnected: what the store holds now.
    Reload(ChatDirectory, Vec<ChatPost>),
}

/// The running link.
pub(crate) struct Link {
    pub remote: mpsc::UnboundedReceiver<Remote>,
    /// Servers whose lease ended (checked after every heartbeat).
    pub dead: mpsc::UnboundedReceiver<Vec<String>>,
    /// This server's joins and leaves, for the pool.
    pub notify: mpsc::UnboundedSender<Vec<ChatPoolEvent>>,
    pub load: watch::Sender<Load>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// The load reported in heartbeats.
pub(crate) fn load_of(core: &ChatCore) -> Load {
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    Load {
        joined: n(core.memberships()),
        rooms: n(core.directory().data.rooms.len()),
        posts: i64::try_from(core.stats.posts).unwrap_or(i64::MAX),
        deliveries: i64::try_from(core.stats.deliveries).unwrap_or(i64::MAX),
    }
}

/// Feeds one event to the core.
pub(crate) fn apply(core: &mut ChatCore, r: Remote) {
    match r {
        Remote::Post(p) => core.on_remote_post(p),
        Remote::Member {
            server,
            room_id,
            user,
            joined,
        } => core.on_remote_member(&server, &room_id, &user, joined),
        Remote::Restarted(server) => core.on_server_gone(&server),
        Remote::Reload(dir, recent) => core.apply_directory(dir, recent),
    }
}

pub(crate) async fn start(
    store: &Store,
    m: &Membership,
    sip: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<Link, PoolError> {
    let mut tasks = Vec::new();
    let (remote_tx, remote) = mpsc::unbounded_channel();
    let (dead_tx, dead) = mpsc::unbounded_channel();
    let (notify, mut notify_rx) = mpsc::unbounded_channel::<Vec<ChatPoolEvent>>();
    let (load, load_rx) = watch::channel(Load::default());
    let (tick_tx, mut tick_rx) = mpsc::unbounded_channel();
    let view = Arc::new(Mutex::new(PoolView::new(m.lease)));

    // The other servers' events (PostgreSQL only).
    if let Some(url) = &m.listen_url {
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        tasks.push(watch_pool(store.clone(), url, view.clone(), Some(ev_tx), stop.clone()).await?);
        let (store, me) = (store.clone(), m.server.clone());
        tasks.push(tokio::spawn(async move {
            let mut started: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
            while let Some(ev) = ev_rx.recv().await {
                let r = match ev {
                    Some(ChatPoolEvent::Server(s)) if s.server != me => {
                        match started.insert(s.server.clone(), s.started_ms) {
                            Some(before) if before != s.started_ms => Remote::Restarted(s.server),
                            _ => continue,
                        }
                    }
                    Some(ChatPoolEvent::Post { server, id, .. }) if server != me => {
                        match read_post(&store, id).await {
                            Some(p) if p.state == PostState::Active => Remote::Post(p),
                            _ => continue,
                        }
                    }
                    Some(ChatPoolEvent::Member {
                        server,
                        room_id,
                        user,
                        joined,
                    }) if server != me => Remote::Member {
                        server,
                        room_id,
                        user,
                        joined,
                    },
                    Some(_) => continue,
                    None => match reload(&store).await {
                        Ok((dir, recent)) => Remote::Reload(dir, recent),
                        Err(e) => {
                            warn!(error = %e, "reloading the chat directory after a lost change feed failed");
                            continue;
                        }
                    },
                };
                if remote_tx.send(r).is_err() {
                    return;
                }
            }
        }));
    }
    // This server's joins and leaves, in order.
    {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(evs) = notify_rx.recv().await {
                if let Err(e) = store.notify_chat_pool(&evs).await {
                    warn!(error = %e, events = evs.len(), "telling the chat pool about joins and leaves failed");
                }
            }
        }));
    }
    tasks.push(heartbeat(
        store.clone(),
        m.clone(),
        sip,
        ChatServerState::Active,
        load_rx,
        stop.clone(),
        Some(tick_tx),
    ));
    // After each heartbeat: the servers whose lease ended.
    {
        let me = m.server.clone();
        let mut stop = stop;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    t = tick_rx.recv() => if t.is_none() { return },
                    _ = stop.changed() => return,
                }
                let dead = view.lock().dead_others(&me, now_ms());
                if !dead.is_empty() && dead_tx.send(dead).is_err() {
                    return;
                }
            }
        }));
    }
    Ok(Link {
        remote,
        dead,
        notify,
        load,
        tasks,
    })
}

/// Reads a post another server stored (a few tries: the store may be busy).
async fn read_post(store: &Store, id: i64) -> Option<ChatPost> {
    for attempt in 1..=3 {
        match store.chat_post(id).await {
            Ok(p) => return p,
            Err(e) => {
                warn!(error = %e, id, attempt, "reading a post of another chat server failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    None
}

async fn reload(store: &Store) -> Result<(ChatDirectory, Vec<ChatPost>), confab_store::StoreError> {
    let dir = store.chat_directory().await?;
    let keep = dir.config.default_history.clamp(1, 500);
    let recent = store.recent_chat_posts(keep).await?;
    Ok((dir, recent))
}
