//! Carrying chat history between deployments (`confab chat import`, the analog of
//! Lync's Import-CsPersistentChatData).

use crate::{PostState, Result, Store};

/// A post from another deployment, with its author, time and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPost {
    pub author: String,
    /// Epoch milliseconds.
    pub ts_ms: i64,
    pub text: String,
    pub original: String,
    pub state: PostState,
}

impl Store {
    /// Adds `posts` to a room in one transaction, with new ids in their order. Not
    /// recorded for compliance (they are not new events). The full-text indexer
    /// picks the active ones up.
    pub async fn import_chat_posts(&self, room_id: &str, posts: &[ImportedPost]) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        for p in posts {
            let id: i64 = sqlx::query_scalar(
                "UPDATE counters SET value = value + 1 WHERE name = 'chat_post' RETURNING value",
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO chat_posts (id, room_id, author, ts, text, original, state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(room_id)
            .bind(&p.author)
            .bind(p.ts_ms)
            .bind(&p.text)
            .bind(&p.original)
            .bind(p.state.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'chat_rev'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(posts.len() as u64)
    }
}
