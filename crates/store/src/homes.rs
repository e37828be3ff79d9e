//! Several pools in one topology (issue 12): the pool each user is homed on
//! (`user_pools`) and what each pool is (`pool_kinds`), migration 0011.
//!
//! The directory (users, their credentials, contact lists) is shared by all
//! pools; `user_pools` says which pool serves a user. Every write tells the
//! servers with a `pg_notify` on [`POOL_CHANNEL`] in the same transaction (a
//! [`HomeEvent`], beside the pool's own [`PoolEvent`]s).

use sqlx::Row;

use crate::pool::PoolEvent;
use crate::{Address, Backend, POOL_CHANNEL, Result, Store, StoreError};

/// A pool's kind in `pool_kinds`.
pub const KIND_FRONT_END: &str = "front-end";
/// A pool of Directors in `pool_kinds`.
pub const KIND_DIRECTOR: &str = "director";

/// A change of the topology's homes, as carried by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeEvent {
    /// `address` is now homed on `pool` (`None`: the default pool).
    UserPool {
        address: String,
        pool: Option<String>,
    },
    /// `pool` is of `kind` ([`KIND_FRONT_END`] or [`KIND_DIRECTOR`]).
    PoolKind { pool: String, kind: String },
}

impl HomeEvent {
    /// The notification payload: tab-separated fields.
    pub fn encode(&self) -> String {
        match self {
            HomeEvent::UserPool { address, pool } => {
                format!("u\t{address}\t{}", pool.as_deref().unwrap_or(""))
            }
            HomeEvent::PoolKind { pool, kind } => format!("k\t{pool}\t{kind}"),
        }
    }

    /// Parses a payload made by [`HomeEvent::encode`]; `None` for anything else.
    pub fn decode(payload: &str) -> Option<HomeEvent> {
        let f: Vec<&str> = payload.split('\t').collect();
        match f.as_slice() {
            ["u", address, pool] => Some(HomeEvent::UserPool {
                address: (*address).to_owned(),
                pool: (!pool.is_empty()).then(|| (*pool).to_owned()),
            }),
            ["k", pool, kind] => Some(HomeEvent::PoolKind {
                pool: (*pool).to_owned(),
                kind: (*kind).to_owned(),
            }),
            _ => None,
        }
    }
}

impl Store {
    async fn notify_payload(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        payload: String,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(POOL_CHANNEL)
                .bind(payload)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Records what `pool` is (a server does this when it joins).
    pub async fn set_pool_kind(&self, pool: &str, kind: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pool_kinds (pool, kind) VALUES ($1, $2) \
             ON CONFLICT (pool) DO UPDATE SET kind = excluded.kind",
        )
        .bind(pool)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        let ev = HomeEvent::PoolKind {
            pool: pool.to_owned(),
            kind: kind.to_owned(),
        };
        self.notify_payload(&mut tx, ev.encode()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every pool with its kind, by name.
    pub async fn pool_kinds(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT pool, kind FROM pool_kinds ORDER BY pool")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The pools users can be homed on (kind `front-end`), by name.
    pub async fn front_end_pools(&self) -> Result<Vec<String>> {
        Ok(self
            .pool_kinds()
            .await?
            .into_iter()
            .filter(|(_, k)| k == KIND_FRONT_END)
            .map(|(p, _)| p)
            .collect())
    }

    /// The pool `address` is homed on (`None`: the default pool).
    pub async fn user_pool(&self, address: &str) -> Result<Option<String>> {
        let address = Address::parse(address)?.to_string();
        let row = sqlx::query("SELECT pool FROM user_pools WHERE address = $1")
            .bind(address)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    /// Every user with an explicit pool: `(address, pool)`, by address.
    pub async fn user_pools(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT address, pool FROM user_pools ORDER BY address")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Every front end and Director of every pool.
    pub async fn all_pool_members(&self) -> Result<Vec<crate::PoolMember>> {
        let mut all = Vec::new();
        for pool in self.pool_names().await? {
            all.extend(self.pool_members(&pool).await?);
        }
        Ok(all)
    }

    /// Every user's home front end in every pool: `(pool, address, member)`.
    pub async fn all_pool_homes(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query("SELECT pool, address, member FROM pool_user_home")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Homes `address` on `pool` (`None`: the default pool), for a user being
    /// added. The user need not exist yet.
    pub async fn set_user_pool(
        &self,
        address: &str,
        pool: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let address = Address::parse(address)?.to_string();
        let mut tx = self.pool.begin().await?;
        self.write_user_pool(&mut tx, &address, pool, now_ms)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves an existing user to `pool` (Lync's `Move-CsUser`): their pool
    /// changes and their home front end in the old pool is forgotten, so that
    /// their next sign-in is sent to, and homed in, the new pool. Their contact
    /// list and settings are in the shared directory and go with them.
    /// Returns the pool they were on (`None`: the default pool).
    pub async fn move_user(
        &self,
        address: &str,
        pool: &str,
        now_ms: i64,
    ) -> Result<Option<String>> {
        let address = Address::parse(address)?.to_string();
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM users WHERE address = $1")
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::UserNotFound(address));
        }
        let before: Option<String> = sqlx::query("SELECT pool FROM user_pools WHERE address = $1")
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        sqlx::query("DELETE FROM pool_user_home WHERE address = $1")
            .bind(&address)
            .execute(&mut *tx)
            .await?;
        self.write_user_pool(&mut tx, &address, Some(pool), now_ms)
            .await?;
        // The old pool's front ends forget the user's home there (a home in
        // another pool, with no front end yet); the new pool homes them at sign-in.
        let ev = PoolEvent::Home {
            pool: pool.to_owned(),
            address: address.clone(),
            member: String::new(),
        };
        self.notify_payload(&mut tx, ev.encode()).await?;
        tx.commit().await?;
        Ok(before)
    }

    async fn write_user_pool(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        address: &str,
        pool: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let changed = match pool {
            Some(p) => sqlx::query(
                "INSERT INTO user_pools (address, pool, assigned_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (address) DO UPDATE SET pool = excluded.pool, \
                 assigned_ms = excluded.assigned_ms WHERE user_pools.pool <> excluded.pool",
            )
            .bind(address)
            .bind(p)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
            None => sqlx::query("DELETE FROM user_pools WHERE address = $1")
                .bind(address)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        // Dial plans and voice policies scoped to a pool or a site follow the
        // user's pool: when it changed, the voice configuration's readers reload.
        if changed > 0 {
            crate::voice::bump_voice_rev(tx).await?;
        }
        let ev = HomeEvent::UserPool {
            address: address.to_owned(),
            pool: pool.map(str::to_owned),
        };
        self.notify_payload(tx, ev.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        for ev in [
            HomeEvent::UserPool {
                address: "alice@example.com".into(),
                pool: Some("poolb.example.com".into()),
            },
            HomeEvent::UserPool {
                address: "bob@example.com".into(),
                pool: None,
            },
            HomeEvent::PoolKind {
                pool: "dir.example.com".into(),
                kind: KIND_DIRECTOR.into(),
            },
        ] {
            assert_eq!(HomeEvent::decode(&ev.encode()), Some(ev));
        }
        assert_eq!(HomeEvent::decode("m\tp\tfe"), None);
        assert_eq!(HomeEvent::decode("x"), None);
    }

    #[tokio::test]
    async fn a_changed_pool_bumps_the_voice_revision_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_sqlite(&dir.path().join("h.db")).await.unwrap();
        let rev = s.voice_rev().await.unwrap();
        // A new user in the default pool changes nobody's home.
        s.set_user_pool("alice@example.com", None, 1).await.unwrap();
        assert_eq!(s.voice_rev().await.unwrap(), rev);
        s.set_user_pool("alice@example.com", Some("pool1.example.com"), 2)
            .await
            .unwrap();
        assert_eq!(s.voice_rev().await.unwrap(), rev + 1);
        // The same pool again: no change, no reload.
        s.set_user_pool("alice@example.com", Some("pool1.example.com"), 3)
            .await
            .unwrap();
        assert_eq!(s.voice_rev().await.unwrap(), rev + 1);
        s.set_user_pool("alice@example.com", None, 4).await.unwrap();
        assert_eq!(s.voice_rev().await.unwrap(), rev + 2);
        assert!(s.user_pools().await.unwrap().is_empty());
    }
}
