//! `confab serve`: runs the roles of this machine. With no topology this is a
//! Standard Edition server: every Front End service on one machine, state in the
//! embedded SQLite database of the data directory.
//!
//! This is the thin tokio layer around the sans-IO front end: it owns the sockets
//! (via `confab-transport` and `confab-web`), the timers, the store poller, and
//! one task that feeds the `Core` and delivers what it produces.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use confab_frontend::contacts as fe;
use confab_frontend::{
    Advertise, Core, CoreConfig, DirectoryChange, Metrics, StoreRequest, UserEntry,
};
use confab_store::{Store, User, UserChange};
use confab_transport::{Connections, Event, TransportLimits, Transports};
use rand::Rng as _;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::ServeConfig;
use crate::lazy_lists::{Admit, LazyLists};
use crate::signals::shutdown_signal;

/// mimalloc instead of glibc malloc: the per-message allocations are cheaper, and
/// memory freed after a load burst goes back to the system (glibc kept the peak:
/// 914 MiB PSS after a 20 s MESSAGE burst vs 305 MiB, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NONCE_SECRET_KEY: &str = "digest.nonce_secret";

/// Events handled per turn of the core loop before its output is delivered.
const EVENT_BATCH: usize = 512;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn entry(u: &User) -> UserEntry {
    UserEntry {
        address: u.address.clone(),
        display_name: u.display_name.clone(),
        enabled: u.enabled,
        credentials: u.credentials(),
    }
}

/// A stored contact list as the front end holds it.
fn list_from_store(l: confab_store::ContactList) -> fe::ContactList {
    fe::ContactList {
        owner: l.owner,
        delta_num: l.delta_num,
        groups: l
            .groups
            .into_iter()
            .map(|g| fe::ContactGroup {
                id: g.id,
                name: g.name,
            })
            .collect(),
        contacts: l
            .contacts
            .into_iter()
            .map(|c| fe::Contact {
                uri: c.uri,
                name: c.name,
                groups: c.groups,
                subscribed: c.subscribed,
            })
            .collect(),
    }
}

fn list_to_store(l: fe::ContactList) -> confab_store::ContactList {
    confab_store::ContactList {
        owner: l.owner,
        delta_num: l.delta_num,
        groups: l
            .groups
            .into_iter()
            .map(|g| confab_store::ContactGroup {
                id: g.id,
                name: g.name,
            })
            .collect(),
        contacts: l
            .contacts
            .into_iter()
            .map(|c| confab_store::Contact {
                uri: c.uri,
                name: c.name,
                groups: c.groups,
                subscribed: c.subscribed,
            })
            .collect(),
    }
}

/// What the store worker reports for one save: the operation, its result, and
/// after a refused save the list as stored now (to replace the core's copy).
type Saved = (u64, Result<(), String>, Option<fe::ContactList>);

/// Carries out the core's store requests one at a time, in order, and reports
/// each result back (a client's edit is acknowledged only after this).
///
/// A save is a compare-and-swap on the list's version: the core numbers each
/// edit one above the copy it edited, so the stored list must still be at
/// `delta_num - 1`. When `confab contact` changed the list in between, the edit
/// is refused (the client gets an error, the CLI's change stays) and the
/// stored list is re-versioned above both, so that the core and the clients
/// take it as the newer one.
fn spawn_store_worker(
    store: Store,
    mut requests: mpsc::UnboundedReceiver<StoreRequest>,
    results: mpsc::UnboundedSender<Saved>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            match req {
                StoreRequest::SaveContacts { op, list } => {
                    let based_on = list.delta_num.saturating_sub(1);
                    let edited_delta = list.delta_num;
                    let owner = list.owner.clone();
                    let r = store
                        .save_contact_list_from(&list_to_store(list), based_on)
                        .await;
                    let report = match r {
                        Ok(()) => (op, Ok(()), None),
                        Err(e @ confab_store::StoreError::ContactListChanged { .. }) => {
                            warn!(%owner, error = %e, "contact-list edit refused: the list changed meanwhile");
                            let current = reversion(&store, &owner, edited_delta).await;
                            (op, Err(e.to_string()), current)
                        }
                        Err(e) => (op, Err(e.to_string()), None),
                    };
                    if results.send(report).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Stores `owner`'s current list again with a version above `at_least` (and its
/// own), so that whoever holds an edited copy of that version takes it as newer.
async fn reversion(store: &Store, owner: &str, at_least: u64) -> Option<fe::ContactList> {
    for _ in 0..3 {
        let mut current = store.contact_list(owner).await.ok()?;
        let found = current.delta_num;
        current.delta_num = found.max(at_least) + 1;
        match store.save_contact_list_from(&current, found).await {
            Ok(()) => return Some(list_from_store(current)),
            Err(confab_store::StoreError::ContactListChanged { .. }) => continue,
            Err(e) => {
                warn!(%owner, error = %e, "re-versioning a contact list failed");
                return None;
            }
        }
    }
    None
}

async fn nonce_secret(store: &Store) -> anyhow::Result<[u8; 32]> {
    if let Some(hexed) = store.get_setting(NONCE_SECRET_KEY).await?
        && let Ok(bytes) = hex::decode(hexed.trim())
        && let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(arr);
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    store
        .set_setting(NONCE_SECRET_KEY, &hex::encode(secret))
        .await?;
    Ok(secret)
}

/// A machine with only the persistent-chat role: the chat service alone, on its
/// pool's persistent-chat store, listening on `chat.sip` (the front ends of the
/// next-hop pool route the chat URIs to it).
async fn run_chat_only(cfg: &ServeConfig) -> anyhow::Result<()> {
    let Some(url) = cfg.chat.database.clone() else {
        anyhow::bail!("a persistent-chat machine needs its pool's persistent_chat_store");
    };
    let store = Store::open(&url).await.with_context(|| {
        format!(
            "opening the persistent chat store {}",
            confab_store::redact_url(&url)
        )
    })?;
    let bind = cfg
        .chat
        .sip
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5041)));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let mut chat_cfg = confab_chat::service::ServiceConfig::new(&cfg.domain, bind);
    chat_cfg.server_uri = cfg.chat.server_uri.clone();
    chat_cfg.session_expires = cfg.chat.session_expires;
    chat_cfg.compliance = cfg.chat.compliance;
    // Its chat pool: heartbeats, and with PostgreSQL the pool's other servers.
    chat_cfg.pool = crate::chat_pool::membership(cfg, &url);
    // Several chat pools on one store: only its own pool's rooms, and URIs of its
    // own when it is not the default pool (crate::chat_pool::pool_uris).
    if let Some(pool) = &cfg.chat.pool {
        chat_cfg.pool_scope = Some(confab_chat::PoolScope {
            pool: pool.to_ascii_lowercase(),
            default: cfg.chat.default_pool,
        });
        if !cfg.chat.default_pool {
            let (lookup, server) = crate::chat_pool::pool_uris(&cfg.domain, pool, false);
            chat_cfg.lookup_uri = Some(lookup);
            chat_cfg.server_uri.get_or_insert(server);
        }
    }
    if let Some(m) = &chat_cfg.pool
        && crate::chat_pool::starts_passive(cfg, &store, m).await?
    {
        let activated = confab_chat::pool::standby(store.clone(), m, bind, stop_rx.clone())
            .await
            .context("standing by as a passive Persistent Chat server")?;
        if !activated {
            return Ok(());
        }
    }
    // The compliance service runs beside the chat service that records for it.
    let metrics = Arc::new(Metrics::default());
    chat_cfg.metrics = Some(metrics.clone());
    let compliance = crate::chat_compliance::start(cfg, &store, metrics, stop_rx.clone())
        .await
        .context("starting the compliance service")?;
    let running = confab_chat::service::start(chat_cfg, store, stop_rx.clone())
        .await
        .context("starting the persistent chat service")?;
    info!(sip = %running.addr, lookup = %running.lookup_uri, server = %running.server_uri, "persistent chat server started (persistent-chat role only)");
    while !*stop_rx.borrow_and_update() {
        if stop_rx.changed().await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), running.task).await;
    if let Some(task) = compliance {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(())
}

pub async fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    let cfg = crate::roles::apply_topology(cfg)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    if cfg.chat.only {
        return run_chat_only(&cfg).await;
    }
    if cfg.mediation.only {
        return crate::mediation_serve::run_only(&cfg).await;
    }
    let url = cfg.database_url().map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = Store::open(&url)
        .await
        .with_context(|| format!("opening the database {}", confab_store::redact_url(&url)))?;
    let secret = nonce_secret(&store)
        .await
        .context("loading the digest nonce secret")?;

    // TLS: the configured certificate, or a self-signed one made on first start.
    let tls_material = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => confab_tls::load_pem(c, k)
            .with_context(|| format!("loading TLS certificate {}", c.display()))?,
        (None, None) => {
            let mut names = vec![cfg.domain.clone()];
            if !cfg.sip.ip().is_unspecified() {
                names.push(cfg.sip.ip().to_string());
            }
            let m = confab_tls::load_or_create(&cfg.data_dir, &names)
                .context("creating the self-signed TLS certificate")?;
            if m.created {
                info!(cert = %m.cert_path.display(), "generated a self-signed TLS certificate; set tls_cert/tls_key to use your own");
            }
            m
        }
        _ => anyhow::bail!("tls_cert and tls_key must be given together"),
    };
    let tls_config =
        confab_tls::server_config(&tls_material).context("building the TLS configuration")?;

    let metrics = Arc::new(Metrics::default());
    let (ev_tx, mut ev_rx) = mpsc::channel::<Event>(65_536);
    // One descriptor per connection: keep `reserved_descriptors` out of the
    // connections' reach so that the database, HTTP and the listeners (which must
    // accept a connection to refuse it) keep working at the limit.
    let fd_limit = confab_transport::raise_fd_limit();
    let max_connections = connection_cap(
        cfg.limits.max_connections,
        fd_limit,
        cfg.limits.reserved_descriptors,
    );
    if max_connections < cfg.limits.max_connections {
        warn!(
            configured = cfg.limits.max_connections,
            open_file_limit = fd_limit,
            reserved = cfg.limits.reserved_descriptors,
            max_connections,
            "limits.max_connections lowered to the open-file limit minus limits.reserved_descriptors; raise the limit (LimitNOFILE) for more"
        );
    }
    let limits = TransportLimits {
        sip: confab_sip::Limits {
            max_message_bytes: cfg.limits.max_message_bytes,
            max_headers: cfg.limits.max_headers,
        },
        max_connections,
        max_connections_per_ip: cfg.limits.max_connections_per_ip,
        // A connection can carry a whole trunk's traffic (SIPp, a gateway): a short
        // queue turned a burst into dropped responses and a collapse (70k drops
        // at 20k REGISTER/s over one TCP connection). Memory is only used while
        // messages are actually queued.
        send_queue: 16_384,
        idle_timeout: Duration::from_secs(cfg.limits.idle_timeout_secs),
        header_timeout: Duration::from_secs(cfg.limits.header_timeout_secs),
    };
    let conns = Connections::new(limits, ev_tx.clone());
    let transports = Transports::start(cfg.sip, Some((cfg.tls, tls_config.clone())), conns.clone())
        .await
        .context("starting SIP transports")?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    // Persistent Chat: its own task and SIP listener (loopback by default), on the
    // front end's database or the topology's persistent-chat store.
    let chat_and_store = if cfg.chat.enabled && cfg.chat.remote.is_none() {
        let chat_store = match &cfg.chat.database {
            Some(url) => Store::open(url).await.with_context(|| {
                format!(
                    "opening the persistent chat store {}",
                    confab_store::redact_url(url)
                )
            })?,
            None => store.clone(),
        };
        let bind = cfg
            .chat
            .sip
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut chat_cfg = confab_chat::service::ServiceConfig::new(&cfg.domain, bind);
        chat_cfg.server_uri = cfg.chat.server_uri.clone();
        chat_cfg.session_expires = cfg.chat.session_expires;
        chat_cfg.compliance = cfg.chat.compliance;
        chat_cfg.metrics = Some(metrics.clone());
        let compliance =
            crate::chat_compliance::start(&cfg, &chat_store, metrics.clone(), stop_rx.clone())
                .await
                .context("starting the compliance service")?;
        let running = confab_chat::service::start(chat_cfg, chat_store.clone(), stop_rx.clone())
            .await
            .context("starting the persistent chat service")?;
        info!(sip = %running.addr, lookup = %running.lookup_uri, server = %running.server_uri, "persistent chat service started");
        Some((running, chat_store, compliance))
    } else {
        None
    };

    // A chat service on another machine (topology): its URIs and store.
    let remote_chat = match (cfg.chat.enabled, cfg.chat.remote) {
        (true, Some(addr)) => {
            let chat_store = match &cfg.chat.database {
                Some(url) => Store::open(url).await.with_context(|| {
                    format!(
                        "opening the persistent chat store {}",
                        confab_store::redact_url(url)
                    )
                })?,
                None => store.clone(),
            };
            let lookup = format!("sip:ocschat@{}", cfg.domain.to_ascii_lowercase());
            let server = cfg
                .chat
                .server_uri
                .clone()
                .unwrap_or_else(|| format!("sip:chatsrv@{}", cfg.domain.to_ascii_lowercase()));
            info!(sip = %addr, lookup = %lookup, server = %server, "persistent chat served by another machine");
            Some((addr, lookup, server, chat_store))
        }
        _ => None,
    };
    let search_store = chat_and_store
        .as_ref()
        .map(|(_, s, _)| s)
        .or(remote_chat.as_ref().map(|(_, _, _, s)| s));
    let rooms_store = search_store.cloned();
    let chat_search = search_store.map(|chat_store| {
        Arc::new(crate::chat_http::StoreChatSearch::new(
            store.clone(),
            chat_store.clone(),
        )) as Arc<dyn confab_web::chat_search::ChatSearch>
    });
    // Provisioning tells users whose policy enables Persistent Chat its lookup URI.
    let chat_provisioning = match (&chat_and_store, &remote_chat) {
        (Some((running, chat_store, _)), _) => Some(
            crate::chat_provisioning::watch_policy(
                chat_store.clone(),
                &running.lookup_uri,
                stop_rx.clone(),
            )
            .await
            .context("reading the persistent chat policy")?,
        ),
        (None, Some((_, lookup, _, chat_store))) => Some(
            crate::chat_provisioning::watch_policy(chat_store.clone(), lookup, stop_rx.clone())
                .await
                .context("reading the persistent chat policy")?,
        ),
        _ => None,
    };
    let (chat, compliance) = match chat_and_store {
        Some((running, _, compliance)) => (Some(running), compliance),
        None => (None, None),
    };

    let mut stop_http = stop_rx.clone();
    let metrics_allow = confab_web::access::parse_list(&cfg.web.metrics_allow)
        .map_err(|e| anyhow::anyhow!("[web] metrics_allow: {e}"))?;
    if !cfg.web.tls {
        warn!(
            "[web] tls = false: the web port serves plain HTTP (sign-in passwords and session cookies travel in clear unless a reverse proxy terminates TLS)"
        );
    }
    let control_panel = crate::control_panel::router(
        crate::control_panel::Panel::new(
            store.clone(),
            metrics.clone(),
            conns.clone(),
            cfg.data_dir.clone(),
            &cfg.web,
            &cfg.domain,
            cfg.chat.lease_ms,
        )
        .chat_files(cfg.chat_file_store()),
    );
    // Room management pages, where this machine serves (or reads) a chat store.
    let mut extra = control_panel;
    if let Some(chat_store) = rooms_store {
        let poster = chat
            .as_ref()
            .map(|running| Box::new(running.posts.clone()) as Box<dyn crate::chat_web::RoomPoster>);
        extra = extra.merge(crate::chat_web::router(crate::chat_web::ChatWeb::new(
            store.clone(),
            chat_store,
            &cfg.domain,
            &cfg.web,
            cfg.chat_file_store(),
            poster,
        )));
    }
    let (http_addr, http_task) = confab_web::serve(
        cfg.http,
        confab_web::WebState {
            metrics: metrics.clone(),
            conns: conns.clone(),
            chat_search,
            metrics_allow: Arc::new(metrics_allow),
        },
        confab_web::WebOptions {
            tls: cfg.web.tls.then(|| tls_config.clone()),
            hsts_max_age_secs: cfg.web.hsts_max_age_secs,
            extra: Some(extra),
        },
        async move {
            let _ = stop_http.changed().await;
        },
    )
    .await
    .context("starting HTTP")?;

    let (host, why) = match cfg.advertise.clone() {
        Some(h) => (h, "the `advertise` setting"),
        None => advertise_host(cfg.sip.ip(), primary_address(cfg.sip.is_ipv6())),
    };
    if why.starts_with("loopback") {
        warn!(advertise = %host, "advertising {host} in Via, Record-Route and Contact: {why}");
    } else {
        info!(advertise = %host, "advertising {host} in Via, Record-Route and Contact: {why}");
    }
    // The Mediation role, collocated (crate::mediation_serve): bound now, started
    // once the voice configuration is loaded.
    // A stand-alone Mediation server of the topology (`[mediation] remote`)
    // replaces the collocated one.
    let mediation = match cfg.mediation.remote {
        Some(_) => None,
        None => crate::mediation_serve::bind(&cfg, tls_config.clone()).await?,
    };
    let mut core_cfg = CoreConfig::new(&cfg.domain, &host, transports.udp_addr().port());
    core_cfg.advertise = Advertise {
        host,
        sip_port: transports.udp_addr().port(),
        tls_port: transports.tls_addr().map(|a| a.port()),
        ws_port: Some(http_addr.port()),
    };
    let chat_route = chat
        .as_ref()
        .map(|c| (c.addr, c.lookup_uri.clone(), c.server_uri.clone()))
        .or(remote_chat
            .as_ref()
            .map(|(a, l, s, _)| (*a, l.clone(), s.clone())));
    if let Some((addr, lookup, server)) = &chat_route {
        let dest = confab_frontend::Dest {
            transport: confab_frontend::Transport::Tcp,
            addr: *addr,
            conn: None,
        };
        // The other chat pools of the topology behind this front end: their own URIs.
        for other in &cfg.chat.other_pools {
            let (lookup, server) = crate::chat_pool::pool_uris(&cfg.domain, &other.pool, false);
            info!(pool = %other.pool, sip = %other.addr, %lookup, %server, "persistent chat pool routed");
            let dest = confab_frontend::Dest {
                transport: confab_frontend::Transport::Tcp,
                addr: other.addr,
                conn: None,
            };
            for uri in [lookup, server] {
                core_cfg
                    .app_routes
                    .push(confab_frontend::AppRoute { uri, dest });
            }
        }
        for uri in [lookup, server] {
            core_cfg.app_routes.push(confab_frontend::AppRoute {
                uri: uri.clone(),
                dest,
            });
        }
    }
    core_cfg.min_expires = cfg.registrar.min_expires;
    core_cfg.max_expires = cfg.registrar.max_expires;
    core_cfg.default_expires = cfg.registrar.default_expires;
    core_cfg.presence_same_domain_visible = cfg.presence.same_domain_visible;
    core_cfg.max_subscription_expires = cfg.presence.max_subscription_expires;
    core_cfg.max_publications_per_user = cfg.presence.max_publications_per_user;
    core_cfg.nonce_lifetime = Duration::from_secs(cfg.auth.nonce_lifetime_secs);
    core_cfg.max_failures_per_source = cfg.auth.max_failures_per_source;
    core_cfg.max_failures_per_user = cfg.auth.max_failures_per_user;
    core_cfg.failure_window = Duration::from_secs(cfg.auth.failure_window_secs);
    core_cfg.allow_unauthenticated = cfg.auth.allow_unauthenticated;
    core_cfg.digest_offer_sha256 = cfg.auth.digest_sha256;
    core_cfg.ntlm_target = cfg.auth.server_fqdn.clone();
    core_cfg.digest_allow_rfc2069 = cfg.auth.digest_allow_rfc2069;
    core_cfg.trusted_peers = cfg.auth.trusted_peer_addrs().unwrap_or_default();
    if let Some(p) = chat_provisioning {
        core_cfg.chat_provisioning = Some(p as Arc<dyn confab_frontend::ChatProvisioning>);
    }
    if let Some((addr, _, _)) = &chat_route {
        // Requests from the chat service's listener (the FE connected to it) are trusted.
        core_cfg.trusted_peers.push(*addr);
        // Every server of a chat pool on another machine, too.
        core_cfg
            .trusted_peers
            .extend(cfg.chat.pool_servers.iter().copied());
        // And those of the other chat pools.
        for other in &cfg.chat.other_pools {
            core_cfg.trusted_peers.extend(other.servers.iter().copied());
        }
    }
    // A chat pool on PostgreSQL: each user goes to a live active server of it.
    if let (Some((_, lookup, server)), Some((_, _, _, chat_store))) = (&chat_route, &remote_chat) {
        core_cfg.app_router = crate::chat_pool::router(
            &cfg,
            chat_store,
            &[lookup.clone(), server.clone()],
            stop_rx.clone(),
        )
        .await;
    }
    if let Some(m) = &mediation {
        // Calls to the PSTN go through it; calls it places to users are trusted.
        core_cfg.mediation = Some(m.addr);
        core_cfg.trusted_peers.push(m.addr);
    }
    if let Some(remote) = cfg.mediation.remote
        && cfg.mediation.enabled
    {
        info!(mediation = %remote, "calls to the PSTN go to the stand-alone Mediation server {remote}");
        core_cfg.mediation = Some(remote);
        core_cfg.trusted_peers.push(remote);
    }
    if core_cfg.allow_unauthenticated {
        warn!(
            "auth.allow_unauthenticated is on: every request is accepted without authentication (development only)"
        );
    }

    // The Announcement service: calls to unassigned numbers (crate::announcement).
    let rtp_ip = if cfg.sip.ip().is_unspecified() {
        primary_address(cfg.sip.is_ipv6()).unwrap_or(cfg.sip.ip())
    } else {
        cfg.sip.ip()
    };
    let announcement = crate::announcement::start(&cfg, &store, &url, rtp_ip, stop_rx.clone())
        .await
        .context("starting the announcement service")?;
    core_cfg.announcement_service = Some(confab_frontend::Dest {
        transport: confab_frontend::Transport::Udp,
        addr: announcement.addr,
        conn: None,
    });
    core_cfg.trusted_peers.push(announcement.addr);
    // The Call Park service: calls to orbit numbers (crate::park).
    let park = crate::park::start(
        &cfg,
        &store,
        &url,
        rtp_ip,
        transports.udp_addr(),
        stop_rx.clone(),
    )
    .await
    .context("starting the call park service")?;
    core_cfg.park_service = Some(confab_frontend::Dest {
        transport: confab_frontend::Transport::Udp,
        addr: park.addr,
        conn: None,
    });
    core_cfg.trusted_peers.push(park.addr);
    // The Response Group service: workflow calls (crate::rgs_serve).
    let fe_udp = match transports.udp_addr() {
        a if a.ip().is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), a.port()),
        a => a,
    };
    let (rgs, workflows) =
        crate::rgs_serve::start(&cfg, &store, &url, fe_udp, rtp_ip, stop_rx.clone())
            .await
            .context("starting the response group service")?;
    core_cfg.rgs = Some(confab_frontend::RgsRoute {
        dest: confab_frontend::Dest {
            transport: confab_frontend::Transport::Udp,
            addr: rgs.addr,
            conn: None,
        },
        router: workflows,
    });
    core_cfg.trusted_peers.push(rgs.addr);

    // Monitoring: internal calls and IM sessions (crate::monitoring).
    // The monitoring store: the topology's, else this server's database. The
    // Mediation role's call records go there too.
    let monitoring_store = match &cfg.monitoring.database {
        Some(murl) => Store::open(murl).await.with_context(|| {
            format!(
                "opening the monitoring database {}",
                confab_store::redact_url(murl)
            )
        })?,
        None => store.clone(),
    };
    let (monitoring, monitor_sink) = if cfg.monitoring.enabled {
        let (sink, task) = crate::monitoring::start(
            monitoring_store.clone(),
            Duration::from_secs(cfg.monitoring.im_idle_secs),
            metrics.clone(),
            stop_rx.clone(),
        );
        core_cfg.monitor = Some(sink.clone() as Arc<dyn confab_frontend::MonitorSink>);
        (Some(task), Some(sink))
    } else {
        (None, None)
    };

    let advertised_host = core_cfg.advertise.host.clone();
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let mut core = Core::new(core_cfg, secret, seed, metrics.clone(), Instant::now());
    // Enterprise pool: users homed on front ends (crate::pool_serve).
    let pool = crate::pool_serve::join(
        &cfg,
        &store,
        &url,
        &advertised_host,
        transports.udp_addr(),
        metrics.clone(),
        stop_rx.clone(),
    )
    .await?;
    // Several pools (crate::pools_serve): other pools' users go to their pool; a
    // Director sends every user to theirs.
    let pools = crate::pools_serve::start(
        &cfg,
        &store,
        &url,
        pool.as_ref()
            .map(|(_, r)| r.clone() as confab_frontend::SharedHomeRouter),
        stop_rx.clone(),
    )
    .await?;
    if let Some((_, router)) = &pools {
        core.set_home_router(router.clone());
    } else if let Some((_, router)) = &pool {
        core.set_home_router(router.clone());
    }
    // Pool: presence shared between the front ends (crate::pool_presence).
    let mut presence = crate::pool_presence::start(
        &mut core,
        pool.as_ref().map(|(h, _)| h),
        &store,
        &url,
        Duration::from_millis(cfg.pool.lease_ms),
        stop_rx.clone(),
    )
    .await?;
    // Enterprise Voice: numbers, dial plans, routes, trunks (crate::voice_feed).
    let (voice, mut voice_rx, voice_task) = crate::voice_feed::start(
        store.clone(),
        &url,
        crate::voice_homes::HomeSource::for_config(&cfg),
        stop_rx.clone(),
    )
    .await?;
    let (mediation_voice, mediation_tasks) = match mediation {
        Some(bound) => {
            let (tx, tasks) = crate::mediation_serve::start(
                bound,
                &cfg,
                monitoring_store.clone(),
                metrics.clone(),
                transports.udp_addr(),
                voice.clone(),
                stop_rx.clone(),
            );
            (Some(tx), tasks)
        }
        None => (None, Vec::new()),
    };
    core.set_voice_config(voice);

    // Users: load all, then follow the store's change feed.
    let mut rev = store.current_rev().await?;
    let users = store.list_users().await?;
    let n_users = users.len();
    for u in &users {
        core.apply_directory_change(DirectoryChange::Upsert(entry(u)), Instant::now());
    }
    // Contact lists are loaded on first use (crate::lazy_lists); changes made
    // while the server runs come through their change feed.
    let mut contacts_rev = rev;
    let mut lazy = LazyLists::new();
    let (load_tx, mut load_rx) =
        mpsc::unbounded_channel::<(String, Result<fe::ContactList, String>)>();
    let mut loads: Vec<String> = Vec::new();
    let (dir_tx, mut dir_rx) = mpsc::channel::<Vec<DirectoryChange>>(64);
    let (lists_tx, mut lists_rx) = mpsc::channel::<Vec<fe::ContactList>>(64);
    let poll_store = store.clone();
    let mut poll_stop = stop_rx.clone();
    // Woken by the store's LISTEN/NOTIFY on PostgreSQL (a pool's front ends and
    // the command line see each other's changes at once), every 200 ms on SQLite.
    let mut waker = confab_pool::ChangeWaker::new(&store, &url, &["rev"]).await;
    let poller = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = waker.wait() => {}
                _ = poll_stop.changed() => return,
            }
            match poll_store.contact_changes_since(contacts_rev).await {
                Ok((new_rev, owners)) => {
                    let mut batch = Vec::with_capacity(owners.len());
                    for owner in owners {
                        match poll_store.contact_list(&owner).await {
                            Ok(l) => batch.push(list_from_store(l)),
                            Err(e) => warn!(error = %e, %owner, "reading a contact list failed"),
                        }
                    }
                    contacts_rev = new_rev;
                    if !batch.is_empty() && lists_tx.send(batch).await.is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "reading contact-list changes failed"),
            }
            match poll_store.user_changes_since(rev).await {
                Ok((new_rev, changes)) => {
                    rev = new_rev;
                    if changes.is_empty() {
                        continue;
                    }
                    let batch = changes
                        .into_iter()
                        .map(|c| match c {
                            UserChange::Upsert(u) => DirectoryChange::Upsert(entry(&u)),
                            UserChange::Removed { address } => DirectoryChange::Removed { address },
                        })
                        .collect();
                    if dir_tx.send(batch).await.is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "reading user changes failed"),
            }
        }
    });

    info!(
        domain = %cfg.domain,
        sip = %transports.udp_addr(),
        tls = ?transports.tls_addr(),
        http = %http_addr,
        data = %cfg.data_dir.display(),
        users = n_users,
        "confab front end ready"
    );
    let (save_tx, save_rx) = mpsc::unbounded_channel::<StoreRequest>();
    let (saved_tx, mut saved_rx) = mpsc::unbounded_channel::<Saved>();
    let store_worker = spawn_store_worker(store.clone(), save_rx, saved_tx);
    let mut store_reqs = Vec::new();

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut out = Vec::with_capacity(1024);
    let mut stages = crate::stages::StageClock::new(metrics.clone());
    crate::stages::sample_udp_socket(
        transports.udp_socket(),
        metrics.clone(),
        Duration::from_secs(1),
        stop_rx.clone(),
    );
    // One timer, moved when the core's next deadline changes (creating a new one
    // per loop turn costs a timer-wheel insert and removal per batch).
    let mut armed = Instant::now() + Duration::from_secs(1);
    let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(armed));
    tokio::pin!(sleep);
    loop {
        let deadline = core
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        if deadline != armed {
            armed = deadline;
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = stop_rx.changed() => break,
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break };
                let now = Instant::now();
                let wall = wall_ms();
                stages.taken(&ev, now);
                dispatch(&mut core, &mut lazy, &mut loads, ev, now, wall);
                // Drain what is already queued before delivering, in one batch.
                for _ in 0..EVENT_BATCH {
                    match ev_rx.try_recv() {
                        Ok(ev) => {
                            stages.taken(&ev, now);
                            dispatch(&mut core, &mut lazy, &mut loads, ev, now, wall)
                        }
                        Err(_) => break,
                    }
                }
                // Under sustained load the event branch is always ready and the
                // biased select would never reach the timer: fire due timers here
                // (retransmissions, Timer J/K clean-up, expiries).
                if core.next_deadline().is_some_and(|d| d <= now) {
                    core.on_tick(now, wall);
                }
            }
            batch = dir_rx.recv() => {
                if let Some(batch) = batch {
                    info!(changes = batch.len(), "applied user changes from the store");
                    for change in batch {
                        core.apply_directory_change(change, Instant::now());
                    }
                }
            }
            voice = voice_rx.recv() => {
                if let Some(voice) = voice {
                    if let Some(tx) = &mediation_voice {
                        let _ = tx.try_send(voice.clone());
                    }
                    core.set_voice_config(voice);
                }
            }
            saved = saved_rx.recv() => {
                if let Some((op, result, current)) = saved {
                    core.on_contacts_saved(op, result);
                    if let Some(l) = current {
                        let owner = l.owner.clone();
                        core.load_contact_list(l);
                        release(&mut core, lazy.loaded(&owner));
                    }
                }
            }
            lists = lists_rx.recv() => {
                for l in lists.into_iter().flatten() {
                    let owner = l.owner.clone();
                    core.load_contact_list(l);
                    release(&mut core, lazy.loaded(&owner));
                }
            }
            loaded = load_rx.recv() => {
                if let Some((owner, result)) = loaded {
                    let held = match result {
                        Ok(l) => {
                            core.load_contact_list(l);
                            lazy.loaded(&owner)
                        }
                        Err(e) => {
                            warn!(%owner, error = %e, "loading a contact list failed");
                            lazy.failed(&owner)
                        }
                    };
                    release(&mut core, held);
                }
            }
            shared = crate::pool_presence::next(presence.as_mut()) => {
                crate::pool_presence::apply(&mut core, shared, Instant::now());
            }
            _ = &mut sleep => {
                core.on_tick(Instant::now(), wall_ms());
                // Re-arm even if the next deadline equals the one that just fired.
                armed = Instant::now();
            }
        }
        for owner in loads.drain(..) {
            let store = store.clone();
            let tx = load_tx.clone();
            tokio::spawn(async move {
                let r = store
                    .contact_list(&owner)
                    .await
                    .map(list_from_store)
                    .map_err(|e| e.to_string());
                let _ = tx.send((owner, r));
            });
        }
        core.drain_store_requests(&mut store_reqs);
        for r in store_reqs.drain(..) {
            let _ = save_tx.send(r);
        }
        crate::pool_presence::share(&mut core, presence.as_ref());
        core.drain_output(&mut out);
        transports.deliver_all(&mut out);
        // The turn's monitoring activity, queued as one batch.
        if let Some(sink) = &monitor_sink {
            sink.flush();
        }
        stages.delivered(ev_rx.len(), transports.udp_send_queue_depth());
    }
    info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = poller.await;
    if let Some((handle, _)) = pool {
        handle.join().await;
    }
    if let Some((handle, _)) = pools {
        handle.join().await;
    }
    crate::pool_presence::join(presence).await;
    let _ = voice_task.await;
    // The Mediation loop ends on `stop`; its record writer then writes what is
    // queued and ends.
    for t in mediation_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if let Some(task) = monitoring {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    if let Some(chat) = chat {
        let _ = tokio::time::timeout(Duration::from_secs(10), chat.task).await;
    }
    if let Some(task) = compliance {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    // Finish the edits already handed to the store before closing it.
    drop(save_tx);
    let _ = tokio::time::timeout(Duration::from_secs(10), store_worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), http_task).await;
    store.close().await;
    info!("stopped");
    Ok(())
}

/// Connections allowed: the configured number, at most the open-file limit less
/// the reserve (and at least 1).
fn connection_cap(configured: usize, fd_limit: Option<u64>, reserve: usize) -> usize {
    match fd_limit {
        Some(l) => {
            let usable = usize::try_from(l)
                .unwrap_or(usize::MAX)
                .saturating_sub(reserve);
            configured.min(usable).max(1)
        }
        None => configured,
    }
}

/// Hands an event to the core, unless it is a request that must wait for its
/// sender's contact list (then `loads` names the lists to load).
fn dispatch(
    core: &mut Core,
    lazy: &mut LazyLists,
    loads: &mut Vec<String>,
    ev: Event,
    now: Instant,
    wall: u64,
) {
    let Event::Message(msg, src) = ev else {
        return handle(core, ev, now, wall);
    };
    if !msg.is_request() {
        return core.on_message(msg, src, now, wall);
    }
    match lazy.admit(msg, src, |a| core.directory().get(a).is_some()) {
        Admit::Pass(m, s) => core.on_message(m, s, now, wall),
        Admit::PassAndLoad(m, s, owner) => {
            loads.push(owner);
            core.on_message(m, s, now, wall);
        }
        Admit::HeldAndLoad(owner) => loads.push(owner),
        Admit::Held => {}
    }
}

/// Requests that waited for a contact list go to the core, in order.
fn release(core: &mut Core, held: Vec<(confab_sip::Message, confab_frontend::Dest)>) {
    for (m, s) in held {
        core.on_message(m, s, Instant::now(), wall_ms());
    }
}

fn handle(core: &mut Core, ev: Event, now: Instant, wall: u64) {
    match ev {
        Event::Message(m, src) => core.on_message(m, src, now, wall),
        Event::Malformed(e, src) => core.on_parse_error(&e, src),
        Event::Closed(id) => core.on_connection_closed(id, now),
        // The front end's own outbound connections (to a contact or a gateway
        // with `transport=tcp`): their transactions time out as before.
        Event::Unreachable { .. } => {}
    }
}

/// The host put in Via/Record-Route/Contact and why: the bound address; for a
/// wildcard bind the machine's primary address (`primary`, the source address of
/// its default route), else the loopback address.
fn advertise_host(bind: IpAddr, primary: Option<IpAddr>) -> (String, &'static str) {
    let ip = if !bind.is_unspecified() {
        return (host_text(bind), "the bound address");
    } else if let Some(p) = primary {
        return (
            host_text(p),
            "the machine's primary address (wildcard bind)",
        );
    } else if bind.is_ipv6() {
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    };
    (
        host_text(ip),
        "loopback: wildcard bind and no route to find the primary address; set `advertise` or bind `sip` to this machine's address for remote clients",
    )
}

fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The machine's primary address: the source address the kernel picks for its
/// default route (a connected UDP socket; no packet is sent). IPv4 first, then
/// IPv6 for an IPv6 bind; `None` without a route.
fn primary_address(v6: bool) -> Option<IpAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    // Documentation prefixes (RFC 5737, RFC 3849): routed by the default route,
    // never answered.
    let mut probes = vec![(
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::from((Ipv4Addr::new(198, 51, 100, 1), 9)),
    )];
    if v6 {
        probes.push((
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9)),
        ));
    }
    probes.into_iter().find_map(|(local, probe)| {
        let s = UdpSocket::bind(local).ok()?;
        s.connect(probe).ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_concrete_bind_is_advertised_as_is() {
        let (h, why) = advertise_host(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        );
        assert_eq!(h, "10.0.0.5");
        assert_eq!(why, "the bound address");
        let (h, _) = advertise_host(IpAddr::V6(Ipv6Addr::LOCALHOST), None);
        assert_eq!(h, "[::1]");
    }

    #[test]
    fn a_wildcard_bind_advertises_the_primary_address() {
        let (h, why) = advertise_host(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        );
        assert_eq!(h, "192.0.2.7");
        assert!(why.contains("primary"), "{why}");
        let (h, why) = advertise_host(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None);
        assert_eq!(h, "127.0.0.1");
        assert!(why.contains("loopback"), "{why}");
    }

    #[test]
    fn the_primary_address_is_never_loopback_or_wildcard() {
        if let Some(ip) = primary_address(false) {
            assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
        }
    }

    #[test]
    fn connection_cap_keeps_a_descriptor_reserve() {
        assert_eq!(connection_cap(100_000, Some(1024), 256), 768);
        assert_eq!(connection_cap(500, Some(1_048_576), 256), 500);
        assert_eq!(connection_cap(100_000, None, 256), 100_000);
        assert_eq!(connection_cap(100_000, Some(100), 256), 1);
    }
}
