//! Presence shared between the front ends of a pool (issue 12; table
//! `pool_presence`, migration 0012): each front end writes the aggregated state
//! of the users it serves and tells the others with `pg_notify` on
//! [`PRESENCE_CHANNEL`] in the same transaction (delivered at commit).

use sqlx::Row;

use crate::{Backend, Result, Store};

/// The PostgreSQL LISTEN/NOTIFY channel of shared presence.
pub const PRESENCE_CHANNEL: &str = "confab_presence";

/// Availability numbers from this one on mean offline (MS-PRES: 18000+).
const OFFLINE_FROM: u32 = 18_000;

/// Longest note carried (notification payloads are limited to 8000 bytes).
const MAX_NOTE: usize = 2_000;

/// One user's presence as their front end shares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedState {
    pub pool: String,
    /// The front end serving the user.
    pub member: String,
    pub address: String,
    /// Lync availability number (18000 and above: offline, no row is kept).
    pub availability: u32,
    pub activity: Option<String>,
    pub note: Option<String>,
}

/// `s` without tabs and line breaks, at most `max` bytes (on a char boundary).
fn field(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

impl SharedState {
    /// Whether the user is offline (signed out).
    pub fn offline(&self) -> bool {
        self.availability >= OFFLINE_FROM
    }

    /// The notification payload: tab-separated fields.
    pub fn encode(&self) -> String {
        format!(
            "p\t{}\t{}\t{}\t{}\t{}\t{}",
            field(&self.pool, 255),
            field(&self.member, 255),
            field(&self.address, 255),
            self.availability,
            field(self.activity.as_deref().unwrap_or(""), 255),
            field(self.note.as_deref().unwrap_or(""), MAX_NOTE)
        )
    }

    /// Parses a payload made by [`SharedState::encode`]; `None` for anything else.
    pub fn decode(payload: &str) -> Option<SharedState> {
        let f: Vec<&str> = payload.split('\t').collect();
        match f.as_slice() {
            ["p", pool, member, address, availability, activity, note] => Some(SharedState {
                pool: (*pool).to_owned(),
                member: (*member).to_owned(),
                address: (*address).to_owned(),
                availability: availability.parse().ok()?,
                activity: (!activity.is_empty()).then(|| (*activity).to_owned()),
                note: (!note.is_empty()).then(|| (*note).to_owned()),
            }),
            _ => None,
        }
    }
}

impl Store {
    /// Writes the shared states (a signed-out user's row is removed) in one
    /// transaction and tells the pool's front ends.
    pub async fn pool_presence_share(&self, states: &[SharedState], now_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for s in states {
            if s.offline() {
                sqlx::query("DELETE FROM pool_presence WHERE pool = $1 AND address = $2")
                    .bind(&s.pool)
                    .bind(&s.address)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO pool_presence (pool, address, member, availability, activity, note, updated_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (pool, address) DO UPDATE SET member = excluded.member, \
                     availability = excluded.availability, activity = excluded.activity, \
                     note = excluded.note, updated_ms = excluded.updated_ms",
                )
                .bind(&s.pool)
                .bind(&s.address)
                .bind(&s.member)
                .bind(i64::from(s.availability))
                .bind(s.activity.as_deref())
                .bind(s.note.as_deref().map(|n| field(n, MAX_NOTE)))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(PRESENCE_CHANNEL)
                    .bind(s.encode())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The shared presence of `pool`'s signed-in users.
    pub async fn pool_presence(&self, pool: &str) -> Result<Vec<SharedState>> {
        let rows = sqlx::query(
            "SELECT member, address, availability, activity, note FROM pool_presence \
             WHERE pool = $1 ORDER BY address",
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let availability: i64 = r.try_get(2)?;
                Ok(SharedState {
                    pool: pool.to_owned(),
                    member: r.try_get(0)?,
                    address: r.try_get(1)?,
                    availability: u32::try_from(availability).unwrap_or(u32::MAX),
                    activity: r.try_get(3)?,
                    note: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Drops what front end `member` of `pool` shared (it left the pool).
    pub async fn pool_presence_forget(&self, pool: &str, member: &str) -> Result<()> {
        sqlx::query("DELETE FROM pool_presence WHERE pool = $1 AND member = $2")
            .bind(pool)
            .bind(member)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let s = SharedState {
            pool: "pool01.example.com".into(),
            member: "fe02.example.com".into(),
            address: "bob@example.com".into(),
            availability: 15500,
            activity: Some("away".into()),
            note: Some("out\tto\nlunch".into()),
        };
        let d = SharedState::decode(&s.encode()).unwrap();
        assert_eq!(d.note.as_deref(), Some("out to lunch"));
        assert_eq!(d.availability, 15500);
        assert_eq!(d.activity.as_deref(), Some("away"));
        assert!(!d.offline());
        let off = SharedState {
            availability: 18500,
            activity: None,
            note: None,
            ..s
        };
        let d = SharedState::decode(&off.encode()).unwrap();
        assert!(d.offline() && d.activity.is_none() && d.note.is_none());
        assert_eq!(SharedState::decode("h\tx"), None);
        assert_eq!(SharedState::decode("p\ta\tb\tc\tnot-a-number\t\t"), None);
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let note = "é".repeat(MAX_NOTE);
        let f = field(&note, MAX_NOTE);
        assert_eq!(f.len(), MAX_NOTE);
        assert!(f.chars().all(|c| c == 'é'));
    }
}
