//! The central management store: published topology versions and the machines
//! bootstrapped from them, kept in tables `cms_*` of the back-end database.
//!
//! The tables are created with `CREATE TABLE IF NOT EXISTS`, independently of
//! the user store's migrations that share the database.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{TopologyError, db};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cms_topology (
        version BIGINT NOT NULL PRIMARY KEY,
        published_at BIGINT NOT NULL,
        published_by TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        comment TEXT NOT NULL,
        source TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS cms_machine (
        fqdn TEXT NOT NULL PRIMARY KEY,
        pool TEXT NOT NULL,
        roles TEXT NOT NULL,
        version BIGINT NOT NULL,
        bootstrapped_at BIGINT NOT NULL
    )",
];

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub version: i64,
    /// Seconds since the Unix epoch.
    pub published_at: i64,
    pub published_by: String,
    pub sha256: String,
    pub comment: String,
    pub source: String,
}

/// What [`CentralStore::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Stored as a new version.
    Published { version: i64 },
    /// Identical to the latest version, which stays current.
    Unchanged { version: i64 },
}

impl PublishOutcome {
    pub fn version(self) -> i64 {
        match self {
            PublishOutcome::Published { version } | PublishOutcome::Unchanged { version } => {
                version
            }
        }
    }
}

/// A machine bootstrapped from the central management store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MachineStatus {
    pub fqdn: String,
    pub pool: String,
    /// Roles joined with `,`.
    pub roles: String,
    /// Topology version the machine was last bootstrapped from.
    pub version: i64,
    pub bootstrapped_at: i64,
}

/// A connection to the central management store.
pub struct CentralStore {
    pool: sqlx::AnyPool,
    url: String,
}

pub fn sha256_hex(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl CentralStore {
    /// Opens the store, creating the database (PostgreSQL) or file (SQLite) and
    /// the `cms_*` tables when missing.
    pub async fn open(url: &str) -> Result<Self, TopologyError> {
        db::ensure_database(url).await?;
        Self::connect_and_prepare(url).await
    }

    /// Opens an existing store for reading; [`TopologyError::NotPublished`] when
    /// the database does not exist.
    pub async fn open_existing(url: &str) -> Result<Self, TopologyError> {
        if db::is_sqlite(url) {
            match db::sqlite_path(url) {
                Some(p) if p.exists() => {}
                _ => return Err(TopologyError::NotPublished),
            }
        } else if db::is_postgres(url) {
            use sqlx::migrate::MigrateDatabase;
            let exists = sqlx::Postgres::database_exists(url)
                .await
                .map_err(|e| TopologyError::db(url, e))?;
            if !exists {
                return Err(TopologyError::NotPublished);
            }
        }
        Self::connect_and_prepare(url).await
    }

    async fn connect_and_prepare(url: &str) -> Result<Self, TopologyError> {
        let pool = db::connect(url).await?;
        let store = CentralStore {
            pool,
            url: url.to_string(),
        };
        store.create_tables().await?;
        Ok(store)
    }

    /// Creates the `cms_*` tables if missing. Returns whether any was created.
    pub async fn create_tables(&self) -> Result<bool, TopologyError> {
        let before = self.has_tables().await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(!before)
    }

    /// Whether the `cms_topology` table exists.
    pub async fn has_tables(&self) -> Result<bool, TopologyError> {
        let sql = if db::is_postgres(&self.url) {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'cms_topology'"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'cms_topology'"
        };
        let row = sqlx::query(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        let n: i64 = row.try_get(0).map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    fn err(&self, e: sqlx::Error) -> TopologyError {
        TopologyError::db(&self.url, e)
    }

    /// The URL with its password hidden.
    pub fn display_url(&self) -> String {
        db::redact(&self.url)
    }

    /// Stores `source` as the next version unless it is identical to the latest.
    /// The caller validates first.
    pub async fn publish(
        &self,
        source: &str,
        published_by: &str,
        comment: &str,
    ) -> Result<PublishOutcome, TopologyError> {
        let sha = sha256_hex(source);
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let latest =
            sqlx::query("SELECT version, sha256 FROM cms_topology ORDER BY version DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
        let mut next = 1i64;
        if let Some(row) = latest {
            let version: i64 = row.try_get("version").map_err(|e| self.err(e))?;
            let latest_sha: String = row.try_get("sha256").map_err(|e| self.err(e))?;
            if latest_sha == sha {
                tx.rollback().await.map_err(|e| self.err(e))?;
                return Ok(PublishOutcome::Unchanged { version });
            }
            next = version + 1;
        }
        let inserted = sqlx::query(
            "INSERT INTO cms_topology (version, published_at, published_by, sha256, comment, source)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(next)
        .bind(now())
        .bind(published_by.to_string())
        .bind(sha)
        .bind(comment.to_string())
        .bind(source.to_string())
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            let unique = e
                .as_database_error()
                .is_some_and(|d| d.is_unique_violation());
            return Err(if unique {
                TopologyError::Conflict
            } else {
                self.err(e)
            });
        }
        tx.commit().await.map_err(|e| {
            let unique = e
                .as_database_error()
                .is_some_and(|d| d.is_unique_violation());
            if unique {
                TopologyError::Conflict
            } else {
                self.err(e)
            }
        })?;
        Ok(PublishOutcome::Published { version: next })
    }

    fn row_to_published(&self, row: &sqlx::any::AnyRow) -> Result<Published, TopologyError> {
        Ok(Published {
            version: row.try_get("version").map_err(|e| self.err(e))?,
            published_at: row.try_get("published_at").map_err(|e| self.err(e))?,
            published_by: row.try_get("published_by").map_err(|e| self.err(e))?,
            sha256: row.try_get("sha256").map_err(|e| self.err(e))?,
            comment: row.try_get("comment").map_err(|e| self.err(e))?,
            source: row.try_get("source").map_err(|e| self.err(e))?,
        })
    }

    /// The current (latest) version, if any was published.
    pub async fn latest(&self) -> Result<Option<Published>, TopologyError> {
        let row = sqlx::query(
            "SELECT version, published_at, published_by, sha256, comment, source
             FROM cms_topology ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| self.row_to_published(&r)).transpose()
    }

    /// One version.
    pub async fn version(&self, version: i64) -> Result<Option<Published>, TopologyError> {
        let row = sqlx::query(
            "SELECT version, published_at, published_by, sha256, comment, source
             FROM cms_topology WHERE version = $1",
        )
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| self.row_to_published(&r)).transpose()
    }

    /// Every version, oldest first (`source` included).
    pub async fn history(&self) -> Result<Vec<Published>, TopologyError> {
        let rows = sqlx::query(
            "SELECT version, published_at, published_by, sha256, comment, source
             FROM cms_topology ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(|r| self.row_to_published(r)).collect()
    }

    /// Records that a machine was bootstrapped from `version`. Returns whether the
    /// record changed (false when it was already bootstrapped from that version
    /// with the same roles).
    pub async fn record_machine(
        &self,
        fqdn: &str,
        pool: &str,
        roles: &str,
        version: i64,
    ) -> Result<bool, TopologyError> {
        let existing = sqlx::query("SELECT pool, roles, version FROM cms_machine WHERE fqdn = $1")
            .bind(fqdn.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        if let Some(row) = existing {
            let p: String = row.try_get("pool").map_err(|e| self.err(e))?;
            let r: String = row.try_get("roles").map_err(|e| self.err(e))?;
            let v: i64 = row.try_get("version").map_err(|e| self.err(e))?;
            if p == pool && r == roles && v == version {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO cms_machine (fqdn, pool, roles, version, bootstrapped_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (fqdn) DO UPDATE SET pool = excluded.pool, roles = excluded.roles,
               version = excluded.version, bootstrapped_at = excluded.bootstrapped_at",
        )
        .bind(fqdn.to_string())
        .bind(pool.to_string())
        .bind(roles.to_string())
        .bind(version)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Machines bootstrapped so far, by FQDN.
    pub async fn machines(&self) -> Result<Vec<MachineStatus>, TopologyError> {
        let rows = sqlx::query(
            "SELECT fqdn, pool, roles, version, bootstrapped_at FROM cms_machine ORDER BY fqdn",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok(MachineStatus {
                    fqdn: r.try_get("fqdn").map_err(|e| self.err(e))?,
                    pool: r.try_get("pool").map_err(|e| self.err(e))?,
                    roles: r.try_get("roles").map_err(|e| self.err(e))?,
                    version: r.try_get("version").map_err(|e| self.err(e))?,
                    bootstrapped_at: r.try_get("bootstrapped_at").map_err(|e| self.err(e))?,
                })
            })
            .collect()
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a Unix time.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(format_time(1_767_225_599), "2025-12-31 23:59:59 UTC");
    }
}
