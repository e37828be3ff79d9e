//! `confab pool ...`: what the pool's back end says about its front ends.

use std::io::Write;

use clap::{Args, Subcommand};

use crate::config::ServeConfig;
use crate::database::open_store;

#[derive(Args)]
pub struct PoolArgs {
    /// Database URL (the pool's back end) [default: the database option of the
    /// config file]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: PoolCommand,
}

#[derive(Subcommand)]
pub enum PoolCommand {
    /// Each front end of the pool: heartbeat age, live or dead (the `[pool]
    /// lease_ms` of the configuration), homed users and registrations
    Status {
        /// Only this pool [default: every pool in the back end]
        #[arg(long, value_name = "FQDN")]
        pool: Option<String>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &ServeConfig, args: PoolArgs) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let r = match args.command {
        PoolCommand::Status { pool, json } => status(cfg, &store, pool, json).await,
    };
    store.close().await;
    r
}

async fn status(
    cfg: &ServeConfig,
    store: &confab_store::Store,
    only: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let lease = i64::try_from(cfg.pool.lease_ms).unwrap_or(i64::MAX);
    let now = confab_pool::runtime::now_ms();
    let pools = match only {
        Some(p) => vec![p],
        None => store.pool_names().await?,
    };
    let mut out = std::io::stdout().lock();
    let mut doc = Vec::new();
    if pools.is_empty() && !json {
        writeln!(out, "no pool front ends in this database")?;
    }
    for pool in pools {
        let members = store.pool_members(&pool).await?;
        let homes = store.pool_homes(&pool).await?;
        let mut rows = Vec::new();
        for m in &members {
            let age_ms = now.saturating_sub(m.heartbeat_ms).max(0);
            let live = age_ms < lease;
            let users: Vec<&str> = homes
                .iter()
                .filter(|(_, fe)| *fe == m.member)
                .map(|(u, _)| u.as_str())
                .collect();
            rows.push((m, age_ms, live, users));
        }
        if json {
            doc.push(serde_json::json!({
                "pool": pool,
                "lease_ms": lease,
                "front_ends": rows.iter().map(|(m, age, live, users)| serde_json::json!({
                    "member": m.member,
                    "sip": m.sip_addr,
                    "heartbeat_age_ms": age,
                    "state": if *live { "live" } else { "dead" },
                    "homed_users": users,
                    "registrations": if *live { m.registrations } else { 0 },
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        writeln!(out, "pool {pool} (lease {:.1} s)", lease as f64 / 1000.0)?;
        writeln!(
            out,
            "  {:<28} {:<22} {:>10} {:<5} {:>6} {:>13}",
            "front end", "sip", "heartbeat", "state", "users", "registrations"
        )?;
        for (m, age, live, users) in &rows {
            writeln!(
                out,
                "  {:<28} {:<22} {:>8.1}s {:<5} {:>6} {:>13}",
                m.member,
                m.sip_addr,
                *age as f64 / 1000.0,
                if *live { "live" } else { "dead" },
                users.len(),
                // A dead front end's last count is stale: its clients are gone.
                if *live { m.registrations } else { 0 },
            )?;
        }
        for (m, _, _, users) in &rows {
            if !users.is_empty() {
                writeln!(out, "  users homed on {}: {}", m.member, users.join(", "))?;
            }
        }
    }
    if json {
        writeln!(out, "{}", serde_json::Value::Array(doc))?;
    }
    Ok(())
}
