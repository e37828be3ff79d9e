//! Persistent Chat file posts (issue 11): the `chat_files` table (0009). The web
//! service writes the file under its final name first, then [`Store::insert_chat_file_post`]
//! stores the post that links to it, the file's row and the compliance events in
//! one transaction.

use sqlx::Row;

use crate::{Result, Store};

/// The `server` of a file post's pool notification (no chat server has this name).
pub const FILE_POST_SERVER: &str = "web file post";

/// A file to record with its post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChatFile {
    /// The name in the file store (a uuid).
    pub id: String,
    pub room_id: String,
    /// Normalized address of the uploader.
    pub author: String,
    /// The name the uploader gave.
    pub name: String,
    pub size: i64,
    /// SHA-256 of the content (hex).
    pub sha256: String,
}

/// A stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFile {
    pub id: String,
    pub room_id: String,
    pub post_id: i64,
    pub author: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    /// Epoch milliseconds.
    pub ts_ms: i64,
}

impl Store {
    /// Stores the post `text` announcing `file` and the file's row, and (while
    /// compliance is on) the post's CHAT and the FILEUPLOAD events, in one
    /// transaction. Returns the post's id.
    pub async fn insert_chat_file_post(
        &self,
        file: &NewChatFile,
        ts_ms: i64,
        text: &str,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'chat_post' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_posts (id, room_id, author, ts, text, original, state) \
             VALUES ($1, $2, $3, $4, $5, $5, 'active')",
        )
        .bind(id)
        .bind(&file.room_id)
        .bind(&file.author)
        .bind(ts_ms)
        .bind(text)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_files (id, room_id, post_id, author, name, size, sha256, ts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&file.id)
        .bind(&file.room_id)
        .bind(id)
        .bind(&file.author)
        .bind(&file.name)
        .bind(file.size)
        .bind(&file.sha256)
        .bind(ts_ms)
        .execute(&mut *tx)
        .await?;
        crate::chat_compliance::record_post(&mut tx, id, &file.room_id, &file.author, ts_ms, text)
            .await?;
        crate::chat_compliance::record_file(
            &mut tx,
            "FILEUPLOAD",
            &file.room_id,
            &file.author,
            ts_ms,
            id,
            &file.name,
        )
        .await?;
        // The chat pool's servers hear of it at commit (PostgreSQL) and deliver it
        // to their joined members, as a post of another server.
        self.chat_notify(
            &mut tx,
            &crate::ChatPoolEvent::Post {
                server: FILE_POST_SERVER.to_owned(),
                id,
                room_id: file.room_id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A stored file by its id.
    pub async fn chat_file(&self, id: &str) -> Result<Option<ChatFile>> {
        let row = sqlx::query(
            "SELECT id, room_id, post_id, author, name, size, sha256, ts FROM chat_files \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| file_from_row(&r)).transpose()
    }

    /// The files posted in a room, newest first.
    pub async fn chat_room_files(&self, room_id: &str) -> Result<Vec<ChatFile>> {
        let rows = sqlx::query(
            "SELECT id, room_id, post_id, author, name, size, sha256, ts FROM chat_files \
             WHERE room_id = $1 ORDER BY ts DESC, id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_from_row).collect()
    }

    /// Records a download of `file` by `user` (while compliance is on).
    pub async fn record_chat_file_download(
        &self,
        file: &ChatFile,
        user: &str,
        ts_ms: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        crate::chat_compliance::record_file(
            &mut tx,
            "FILEDOWNLOAD",
            &file.room_id,
            user,
            ts_ms,
            file.post_id,
            &file.name,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn file_from_row(r: &sqlx::any::AnyRow) -> Result<ChatFile> {
    Ok(ChatFile {
        id: r.try_get("id")?,
        room_id: r.try_get("room_id")?,
        post_id: r.try_get("post_id")?,
        author: r.try_get("author")?,
        name: r.try_get("name")?,
        size: r.try_get("size")?,
        sha256: r.try_get("sha256")?,
        ts_ms: r.try_get("ts")?,
    })
}
