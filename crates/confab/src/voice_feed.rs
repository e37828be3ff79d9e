//! Follows the Enterprise Voice configuration in the store: loaded at start, then
//! reloaded whole whenever `voice_rev` changes (announced by PostgreSQL's
//! LISTEN/NOTIFY, polled every 200 ms on SQLite: `confab_pool::ChangeWaker`), checked and compiled off the core task, and handed to the core.
//! Each load also reads where users are homed (`crate::voice_homes`: their pool
//! and its site), for site- and pool-scoped dial plans and voice policies; a
//! user moved to another pool bumps `voice_rev` too.

use std::sync::Arc;

use confab_store::Store;
use confab_voice::VoiceConfig;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::voice_homes::HomeSource;

/// Loads the configuration (an invalid stored one is logged and served empty).
async fn load(store: &Store, homes: &HomeSource) -> Result<(i64, VoiceConfig), String> {
    let (rev, data) = store.voice_data().await.map_err(|e| e.to_string())?;
    let homes = homes.load(store).await;
    let cfg = VoiceConfig::build(data, homes).map_err(|e| e.to_string())?;
    Ok((rev, cfg))
}

/// The configuration now, and a receiver of every later one.
pub async fn start(
    store: Store,
    url: &str,
    homes: HomeSource,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(
    Arc<VoiceConfig>,
    mpsc::Receiver<Arc<VoiceConfig>>,
    JoinHandle<()>,
)> {
    let (mut rev, initial) = match load(&store, &homes).await {
        Ok((rev, cfg)) => (rev, cfg),
        Err(e) => {
            warn!(error = %e, "the stored voice configuration is not valid: no voice routing");
            (store.voice_rev().await?, VoiceConfig::default())
        }
    };
    let (tx, rx) = mpsc::channel(4);
    // Listen before the first read below, so that no change falls in between.
    let mut waker = confab_pool::ChangeWaker::new(&store, url, &["voice_rev"]).await;
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = waker.wait() => {}
                _ = stop.changed() => return,
            }
            match store.voice_rev().await {
                Ok(r) if r == rev => continue,
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "reading the voice revision failed");
                    continue;
                }
            }
            match load(&store, &homes).await {
                Ok((r, cfg)) => {
                    rev = r;
                    info!(rev, "applied voice configuration changes from the store");
                    if tx.send(Arc::new(cfg)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the stored voice configuration is not valid: kept the previous one");
                    if let Ok(r) = store.voice_rev().await {
                        rev = r;
                    }
                }
            }
        }
    });
    Ok((Arc::new(initial), rx, task))
}
