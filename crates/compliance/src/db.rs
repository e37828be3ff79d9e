//! The compliance database: its own SQLite file (Standard Edition, default
//! `DATA/compliance.db`) or a PostgreSQL database (the topology's `compliance`
//! store). Portable SQL through `sqlx::AnyPool`; the schema is created at open
//! (`CREATE ... IF NOT EXISTS`), so the database may be empty or shared.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::ComplianceError;
use crate::export::Event;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS compliance_events ( \
       id TEXT NOT NULL PRIMARY KEY, \
       kind TEXT NOT NULL, \
       room_id TEXT NOT NULL, \
       room_uri TEXT NOT NULL, \
       room_name TEXT NOT NULL, \
       user_address TEXT NOT NULL, \
       ts BIGINT NOT NULL, \
       post_id BIGINT NOT NULL, \
       content TEXT NOT NULL, \
       original TEXT NOT NULL, \
       recorded_at BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS compliance_events_ts_idx ON compliance_events (ts)",
    "CREATE INDEX IF NOT EXISTS compliance_events_recorded_idx ON compliance_events (recorded_at)",
    "CREATE TABLE IF NOT EXISTS compliance_state (key TEXT NOT NULL PRIMARY KEY, value BIGINT NOT NULL)",
];

/// Which events to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Event time, epoch ms: `since <= ts < until`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// A room id, name (case-insensitive) or `ma-chan://` URI.
    pub room: Option<String>,
    /// Time the event reached the compliance database: `from <= recorded_at < to`
    /// (the scheduled export's window).
    pub recorded_from: Option<i64>,
    pub recorded_to: Option<i64>,
}

/// The compliance database.
#[derive(Clone)]
pub struct ComplianceDb {
    pool: AnyPool,
}

impl std::fmt::Debug for ComplianceDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComplianceDb").finish_non_exhaustive()
    }
}

fn event_from_row(r: &AnyRow) -> Result<Event, ComplianceError> {
    Ok(Event {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        room_id: r.try_get("room_id")?,
        room_uri: r.try_get("room_uri")?,
        room_name: r.try_get("room_name")?,
        user: r.try_get("user_address")?,
        ts_ms: r.try_get("ts")?,
        post_id: r.try_get("post_id")?,
        content: r.try_get("content")?,
        original: r.try_get("original")?,
    })
}

impl ComplianceDb {
    /// Opens the compliance database at `url` (`sqlite://PATH?mode=rwc` or
    /// `postgres://...`) and creates its tables if missing.
    pub async fn open(url: &str) -> Result<ComplianceDb, ComplianceError> {
        sqlx::any::install_default_drivers();
        let backend = confab_store::Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            confab_store::Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(2)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            confab_store::Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET client_min_messages = warning").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        for stmt in SCHEMA {
            pool.execute(*stmt).await?;
        }
        Ok(ComplianceDb { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts events (an event already there is left as it is). Returns how many
    /// were new.
    pub async fn insert(&self, events: &[Event], recorded_at: i64) -> Result<u64, ComplianceError> {
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for e in events {
            n += sqlx::query(
                "INSERT INTO compliance_events (id, kind, room_id, room_uri, room_name, \
                 user_address, ts, post_id, content, original, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&e.id)
            .bind(&e.kind)
            .bind(&e.room_id)
            .bind(&e.room_uri)
            .bind(&e.room_name)
            .bind(&e.user)
            .bind(e.ts_ms)
            .bind(e.post_id)
            .bind(&e.content)
            .bind(&e.original)
            .bind(recorded_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The events `f` selects, oldest first.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<Event>, ComplianceError> {
        let mut sql = String::from(
            "SELECT id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, \
             original FROM compliance_events WHERE 1 = 1",
        );
        let mut ints: Vec<i64> = Vec::new();
        let mut n = 0;
        for (v, cond) in [
            (f.since_ms, "ts >="),
            (f.until_ms, "ts <"),
            (f.recorded_from, "recorded_at >="),
            (f.recorded_to, "recorded_at <"),
        ] {
            if let Some(v) = v {
                n += 1;
                sql.push_str(&format!(" AND {cond} ${n}"));
                ints.push(v);
            }
        }
        if f.room.is_some() {
            n += 1;
            sql.push_str(&format!(
                " AND (room_id = ${n} OR room_uri = ${n} OR LOWER(room_name) = LOWER(${n}))"
            ));
        }
        sql.push_str(" ORDER BY ts, post_id, id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in ints {
            q = q.bind(v);
        }
        if let Some(room) = &f.room {
            q = q.bind(room.clone());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    /// Number of events held.
    pub async fn count(&self) -> Result<i64, ComplianceError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM compliance_events")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The end of the last scheduled export window (epoch ms; 0: never).
    pub async fn watermark(&self) -> Result<i64, ComplianceError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT value FROM compliance_state WHERE key = 'exported_until'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// Records the end of the last scheduled export window.
    pub async fn set_watermark(&self, until_ms: i64) -> Result<(), ComplianceError> {
        sqlx::query(
            "INSERT INTO compliance_state (key, value) VALUES ('exported_until', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
