//! What to check: this machine's roles, stores, listeners and load, from the
//! topology or from the zero-configuration Standard Edition default.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use confab_topology::validate::capacity;
use confab_topology::{Edition, Listener, Role, Scope, StoreKind, StoreLocation, Topology};

use crate::requirements::Load;

/// File name of the Standard Edition back end in the data directory when no
/// topology says otherwise.
pub const DEFAULT_BACKEND_FILE: &str = "confab.db";
/// Default file store directory in the data directory.
pub const DEFAULT_FILE_STORE: &str = "files";

/// Where a store the machine uses lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
    Directory(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    pub name: String,
    pub kind: StoreKind,
    pub target: Target,
}

/// A listener and the address it binds (`None`: every address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub listener: Listener,
    pub address: Option<IpAddr>,
}

/// Everything the checks need to know about this machine's job.
#[derive(Debug, Clone)]
pub struct Plan {
    pub fqdn: String,
    pub pool: String,
    pub edition: Edition,
    pub roles: Vec<Role>,
    pub data_dir: PathBuf,
    pub cert_path: PathBuf,
    /// Names the certificate must hold: the pool FQDN (required) and the
    /// machine FQDN.
    pub sip_domains: Vec<String>,
    /// Checking before `confab bootstrap`: a missing certificate or database is
    /// fine, bootstrap creates it.
    pub bootstrap: bool,
    pub stores: Vec<StoreTarget>,
    pub binds: Vec<Bind>,
    pub load: Load,
    /// Other servers this machine exchanges traffic with (pool members, next
    /// hops, edges, pools that forward to it), by FQDN; they authenticate each
    /// other (server-to-server authentication).
    pub peers: Vec<String>,
    /// Persistent Chat compliance is on for this machine's pool.
    pub compliance: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("machine {fqdn} is not in the topology; pass --fqdn with one of: {known}")]
    UnknownMachine { fqdn: String, known: String },
}

fn default_binds(roles: &[Role]) -> Vec<Bind> {
    roles
        .iter()
        .flat_map(|r| {
            r.default_listeners().iter().map(|spec| Bind {
                listener: Listener {
                    role: *r,
                    name: spec.name,
                    protocol: spec.protocol,
                    scope: spec.scope,
                    port: spec.port,
                    span: None,
                },
                address: None,
            })
        })
        .collect()
}

impl Plan {
    /// The zero-configuration default: a Standard Edition front end with its
    /// SQLite back end in the data directory.
    pub fn standard_default(fqdn: &str, data_dir: &Path) -> Plan {
        Plan::for_roles(&[Role::FrontEnd], fqdn, data_dir)
    }

    /// Roles given on the command line without a topology: Standard Edition,
    /// default ports, the default SQLite back end for front end and chat.
    pub fn for_roles(roles: &[Role], fqdn: &str, data_dir: &Path) -> Plan {
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let mut stores = Vec::new();
        if roles.contains(&Role::FrontEnd) || roles.contains(&Role::PersistentChat) {
            stores.push(StoreTarget {
                name: "backend".into(),
                kind: StoreKind::BackEnd,
                target: Target::Sqlite(data_dir.join(DEFAULT_BACKEND_FILE)),
            });
        }
        if roles.contains(&Role::FrontEnd) {
            stores.push(StoreTarget {
                name: "files".into(),
                kind: StoreKind::File,
                target: Target::Directory(data_dir.join(DEFAULT_FILE_STORE)),
            });
        }
        let load = Load {
            homed_users: capacity::STANDARD_EDITION_USERS,
            remote_users: capacity::REMOTE_USERS_PER_SERVER,
            chat_users: capacity::STANDARD_EDITION_USERS,
        };
        Plan {
            fqdn: fqdn.to_ascii_lowercase(),
            pool: fqdn.to_ascii_lowercase(),
            edition: Edition::Standard,
            binds: default_binds(&roles),
            data_dir: data_dir.to_path_buf(),
            cert_path: confab_tls::cert_path(data_dir),
            sip_domains: Vec::new(),
            bootstrap: false,
            stores,
            load,
            // Without a topology a Standard Edition server stands alone; any
            // other role forwards to a next hop it must authenticate.
            peers: if roles.contains(&Role::FrontEnd) {
                Vec::new()
            } else {
                vec!["its next hop (not known without a topology)".to_string()]
            },
            compliance: false,
            roles,
        }
    }

    /// Sets the edge's internal and external addresses (for `--role edge`
    /// without a topology): the edge's listeners bind them.
    pub fn set_edge_addresses(&mut self, internal: Option<IpAddr>, external: Option<IpAddr>) {
        for b in &mut self.binds {
            match b.listener.scope {
                Scope::Internal if internal.is_some() => b.address = internal,
                Scope::External if external.is_some() => b.address = external,
                _ => {}
            }
        }
    }

    /// The edge's (internal, external) addresses, as its listeners bind them.
    pub fn edge_addresses(&self) -> (Option<IpAddr>, Option<IpAddr>) {
        let find = |scope: Scope| {
            self.binds
                .iter()
                .find(|b| b.listener.scope == scope)
                .and_then(|b| b.address)
        };
        (find(Scope::Internal), find(Scope::External))
    }

    /// The plan for machine `fqdn` of a topology.
    pub fn from_topology(t: &Topology, fqdn: &str, data_dir: &Path) -> Result<Plan, PlanError> {
        let m = t.machine(fqdn).ok_or_else(|| PlanError::UnknownMachine {
            fqdn: fqdn.to_string(),
            known: t
                .machines()
                .map(|m| m.machine.fqdn().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        let (pool, machine) = (m.pool, m.machine);
        let roles = machine.roles();
        let edition = pool.edition();

        let mut stores: Vec<StoreTarget> = Vec::new();
        let mut add = |name: Option<&String>| {
            let Some(name) = name else { return };
            let Some(s) = t.store(name) else { return };
            if stores.iter().any(|x| x.name == *name) {
                return;
            }
            let target = match s.location() {
                Some(StoreLocation::Sqlite(p)) => {
                    Target::Sqlite(confab_topology::model::resolve(data_dir, &p))
                }
                Some(StoreLocation::Postgres(u)) => Target::Postgres(u),
                Some(StoreLocation::Directory(d)) => {
                    Target::Directory(confab_topology::model::resolve(data_dir, &d))
                }
                None => return,
            };
            stores.push(StoreTarget {
                name: name.clone(),
                kind: s.kind(),
                target,
            });
        };
        let get = |o: &Option<confab_topology::model::Spanned<String>>| {
            o.as_ref().map(|s| s.get_ref().clone())
        };
        if roles.contains(&Role::FrontEnd) {
            add(get(&pool.backend).as_ref());
            add(get(&pool.file_store).as_ref());
            add(get(&pool.archiving_store).as_ref());
            add(get(&pool.monitoring_store).as_ref());
        }
        if roles.contains(&Role::PersistentChat) {
            if edition == Edition::Standard {
                add(get(&pool.backend).as_ref());
            }
            add(get(&pool.persistent_chat_store).as_ref());
            add(get(&pool.compliance_store).as_ref());
            add(get(&pool.file_store).as_ref());
        }

        let fe = pool.count_role(Role::FrontEnd).max(1) as u64;
        let homed_default = match edition {
            Edition::Standard => capacity::STANDARD_EDITION_USERS,
            Edition::Enterprise => capacity::USERS_PER_FRONT_END,
        };
        let remote_servers =
            (pool.count_role(Role::Edge) + pool.count_role(Role::Director)).max(1) as u64;
        let chat_servers = pool.active_chat_servers().max(1) as u64;
        let users = pool.users.as_ref().map(|u| *u.get_ref());
        let load = Load {
            homed_users: users.map(|u| u.div_ceil(fe)).unwrap_or(homed_default),
            remote_users: pool
                .remote_users
                .as_ref()
                .map(|u| u.get_ref().div_ceil(remote_servers))
                .unwrap_or(capacity::REMOTE_USERS_PER_SERVER),
            chat_users: pool
                .active_users
                .as_ref()
                .map(|u| u.get_ref().div_ceil(chat_servers))
                .unwrap_or(match edition {
                    Edition::Standard => users.unwrap_or(capacity::STANDARD_EDITION_USERS),
                    Edition::Enterprise => capacity::CHAT_USERS_PER_SERVER,
                }),
        };

        let ip = |a: &Option<confab_topology::model::Spanned<String>>| {
            a.as_ref().and_then(|s| s.get_ref().parse::<IpAddr>().ok())
        };
        let binds = machine
            .listeners()
            .into_iter()
            .map(|l| Bind {
                address: match l.scope {
                    Scope::Machine => None,
                    Scope::Internal => ip(&machine.internal_address),
                    Scope::External => ip(&machine.external_address),
                },
                listener: l,
            })
            .collect();

        // Peers: the other machines of the pool, of the pools this pool
        // forwards to (next hop, edge pool) and of the pools forwarding to it.
        let related = |p: &confab_topology::Pool| {
            std::ptr::eq(p, pool)
                || [&pool.next_hop, &pool.edge_pool]
                    .into_iter()
                    .flatten()
                    .any(|h| h.get_ref().eq_ignore_ascii_case(p.fqdn()))
                || [&p.next_hop, &p.edge_pool]
                    .into_iter()
                    .flatten()
                    .any(|h| h.get_ref().eq_ignore_ascii_case(pool.fqdn()))
        };
        let mut peers: Vec<String> = t
            .pools
            .iter()
            .filter(|p| related(p))
            .flat_map(|p| p.machines.iter())
            .map(|m| m.fqdn().to_ascii_lowercase())
            .filter(|f| !f.eq_ignore_ascii_case(machine.fqdn()))
            .collect();
        peers.sort();
        peers.dedup();
        let compliance = roles.contains(&Role::PersistentChat)
            && (pool.compliance.as_ref().is_some_and(|c| *c.get_ref())
                || (pool.compliance.is_none() && pool.compliance_store.is_some()));

        Ok(Plan {
            fqdn: machine.fqdn().to_ascii_lowercase(),
            pool: pool.fqdn().to_ascii_lowercase(),
            edition,
            roles,
            data_dir: data_dir.to_path_buf(),
            cert_path: confab_tls::cert_path(data_dir),
            sip_domains: t.sip_domains(),
            bootstrap: false,
            stores,
            binds,
            load,
            peers,
            compliance,
        })
    }

    /// Keeps only `roles` (and their listeners); stores stay.
    pub fn restrict_roles(&mut self, roles: &[Role]) {
        self.roles.retain(|r| roles.contains(r));
        self.binds.retain(|b| roles.contains(&b.listener.role));
    }

    /// Roles whose servers speak TLS and so need the certificate: all of them.
    pub fn needs_certificate(&self) -> bool {
        !self.roles.is_empty()
    }

    /// Names the certificate must cover: the pool FQDN first, then the
    /// machine's own FQDN when it differs.
    pub fn certificate_names(&self) -> Vec<String> {
        let mut v = vec![self.pool.clone()];
        if self.fqdn != self.pool {
            v.push(self.fqdn.clone());
        }
        v
    }
}
