//! `confab bootstrap`: prepares this machine for its roles in the published
//! topology (Lync's Bootstrapper): prerequisite checks, data directories,
//! databases and schema, certificate, and a local replica of the topology.
//! Running it again changes nothing and says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use confab_prereq::{Plan, Status, StoreTarget, SystemHost, Target, host_fqdn};
use confab_topology::cms::{CentralStore, Published};
use confab_topology::local::{LocalReplica, Pointer};
use confab_topology::{StoreKind, Topology, TopologyError, db};

use crate::cmd_topology::{default_cms_url, load_valid};

#[derive(Args)]
pub struct BootstrapArgs {
    /// Central store URL [default: the one recorded in the data directory, else the
    /// Standard Edition back end DATA/confab.db]
    #[arg(long, value_name = "URL", conflicts_with = "topology")]
    pub cms: Option<String>,
    /// Find the central store from this topology file (the published version is used)
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// This machine's FQDN in the topology [default: the host name]
    #[arg(long, value_name = "FQDN")]
    pub fqdn: Option<String>,
    /// Accepted for compatibility and ignored: warnings never stop bootstrap
    /// (failures do)
    #[arg(long, hide = true)]
    pub force: bool,
}

/// One thing bootstrap made sure of.
struct Done {
    changed: bool,
    what: String,
}

impl Done {
    fn new(changed: bool, what: impl Into<String>) -> Done {
        Done {
            changed,
            what: what.into(),
        }
    }
}

/// The published topology this machine follows, if any.
struct Source {
    url: String,
    published: Published,
    topology: Topology,
}

async fn latest_at(url: &str) -> anyhow::Result<Option<Published>> {
    match CentralStore::open_existing(url).await {
        Ok(cms) => {
            let latest = cms.latest().await?;
            cms.close().await;
            Ok(latest)
        }
        Err(TopologyError::NotPublished) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn find_source(args: &BootstrapArgs, data_dir: &Path) -> anyhow::Result<Option<Source>> {
    let mut file_sha = None;
    let (url, required) = if let Some(url) = &args.cms {
        (url.clone(), true)
    } else if let Some(file) = &args.topology {
        let (source, topology) = load_valid(file)?;
        file_sha = Some(confab_topology::cms::sha256_hex(&source));
        let url = topology
            .central_store()
            .and_then(|s| s.connection_url(data_dir))
            .context("the topology names no central store")?;
        (url, true)
    } else if let Some(replica) = LocalReplica::load(data_dir)? {
        (replica.pointer.url, true)
    } else {
        (default_cms_url(data_dir)?, false)
    };
    let Some(published) = latest_at(&url).await? else {
        if required {
            bail!(
                "no topology has been published to the central store at {}: run `confab topology publish FILE` first",
                db::redact(&url)
            );
        }
        return Ok(None);
    };
    if let Some(sha) = file_sha
        && sha != published.sha256
    {
        eprintln!(
            "note: {} differs from published version {}; bootstrapping from the published version (publish the file to use it)",
            args.topology
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            published.version
        );
    }
    let topology = Topology::parse(&published.source)
        .map_err(|e| anyhow::anyhow!("published version {}: {e}", published.version))?;
    Ok(Some(Source {
        url,
        published,
        topology,
    }))
}

pub async fn run(args: BootstrapArgs, data_dir: &Path) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(data_dir).context("resolving the data directory")?;
    let source = find_source(&args, &data_dir).await?;
    let recorded_fqdn = LocalReplica::load(&data_dir)
        .ok()
        .flatten()
        .and_then(|r| r.pointer.fqdn);
    let fqdn = args
        .fqdn
        .clone()
        .or(recorded_fqdn)
        .unwrap_or_else(host_fqdn)
        .to_ascii_lowercase();
    let mut plan = match &source {
        Some(s) => Plan::from_topology(&s.topology, &fqdn, &data_dir)?,
        None => Plan::standard_default(&fqdn, &data_dir),
    };
    plan.bootstrap = true;

    let roles: Vec<&str> = plan.roles.iter().map(|r| r.as_str()).collect();
    match &source {
        Some(s) => println!(
            "Bootstrapping {} (pool {}, {} edition: {}) from topology version {} in {}",
            plan.fqdn,
            plan.pool,
            plan.edition,
            roles.join(", "),
            s.published.version,
            db::redact(&s.url)
        ),
        None => println!(
            "Bootstrapping {} as a Standard Edition server (no published topology: the zero-configuration default)",
            plan.fqdn
        ),
    }

    let steps = 4 + plan.stores.len() as u64 + u64::from(source.is_some()) * 2;
    let bar = indicatif::ProgressBar::new(steps);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }

    // 1. Prerequisites.
    bar.set_message("checking prerequisites");
    let outcome = confab_prereq::run(&SystemHost, &plan).await;
    bar.inc(1);
    bar.suspend(|| print!("{}", outcome.render()));
    let failed = outcome.count(Status::Fail);
    let warned = outcome.count(Status::Warn);
    if failed > 0 {
        bar.abandon();
        bail!("refusing to bootstrap: {failed} prerequisite check(s) failed (see the fixes above)");
    }
    // Warnings warn (they are printed above and summed up at the end); only
    // failures stop bootstrap.
    let _ = args.force;

    let mut done: Vec<Done> = Vec::new();

    // 2. Data directory.
    bar.set_message("data directory");
    done.push(ensure_dir(&data_dir, "data directory")?);
    bar.inc(1);

    // 3. Stores.
    for s in &plan.stores {
        bar.set_message(format!("store {}", s.name));
        done.push(prepare_store(s).await?);
        bar.inc(1);
    }

    // 4. Certificate.
    bar.set_message("certificate");
    let names = plan.certificate_names();
    let tls = confab_tls::load_or_create(&data_dir, &names).context("preparing the certificate")?;
    let mut cert_note = None;
    if tls.created {
        done.push(Done::new(
            true,
            format!(
                "created a self-signed certificate {} for {}",
                tls.cert_path.display(),
                confab_tls::self_signed_names(&names).join(", ")
            ),
        ));
        cert_note = Some(format!(
            "The certificate is self-signed: clients will not trust it. To replace it, put a CA-issued certificate chain (PEM, leaf first) in {} and its private key in {}, with {} in the subject alternative names, then restart confab.",
            tls.cert_path.display(),
            tls.key_path.display(),
            names.join(" and ")
        ));
    } else {
        done.push(Done::new(
            false,
            format!("certificate {} is in place", tls.cert_path.display()),
        ));
    }
    bar.inc(1);

    // 5. Local replica and the central store's record of this machine.
    if let Some(s) = &source {
        bar.set_message("local topology replica");
        let replica = LocalReplica {
            pointer: Pointer {
                url: s.url.clone(),
                version: s.published.version,
                fqdn: Some(plan.fqdn.clone()),
            },
            source: Some(s.published.source.clone()),
        };
        let changed = replica.save(&data_dir)?;
        done.push(Done::new(
            changed,
            format!(
                "local replica of topology version {} in {}",
                s.published.version,
                confab_topology::local::dir(&data_dir).display()
            ),
        ));
        bar.inc(1);

        bar.set_message("central store record");
        let cms = CentralStore::open_existing(&s.url).await?;
        let changed = cms
            .record_machine(
                &plan.fqdn,
                &plan.pool,
                &roles.join(","),
                s.published.version,
            )
            .await?;
        cms.close().await;
        done.push(Done::new(
            changed,
            format!(
                "central store records {} as bootstrapped from version {}",
                plan.fqdn, s.published.version
            ),
        ));
        bar.inc(1);
    }
    bar.set_message("done");
    bar.finish_and_clear();

    let changes = done.iter().filter(|d| d.changed).count();
    println!();
    for d in &done {
        println!(
            "  {}  {}",
            if d.changed { "changed  " } else { "unchanged" },
            d.what
        );
    }
    println!();
    if changes == 0 {
        println!(
            "Nothing to do: {} is already bootstrapped{}; nothing was changed.",
            plan.fqdn,
            source
                .as_ref()
                .map(|s| format!(" for topology version {}", s.published.version))
                .unwrap_or_default()
        );
    } else {
        println!(
            "Bootstrapped {} for {}: {changes} change(s).",
            plan.fqdn,
            roles.join(", ")
        );
    }
    if let Some(note) = cert_note {
        println!("{note}");
    }
    if warned > 0 {
        println!(
            "Proceeded with {warned} prerequisite warning(s): see the WARN lines above and their fixes."
        );
    }
    Ok(())
}

fn ensure_dir(dir: &Path, what: &str) -> anyhow::Result<Done> {
    if dir.is_dir() {
        return Ok(Done::new(false, format!("{what} {} exists", dir.display())));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Done::new(true, format!("created {what} {}", dir.display())))
}

async fn prepare_store(s: &StoreTarget) -> anyhow::Result<Done> {
    let (url, place) = match &s.target {
        Target::Directory(dir) => {
            return ensure_dir(dir, &format!("{} store {:?}:", s.kind, s.name));
        }
        Target::Sqlite(path) => (db::sqlite_url(path), format!("SQLite {}", path.display())),
        Target::Postgres(url) => (url.clone(), format!("PostgreSQL {}", db::redact(url))),
    };
    let label = format!("{} store {:?} ({place})", s.kind, s.name);
    let created = db::ensure_database(&url)
        .await
        .with_context(|| format!("creating the database of {label}"))?;
    let created_text = if created {
        "created the database; "
    } else {
        ""
    };
    if s.kind == StoreKind::BackEnd {
        let (changed, detail) = prepare_back_end(&url)
            .await
            .with_context(|| format!("preparing {label}"))?;
        return Ok(Done::new(
            created || changed,
            format!("{label}: {created_text}{detail}"),
        ));
    }
    let component = s.kind.as_str();
    let changed = db::ensure_schema_version(&url, component)
        .await
        .with_context(|| format!("preparing {label}"))?;
    Ok(Done::new(
        created || changed,
        format!(
            "{label}: {created_text}{}",
            if changed {
                "created its schema"
            } else {
                "schema in place"
            }
        ),
    ))
}

/// The back-end store: the user store's migrations. Returns whether any
/// migration ran, and a description.
///
/// This is the one place that knows how the user store is created; point it
/// elsewhere if the store's API changes.
async fn prepare_back_end(url: &str) -> anyhow::Result<(bool, String)> {
    let before = db::migration_count(url).await.unwrap_or(0);
    let store = confab_store::Store::open(url).await?;
    store.close().await;
    let after = db::migration_count(url).await.unwrap_or(0);
    Ok(if after > before {
        (
            true,
            format!(
                "applied {} schema migration(s) (now {after})",
                after - before
            ),
        )
    } else {
        (false, format!("schema up to date ({after} migrations)"))
    })
}
