//! Persistent Chat compliance in the binary: starting the compliance service beside
//! the chat service (`confab serve`), and `confab chat compliance export`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use confab_compliance::service::{ComplianceConfig, drain, now_ms, write_export};
use confab_compliance::{ComplianceDb, EventFilter, Format};
use confab_store::Store;
use tokio::sync::watch;

use crate::config::ServeConfig;

#[derive(Subcommand)]
pub enum ComplianceCommand {
    /// Export compliance records (drains what the server has not copied yet first)
    Export {
        /// Events at or after DATE (YYYY-MM-DD or RFC 3339) [default: all]
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Events before DATE [default: now]
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Only this room (name or ma-chan:// URI)
        #[arg(long, value_name = "ROOM")]
        room: Option<String>,
        /// xml (Lync's compliance XML) or csv
        #[arg(long, default_value = "xml")]
        format: String,
        /// One file per room
        #[arg(long)]
        per_room: bool,
        /// Output directory (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

async fn open_db(cfg: &ServeConfig) -> anyhow::Result<ComplianceDb> {
    let url = cfg.compliance_database_url()?;
    ComplianceDb::open(&url).await.with_context(|| {
        format!(
            "opening the compliance database {}",
            confab_store::redact_url(&url)
        )
    })
}

/// Turns the store's compliance flag on or off and, when on, starts the compliance
/// service (drain + scheduled export) on `chat_store`.
pub async fn start(
    cfg: &ServeConfig,
    chat_store: &Store,
    metrics: std::sync::Arc<confab_frontend::Metrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    chat_store
        .set_chat_compliance(cfg.chat.compliance)
        .await
        .context("setting the chat store's compliance flag")?;
    if !cfg.chat.compliance {
        return Ok(None);
    }
    let db = open_db(cfg).await?;
    let mut ccfg = ComplianceConfig::new(cfg.compliance_output());
    ccfg.run_interval = Duration::from_secs(cfg.chat.compliance_run_interval);
    ccfg.format = Format::parse(&cfg.chat.compliance_format).unwrap_or(Format::Xml);
    ccfg.per_room = cfg.chat.compliance_per_room;
    Ok(Some(confab_compliance::service::start(
        chat_store.clone(),
        db,
        ccfg,
        Some(metrics),
        stop,
    )))
}

fn date(s: &str) -> anyhow::Result<i64> {
    confab_chat::xccos::parse_date(s)
        .with_context(|| format!("invalid date {s:?} (YYYY-MM-DD or RFC 3339)"))
}

/// Runs `confab chat compliance ...`.
pub async fn run(cfg: &ServeConfig, store: &Store, cmd: ComplianceCommand) -> anyhow::Result<()> {
    match cmd {
        ComplianceCommand::Export {
            since,
            until,
            room,
            format,
            per_room,
            out,
        } => {
            let Some(format) = Format::parse(&format) else {
                bail!("invalid format {format:?} (xml or csv)");
            };
            let since = since.as_deref().map(date).transpose()?;
            let until = until.as_deref().map(date).transpose()?;
            if let (Some(s), Some(u)) = (since, until)
                && s >= u
            {
                bail!("--since must be before --until");
            }
            let db = open_db(cfg).await?;
            let moved = drain(store, &db).await.context("draining the outbox")?;
            let events = db
                .events(&EventFilter {
                    since_ms: since,
                    until_ms: until,
                    room,
                    ..EventFilter::default()
                })
                .await?;
            let window_start = since.unwrap_or_else(|| events.first().map_or(0, |e| e.ts_ms));
            let window_end = until.unwrap_or_else(now_ms);
            let paths =
                write_export(&events, format, window_start, window_end, per_room, &out).await?;
            db.close().await;
            if moved > 0 {
                println!("copied {moved} pending events into the compliance database");
            }
            if paths.is_empty() {
                println!("no compliance events in that range");
            }
            for p in paths {
                println!("{}", p.display());
            }
            Ok(())
        }
    }
}
