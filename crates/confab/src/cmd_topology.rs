//! `confab topology`: write, validate, publish and read back the deployment's
//! topology (Lync's Topology Builder and central management store).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use confab_topology::cms::{CentralStore, PublishOutcome, format_time};
use confab_topology::local::{LocalReplica, Pointer};
use confab_topology::starter::{StarterOptions, starter};
use confab_topology::{Edition, Topology, TopologyError, db, diff, validate};

#[derive(Args)]
pub struct TopologyArgs {
    #[command(subcommand)]
    pub command: TopologyCommand,
}

#[derive(Subcommand)]
pub enum TopologyCommand {
    /// Write a commented starter topology
    New(NewArgs),
    /// Check every rule; explain each problem with its line
    Validate {
        /// Topology file (TOML)
        file: PathBuf,
        /// Print the diagnostics as JSON
        #[arg(long)]
        json: bool,
    },
    /// Validate and store the topology as the next version in the central store,
    /// and make a voice trunk of each of its PSTN gateways
    Publish {
        /// Topology file (TOML)
        file: PathBuf,
        /// Central store URL [default: the back end of the topology's first front-end pool]
        #[arg(long, value_name = "URL")]
        cms: Option<String>,
        /// A note kept with the version
        #[arg(long, value_name = "TEXT", default_value = "")]
        comment: String,
    },
    /// Print a published version (the latest by default) and the machines bootstrapped from it
    Show {
        /// Version to show [default: the latest]
        #[arg(long, value_name = "N")]
        version: Option<i64>,
        #[command(flatten)]
        cms: CmsArg,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the published versions
    History {
        #[command(flatten)]
        cms: CmsArg,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// What changed between two published versions (default: the last two), or
    /// between the latest and a file (--file)
    Diff {
        /// Older version [default: the one before NEW]
        from: Option<i64>,
        /// Newer version [default: the latest]
        to: Option<i64>,
        /// Compare the latest published version with this file instead
        #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to"])]
        file: Option<PathBuf>,
        /// Also print a line-by-line diff of the text
        #[arg(long)]
        text: bool,
        #[command(flatten)]
        cms: CmsArg,
    },
}

#[derive(Args)]
pub struct NewArgs {
    /// standard (one server, SQLite) or enterprise (a pool of front ends, PostgreSQL)
    #[arg(long, value_name = "EDITION", value_parser = parse_edition)]
    pub edition: Edition,
    /// FQDN of the Standard Edition server, or of each Enterprise front end (repeat)
    #[arg(long, value_name = "FQDN", required = true)]
    pub fqdn: Vec<String>,
    /// Enterprise pool FQDN [default: pool01.<domain of the first machine>]
    #[arg(long, value_name = "FQDN")]
    pub pool: Option<String>,
    /// SIP domain [default: the domain of the first machine]
    #[arg(long, value_name = "DOMAIN")]
    pub sip_domain: Option<String>,
    /// Where to write it ("-" for standard output)
    #[arg(long, short, value_name = "FILE", default_value = "topology.toml")]
    pub output: PathBuf,
    /// Overwrite an existing file
    #[arg(long)]
    pub force: bool,
}

/// Where the central management store is.
#[derive(Args, Clone)]
pub struct CmsArg {
    /// Central store URL [default: the one recorded in the data directory by publish or
    /// bootstrap, else the Standard Edition back end DATA/confab.db]
    #[arg(long, value_name = "URL")]
    pub cms: Option<String>,
}

fn parse_edition(s: &str) -> Result<Edition, String> {
    s.parse()
}

/// The default Standard Edition back end, which holds the central store when no
/// topology says otherwise.
pub fn default_cms_url(data_dir: &Path) -> anyhow::Result<String> {
    let abs = std::path::absolute(data_dir.join(confab_prereq::plan::DEFAULT_BACKEND_FILE))
        .context("resolving the data directory")?;
    Ok(db::sqlite_url(&abs))
}

/// The central store: `--cms`, else the data directory's record, else the
/// Standard Edition default.
pub fn resolve_cms(data_dir: &Path, flag: Option<&str>) -> anyhow::Result<String> {
    if let Some(url) = flag {
        return Ok(url.to_string());
    }
    if let Some(replica) = LocalReplica::load(data_dir)? {
        return Ok(replica.pointer.url);
    }
    default_cms_url(data_dir)
}

/// An absolute data directory, so that relative SQLite paths in a topology become
/// stable URLs.
pub fn absolute_data_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(data_dir).context("resolving the data directory")
}

/// Reads, parses and validates a topology file, printing the diagnostics to
/// standard error. Fails on errors.
pub fn load_valid(file: &Path) -> anyhow::Result<(String, Topology)> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let topology = Topology::parse(&source).map_err(|e| parse_error(&name, &e))?;
    let report = validate(&topology, &source);
    if !report.diagnostics.is_empty() {
        eprint!("{}", report.render(&name));
    }
    let errors = report.errors().count();
    if errors > 0 {
        bail!("{name} has {errors} error(s); nothing was changed");
    }
    Ok((source, topology))
}

fn parse_error(file: &str, e: &TopologyError) -> anyhow::Error {
    match e {
        TopologyError::Parse {
            message,
            line: Some(l),
            column,
        } => anyhow::anyhow!("{file}:{l}:{}: {message}", column.unwrap_or(1)),
        other => anyhow::anyhow!("{file}: {other}"),
    }
}

fn publisher() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", confab_prereq::host_fqdn())
}

async fn open_existing(url: &str) -> anyhow::Result<CentralStore> {
    match CentralStore::open_existing(url).await {
        Ok(c) => Ok(c),
        Err(TopologyError::NotPublished) => bail!(
            "no topology has been published to the central store at {} (publish one with `confab topology publish FILE`, or name the store with --cms)",
            db::redact(url)
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(args: TopologyArgs, data_dir: &Path) -> anyhow::Result<()> {
    let data_dir = absolute_data_dir(data_dir)?;
    match args.command {
        TopologyCommand::New(a) => new(a),
        TopologyCommand::Validate { file, json } => validate_cmd(&file, json),
        TopologyCommand::Publish { file, cms, comment } => {
            publish(&file, cms.as_deref(), &comment, &data_dir).await
        }
        TopologyCommand::Show { version, cms, json } => {
            show(&data_dir, cms.cms.as_deref(), version, json).await
        }
        TopologyCommand::History { cms, json } => {
            history(&data_dir, cms.cms.as_deref(), json).await
        }
        TopologyCommand::Diff {
            from,
            to,
            file,
            text,
            cms,
        } => {
            diff_cmd(
                &data_dir,
                cms.cms.as_deref(),
                from,
                to,
                file.as_deref(),
                text,
            )
            .await
        }
    }
}

fn new(a: NewArgs) -> anyhow::Result<()> {
    let text = starter(&StarterOptions {
        edition: a.edition,
        machines: a.fqdn,
        pool: a.pool,
        sip_domain: a.sip_domain,
    })?;
    if a.output.as_os_str() == "-" {
        print!("{text}");
        return Ok(());
    }
    if a.output.exists() && !a.force {
        bail!(
            "{} exists; pass --force to overwrite it",
            a.output.display()
        );
    }
    std::fs::write(&a.output, &text).with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "Wrote a {} Edition starter topology to {}.\nEdit it, then run `confab topology validate {}` and `confab topology publish {}`.",
        match a.edition {
            Edition::Standard => "Standard",
            Edition::Enterprise => "Enterprise",
        },
        a.output.display(),
        a.output.display(),
        a.output.display()
    );
    Ok(())
}

fn validate_cmd(file: &Path, json: bool) -> anyhow::Result<()> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let topology = match Topology::parse(&source) {
        Ok(t) => t,
        Err(e) => {
            if json {
                let v = serde_json::json!({
                    "file": name,
                    "valid": false,
                    "diagnostics": [{
                        "severity": "error",
                        "rule": "syntax",
                        "message": match &e { TopologyError::Parse { message, .. } => message.clone(), other => other.to_string() },
                        "line": e.line(),
                        "column": e.column(),
                    }],
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            return Err(parse_error(&name, &e));
        }
    };
    let report = validate(&topology, &source);
    let errors = report.errors().count();
    if json {
        let v = serde_json::json!({
            "file": name,
            "valid": errors == 0,
            "diagnostics": report.diagnostics,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.render(&name));
        if errors == 0 {
            let counts = confab_topology::validate::role_counts(&topology);
            let roles: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            println!(
                "{name} is valid: {} pool(s), {} machine(s) ({}), {} store(s)",
                topology.pools.len(),
                topology.machines().count(),
                roles.join(", "),
                topology.stores.len()
            );
        }
    }
    if errors > 0 {
        bail!("{name} has {errors} error(s)");
    }
    Ok(())
}

async fn publish(
    file: &Path,
    cms_flag: Option<&str>,
    comment: &str,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let (source, topology) = load_valid(file)?;
    let url = match cms_flag {
        Some(u) => u.to_string(),
        None => topology
            .central_store()
            .and_then(|s| s.connection_url(data_dir))
            .context(
                "the topology names no central store (a back-end store of a front-end pool)",
            )?,
    };
    let cms = CentralStore::open(&url)
        .await
        .with_context(|| format!("opening the central store at {}", db::redact(&url)))?;
    let previous = cms.latest().await?;
    // Trunks from the gateways: read and checked before anything is published,
    // saved after (crate::topology_trunks).
    let old = previous
        .as_ref()
        .and_then(|p| Topology::parse(&p.source).ok());
    let trunks = crate::topology_trunks::prepare(&topology, old.as_ref(), data_dir).await?;
    let outcome = cms.publish(&source, &publisher(), comment).await?;
    match outcome {
        PublishOutcome::Unchanged { version } => println!(
            "Unchanged: {} is identical to published version {version} in {}.",
            file.display(),
            cms.display_url()
        ),
        PublishOutcome::Published { version } => {
            println!(
                "Published {} as topology version {version} in the central store {}.",
                file.display(),
                cms.display_url()
            );
            if let Some(prev) = previous
                && let Ok(old) = Topology::parse(&prev.source)
            {
                let changes = diff::changes(&old, &topology);
                println!(
                    "{} change(s) since version {}:",
                    changes.len(),
                    prev.version
                );
                for c in changes {
                    println!("  {c}");
                }
            }
            println!("Run `confab bootstrap` on each machine to prepare it for its roles.");
        }
    }
    cms.close().await;
    crate::topology_trunks::commit(trunks).await?;
    // Remember where the central store is, keeping what a bootstrap recorded.
    let mut replica = LocalReplica::load(data_dir)?.unwrap_or(LocalReplica {
        pointer: Pointer {
            url: url.clone(),
            version: 0,
            fqdn: None,
        },
        source: None,
    });
    replica.pointer.url = url;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    replica.save(data_dir)?;
    Ok(())
}

fn summary(t: &Topology) -> String {
    let mut out = String::new();
    out.push_str(&format!("SIP domains: {}\n", t.sip_domains().join(", ")));
    for p in &t.pools {
        let roles: Vec<&str> = p.roles().iter().map(|r| r.as_str()).collect();
        out.push_str(&format!(
            "pool {} ({} edition, site {}): {}\n",
            p.fqdn(),
            p.edition(),
            p.site.get_ref(),
            roles.join(", ")
        ));
        for m in &p.machines {
            let r: Vec<&str> = m.roles().iter().map(|r| r.as_str()).collect();
            out.push_str(&format!("  machine {}: {}\n", m.fqdn(), r.join(", ")));
            if m.has_role(confab_topology::Role::PersistentChat)
                && m.chat_state() == confab_topology::ChatState::Passive
            {
                out.push_str(&format!(
                    "    passive Persistent Chat server: `confab chat pool activate {}` makes it serve\n",
                    m.fqdn()
                ));
            }
        }
    }
    for g in &t.gateways {
        out.push_str(&format!(
            "gateway {}: {}:{}/{} via pool {}{}\n",
            g.trunk_name(),
            g.address.get_ref().trim(),
            g.port(),
            g.transport(),
            g.mediation_pool.get_ref(),
            g.site(t).map(|s| format!(", site {s}")).unwrap_or_default()
        ));
    }
    out
}

async fn show(
    data_dir: &Path,
    cms_flag: Option<&str>,
    version: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let url = resolve_cms(data_dir, cms_flag)?;
    let cms = open_existing(&url).await?;
    let published = match version {
        Some(v) => cms
            .version(v)
            .await?
            .ok_or(TopologyError::NoSuchVersion(v))?,
        None => cms.latest().await?.ok_or(TopologyError::NotPublished)?,
    };
    let machines = cms.machines().await?;
    cms.close().await;
    if json {
        let v = serde_json::json!({ "published": published, "machines": machines });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "topology version {} published {} by {}{}",
        published.version,
        format_time(published.published_at),
        published.published_by,
        if published.comment.is_empty() {
            String::new()
        } else {
            format!(": {}", published.comment)
        }
    );
    println!("central store: {}", db::redact(&url));
    if let Ok(t) = Topology::parse(&published.source) {
        print!("{}", summary(&t));
    }
    if !machines.is_empty() {
        println!("bootstrapped machines:");
        for m in &machines {
            println!(
                "  {} (pool {}, {}): version {}{} at {}",
                m.fqdn,
                m.pool,
                m.roles,
                m.version,
                if m.version < published.version && version.is_none() {
                    " (out of date: run confab bootstrap there)"
                } else {
                    ""
                },
                format_time(m.bootstrapped_at)
            );
        }
    }
    println!("---");
    print!("{}", published.source);
    if !published.source.ends_with('\n') {
        println!();
    }
    Ok(())
}

async fn history(data_dir: &Path, cms_flag: Option<&str>, json: bool) -> anyhow::Result<()> {
    let url = resolve_cms(data_dir, cms_flag)?;
    let cms = open_existing(&url).await?;
    let all = cms.history().await?;
    cms.close().await;
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|p| {
                serde_json::json!({
                    "version": p.version,
                    "published_at": p.published_at,
                    "published_by": p.published_by,
                    "sha256": p.sha256,
                    "comment": p.comment,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no topology has been published to {}", db::redact(&url));
        return Ok(());
    }
    println!(
        "{:>7}  {:<23}  {:<24}  {:<12}  comment",
        "version", "published", "by", "sha256"
    );
    for p in &all {
        println!(
            "{:>7}  {:<23}  {:<24}  {:<12}  {}",
            p.version,
            format_time(p.published_at),
            p.published_by,
            p.sha256.get(..12).unwrap_or(&p.sha256),
            p.comment
        );
    }
    Ok(())
}

async fn diff_cmd(
    data_dir: &Path,
    cms_flag: Option<&str>,
    from: Option<i64>,
    to: Option<i64>,
    file: Option<&Path>,
    text: bool,
) -> anyhow::Result<()> {
    let url = resolve_cms(data_dir, cms_flag)?;
    let cms = open_existing(&url).await?;
    let latest = cms.latest().await?.ok_or(TopologyError::NotPublished)?;
    let (old_name, old_src, new_name, new_src) = if let Some(f) = file {
        let src = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        (
            format!("version {}", latest.version),
            latest.source.clone(),
            f.display().to_string(),
            src,
        )
    } else {
        let to_v = to.unwrap_or(latest.version);
        let from_v = from.unwrap_or(to_v - 1);
        if from.is_some() && to.is_none() && from_v == latest.version {
            bail!("version {from_v} is the latest: name an older one");
        }
        let new = cms
            .version(to_v)
            .await?
            .ok_or(TopologyError::NoSuchVersion(to_v))?;
        let old = if from_v < 1 {
            bail!("only version {to_v} is published: nothing to compare it with");
        } else {
            cms.version(from_v)
                .await?
                .ok_or(TopologyError::NoSuchVersion(from_v))?
        };
        (
            format!("version {from_v}"),
            old.source,
            format!("version {to_v}"),
            new.source,
        )
    };
    cms.close().await;
    let old_t = Topology::parse(&old_src).map_err(|e| parse_error(&old_name, &e))?;
    let new_t = Topology::parse(&new_src).map_err(|e| parse_error(&new_name, &e))?;
    let changes = diff::changes(&old_t, &new_t);
    println!("{old_name} -> {new_name}: {} change(s)", changes.len());
    for c in &changes {
        println!("  {c}");
    }
    if text && let Some(d) = diff::text_diff(&old_src, &new_src) {
        println!("--- {old_name}\n+++ {new_name}");
        print!("{d}");
    }
    Ok(())
}

/// What the Control Panel's topology page shows: the published version (or why
/// there is none), its pools, machines and roles, the validation diagnostics of
/// the published text, and the machines bootstrapped from it.
pub async fn status_json(data_dir: &Path) -> anyhow::Result<serde_json::Value> {
    let data_dir = absolute_data_dir(data_dir)?;
    let url = resolve_cms(&data_dir, None)?;
    let cms = match CentralStore::open_existing(&url).await {
        Ok(c) => c,
        Err(TopologyError::NotPublished) => {
            return Ok(serde_json::json!({
                "published": null,
                "message": "No topology has been published: this server runs as a Standard Edition server with its built-in defaults. Publish one with `confab topology publish FILE`.",
            }));
        }
        Err(e) => return Err(e.into()),
    };
    let latest = cms.latest().await;
    let machines = cms.machines().await;
    cms.close().await;
    let Some(published) = latest? else {
        return Ok(serde_json::json!({
            "published": null,
            "message": "No topology has been published yet.",
        }));
    };
    let machines = machines?;
    let (pools, gateways, validation) = match Topology::parse(&published.source) {
        Ok(t) => {
            let report = validate(&t, &published.source);
            let pools: Vec<_> = t
                .pools
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "fqdn": p.fqdn(),
                        "edition": p.edition().to_string(),
                        "site": p.site.get_ref(),
                        "roles": p.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                        "machines": p.machines.iter().map(|m| serde_json::json!({
                            "fqdn": m.fqdn(),
                            "roles": m.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let gateways: Vec<_> = t
                .gateways
                .iter()
                .map(|g| {
                    serde_json::json!({
                        "trunk": g.trunk_name(),
                        "address": g.address.get_ref().trim(),
                        "port": g.port(),
                        "transport": g.transport().as_str(),
                        "mediation_pool": g.mediation_pool.get_ref(),
                        "site": g.site(&t),
                    })
                })
                .collect();
            let errors = report.errors().count();
            let validation = serde_json::json!({
                "errors": errors,
                "warnings": report.diagnostics.len() - errors,
                "text": report.render("published topology"),
            });
            (pools, gateways, validation)
        }
        Err(e) => (
            Vec::new(),
            Vec::new(),
            serde_json::json!({ "errors": 1, "warnings": 0, "text": e.to_string() }),
        ),
    };
    Ok(serde_json::json!({
        "published": {
            "version": published.version,
            "published_at": format_time(published.published_at),
            "published_by": published.published_by,
            "comment": published.comment,
        },
        "sip_domains": Topology::parse(&published.source).map(|t| t.sip_domains()).unwrap_or_default(),
        "pools": pools,
        "gateways": gateways,
        "validation": validation,
        "machines": machines.iter().map(|m| serde_json::json!({
            "fqdn": m.fqdn,
            "pool": m.pool,
            "roles": m.roles,
            "version": m.version,
            "current": m.version >= published.version,
            "bootstrapped_at": format_time(m.bootstrapped_at),
        })).collect::<Vec<_>>(),
    }))
}
