//! Database URLs and creation: SQLite files for Standard Edition, PostgreSQL
//! databases for Enterprise.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::migrate::MigrateDatabase;

use crate::TopologyError;

/// A sqlx URL for a SQLite file, created on first connection (`mode=rwc`).
pub fn sqlite_url(path: &Path) -> String {
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// The file behind a SQLite URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or(rest);
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    let mut out = String::new();
    let mut chars = file.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hex: String = chars.by_ref().take(2).collect();
            match u8::from_str_radix(&hex, 16) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('%');
                    out.push_str(&hex);
                }
            }
        } else {
            out.push(c);
        }
    }
    Some(PathBuf::from(out))
}

/// The URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The database name of a PostgreSQL URL.
pub fn postgres_database(url: &str) -> Result<String, TopologyError> {
    let opts =
        sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| TopologyError::db(url, e))?;
    Ok(opts
        .get_database()
        .map(str::to_string)
        .unwrap_or_else(|| opts.get_username().to_string()))
}

/// The same PostgreSQL server with another database name.
pub fn with_database(url: &str, database: &str) -> Result<String, TopologyError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(TopologyError::Other(format!(
            "{} is not a database URL",
            redact(url)
        )));
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = match tail.find('?') {
        Some(i) => &tail[i..],
        None => "",
    };
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

/// Creates the PostgreSQL database a URL names when it does not exist yet.
/// Returns whether it was created now.
pub async fn ensure_postgres_database(url: &str) -> Result<bool, TopologyError> {
    let exists = sqlx::Postgres::database_exists(url)
        .await
        .map_err(|e| TopologyError::db(url, e))?;
    if exists {
        return Ok(false);
    }
    match sqlx::Postgres::create_database(url).await {
        Ok(()) => Ok(true),
        Err(e) => {
            // Another machine bootstrapping at the same moment may have won.
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if duplicate {
                Ok(false)
            } else {
                Err(TopologyError::db(url, e))
            }
        }
    }
}

/// Creates the parent directory of a SQLite file and reports whether the file
/// is new.
pub fn prepare_sqlite(url: &str) -> Result<bool, TopologyError> {
    let Some(path) = sqlite_path(url) else {
        return Ok(false);
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| TopologyError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(!path.exists())
}

/// Makes sure the database behind `url` exists: creates a PostgreSQL database
/// or the directory of a SQLite file. Returns whether something was created.
pub async fn ensure_database(url: &str) -> Result<bool, TopologyError> {
    if is_postgres(url) {
        ensure_postgres_database(url).await
    } else if is_sqlite(url) {
        prepare_sqlite(url)
    } else {
        Err(TopologyError::Other(format!(
            "{} is neither a sqlite: nor a postgres:// URL",
            redact(url)
        )))
    }
}

/// Connects a small sqlx Any pool.
pub async fn connect(url: &str) -> Result<sqlx::AnyPool, TopologyError> {
    sqlx::any::install_default_drivers();
    if is_sqlite(url) {
        prepare_sqlite(url)?;
    }
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(15))
        .connect(url)
        .await
        .map_err(|e| TopologyError::db(url, e))
}

/// How many schema migrations the user store has applied to the database at
/// `url` (its `_sqlx_migrations` table); `None` when the database or the table
/// does not exist yet. Read-only: the user store owns that table.
pub async fn migration_count(url: &str) -> Option<i64> {
    use sqlx::Row;
    if is_sqlite(url) && !sqlite_path(url).is_some_and(|p| p.exists()) {
        return None;
    }
    if is_postgres(url) && !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
        return None;
    }
    let pool = connect(url).await.ok()?;
    let n = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .ok()
        .and_then(|r| r.try_get::<i64, _>(0).ok());
    pool.close().await;
    n
}

/// Creates the `schema_version` table of a store that confab's roles fill in
/// later (Persistent Chat, compliance, archiving, monitoring) and records
/// `component` at version 1. Returns whether anything was created.
pub async fn ensure_schema_version(url: &str, component: &str) -> Result<bool, TopologyError> {
    use sqlx::Row;
    let pool = connect(url).await?;
    let result = async {
        let existed = {
            let sql = if is_postgres(url) {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'"
            } else {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            };
            let row = sqlx::query(sql).fetch_one(&pool).await?;
            row.try_get::<i64, _>(0)? > 0
        };
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_version (
                component TEXT NOT NULL PRIMARY KEY,
                version BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )",
        )
        .execute(&pool)
        .await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        let inserted = sqlx::query(
            "INSERT INTO schema_version (component, version, updated_at) VALUES ($1, 1, $2)
             ON CONFLICT (component) DO NOTHING",
        )
        .bind(component.to_string())
        .bind(now)
        .execute(&pool)
        .await?;
        Ok::<bool, sqlx::Error>(!existed || inserted.rows_affected() > 0)
    }
    .await;
    pool.close().await;
    result.map_err(|e| TopologyError::db(url, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = sqlite_url(Path::new("/var/lib/confab/a?b#c%d.db"));
        assert_eq!(u, "sqlite:///var/lib/confab/a%3Fb%23c%25d.db?mode=rwc");
        assert_eq!(
            sqlite_path(&u).unwrap(),
            PathBuf::from("/var/lib/confab/a?b#c%d.db")
        );
        assert_eq!(
            redact("postgres://confab:secret@db:5432/x?sslmode=require"),
            "postgres://confab:***@db:5432/x?sslmode=require"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            with_database("postgres://u:p@h:5432/a?sslmode=disable", "b").unwrap(),
            "postgres://u:p@h:5432/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h", "b").unwrap(),
            "postgres://h/b"
        );
        assert_eq!(postgres_database("postgres://u:p@h/abc").unwrap(), "abc");
    }
}
