//! Enterprise Voice, sans-IO: line URIs, dial plans with ordered normalization
//! rules, voice policies, PSTN usages, routes and trunks, as in Lync Server 2013.
//!
//! [`VoiceData`] is the configuration as stored; [`VoiceConfig::build`] checks it
//! (patterns compile, every name referenced exists, numbers are unique E.164) and
//! compiles it. Then:
//! - [`VoiceConfig::normalize`]: what a user dialed → E.164, with the rule that did it;
//! - [`VoiceConfig::route`]: an E.164 number → the trunks to try in order, with
//!   the number each gateway gets, or why the call is refused;
//! - [`VoiceConfig::user_by_number`]: the user owning a number;
//! - [`VoiceConfig::explain`]: all of it for `confab voice test-number`.

mod model;
mod park;
mod unassigned;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use regex::Regex;

pub use model::{
    DialPlan, Home, Homes, Route, Rule, Scope, Trunk, TrunkTransport, UserVoice, VoiceData,
    VoicePolicy, check_name,
};
pub use park::{DEFAULT_HOLD_TONES, ParkOrbit, is_target};
pub use unassigned::{Announcement, UnassignedRange};

/// Bad configuration (refused before anything is stored) or a bad number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("bad name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("rule {rule:?}: bad pattern {pattern:?}: {reason}")]
    BadPattern {
        rule: String,
        pattern: String,
        reason: String,
    },
    #[error(
        "rule {rule:?}: translation {translation:?} names group ${group}, the pattern has {groups}"
    )]
    BadTranslation {
        rule: String,
        translation: String,
        group: usize,
        groups: usize,
    },
    #[error("bad line URI {0:?}: expected tel:+ and 2 to 15 digits (E.164), e.g. tel:+14255550100")]
    BadLineUri(String),
    #[error("number {number} is already the line URI of {owner}")]
    DuplicateNumber { number: String, owner: String },
    #[error("{kind} {name:?} already exists")]
    Duplicate { kind: &'static str, name: String },
    #[error("unknown {kind} {name:?}")]
    Unknown { kind: &'static str, name: String },
    #[error("{kind} {name:?} is used by {user}")]
    InUse {
        kind: &'static str,
        name: String,
        user: String,
    },
    #[error("{kind} {name:?}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
}

/// A number after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The dial plan used (`None`: the user has none).
    pub dial_plan: Option<Scope>,
    /// The rule that matched (`None`: the number was already E.164).
    pub rule: Option<String>,
    /// E.164 with its `+`.
    pub number: String,
}

/// Why a dialed string could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{dialed:?} is not an E.164 number and no normalization rule of {plan} matches it")]
pub struct NotNormalized {
    pub dialed: String,
    /// The dial plan tried, or "no dial plan".
    pub plan: String,
}

/// One trunk to try for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkChoice {
    pub route: String,
    pub usage: String,
    pub trunk: String,
    pub gateway: SocketAddr,
    pub transport: TrunkTransport,
    /// The number as the gateway gets it (after the trunk's translation).
    pub number: String,
    /// The trunk translation rule applied, if any.
    pub translation_rule: Option<String>,
}

/// Why a call to the PSTN is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is not enabled for Enterprise Voice (no line URI)")]
    NotVoiceEnabled(String),
    #[error("no voice policy applies to {0}")]
    NoPolicy(String),
    #[error("no route of the usages of voice policy {policy} ({usages}) matches {number}")]
    NoRoute {
        policy: String,
        usages: String,
        number: String,
    },
}

/// What happens to a call: answer of [`VoiceConfig::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The number is a user's line URI.
    User(String),
    /// To the PSTN through these trunks, in order.
    Pstn(Vec<TrunkChoice>),
    Refused(Refusal),
}

/// `confab voice test-number`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub caller: String,
    /// Where the caller is homed (which site and pool scopes apply).
    pub home: Home,
    pub dialed: String,
    pub normalized: Result<Normalized, NotNormalized>,
    /// The voice policy that applies to the caller and its usages (`None`: none).
    pub policy: Option<(Scope, Vec<String>)>,
    /// `None` when the number could not be normalized.
    pub outcome: Option<Outcome>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "caller:      {}", self.caller)?;
        writeln!(f, "home:        {}", self.home)?;
        writeln!(f, "dialed:      {}", self.dialed)?;
        let n = match &self.normalized {
            Ok(n) => n,
            Err(e) => return writeln!(f, "refused:     {e}"),
        };
        match &n.dial_plan {
            Some(p) => writeln!(f, "dial plan:   {p}")?,
            None => writeln!(f, "dial plan:   (none)")?,
        }
        match &n.rule {
            Some(r) => writeln!(f, "rule:        {r}")?,
            None => writeln!(f, "rule:        (none: already E.164)")?,
        }
        writeln!(f, "normalized:  {}", n.number)?;
        if matches!(self.outcome, Some(Outcome::Pstn(_) | Outcome::Refused(_))) {
            match &self.policy {
                Some((scope, usages)) => writeln!(
                    f,
                    "voice policy: {scope} (usages: {})",
                    if usages.is_empty() {
                        "none".to_owned()
                    } else {
                        usages.join(", ")
                    }
                )?,
                None => writeln!(f, "voice policy: (none)")?,
            }
        }
        match &self.outcome {
            Some(Outcome::User(u)) => writeln!(f, "destination: user {u}")?,
            Some(Outcome::Pstn(trunks)) => {
                writeln!(f, "destination: PSTN")?;
                for (i, t) in trunks.iter().enumerate() {
                    let rule = t
                        .translation_rule
                        .as_deref()
                        .map(|r| format!(" (translation rule {r})"))
                        .unwrap_or_default();
                    writeln!(
                        f,
                        "trunk {}:     {} via route {} usage {}: {} {}/{}{rule}",
                        i + 1,
                        t.trunk,
                        t.route,
                        t.usage,
                        t.number,
                        t.gateway,
                        t.transport.as_str()
                    )?;
                }
            }
            Some(Outcome::Refused(r)) => writeln!(f, "refused:     {r}")?,
            None => {}
        }
        Ok(())
    }
}

struct CompiledRule {
    name: String,
    re: Regex,
    translation: String,
}

impl CompiledRule {
    fn new(rule: &Rule) -> Result<CompiledRule, VoiceError> {
        check_name(&rule.name).map_err(|reason| VoiceError::BadName {
            name: rule.name.clone(),
            reason,
        })?;
        // Matched against the whole number, like Lync's anchored rules.
        let anchored = format!("^(?:{})$", rule.pattern);
        let re = regex::RegexBuilder::new(&anchored)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| VoiceError::BadPattern {
                rule: rule.name.clone(),
                pattern: rule.pattern.clone(),
                reason: e.to_string().lines().last().unwrap_or("").trim().to_owned(),
            })?;
        let groups = re.captures_len() - 1;
        for group in translation_groups(&rule.translation) {
            if group > groups {
                return Err(VoiceError::BadTranslation {
                    rule: rule.name.clone(),
                    translation: rule.translation.clone(),
                    group,
                    groups,
                });
            }
        }
        Ok(CompiledRule {
            name: rule.name.clone(),
            re,
            translation: rule.translation.clone(),
        })
    }

    /// The translated number when the rule matches.
    fn apply(&self, number: &str) -> Option<String> {
        let caps = self.re.captures(number)?;
        let mut out = String::with_capacity(self.translation.len() + number.len());
        let mut chars = self.translation.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek().copied() {
                Some('$') => {
                    chars.next();
                    out.push('$');
                }
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    let n = d as usize - '0' as usize;
                    if let Some(m) = caps.get(n) {
                        out.push_str(m.as_str());
                    }
                }
                _ => out.push('$'),
            }
        }
        Some(out)
    }
}

/// The group numbers a translation refers to (`$1`..`$9`; `$$` is a dollar).
fn translation_groups(translation: &str) -> Vec<usize> {
    let mut groups = Vec::new();
    let mut chars = translation.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            continue;
        }
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
            }
            Some(d) if d.is_ascii_digit() => {
                chars.next();
                groups.push(d as usize - '0' as usize);
            }
            _ => {}
        }
    }
    groups
}

/// Whether `s` is E.164 with its `+`: 2 to 15 digits, not starting with 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Parses a line URI (`tel:+14255550100`, or `+14255550100`) into its E.164 number.
pub fn parse_line_uri(s: &str) -> Result<String, VoiceError> {
    let t = s.trim();
    let number = t
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("tel:"))
        .map_or(t, |_| &t[4..]);
    if is_e164(number) {
        Ok(number.to_owned())
    } else {
        Err(VoiceError::BadLineUri(s.to_owned()))
    }
}

/// Removes what people type between digits (spaces, dashes, dots, parentheses).
pub fn strip_visual(dialed: &str) -> String {
    dialed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}

/// Whether a dialed string looks like a phone number (digits, `+`, `*`, `#`,
/// visual separators) rather than a user name.
pub fn is_dial_string(s: &str) -> bool {
    let t = strip_visual(s);
    !t.is_empty()
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'*' || b == b'#' || (b == b'+' && i == 0))
}

struct CompiledPlan {
    scope: Scope,
    rules: Vec<CompiledRule>,
}

struct CompiledRoute {
    name: String,
    re: Regex,
    usages: Vec<String>,
    trunks: Vec<String>,
}

struct CompiledTrunk {
    name: String,
    gateway: SocketAddr,
    transport: TrunkTransport,
    rules: Vec<CompiledRule>,
}

/// The checked, compiled configuration. See the crate documentation.
#[derive(Default)]
pub struct VoiceConfig {
    data: VoiceData,
    plans: Vec<CompiledPlan>,
    routes: Vec<CompiledRoute>,
    trunks: Vec<CompiledTrunk>,
    users: HashMap<String, UserVoice>,
    by_number: HashMap<String, String>,
    homes: Homes,
}

impl fmt::Debug for VoiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceConfig")
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

fn dup_check<'a>(
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), VoiceError> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n.to_ascii_lowercase()) {
            return Err(VoiceError::Duplicate {
                kind,
                name: n.to_owned(),
            });
        }
    }
    Ok(())
}

fn bad_name(name: &str) -> impl FnOnce(&'static str) -> VoiceError + '_ {
    move |reason| VoiceError::BadName {
        name: name.to_owned(),
        reason,
    }
}

impl VoiceConfig {
    /// Checks and compiles `data`; `homes` says where users are homed (their
    /// pool and its site, for `pool:` and `site:` scopes).
    pub fn build(data: VoiceData, homes: Homes) -> Result<VoiceConfig, VoiceError> {
        dup_check("usage", data.usages.iter().map(String::as_str))?;
        for u in &data.usages {
            check_name(u).map_err(bad_name(u))?;
        }
        let usage_known = |u: &str| data.usages.iter().any(|x| x.eq_ignore_ascii_case(u));
        let trunk_known = |t: &str| data.trunks.iter().any(|x| x.name.eq_ignore_ascii_case(t));

        let mut plans = Vec::with_capacity(data.dial_plans.len());
        let scopes: Vec<String> = data
            .dial_plans
            .iter()
            .map(|p| p.scope.to_string())
            .collect();
        dup_check("dial plan", scopes.iter().map(String::as_str))?;
        for p in &data.dial_plans {
            let names: Vec<&str> = p.rules.iter().map(|r| r.name.as_str()).collect();
            dup_check("rule", names.into_iter())?;
            let rules = p
                .rules
                .iter()
                .map(CompiledRule::new)
                .collect::<Result<_, _>>()?;
            plans.push(CompiledPlan {
                scope: p.scope.clone(),
                rules,
            });
        }

        let scopes: Vec<String> = data.policies.iter().map(|p| p.scope.to_string()).collect();
        dup_check("voice policy", scopes.iter().map(String::as_str))?;
        for p in &data.policies {
            if let Scope::Pool(pool) = &p.scope {
                return Err(VoiceError::Invalid {
                    kind: "voice policy",
                    name: format!("pool:{pool}"),
                    reason: "voice policies are global, site:NAME or per-user (Lync has no pool-scoped voice policy)".to_owned(),
                });
            }
            for u in &p.usages {
                if !usage_known(u) {
                    return Err(VoiceError::Unknown {
                        kind: "PSTN usage",
                        name: u.clone(),
                    });
                }
            }
        }

        dup_check("trunk", data.trunks.iter().map(|t| t.name.as_str()))?;
        let mut trunks = Vec::with_capacity(data.trunks.len());
        for t in &data.trunks {
            check_name(&t.name).map_err(bad_name(&t.name))?;
            let names: Vec<&str> = t.rules.iter().map(|r| r.name.as_str()).collect();
            dup_check("rule", names.into_iter())?;
            trunks.push(CompiledTrunk {
                name: t.name.clone(),
                gateway: t.gateway,
                transport: t.transport,
                rules: t
                    .rules
                    .iter()
                    .map(CompiledRule::new)
                    .collect::<Result<_, _>>()?,
            });
        }

        dup_check("route", data.routes.iter().map(|r| r.name.as_str()))?;
        let mut routes = Vec::with_capacity(data.routes.len());
        for r in &data.routes {
            let compiled = CompiledRule::new(&Rule {
                name: r.name.clone(),
                pattern: r.pattern.clone(),
                translation: String::new(),
            })?;
            for u in &r.usages {
                if !usage_known(u) {
                    return Err(VoiceError::Unknown {
                        kind: "PSTN usage",
                        name: u.clone(),
                    });
                }
            }
            for t in &r.trunks {
                if !trunk_known(t) {
                    return Err(VoiceError::Unknown {
                        kind: "trunk",
                        name: t.clone(),
                    });
                }
            }
            routes.push(CompiledRoute {
                name: r.name.clone(),
                re: compiled.re,
                usages: r.usages.clone(),
                trunks: r.trunks.clone(),
            });
        }

        unassigned::check(&data.announcements, &data.unassigned)?;
        park::check(&data.park_orbits)?;

        let mut users = HashMap::with_capacity(data.users.len());
        let mut by_number: HashMap<String, String> = HashMap::new();
        for u in &data.users {
            if let Some(n) = &u.line_uri {
                if !is_e164(n) {
                    return Err(VoiceError::BadLineUri(n.clone()));
                }
                if let Some(owner) = by_number.insert(n.clone(), u.address.clone()) {
                    return Err(VoiceError::DuplicateNumber {
                        number: n.clone(),
                        owner,
                    });
                }
            }
            if let Some(p) = &u.dial_plan
                && !plans.iter().any(|x| x.scope == Scope::User(p.clone()))
            {
                return Err(VoiceError::Unknown {
                    kind: "dial plan",
                    name: p.clone(),
                });
            }
            if let Some(p) = &u.voice_policy
                && !data
                    .policies
                    .iter()
                    .any(|x| x.scope == Scope::User(p.clone()))
            {
                return Err(VoiceError::Unknown {
                    kind: "voice policy",
                    name: p.clone(),
                });
            }
            users.insert(u.address.to_ascii_lowercase(), u.clone());
        }
        Ok(VoiceConfig {
            data,
            plans,
            routes,
            trunks,
            users,
            by_number,
            homes,
        })
    }

    /// The configuration as stored.
    pub fn data(&self) -> &VoiceData {
        &self.data
    }

    /// A user's voice settings.
    pub fn user(&self, address: &str) -> Option<&UserVoice> {
        self.users.get(&address.to_ascii_lowercase())
    }

    /// The user whose line URI is `number` (E.164).
    pub fn user_by_number(&self, number: &str) -> Option<&str> {
        self.by_number.get(number).map(String::as_str)
    }

    /// The trunk whose gateway is `addr`: inbound calls are accepted from these
    /// only. A gateway with port 0 accepts any source port of its address.
    pub fn trunk_at(&self, addr: SocketAddr) -> Option<&str> {
        self.trunks
            .iter()
            .find(|t| {
                t.gateway.ip() == addr.ip()
                    && (t.gateway.port() == addr.port() || t.gateway.port() == 0)
            })
            .map(|t| t.name.as_str())
    }

    /// The trunk whose gateway sent a request from `addr` over `transport`. Over
    /// UDP as [`VoiceConfig::trunk_at`]; over TCP or TLS, whose source port is
    /// the connection's and not the gateway's listening port, a trunk of that
    /// transport at the address's IP.
    pub fn trunk_from(&self, addr: SocketAddr, transport: TrunkTransport) -> Option<&str> {
        if transport == TrunkTransport::Udp {
            return self.trunk_at(addr);
        }
        self.trunks
            .iter()
            .find(|t| t.transport == transport && t.gateway.ip() == addr.ip())
            .map(|t| t.name.as_str())
    }

    /// Whether nothing of Enterprise Voice is configured (no dial plan, no trunk,
    /// no line URI): the server then handles no call as a voice call.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
            && self.trunks.is_empty()
            && self.by_number.is_empty()
            && self.data.unassigned.is_empty()
            && self.data.park_orbits.is_empty()
    }

    /// The announcement for an unassigned `number` (E.164), with its range.
    pub fn unassigned(&self, number: &str) -> Option<(&UnassignedRange, &Announcement)> {
        unassigned::lookup(&self.data.announcements, &self.data.unassigned, number)
    }

    /// The Call Park orbit range holding `number` (digits as dialed).
    pub fn park_orbit(&self, number: &str) -> Option<&ParkOrbit> {
        self.data.park_orbits.iter().find(|o| o.contains(number))
    }

    /// Every Call Park orbit range.
    pub fn park_orbits(&self) -> &[ParkOrbit] {
        &self.data.park_orbits
    }

    /// An announcement by name.
    pub fn announcement(&self, name: &str) -> Option<&Announcement> {
        self.data
            .announcements
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether any trunk is configured.
    pub fn has_trunks(&self) -> bool {
        !self.trunks.is_empty()
    }

    /// Where `user` is homed (their pool and its site).
    pub fn home_of(&self, user: &str) -> Home {
        self.homes.of(user)
    }

    /// The dial plan of `user`, as Lync picks it: the plan assigned to the user,
    /// else their pool's (`pool:FQDN`), else their site's (`site:NAME`), else
    /// the global one. `None` (calls from a gateway): the global plan.
    fn plan_for(&self, user: Option<&str>) -> Option<&CompiledPlan> {
        let mut scopes: Vec<Scope> = Vec::with_capacity(4);
        if let Some(user) = user {
            if let Some(tag) = self.user(user).and_then(|u| u.dial_plan.as_ref()) {
                scopes.push(Scope::User(tag.clone()));
            }
            let home = self.homes.of(user);
            scopes.extend(home.pool.map(Scope::Pool));
            scopes.extend(home.site.map(Scope::Site));
        }
        scopes.push(Scope::Global);
        scopes
            .into_iter()
            .find_map(|s| self.plans.iter().find(|p| p.scope == s))
    }

    /// The voice policy of `user`, as Lync picks it: the policy assigned to the
    /// user, else their site's, else the global one (voice policies have no pool
    /// scope).
    pub fn policy_of(&self, user: &str) -> Option<&VoicePolicy> {
        let mut scopes: Vec<Scope> = Vec::with_capacity(3);
        if let Some(tag) = self.user(user).and_then(|u| u.voice_policy.as_ref()) {
            scopes.push(Scope::User(tag.clone()));
        }
        scopes.extend(self.homes.of(user).site.map(Scope::Site));
        scopes.push(Scope::Global);
        scopes
            .into_iter()
            .find_map(|s| self.data.policies.iter().find(|p| p.scope == s))
    }

    /// Normalizes what `user` dialed (visual separators removed) with the user's
    /// dial plan (user, pool, site, then global scope). An E.164 number that no
    /// rule matches is kept as it is. `user` `None`: the global dial plan (calls
    /// from a gateway).
    pub fn normalize(&self, user: Option<&str>, dialed: &str) -> Result<Normalized, NotNormalized> {
        let stripped = strip_visual(dialed);
        let plan = self.plan_for(user);
        if let Some(plan) = plan {
            for rule in &plan.rules {
                if let Some(n) = rule.apply(&stripped) {
                    if is_e164(&n) {
                        return Ok(Normalized {
                            dial_plan: Some(plan.scope.clone()),
                            rule: Some(rule.name.clone()),
                            number: n,
                        });
                    }
                    return Err(NotNormalized {
                        dialed: dialed.to_owned(),
                        plan: format!(
                            "dial plan {} (rule {} gives {n:?}, not E.164)",
                            plan.scope, rule.name
                        ),
                    });
                }
            }
        }
        if is_e164(&stripped) {
            return Ok(Normalized {
                dial_plan: plan.map(|p| p.scope.clone()),
                rule: None,
                number: stripped,
            });
        }
        Err(NotNormalized {
            dialed: dialed.to_owned(),
            plan: plan.map_or_else(
                || "no dial plan".to_owned(),
                |p| format!("dial plan {}", p.scope),
            ),
        })
    }

    /// The trunks a call from `user` to `number` (E.164) may take, in order:
    /// the caller's voice policy's usages in order, for each the routes naming it
    /// in priority order whose pattern matches, each route's trunks in order
    /// (a trunk appears once).
    pub fn route(&self, user: &str, number: &str) -> Result<Vec<TrunkChoice>, Refusal> {
        if self.user(user).and_then(|u| u.line_uri.as_ref()).is_none() {
            return Err(Refusal::NotVoiceEnabled(user.to_owned()));
        }
        let Some(policy) = self.policy_of(user) else {
            return Err(Refusal::NoPolicy(user.to_owned()));
        };
        let mut out: Vec<TrunkChoice> = Vec::new();
        for usage in &policy.usages {
            for route in &self.routes {
                if !route.usages.iter().any(|u| u.eq_ignore_ascii_case(usage))
                    || !route.re.is_match(number)
                {
                    continue;
                }
                for tname in &route.trunks {
                    if out.iter().any(|c| c.trunk.eq_ignore_ascii_case(tname)) {
                        continue;
                    }
                    let Some(trunk) = self
                        .trunks
                        .iter()
                        .find(|t| t.name.eq_ignore_ascii_case(tname))
                    else {
                        continue;
                    };
                    let (translated, rule) = trunk
                        .rules
                        .iter()
                        .find_map(|r| r.apply(number).map(|n| (n, Some(r.name.clone()))))
                        .unwrap_or_else(|| (number.to_owned(), None));
                    out.push(TrunkChoice {
                        route: route.name.clone(),
                        usage: usage.clone(),
                        trunk: trunk.name.clone(),
                        gateway: trunk.gateway,
                        transport: trunk.transport,
                        number: translated,
                        translation_rule: rule,
                    });
                }
            }
        }
        if out.is_empty() {
            return Err(Refusal::NoRoute {
                policy: policy.scope.to_string(),
                usages: if policy.usages.is_empty() {
                    "none".to_owned()
                } else {
                    policy.usages.join(", ")
                },
                number: number.to_owned(),
            });
        }
        Ok(out)
    }

    /// What a call from `user` to `dialed` would do (Lync's
    /// `Test-CsVoiceNormalizationRule` and `Test-CsVoiceRoute` in one).
    pub fn explain(&self, user: &str, dialed: &str) -> Explanation {
        let normalized = self.normalize(Some(user), dialed);
        let outcome = normalized.as_ref().ok().map(|n| {
            if let Some(owner) = self.user_by_number(&n.number) {
                Outcome::User(owner.to_owned())
            } else {
                match self.route(user, &n.number) {
                    Ok(t) => Outcome::Pstn(t),
                    Err(r) => Outcome::Refused(r),
                }
            }
        });
        Explanation {
            caller: user.to_owned(),
            home: self.homes.of(user),
            dialed: dialed.to_owned(),
            normalized,
            policy: self
                .policy_of(user)
                .map(|p| (p.scope.clone(), p.usages.clone())),
            outcome,
        }
    }
}

#[cfg(test)]
mod tests;
