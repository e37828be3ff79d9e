//! Call detail records (migration 0013, Lync's Monitoring role): written in
//! batches by the Mediation server's record writer, read by `confab report calls`.

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
