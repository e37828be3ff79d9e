//! The compliance outbox of the Persistent Chat store (issue 11).
//!
//! While compliance is on (`chat_compliance_state.enabled`, set by `confab serve`),
//! every post is recorded in `chat_compliance_outbox` in the transaction that stores
//! it, every administrative removal or replacement in the transaction that makes it
//! (with the original text), and the chat service records joins, leaves and history
//! reads before it answers them ([`Store::record_chat_compliance`]). The compliance
//! service (`crates/compliance`) copies the outbox into the compliance database,
//! keyed by event id, then deletes what it copied.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Store};

/// One compliance event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceRecord {
    /// Unique id (a uuid, or `clear-POST-REV` for a bulk clear).
    pub id: String,
    /// JOIN, PART, CHAT, BACKCHAT, REMOVE, REPLACE.
    pub kind: String,
    pub room_id: String,
    /// The room's `ma-chan://` URI and name when the event was recorded.
    pub room_uri: String,
    pub room_name: String,
    /// Normalized address of the user (for REMOVE/REPLACE: the post's author).
    pub user: String,
    /// Epoch milliseconds.
    pub ts_ms: i64,
    /// The post the event is about (0: none).
    pub post_id: i64,
    /// The post's text (CHAT), the new text (REPLACE), empty otherwise.
    pub content: String,
    /// The text as posted (REMOVE, REPLACE).
    pub original: String,
}

/// An event the chat service records (join, leave, history read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComplianceRecord {
    pub kind: String,
    pub room_id: String,
    pub user: String,
    pub ts_ms: i64,
    pub content: String,
}

/// `WHERE` clause true while compliance is on.
pub(crate) const ENABLED: &str =
    "EXISTS (SELECT 1 FROM chat_compliance_state WHERE key = 'enabled' AND value = 1)";

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Records a new post inside its transaction (nothing while compliance is off).
pub(crate) async fn record_post(
    tx: &mut Tx,
    post_id: i64,
    room_id: &str,
    author: &str,
    ts_ms: i64,
    text: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO chat_compliance_outbox \
         (id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, original) \
         SELECT $1, 'CHAT', $2, COALESCE((SELECT uri FROM chat_rooms WHERE id = $2), ''), \
         COALESCE((SELECT name FROM chat_rooms WHERE id = $2), ''), $3, $4, $5, $6, '' \
         WHERE {ENABLED}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(room_id)
        .bind(author)
        .bind(ts_ms)
        .bind(post_id)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a file upload or download (`kind` FILEUPLOAD / FILEDOWNLOAD) of the
/// file of post `post_id`; `content` is the file's name.
pub(crate) async fn record_file(
    tx: &mut Tx,
    kind: &str,
    room_id: &str,
    user: &str,
    ts_ms: i64,
    post_id: i64,
    name: &str,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO chat_compliance_outbox \
         (id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, original) \
         SELECT $1, $2, $3, COALESCE((SELECT uri FROM chat_rooms WHERE id = $3), ''), \
         COALESCE((SELECT name FROM chat_rooms WHERE id = $3), ''), $4, $5, $6, $7, '' \
         WHERE {ENABLED}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(kind)
        .bind(room_id)
        .bind(user)
        .bind(ts_ms)
        .bind(post_id)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records an administrator's removal (`replacement` None) or replacement of the
/// posts matching `cond` (on `p`, one text parameter `$4`), before they change.
/// Event ids are `PREFIX-POSTID`.
pub(crate) async fn record_admin(
    tx: &mut Tx,
    id_prefix: &str,
    replacement: Option<&str>,
    ts_ms: i64,
    cond: &str,
    arg: &str,
) -> Result<()> {
    let (kind, content) = match replacement {
        Some(t) => ("REPLACE", t),
        None => ("REMOVE", ""),
    };
    let sql = format!(
        "INSERT INTO chat_compliance_outbox \
         (id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, original) \
         SELECT $1 || CAST(p.id AS TEXT), $2, p.room_id, COALESCE(r.uri, ''), \
         COALESCE(r.name, ''), p.author, $3, p.id, $5, p.original \
         FROM chat_posts p LEFT JOIN chat_rooms r ON r.id = p.room_id \
         WHERE ({cond}) AND {ENABLED}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(format!("{id_prefix}-"))
        .bind(kind)
        .bind(ts_ms)
        .bind(arg)
        .bind(content)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn record_from_row(r: &AnyRow) -> Result<ComplianceRecord> {
    Ok(ComplianceRecord {
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

impl Store {
    /// Turns compliance recording on or off (`confab serve` does, from its
    /// configuration, before the chat service starts).
    pub async fn set_chat_compliance(&self, enabled: bool) -> Result<()> {
        sqlx::query("UPDATE chat_compliance_state SET value = $1 WHERE key = 'enabled'")
            .bind(i64::from(enabled))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether compliance recording is on.
    pub async fn chat_compliance_enabled(&self) -> Result<bool> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT value FROM chat_compliance_state WHERE key = 'enabled'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v == Some(1))
    }

    /// Records joins, leaves and history reads in one transaction (nothing while
    /// compliance is off). Returns how many were recorded.
    pub async fn record_chat_compliance(&self, recs: &[NewComplianceRecord]) -> Result<u64> {
        if recs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "INSERT INTO chat_compliance_outbox \
             (id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, original) \
             SELECT $1, $2, $3, COALESCE((SELECT uri FROM chat_rooms WHERE id = $3), ''), \
             COALESCE((SELECT name FROM chat_rooms WHERE id = $3), ''), $4, $5, 0, $6, '' \
             WHERE {ENABLED}"
        );
        let mut n = 0;
        for r in recs {
            n += sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(&r.kind)
                .bind(&r.room_id)
                .bind(&r.user)
                .bind(r.ts_ms)
                .bind(&r.content)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The oldest `limit` events of the outbox, oldest first.
    pub async fn chat_compliance_outbox(&self, limit: u32) -> Result<Vec<ComplianceRecord>> {
        sqlx::query(
            "SELECT id, kind, room_id, room_uri, room_name, user_address, ts, post_id, content, \
             original FROM chat_compliance_outbox ORDER BY ts, post_id, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
    }

    /// Deletes delivered events from the outbox.
    pub async fn delete_chat_compliance_outbox(&self, ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("DELETE FROM chat_compliance_outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events waiting in the outbox and the time of the oldest (epoch ms).
    pub async fn chat_compliance_backlog(&self) -> Result<(i64, Option<i64>)> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(ts) AS oldest FROM chat_compliance_outbox")
                .fetch_one(&self.pool)
                .await?;
        Ok((row.try_get("n")?, row.try_get("oldest")?))
    }
}
