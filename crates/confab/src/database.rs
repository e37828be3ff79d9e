//! Opening the configured database for the command-line tools (`confab user`,
//! `contact`, `chat`, `voice`, `pool`...).

use std::path::Path;

use anyhow::Context;
use confab_store::Store;

use crate::config::ServeConfig;

/// Opens the configured database, creating the data directory for the default SQLite
/// file if needed.
pub async fn open_store(cfg: &ServeConfig) -> anyhow::Result<Store> {
    let shown = match &cfg.database {
        Some(url) => confab_store::redact_url(url),
        None => {
            create_data_dir(&cfg.data_dir)?;
            cfg.sqlite_path().display().to_string()
        }
    };
    let url = cfg.database_url()?;
    Store::open(&url)
        .await
        .with_context(|| format!("opening database {shown}"))
}

/// Creates the data directory, readable by its owner only (it holds password hashes).
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}
