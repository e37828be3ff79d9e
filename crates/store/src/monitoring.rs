//! Call detail records (migration 0013, Lync's Monitoring role): written in
//! batches by the Mediation server's record writer and the front end's monitoring
//! writer (internal calls), read by `confab report calls`; IM sessions (migration
//! 0016), upserted in batches by the monitoring writer, read by `confab report ims`.

use sqlx::Row;

use crate::{Result, Store};

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
    /// Records a batch of calls in one transaction.
    pub async fn record_calls(&self, calls: &[CallDetail]) -> Result<()> {
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for c in calls {
            sqlx::query(
                "INSERT INTO call_records (id, direction, caller, callee, number, trunk, \
                 started, answered, ended, code, attempts, relayed_packets) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
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
            .bind(c.relayed_packets)
            .execute(&mut *tx)
            .await?;
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
    /// Writes (inserts or updates by id) a batch of IM sessions in one transaction.
    pub async fn record_im_sessions(&self, sessions: &[ImSession]) -> Result<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for s in sessions {
            sqlx::query(
                "INSERT INTO im_sessions (id, kind, from_user, to_user, started, ended, \
                 messages, code, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (id) DO UPDATE SET ended = excluded.ended, \
                 messages = excluded.messages, code = excluded.code, active = excluded.active",
            )
            .bind(&s.id)
            .bind(&s.kind)
            .bind(&s.from_user)
            .bind(&s.to_user)
            .bind(s.started)
            .bind(s.ended)
            .bind(s.messages)
            .bind(s.code)
            .bind(i64::from(s.active))
            .execute(&mut *tx)
            .await?;
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
