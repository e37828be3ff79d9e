//! Persistent storage behind one interface (sqlx: SQLite for Standard Edition,
//! PostgreSQL for Enterprise pools).
//!
//! [`Store`] runs the same SQL on both backends through `sqlx::AnyPool`: timestamps are
//! epoch seconds (`BIGINT`), booleans are `0`/`1`, ids are uuids generated here, and
//! the schema is kept in embedded, portable migrations.
//!
//! Every write bumps one global revision counter inside its transaction. The counter row
//! is locked until commit, so revisions are handed out in commit order; a server can
//! poll [`Store::user_changes_since`] with the last revision it saw and never miss a
//! change, removals included (they leave a tombstone). Contact lists follow the same
//! design: [`Store::contact_changes_since`] reports the owners whose list changed.

mod address;
mod admin;
mod chat;
mod chat_compliance;
mod chat_files;
mod chat_pool;
mod chat_transfer;
mod contacts;
mod homes;
mod monitoring;
mod pool;
mod pool_presence;
mod rgs;
mod users;
mod voice;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use address::{Address, is_valid_host_name};
pub use admin::AuditEntry;
pub use chat::{
    ChatCategory, ChatCategoryUpdate, ChatConfig, ChatDirectory, ChatPolicy, ChatPost, ChatRoom,
    ChatRoomUpdate, ChatSearch, NewChatCategory, NewChatRoom, PostState, Privacy, REPLACED_TEXT,
    RoomType, chat_pool_key, chat_qualified_name, normalize_principal,
};
pub use chat_compliance::{ComplianceRecord, NewComplianceRecord};
pub use chat_files::{ChatFile, FILE_POST_SERVER, NewChatFile};
pub use chat_pool::{CHAT_CHANNEL, ChatPoolEvent, ChatServer, ChatServerState};
pub use chat_transfer::ImportedPost;
pub use confab_auth::credentials::StoredCredentials;
pub use contacts::{Contact, ContactGroup, ContactList, OTHER_CONTACTS_GROUP};
pub use homes::{HomeEvent, KIND_DIRECTOR, KIND_FRONT_END};
pub use monitoring::{CallDetail, ImSession};
pub use pool::{POOL_CHANNEL, PoolEvent, PoolMember};
pub use pool_presence::{PRESENCE_CHANNEL, SharedState};
pub use users::{NewUser, User, UserChange};

/// How long a SQLite connection waits for another writer (the server, or a `confab user`
/// command run beside it) before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user {0} already exists")]
    UserExists(String),
    #[error("user {0} not found")]
    UserNotFound(String),
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        address: String,
        reason: &'static str,
    },
    #[error("invalid contact list of {owner}: {reason}")]
    InvalidContactList { owner: String, reason: String },
    #[error(
        "the contact list of {owner} changed meanwhile (version {found}, the edit was based on {expected}): edit refused, the current list is served again"
    )]
    ContactListChanged {
        owner: String,
        expected: u64,
        found: u64,
    },
    #[error("{0}")]
    Chat(String),
    #[error("{0}")]
    Voice(String),
    #[error("{0}")]
    Rgs(String),
    #[error("unsupported database URL: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl,
    #[error("database path {0:?} is not valid UTF-8")]
    NonUtf8Path(std::path::PathBuf),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (Standard Edition).
    Sqlite,
    /// PostgreSQL (Enterprise Edition pools).
    Postgres,
}

impl Backend {
    /// The backend a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl),
        }
    }
}

/// Statements slower than this are logged as warnings (by sqlx).
const SLOW_STATEMENT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database: users, their contact lists, the change feeds and server settings.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's options hold the database URL, which may carry a password.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (and migrates) the database at `url`: `sqlite://PATH?mode=rwc` (the file is
    /// created if missing) or `postgres://user:password@host/db`.
    ///
    /// SQLite runs in WAL mode with `synchronous=NORMAL` (a committed write survives the
    /// process being killed) and a 5 s busy timeout, so a CLI and a server can share it.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let mut options = AnyConnectOptions::from_str(url)?;
        // A listing of 100k users or a big import batch may take a second on a small
        // machine; only warn about statements much slower than that.
        options.log_settings.slow_statements_duration = SLOW_STATEMENT;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            let busy = format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}");
                            conn.execute(sqlx::AssertSqlSafe(busy)).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // NOTICEs (e.g. "relation _sqlx_migrations already exists,
                            // skipping" on every start) would be logged at info level.
                            conn.execute("SET client_min_messages = warning").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        MIGRATOR.run(&pool).await?;
        chat::ensure_search(&pool, backend).await?;
        tracing::debug!(?backend, "store opened");
        Ok(Store { pool, backend })
    }

    /// Opens (creating if missing) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        Store::open(&sqlite_url(path)?).await
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection of the pool (waits for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The last revision handed out (0 on a fresh database).
    pub async fn current_rev(&self) -> Result<i64> {
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'rev'")
            .fetch_one(&self.pool)
            .await?;
        Ok(rev)
    }

    /// A server setting, or `None` when it was never set.
    pub async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    /// Sets (inserts or replaces) a server setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The `sqlite://` URL (read-write, create if missing) for a database file.
///
/// The path is made absolute (a relative one would be read as a URL host) and the
/// characters that mean something in a URL are percent-encoded.
pub fn sqlite_url(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    let Some(s) = abs.to_str() else {
        return Err(StoreError::NonUtf8Path(abs));
    };
    let mut url = String::with_capacity(s.len() + 20);
    url.push_str("sqlite://");
    for c in s.chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            ' ' => url.push_str("%20"),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    Ok(url)
}

/// `url` with its password (in the user info or a `password=` query parameter) replaced
/// by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = url.find("://").map(|i| i + 3) {
        let rest = &url[scheme_end..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out = format!(
                "{}***{}",
                &url[..scheme_end + colon + 1],
                &url[scheme_end + at..]
            );
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// Seconds since the Unix epoch.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The PostgreSQL LISTEN/NOTIFY channel on which every write that takes a revision
/// is announced at commit (payload: the counter, `rev`, `voice_rev` or `chat_rev`),
/// so that the servers sharing a PostgreSQL back end follow the change feeds
/// without polling. SQLite has no such channel (a Standard Edition server polls).
pub const CHANGES_CHANNEL: &str = "confab_changes";

/// Announces a write to `counter` on [`CHANGES_CHANNEL`] (PostgreSQL only;
/// delivered at commit, identical payloads of one transaction once).
async fn announce(tx: &mut sqlx::Transaction<'static, sqlx::Any>, counter: &str) -> Result<()> {
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(counter)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Takes the next revision inside `tx`. Must be the first statement of a write
/// transaction: on SQLite it takes the write lock (waiting up to the busy timeout) before
/// anything is read, on PostgreSQL it locks the counter row until commit.
async fn next_rev(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<i64> {
    let rev: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'rev' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    announce(tx, "rev").await?;
    Ok(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://confab:s3cret@db.example.com:5432/confab"),
            "postgres://confab:***@db.example.com:5432/confab"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db?sslmode=require&password=x"),
            "postgres://u:***@h/db?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("postgres://user@h/db"), "postgres://user@h/db");
        assert_eq!(
            redact_url("sqlite:///var/lib/confab/confab.db?mode=rwc"),
            "sqlite:///var/lib/confab/confab.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_urls_are_absolute_and_escaped() {
        let url = sqlite_url(Path::new("/srv/a b/x#1?.db")).unwrap();
        assert_eq!(url, "sqlite:///srv/a%20b/x%231%3F.db?mode=rwc");
        let rel = sqlite_url(Path::new("data/confab.db")).unwrap();
        assert!(rel.starts_with("sqlite:///"), "{rel}");
        assert!(rel.ends_with("/data/confab.db?mode=rwc"), "{rel}");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite:///x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("PostgreSQL://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }
}
