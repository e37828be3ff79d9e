//! `confab voice ...` and `confab user set --line-uri`: Enterprise Voice
//! administration (the analog of Lync's `*-CsDialPlan`, `*-CsVoiceNormalizationRule`,
//! `*-CsVoicePolicy`, `*-CsPstnUsage`, `*-CsVoiceRoute`, `*-CsTrunkConfiguration`
//! and `Test-CsVoiceRoute` cmdlets) on the server's database.
//!
//! Every change is made on a copy of the whole configuration, checked with
//! `confab_voice::VoiceConfig::build` (patterns compile, names exist, numbers are
//! unique), then saved with the revision it was read at: bad input changes nothing.
//! A running server reloads within about a second (it polls the voice revision).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use confab_store::{Address, Store};
use confab_voice::{
    DialPlan, Homes, Route, Rule, Scope, Trunk, TrunkTransport, UserVoice, VoiceConfig, VoiceData,
    VoicePolicy, check_name, parse_line_uri,
};

use crate::config::ServeConfig;
use crate::voice_homes::HomeSource;

#[derive(Args)]
pub struct VoiceArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: VoiceCommand,
}

#[derive(Subcommand)]
pub enum VoiceCommand {
    /// Dial plans (scope: global, site:NAME, pool:FQDN, or a name assigned to users)
    Dialplan {
        #[command(subcommand)]
        command: DialPlanCommand,
    },
    /// Normalization rules of a dial plan, or translation rules of a trunk (OWNER:
    /// a dial plan scope, or trunk:NAME)
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
    /// Voice policies: the PSTN usages a user's calls may take, in order
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// PSTN usages: what links voice policies to routes
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Voice routes: number patterns, the usages allowed to take them, their trunks
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// Trunks: PSTN gateways or SIP trunks
    Trunk {
        #[command(subcommand)]
        command: TrunkCommand,
    },
    /// Announcements of the Announcement service (audio file or tones, then hang
    /// up or transfer)
    Announcement {
        #[command(subcommand)]
        command: crate::announcement_cli::AnnouncementCommand,
    },
    /// Unassigned-number ranges: calls to these numbers hear an announcement
    Unassigned {
        #[command(subcommand)]
        command: crate::announcement_cli::UnassignedCommand,
    },
    /// Call Park: orbit ranges parked calls wait at
    Park {
        #[command(subcommand)]
        command: crate::park_cli::ParkCommand,
    },
    /// What a call from USER to DIALED would do: the dial plan and rule, the
    /// normalized number, the user or the trunks it reaches, or why it is refused
    TestNumber { user: String, dialed: String },
}

#[derive(Subcommand)]
pub enum DialPlanCommand {
    Add {
        scope: String,
        #[arg(long)]
        description: Option<String>,
    },
    Set {
        scope: String,
        #[arg(long)]
        description: Option<String>,
    },
    List,
    Remove {
        scope: String,
    },
}

#[derive(Subcommand)]
pub enum RuleCommand {
    Add {
        owner: String,
        name: String,
        /// Regular expression matched against the whole number
        #[arg(long)]
        pattern: String,
        /// The result; $1..$9 stand for the pattern's groups
        #[arg(long)]
        translation: String,
        /// 1 = first [default: last]
        #[arg(long)]
        position: Option<usize>,
    },
    Set {
        owner: String,
        name: String,
        #[arg(long)]
        pattern: Option<String>,
        #[arg(long)]
        translation: Option<String>,
        #[arg(long)]
        position: Option<usize>,
    },
    List {
        owner: Option<String>,
    },
    Remove {
        owner: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    Add {
        scope: String,
        /// Comma-separated PSTN usages, in order
        #[arg(long, default_value = "")]
        usages: String,
    },
    Set {
        scope: String,
        #[arg(long)]
        usages: String,
    },
    List,
    Remove {
        scope: String,
    },
}

#[derive(Subcommand)]
pub enum UsageCommand {
    Add { name: String },
    List,
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum RouteCommand {
    Add {
        name: String,
        /// Regular expression matched against the whole E.164 number
        #[arg(long)]
        pattern: String,
        /// Comma-separated PSTN usages
        #[arg(long)]
        usages: String,
        /// Comma-separated trunks, tried in order
        #[arg(long)]
        trunks: String,
        /// 1 = first [default: last]
        #[arg(long)]
        position: Option<usize>,
    },
    Set {
        name: String,
        #[arg(long)]
        pattern: Option<String>,
        #[arg(long)]
        usages: Option<String>,
        #[arg(long)]
        trunks: Option<String>,
        #[arg(long)]
        position: Option<usize>,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TrunkCommand {
    Add {
        name: String,
        /// The gateway's IP:PORT (inbound calls are accepted from this address only)
        #[arg(long, value_name = "IP:PORT")]
        gateway: SocketAddr,
        /// udp, tcp or tls
        #[arg(long, default_value = "udp")]
        transport: String,
    },
    Set {
        name: String,
        #[arg(long, value_name = "IP:PORT")]
        gateway: Option<SocketAddr>,
        #[arg(long)]
        transport: Option<String>,
    },
    List,
    Remove {
        name: String,
    },
}

/// `confab user set`'s voice options (`none` clears one).
#[derive(Args, Default)]
pub struct UserVoiceArgs {
    /// The user's number, tel:+E164 (unique), or none
    #[arg(long, value_name = "tel:+E164")]
    pub line_uri: Option<String>,
    /// A user-scope dial plan, or none
    #[arg(long, value_name = "NAME")]
    pub dial_plan: Option<String>,
    /// A user-scope voice policy, or none
    #[arg(long, value_name = "NAME")]
    pub voice_policy: Option<String>,
}

impl UserVoiceArgs {
    pub fn any(&self) -> bool {
        self.line_uri.is_some() || self.dial_plan.is_some() || self.voice_policy.is_some()
    }
}

/// Runs one `confab voice` command.
pub async fn run(cfg: &ServeConfig, args: VoiceArgs) -> anyhow::Result<()> {
    let store = crate::database::open_store(cfg).await?;
    let result = execute(&store, &HomeSource::for_config(cfg), args.command).await;
    store.close().await;
    result
}

fn list(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for n in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        check_name(n).map_err(|r| anyhow::anyhow!("bad name {n:?}: {r}"))?;
        out.push(n.to_owned());
    }
    Ok(out)
}

fn name(s: &str) -> anyhow::Result<String> {
    check_name(s.trim()).map_err(|r| anyhow::anyhow!("bad name {s:?}: {r}"))?;
    Ok(s.trim().to_owned())
}

fn transport(s: &str) -> anyhow::Result<TrunkTransport> {
    TrunkTransport::parse(s)
        .ok_or_else(|| anyhow::anyhow!("bad transport {s:?}: one of udp, tcp, tls"))
}

/// Why a trunk made from the topology is not changed here (its translation rules
/// are: `confab voice rule ... trunk:NAME`).
fn from_topology(name: &str, what: &str) -> String {
    format!(
        "trunk {name} is the topology's PSTN gateway {name}: {what} and run `confab topology publish`; nothing was changed"
    )
}

/// Inserts at a 1-based position (clamped), or at the end.
fn place<T>(v: &mut Vec<T>, item: T, position: Option<usize>) {
    let at = position
        .map(|p| p.saturating_sub(1).min(v.len()))
        .unwrap_or(v.len());
    v.insert(at, item);
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The rules a rule command's OWNER names.
fn rules_of<'a>(data: &'a mut VoiceData, owner: &str) -> anyhow::Result<&'a mut Vec<Rule>> {
    if let Some(t) = owner.strip_prefix("trunk:") {
        return data
            .trunks
            .iter_mut()
            .find(|x| same(&x.name, t))
            .map(|x| &mut x.rules)
            .with_context(|| format!("unknown trunk {t:?}"));
    }
    let scope = Scope::parse(owner)?;
    data.dial_plans
        .iter_mut()
        .find(|p| p.scope == scope)
        .map(|p| &mut p.rules)
        .with_context(|| format!("unknown dial plan {scope}"))
}

async fn execute(store: &Store, homes: &HomeSource, cmd: VoiceCommand) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let result = apply(store, homes, cmd, &mut buf).await;
    std::io::stdout().write_all(&buf)?;
    result
}

/// Runs one `confab voice` command, writing what the CLI prints to `out`: the one
/// code path of the command line and the Control Panel's voice page. `homes`
/// says where users are homed, for `test-number`'s site and pool scopes.
pub async fn apply<W: Write + Send>(
    store: &Store,
    homes: &HomeSource,
    cmd: VoiceCommand,
    out: &mut W,
) -> anyhow::Result<()> {
    let out = &mut *out;
    let (rev, mut data) = store.voice_data().await?;
    let msg: String = match cmd {
        VoiceCommand::TestNumber { user, dialed } => {
            let user = Address::parse(&user)?.to_string();
            if store.get_user(&user).await?.is_none() {
                bail!("user {user} not found");
            }
            let cfg = VoiceConfig::build(data, homes.load(store).await)
                .context("the stored voice configuration is not valid")?;
            write!(out, "{}", cfg.explain(&user, &dialed))?;
            return Ok(());
        }
        VoiceCommand::Dialplan { command } => match command {
            DialPlanCommand::List => {
                if data.dial_plans.is_empty() {
                    writeln!(out, "no dial plans")?;
                }
                for p in &data.dial_plans {
                    writeln!(
                        out,
                        "{}\t{} rules\t{}",
                        p.scope,
                        p.rules.len(),
                        p.description.as_deref().unwrap_or("")
                    )?;
                }
                return Ok(());
            }
            DialPlanCommand::Add { scope, description } => {
                let scope = Scope::parse(&scope)?;
                if data.dial_plans.iter().any(|p| p.scope == scope) {
                    bail!("dial plan {scope} already exists");
                }
                data.dial_plans.push(DialPlan {
                    scope: scope.clone(),
                    description,
                    rules: Vec::new(),
                });
                format!("added dial plan {scope}")
            }
            DialPlanCommand::Set { scope, description } => {
                let scope = Scope::parse(&scope)?;
                let p = data
                    .dial_plans
                    .iter_mut()
                    .find(|p| p.scope == scope)
                    .with_context(|| format!("unknown dial plan {scope}"))?;
                p.description = description;
                format!("changed dial plan {scope}")
            }
            DialPlanCommand::Remove { scope } => {
                let scope = Scope::parse(&scope)?;
                if !data.dial_plans.iter().any(|p| p.scope == scope) {
                    bail!("unknown dial plan {scope}");
                }
                if let Some(u) = data.users.iter().find(|u| {
                    u.dial_plan
                        .as_ref()
                        .is_some_and(|d| Scope::User(d.clone()) == scope)
                }) {
                    bail!("dial plan {scope} is assigned to {}", u.address);
                }
                data.dial_plans.retain(|p| p.scope != scope);
                format!("removed dial plan {scope}")
            }
        },
        VoiceCommand::Rule { command } => match command {
            RuleCommand::List { owner } => {
                let mut rows: Vec<(String, &Rule)> = Vec::new();
                for p in &data.dial_plans {
                    rows.extend(p.rules.iter().map(|r| (p.scope.to_string(), r)));
                }
                for t in &data.trunks {
                    rows.extend(t.rules.iter().map(|r| (format!("trunk:{}", t.name), r)));
                }
                let owner = owner.map(|o| o.to_ascii_lowercase());
                rows.retain(|(o, _)| owner.as_ref().is_none_or(|w| o == w));
                if rows.is_empty() {
                    writeln!(out, "no rules")?;
                }
                for (o, r) in rows {
                    writeln!(out, "{o}\t{}\t{}\t{}", r.name, r.pattern, r.translation)?;
                }
                return Ok(());
            }
            RuleCommand::Add {
                owner,
                name: n,
                pattern,
                translation,
                position,
            } => {
                let n = name(&n)?;
                let rules = rules_of(&mut data, &owner)?;
                if rules.iter().any(|r| same(&r.name, &n)) {
                    bail!("rule {n:?} of {owner} already exists");
                }
                place(
                    rules,
                    Rule {
                        name: n.clone(),
                        pattern,
                        translation,
                    },
                    position,
                );
                format!("added rule {n} to {owner}")
            }
            RuleCommand::Set {
                owner,
                name: n,
                pattern,
                translation,
                position,
            } => {
                let rules = rules_of(&mut data, &owner)?;
                let i = rules
                    .iter()
                    .position(|r| same(&r.name, &n))
                    .with_context(|| format!("unknown rule {n:?} of {owner}"))?;
                let mut r = rules.remove(i);
                if let Some(p) = pattern {
                    r.pattern = p;
                }
                if let Some(t) = translation {
                    r.translation = t;
                }
                place(rules, r, position.or(Some(i + 1)));
                format!("changed rule {n} of {owner}")
            }
            RuleCommand::Remove { owner, name: n } => {
                let rules = rules_of(&mut data, &owner)?;
                let before = rules.len();
                rules.retain(|r| !same(&r.name, &n));
                if rules.len() == before {
                    bail!("unknown rule {n:?} of {owner}");
                }
                format!("removed rule {n} of {owner}")
            }
        },
        VoiceCommand::Policy { command } => match command {
            PolicyCommand::List => {
                if data.policies.is_empty() {
                    writeln!(out, "no voice policies")?;
                }
                for p in &data.policies {
                    writeln!(out, "{}\t{}", p.scope, p.usages.join(","))?;
                }
                return Ok(());
            }
            PolicyCommand::Add { scope, usages } => {
                let scope = Scope::parse(&scope)?;
                if data.policies.iter().any(|p| p.scope == scope) {
                    bail!("voice policy {scope} already exists");
                }
                data.policies.push(VoicePolicy {
                    scope: scope.clone(),
                    usages: list(&usages)?,
                });
                format!("added voice policy {scope}")
            }
            PolicyCommand::Set { scope, usages } => {
                let scope = Scope::parse(&scope)?;
                let usages = list(&usages)?;
                let p = data
                    .policies
                    .iter_mut()
                    .find(|p| p.scope == scope)
                    .with_context(|| format!("unknown voice policy {scope}"))?;
                p.usages = usages;
                format!("changed voice policy {scope}")
            }
            PolicyCommand::Remove { scope } => {
                let scope = Scope::parse(&scope)?;
                if !data.policies.iter().any(|p| p.scope == scope) {
                    bail!("unknown voice policy {scope}");
                }
                if let Some(u) = data.users.iter().find(|u| {
                    u.voice_policy
                        .as_ref()
                        .is_some_and(|d| Scope::User(d.clone()) == scope)
                }) {
                    bail!("voice policy {scope} is assigned to {}", u.address);
                }
                data.policies.retain(|p| p.scope != scope);
                format!("removed voice policy {scope}")
            }
        },
        VoiceCommand::Usage { command } => match command {
            UsageCommand::List => {
                if data.usages.is_empty() {
                    writeln!(out, "no PSTN usages")?;
                }
                for u in &data.usages {
                    writeln!(out, "{u}")?;
                }
                return Ok(());
            }
            UsageCommand::Add { name: n } => {
                let n = name(&n)?;
                data.usages.push(n.clone());
                format!("added PSTN usage {n}")
            }
            UsageCommand::Remove { name: n } => {
                if let Some(p) = data
                    .policies
                    .iter()
                    .find(|p| p.usages.iter().any(|u| same(u, &n)))
                {
                    bail!("PSTN usage {n:?} is used by voice policy {}", p.scope);
                }
                if let Some(r) = data
                    .routes
                    .iter()
                    .find(|r| r.usages.iter().any(|u| same(u, &n)))
                {
                    bail!("PSTN usage {n:?} is used by route {}", r.name);
                }
                let before = data.usages.len();
                data.usages.retain(|u| !same(u, &n));
                if data.usages.len() == before {
                    bail!("unknown PSTN usage {n:?}");
                }
                format!("removed PSTN usage {n}")
            }
        },
        VoiceCommand::Route { command } => match command {
            RouteCommand::List => {
                if data.routes.is_empty() {
                    writeln!(out, "no routes")?;
                }
                for r in &data.routes {
                    writeln!(
                        out,
                        "{}\t{}\tusages={}\ttrunks={}",
                        r.name,
                        r.pattern,
                        r.usages.join(","),
                        r.trunks.join(",")
                    )?;
                }
                return Ok(());
            }
            RouteCommand::Add {
                name: n,
                pattern,
                usages,
                trunks,
                position,
            } => {
                let n = name(&n)?;
                if data.routes.iter().any(|r| same(&r.name, &n)) {
                    bail!("route {n:?} already exists");
                }
                let route = Route {
                    name: n.clone(),
                    pattern,
                    usages: list(&usages)?,
                    trunks: list(&trunks)?,
                };
                place(&mut data.routes, route, position);
                format!("added route {n}")
            }
            RouteCommand::Set {
                name: n,
                pattern,
                usages,
                trunks,
                position,
            } => {
                let i = data
                    .routes
                    .iter()
                    .position(|r| same(&r.name, &n))
                    .with_context(|| format!("unknown route {n:?}"))?;
                let mut r = data.routes.remove(i);
                if let Some(p) = pattern {
                    r.pattern = p;
                }
                if let Some(u) = usages {
                    r.usages = list(&u)?;
                }
                if let Some(t) = trunks {
                    r.trunks = list(&t)?;
                }
                place(&mut data.routes, r, position.or(Some(i + 1)));
                format!("changed route {n}")
            }
            RouteCommand::Remove { name: n } => {
                let before = data.routes.len();
                data.routes.retain(|r| !same(&r.name, &n));
                if data.routes.len() == before {
                    bail!("unknown route {n:?}");
                }
                format!("removed route {n}")
            }
        },
        VoiceCommand::Announcement { command } => {
            match crate::announcement_cli::announcement(&mut data, command, out)? {
                Some(m) => m,
                None => return Ok(()),
            }
        }
        VoiceCommand::Unassigned { command } => {
            match crate::announcement_cli::unassigned(&mut data, command, out)? {
                Some(m) => m,
                None => return Ok(()),
            }
        }
        VoiceCommand::Park { command } => {
            match crate::park_cli::park(&mut data, command, &mut *out)? {
                Some(m) => m,
                None => return Ok(()),
            }
        }
        VoiceCommand::Trunk { command } => match command {
            TrunkCommand::List => {
                if data.trunks.is_empty() {
                    writeln!(out, "no trunks")?;
                }
                for t in &data.trunks {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{} rules{}",
                        t.name,
                        t.gateway,
                        t.transport.as_str(),
                        t.rules.len(),
                        if t.from_topology {
                            "\ttopology gateway"
                        } else {
                            ""
                        }
                    )?;
                }
                return Ok(());
            }
            TrunkCommand::Add {
                name: n,
                gateway,
                transport: tr,
            } => {
                let n = name(&n)?;
                data.trunks.push(Trunk {
                    from_topology: false,
                    name: n.clone(),
                    gateway,
                    transport: transport(&tr)?,
                    rules: Vec::new(),
                });
                format!("added trunk {n}")
            }
            TrunkCommand::Set {
                name: n,
                gateway,
                transport: tr,
            } => {
                let tr = tr.as_deref().map(transport).transpose()?;
                let t = data
                    .trunks
                    .iter_mut()
                    .find(|t| same(&t.name, &n))
                    .with_context(|| format!("unknown trunk {n:?}"))?;
                if t.from_topology {
                    bail!("{}", from_topology(&t.name, "change its gateway there"));
                }
                if let Some(g) = gateway {
                    t.gateway = g;
                }
                if let Some(tr) = tr {
                    t.transport = tr;
                }
                format!("changed trunk {n}")
            }
            TrunkCommand::Remove { name: n } => {
                if let Some(t) = data
                    .trunks
                    .iter()
                    .find(|t| same(&t.name, &n) && t.from_topology)
                {
                    bail!("{}", from_topology(&t.name, "remove the gateway there"));
                }
                if let Some(r) = data
                    .routes
                    .iter()
                    .find(|r| r.trunks.iter().any(|t| same(t, &n)))
                {
                    bail!("trunk {n:?} is used by route {}", r.name);
                }
                let before = data.trunks.len();
                data.trunks.retain(|t| !same(&t.name, &n));
                if data.trunks.len() == before {
                    bail!("unknown trunk {n:?}");
                }
                format!("removed trunk {n}")
            }
        },
    };
    VoiceConfig::build(data.clone(), Homes::default())
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    store.save_voice_config(rev, &data).await?;
    writeln!(out, "{msg}")?;
    Ok(())
}

/// `confab user set ADDRESS --line-uri ... --dial-plan ... --voice-policy ...`.
pub async fn user_set(
    store: &Store,
    address: &str,
    args: &UserVoiceArgs,
) -> anyhow::Result<String> {
    let address = Address::parse(address)?.to_string();
    if store.get_user(&address).await?.is_none() {
        bail!("user {address} not found");
    }
    let (rev, mut data) = store.voice_data().await?;
    let mut v = data
        .users
        .iter()
        .find(|u| u.address == address)
        .cloned()
        .unwrap_or(UserVoice {
            address: address.clone(),
            line_uri: None,
            dial_plan: None,
            voice_policy: None,
        });
    let none = |s: &str| s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty();
    let mut changed = Vec::new();
    if let Some(l) = &args.line_uri {
        v.line_uri = if none(l) {
            None
        } else {
            Some(parse_line_uri(l)?)
        };
        changed.push(format!(
            "line URI {}",
            v.line_uri
                .as_deref()
                .map_or("cleared".to_owned(), |n| format!("tel:{n}"))
        ));
    }
    if let Some(d) = &args.dial_plan {
        v.dial_plan = if none(d) {
            None
        } else {
            Some(name(d)?.to_ascii_lowercase())
        };
        changed.push(format!(
            "dial plan {}",
            v.dial_plan.as_deref().unwrap_or("cleared")
        ));
    }
    if let Some(p) = &args.voice_policy {
        v.voice_policy = if none(p) {
            None
        } else {
            Some(name(p)?.to_ascii_lowercase())
        };
        changed.push(format!(
            "voice policy {}",
            v.voice_policy.as_deref().unwrap_or("cleared")
        ));
    }
    data.users.retain(|u| u.address != address);
    data.users.push(v.clone());
    VoiceConfig::build(data, Homes::default())
        .map_err(|e| anyhow::anyhow!("{e}; nothing was changed"))?;
    store.set_user_voice(rev, &v).await?;
    Ok(format!("{address}: {}", changed.join(", ")))
}
