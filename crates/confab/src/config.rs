//! Server configuration: built-in defaults, overridden by a TOML file (`--config`),
//! overridden by command-line flags.
//!
//! The file uses the field names of [`ServeConfig`] and its sections:
//!
//! ```toml
//! domain = "contoso.com"
//! sip = "0.0.0.0:5060"
//!
//! [registrar]
//! min_expires = 30
//! ```
//!
//! Unknown keys and values of the wrong type are refused with `FILE:LINE:COLUMN` and the
//! key's full name. Relative paths are taken from the current directory.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The data directory used when neither the file nor `--data` names one.
pub const DEFAULT_DATA_DIR: &str = "./confab-data";

/// Name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "confab.db";

/// Format of the log lines written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything `confab serve` needs to run, after defaults, file and flags are merged.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Where the SQLite database (and later other state) lives.
    pub data_dir: PathBuf,
    /// The SIP domain served (and the digest realm).
    pub domain: String,
    /// SIP over UDP and TCP.
    pub sip: SocketAddr,
    /// SIP over TLS.
    pub tls: SocketAddr,
    /// HTTP (web services, WebSocket).
    pub http: SocketAddr,
    /// PEM certificate chain for TLS; a self-signed one is made when absent.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Host or address put in Via, Record-Route and Contact; default: the `sip`
    /// address, or 127.0.0.1 when that is a wildcard.
    pub advertise: Option<String>,
    /// Database URL (`postgres://...` for a pool); `None` means the SQLite file
    /// `<data_dir>/confab.db`. See [`ServeConfig::database_url`].
    pub database: Option<String>,
    /// `tracing` filter directives, e.g. `info` or `info,confab_sip=debug`.
    pub log_level: String,
    pub log_format: LogFormat,
    pub registrar: RegistrarConfig,
    pub presence: PresenceConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub chat: ChatServeConfig,
    pub pool: PoolServeConfig,
    pub director: DirectorServeConfig,
    pub web: WebConfig,
    pub mediation: MediationServeConfig,
    pub monitoring: MonitoringConfig,
}

/// Monitoring (`[monitoring]`, Lync's Monitoring role): records of calls between
/// users and of IM sessions, written in batches off the signalling path
/// (crate::monitoring). Calls through the Mediation role are recorded by it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Record internal calls and IM sessions.
    pub enabled: bool,
    /// The monitoring database (default: the server's own); set from the
    /// topology's pool `monitoring_store`.
    pub database: Option<String>,
    /// Pager-mode messages between two users further apart than this start a new
    /// IM session.
    pub im_idle_secs: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            enabled: true,
            database: None,
            im_idle_secs: 300,
        }
    }
}

impl fmt::Debug for MonitoringConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoringConfig")
            .field("enabled", &self.enabled)
            // A database URL may carry a password.
            .field(
                "database",
                &self.database.as_deref().map(confab_store::redact_url),
            )
            .field("im_idle_secs", &self.im_idle_secs)
            .finish()
    }
}

/// The Mediation role collocated with this front end (`[mediation]`): the
/// back-to-back user agent between the pool and the trunks' PSTN gateways
/// (crates/mediation).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediationServeConfig {
    /// Run the Mediation role here; calls to the PSTN go through it. Off: the
    /// front end proxies calls straight to the gateways.
    pub enabled: bool,
    /// Its SIP address (UDP and TCP on the same port), where gateways send
    /// calls; default: the `sip` address's IP and any free port (logged at
    /// start; set it for gateways).
    pub sip: Option<SocketAddr>,
    /// Its SIP-over-TLS address, for gateways of TLS trunks; default: the IP of
    /// `sip` and any free port (logged). The server's certificate is used.
    pub tls: Option<SocketAddr>,
    /// PEM file of the certificate authorities that TLS gateways' certificates
    /// must chain to (the certificate must name the gateway's IP address);
    /// default: Mozilla's root programme.
    pub gateway_ca: Option<PathBuf>,
    /// Trunks whose media goes through the RTP relay (media bypass otherwise).
    pub relay_trunks: Vec<String>,
    /// A gateway silent for this long is given up for the route's next trunk.
    pub failover_timeout_ms: u64,
    /// Relayed calls at once at most.
    pub max_relays: usize,
    /// Run the Mediation role alone (no registrar): set by the topology on a
    /// machine whose only role is mediation.
    pub only: bool,
    /// With `only`: the front ends of the pool it serves (the next hop), whose
    /// calls to the PSTN it accepts; calls from gateways go to the first.
    pub pool: Vec<SocketAddr>,
    /// On a front end: the stand-alone Mediation server its calls to the PSTN
    /// go to instead of a collocated one (set by the topology from a mediation
    /// pool whose next hop is this pool).
    pub remote: Option<SocketAddr>,
}

impl Default for MediationServeConfig {
    fn default() -> Self {
        MediationServeConfig {
            enabled: true,
            sip: None,
            tls: None,
            gateway_ca: None,
            relay_trunks: Vec::new(),
            failover_timeout_ms: 4_000,
            max_relays: 1_000,
            only: false,
            pool: Vec::new(),
            remote: None,
        }
    }
}

/// This machine as a Director (`[director]`): set by the topology on a machine
/// whose roles include `director`, or by hand. It joins the topology's back end
/// as a server of its own pool (`[pool]` name, member, heartbeat, lease) and homes
/// no users: it authenticates sign-ins and sends each user to their home pool.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorServeConfig {
    /// Run as a Director.
    pub enabled: bool,
    /// User-Agent markers of clients whose sign-in is redirected (`301` to their
    /// home pool's front end); other clients' sign-ins are proxied. Compared
    /// case-insensitively as substrings.
    pub redirect_agents: Vec<String>,
}

impl Default for DirectorServeConfig {
    fn default() -> Self {
        DirectorServeConfig {
            enabled: false,
            redirect_agents: confab_director::policy::DEFAULT_REDIRECT_AGENTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// This front end as a member of an Enterprise pool (`[pool]`): set by the topology
/// on an Enterprise front end, or by hand. Needs a PostgreSQL `database`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolServeConfig {
    /// Act as one front end of a pool (users homed on front ends).
    pub enabled: bool,
    /// The pool's name (default: the topology's pool FQDN, else the SIP domain).
    pub name: Option<String>,
    /// This front end's name (default: the topology's machine FQDN, else the
    /// advertised `host:port`).
    pub member: Option<String>,
    /// How often this front end writes its heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// A front end whose heartbeat is older than this is dead, in milliseconds.
    pub lease_ms: u64,
}

impl Default for PoolServeConfig {
    fn default() -> Self {
        PoolServeConfig {
            enabled: false,
            name: None,
            member: None,
            heartbeat_ms: 2_000,
            lease_ms: 10_000,
        }
    }
}

/// The web port (`[web]`): HTTPS, `/metrics`, Control Panel sessions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// HTTPS with the server's TLS certificate (default); `false`: plain HTTP,
    /// only behind a reverse proxy that terminates TLS.
    pub tls: bool,
    /// `Strict-Transport-Security` max-age on HTTPS answers; 0 sends none.
    pub hsts_max_age_secs: u64,
    /// Addresses and networks (`"10.0.0.0/8"`, `"127.0.0.1"`) that may read
    /// `/metrics`; empty: every address.
    pub metrics_allow: Vec<String>,
    /// A Control Panel session ends after this long without a request.
    pub session_idle_secs: u64,
    /// A Control Panel session ends this long after sign-in, used or not.
    pub session_max_secs: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            tls: true,
            hsts_max_age_secs: 31_536_000,
            metrics_allow: Vec::new(),
            session_idle_secs: 1800,
            session_max_secs: 28_800,
        }
    }
}

/// A Persistent Chat pool other than the default one, as a front end routes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPoolRoute {
    /// The pool's FQDN (its URIs: `crate::chat_pool::pool_uris`).
    pub pool: String,
    /// Its first active server (where the URIs go without a PostgreSQL feed).
    pub addr: SocketAddr,
    /// Every server of the pool (trusted peers).
    pub servers: Vec<SocketAddr>,
}

/// The Persistent Chat service (`[chat]`), run by `confab serve` beside the front end.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatServeConfig {
    /// Run the chat service (default true: collocated on Standard Edition).
    pub enabled: bool,
    /// Its SIP listener (UDP and TCP); default: loopback, an ephemeral port.
    pub sip: Option<SocketAddr>,
    /// Chat-server URI returned by `rpl:requri` (default `sip:chatsrv@DOMAIN`).
    pub server_uri: Option<String>,
    /// Session-Expires of the chat dialogs, in seconds.
    pub session_expires: u32,
    /// The Persistent Chat store (default: the front end's database). Set from the
    /// topology's `persistent-chat` store on machines with that role.
    pub database: Option<String>,
    /// The chat service runs on another machine, listening (TCP) here: the front
    /// end routes the chat URIs to it instead of running one in-process. Set from
    /// the topology (a persistent-chat pool whose next hop is this front end's pool).
    pub remote: Option<SocketAddr>,
    /// This machine runs only the chat service (its topology roles include
    /// persistent-chat but not front-end). From the topology only.
    #[serde(skip)]
    pub only: bool,
    /// Record joins, leaves, posts, history reads and administrators' changes in the
    /// compliance database (Lync's compliance service; default off). Set from the
    /// topology's pool `compliance` on machines with the persistent-chat role.
    pub compliance: bool,
    /// The compliance database (default: the SQLite file `DATA/compliance.db`); set
    /// from the topology's `compliance_store`.
    pub compliance_database: Option<String>,
    /// Seconds between scheduled exports (Lync's RunInterval: 900, 60..=2592000).
    pub compliance_run_interval: u64,
    /// Directory of the scheduled exports (default `DATA/compliance-export`).
    pub compliance_output: Option<PathBuf>,
    /// `xml` (Lync's compliance XML) or `csv`.
    pub compliance_format: String,
    /// One file per room (Lync's OneChatRoomPerOutputFile).
    pub compliance_per_room: bool,
    /// Chat pools: how often a chat server writes its heartbeat (milliseconds).
    pub heartbeat_ms: u64,
    /// Chat pools: a chat server whose heartbeat is older than this is dead, and
    /// front ends stop sending users to it (milliseconds).
    pub lease_ms: u64,
    /// The Persistent Chat pool (its FQDN): on a chat machine, its own pool; on a
    /// front end, the pool whose live active servers get the chat URIs. From the
    /// topology only.
    #[serde(skip)]
    pub pool: Option<String>,
    /// This chat server's name in its pool (its FQDN). From the topology only.
    #[serde(skip)]
    pub server_name: Option<String>,
    /// This chat server is passive (standby) in the topology. From the topology only.
    #[serde(skip)]
    pub passive: bool,
    /// On a front end: every chat server of the pool (trusted peers). From the
    /// topology only.
    #[serde(skip)]
    pub pool_servers: Vec<SocketAddr>,
    /// On a chat machine: its pool is the topology's default chat pool (it serves
    /// the rooms and categories with no pool). From the topology only.
    #[serde(skip)]
    pub default_pool: bool,
    /// On a front end: the other Persistent Chat pools behind it (several chat pools
    /// in one topology), each with its own URIs. From the topology only.
    #[serde(skip)]
    pub other_pools: Vec<ChatPoolRoute>,
    /// The file store of file posts (a directory; default `DATA/files`); set from
    /// the topology's pool `file_store` (a `kind = "file"` store).
    pub file_store: Option<PathBuf>,
}

impl ServeConfig {
    /// The compliance database URL: `[chat] compliance_database`, else the SQLite
    /// file `DATA/compliance.db`.
    pub fn compliance_database_url(&self) -> Result<String, ConfigError> {
        match &self.chat.compliance_database {
            Some(url) => Ok(url.clone()),
            None => confab_store::sqlite_url(&self.data_dir.join("compliance.db"))
                .map_err(|e| ConfigError(format!("data directory: {e}"))),
        }
    }

    /// Where file posts are kept: `[chat] file_store`, else `DATA/files`.
    pub fn chat_file_store(&self) -> PathBuf {
        self.chat
            .file_store
            .clone()
            .unwrap_or_else(|| self.data_dir.join("files"))
    }

    /// Where scheduled compliance exports go.
    pub fn compliance_output(&self) -> PathBuf {
        self.chat
            .compliance_output
            .clone()
            .unwrap_or_else(|| self.data_dir.join("compliance-export"))
    }
}

impl Default for ChatServeConfig {
    fn default() -> Self {
        ChatServeConfig {
            enabled: true,
            sip: None,
            server_uri: None,
            session_expires: 300,
            database: None,
            remote: None,
            only: false,
            compliance: false,
            compliance_database: None,
            compliance_run_interval: 900,
            compliance_output: None,
            compliance_format: "xml".to_owned(),
            compliance_per_room: false,
            heartbeat_ms: 1000,
            lease_ms: 3000,
            pool: None,
            server_name: None,
            passive: false,
            pool_servers: Vec::new(),
            default_pool: true,
            other_pools: Vec::new(),
            file_store: None,
        }
    }
}

impl fmt::Debug for ChatServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatServeConfig")
            .field("enabled", &self.enabled)
            .field("sip", &self.sip)
            .field("server_uri", &self.server_uri)
            .field("session_expires", &self.session_expires)
            .field("remote", &self.remote)
            .field("only", &self.only)
            .field(
                "database",
                &self.database.as_deref().map(confab_store::redact_url),
            )
            .field("compliance", &self.compliance)
            .field(
                "compliance_database",
                &self
                    .compliance_database
                    .as_deref()
                    .map(confab_store::redact_url),
            )
            .field("compliance_run_interval", &self.compliance_run_interval)
            .field("compliance_output", &self.compliance_output)
            .field("compliance_format", &self.compliance_format)
            .field("compliance_per_room", &self.compliance_per_room)
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("lease_ms", &self.lease_ms)
            .field("pool", &self.pool)
            .field("server_name", &self.server_name)
            .field("passive", &self.passive)
            .field("pool_servers", &self.pool_servers)
            .field("default_pool", &self.default_pool)
            .field("other_pools", &self.other_pools)
            .field("file_store", &self.file_store)
            .finish()
    }
}

/// REGISTER expiry bounds, in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Shorter requested expiries get `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer requested expiries are cut to this.
    pub max_expires: u32,
    /// Used when the request names none.
    pub default_expires: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
        }
    }
}

/// Presence and subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Users of the same domain may see each other's presence without being contacts.
    pub same_domain_visible: bool,
    /// Longest SUBSCRIBE expiry granted, in seconds.
    pub max_subscription_expires: u32,
    /// Most live PUBLISH documents (RFC 3903 publications) one user may hold;
    /// a PUBLISH without `SIP-If-Match` beyond it is refused (403). Clients
    /// refresh and modify their publication, so they need one or two each.
    pub max_publications_per_user: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            same_domain_visible: true,
            max_subscription_expires: 3600,
            max_publications_per_user: 16,
        }
    }
}

/// Resource limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest SIP message accepted, headers and body.
    pub max_message_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Most simultaneous connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Most simultaneous connections in all (lowered at start-up to the open-file
    /// limit minus `reserved_descriptors`).
    pub max_connections: usize,
    /// File descriptors kept free of SIP connections (database, HTTP, TLS files,
    /// accepting and refusing further connections).
    pub reserved_descriptors: usize,
    /// A connection that is not a registered flow is closed after this many
    /// seconds without a complete SIP message.
    pub idle_timeout_secs: u64,
    /// A SIP message, TLS handshake or HTTP request must be complete this many
    /// seconds after its first byte.
    pub header_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_bytes: 65535,
            max_headers: 256,
            max_connections_per_ip: 128,
            max_connections: 100000,
            reserved_descriptors: 256,
            idle_timeout_secs: 120,
            header_timeout_secs: 10,
        }
    }
}

/// Authentication.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// How long a digest nonce stays valid.
    pub nonce_lifetime_secs: u64,
    /// Failed authentications from one source address allowed per window.
    pub max_failures_per_source: u32,
    /// Failed authentications for one user allowed per window.
    pub max_failures_per_user: u32,
    pub failure_window_secs: u64,
    /// Accept requests without authentication (testing only).
    pub allow_unauthenticated: bool,
    /// Also offer SHA-256 digest challenges (RFC 7616); MD5 is always offered.
    pub digest_sha256: bool,
    /// The server FQDN Lync clients see as NTLM `targetname` (MS-SIPAE); default:
    /// the advertised host.
    pub server_fqdn: Option<String>,
    /// Accept RFC 2069 digest answers (no `qop`), which can be replayed.
    pub digest_allow_rfc2069: bool,
    /// Peers trusted to send from other domains without authentication
    /// (`"ip:port"`, or `"ip"` for every port), e.g. an application server.
    pub trusted_peers: Vec<String>,
}

impl AuthConfig {
    /// `trusted_peers` as addresses (port 0: every port); `None` when one is not
    /// an address (refused by validation).
    pub fn trusted_peer_addrs(&self) -> Option<Vec<SocketAddr>> {
        self.trusted_peers
            .iter()
            .map(|p| {
                p.parse::<SocketAddr>().ok().or_else(|| {
                    p.parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, 0))
                })
            })
            .collect()
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            nonce_lifetime_secs: 300,
            max_failures_per_source: 20,
            max_failures_per_user: 10,
            failure_window_secs: 60,
            allow_unauthenticated: false,
            digest_sha256: false,
            server_fqdn: None,
            digest_allow_rfc2069: false,
            trusted_peers: Vec::new(),
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            domain: "example.com".to_owned(),
            sip: addr("0.0.0.0:5060"),
            tls: addr("0.0.0.0:5061"),
            http: addr("0.0.0.0:8080"),
            tls_cert: None,
            tls_key: None,
            advertise: None,
            database: None,
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            registrar: RegistrarConfig::default(),
            presence: PresenceConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            chat: ChatServeConfig::default(),
            pool: PoolServeConfig::default(),
            director: DirectorServeConfig::default(),
            web: WebConfig::default(),
            mediation: MediationServeConfig::default(),
            monitoring: MonitoringConfig::default(),
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data_dir", &self.data_dir)
            .field("domain", &self.domain)
            .field("sip", &self.sip)
            .field("tls", &self.tls)
            .field("http", &self.http)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("advertise", &self.advertise)
            // A database URL may carry a password.
            .field(
                "database",
                &self.database.as_deref().map(confab_store::redact_url),
            )
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("registrar", &self.registrar)
            .field("presence", &self.presence)
            .field("limits", &self.limits)
            .field("auth", &self.auth)
            .field("chat", &self.chat)
            .field("pool", &self.pool)
            .field("director", &self.director)
            .field("web", &self.web)
            .field("mediation", &self.mediation)
            .field("monitoring", &self.monitoring)
            .finish()
    }
}

impl ServeConfig {
    /// The SQLite file used when no `database` URL is configured.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(SQLITE_FILE)
    }

    /// The database to open: `database` if set, else the `sqlite://` URL of
    /// `<data_dir>/confab.db`.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        match &self.database {
            Some(url) => Ok(url.clone()),
            None => confab_store::sqlite_url(&self.sqlite_path())
                .map_err(|e| ConfigError(format!("data directory: {e}"))),
        }
    }
}

/// Values given on the command line; each one set overrides the file and the default.
#[derive(Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub domain: Option<String>,
    pub sip: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub advertise: Option<String>,
    pub database: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    /// `--web-tls`: `[web] tls`.
    pub web_tls: Option<bool>,
}

/// A configuration that cannot be used; the message says where and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The configuration file's text and where each key is.
struct Source {
    name: String,
    text: String,
}

impl Source {
    /// `FILE:LINE:COLUMN` of byte offset `pos`.
    fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = self.text.get(..pos).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("{}:{line}:{col}", self.name)
    }
}

/// Loads the configuration: defaults, then the TOML file `file` (if any), then
/// `overrides`; then checks it.
pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<ServeConfig, ConfigError> {
    let (mut cfg, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let source = Source {
                name: path.display().to_string(),
                text,
            };
            (parse(&source)?, Some(source))
        }
        None => (ServeConfig::default(), None),
    };

    let o = overrides;
    let mut from_flag: Vec<&'static str> = Vec::new();
    macro_rules! apply {
        ($field:ident) => {
            if let Some(v) = o.$field {
                cfg.$field = v;
                from_flag.push(stringify!($field));
            }
        };
        (opt $field:ident) => {
            if let Some(v) = o.$field {
                cfg.$field = Some(v);
                from_flag.push(stringify!($field));
            }
        };
    }
    apply!(data_dir);
    apply!(domain);
    apply!(sip);
    apply!(tls);
    apply!(http);
    apply!(opt tls_cert);
    apply!(opt tls_key);
    apply!(opt advertise);
    apply!(opt database);
    apply!(log_level);
    apply!(log_format);
    if let Some(v) = o.web_tls {
        cfg.web.tls = v;
        from_flag.push("web_tls");
    }

    if let Err(problem) = validate(&mut cfg) {
        let key = problem.key;
        let top = key.split('.').next().unwrap_or(key);
        let place = if from_flag.contains(&top) {
            format!("--{}", flag_name(top))
        } else if let Some(loc) = source.as_ref().and_then(|s| locate_key(s, key)) {
            format!("{loc}: `{key}`")
        } else {
            format!("`{key}`")
        };
        return Err(ConfigError(format!(
            "invalid configuration: {place}: {}",
            problem.message
        )));
    }
    Ok(cfg)
}

fn flag_name(field: &str) -> String {
    match field {
        "data_dir" => "data".to_owned(),
        other => other.replace('_', "-"),
    }
}

/// Parses the file over the defaults, refusing unknown keys and bad values with their
/// location and full key name.
fn parse(source: &Source) -> Result<ServeConfig, ConfigError> {
    let table = DeTable::parse(&source.text).map_err(|e| {
        let at = e
            .span()
            .map_or_else(|| source.name.clone(), |s| source.location(s.start));
        ConfigError(format!("{at}: invalid TOML: {}", e.message()))
    })?;
    toml::from_str::<ServeConfig>(&source.text).map_err(|e| {
        let Some(span) = e.span() else {
            return ConfigError(format!("{}: {}", source.name, e.message()));
        };
        let key = key_at(table.get_ref(), &span, &mut Vec::new())
            .map(|k| format!(" `{}`:", k.join(".")))
            .unwrap_or_default();
        ConfigError(format!(
            "{}:{key} {}",
            source.location(span.start),
            e.message()
        ))
    })
}

fn overlaps(span: &Range<usize>, target: &Range<usize>) -> bool {
    if target.is_empty() {
        span.start <= target.start && target.start <= span.end
    } else {
        span.start < target.end && target.start < span.end
    }
}

/// The full name of the innermost key whose key or value covers `target`.
fn key_at(
    table: &DeTable<'_>,
    target: &Range<usize>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for (k, v) in table.iter() {
        path.push(k.get_ref().to_string());
        let inner = match v.get_ref() {
            DeValue::Table(t) => key_at(t, target, path),
            DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                DeValue::Table(t) => key_at(t, target, path),
                _ => None,
            }),
            _ => None,
        };
        if inner.is_some() {
            return inner;
        }
        if overlaps(&k.span(), target) || overlaps(&v.span(), target) {
            return Some(path.clone());
        }
        path.pop();
    }
    None
}

/// `FILE:LINE:COLUMN` of the dotted key `key` in the file, if the file sets it.
fn locate_key(source: &Source, key: &str) -> Option<String> {
    let table = DeTable::parse(&source.text).ok()?;
    let mut current: &DeTable<'_> = table.get_ref();
    let mut found: Option<&Spanned<std::borrow::Cow<'_, str>>> = None;
    for part in key.split('.') {
        let (k, v) = current.get_key_value(part)?;
        found = Some(k);
        if let DeValue::Table(t) = v.get_ref() {
            current = t;
        }
    }
    found.map(|k| source.location(k.span().start))
}

struct Problem {
    key: &'static str,
    message: String,
}

fn problem(key: &'static str, message: impl Into<String>) -> Result<(), Problem> {
    Err(Problem {
        key,
        message: message.into(),
    })
}

/// Checks values that parse but make no sense, and normalizes the domain to lower case.
fn validate(cfg: &mut ServeConfig) -> Result<(), Problem> {
    cfg.domain = cfg.domain.trim().to_ascii_lowercase();
    if cfg.domain.is_empty() {
        return problem("domain", "the domain must not be empty");
    }
    if !confab_store::is_valid_host_name(&cfg.domain) {
        return problem(
            "domain",
            format!(
                "{:?} is not a valid host name (letters, digits, '-' and '.', e.g. contoso.com)",
                cfg.domain
            ),
        );
    }
    if cfg.data_dir.as_os_str().is_empty() {
        return problem("data_dir", "the data directory must not be empty");
    }
    if let Some(fqdn) = &cfg.auth.server_fqdn
        && !confab_store::is_valid_host_name(fqdn)
    {
        return problem(
            "auth.server_fqdn",
            format!("{fqdn:?} is not a valid host name (e.g. fe01.contoso.com)"),
        );
    }
    if let Some(url) = &cfg.database
        && confab_store::Backend::from_url(url).is_err()
    {
        return problem(
            "database",
            "expected a sqlite://PATH or postgres://USER:PASSWORD@HOST/DB URL",
        );
    }
    if !(60..=2_592_000).contains(&cfg.chat.compliance_run_interval) {
        return problem(
            "chat.compliance_run_interval",
            "must be between 60 seconds and 30 days (2592000)",
        );
    }
    if confab_compliance::Format::parse(&cfg.chat.compliance_format).is_none() {
        return problem("chat.compliance_format", "expected xml or csv");
    }
    if let Some(url) = &cfg.chat.compliance_database
        && confab_store::Backend::from_url(url).is_err()
    {
        return problem(
            "chat.compliance_database",
            "expected a sqlite://PATH or postgres://USER:PASSWORD@HOST/DB URL",
        );
    }
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(_), None) => return problem("tls_cert", "tls_cert is set but tls_key is not"),
        (None, Some(_)) => return problem("tls_key", "tls_key is set but tls_cert is not"),
        _ => {}
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cfg.log_level) {
        return problem(
            "log_level",
            format!("invalid log filter {:?}: {e}", cfg.log_level),
        );
    }

    let r = &cfg.registrar;
    if r.min_expires == 0 {
        return problem("registrar.min_expires", "must be at least 1");
    }
    if r.min_expires > r.default_expires {
        return problem(
            "registrar.min_expires",
            format!(
                "min_expires ({}) must not exceed default_expires ({})",
                r.min_expires, r.default_expires
            ),
        );
    }
    if r.default_expires > r.max_expires {
        return problem(
            "registrar.default_expires",
            format!(
                "default_expires ({}) must not exceed max_expires ({})",
                r.default_expires, r.max_expires
            ),
        );
    }
    if cfg.presence.max_subscription_expires == 0 {
        return problem("presence.max_subscription_expires", "must be at least 1");
    }
    if cfg.presence.max_publications_per_user == 0 {
        return problem("presence.max_publications_per_user", "must be at least 1");
    }

    let p = &cfg.pool;
    if p.heartbeat_ms < 100 {
        return problem("pool.heartbeat_ms", "must be at least 100");
    }
    if p.lease_ms < 2 * p.heartbeat_ms {
        return problem(
            "pool.lease_ms",
            format!(
                "lease_ms ({}) must be at least twice heartbeat_ms ({})",
                p.lease_ms, p.heartbeat_ms
            ),
        );
    }

    let l = &cfg.limits;
    if l.max_message_bytes < 1024 {
        return problem("limits.max_message_bytes", "must be at least 1024");
    }
    if l.max_headers == 0 {
        return problem("limits.max_headers", "must be at least 1");
    }
    if l.max_connections == 0 {
        return problem("limits.max_connections", "must be at least 1");
    }
    if l.max_connections_per_ip == 0 {
        return problem("limits.max_connections_per_ip", "must be at least 1");
    }
    if l.idle_timeout_secs == 0 {
        return problem("limits.idle_timeout_secs", "must be at least 1");
    }
    if l.header_timeout_secs == 0 {
        return problem("limits.header_timeout_secs", "must be at least 1");
    }

    let a = &cfg.auth;
    if a.nonce_lifetime_secs == 0 {
        return problem("auth.nonce_lifetime_secs", "must be at least 1");
    }
    if a.failure_window_secs == 0 {
        return problem("auth.failure_window_secs", "must be at least 1");
    }
    if a.max_failures_per_source == 0 {
        return problem("auth.max_failures_per_source", "must be at least 1");
    }
    if a.max_failures_per_user == 0 {
        return problem("auth.max_failures_per_user", "must be at least 1");
    }
    if let Err(e) = confab_web::access::parse_list(&cfg.web.metrics_allow) {
        return problem("web.metrics_allow", e.to_string());
    }
    let w = &cfg.web;
    if w.session_idle_secs < 60 {
        return problem("web.session_idle_secs", "must be at least 60");
    }
    if w.session_max_secs < w.session_idle_secs {
        return problem(
            "web.session_max_secs",
            format!(
                "session_max_secs ({}) must not be shorter than session_idle_secs ({})",
                w.session_max_secs, w.session_idle_secs
            ),
        );
    }
    if a.trusted_peer_addrs().is_none() {
        return problem(
            "auth.trusted_peers",
            "each entry must be an IP address or \"ip:port\"",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_text(text: &str) -> Result<ServeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "confab.toml", text);
        load(Some(&path), Overrides::default())
    }

    #[test]
    fn defaults() {
        let cfg = load(None, Overrides::default()).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("./confab-data"));
        assert_eq!(cfg.domain, "example.com");
        assert_eq!(cfg.sip.to_string(), "0.0.0.0:5060");
        assert_eq!(cfg.tls.to_string(), "0.0.0.0:5061");
        assert_eq!(cfg.http.to_string(), "0.0.0.0:8080");
        assert_eq!(cfg.log_level, "info");
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(
            cfg.registrar,
            RegistrarConfig {
                min_expires: 60,
                max_expires: 7200,
                default_expires: 3600
            }
        );
        assert!(cfg.presence.same_domain_visible);
        assert_eq!(cfg.presence.max_subscription_expires, 3600);
        assert_eq!(cfg.limits.max_message_bytes, 65535);
        assert_eq!(cfg.limits.max_headers, 256);
        assert_eq!(cfg.limits.max_connections_per_ip, 128);
        assert_eq!(cfg.limits.max_connections, 100000);
        assert_eq!(cfg.limits.reserved_descriptors, 256);
        assert_eq!(cfg.limits.idle_timeout_secs, 120);
        assert_eq!(cfg.limits.header_timeout_secs, 10);
        assert_eq!(cfg.auth.nonce_lifetime_secs, 300);
        assert_eq!(cfg.auth.max_failures_per_source, 20);
        assert_eq!(cfg.auth.max_failures_per_user, 10);
        assert_eq!(cfg.auth.failure_window_secs, 60);
        assert!(!cfg.auth.allow_unauthenticated);
        assert!(cfg.database.is_none());
        let url = cfg.database_url().unwrap();
        assert!(
            url.starts_with("sqlite:///") && url.ends_with("/confab-data/confab.db?mode=rwc"),
            "{url}"
        );
    }

    #[test]
    fn pool_section() {
        let cfg = load_text(
            "[pool]\nenabled = true\nname = \"pool01.contoso.com\"\nmember = \"fe01.contoso.com\"\n",
        )
        .unwrap();
        assert!(cfg.pool.enabled);
        assert_eq!(cfg.pool.name.as_deref(), Some("pool01.contoso.com"));
        assert_eq!((cfg.pool.heartbeat_ms, cfg.pool.lease_ms), (2_000, 10_000));
        let err = load_text("[pool]\nheartbeat_ms = 1000\nlease_ms = 1500\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pool.lease_ms") && err.contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn server_fqdn_is_checked_with_its_line() {
        let cfg = load_text("[auth]\nserver_fqdn = \"fe01.example.com\"\n").unwrap();
        assert_eq!(cfg.auth.server_fqdn.as_deref(), Some("fe01.example.com"));
        let err = load_text("[auth]\n\nserver_fqdn = \"not a host\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3:") && err.contains("auth.server_fqdn"),
            "{err}"
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "confab.toml",
            r#"
domain = "Contoso.COM"
sip = "127.0.0.1:15060"
http = "127.0.0.1:18080"
data_dir = "/srv/confab"
log_format = "json"

[registrar]
min_expires = 30

[auth]
allow_unauthenticated = true
trusted_peers = ["127.0.0.1:5070", "::1"]

[limits]
max_headers = 100
"#,
        );
        let cfg = load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(cfg.domain, "contoso.com");
        assert_eq!(cfg.sip.to_string(), "127.0.0.1:15060");
        assert_eq!(cfg.tls.to_string(), "0.0.0.0:5061");
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/confab"));
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.registrar.min_expires, 30);
        assert_eq!(cfg.registrar.max_expires, 7200);
        assert!(cfg.auth.allow_unauthenticated);
        assert!(!cfg.auth.digest_allow_rfc2069);
        assert_eq!(
            cfg.auth.trusted_peer_addrs(),
            Some(vec![
                "127.0.0.1:5070".parse().unwrap(),
                "[::1]:0".parse().unwrap()
            ])
        );
        assert_eq!(cfg.auth.max_failures_per_user, 10);
        assert_eq!(cfg.limits.max_headers, 100);

        let flags = Overrides {
            domain: Some("fabrikam.com".into()),
            http: Some("127.0.0.1:9999".parse().unwrap()),
            data_dir: Some("/tmp/other".into()),
            log_format: Some(LogFormat::Text),
            database: Some("postgres://confab:pw@db/confab".into()),
            ..Overrides::default()
        };
        let cfg = load(Some(&path), flags).unwrap();
        assert_eq!(cfg.domain, "fabrikam.com");
        assert_eq!(cfg.http.to_string(), "127.0.0.1:9999");
        assert_eq!(cfg.sip.to_string(), "127.0.0.1:15060");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/other"));
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert_eq!(
            cfg.database_url().unwrap(),
            "postgres://confab:pw@db/confab"
        );
        let debug = format!("{cfg:?}");
        assert!(!debug.contains(":pw@"), "{debug}");
        assert!(debug.contains("postgres://confab:***@db/confab"), "{debug}");
    }

    #[test]
    fn unknown_top_level_key() {
        let err = load_text("domain = \"a.com\"\n\nfrobnicate = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("confab.toml:3:1:"), "{err}");
        assert!(err.contains("`frobnicate`"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn unknown_nested_key() {
        let err = load_text("[registrar]\nmin_expires = 30\nmax_expirez = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("confab.toml:3:1:"), "{err}");
        assert!(err.contains("`registrar.max_expirez`"), "{err}");
        let err = load_text("[registar]\nmin_expires = 30\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("confab.toml:1:2:"), "{err}");
        assert!(err.contains("`registar`"), "{err}");
    }

    #[test]
    fn bad_value_type() {
        let err = load_text("\n[auth]\nnonce_lifetime_secs = \"five\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("confab.toml:3:23:"), "{err}");
        assert!(err.contains("`auth.nonce_lifetime_secs`"), "{err}");
        assert!(err.contains("invalid type"), "{err}");
        let err = load_text("sip = \"nowhere\"\n").unwrap_err().to_string();
        assert!(
            err.contains("confab.toml:1:7:") && err.contains("`sip`"),
            "{err}"
        );
        let err = load_text("[registrar]\nmin_expires = -5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("confab.toml:2:") && err.contains("`registrar.min_expires`"),
            "{err}"
        );
        let err = load_text("log_format = \"xml\"\n").unwrap_err().to_string();
        assert!(
            err.contains("confab.toml:1:") && err.contains("`log_format`"),
            "{err}"
        );
    }

    #[test]
    fn syntax_error() {
        let err = load_text("domain = \"a.com\"\nsip = \n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("confab.toml:2:"), "{err}");
        assert!(err.contains("invalid TOML"), "{err}");
    }

    #[test]
    fn web_section() {
        let cfg = load_text("").unwrap();
        assert!(cfg.web.tls, "HTTPS by default");
        let cfg =
            load_text("[web]\ntls = false\nmetrics_allow = [\"127.0.0.1\", \"10.0.0.0/8\"]\n")
                .unwrap();
        assert!(!cfg.web.tls);
        assert_eq!(cfg.web.metrics_allow.len(), 2);
        let err = load_text("[web]\nmetrics_allow = [\"10.0.0.0/8\", \"intranet\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("confab.toml:2:1: `web.metrics_allow`") && err.contains("\"intranet\""),
            "{err}"
        );
        let err = load_text("[web]\ntls = \"off\"\n").unwrap_err().to_string();
        assert!(
            err.contains("confab.toml:2:") && err.contains("web.tls"),
            "{err}"
        );
        let err = load_text("[web]\nsession_idle_secs = 600\nsession_max_secs = 300\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`web.session_max_secs`"), "{err}");
    }

    #[test]
    fn validation() {
        let err = load_text("[registrar]\nmin_expires = 600\ndefault_expires = 300\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("confab.toml:2:1: `registrar.min_expires`"),
            "{err}"
        );
        assert!(
            err.contains("min_expires (600) must not exceed default_expires (300)"),
            "{err}"
        );

        let err = load_text("[registrar]\nmax_expires = 100\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("default_expires (3600) must not exceed max_expires (100)"),
            "{err}"
        );

        let err = load_text("domain = \"\"\n").unwrap_err().to_string();
        assert!(
            err.contains("confab.toml:1:1: `domain`") && err.contains("must not be empty"),
            "{err}"
        );
        let err = load_text("domain = \"bad_domain!\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid host name"), "{err}");

        let flags = Overrides {
            domain: Some("-bad".into()),
            ..Overrides::default()
        };
        let err = load(None, flags).unwrap_err().to_string();
        assert!(
            err.contains("--domain:") && err.contains("not a valid host name"),
            "{err}"
        );

        let err = load_text("tls_cert = \"cert.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls_key is not"), "{err}");
        let err = load_text("database = \"mysql://x/y\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`database`"), "{err}");
        let err = load_text("log_level = \"info,=[\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`log_level`"), "{err}");
        let err = load_text("[limits]\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("confab.toml:2:1: `limits.max_connections`"),
            "{err}"
        );
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(Some(&dir.path().join("nope.toml")), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("cannot read config file"), "{err}");
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }
}
