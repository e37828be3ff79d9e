//! Call detail records (migration 0013, Lync's Monitoring role): written in
//! batches (one transaction of multi-row INSERTs) by the Mediation server's
//! record writer and the front end's monitoring writer (internal calls), read by `confab report calls`; IM sessions (migration
//! 0016), upserted in batches by the monitoring writer, read by `confab report ims`.

use std::collections::HashMap;

use sqlx::Row;

use crate::users::insert_sql;
use crate::{Result, Store};

/// Rows in one INSERT at most: 64 rows of 12 values stay far below SQLite's
/// (999 in old builds) and PostgreSQL's (65,535) limits on bound parameters.
const MAX_ROWS: usize = 64;

/// How a batch of `n` rows is cut into INSERTs: as many of [`MAX_ROWS`] as fit,
/// then the rest in falling powers of two (100 = 64 + 32 + 4). Only seven
/// statement texts exist per table, so each stays prepared in the connection's
/// statement cache instead of one text per batch size.
fn chunks(n: usize) -> impl Iterator<Item = usize> {
    let full = n / MAX_ROWS;
    let rest = n % MAX_ROWS;
    std::iter::repeat_n(MAX_ROWS, full).chain(
        (0..MAX_ROWS.trailing_zeros())
            .rev()
            .map(|b| 1usize << b)
            .filter(move |bit| rest & bit != 0),
    )
}

/// One call, as recorded. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDetail {
    /// `outbound` or `inbound`.
    pub direction: String,
    pub caller: String,
    pub callee: String,
    /// The number as dialed (outbound) or normalized (inbound).
    pub number: String,
    /// The trunk that carried it ('' when none).
    pub trunk: String,
    pub started: i64,
    /// 0: not answered.
    pub answered: i64,
    pub ended: i64,
    /// The final SIP code (200 when answered).
    pub code: i64,
    /// Trunks tried with their codes, e.g. `gw1:503 gw2:200`.
    pub attempts: String,
    /// RTP packets relayed; -1: media bypass.
    pub relayed_packets: i64,
}

impl Store {
    /// Records a batch of calls in one transaction, as multi-row INSERTs (see
    /// [`chunks`]): a round trip to the database per chunk, not per call.
    pub async fn record_calls(&self, calls: &[CallDetail]) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut rest = calls;
        for n in chunks(calls.len()) {
            let (chunk, more) = rest.split_at(n);
            rest = more;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(
                self.backend(),
                "INSERT INTO call_records (id, direction, caller, callee, number, trunk, \
                 started, answered, ended, code, attempts, relayed_packets) VALUES ",
                12,
                n,
                "",
            )));
            for c in chunk {
                q = q
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(&c.direction)
                    .bind(&c.caller)
                    .bind(&c.callee)
                    .bind(&c.number)
                    .bind(&c.trunk)
                    .bind(c.started)
                    .bind(c.answered)
                    .bind(c.ended)
                    .bind(c.code)
                    .bind(&c.attempts)
                    .bind(c.relayed_packets);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Calls started at or after `since` (epoch ms), where `user` (lower case) is
    /// the caller or the callee when given; oldest first, at most `limit`.
    pub async fn call_details(
        &self,
        user: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<CallDetail>> {
        let user = user.map(str::to_lowercase).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT direction, caller, callee, number, trunk, started, answered, ended, code, \
             attempts, relayed_packets FROM call_records \
             WHERE started >= $1 AND ($2 = '' OR caller = $2 OR callee = $2) \
             ORDER BY started, id LIMIT $3",
        )
        .bind(since)
        .bind(&user)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallDetail {
                    direction: r.try_get(0)?,
                    caller: r.try_get(1)?,
                    callee: r.try_get(2)?,
                    number: r.try_get(3)?,
                    trunk: r.try_get(4)?,
                    started: r.try_get(5)?,
                    answered: r.try_get(6)?,
                    ended: r.try_get(7)?,
                    code: r.try_get(8)?,
                    attempts: r.try_get(9)?,
                    relayed_packets: r.try_get(10)?,
                })
            })
            .collect()
    }
}

/// One IM conversation between two users. Times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImSession {
    /// Unique per session (the writer's).
    pub id: String,
    /// `pager` (MESSAGEs) or `session` (INVITE-based IM session).
    pub kind: String,
    /// Who started it.
    pub from_user: String,
    pub to_user: String,
    pub started: i64,
    /// The last activity while `active`, else the end.
    pub ended: i64,
    pub messages: i64,
    /// The final answer to the session's INVITE (200 for pager sessions).
    pub code: i64,
    /// Still going on.
    pub active: bool,
}

impl Store {
    /// Writes (inserts or updates by id) a batch of IM sessions in one
    /// transaction, as multi-row upserts (see [`chunks`]). A session given twice
    /// is written as its last copy.
    pub async fn record_im_sessions(&self, sessions: &[ImSession]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        // One row per id (an upsert statement may not touch a row twice): the last.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(sessions.len());
        for (i, s) in sessions.iter().enumerate() {
            last.insert(s.id.as_str(), i);
        }
        let unique: Vec<&ImSession> = sessions
            .iter()
            .enumerate()
            .filter(|(i, s)| last.get(s.id.as_str()) == Some(i))
            .map(|(_, s)| s)
            .collect();
        let mut tx = self.pool.begin().await?;
        let mut rest = unique.as_slice();
        for n in chunks(unique.len()) {
            let (chunk, more) = rest.split_at(n);
            rest = more;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(
                self.backend(),
                "INSERT INTO im_sessions (id, kind, from_user, to_user, started, ended, \
                 messages, code, active) VALUES ",
                9,
                n,
                " ON CONFLICT (id) DO UPDATE SET ended = excluded.ended, \
                 messages = excluded.messages, code = excluded.code, active = excluded.active",
            )));
            for s in chunk {
                q = q
                    .bind(&s.id)
                    .bind(&s.kind)
                    .bind(&s.from_user)
                    .bind(&s.to_user)
                    .bind(s.started)
                    .bind(s.ended)
                    .bind(s.messages)
                    .bind(s.code)
                    .bind(i64::from(s.active));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// IM sessions started at or after `since` (epoch ms) in which `user` (lower
    /// case) took part when given; oldest first, at most `limit`.
    pub async fn im_sessions(
        &self,
        user: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ImSession>> {
        let user = user.map(str::to_lowercase).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT id, kind, from_user, to_user, started, ended, messages, code, active \
             FROM im_sessions WHERE started >= $1 \
             AND ($2 = '' OR from_user = $2 OR to_user = $2) \
             ORDER BY started, id LIMIT $3",
        )
        .bind(since)
        .bind(&user)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let active: i64 = r.try_get(8)?;
                Ok(ImSession {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    from_user: r.try_get(2)?,
                    to_user: r.try_get(3)?,
                    started: r.try_get(4)?,
                    ended: r.try_get(5)?,
                    messages: r.try_get(6)?,
                    code: r.try_get(7)?,
                    active: active != 0,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn batches_cut_into_few_statement_sizes() {
        for n in [0, 1, 5, 63, 64, 65, 100, 1000, 1024] {
            let parts: Vec<usize> = chunks(n).collect();
            assert_eq!(parts.iter().sum::<usize>(), n, "{n}: {parts:?}");
            assert!(
                parts.iter().all(|p| p.is_power_of_two() && *p <= MAX_ROWS),
                "{n}: {parts:?}"
            );
        }
        assert_eq!(chunks(100).collect::<Vec<_>>(), vec![64, 32, 4]);
        assert_eq!(
            insert_sql(Backend::Postgres, "INSERT INTO t (a, b) VALUES ", 2, 2, ""),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            insert_sql(Backend::Sqlite, "INSERT INTO t (a, b) VALUES ", 2, 2, " X"),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) X"
        );
    }
}
