//! Response Groups (migration 0018): workflows, queues and agent groups as JSON
//! documents (their shape and checks are `confab_rgs::model`'s), and formal
//! agents' sign-ins. Writers read everything with its revision, check the
//! whole changed set, and save it with the revision they read
//! ([`Store::save_rgs`] refuses when it changed meanwhile); every write bumps
//! `rgs_rev`, which the server polls.

use sqlx::Row;

use crate::{Result, Store, StoreError};

/// One stored object: kind (`workflow`, `queue`, `group`), name, JSON body.
pub type RgsObject = (String, String, String);
/// One sign-in: agent group, agent (`user@domain`), Unix milliseconds.
pub type RgsSignIn = (String, String, i64);

impl Store {
    /// The revision of the Response Group configuration.
    pub async fn rgs_rev(&self) -> Result<i64> {
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'rgs_rev'")
            .fetch_one(&self.pool)
            .await?;
        Ok(rev)
    }

    /// Everything, with its revision, read in one transaction (objects in the
    /// order they were saved).
    pub async fn rgs_rows(&self) -> Result<(i64, Vec<RgsObject>, Vec<RgsSignIn>)> {
        let mut tx = self.pool.begin().await?;
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'rgs_rev'")
            .fetch_one(&mut *tx)
            .await?;
        let mut objects = Vec::new();
        for row in sqlx::query("SELECT kind, name, body FROM rgs_objects ORDER BY position")
            .fetch_all(&mut *tx)
            .await?
        {
            objects.push((
                row.try_get("kind")?,
                row.try_get("name")?,
                row.try_get("body")?,
            ));
        }
        let mut signins = Vec::new();
        for row in sqlx::query(
            "SELECT grp, agent, signed_in_at FROM rgs_signins ORDER BY signed_in_at, grp, agent",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            signins.push((
                row.try_get("grp")?,
                row.try_get("agent")?,
                row.try_get("signed_in_at")?,
            ));
        }
        tx.commit().await?;
        Ok((rev, objects, signins))
    }

    /// Replaces everything, if the revision is still `expected`; the new revision.
    pub async fn save_rgs(
        &self,
        expected: i64,
        objects: &[RgsObject],
        signins: &[RgsSignIn],
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let rev: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'rgs_rev' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        if rev != expected + 1 {
            return Err(StoreError::Rgs(
                "the Response Group configuration changed meanwhile; nothing was changed, try again"
                    .into(),
            ));
        }
        crate::announce(&mut tx, "rgs_rev").await?;
        sqlx::query("DELETE FROM rgs_objects")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM rgs_signins")
            .execute(&mut *tx)
            .await?;
        for (i, (kind, name, body)) in objects.iter().enumerate() {
            sqlx::query(
                "INSERT INTO rgs_objects (kind, name, body, position) VALUES ($1, $2, $3, $4)",
            )
            .bind(kind)
            .bind(name)
            .bind(body)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        for (grp, agent, at) in signins {
            sqlx::query("INSERT INTO rgs_signins (grp, agent, signed_in_at) VALUES ($1, $2, $3)")
                .bind(grp)
                .bind(agent)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rev)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn round_trip_and_stale_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
        let (rev, objs, signs) = store.rgs_rows().await.unwrap();
        assert_eq!((rev, objs.len(), signs.len()), (0, 0, 0));
        let objects = vec![
            ("group".to_owned(), "g".to_owned(), "{}".to_owned()),
            ("queue".to_owned(), "q".to_owned(), "{\"a\":1}".to_owned()),
        ];
        let signins = vec![("g".to_owned(), "bob@example.com".to_owned(), 5)];
        assert_eq!(store.save_rgs(0, &objects, &signins).await.unwrap(), 1);
        assert!(store.save_rgs(0, &[], &[]).await.is_err());
        let (rev, objs, signs) = store.rgs_rows().await.unwrap();
        assert_eq!(rev, 1);
        assert_eq!(objs, objects);
        assert_eq!(signs, signins);
        assert_eq!(store.rgs_rev().await.unwrap(), 1);
    }
}
