//! Topology validation: every rule of Lync's Topology Builder that applies to
//! confab, each failure explained with the line of the topology file it is on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use serde::Serialize;

use crate::model::{
    ChatState, Edition, Listener, Machine, Pool, Role, Spanned, StoreKind, StoreLocation, Topology,
    line_col,
};

/// Published capacity figures (Lync Server 2013) that the capacity warnings use.
pub mod capacity {
    /// Users homed on one Standard Edition server.
    pub const STANDARD_EDITION_USERS: u64 = 5_000;
    /// Users homed on one Enterprise Edition Front End pool.
    pub const ENTERPRISE_POOL_USERS: u64 = 80_000;
    /// Users per front end in an Enterprise pool (80,000 over 12, rounded).
    pub const USERS_PER_FRONT_END: u64 = 6_660;
    /// Front ends in one Enterprise pool.
    pub const FRONT_ENDS_PER_POOL: usize = 12;
    /// Active Persistent Chat servers in one pool.
    pub const ACTIVE_CHAT_SERVERS_PER_POOL: usize = 4;
    /// Passive (standby) Persistent Chat servers in one pool: a pool has at most
    /// 8 servers, 4 of them active.
    pub const PASSIVE_CHAT_SERVERS_PER_POOL: usize = 4;
    /// Active Persistent Chat users on a Standard Edition server: collocated with
    /// the front end, its scale is limited to the server's own users.
    pub const STANDARD_EDITION_CHAT_USERS: u64 = STANDARD_EDITION_USERS;
    /// Concurrently active users per Persistent Chat server.
    pub const CHAT_USERS_PER_SERVER: u64 = 20_000;
    /// Remote users per edge server or director.
    pub const REMOTE_USERS_PER_SERVER: u64 = 12_000;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding of validation.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable rule name, e.g. `pchat-active-limit` (see docs/topology.md).
    pub rule: &'static str,
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// 1-based line in the topology file; `None` when the problem concerns the
    /// whole file (something missing that has no single place, e.g. no SIP domain).
    pub line: Option<usize>,
    /// 1-based column in the topology file; `None` with `line`.
    pub column: Option<usize>,
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Diagnostic {
    /// Whether the diagnostic concerns the whole file rather than a line.
    pub fn is_whole_file(&self) -> bool {
        self.line.is_none()
    }
}

/// The result of [`validate`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Diagnostics of one rule.
    pub fn by_rule<'a>(&'a self, rule: &'a str) -> impl Iterator<Item = &'a Diagnostic> + 'a {
        self.diagnostics.iter().filter(move |d| d.rule == rule)
    }

    /// Compiler-style text: `FILE:LINE:COL: error[rule]: message` and a help line.
    pub fn render(&self, file: &str) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            match (d.line, d.column) {
                (Some(l), Some(c)) => out.push_str(&format!(
                    "{file}:{l}:{c}: {}[{}]: {}\n",
                    d.severity, d.rule, d.message
                )),
                _ => out.push_str(&format!(
                    "{file}: {}[{}]: {} (the whole file: no single line to fix)\n",
                    d.severity, d.rule, d.message
                )),
            }
            if let Some(help) = &d.help {
                out.push_str(&format!("    help: {help}\n"));
            }
        }
        let e = self.errors().count();
        let w = self.warnings().count();
        out.push_str(&format!(
            "{file}: {e} error{}, {w} warning{}\n",
            if e == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" }
        ));
        out
    }
}

struct Validator<'a> {
    t: &'a Topology,
    source: &'a str,
    out: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn push(
        &mut self,
        severity: Severity,
        rule: &'static str,
        span: Range<usize>,
        message: String,
        help: Option<&str>,
    ) {
        let (line, column) = line_col(self.source, span.start);
        self.out.push(Diagnostic {
            severity,
            rule,
            message,
            help: help.map(str::to_string),
            line: Some(line),
            column: Some(column),
            span,
        });
    }

    /// An error about the whole file: something is missing and there is no line
    /// to point at; `help` says where to add it.
    fn error_file(&mut self, rule: &'static str, message: String, help: &str) {
        self.out.push(Diagnostic {
            severity: Severity::Error,
            rule,
            message,
            help: Some(help.to_string()),
            line: None,
            column: None,
            span: 0..0,
        });
    }

    fn error(&mut self, rule: &'static str, span: Range<usize>, message: String, help: &str) {
        self.push(Severity::Error, rule, span, message, Some(help));
    }

    fn warn(&mut self, rule: &'static str, span: Range<usize>, message: String, help: &str) {
        self.push(Severity::Warning, rule, span, message, Some(help));
    }
}

fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

/// Checks every rule. Diagnostics come sorted by line.
pub fn validate(t: &Topology, source: &str) -> Report {
    let mut v = Validator {
        t,
        source,
        out: Vec::new(),
    };
    sip_domains(&mut v);
    sites_and_stores(&mut v);
    front_end_and_back_end(&mut v);
    fqdns_and_addresses(&mut v);
    for pool in &t.pools {
        pool_rules(&mut v, pool);
        for m in &pool.machines {
            machine_rules(&mut v, pool, m);
        }
        persistent_chat(&mut v, pool);
        compliance(&mut v, pool);
        references(&mut v, pool);
        capacity_warnings(&mut v, pool);
    }
    gateways(&mut v);
    let mut out = v.out;
    out.sort_by_key(|a| (a.line, a.column, a.severity));
    Report { diagnostics: out }
}

/// Whether `s` is a syntactically valid DNS name with at least two labels.
pub fn valid_fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.len() > 253 || !s.contains('.') {
        return false;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn sip_domains(v: &mut Validator<'_>) {
    let t = v.t;
    if t.sip_domains.is_empty() {
        v.error_file(
            "sip-domain",
            "the topology names no SIP domain".into(),
            "add `sip_domains = [\"contoso.com\"]` at the top of the file, before the first table",
        );
    }
    let mut seen: Vec<String> = Vec::new();
    for d in &t.sip_domains {
        let name = d.get_ref().to_ascii_lowercase();
        if !valid_fqdn(&name) {
            v.error(
                "sip-domain",
                span(d),
                format!("{:?} is not a valid SIP domain", d.get_ref()),
                "a SIP domain is a DNS name such as contoso.com",
            );
        } else if seen.contains(&name) {
            v.error(
                "sip-domain",
                span(d),
                format!("SIP domain {name} is listed twice"),
                "list each SIP domain once",
            );
        }
        seen.push(name);
    }
}

fn sites_and_stores(v: &mut Validator<'_>) {
    let t = v.t;
    let mut sites: Vec<&str> = Vec::new();
    for s in &t.sites {
        if sites.contains(&s.name.get_ref().as_str()) {
            v.error(
                "duplicate-name",
                span(&s.name),
                format!("site {:?} is defined twice", s.name.get_ref()),
                "give every site a unique name",
            );
        }
        sites.push(s.name.get_ref());
    }
    let mut stores: Vec<&str> = Vec::new();
    for s in &t.stores {
        if stores.contains(&s.name()) {
            v.error(
                "duplicate-name",
                span(&s.name),
                format!("store {:?} is defined twice", s.name()),
                "give every store a unique name",
            );
        }
        stores.push(s.name());
        let given = [s.sqlite.is_some(), s.url.is_some(), s.path.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given != 1 {
            let extra = [&s.sqlite, &s.url, &s.path]
                .into_iter()
                .flatten()
                .nth(1)
                .map(span)
                .unwrap_or(span(&s.name));
            v.error(
                "store-location",
                extra,
                format!(
                    "store {:?} must name exactly one of `sqlite`, `url` or `path` (it names {given})",
                    s.name()
                ),
                "database stores use `sqlite = \"file.db\"` (Standard Edition) or `url = \"postgres://…\"` (Enterprise); the file store uses `path = \"dir\"`",
            );
            continue;
        }
        match (s.kind(), &s.path, &s.url) {
            (StoreKind::File, None, _) => v.error(
                "store-location",
                span(&s.kind),
                format!(
                    "file store {:?} must name a directory with `path`",
                    s.name()
                ),
                "use `path = \"files\"` (relative to the data directory) or an absolute path",
            ),
            (kind, Some(p), _) if kind != StoreKind::File => v.error(
                "store-location",
                span(p),
                format!("{kind} store {:?} is a database, not a directory", s.name()),
                "use `sqlite = \"file.db\"` or `url = \"postgres://…\"`",
            ),
            (_, _, Some(u)) => {
                let url = u.get_ref();
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    v.error(
                        "store-location",
                        span(u),
                        format!("store {:?}: {url:?} is not a PostgreSQL URL", s.name()),
                        "write it as postgres://USER:PASSWORD@HOST:5432/DATABASE",
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(cs) = &t.central_store {
        match t.store(cs.get_ref()) {
            None => v.error(
                "unknown-reference",
                span(cs),
                format!("central_store names store {:?}, which is not defined", cs.get_ref()),
                "define it with a [[store]] table or remove `central_store` to use the first front-end pool's back end",
            ),
            Some(s) if s.kind() != StoreKind::BackEnd => v.error(
                "store-kind",
                span(cs),
                format!(
                    "the central management store lives in a back-end store; {:?} is a {} store",
                    cs.get_ref(),
                    s.kind()
                ),
                "point central_store at a store of kind \"back-end\"",
            ),
            _ => {}
        }
    }
}

fn front_end_and_back_end(v: &mut Validator<'_>) {
    let t = v.t;
    if t.machines().all(|m| !m.machine.has_role(Role::FrontEnd)) {
        v.error_file(
            "front-end-required",
            "the topology has no Front End or Standard Edition server".into(),
            "add a [[pool]] with `edition` and a [[pool.machine]] whose roles include \"front-end\" (e.g. with `confab topology new`)",
        );
    }
    if !t.stores.iter().any(|s| s.kind() == StoreKind::BackEnd) {
        v.error_file(
            "back-end-required",
            "the topology has no back-end store".into(),
            "add a [[store]] with kind = \"back-end\" (sqlite for Standard Edition, url for Enterprise) and name it in the pool's `backend`",
        );
    }
}

fn fqdns_and_addresses(v: &mut Validator<'_>) {
    let t = v.t;
    let mut machines: HashMap<String, &Machine> = HashMap::new();
    let mut addresses: HashMap<IpAddr, &str> = HashMap::new();
    for m in t.machines() {
        let fqdn = m.machine.fqdn().to_ascii_lowercase();
        if !valid_fqdn(&fqdn) {
            v.error(
                "fqdn",
                span(&m.machine.fqdn),
                format!(
                    "{:?} is not a fully qualified domain name",
                    m.machine.fqdn()
                ),
                "write the machine's full DNS name, e.g. fe01.contoso.com",
            );
        }
        if machines.contains_key(&fqdn) {
            v.error(
                "duplicate-fqdn",
                span(&m.machine.fqdn),
                format!("machine {fqdn} appears more than once in the topology"),
                "a machine belongs to exactly one pool; collocate roles by listing them in its `roles`",
            );
        } else {
            machines.insert(fqdn.clone(), m.machine);
        }
        let mut all: Vec<&Spanned<String>> = m.machine.addresses.iter().collect();
        all.extend(m.machine.internal_address.iter());
        all.extend(m.machine.external_address.iter());
        let mut own: Vec<IpAddr> = Vec::new();
        for a in all {
            match a.get_ref().parse::<IpAddr>() {
                Err(_) => v.error(
                    "address",
                    span(a),
                    format!("{:?} is not an IP address", a.get_ref()),
                    "write an IPv4 or IPv6 address such as 192.0.2.10",
                ),
                Ok(ip) => {
                    if own.contains(&ip) {
                        continue;
                    }
                    own.push(ip);
                    if let Some(other) = addresses.get(&ip) {
                        v.error(
                            "duplicate-address",
                            span(a),
                            format!("address {ip} is already used by machine {other}"),
                            "give every machine its own addresses",
                        );
                    } else {
                        addresses.insert(ip, m.machine.fqdn());
                    }
                }
            }
        }
    }
    let mut pools: Vec<String> = Vec::new();
    for p in &t.pools {
        let fqdn = p.fqdn().to_ascii_lowercase();
        if !valid_fqdn(&fqdn) {
            v.error(
                "fqdn",
                span(&p.fqdn),
                format!("{:?} is not a fully qualified domain name", p.fqdn()),
                "write the pool's full DNS name, e.g. pool01.contoso.com",
            );
        }
        if pools.contains(&fqdn) {
            v.error(
                "duplicate-fqdn",
                span(&p.fqdn),
                format!("pool {fqdn} is defined twice"),
                "give every pool a unique FQDN",
            );
        }
        pools.push(fqdn.clone());
        if let Some(m) = machines.get(&fqdn) {
            let own_single = p.machines.len() == 1
                && p.machines.first().is_some_and(|own| std::ptr::eq(own, *m));
            if !own_single {
                v.error(
                    "duplicate-fqdn",
                    span(&p.fqdn),
                    format!("pool FQDN {fqdn} is also the FQDN of a machine"),
                    "only a single-server pool (such as a Standard Edition server) may share its FQDN with its machine",
                );
            }
        }
    }
}

fn pool_rules(v: &mut Validator<'_>, pool: &Pool) {
    if pool.machines.is_empty() {
        v.error(
            "pool-roles",
            span(&pool.fqdn),
            format!("pool {} has no machines", pool.fqdn()),
            "add at least one [[pool.machine]] table after the [[pool]] table",
        );
        return;
    }
    // Every machine of a pool runs the same roles.
    if let Some(first) = pool.machines.first() {
        let roles = first.roles();
        for m in pool.machines.iter().skip(1) {
            if m.roles() != roles {
                v.error(
                    "pool-roles",
                    span(&m.roles),
                    format!(
                        "machine {} runs {} but the first machine of pool {} runs {}",
                        m.fqdn(),
                        role_list(&m.roles()),
                        pool.fqdn(),
                        role_list(&roles)
                    ),
                    "every machine of a pool runs the same roles; put other roles in a pool of their own",
                );
            }
        }
    }
    let front_end = pool.has_role(Role::FrontEnd);
    if front_end && pool.edition.is_none() {
        v.error(
            "edition",
            span(&pool.fqdn),
            format!("front-end pool {} does not say its edition", pool.fqdn()),
            "add `edition = \"standard\"` (one server, SQLite) or `edition = \"enterprise\"` (up to 12 front ends, PostgreSQL)",
        );
    }
    match pool.edition() {
        Edition::Standard => {
            if pool.machines.len() > 1 {
                let at = pool
                    .machines
                    .get(1)
                    .map(|m| span(&m.fqdn))
                    .unwrap_or(span(&pool.fqdn));
                v.error(
                    "standard-edition",
                    at,
                    format!(
                        "Standard Edition pool {} has {} machines; a Standard Edition server is a pool of one",
                        pool.fqdn(),
                        pool.machines.len()
                    ),
                    "use edition = \"enterprise\" for a pool of several front ends",
                );
            } else if let Some(m) = pool.machines.first()
                && front_end
                && !m.fqdn().eq_ignore_ascii_case(pool.fqdn())
            {
                v.error(
                    "standard-edition",
                    span(&m.fqdn),
                    format!(
                        "the Standard Edition server's FQDN {} differs from its pool's FQDN {}",
                        m.fqdn(),
                        pool.fqdn()
                    ),
                    "a Standard Edition pool and its server share one FQDN",
                );
            }
        }
        Edition::Enterprise => {
            let mut fe = 0usize;
            for m in &pool.machines {
                if m.has_role(Role::FrontEnd) {
                    fe += 1;
                    if fe == capacity::FRONT_ENDS_PER_POOL + 1 {
                        v.error(
                            "front-end-limit",
                            span(&m.fqdn),
                            format!(
                                "pool {} has {} front ends; an Enterprise pool has at most {}",
                                pool.fqdn(),
                                pool.count_role(Role::FrontEnd),
                                capacity::FRONT_ENDS_PER_POOL
                            ),
                            "split the users over another Front End pool",
                        );
                    }
                }
            }
        }
    }
    if front_end {
        match &pool.backend {
            None => v.error(
                "back-end-required",
                span(&pool.fqdn),
                format!("front-end pool {} names no back-end store", pool.fqdn()),
                "add `backend = \"NAME\"` naming a [[store]] of kind \"back-end\"",
            ),
            Some(b) => match v.t.store(b.get_ref()) {
                None => v.error(
                    "unknown-reference",
                    span(b),
                    format!("backend names store {:?}, which is not defined", b.get_ref()),
                    "define it with a [[store]] table of kind \"back-end\"",
                ),
                Some(s) if s.kind() != StoreKind::BackEnd => v.error(
                    "store-kind",
                    span(b),
                    format!("store {:?} is a {} store, not a back-end store", s.name(), s.kind()),
                    "name a [[store]] of kind \"back-end\"",
                ),
                Some(s) => match (pool.edition(), s.location()) {
                    (Edition::Standard, Some(StoreLocation::Postgres(_))) => v.error(
                        "store-location",
                        span(b),
                        format!(
                            "Standard Edition pool {} uses a local SQLite back end, but store {:?} is PostgreSQL",
                            pool.fqdn(),
                            s.name()
                        ),
                        "give the back-end store `sqlite = \"confab.db\"`, or make the pool Enterprise Edition",
                    ),
                    (Edition::Enterprise, Some(StoreLocation::Sqlite(_))) => v.error(
                        "store-location",
                        span(b),
                        format!(
                            "Enterprise pool {} shares its back end between front ends: store {:?} must be PostgreSQL, not SQLite",
                            pool.fqdn(),
                            s.name()
                        ),
                        "give the back-end store `url = \"postgres://USER:PASSWORD@HOST:5432/DB\"`",
                    ),
                    _ => {}
                },
            },
        }
    }
    if front_end
        && pool.edition() == Edition::Enterprise
        && let Some(fs) = &pool.file_store
        && let Some(store) = v.t.store(fs.get_ref())
        && let Some(StoreLocation::Directory(dir)) = store.location()
        && !std::path::Path::new(&dir).is_absolute()
    {
        let at = store.path.as_ref().map(span).unwrap_or(span(fs));
        v.error(
            "file-store-shared",
            at,
            format!(
                "the file store of Enterprise pool {} is one store shared by its front ends, but {dir:?} is relative: each front end would get its own folder in its data directory",
                pool.fqdn()
            ),
            "give the mount point of the shared store (NFS, SMB, CephFS, GlusterFS), mounted at the same absolute path on every front end, e.g. path = \"/srv/confab-files\"",
        );
    }
    if pool.has_role(Role::Director)
        && let Some(users) = &pool.users
    {
        v.error(
            "director-users",
            span(users),
            format!(
                "director pool {} homes no users, but `users = {}` is set",
                pool.fqdn(),
                users.get_ref()
            ),
            "home users on a Front End pool; use `remote_users` for the external users a director authenticates",
        );
    }
    if let Some(users) = &pool.users
        && !front_end
        && !pool.has_role(Role::Director)
    {
        v.warn(
            "users",
            span(users),
            format!(
                "pool {} has no front ends, so it homes no users",
                pool.fqdn()
            ),
            "set `users` on the Front End pool that homes them",
        );
    }
}

fn role_list(roles: &[Role]) -> String {
    if roles.is_empty() {
        return "no roles".into();
    }
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

fn machine_rules(v: &mut Validator<'_>, pool: &Pool, m: &Machine) {
    let roles = m.roles();
    if roles.is_empty() {
        v.error(
            "pool-roles",
            span(&m.roles),
            format!("machine {} has no roles", m.fqdn()),
            "list its roles, e.g. roles = [\"front-end\"]",
        );
    }
    if m.has_role(Role::Director) && roles.len() > 1 {
        v.error(
            "director-users",
            span(&m.roles),
            format!(
                "director {} is collocated with {}; a director homes no users and runs alone",
                m.fqdn(),
                role_list(&roles)
            ),
            "put the director in a pool of its own with roles = [\"director\"]",
        );
    }
    if m.has_role(Role::Edge) {
        if roles.len() > 1 {
            v.error(
                "collocation",
                span(&m.roles),
                format!(
                    "edge {} is collocated with {}; an edge server sits alone in the perimeter network",
                    m.fqdn(),
                    role_list(&roles)
                ),
                "put the edge in a pool of its own with roles = [\"edge\"]",
            );
        }
        match (&m.internal_address, &m.external_address) {
            (Some(i), Some(e)) => {
                if i.get_ref().trim() == e.get_ref().trim() {
                    v.error(
                        "edge-addresses",
                        span(e),
                        format!(
                            "edge {} uses {} as both its internal and external address",
                            m.fqdn(),
                            e.get_ref()
                        ),
                        "an edge has separate internal and external interfaces: give each its own address",
                    );
                }
            }
            (i, e) => {
                let missing = match (i.is_some(), e.is_some()) {
                    (false, false) => "internal_address and external_address",
                    (false, true) => "internal_address",
                    _ => "external_address",
                };
                v.error(
                    "edge-addresses",
                    span(&m.fqdn),
                    format!("edge {} needs internal and external addresses: {missing} missing", m.fqdn()),
                    "add internal_address = \"10.0.0.5\" and external_address = \"203.0.113.5\" to the machine",
                );
            }
        }
    } else {
        for a in m.internal_address.iter().chain(m.external_address.iter()) {
            v.warn(
                "edge-addresses",
                span(a),
                format!(
                    "{} is not an edge; its internal/external address is ignored",
                    m.fqdn()
                ),
                "use `addresses = [...]` for machines other than edges",
            );
        }
    }
    if m.has_role(Role::PersistentChat)
        && m.has_role(Role::FrontEnd)
        && pool.edition() == Edition::Enterprise
    {
        v.error(
            "pchat-collocation",
            span(&m.roles),
            format!(
                "Persistent Chat may not be collocated with an Enterprise Edition front end ({})",
                m.fqdn()
            ),
            "move persistent-chat to a Persistent Chat pool of its own with its own store",
        );
    }
    if let Some(state) = &m.persistent_chat
        && !m.has_role(Role::PersistentChat)
    {
        v.error(
            "pchat-state",
            span(state),
            format!(
                "{} runs no Persistent Chat, so it cannot be active or passive",
                m.fqdn()
            ),
            "remove `persistent_chat` or add \"persistent-chat\" to the roles",
        );
    }
    ports(v, m);
}

fn ports(v: &mut Validator<'_>, m: &Machine) {
    for (role_name, listeners) in &m.ports {
        let role = role_name.parse::<Role>().ok().filter(|r| m.has_role(*r));
        let first_span = listeners.values().next().map(span).unwrap_or(span(&m.fqdn));
        let Some(role) = role else {
            v.error(
                "ports",
                first_span,
                format!(
                    "ports.{role_name}: {} does not run a role named {role_name:?}",
                    m.fqdn()
                ),
                "set ports only for the machine's own roles",
            );
            continue;
        };
        for (name, port) in listeners {
            if !role.default_listeners().iter().any(|l| l.name == name) {
                let known: Vec<&str> = role.default_listeners().iter().map(|l| l.name).collect();
                v.error(
                    "ports",
                    span(port),
                    format!("{role} has no listener named {name:?}"),
                    &format!("{role} listeners: {}", known.join(", ")),
                );
            } else if *port.get_ref() == 0 {
                v.error(
                    "ports",
                    span(port),
                    format!("ports.{role}.{name} is 0"),
                    "choose a port from 1 to 65535",
                );
            }
        }
    }
    let listeners: Vec<Listener> = m.listeners();
    for (i, a) in listeners.iter().enumerate() {
        for b in listeners.iter().take(i) {
            if a.protocol == b.protocol && a.port == b.port && a.scope.overlaps(b.scope) {
                let at = a.span.clone().or(b.span.clone()).unwrap_or(span(&m.roles));
                v.error(
                    "duplicate-port",
                    at,
                    format!(
                        "{}: {}/{} {} and {}/{} {} both listen on {} port {}",
                        m.fqdn(),
                        a.role,
                        a.name,
                        scope_word(a),
                        b.role,
                        b.name,
                        scope_word(b),
                        a.protocol,
                        a.port
                    ),
                    &format!(
                        "move one of them, e.g. [pool.machine.ports] {}.{} = {}",
                        a.role,
                        a.name,
                        a.port.saturating_add(1)
                    ),
                );
            }
        }
    }
}

fn scope_word(l: &Listener) -> &'static str {
    match l.scope {
        crate::model::Scope::Machine => "(all addresses)",
        crate::model::Scope::Internal => "(internal)",
        crate::model::Scope::External => "(external)",
    }
}

fn persistent_chat(v: &mut Validator<'_>, pool: &Pool) {
    if !pool.has_role(Role::PersistentChat) {
        if let Some(s) = &pool.persistent_chat_store {
            v.warn(
                "pchat-store",
                span(s),
                format!(
                    "pool {} runs no Persistent Chat; persistent_chat_store is ignored",
                    pool.fqdn()
                ),
                "set persistent_chat_store on the Persistent Chat pool",
            );
        }
        return;
    }
    chat_web_services(v, pool);
    let active_total = pool.active_chat_servers();
    if active_total == 0 {
        let at = pool
            .machines
            .iter()
            .find_map(|m| m.persistent_chat.as_ref().map(span))
            .unwrap_or(span(&pool.fqdn));
        v.error(
            "pchat-active-limit",
            at,
            format!(
                "Persistent Chat pool {} has no active server: every server is passive, so nobody can chat",
                pool.fqdn()
            ),
            "mark at least one server persistent_chat = \"active\" (up to 4)",
        );
    }
    let mut passive = 0usize;
    for m in &pool.machines {
        if m.has_role(Role::PersistentChat) && m.chat_state() == ChatState::Passive {
            passive += 1;
            if passive == capacity::PASSIVE_CHAT_SERVERS_PER_POOL + 1 {
                v.error(
                    "pchat-active-limit",
                    m.persistent_chat.as_ref().map(span).unwrap_or(span(&m.fqdn)),
                    format!(
                        "Persistent Chat pool {} has {} passive servers; a pool uses at most {} (standbys for its at most {} active ones)",
                        pool.fqdn(),
                        pool.machines
                            .iter()
                            .filter(|m| m.has_role(Role::PersistentChat)
                                && m.chat_state() == ChatState::Passive)
                            .count(),
                        capacity::PASSIVE_CHAT_SERVERS_PER_POOL,
                        capacity::ACTIVE_CHAT_SERVERS_PER_POOL
                    ),
                    "remove the extra passive servers or put them in another Persistent Chat pool",
                );
            }
        }
    }
    let mut active = 0usize;
    for m in &pool.machines {
        if m.has_role(Role::PersistentChat) && m.chat_state() == ChatState::Active {
            active += 1;
            if active == capacity::ACTIVE_CHAT_SERVERS_PER_POOL + 1 {
                v.error(
                    "pchat-active-limit",
                    m.persistent_chat.as_ref().map(span).unwrap_or(span(&m.fqdn)),
                    format!(
                        "Persistent Chat pool {} has {} active servers; at most {} may be active",
                        pool.fqdn(),
                        pool.active_chat_servers(),
                        capacity::ACTIVE_CHAT_SERVERS_PER_POOL
                    ),
                    "mark the extra servers persistent_chat = \"passive\" (standby) or add another Persistent Chat pool",
                );
            }
        }
    }
    match pool.edition() {
        Edition::Standard => {
            v.warn(
                "pchat-standard-edition",
                span(&pool.fqdn),
                format!(
                    "Persistent Chat on Standard Edition server {} is collocated, uses the local store and has no high availability",
                    pool.fqdn()
                ),
                "for high availability deploy an Enterprise Persistent Chat pool with passive servers and a PostgreSQL store",
            );
            for m in &pool.machines {
                if m.has_role(Role::PersistentChat) && !m.has_role(Role::FrontEnd) {
                    v.error(
                        "pchat-standard-edition",
                        span(&m.roles),
                        format!(
                            "Persistent Chat on Standard Edition runs on the Standard Edition server itself; {} has no front end",
                            m.fqdn()
                        ),
                        "add \"front-end\" to the roles of the Standard Edition server, or make this an Enterprise Persistent Chat pool",
                    );
                }
                if let Some(s) = &m.persistent_chat
                    && *s.get_ref() == ChatState::Passive
                {
                    v.error(
                        "pchat-standard-edition",
                        span(s),
                        "Persistent Chat on Standard Edition has no high availability: no passive server".into(),
                        "remove persistent_chat = \"passive\"",
                    );
                }
            }
            if let Some(s) = &pool.persistent_chat_store
                && v.t.store(s.get_ref()).is_some_and(|st| !st.is_sqlite())
            {
                v.error(
                    "pchat-standard-edition",
                    span(s),
                    format!(
                        "Persistent Chat on Standard Edition uses the local store; {:?} is not a local SQLite store",
                        s.get_ref()
                    ),
                    "remove persistent_chat_store (the Standard Edition back end is used) or name a sqlite store",
                );
            }
        }
        Edition::Enterprise => chat_store_placement(v, pool),
    }
    match pool.edition() {
        Edition::Standard => {}
        Edition::Enterprise => match &pool.persistent_chat_store {
            None => v.error(
                "pchat-store",
                span(&pool.fqdn),
                format!("Persistent Chat pool {} names no Persistent Chat store", pool.fqdn()),
                "add persistent_chat_store = \"NAME\" naming a PostgreSQL [[store]] of kind \"persistent-chat\"",
            ),
            Some(s) => {
                if let Some(st) = v.t.store(s.get_ref())
                    && st.is_sqlite()
                {
                    v.error(
                        "store-location",
                        span(s),
                        format!(
                            "Enterprise Persistent Chat pool {} needs a PostgreSQL store; {:?} is SQLite",
                            pool.fqdn(),
                            s.get_ref()
                        ),
                        "give the store url = \"postgres://…\"",
                    );
                }
            }
        },
    }
}

/// Persistent Chat's web services (file upload and download, chat room
/// management) run on the front ends the chat pool uses: its own Standard
/// Edition server, else its next hop. Uploads need that pool's file store.
fn chat_web_services(v: &mut Validator<'_>, pool: &Pool) {
    let (front_ends, at) = if pool.has_role(Role::FrontEnd) {
        (Some(pool), span(&pool.fqdn))
    } else {
        match &pool.next_hop {
            Some(h) => (v.t.pool(h.get_ref()), span(h)),
            None => (None, span(&pool.fqdn)),
        }
    };
    let Some(fe) = front_ends.filter(|p| p.has_role(Role::FrontEnd)) else {
        if pool.next_hop.is_none() {
            v.warn(
                "pchat-web",
                at,
                format!(
                    "Persistent Chat pool {} names no front-end pool (next_hop): its web services (file upload and download, chat room management) run on front ends",
                    pool.fqdn()
                ),
                "set next_hop = \"POOL\" to the Front End pool whose web services the chat pool uses",
            );
        }
        return;
    };
    if fe.file_store.is_none() {
        v.warn(
            "pchat-web",
            at,
            format!(
                "the Persistent Chat web services of pool {} run on front-end pool {}, which has no file_store for uploaded files",
                pool.fqdn(),
                fe.fqdn()
            ),
            "give the front-end pool a file store: file_store = \"NAME\" naming a [[store]] of kind \"file\"",
        );
    }
}

/// An Enterprise Persistent Chat store is a database of its own; Lync recommends
/// a dedicated database server too (sharing the back end's server is allowed).
fn chat_store_placement(v: &mut Validator<'_>, pool: &Pool) {
    let Some(name) = &pool.persistent_chat_store else {
        return;
    };
    let Some(id) = v.t.store(name.get_ref()).and_then(|s| s.database_id()) else {
        return;
    };
    let back_ends =
        v.t.stores
            .iter()
            .filter(|s| s.kind() == StoreKind::BackEnd && s.name() != name.get_ref());
    let mut shared_server = None;
    for b in back_ends {
        let Some(bid) = b.database_id() else { continue };
        if bid == id {
            v.error(
                "pchat-store",
                span(name),
                format!(
                    "Persistent Chat store {:?} is the same {id} as back-end store {:?}",
                    name.get_ref(),
                    b.name()
                ),
                "give the Persistent Chat store a database of its own",
            );
            return;
        }
        if shared_server.is_none() && bid.server().is_some() && bid.server() == id.server() {
            shared_server = Some(b.name().to_string());
        }
    }
    if let (Some(b), Some((host, port))) = (shared_server, id.server()) {
        v.warn(
            "pchat-store-dedicated",
            span(name),
            format!(
                "Persistent Chat store {:?} is on {host}:{port}, the server of back-end store {b:?}: supported, but a dedicated database server is recommended",
                name.get_ref()
            ),
            "put the Persistent Chat store on a PostgreSQL server of its own when the load grows",
        );
    }
}

fn compliance(v: &mut Validator<'_>, pool: &Pool) {
    let enabled = pool.compliance.as_ref().map(|c| *c.get_ref());
    let at = pool
        .compliance
        .as_ref()
        .map(span)
        .or(pool.compliance_store.as_ref().map(span));
    let Some(at) = at else { return };
    if enabled == Some(false) {
        if let Some(s) = &pool.compliance_store {
            v.warn(
                "compliance-store",
                span(s),
                format!(
                    "compliance is off on pool {}; compliance_store is unused",
                    pool.fqdn()
                ),
                "set compliance = true or remove compliance_store",
            );
        }
        return;
    }
    if !pool.has_role(Role::PersistentChat) {
        v.warn(
            "compliance-store",
            at.clone(),
            format!(
                "compliance records Persistent Chat, and pool {} runs none",
                pool.fqdn()
            ),
            "enable compliance on the Persistent Chat pool",
        );
    }
    let Some(cs) = &pool.compliance_store else {
        v.error(
            "compliance-store",
            at,
            format!(
                "compliance on pool {} needs its own compliance store",
                pool.fqdn()
            ),
            "add compliance_store = \"NAME\" naming a [[store]] of kind \"compliance\"",
        );
        return;
    };
    let name = cs.get_ref();
    if pool
        .persistent_chat_store
        .as_ref()
        .is_some_and(|p| p.get_ref() == name)
        || v.t
            .pools
            .iter()
            .any(|p| p.backend.as_ref().is_some_and(|b| b.get_ref() == name))
    {
        v.error(
            "compliance-store",
            span(cs),
            format!("compliance needs its own store; {name:?} is also a back-end or Persistent Chat store"),
            "define a separate [[store]] of kind \"compliance\"",
        );
        return;
    }
    // The same database under another store name is no separate store either.
    if let Some(id) = v.t.store(name).and_then(|s| s.database_id())
        && let Some(other) = v.t.stores.iter().find(|o| {
            o.name() != name
                && matches!(o.kind(), StoreKind::BackEnd | StoreKind::PersistentChat)
                && o.database_id().as_ref() == Some(&id)
        })
    {
        v.error(
            "compliance-store",
            span(cs),
            format!(
                "compliance store {name:?} is the same {id} as {} store {:?}: compliance needs a separate database",
                other.kind(),
                other.name()
            ),
            "point the compliance store at a database of its own (another database name; the server may be shared)",
        );
        return;
    }
    if let Some(st) = v.t.store(name) {
        if st.kind() != StoreKind::Compliance {
            v.error(
                "store-kind",
                span(cs),
                format!(
                    "store {name:?} is a {} store, not a compliance store",
                    st.kind()
                ),
                "name a [[store]] of kind \"compliance\"",
            );
        } else if let Some(other) = v.t.pools.iter().find(|p| {
            !std::ptr::eq(*p, pool)
                && p.compliance_store
                    .as_ref()
                    .is_some_and(|c| c.get_ref() == name)
        }) {
            v.error(
                "compliance-store",
                span(cs),
                format!(
                    "compliance store {name:?} is already used by pool {}",
                    other.fqdn()
                ),
                "each Persistent Chat pool records compliance in a store of its own",
            );
        }
    }
}

/// An optional reference to a store or pool by name.
type OptRef = Option<Spanned<String>>;

fn references(v: &mut Validator<'_>, pool: &Pool) {
    let t = v.t;
    if t.site(pool.site.get_ref()).is_none() {
        v.error(
            "unknown-reference",
            span(&pool.site),
            format!(
                "pool {} is in site {:?}, which is not defined",
                pool.fqdn(),
                pool.site.get_ref()
            ),
            "define the site with a [[site]] table",
        );
    }
    let store_refs: [(&str, &OptRef, &[StoreKind]); 5] = [
        (
            "persistent_chat_store",
            &pool.persistent_chat_store,
            &[StoreKind::PersistentChat],
        ),
        (
            "compliance_store",
            &pool.compliance_store,
            &[StoreKind::Compliance],
        ),
        (
            "archiving_store",
            &pool.archiving_store,
            &[StoreKind::Archiving, StoreKind::Monitoring],
        ),
        (
            "monitoring_store",
            &pool.monitoring_store,
            &[StoreKind::Monitoring, StoreKind::Archiving],
        ),
        ("file_store", &pool.file_store, &[StoreKind::File]),
    ];
    for (key, r, kinds) in store_refs {
        let Some(r) = r else { continue };
        match t.store(r.get_ref()) {
            None => v.error(
                "unknown-reference",
                span(r),
                format!("{key} names store {:?}, which is not defined", r.get_ref()),
                "define it with a [[store]] table",
            ),
            Some(s) if !kinds.contains(&s.kind()) && key != "compliance_store" => v.error(
                "store-kind",
                span(r),
                format!(
                    "{key}: store {:?} is a {} store, not {}",
                    s.name(),
                    s.kind(),
                    kinds.first().map(|k| k.as_str()).unwrap_or("")
                ),
                "name a [[store]] of the matching kind",
            ),
            _ => {}
        }
    }
    let pool_refs: [(&str, &OptRef, &[Role]); 2] = [
        (
            "next_hop",
            &pool.next_hop,
            &[Role::FrontEnd, Role::Director],
        ),
        ("edge_pool", &pool.edge_pool, &[Role::Edge]),
    ];
    for (key, r, roles) in pool_refs {
        let Some(r) = r else { continue };
        match t.pool(r.get_ref()) {
            None => v.error(
                "unknown-reference",
                span(r),
                format!("{key} names pool {:?}, which is not defined", r.get_ref()),
                "define the pool, or correct the FQDN",
            ),
            Some(p) if std::ptr::eq(p, pool) => v.error(
                "unknown-reference",
                span(r),
                format!("{key} of pool {} names the pool itself", pool.fqdn()),
                "name another pool",
            ),
            Some(p) if !roles.iter().any(|role| p.has_role(*role)) => v.error(
                "unknown-reference",
                span(r),
                format!(
                    "{key} must name a {} pool; {} runs {}",
                    roles
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or "),
                    p.fqdn(),
                    role_list(&p.roles())
                ),
                "name a pool with the right role",
            ),
            _ => {}
        }
    }
}

fn capacity_warnings(v: &mut Validator<'_>, pool: &Pool) {
    use capacity::*;
    let fe = pool.count_role(Role::FrontEnd) as u64;
    if let Some(users) = &pool.users
        && fe > 0
    {
        let n = *users.get_ref();
        match pool.edition() {
            Edition::Standard if n > STANDARD_EDITION_USERS => v.warn(
                "capacity",
                span(users),
                format!("{n} users on Standard Edition server {}: it is sized for {STANDARD_EDITION_USERS}", pool.fqdn()),
                "move users to an Enterprise Edition pool",
            ),
            Edition::Enterprise => {
                if n > ENTERPRISE_POOL_USERS {
                    v.warn(
                        "capacity",
                        span(users),
                        format!("{n} users on Enterprise pool {}: a pool is sized for {ENTERPRISE_POOL_USERS}", pool.fqdn()),
                        "split the users over another Front End pool",
                    );
                } else if n.div_ceil(fe) > USERS_PER_FRONT_END {
                    v.warn(
                        "capacity",
                        span(users),
                        format!(
                            "{n} users on {fe} front end{} of pool {} is {} per front end; each is sized for about {USERS_PER_FRONT_END}",
                            if fe == 1 { "" } else { "s" },
                            pool.fqdn(),
                            n.div_ceil(fe)
                        ),
                        &format!("add front ends: {} are needed", n.div_ceil(USERS_PER_FRONT_END)),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some(active) = &pool.active_users
        && pool.has_role(Role::PersistentChat)
    {
        let servers = pool.active_chat_servers() as u64;
        let n = *active.get_ref();
        if pool.edition() == Edition::Standard {
            if n > STANDARD_EDITION_CHAT_USERS {
                v.warn(
                    "capacity",
                    span(active),
                    format!(
                        "{n} active Persistent Chat users on Standard Edition server {}: Persistent Chat collocated on Standard Edition is limited to the server's {STANDARD_EDITION_CHAT_USERS} users",
                        pool.fqdn()
                    ),
                    "Standard Edition has exactly one Persistent Chat server: move Persistent Chat to an Enterprise Persistent Chat pool (up to 4 active servers of 20,000 users)",
                );
            }
        } else if servers == 0 {
            v.warn(
                "capacity",
                span(active),
                format!(
                    "{n} active Persistent Chat users and no active server in pool {}",
                    pool.fqdn()
                ),
                &format!(
                    "mark {} server(s) persistent_chat = \"active\"",
                    n.div_ceil(CHAT_USERS_PER_SERVER)
                        .min(ACTIVE_CHAT_SERVERS_PER_POOL as u64)
                        .max(1)
                ),
            );
        } else if n.div_ceil(servers) > CHAT_USERS_PER_SERVER {
            let needed = n.div_ceil(CHAT_USERS_PER_SERVER);
            let help = if needed > ACTIVE_CHAT_SERVERS_PER_POOL as u64 {
                format!(
                    "{needed} active servers are needed, more than the 4 a pool may have: add another Persistent Chat pool"
                )
            } else {
                format!(
                    "add active Persistent Chat servers: {needed} are needed (at most 4 per pool)"
                )
            };
            v.warn(
                "capacity",
                span(active),
                format!(
                    "{n} active Persistent Chat users on {servers} active server{} is more than {CHAT_USERS_PER_SERVER} per server",
                    if servers == 1 { "" } else { "s" }
                ),
                &help,
            );
        }
    }
    if let Some(remote) = &pool.remote_users {
        let servers = (pool.count_role(Role::Edge) + pool.count_role(Role::Director)) as u64;
        let n = *remote.get_ref();
        if servers > 0 && n.div_ceil(servers) > REMOTE_USERS_PER_SERVER {
            v.warn(
                "capacity",
                span(remote),
                format!(
                    "{n} remote users on {servers} server{} of pool {} is more than {REMOTE_USERS_PER_SERVER} per edge or director",
                    if servers == 1 { "" } else { "s" },
                    pool.fqdn()
                ),
                &format!("add servers to the pool: {} are needed", n.div_ceil(REMOTE_USERS_PER_SERVER)),
            );
        }
    }
}

/// Whether `name` may name a voice trunk: 1 to 64 letters, digits, `-`, `_`
/// and `.` (the rule of `confab voice trunk add`).
pub fn valid_trunk_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// PSTN gateways: a well-formed address, port and name, a Mediation pool (or a
/// pool with collocated Mediation) that exists and leads to front ends whose
/// voice configuration gets the trunk, a known site, and no gateway twice.
fn gateways(v: &mut Validator<'_>) {
    let t = v.t;
    // trunk name, address and port, FQDN -> where it was first defined
    let mut names: HashMap<String, &str> = HashMap::new();
    let mut endpoints: HashMap<(IpAddr, u16), String> = HashMap::new();
    let mut fqdns: HashMap<String, String> = HashMap::new();
    let mut streams: HashMap<(IpAddr, crate::model::GatewayTransport), String> = HashMap::new();
    for g in &t.gateways {
        let name = g.trunk_name();
        let name_span = g
            .name
            .as_ref()
            .or(g.fqdn.as_ref())
            .map(span)
            .unwrap_or(span(&g.address));
        let ip = match g.address.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                v.error(
                    "address",
                    span(&g.address),
                    format!("gateway address {:?} is not an IP address", g.address.get_ref()),
                    "write the gateway's IPv4 or IPv6 address such as 192.0.2.20 (its DNS name goes in `fqdn`)",
                );
                None
            }
        };
        if let Some(f) = &g.fqdn
            && !valid_fqdn(f.get_ref())
        {
            v.error(
                "fqdn",
                span(f),
                format!(
                    "gateway FQDN {:?} is not a fully qualified domain name",
                    f.get_ref()
                ),
                "write the gateway's full DNS name, e.g. gw1.contoso.com, or leave `fqdn` out",
            );
        }
        if let Some(p) = &g.port
            && *p.get_ref() == 0
        {
            v.error(
                "ports",
                span(p),
                format!("gateway {name}: port 0"),
                "give the port the gateway listens on, from 1 to 65535",
            );
        }
        if !valid_trunk_name(&name) {
            v.error(
                "gateway-name",
                name_span,
                format!("{name:?} cannot name the gateway's trunk: use 1 to 64 letters, digits, '-', '_' and '.'"),
                "add `name = \"gw1\"` to the gateway",
            );
        } else if let Some(first) = names.get(&name) {
            v.error(
                "duplicate-gateway",
                name_span,
                format!("the trunk name {name} is already the name of gateway {first}"),
                "give each gateway its own `name`",
            );
        } else {
            names.insert(name.clone(), g.address.get_ref().as_str());
        }
        if let Some(f) = &g.fqdn {
            let key = f.get_ref().trim_end_matches('.').to_ascii_lowercase();
            if let Some(first) = fqdns.get(&key) {
                v.error(
                    "duplicate-gateway",
                    span(f),
                    format!("gateway {key} is already defined (trunk {first})"),
                    "define a gateway once; a second trunk to it uses another port and `name`, without `fqdn`",
                );
            } else {
                fqdns.insert(key, name.clone());
            }
        }
        if let Some(ip) = ip {
            let port = g.port();
            if let Some(first) = endpoints.get(&(ip, port)) {
                v.error(
                    "duplicate-gateway",
                    span(&g.address),
                    format!("{} is already gateway {first}", SocketAddr::new(ip, port)),
                    "two trunks to one gateway listen on different ports",
                );
            } else {
                endpoints.insert((ip, port), name.clone());
                let tr = g.transport();
                if tr != crate::model::GatewayTransport::Udp {
                    if let Some(first) = streams.get(&(ip, tr)) {
                        v.warn(
                            "duplicate-gateway",
                            span(&g.transport),
                            format!(
                                "gateways {first} and {name} are both reached over {tr} at {ip}: calls they send over {tr} come from that address with ports of their own, so all are taken as {first}'s"
                            ),
                            "use another transport for one of them, or one trunk",
                        );
                    } else {
                        streams.insert((ip, tr), name.clone());
                    }
                }
            }
        }
        let pool_name = g.mediation_pool.get_ref();
        match t.pool(pool_name) {
            None => v.error(
                "unknown-reference",
                span(&g.mediation_pool),
                format!("gateway {name}: mediation_pool names pool {pool_name:?}, which is not defined"),
                "name the Mediation pool, or the front-end pool whose servers run mediation, that talks to this gateway",
            ),
            Some(pool) if !pool.has_role(Role::Mediation) => v.error(
                "gateway-pool",
                span(&g.mediation_pool),
                format!(
                    "gateway {name}: pool {} runs {}, no Mediation",
                    pool.fqdn(),
                    role_list(&pool.roles())
                ),
                "name a pool whose machines run \"mediation\" (a Mediation pool, or collocated: add \"mediation\" to the front ends' roles)",
            ),
            Some(pool) if t.voice_pool_of(g).is_none() => v.error(
                "gateway-pool",
                span(&g.mediation_pool),
                format!(
                    "gateway {name}: Mediation pool {} names no front-end pool (next_hop) whose voice configuration would hold the trunk",
                    pool.fqdn()
                ),
                "set next_hop on the Mediation pool to the front-end pool whose calls it carries",
            ),
            Some(pool) => {
                if let Some(site) = &g.site
                    && t.site(site.get_ref()).is_some()
                    && site.get_ref() != pool.site.get_ref()
                {
                    v.warn(
                        "gateway-site",
                        span(site),
                        format!(
                            "gateway {name} is in site {:?} but its Mediation pool {} is in site {:?}: its calls cross between sites",
                            site.get_ref(),
                            pool.fqdn(),
                            pool.site.get_ref()
                        ),
                        "associate the gateway with a Mediation pool of its own site",
                    );
                }
            }
        }
        if let Some(site) = &g.site
            && t.site(site.get_ref()).is_none()
        {
            v.error(
                "unknown-reference",
                span(site),
                format!(
                    "gateway {name} is in site {:?}, which is not defined",
                    site.get_ref()
                ),
                "define the site with a [[site]] table, or leave `site` out (the Mediation pool's)",
            );
        }
    }
}

/// Counts of machines per role, for summaries.
pub fn role_counts(t: &Topology) -> BTreeMap<Role, usize> {
    let mut out = BTreeMap::new();
    for m in t.machines() {
        for r in m.machine.roles() {
            *out.entry(r).or_insert(0) += 1;
        }
    }
    out
}
