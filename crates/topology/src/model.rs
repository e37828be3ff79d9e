//! The topology file: SIP domains, sites, stores and pools of machines with roles.
//!
//! Fields that validation may complain about keep their byte span in the source
//! ([`Spanned`]), so that every diagnostic can name a line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use toml::Spanned;

use crate::TopologyError;

/// Lync's two editions: a Standard Edition server is a pool of one machine with
/// a local SQLite back end; an Enterprise Edition pool has up to 12 front ends
/// sharing a PostgreSQL back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edition {
    Standard,
    Enterprise,
}

impl Edition {
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Standard => "standard",
            Edition::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Edition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" | "se" => Ok(Edition::Standard),
            "enterprise" | "ee" => Ok(Edition::Enterprise),
            other => Err(format!(
                "unknown edition {other:?} (standard or enterprise)"
            )),
        }
    }
}

/// A server role a machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Registrar, presence, IM, conferencing, web services; homes users.
    FrontEnd,
    /// Authenticates and routes external traffic to the home pool; homes no users.
    Director,
    /// Access, web conferencing and A/V edge in the perimeter network.
    Edge,
    /// Persistent (group) chat rooms.
    PersistentChat,
    /// Gateway to the PSTN.
    Mediation,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::FrontEnd,
        Role::Director,
        Role::Edge,
        Role::PersistentChat,
        Role::Mediation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::FrontEnd => "front-end",
            Role::Director => "director",
            Role::Edge => "edge",
            Role::PersistentChat => "persistent-chat",
            Role::Mediation => "mediation",
        }
    }

    /// Roles that relay or mix real-time media.
    pub fn handles_media(self) -> bool {
        matches!(self, Role::FrontEnd | Role::Edge | Role::Mediation)
    }

    /// The listeners a role opens, with their default ports.
    pub fn default_listeners(self) -> &'static [ListenerSpec] {
        match self {
            Role::FrontEnd => FRONT_END_LISTENERS,
            Role::Director => DIRECTOR_LISTENERS,
            Role::Edge => EDGE_LISTENERS,
            Role::PersistentChat => CHAT_LISTENERS,
            Role::Mediation => MEDIATION_LISTENERS,
        }
    }
}

const fn l(name: &'static str, protocol: Protocol, scope: Scope, port: u16) -> ListenerSpec {
    ListenerSpec {
        name,
        protocol,
        scope,
        port,
    }
}

const FRONT_END_LISTENERS: &[ListenerSpec] = &[
    l("sip", Protocol::Tcp, Scope::Machine, 5060),
    l("sip-udp", Protocol::Udp, Scope::Machine, 5060),
    l("sip-tls", Protocol::Tcp, Scope::Machine, 5061),
    l("web", Protocol::Tcp, Scope::Machine, 8080),
];
const DIRECTOR_LISTENERS: &[ListenerSpec] = &[
    l("sip-tls", Protocol::Tcp, Scope::Machine, 5061),
    l("web", Protocol::Tcp, Scope::Machine, 8080),
];
const EDGE_LISTENERS: &[ListenerSpec] = &[
    l("internal-sip-tls", Protocol::Tcp, Scope::Internal, 5061),
    l("internal-av", Protocol::Tcp, Scope::Internal, 443),
    l("access", Protocol::Tcp, Scope::External, 5061),
    l("webconf", Protocol::Tcp, Scope::External, 444),
    l("av", Protocol::Udp, Scope::External, 3478),
    l("av-tcp", Protocol::Tcp, Scope::External, 443),
];
const CHAT_LISTENERS: &[ListenerSpec] = &[l("sip-tls", Protocol::Tcp, Scope::Machine, 5041)];
const MEDIATION_LISTENERS: &[ListenerSpec] = &[
    l("sip-tls", Protocol::Tcp, Scope::Machine, 5070),
    l("gateway", Protocol::Tcp, Scope::Machine, 5067),
];

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.to_ascii_lowercase().replace('_', "-");
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == norm)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?} (one of front-end, director, edge, persistent-chat, mediation)"
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// Which addresses of the machine a listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every address of the machine.
    Machine,
    /// The edge's internal (perimeter-to-LAN) address.
    Internal,
    /// The edge's external (Internet-facing) address.
    External,
}

impl Scope {
    /// Two listeners on the same protocol and port clash when their scopes overlap.
    pub fn overlaps(self, other: Scope) -> bool {
        self == Scope::Machine || other == Scope::Machine || self == other
    }
}

/// A listener of a role with its default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: &'static str,
    pub protocol: Protocol,
    pub scope: Scope,
    pub port: u16,
}

/// A listener of one machine: the role's default port or the topology's override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub role: Role,
    pub name: &'static str,
    pub protocol: Protocol,
    pub scope: Scope,
    pub port: u16,
    /// Span of the override in the topology file, when the port was set there.
    #[serde(skip)]
    pub span: Option<Range<usize>>,
}

/// What a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// Users, contacts, presence, conferences and the central management store.
    BackEnd,
    /// Persistent Chat rooms and messages.
    PersistentChat,
    /// Persistent Chat compliance records.
    Compliance,
    /// IM and conference archiving.
    Archiving,
    /// Call detail and quality-of-experience records.
    Monitoring,
    /// Files uploaded to chat rooms and conferences (a directory).
    File,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::BackEnd => "back-end",
            StoreKind::PersistentChat => "persistent-chat",
            StoreKind::Compliance => "compliance",
            StoreKind::Archiving => "archiving",
            StoreKind::Monitoring => "monitoring",
            StoreKind::File => "file",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// State of a Persistent Chat server in its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatState {
    Active,
    Passive,
}

/// A whole topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// SIP domains the deployment serves; the first is the default.
    #[serde(default)]
    pub sip_domains: Vec<Spanned<String>>,
    /// Store holding the central management store (published topologies). By
    /// default the back end of the first pool with front ends.
    #[serde(default)]
    pub central_store: Option<Spanned<String>>,
    #[serde(default, rename = "site")]
    pub sites: Vec<Site>,
    #[serde(default, rename = "store")]
    pub stores: Vec<Store>,
    #[serde(default, rename = "pool")]
    pub pools: Vec<Pool>,
    /// PSTN gateways (Topology Builder's "PSTN gateways" of a site); publishing
    /// the topology makes a trunk of each in the voice configuration.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<Gateway>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub name: Spanned<String>,
    pub kind: Spanned<StoreKind>,
    /// SQLite database file, relative to the data directory unless absolute.
    #[serde(default)]
    pub sqlite: Option<Spanned<String>>,
    /// PostgreSQL connection URL.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Directory (file store), relative to the data directory unless absolute.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(String),
    Postgres(String),
    Directory(String),
}

impl Store {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub fn kind(&self) -> StoreKind {
        *self.kind.get_ref()
    }

    /// The single location the store names, or `None` when it names none or
    /// several (validation reports that).
    pub fn location(&self) -> Option<StoreLocation> {
        match (&self.sqlite, &self.url, &self.path) {
            (Some(p), None, None) => Some(StoreLocation::Sqlite(p.get_ref().clone())),
            (None, Some(u), None) => Some(StoreLocation::Postgres(u.get_ref().clone())),
            (None, None, Some(d)) => Some(StoreLocation::Directory(d.get_ref().clone())),
            _ => None,
        }
    }

    /// Which database the store is (`None` for a file store or a store that
    /// names no single location).
    pub fn database_id(&self) -> Option<DatabaseId> {
        match self.location()? {
            StoreLocation::Postgres(u) => postgres_database_id(&u),
            StoreLocation::Sqlite(p) => {
                Some(DatabaseId::Sqlite(p.trim_start_matches("./").to_string()))
            }
            StoreLocation::Directory(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.location(), Some(StoreLocation::Postgres(_)))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.location(), Some(StoreLocation::Sqlite(_)))
    }

    /// A sqlx connection URL for a database store, with relative SQLite paths
    /// resolved against `data_dir`; `None` for a file store.
    pub fn connection_url(&self, data_dir: &Path) -> Option<String> {
        match self.location()? {
            StoreLocation::Sqlite(p) => Some(crate::db::sqlite_url(&resolve(data_dir, &p))),
            StoreLocation::Postgres(u) => Some(u),
            StoreLocation::Directory(_) => None,
        }
    }

    /// The filesystem path of a SQLite or file store, resolved against `data_dir`.
    pub fn local_path(&self, data_dir: &Path) -> Option<std::path::PathBuf> {
        match self.location()? {
            StoreLocation::Sqlite(p) | StoreLocation::Directory(p) => Some(resolve(data_dir, &p)),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// Which database a store is, whatever its name: two stores with the same
/// identity are the same database even when their names (or the spelling of
/// their URLs) differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DatabaseId {
    /// A PostgreSQL database: server host (lower-cased; loopback addresses are
    /// `localhost`), port and database name.
    Postgres {
        host: String,
        port: u16,
        database: String,
    },
    /// A SQLite file, by its path as written (relative paths are relative to
    /// each machine's data directory).
    Sqlite(String),
}

impl DatabaseId {
    /// The database server (host and port) of a PostgreSQL database.
    pub fn server(&self) -> Option<(String, u16)> {
        match self {
            DatabaseId::Postgres { host, port, .. } => Some((host.clone(), *port)),
            DatabaseId::Sqlite(_) => None,
        }
    }
}

impl fmt::Display for DatabaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseId::Postgres {
                host,
                port,
                database,
            } => write!(f, "database {database:?} on {host}:{port}"),
            DatabaseId::Sqlite(p) => write!(f, "SQLite file {p}"),
        }
    }
}

/// Parses the database identity out of a PostgreSQL URL
/// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE?host=…&port=…&dbname=…`), with
/// libpq's defaults: host `localhost`, port 5432, database named like the user.
pub fn postgres_database_id(url: &str) -> Option<DatabaseId> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", authority),
    };
    let user = userinfo.split(':').next().unwrap_or("");
    let (mut host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h.to_string(), after.strip_prefix(':').unwrap_or(""))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    let mut port_text = port.to_string();
    let mut database = path.to_string();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("host", h)) => host = h.to_string(),
            Some(("port", p)) => {
                port_text = p.to_string();
            }
            Some(("dbname", d)) => database = d.to_string(),
            _ => {}
        }
    }
    let port = if port_text.is_empty() {
        5432
    } else {
        port_text.parse().ok()?
    };
    let mut host = host.to_ascii_lowercase();
    if host.is_empty() || host == "127.0.0.1" || host == "::1" || host.starts_with('/') {
        host = "localhost".into();
    }
    let host = host.trim_end_matches('.').to_string();
    if database.is_empty() {
        database = user.to_string();
    }
    Some(DatabaseId::Postgres {
        host,
        port,
        database,
    })
}

/// `p` if absolute, else `data_dir/p`.
pub fn resolve(data_dir: &Path, p: &str) -> std::path::PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub fqdn: Spanned<String>,
    pub site: Spanned<String>,
    /// Required for pools with front ends; other pools default to enterprise.
    #[serde(default)]
    pub edition: Option<Spanned<Edition>>,
    /// Back-end store (front-end pools).
    #[serde(default)]
    pub backend: Option<Spanned<String>>,
    #[serde(default)]
    pub persistent_chat_store: Option<Spanned<String>>,
    /// Persistent Chat compliance: records every message in `compliance_store`.
    #[serde(default)]
    pub compliance: Option<Spanned<bool>>,
    #[serde(default)]
    pub compliance_store: Option<Spanned<String>>,
    #[serde(default)]
    pub archiving_store: Option<Spanned<String>>,
    #[serde(default)]
    pub monitoring_store: Option<Spanned<String>>,
    #[serde(default)]
    pub file_store: Option<Spanned<String>>,
    /// Pool that traffic goes to next (director, edge, mediation, Persistent Chat).
    #[serde(default)]
    pub next_hop: Option<Spanned<String>>,
    /// Edge pool a front-end pool uses for external access and federation.
    #[serde(default)]
    pub edge_pool: Option<Spanned<String>>,
    /// Users homed on the pool (front ends; a director homes none).
    #[serde(default)]
    pub users: Option<Spanned<u64>>,
    /// Remote users connecting through the pool (edge, director).
    #[serde(default)]
    pub remote_users: Option<Spanned<u64>>,
    /// Concurrently active Persistent Chat users.
    #[serde(default)]
    pub active_users: Option<Spanned<u64>>,
    #[serde(default, rename = "machine")]
    pub machines: Vec<Machine>,
}

impl Pool {
    pub fn fqdn(&self) -> &str {
        self.fqdn.get_ref()
    }

    pub fn edition(&self) -> Edition {
        self.edition
            .as_ref()
            .map(|e| *e.get_ref())
            .unwrap_or(Edition::Enterprise)
    }

    /// Whether any machine of the pool runs `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.machines.iter().any(|m| m.has_role(role))
    }

    /// The union of the machines' roles, in [`Role::ALL`] order.
    pub fn roles(&self) -> Vec<Role> {
        Role::ALL
            .into_iter()
            .filter(|r| self.has_role(*r))
            .collect()
    }

    pub fn count_role(&self, role: Role) -> usize {
        self.machines.iter().filter(|m| m.has_role(role)).count()
    }

    /// Active Persistent Chat servers.
    pub fn active_chat_servers(&self) -> usize {
        self.machines
            .iter()
            .filter(|m| m.has_role(Role::PersistentChat) && m.chat_state() == ChatState::Active)
            .count()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub fqdn: Spanned<String>,
    /// IP addresses of the machine.
    #[serde(default)]
    pub addresses: Vec<Spanned<String>>,
    pub roles: Spanned<Vec<Spanned<Role>>>,
    /// Edge: the address facing the internal network.
    #[serde(default)]
    pub internal_address: Option<Spanned<String>>,
    /// Edge: the address facing the Internet.
    #[serde(default)]
    pub external_address: Option<Spanned<String>>,
    /// Persistent Chat: active (default) or passive.
    #[serde(default)]
    pub persistent_chat: Option<Spanned<ChatState>>,
    /// Port overrides: `ports.<role>.<listener> = port`.
    #[serde(default)]
    pub ports: BTreeMap<String, BTreeMap<String, Spanned<u16>>>,
}

impl Machine {
    pub fn fqdn(&self) -> &str {
        self.fqdn.get_ref()
    }

    pub fn roles(&self) -> Vec<Role> {
        let mut out: Vec<Role> = Vec::new();
        for r in self.roles.get_ref() {
            if !out.contains(r.get_ref()) {
                out.push(*r.get_ref());
            }
        }
        out.sort();
        out
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.get_ref().iter().any(|r| *r.get_ref() == role)
    }

    pub fn chat_state(&self) -> ChatState {
        self.persistent_chat
            .as_ref()
            .map(|s| *s.get_ref())
            .unwrap_or(ChatState::Active)
    }

    /// Every listener of every role, with overrides applied. Overrides naming an
    /// unknown role or listener are ignored here (validation reports them).
    pub fn listeners(&self) -> Vec<Listener> {
        let mut out = Vec::new();
        for role in self.roles() {
            let overrides = self.ports.get(role.as_str());
            for spec in role.default_listeners() {
                let o = overrides.and_then(|m| m.get(spec.name));
                out.push(Listener {
                    role,
                    name: spec.name,
                    protocol: spec.protocol,
                    scope: spec.scope,
                    port: o.map(|p| *p.get_ref()).unwrap_or(spec.port),
                    span: o.map(|p| p.span()),
                });
            }
        }
        out
    }
}

/// How the Mediation role talks SIP to a PSTN gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayTransport {
    Udp,
    Tcp,
    Tls,
}

impl GatewayTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayTransport::Udp => "udp",
            GatewayTransport::Tcp => "tcp",
            GatewayTransport::Tls => "tls",
        }
    }

    /// SIP's well-known port for the transport (RFC 3261 §19.1.2): a gateway's
    /// listening port when the topology gives none.
    pub fn default_port(self) -> u16 {
        match self {
            GatewayTransport::Udp | GatewayTransport::Tcp => 5060,
            GatewayTransport::Tls => 5061,
        }
    }
}

impl fmt::Display for GatewayTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PSTN gateway (or SIP trunk provider's border controller) and its root
/// trunk, as Topology Builder defines them: the gateway's address, listening
/// port and transport, the site it is in and the Mediation pool (or the pool
/// with collocated Mediation) that talks to it. Publishing the topology makes a
/// voice trunk of it, named [`Gateway::trunk_name`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The trunk's name [default: the gateway's FQDN, else its address].
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// The gateway's DNS name (informational: trunks are reached by address).
    #[serde(default)]
    pub fqdn: Option<Spanned<String>>,
    /// The gateway's IP address: calls go there, and inbound calls are
    /// accepted from there only.
    pub address: Spanned<String>,
    /// Its listening port [default: 5060, 5061 over TLS].
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    pub transport: Spanned<GatewayTransport>,
    /// The Mediation pool, or the pool with collocated Mediation, that talks to it.
    pub mediation_pool: Spanned<String>,
    /// The site the gateway is in [default: the Mediation pool's].
    #[serde(default)]
    pub site: Option<Spanned<String>>,
}

impl Gateway {
    /// The name of the gateway's trunk: `name`, else the FQDN, else the address
    /// (lower case).
    pub fn trunk_name(&self) -> String {
        self.name
            .as_ref()
            .or(self.fqdn.as_ref())
            .unwrap_or(&self.address)
            .get_ref()
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
    }

    pub fn transport(&self) -> GatewayTransport {
        *self.transport.get_ref()
    }

    /// The listening port, or the transport's default.
    pub fn port(&self) -> u16 {
        self.port
            .as_ref()
            .map(|p| *p.get_ref())
            .unwrap_or_else(|| self.transport().default_port())
    }

    /// The gateway's `IP:PORT`, when the address is an IP address.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip = self
            .address
            .get_ref()
            .trim()
            .parse::<std::net::IpAddr>()
            .ok()?;
        Some(std::net::SocketAddr::new(ip, self.port()))
    }

    /// The site: `site`, else the Mediation pool's (`None` when neither is known).
    pub fn site<'a>(&'a self, t: &'a Topology) -> Option<&'a str> {
        match &self.site {
            Some(s) => Some(s.get_ref().as_str()),
            None => t
                .pool(self.mediation_pool.get_ref())
                .map(|p| p.site.get_ref().as_str()),
        }
    }
}

/// A machine together with the pool it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct MachineRef<'a> {
    pub pool: &'a Pool,
    pub machine: &'a Machine,
}

impl<'a> MachineRef<'a> {
    pub fn roles(&self) -> Vec<Role> {
        self.machine.roles()
    }
}

impl Topology {
    /// Parses a topology file. Syntax and type errors carry their line.
    pub fn parse(source: &str) -> Result<Topology, TopologyError> {
        toml::from_str(source).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_col(source, s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            TopologyError::Parse {
                message: e.message().trim().to_string(),
                line,
                column,
            }
        })
    }

    pub fn store(&self, name: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.name.get_ref() == name)
    }

    pub fn pool(&self, fqdn: &str) -> Option<&Pool> {
        self.pools
            .iter()
            .find(|p| p.fqdn.get_ref().eq_ignore_ascii_case(fqdn))
    }

    pub fn site(&self, name: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.name.get_ref() == name)
    }

    /// Every machine with its pool, in file order.
    pub fn machines(&self) -> impl Iterator<Item = MachineRef<'_>> {
        self.pools.iter().flat_map(|pool| {
            pool.machines
                .iter()
                .map(move |machine| MachineRef { pool, machine })
        })
    }

    /// The machine with this FQDN (case-insensitive).
    pub fn machine(&self, fqdn: &str) -> Option<MachineRef<'_>> {
        let fqdn = fqdn.trim_end_matches('.');
        self.machines()
            .find(|m| m.machine.fqdn().eq_ignore_ascii_case(fqdn))
    }

    /// The first pool with front ends: it holds the central management store
    /// unless `central_store` says otherwise.
    pub fn first_front_end_pool(&self) -> Option<&Pool> {
        self.pools.iter().find(|p| p.has_role(Role::FrontEnd))
    }

    /// The edition of the deployment: that of the first front-end pool.
    pub fn edition(&self) -> Option<Edition> {
        self.first_front_end_pool().map(Pool::edition)
    }

    /// The store that holds the central management store.
    pub fn central_store(&self) -> Option<&Store> {
        match &self.central_store {
            Some(name) => self.store(name.get_ref()),
            None => self
                .first_front_end_pool()
                .and_then(|p| p.backend.as_ref())
                .and_then(|b| self.store(b.get_ref())),
        }
    }

    /// The back-end store of a pool, following `backend`.
    pub fn backend_of(&self, pool: &Pool) -> Option<&Store> {
        pool.backend.as_ref().and_then(|b| self.store(b.get_ref()))
    }

    /// The pool a machine's non-front-end pool relies on for its back end: the
    /// pool itself when it has one, else its next hop's.
    pub fn effective_backend(&self, pool: &Pool) -> Option<&Store> {
        if let Some(s) = self.backend_of(pool) {
            return Some(s);
        }
        let hop = pool.next_hop.as_ref()?;
        let next = self.pool(hop.get_ref())?;
        if std::ptr::eq(next, pool) {
            return None;
        }
        self.backend_of(next)
    }

    /// The front-end pool whose voice configuration holds the trunk of a
    /// gateway: its Mediation pool when that pool has front ends (collocated
    /// Mediation), else the pool's next hop.
    pub fn voice_pool_of(&self, gateway: &Gateway) -> Option<&Pool> {
        let pool = self.pool(gateway.mediation_pool.get_ref())?;
        if pool.has_role(Role::FrontEnd) {
            return Some(pool);
        }
        let hop = self.pool(pool.next_hop.as_ref()?.get_ref())?;
        hop.has_role(Role::FrontEnd).then_some(hop)
    }

    /// The site a pool is in (`None` for an unknown pool).
    pub fn site_of_pool(&self, fqdn: &str) -> Option<&str> {
        self.pool(fqdn).map(|p| p.site.get_ref().as_str())
    }

    pub fn sip_domains(&self) -> Vec<String> {
        self.sip_domains
            .iter()
            .map(|d| d.get_ref().clone())
            .collect()
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let col = match before.rfind('\n') {
        Some(i) => before.len() - i,
        None => before.len() + 1,
    };
    (line, col)
}
