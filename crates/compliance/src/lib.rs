//! Persistent Chat compliance (Lync's compliance service, issue 11).
//!
//! - [`export`]: sans-IO: the compliance XML (`Conversations`, Lync's XmlAdapter
//!   format) and CSV renderings, file names, and the export schedule (RunInterval).
//! - [`db`]: the compliance database (its own SQLite file or PostgreSQL database):
//!   events keyed by id, inserted idempotently, and the export watermark.
//! - [`service`]: the drain (chat store outbox → compliance database, at least once)
//!   and the scheduled export, as one tokio task.
//!
//! See `docs/persistent-chat.md` (Compliance).

pub mod db;
pub mod export;
pub mod service;

pub use db::{ComplianceDb, EventFilter};
pub use export::{Event, Format};

/// Errors of the compliance service.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("compliance database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("chat store: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
