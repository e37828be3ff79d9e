//! Enterprise pools (issue 12): the front ends of a pool (`pool_members`, written
//! every heartbeat) and each user's home front end (`pool_user_home`).
//!
//! Every write also tells the pool's other front ends: on PostgreSQL a
//! `pg_notify` on [`POOL_CHANNEL`] in the same transaction, its payload a
//! [`PoolEvent`] (delivered at commit, so a listener never sees an uncommitted
//! change). On SQLite the tables work but nobody listens (a pool of one).

use sqlx::Row;

use crate::{Backend, Result, Store};

/// The PostgreSQL LISTEN/NOTIFY channel of pool changes.
pub const POOL_CHANNEL: &str = "confab_pool";

/// One front end of a pool as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    pub pool: String,
    /// The front end's name (its FQDN in a topology).
    pub member: String,
    /// Where the pool's other front ends send it SIP (`ip:port`).
    pub sip_addr: String,
    /// Its last heartbeat, epoch milliseconds (its own clock).
    pub heartbeat_ms: i64,
    /// When it started, epoch milliseconds.
    pub started_ms: i64,
    /// Registrations it held at its last heartbeat.
    pub registrations: i64,
}

/// A change of the pool, as carried by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolEvent {
    /// A front end's heartbeat (or its first one).
    Member(PoolMember),
    /// `address` is now homed on `member` of `pool`.
    Home {
        pool: String,
        address: String,
        member: String,
    },
}

impl PoolEvent {
    /// The notification payload: tab-separated fields.
    pub fn encode(&self) -> String {
        match self {
            PoolEvent::Member(m) => format!(
                "m\t{}\t{}\t{}\t{}\t{}\t{}",
                m.pool, m.member, m.sip_addr, m.heartbeat_ms, m.started_ms, m.registrations
            ),
            PoolEvent::Home {
                pool,
                address,
                member,
            } => format!("h\t{pool}\t{address}\t{member}"),
        }
    }

    /// Parses a payload made by [`PoolEvent::encode`]; `None` for anything else.
    pub fn decode(payload: &str) -> Option<PoolEvent> {
        let f: Vec<&str> = payload.split('\t').collect();
        match f.as_slice() {
            ["m", pool, member, sip, hb, started, regs] => Some(PoolEvent::Member(PoolMember {
                pool: (*pool).to_owned(),
                member: (*member).to_owned(),
                sip_addr: (*sip).to_owned(),
                heartbeat_ms: hb.parse().ok()?,
                started_ms: started.parse().ok()?,
                registrations: regs.parse().ok()?,
            })),
            ["h", pool, address, member] => Some(PoolEvent::Home {
                pool: (*pool).to_owned(),
                address: (*address).to_owned(),
                member: (*member).to_owned(),
            }),
            _ => None,
        }
    }
}

fn member_from_row(r: &sqlx::any::AnyRow) -> Result<PoolMember> {
    Ok(PoolMember {
        pool: r.try_get(0)?,
        member: r.try_get(1)?,
        sip_addr: r.try_get(2)?,
        heartbeat_ms: r.try_get(3)?,
        started_ms: r.try_get(4)?,
        registrations: r.try_get(5)?,
    })
}

impl Store {
    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        ev: &PoolEvent,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(POOL_CHANNEL)
                .bind(ev.encode())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Writes a front end's heartbeat (inserting its row the first time) and tells
    /// the pool.
    pub async fn pool_heartbeat(&self, m: &PoolMember) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pool_members (pool, member, sip_addr, heartbeat_ms, started_ms, registrations) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (pool, member) DO UPDATE SET sip_addr = excluded.sip_addr, \
             heartbeat_ms = excluded.heartbeat_ms, started_ms = excluded.started_ms, \
             registrations = excluded.registrations",
        )
        .bind(&m.pool)
        .bind(&m.member)
        .bind(&m.sip_addr)
        .bind(m.heartbeat_ms)
        .bind(m.started_ms)
        .bind(m.registrations)
        .execute(&mut *tx)
        .await?;
        self.notify(&mut tx, &PoolEvent::Member(m.clone())).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The front ends of `pool`, by name.
    pub async fn pool_members(&self, pool: &str) -> Result<Vec<PoolMember>> {
        let rows = sqlx::query(
            "SELECT pool, member, sip_addr, heartbeat_ms, started_ms, registrations \
             FROM pool_members WHERE pool = $1 ORDER BY member",
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    /// The pools that have front ends, by name.
    pub async fn pool_names(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT pool FROM pool_members ORDER BY pool")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Every user homed in `pool` with their home front end.
    pub async fn pool_homes(&self, pool: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT address, member FROM pool_user_home WHERE pool = $1 ORDER BY address",
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Homes `address` on `member` of `pool` if its home is still `previous`
    /// (`None`: it has none), a compare-and-set, so that two front ends assigning
    /// the same user at once agree. Returns the user's home afterwards (the
    /// winner's), and tells the pool when it changed.
    pub async fn claim_home(
        &self,
        pool: &str,
        address: &str,
        member: &str,
        previous: Option<&str>,
        now_ms: i64,
    ) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        let current: Option<(String, String)> =
            sqlx::query("SELECT pool, member FROM pool_user_home WHERE address = $1")
                .bind(address)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
                .transpose()?;
        let matches = match (&current, previous) {
            (None, _) => true,
            (Some((p, m)), Some(prev)) => p == pool && m == prev,
            (Some(_), None) => false,
        };
        if !matches {
            tx.rollback().await?;
            return Ok(current.map(|(_, m)| m).unwrap_or_default());
        }
        self.set_home_in(&mut tx, pool, address, member, now_ms)
            .await?;
        tx.commit().await?;
        Ok(member.to_owned())
    }

    /// Homes `address` on `member` of `pool` whatever its home was (administration).
    pub async fn set_home(
        &self,
        pool: &str,
        address: &str,
        member: &str,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        self.set_home_in(&mut tx, pool, address, member, now_ms)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_home_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        pool: &str,
        address: &str,
        member: &str,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO pool_user_home (address, pool, member, assigned_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (address) DO UPDATE SET pool = excluded.pool, member = excluded.member, \
             assigned_ms = excluded.assigned_ms",
        )
        .bind(address)
        .bind(pool)
        .bind(member)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        let ev = PoolEvent::Home {
            pool: pool.to_owned(),
            address: address.to_owned(),
            member: member.to_owned(),
        };
        self.notify(tx, &ev).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let evs = [
            PoolEvent::Member(PoolMember {
                pool: "pool01.contoso.com".into(),
                member: "fe01.contoso.com".into(),
                sip_addr: "127.0.0.2:5060".into(),
                heartbeat_ms: 1_700_000_000_000,
                started_ms: 1_699_999_999_000,
                registrations: 3,
            }),
            PoolEvent::Home {
                pool: "pool01.contoso.com".into(),
                address: "alice@contoso.com".into(),
                member: "fe02.contoso.com".into(),
            },
        ];
        for ev in evs {
            assert_eq!(PoolEvent::decode(&ev.encode()), Some(ev));
        }
        assert_eq!(PoolEvent::decode("m\tx"), None);
        assert_eq!(PoolEvent::decode("m\tp\tm\ta\tnot-a-number\t0\t0"), None);
        assert_eq!(PoolEvent::decode(""), None);
    }

    #[tokio::test]
    async fn homes_are_claimed_by_compare_and_set_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("p.db")).await.unwrap();
        let m = PoolMember {
            pool: "p".into(),
            member: "fe01".into(),
            sip_addr: "127.0.0.2:5060".into(),
            heartbeat_ms: 10,
            started_ms: 5,
            registrations: 0,
        };
        store.pool_heartbeat(&m).await.unwrap();
        store
            .pool_heartbeat(&PoolMember {
                heartbeat_ms: 20,
                ..m.clone()
            })
            .await
            .unwrap();
        let members = store.pool_members("p").await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].heartbeat_ms, 20);

        // First claim wins; a second claim that expected "no home" loses.
        assert_eq!(
            store.claim_home("p", "a@x", "fe01", None, 1).await.unwrap(),
            "fe01"
        );
        assert_eq!(
            store.claim_home("p", "a@x", "fe02", None, 2).await.unwrap(),
            "fe01"
        );
        // Re-homing from the dead fe01 succeeds once.
        assert_eq!(
            store
                .claim_home("p", "a@x", "fe02", Some("fe01"), 3)
                .await
                .unwrap(),
            "fe02"
        );
        assert_eq!(
            store
                .claim_home("p", "a@x", "fe03", Some("fe01"), 4)
                .await
                .unwrap(),
            "fe02"
        );
        store.set_home("p", "b@x", "fe03", 5).await.unwrap();
        assert_eq!(
            store.pool_homes("p").await.unwrap(),
            vec![("a@x".into(), "fe02".into()), ("b@x".into(), "fe03".into())]
        );
    }
}
