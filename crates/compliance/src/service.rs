//! The compliance service: drains the chat store's outbox into the compliance
//! database (at least once: copy, then delete; the copy is idempotent by event id)
//! and exports on a schedule (RunInterval).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use confab_frontend::Metrics;
use confab_store::Store;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ComplianceError;
use crate::db::{ComplianceDb, EventFilter};
use crate::export::{self, Event, Format};

/// Outbox events moved per transaction.
const BATCH: u32 = 500;
/// The scheduled window ends this far behind now (see [`export::due_window`]).
const GRACE_MS: i64 = 2_000;

/// Settings of the compliance service.
#[derive(Debug, Clone)]
pub struct ComplianceConfig {
    /// How often an export runs (Lync's RunInterval; default 15 minutes).
    pub run_interval: Duration,
    /// Where scheduled exports are written.
    pub output_dir: PathBuf,
    pub format: Format,
    /// One file per room (Lync's OneChatRoomPerOutputFile).
    pub per_room: bool,
    /// How often the outbox is drained.
    pub drain_interval: Duration,
}

impl ComplianceConfig {
    pub fn new(output_dir: PathBuf) -> ComplianceConfig {
        ComplianceConfig {
            run_interval: Duration::from_secs(15 * 60),
            output_dir,
            format: Format::Xml,
            per_room: false,
            drain_interval: Duration::from_secs(1),
        }
    }
}

/// Epoch milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Moves every event of the outbox into the compliance database. Returns how many
/// were moved. Safe to run beside another drainer (the server and a CLI export).
pub async fn drain(store: &Store, db: &ComplianceDb) -> Result<u64, ComplianceError> {
    drain_counted(store, db, None).await
}

async fn drain_counted(
    store: &Store,
    db: &ComplianceDb,
    metrics: Option<&Metrics>,
) -> Result<u64, ComplianceError> {
    let mut moved = 0;
    loop {
        let batch = store.chat_compliance_outbox(BATCH).await?;
        if batch.is_empty() {
            return Ok(moved);
        }
        db.insert(&batch, now_ms()).await?;
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        store.delete_chat_compliance_outbox(&ids).await?;
        moved += ids.len() as u64;
        if let Some(m) = metrics {
            m.chat_compliance_events_total
                .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if batch.len() < BATCH as usize {
            return Ok(moved);
        }
    }
}

/// Writes the export files of `events` into `dir` (created if missing; each file
/// written under a temporary name, then renamed). Returns their paths.
pub async fn write_export(
    events: &[Event],
    format: Format,
    since_ms: i64,
    until_ms: i64,
    per_room: bool,
    dir: &Path,
) -> Result<Vec<PathBuf>, ComplianceError> {
    let io = |path: &Path, source| ComplianceError::Io {
        path: path.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io(dir, e))?;
    let mut paths = Vec::new();
    for (name, body) in export::render_files(events, format, since_ms, until_ms, per_room) {
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, body.as_bytes())
            .await
            .map_err(|e| io(&tmp, e))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(|e| io(&path, e))?;
        paths.push(path);
    }
    Ok(paths)
}

/// Runs one scheduled export if it is due: the events that reached the compliance
/// database since the end of the last exported window. Returns the files written.
pub async fn export_if_due(
    db: &ComplianceDb,
    cfg: &ComplianceConfig,
    now: i64,
) -> Result<Vec<PathBuf>, ComplianceError> {
    let watermark = db.watermark().await?;
    let interval = i64::try_from(cfg.run_interval.as_millis()).unwrap_or(i64::MAX);
    let Some((since, until)) = export::due_window(watermark, now, interval, GRACE_MS) else {
        return Ok(Vec::new());
    };
    let events = db
        .events(&EventFilter {
            recorded_from: Some(since),
            recorded_to: Some(until),
            ..EventFilter::default()
        })
        .await?;
    if events.is_empty() {
        // Nothing in the window: no file, and the next window starts at the same
        // place (an empty interval writes nothing).
        return Ok(Vec::new());
    }
    let paths = write_export(
        &events,
        cfg.format,
        since,
        until,
        cfg.per_room,
        &cfg.output_dir,
    )
    .await?;
    db.set_watermark(until).await?;
    Ok(paths)
}

/// Starts the compliance task: drains every `drain_interval`, exports when due,
/// keeps the metrics. Stops when `stop` turns true (after a last drain).
pub fn start(
    store: Store,
    db: ComplianceDb,
    cfg: ComplianceConfig,
    metrics: Option<Arc<Metrics>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        info!(
            run_interval_s = cfg.run_interval.as_secs(),
            dir = %cfg.output_dir.display(),
            "compliance service started"
        );
        let mut tick = tokio::time::interval(cfg.drain_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = drain_counted(&store, &db, metrics.as_deref()).await {
                warn!(error = %e, "draining the compliance outbox failed");
            }
            let now = now_ms();
            match export_if_due(&db, &cfg, now).await {
                Ok(paths) => {
                    for p in paths {
                        info!(file = %p.display(), "compliance export written");
                    }
                }
                Err(e) => warn!(error = %e, "compliance export failed"),
            }
            let Some(m) = metrics.as_deref() else {
                continue;
            };
            match store.chat_compliance_backlog().await {
                Ok((n, _)) => Metrics::set(&m.chat_compliance_backlog, n.max(0) as usize),
                Err(e) => warn!(error = %e, "reading the compliance backlog failed"),
            }
            if let Ok(w) = db.watermark().await {
                let lag = if w == 0 { 0 } else { (now - w).max(0) / 1000 };
                Metrics::set(&m.chat_compliance_export_lag_seconds, lag as usize);
            }
        }
        if let Err(e) = drain(&store, &db).await {
            warn!(error = %e, "draining the compliance outbox failed");
        }
        info!("compliance service stopped");
    })
}
