//! The Enterprise Voice configuration as stored: plain data, no compiled patterns.
//! [`crate::VoiceConfig::build`] checks it and compiles it.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

/// Where a dial plan or a voice policy applies, like Lync's identities
/// (`Global`, `Site:Redmond`, `Service:Registrar:pool`, a per-user tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every user without a more specific one.
    Global,
    /// Users homed in a site.
    Site(String),
    /// Users homed on a pool.
    Pool(String),
    /// Assigned to users one by one (`confab user set --dial-plan NAME`).
    User(String),
}

impl Scope {
    /// Parses `global`, `site:NAME`, `pool:FQDN` or `NAME` (user scope).
    pub fn parse(s: &str) -> Result<Scope, crate::VoiceError> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        let bad = |reason: &'static str| crate::VoiceError::BadName {
            name: s.to_owned(),
            reason,
        };
        let scope = if lower == "global" {
            Scope::Global
        } else if let Some(site) = lower.strip_prefix("site:") {
            Scope::Site(check_name(site).map_err(bad)?.to_owned())
        } else if let Some(pool) = lower.strip_prefix("pool:") {
            Scope::Pool(check_name(pool).map_err(bad)?.to_owned())
        } else if lower.contains(':') {
            return Err(bad(
                "a scope is global, site:NAME, pool:FQDN or a plain name",
            ));
        } else {
            Scope::User(check_name(&lower).map_err(bad)?.to_owned())
        };
        Ok(scope)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Site(s) => write!(f, "site:{s}"),
            Scope::Pool(p) => write!(f, "pool:{p}"),
            Scope::User(n) => f.write_str(n),
        }
    }
}

/// Names of usages, routes, trunks, rules: letters, digits, `-`, `_`, `.`; 1-64
/// characters.
pub fn check_name(name: &str) -> Result<&str, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > 64 {
        return Err("longer than 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(name)
}

/// A normalization or translation rule: a regular expression matched against the
/// whole number, and a translation where `$1`..`$9` stand for its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub pattern: String,
    pub translation: String,
}

/// A dial plan: ordered normalization rules (the first that matches wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPlan {
    pub scope: Scope,
    pub description: Option<String>,
    pub rules: Vec<Rule>,
}

/// A voice policy: the PSTN usages a user's calls may take, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicePolicy {
    pub scope: Scope,
    pub usages: Vec<String>,
}

/// A voice route: numbers matching `pattern` may go, for callers whose policy
/// names one of `usages`, through `trunks` (tried in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub pattern: String,
    pub usages: Vec<String>,
    pub trunks: Vec<String>,
}

/// The SIP transport towards a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkTransport {
    Udp,
    Tcp,
    Tls,
}

impl TrunkTransport {
    pub fn parse(s: &str) -> Option<TrunkTransport> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(TrunkTransport::Udp),
            "tcp" => Some(TrunkTransport::Tcp),
            "tls" => Some(TrunkTransport::Tls),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
            TrunkTransport::Tls => "tls",
        }
    }
}

/// A trunk: a PSTN gateway (or SIP trunk) and how numbers are rewritten for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub gateway: SocketAddr,
    pub transport: TrunkTransport,
    /// Made by publishing the topology (one of its PSTN gateways), not with
    /// `confab voice trunk add`: its gateway and transport are the topology's.
    pub from_topology: bool,
    /// Translation rules applied to the E.164 number before it goes to the
    /// gateway (first match wins; no match: the number as is).
    pub rules: Vec<Rule>,
}

/// A user's Enterprise Voice settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserVoice {
    /// `user@domain`, lower case.
    pub address: String,
    /// E.164 with its `+` (stored without `tel:`).
    pub line_uri: Option<String>,
    /// A user-scope dial plan.
    pub dial_plan: Option<String>,
    /// A user-scope voice policy.
    pub voice_policy: Option<String>,
}

/// Everything Enterprise Voice needs, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceData {
    pub dial_plans: Vec<DialPlan>,
    pub policies: Vec<VoicePolicy>,
    pub usages: Vec<String>,
    /// In priority order.
    pub routes: Vec<Route>,
    pub trunks: Vec<Trunk>,
    pub users: Vec<UserVoice>,
    /// Announcements (`confab voice announcement ...`).
    pub announcements: Vec<crate::Announcement>,
    /// Unassigned-number ranges (`confab voice unassigned ...`).
    pub unassigned: Vec<crate::UnassignedRange>,
    /// Call Park orbit ranges (`confab voice park orbit ...`).
    pub park_orbits: Vec<crate::ParkOrbit>,
}

/// Where a user is homed, for site and pool scopes (names in lower case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Home {
    pub site: Option<String>,
    pub pool: Option<String>,
}

impl fmt::Display for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pool, &self.site) {
            (Some(p), Some(s)) => write!(f, "pool {p}, site {s}"),
            (Some(p), None) => write!(f, "pool {p}, no site known"),
            (None, Some(s)) => write!(f, "site {s}"),
            (None, None) => f.write_str("unknown (user and global scopes only)"),
        }
    }
}

/// Where every user is homed, for site and pool scopes: each user's pool
/// (`confab user add --pool`, `confab user move`), the pool of users without
/// one, and each pool's site (from the topology). Names are kept in lower
/// case, as [`Scope::parse`] keeps scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Homes {
    user_pools: HashMap<String, String>,
    default_pool: Option<String>,
    pool_sites: HashMap<String, String>,
}

impl Homes {
    /// Users are homed on `default_pool` unless [`Homes::set_user_pool`] says
    /// otherwise.
    pub fn new(default_pool: Option<&str>) -> Homes {
        Homes {
            default_pool: default_pool.map(str::to_ascii_lowercase),
            ..Homes::default()
        }
    }

    /// `user` is homed on `pool`.
    pub fn set_user_pool(&mut self, user: &str, pool: &str) {
        self.user_pools
            .insert(user.to_ascii_lowercase(), pool.to_ascii_lowercase());
    }

    /// `pool` is in `site`.
    pub fn set_pool_site(&mut self, pool: &str, site: &str) {
        self.pool_sites
            .insert(pool.to_ascii_lowercase(), site.to_ascii_lowercase());
    }

    /// Where `user` is homed: their pool (else the default pool) and its site.
    pub fn of(&self, user: &str) -> Home {
        let pool = self
            .user_pools
            .get(&user.to_ascii_lowercase())
            .or(self.default_pool.as_ref())
            .cloned();
        let site = pool.as_ref().and_then(|p| self.pool_sites.get(p)).cloned();
        Home { site, pool }
    }
}
