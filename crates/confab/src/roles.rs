//! The roles a published topology gives this machine, applied to `confab serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use confab_topology::local::{LocalReplica, LocalRoles};
use confab_topology::{Listener, Role, StoreLocation, Topology};
use tracing::{info, warn};

use crate::config::ServeConfig;

/// Adjusts the serve configuration from the topology bootstrapped into the data
/// directory; with no topology, the zero-configuration Standard Edition applies
/// and `cfg` is returned unchanged.
///
/// The machine is the one `confab bootstrap` recorded in the data directory, else
/// the host's FQDN. It must have a role `confab serve` runs (front end, which
/// includes a Standard Edition server, director, persistent-chat or mediation); a
/// machine with only the edge role is refused, as that role is not built yet.
/// A machine with mediation but not front-end runs the Mediation role alone
/// (`mediation.only`) for the front ends of its pool's next hop, which hand it
/// their calls to the PSTN (`mediation.remote`).
/// A machine with director but not front-end runs as a Director
/// (`crate::pools_serve`) on the topology's shared back end.
/// A machine with persistent-chat but not front-end runs the chat service alone
/// (`chat.only`) against its pool's persistent-chat store; a front end whose pool
/// is the next hop of a Persistent Chat pool routes the chat URIs there
/// (`chat.remote`).
///
/// The topology sets, for this machine:
/// - `database`: the pool's back-end store (its PostgreSQL URL on Enterprise
///   Edition, its SQLite file on Standard Edition);
/// - `domain`: the topology's first (default) SIP domain;
/// - `sip`, `tls`, `http`: the ports of the front end's `sip`, `sip-tls` and `web`
///   listeners, on the machine's first address in the topology (else the
///   configured address).
///
/// A value given by the configuration file or a command-line flag wins. Since the
/// merged configuration does not record where a value came from, **a field still
/// equal to its built-in default ([`ServeConfig::default`]) counts as not given**;
/// any other value is kept (and logged when it differs from the topology's).
pub fn apply_topology(cfg: ServeConfig) -> anyhow::Result<ServeConfig> {
    apply_with_host(cfg, confab_prereq::host_fqdn)
}

/// [`apply_topology`] with the host-FQDN lookup supplied (called only when the
/// data directory records no FQDN).
fn apply_with_host(
    mut cfg: ServeConfig,
    host_fqdn: impl FnOnce() -> String,
) -> anyhow::Result<ServeConfig> {
    let Some(replica) = LocalReplica::load(&cfg.data_dir)
        .with_context(|| format!("reading the topology replica in {}", cfg.data_dir.display()))?
    else {
        return Ok(cfg);
    };
    let version = replica.pointer.version;
    let Some(topology) = replica
        .topology()
        .with_context(|| format!("reading the replica of topology version {version}"))?
    else {
        return Ok(cfg);
    };
    let fqdn = replica
        .pointer
        .fqdn
        .clone()
        .unwrap_or_else(host_fqdn)
        .to_ascii_lowercase();
    let Some(machine) = topology.machine(&fqdn) else {
        bail!(
            "this machine, {fqdn}, is not in topology version {version} bootstrapped into {}; \
             run `confab bootstrap --fqdn FQDN` with its FQDN in the topology",
            cfg.data_dir.display()
        );
    };
    let local = LocalRoles::from_machine(machine, version);
    check_runnable(&local)?;

    let defaults = ServeConfig::default();
    let mut set: Vec<String> = Vec::new();
    let ip = machine
        .machine
        .addresses
        .iter()
        .find_map(|a| a.get_ref().trim().parse::<IpAddr>().ok());

    if local.roles.contains(&Role::FrontEnd) {
        // Database: the pool's back end.
        apply_database(&mut cfg, &topology, machine.pool, &local, &mut set)?;
        // A Persistent Chat pool whose next hop is this pool: its chat service.
        apply_remote_chat(&mut cfg, &topology, machine.pool, &mut set)?;
        // A mediation pool whose next hop is this pool: calls to the PSTN go there.
        apply_remote_mediation(&mut cfg, &topology, machine.pool, &mut set);
    } else if local.roles.contains(&Role::Mediation)
        && !local.roles.contains(&Role::PersistentChat)
        && !local.roles.contains(&Role::Director)
    {
        // Only Mediation: the role alone, serving the front ends of its pool's
        // next hop, on that pool's back end (the voice configuration) and
        // monitoring store (call records).
        let Some(hop) = machine.pool.next_hop.as_ref().map(|h| h.get_ref().clone()) else {
            bail!(
                "mediation pool {} in topology version {version} names no next_hop (the \
                 front-end pool whose calls it carries)",
                local.pool
            );
        };
        let Some(hop_pool) = topology.pool(&hop) else {
            bail!(
                "mediation pool {}: next_hop {hop} is no pool of topology version {version}",
                local.pool
            );
        };
        apply_database(&mut cfg, &topology, hop_pool, &local, &mut set)?;
        apply_monitoring(&mut cfg, &topology, hop_pool, &mut set)?;
        let front_ends: Vec<SocketAddr> = topology
            .machines()
            .filter(|m| {
                m.pool.fqdn().eq_ignore_ascii_case(hop_pool.fqdn())
                    && m.machine.has_role(Role::FrontEnd)
            })
            .filter_map(|m| {
                Some(SocketAddr::new(
                    machine_ip(m.machine)?,
                    listener_port(m.machine, Role::FrontEnd, "sip")?,
                ))
            })
            .collect();
        if front_ends.is_empty() && cfg.mediation.pool.is_empty() {
            bail!(
                "mediation pool {}: no front end of its next hop {hop} has an IP address in \
                 topology version {version}",
                local.pool
            );
        }
        if cfg.mediation.pool.is_empty() {
            cfg.mediation.pool = front_ends;
        }
        cfg.mediation.only = true;
        cfg.mediation.enabled = true;
        let ip = ip.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        for (field, listener, current) in [
            ("mediation.sip", "sip-tls", &mut cfg.mediation.sip),
            ("mediation.tls", "gateway", &mut cfg.mediation.tls),
        ] {
            if current.is_none()
                && let Some(port) = listener_port(machine.machine, Role::Mediation, listener)
            {
                let addr = SocketAddr::new(ip, port);
                set.push(format!("{field}={addr}"));
                *current = Some(addr);
            }
        }
        set.push(format!(
            "mediation.only (front ends {})",
            cfg.mediation
                .pool
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else if local.roles.contains(&Role::Director) {
        // A Director: the topology's shared directory (its pool's back-end store
        // if it names one, else the configured `database`), no users of its own.
        if topology.backend_of(machine.pool).is_some() {
            apply_database(&mut cfg, &topology, machine.pool, &local, &mut set)?;
        } else if cfg.database.is_none() {
            bail!(
                "director pool {} in topology version {version} names no back-end store: set \
                 `database` to the topology's PostgreSQL back end",
                local.pool
            );
        }
        if !cfg.director.enabled {
            set.push(format!(
                "director pool={} member={}",
                local.pool, local.fqdn
            ));
        }
        cfg.director.enabled = true;
        cfg.pool.name.get_or_insert_with(|| local.pool.clone());
        cfg.pool.member.get_or_insert_with(|| local.fqdn.clone());
    } else {
        // Only Persistent Chat: the chat service alone, listening on the
        // machine's address at its persistent-chat listener's port.
        cfg.chat.only = true;
        cfg.chat.enabled = true;
        let port = local
            .listeners
            .iter()
            .find(|l| l.role == Role::PersistentChat)
            .map(|l| l.port);
        if cfg.chat.sip.is_none()
            && let Some(port) = port
        {
            let addr = SocketAddr::new(ip.unwrap_or(IpAddr::from([127, 0, 0, 1])), port);
            set.push(format!("chat.sip={addr}"));
            cfg.chat.sip = Some(addr);
        }
        // Its place in its chat pool (crate::chat_pool).
        cfg.chat.pool = Some(local.pool.clone());
        // Several chat pools behind one front-end pool: the first one in the
        // topology is the default (the URIs provisioning gives, the rooms with no
        // pool); another has URIs of its own.
        let hop = machine.pool.next_hop.as_ref().map(|h| h.get_ref().as_str());
        let default = chat_pools_behind(&topology, hop)
            .first()
            .is_none_or(|p| p.fqdn().eq_ignore_ascii_case(machine.pool.fqdn()));
        cfg.chat.default_pool = default;
        if !default {
            set.push("chat.default_pool=false (not the topology's first chat pool)".to_owned());
        }
        cfg.chat.server_name = Some(local.fqdn.clone());
        cfg.chat.passive = machine.machine.chat_state() == confab_topology::ChatState::Passive;
        set.push(format!(
            "chat.pool={} chat.server={} ({})",
            local.pool,
            local.fqdn,
            if cfg.chat.passive {
                "passive"
            } else {
                "active"
            }
        ));
        if machine.pool.persistent_chat_store.is_none() && cfg.chat.database.is_none() {
            bail!(
                "pool {} in topology version {version} runs persistent-chat but names no \
                 persistent_chat_store",
                local.pool
            );
        }
    }

    // Enterprise pool: the front ends of the pool act as one (crate::pool_serve),
    // named by the topology (an explicit `[pool]` name or member wins).
    if local.edition == confab_topology::Edition::Enterprise
        && local.roles.contains(&Role::FrontEnd)
        && cfg.database.as_deref().is_some_and(|u| {
            confab_store::Backend::from_url(u).ok() == Some(confab_store::Backend::Postgres)
        })
    {
        if !cfg.pool.enabled {
            set.push(format!("pool={} member={}", local.pool, local.fqdn));
        }
        cfg.pool.enabled = true;
        cfg.pool.name.get_or_insert_with(|| local.pool.clone());
        cfg.pool.member.get_or_insert_with(|| local.fqdn.clone());
    }

    // Persistent Chat: on a machine with that role, the chat service uses the
    // pool's persistent-chat store (unless `[chat] database` is configured).
    if local.roles.contains(&Role::PersistentChat)
        && cfg.chat.database.is_none()
        && let Some(name) = machine.pool.persistent_chat_store.as_ref()
        && let Some(store) = topology.store(name.get_ref())
    {
        let url = match store.location() {
            Some(StoreLocation::Postgres(url)) => Some(url),
            Some(StoreLocation::Sqlite(path)) => {
                let path = confab_topology::model::resolve(&cfg.data_dir, &path);
                Some(confab_store::sqlite_url(&path).map_err(|e| {
                    anyhow::anyhow!("persistent chat store {:?}: {e}", store.name())
                })?)
            }
            _ => None,
        };
        if let Some(url) = url {
            set.push(format!(
                "chat.database={} (store {:?})",
                confab_store::redact_url(&url),
                store.name()
            ));
            cfg.chat.database = Some(url);
        }
    }

    // File posts: the pool's `file_store` (a directory).
    if cfg.chat.file_store.is_none()
        && let Some(name) = machine.pool.file_store.as_ref()
        && let Some(store) = topology.store(name.get_ref())
        && let Some(StoreLocation::Directory(path)) = store.location()
    {
        let path = confab_topology::model::resolve(&cfg.data_dir, &path);
        set.push(format!(
            "chat.file_store={} (store {:?})",
            path.display(),
            store.name()
        ));
        cfg.chat.file_store = Some(path);
    }

    // Compliance: the pool's `compliance = true` and its `compliance_store`.
    if local.roles.contains(&Role::PersistentChat)
        && machine
            .pool
            .compliance
            .as_ref()
            .is_some_and(|c| *c.get_ref())
    {
        if !cfg.chat.compliance {
            set.push("chat.compliance=true".to_owned());
            cfg.chat.compliance = true;
        }
        if cfg.chat.compliance_database.is_none()
            && let Some(name) = machine.pool.compliance_store.as_ref()
            && let Some(store) = topology.store(name.get_ref())
        {
            let url =
                match store.location() {
                    Some(StoreLocation::Postgres(url)) => Some(url),
                    Some(StoreLocation::Sqlite(path)) => {
                        let path = confab_topology::model::resolve(&cfg.data_dir, &path);
                        Some(confab_store::sqlite_url(&path).map_err(|e| {
                            anyhow::anyhow!("compliance store {:?}: {e}", store.name())
                        })?)
                    }
                    _ => None,
                };
            if let Some(url) = url {
                set.push(format!(
                    "chat.compliance_database={} (store {:?})",
                    confab_store::redact_url(&url),
                    store.name()
                ));
                cfg.chat.compliance_database = Some(url);
            }
        }
    }

    // Monitoring: the pool's `monitoring_store` (call records, IM sessions).
    if local.roles.contains(&Role::FrontEnd) {
        apply_monitoring(&mut cfg, &topology, machine.pool, &mut set)?;
    }

    // Domain: the default SIP domain.
    if let Some(domain) = topology.sip_domains().first() {
        let domain = domain.trim().to_ascii_lowercase();
        if cfg.domain == defaults.domain {
            if cfg.domain != domain {
                set.push(format!("domain={domain}"));
            }
            cfg.domain = domain;
        } else if cfg.domain != domain {
            info!(
                configured = %cfg.domain,
                topology = %domain,
                "the configured SIP domain wins over the topology's default SIP domain"
            );
        }
    }

    // Listeners: the front end's ports on the machine's address.
    let front_end: Vec<&Listener> = local
        .listeners
        .iter()
        .filter(|l| {
            l.role == Role::FrontEnd
                || (l.role == Role::Director && !local.roles.contains(&Role::FrontEnd))
        })
        .collect();
    let port_of = |name: &str| front_end.iter().find(|l| l.name == name).map(|l| l.port);
    if let (Some(tcp), Some(udp)) = (port_of("sip"), port_of("sip-udp"))
        && tcp != udp
    {
        warn!(
            sip = tcp,
            sip_udp = udp,
            "the topology gives SIP over UDP its own port; confab serves SIP over UDP and TCP on the sip port"
        );
    }
    for (field, listener, current, default) in [
        ("sip", "sip", &mut cfg.sip, defaults.sip),
        ("tls", "sip-tls", &mut cfg.tls, defaults.tls),
        ("http", "web", &mut cfg.http, defaults.http),
    ] {
        let Some(port) = port_of(listener) else {
            continue;
        };
        let wanted = SocketAddr::new(ip.unwrap_or(current.ip()), port);
        if *current == default {
            if *current != wanted {
                set.push(format!("{field}={wanted}"));
            }
            *current = wanted;
        } else if *current != wanted {
            info!(
                configured = %current,
                topology = %wanted,
                "the configured {field} address wins over the topology's front-end.{listener} listener"
            );
        }
    }

    info!(
        machine = %local.fqdn,
        pool = %local.pool,
        edition = %local.edition,
        roles = %role_list(&local.roles),
        version,
        set = %if set.is_empty() { "nothing (the configuration already matches)".to_owned() } else { set.join(", ") },
        "serving this machine's roles from the bootstrapped topology"
    );
    Ok(cfg)
}

/// Points `monitoring.database` at `pool`'s `monitoring_store` unless configured.
fn apply_monitoring(
    cfg: &mut ServeConfig,
    topology: &Topology,
    pool: &confab_topology::Pool,
    set: &mut Vec<String>,
) -> anyhow::Result<()> {
    if cfg.monitoring.database.is_some() {
        return Ok(());
    }
    let Some(store) = pool
        .monitoring_store
        .as_ref()
        .and_then(|name| topology.store(name.get_ref()))
    else {
        return Ok(());
    };
    let url = match store.location() {
        Some(StoreLocation::Postgres(url)) => Some(url),
        Some(StoreLocation::Sqlite(path)) => {
            let path = confab_topology::model::resolve(&cfg.data_dir, &path);
            Some(
                confab_store::sqlite_url(&path)
                    .map_err(|e| anyhow::anyhow!("monitoring store {:?}: {e}", store.name()))?,
            )
        }
        _ => None,
    };
    if let Some(url) = url {
        set.push(format!(
            "monitoring.database={} (store {:?})",
            confab_store::redact_url(&url),
            store.name()
        ));
        cfg.monitoring.database = Some(url);
    }
    Ok(())
}

/// A machine's first IP address in the topology.
fn machine_ip(m: &confab_topology::Machine) -> Option<IpAddr> {
    m.addresses
        .iter()
        .find_map(|a| a.get_ref().trim().parse::<IpAddr>().ok())
}

/// The port of `role`'s listener `name` on a machine.
fn listener_port(m: &confab_topology::Machine, role: Role, name: &str) -> Option<u16> {
    m.listeners()
        .into_iter()
        .find(|l| l.role == role && l.name == name)
        .map(|l| l.port)
}

/// On a front end: a mediation pool whose `next_hop` is this pool, with a
/// machine that runs only the Mediation role and has an address, carries the
/// pool's calls to the PSTN (`mediation.remote`: its `sip-tls` listener's port,
/// where it takes SIP over UDP and TCP) instead of a collocated Mediation server.
fn apply_remote_mediation(
    cfg: &mut ServeConfig,
    topology: &Topology,
    pool: &confab_topology::Pool,
    set: &mut Vec<String>,
) {
    if cfg.mediation.remote.is_some() || !cfg.mediation.enabled {
        return;
    }
    let med = topology.machines().find(|m| {
        m.pool.fqdn() != pool.fqdn()
            && m.pool
                .next_hop
                .as_ref()
                .is_some_and(|h| h.get_ref().eq_ignore_ascii_case(pool.fqdn()))
            && m.machine.has_role(Role::Mediation)
            && !m.machine.has_role(Role::FrontEnd)
    });
    let Some(med) = med else {
        return;
    };
    let (Some(ip), Some(port)) = (
        machine_ip(med.machine),
        listener_port(med.machine, Role::Mediation, "sip-tls"),
    ) else {
        warn!(
            machine = %med.machine.fqdn(),
            "the Mediation server has no IP address in the topology; the Mediation role runs collocated"
        );
        return;
    };
    let addr = SocketAddr::new(ip, port);
    set.push(format!("mediation.remote={addr} ({})", med.machine.fqdn()));
    cfg.mediation.remote = Some(addr);
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The chat store URL of a pool (its `persistent_chat_store`).
fn chat_store_url(
    cfg: &ServeConfig,
    topology: &Topology,
    pool: &confab_topology::Pool,
) -> anyhow::Result<Option<String>> {
    let Some(store) = pool
        .persistent_chat_store
        .as_ref()
        .and_then(|n| topology.store(n.get_ref()))
    else {
        return Ok(None);
    };
    Ok(match store.location() {
        Some(StoreLocation::Postgres(url)) => Some(url),
        Some(StoreLocation::Sqlite(path)) => {
            let path = confab_topology::model::resolve(&cfg.data_dir, &path);
            Some(
                confab_store::sqlite_url(&path).map_err(|e| {
                    anyhow::anyhow!("persistent chat store {:?}: {e}", store.name())
                })?,
            )
        }
        _ => None,
    })
}

/// The Persistent Chat pools (with a persistent-chat machine that is not a front
/// end) whose `next_hop` is `next_hop`, in topology order, each once.
fn chat_pools_behind<'a>(
    topology: &'a Topology,
    next_hop: Option<&str>,
) -> Vec<&'a confab_topology::Pool> {
    let mut pools: Vec<&confab_topology::Pool> = Vec::new();
    for m in topology.machines() {
        let hop = m.pool.next_hop.as_ref().map(|h| h.get_ref().as_str());
        let same_hop = match (hop, next_hop) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        if same_hop
            && m.machine.has_role(Role::PersistentChat)
            && !m.machine.has_role(Role::FrontEnd)
            && !pools.iter().any(|p| p.fqdn() == m.pool.fqdn())
        {
            pools.push(m.pool);
        }
    }
    pools
}

/// The SIP address of a persistent-chat machine: its first IP address and its
/// persistent-chat listener's port.
fn chat_addr(m: &confab_topology::Machine) -> Option<SocketAddr> {
    let ip = m
        .addresses
        .iter()
        .find_map(|a| a.get_ref().trim().parse::<IpAddr>().ok())?;
    let port = m
        .listeners()
        .into_iter()
        .find(|l| l.role == Role::PersistentChat)?
        .port;
    Some(SocketAddr::new(ip, port))
}

/// On a front end: a Persistent Chat pool whose `next_hop` is this pool, with an
/// active persistent-chat machine that has an address, runs the chat service. The
/// front end routes the chat URIs there (`chat.remote`) and reads the chat store
/// (policy for provisioning, history search) from that pool's store.
fn apply_remote_chat(
    cfg: &mut ServeConfig,
    topology: &Topology,
    pool: &confab_topology::Pool,
    set: &mut Vec<String>,
) -> anyhow::Result<()> {
    if cfg.chat.remote.is_some() || !cfg.chat.enabled {
        return Ok(());
    }
    let chat = topology.machines().find(|m| {
        m.pool.fqdn() != pool.fqdn()
            && m.pool
                .next_hop
                .as_ref()
                .is_some_and(|h| h.get_ref().eq_ignore_ascii_case(pool.fqdn()))
            && m.machine.has_role(Role::PersistentChat)
            && !m.machine.has_role(Role::FrontEnd)
            && m.machine.chat_state() == confab_topology::ChatState::Active
    });
    let Some(chat) = chat else {
        return Ok(());
    };
    let ip = chat
        .machine
        .addresses
        .iter()
        .find_map(|a| a.get_ref().trim().parse::<IpAddr>().ok());
    let port = chat
        .machine
        .listeners()
        .into_iter()
        .find(|l| l.role == Role::PersistentChat)
        .map(|l| l.port);
    let (Some(ip), Some(port)) = (ip, port) else {
        warn!(
            machine = %chat.machine.fqdn(),
            "the Persistent Chat server has no IP address in the topology; the chat service runs in-process"
        );
        return Ok(());
    };
    let addr = SocketAddr::new(ip, port);
    set.push(format!("chat.remote={addr} ({})", chat.machine.fqdn()));
    cfg.chat.remote = Some(addr);
    // Every server of that pool (active or passive): the front end trusts them and,
    // with a PostgreSQL store, routes each user to a live active one.
    cfg.chat.pool = Some(chat.pool.fqdn().to_owned());
    cfg.chat.pool_servers = topology
        .machines()
        .filter(|m| m.pool.fqdn() == chat.pool.fqdn() && m.machine.has_role(Role::PersistentChat))
        .filter_map(|m| {
            let ip = m
                .machine
                .addresses
                .iter()
                .find_map(|a| a.get_ref().trim().parse::<IpAddr>().ok())?;
            let port = m
                .machine
                .listeners()
                .into_iter()
                .find(|l| l.role == Role::PersistentChat)?
                .port;
            Some(SocketAddr::new(ip, port))
        })
        .collect();
    // The other chat pools behind this pool: each routed by URIs of its own.
    for other in chat_pools_behind(topology, Some(pool.fqdn())) {
        if other.fqdn() == chat.pool.fqdn() {
            continue;
        }
        let machines: Vec<_> = topology
            .machines()
            .filter(|m| m.pool.fqdn() == other.fqdn() && m.machine.has_role(Role::PersistentChat))
            .collect();
        let first = machines
            .iter()
            .find(|m| m.machine.chat_state() == confab_topology::ChatState::Active)
            .and_then(|m| chat_addr(m.machine));
        let Some(addr) = first else {
            warn!(pool = %other.fqdn(), "a Persistent Chat pool has no active server with an address; it is not routed");
            continue;
        };
        set.push(format!("chat pool {} at {addr}", other.fqdn()));
        cfg.chat.other_pools.push(crate::config::ChatPoolRoute {
            pool: other.fqdn().to_owned(),
            addr,
            servers: machines
                .iter()
                .filter_map(|m| chat_addr(m.machine))
                .collect(),
        });
    }
    if cfg.chat.database.is_none()
        && let Some(url) = chat_store_url(cfg, topology, chat.pool)?
    {
        set.push(format!(
            "chat.database={} (pool {})",
            confab_store::redact_url(&url),
            chat.pool.fqdn()
        ));
        cfg.chat.database = Some(url);
    }
    Ok(())
}

/// Refuses a machine without a role `confab serve` runs; warns about roles it
/// does not run yet.
fn check_runnable(local: &LocalRoles) -> anyhow::Result<()> {
    let not_built: Vec<Role> = local
        .roles
        .iter()
        .copied()
        // Persistent Chat runs beside the front end (see `crate::serve`); a
        // Director runs on its own (`crate::pools_serve`).
        .filter(|r| {
            ![
                Role::FrontEnd,
                Role::PersistentChat,
                Role::Director,
                Role::Mediation,
            ]
            .contains(r)
        })
        .collect();
    if !local.roles.contains(&Role::FrontEnd)
        && !local.roles.contains(&Role::PersistentChat)
        && !local.roles.contains(&Role::Director)
        && !local.roles.contains(&Role::Mediation)
    {
        bail!(
            "this machine, {} (pool {}), has the role(s) {} in topology version {}, and `confab serve` \
             cannot run them yet: it runs the front-end role (an Enterprise front end or a Standard \
             Edition server), director, persistent-chat and mediation; edge is not built yet",
            local.fqdn,
            local.pool,
            role_list(&local.roles),
            local.version
        );
    }
    if !not_built.is_empty() {
        warn!(
            machine = %local.fqdn,
            roles = %role_list(&not_built),
            "the topology gives this machine roles that are not built yet; only the front end runs"
        );
    }
    Ok(())
}

/// Points `database` at the pool's back end unless the configuration names one.
fn apply_database(
    cfg: &mut ServeConfig,
    topology: &Topology,
    pool: &confab_topology::Pool,
    local: &LocalRoles,
    set: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(store) = topology.backend_of(pool) else {
        bail!(
            "pool {} in topology version {} names no back-end store",
            local.pool,
            local.version
        );
    };
    let wanted = match store.location() {
        Some(StoreLocation::Postgres(url)) => Some(url),
        Some(StoreLocation::Sqlite(path)) => {
            let path = confab_topology::model::resolve(&cfg.data_dir, &path);
            if same_path(&path, &cfg.sqlite_path()) {
                // The built-in default file: leave `database` unset.
                None
            } else {
                Some(
                    confab_store::sqlite_url(&path)
                        .map_err(|e| anyhow::anyhow!("back-end store {:?}: {e}", store.name()))?,
                )
            }
        }
        _ => bail!(
            "back-end store {:?} of pool {} has no database location",
            store.name(),
            local.pool
        ),
    };
    match (&cfg.database, wanted) {
        (Some(configured), wanted) => {
            if wanted.as_deref() != Some(configured.as_str()) {
                info!(
                    configured = %confab_store::redact_url(configured),
                    back_end = store.name(),
                    "the configured database wins over the topology's back-end store"
                );
            }
        }
        (None, Some(url)) => {
            set.push(format!(
                "database={} (store {:?})",
                confab_store::redact_url(&url),
                store.name()
            ));
            cfg.database = Some(url);
        }
        (None, None) => {}
    }
    Ok(())
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_topology::local::Pointer;

    fn bootstrapped(dir: &Path, source: &str, fqdn: Option<&str>) -> ServeConfig {
        LocalReplica {
            pointer: Pointer {
                url: "sqlite:///nowhere/confab.db".into(),
                version: 3,
                fqdn: fqdn.map(str::to_owned),
            },
            source: Some(source.to_owned()),
        }
        .save(dir)
        .unwrap();
        ServeConfig {
            data_dir: dir.to_path_buf(),
            ..ServeConfig::default()
        }
    }

    fn no_host() -> String {
        panic!("the host FQDN should not be needed")
    }

    const STANDARD: &str = r#"sip_domains = ["contoso.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"
[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"
[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]
"#;

    const ENTERPRISE: &str = r#"sip_domains = ["fabrikam.com", "other.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab:secret@db.fabrikam.com/confab"
[[pool]]
fqdn = "pool01.fabrikam.com"
site = "main"
edition = "enterprise"
backend = "backend"
[[pool.machine]]
fqdn = "fe01.fabrikam.com"
addresses = ["10.0.0.11"]
roles = ["front-end"]
[pool.machine.ports]
front-end.sip = 15060
front-end.sip-udp = 15060
front-end.sip-tls = 15061
front-end.web = 18080
[[pool.machine]]
fqdn = "fe02.fabrikam.com"
roles = ["front-end"]
[[pool]]
fqdn = "dir01.fabrikam.com"
site = "main"
next_hop = "pool01.fabrikam.com"
[[pool.machine]]
fqdn = "dir01.fabrikam.com"
roles = ["director"]
"#;

    #[test]
    fn no_topology_leaves_the_configuration_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServeConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServeConfig::default()
        };
        let out = apply_with_host(cfg.clone(), no_host).unwrap();
        assert_eq!(format!("{out:?}"), format!("{cfg:?}"));
    }

    #[test]
    fn standard_edition_keeps_the_default_database() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), STANDARD, Some("se01.contoso.com"));
        let out = apply_with_host(cfg, no_host).unwrap();
        assert!(out.database.is_none(), "{out:?}");
        assert_eq!(out.sqlite_path(), dir.path().join("confab.db"));
        assert_eq!(out.domain, "contoso.com");
        assert_eq!(out.sip.to_string(), "0.0.0.0:5060");
        assert_eq!(out.tls.to_string(), "0.0.0.0:5061");
        assert_eq!(out.http.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn standard_edition_elsewhere_and_host_fqdn() {
        let dir = tempfile::tempdir().unwrap();
        let source = STANDARD.replace("sqlite = \"confab.db\"", "sqlite = \"db/backend.db\"");
        let cfg = bootstrapped(dir.path(), &source, None);
        let out = apply_with_host(cfg, || "SE01.contoso.com".into()).unwrap();
        let url = out.database.unwrap();
        assert!(url.starts_with("sqlite://"), "{url}");
        assert!(url.contains("/db/backend.db"), "{url}");
    }

    #[test]
    fn enterprise_front_end_gets_postgres_and_ports() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), ENTERPRISE, Some("fe01.fabrikam.com"));
        let out = apply_with_host(cfg, no_host).unwrap();
        assert_eq!(
            out.database.as_deref(),
            Some("postgres://confab:secret@db.fabrikam.com/confab")
        );
        assert_eq!(out.domain, "fabrikam.com");
        assert_eq!(out.sip.to_string(), "10.0.0.11:15060");
        assert_eq!(out.tls.to_string(), "10.0.0.11:15061");
        assert_eq!(out.http.to_string(), "10.0.0.11:18080");

        // The second front end has no address and default ports.
        let cfg = bootstrapped(dir.path(), ENTERPRISE, Some("fe02.fabrikam.com"));
        let out = apply_with_host(cfg, no_host).unwrap();
        assert!(out.database.unwrap().starts_with("postgres://"));
        assert_eq!(out.sip.to_string(), "0.0.0.0:5060");
    }

    #[test]
    fn explicit_values_win() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = bootstrapped(dir.path(), ENTERPRISE, Some("fe01.fabrikam.com"));
        cfg.database = Some("postgres://me@elsewhere/db".into());
        cfg.domain = "mine.example".into();
        cfg.sip = "127.0.0.1:25060".parse().unwrap();
        cfg.http = "127.0.0.1:28080".parse().unwrap();
        let out = apply_with_host(cfg, no_host).unwrap();
        assert_eq!(out.database.as_deref(), Some("postgres://me@elsewhere/db"));
        assert_eq!(out.domain, "mine.example");
        assert_eq!(out.sip.to_string(), "127.0.0.1:25060");
        assert_eq!(out.http.to_string(), "127.0.0.1:28080");
        // Not given: from the topology.
        assert_eq!(out.tls.to_string(), "10.0.0.11:15061");
    }

    #[test]
    fn a_director_machine_runs_as_a_director() {
        let dir = tempfile::tempdir().unwrap();
        // Its pool names no back end: the topology's database must be given.
        let cfg = bootstrapped(dir.path(), ENTERPRISE, Some("dir01.fabrikam.com"));
        let err = apply_with_host(cfg, no_host).unwrap_err().to_string();
        assert!(err.contains("dir01.fabrikam.com"), "{err}");
        assert!(err.contains("names no back-end store"), "{err}");
        let mut cfg = bootstrapped(dir.path(), ENTERPRISE, Some("dir01.fabrikam.com"));
        cfg.database = Some("postgres://confab@db/confab".into());
        let out = apply_with_host(cfg, no_host).unwrap();
        assert!(out.director.enabled);
        assert_eq!(out.pool.name.as_deref(), Some("dir01.fabrikam.com"));
        assert_eq!(out.pool.member.as_deref(), Some("dir01.fabrikam.com"));
        assert!(!out.chat.only);
    }

    #[test]
    fn a_mediation_machine_runs_the_role_alone_and_its_pool_hands_it_calls() {
        let topology = format!(
            "{ENTERPRISE}[[pool]]
fqdn = \"med.fabrikam.com\"
site = \"main\"
next_hop = \"pool01.fabrikam.com\"
[[pool.machine]]
fqdn = \"med01.fabrikam.com\"
addresses = [\"10.0.0.30\"]
roles = [\"mediation\"]
[pool.machine.ports]
mediation.gateway = 15067
"
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), &topology, Some("med01.fabrikam.com"));
        let out = apply_with_host(cfg, no_host).unwrap();
        assert!(out.mediation.only && out.mediation.enabled);
        // The front ends of its next hop with an address (fe02 has none).
        assert_eq!(out.mediation.pool, vec!["10.0.0.11:15060".parse().unwrap()]);
        assert_eq!(out.mediation.sip, Some("10.0.0.30:5070".parse().unwrap()));
        assert_eq!(out.mediation.tls, Some("10.0.0.30:15067".parse().unwrap()));
        assert_eq!(
            out.database.as_deref(),
            Some("postgres://confab:secret@db.fabrikam.com/confab")
        );
        // fe01 hands its calls to the PSTN to it.
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), &topology, Some("fe01.fabrikam.com"));
        let out = apply_with_host(cfg, no_host).unwrap();
        assert!(!out.mediation.only);
        assert_eq!(
            out.mediation.remote,
            Some("10.0.0.30:5070".parse().unwrap())
        );
        // Without a next hop it cannot serve.
        let topology = topology.replace(
            "next_hop = \"pool01.fabrikam.com\"\n[[pool.machine]]\nfqdn = \"med01",
            "[[pool.machine]]\nfqdn = \"med01",
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), &topology, Some("med01.fabrikam.com"));
        let err = apply_with_host(cfg, no_host).unwrap_err().to_string();
        assert!(err.contains("names no next_hop"), "{err}");
    }

    #[test]
    fn machine_not_in_the_topology() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = bootstrapped(dir.path(), ENTERPRISE, None);
        let err = apply_with_host(cfg, || "stranger.fabrikam.com".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("stranger.fabrikam.com"), "{err}");
        assert!(err.contains("not in topology version 3"), "{err}");
    }
}
