//! Administrator roles and the audit log (the Control Panel, issue 17).
//!
//! The store keeps role names as text; which names exist and what each may do is
//! decided by the application (`crates/confab/src/admin.rs`).

use sqlx::Row;

use crate::{Address, Result, Store, StoreError, now_secs};

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Order of writing (1, 2, ...); 0 for an entry not yet written.
    pub seq: i64,
    /// Epoch seconds.
    pub at: i64,
    /// Who: an administrator's address, or `cli:LOGIN` for the command line.
    pub actor: String,
    /// From where: the client's IP address, or `cli`.
    pub source: String,
    /// What: `user.add`, `user.disable`, `user.role`, ...
    pub action: String,
    /// The user (or object) changed.
    pub target: Option<String>,
    /// More about the change (never a password).
    pub detail: Option<String>,
}

impl Store {
    /// Gives `address` the administrative `role`, or (`None`) takes its role away.
    /// Fails with [`StoreError::UserNotFound`] for an unknown user.
    pub async fn set_admin_role(&self, address: &str, role: Option<&str>) -> Result<()> {
        let address = Address::parse(address)?.to_string();
        let mut tx = self.pool.begin().await?;
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE address = $1")
            .bind(&address)
            .fetch_one(&mut *tx)
            .await?;
        if exists == 0 {
            return Err(StoreError::UserNotFound(address));
        }
        match role {
            Some(role) => {
                sqlx::query(
                    "INSERT INTO admin_roles (address, role, granted_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (address) DO UPDATE SET role = excluded.role, \
                     granted_at = excluded.granted_at",
                )
                .bind(&address)
                .bind(role)
                .bind(now_secs())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM admin_roles WHERE address = $1")
                    .bind(&address)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The administrative role of `address`, if it has one.
    pub async fn admin_role(&self, address: &str) -> Result<Option<String>> {
        let address = Address::parse(address)?.to_string();
        Ok(
            sqlx::query_scalar("SELECT role FROM admin_roles WHERE address = $1")
                .bind(&address)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Every user with a role, ordered by address: `(address, role)`.
    pub async fn admin_roles(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT address, role FROM admin_roles ORDER BY address")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("role")?)))
            .collect()
    }

    /// Writes an audit record (its `seq` and, when 0, `at` are assigned here) and
    /// returns its `seq`.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'audit' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let at = if entry.at == 0 { now_secs() } else { entry.at };
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, source, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(at)
        .bind(&entry.actor)
        .bind(&entry.source)
        .bind(&entry.action)
        .bind(entry.target.clone())
        .bind(entry.detail.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// The newest `limit` audit records, oldest first; only `actor`'s when given.
    pub async fn audit_entries(&self, actor: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>> {
        let limit = i64::from(limit);
        let rows = match actor {
            Some(a) => {
                sqlx::query(
                    "SELECT seq, at, actor, source, action, target, detail FROM audit_log \
                     WHERE actor = $1 ORDER BY seq DESC LIMIT $2",
                )
                .bind(a.to_ascii_lowercase())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT seq, at, actor, source, action, target, detail FROM audit_log \
                     ORDER BY seq DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    source: r.try_get("source")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()?;
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewUser, StoredCredentials};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::sqlite_url(&dir.path().join("t.db")).unwrap();
        (dir, Store::open(&url).await.unwrap())
    }

    fn creds() -> StoredCredentials {
        StoredCredentials {
            ha1_md5: "a".into(),
            ha1_sha256: "b".into(),
            nt_hash: "c".into(),
        }
    }

    #[tokio::test]
    async fn roles_follow_their_user() {
        let (_d, s) = store().await;
        assert!(matches!(
            s.set_admin_role("nobody@example.com", Some("CsHelpDesk"))
                .await,
            Err(StoreError::UserNotFound(_))
        ));
        s.add_user(NewUser {
            address: "ann@example.com".into(),
            display_name: None,
            creds: creds(),
        })
        .await
        .unwrap();
        s.set_admin_role("sip:Ann@example.com", Some("CsHelpDesk"))
            .await
            .unwrap();
        s.set_admin_role("ann@example.com", Some("CsAdministrator"))
            .await
            .unwrap();
        assert_eq!(
            s.admin_role("ann@example.com").await.unwrap().as_deref(),
            Some("CsAdministrator")
        );
        assert_eq!(s.admin_roles().await.unwrap().len(), 1);
        // A removed and re-added user does not get the old role back.
        s.remove_user("ann@example.com").await.unwrap();
        s.add_user(NewUser {
            address: "ann@example.com".into(),
            display_name: None,
            creds: creds(),
        })
        .await
        .unwrap();
        assert_eq!(s.admin_role("ann@example.com").await.unwrap(), None);
    }

    #[tokio::test]
    async fn audit_entries_come_back_in_order() {
        let (_d, s) = store().await;
        for action in ["user.add", "user.disable", "user.enable"] {
            s.append_audit(&AuditEntry {
                seq: 0,
                at: 0,
                actor: "ann@example.com".into(),
                source: "127.0.0.1".into(),
                action: action.into(),
                target: Some("bob@example.com".into()),
                detail: None,
            })
            .await
            .unwrap();
        }
        let all = s.audit_entries(None, 2).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
            ["user.disable", "user.enable"]
        );
        assert!(all[0].seq < all[1].seq && all[0].at > 0);
        assert!(s.audit_entries(Some("cli:x"), 10).await.unwrap().is_empty());
    }
}
