//! Enterprise Voice configuration (migration 0008): dial plans and rules, voice
//! policies, PSTN usages, routes, trunks, and users' line URIs.
//!
//! Writers check the whole configuration with `confab_voice::VoiceConfig::build`
//! before saving it, then save it with the `voice_rev` they read
//! ([`Store::save_voice_config`] refuses when it changed meanwhile), so a bad or
//! racing edit changes nothing. Every write bumps `voice_rev`; the server polls
//! [`Store::voice_rev`] and reloads.

use std::net::SocketAddr;

use confab_voice::{
    Announcement, DialPlan, ParkOrbit, Route, Rule, Scope, Trunk, TrunkTransport, UnassignedRange,
    UserVoice, VoiceData, VoicePolicy,
};
use sqlx::Row;

use crate::{Address, Result, Store, StoreError};

type Tx = sqlx::Transaction<'static, sqlx::Any>;

pub(crate) async fn bump_voice_rev(tx: &mut Tx) -> Result<i64> {
    let rev: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'voice_rev' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    crate::announce(tx, "voice_rev").await?;
    Ok(rev)
}

fn names(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Voice(format!("stored {what} {value:?} is not valid"))
}

/// Removes a user's voice settings (inside the user's removal).
pub(crate) async fn delete_user(tx: &mut Tx, address: &str) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM voice_users WHERE address = $1")
        .bind(address)
        .execute(&mut **tx)
        .await?;
    if deleted.rows_affected() > 0 {
        bump_voice_rev(tx).await?;
    }
    Ok(())
}

impl Store {
    /// The revision of the voice configuration (bumped by every voice change).
    pub async fn voice_rev(&self) -> Result<i64> {
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'voice_rev'")
            .fetch_one(&self.pool)
            .await?;
        Ok(rev)
    }

    /// The whole voice configuration and its revision, read in one transaction.
    pub async fn voice_data(&self) -> Result<(i64, VoiceData)> {
        let mut tx = self.pool.begin().await?;
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'voice_rev'")
            .fetch_one(&mut *tx)
            .await?;
        let mut rules: Vec<(String, Rule)> = Vec::new();
        for row in sqlx::query(
            "SELECT owner, name, pattern, translation FROM voice_rules ORDER BY owner, position",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            rules.push((
                row.try_get("owner")?,
                Rule {
                    name: row.try_get("name")?,
                    pattern: row.try_get("pattern")?,
                    translation: row.try_get("translation")?,
                },
            ));
        }
        let rules_of = |owner: &str| -> Vec<Rule> {
            rules
                .iter()
                .filter(|(o, _)| o == owner)
                .map(|(_, r)| r.clone())
                .collect()
        };
        let mut data = VoiceData::default();
        for row in sqlx::query("SELECT scope, description FROM voice_dial_plans ORDER BY position")
            .fetch_all(&mut *tx)
            .await?
        {
            let scope: String = row.try_get("scope")?;
            let parsed = Scope::parse(&scope).map_err(|_| corrupt("dial plan", &scope))?;
            data.dial_plans.push(DialPlan {
                rules: rules_of(&format!("dialplan:{parsed}")),
                scope: parsed,
                description: row.try_get("description")?,
            });
        }
        for row in sqlx::query("SELECT scope, usages FROM voice_policies ORDER BY position")
            .fetch_all(&mut *tx)
            .await?
        {
            let scope: String = row.try_get("scope")?;
            let usages: String = row.try_get("usages")?;
            data.policies.push(VoicePolicy {
                scope: Scope::parse(&scope).map_err(|_| corrupt("voice policy", &scope))?,
                usages: names(&usages),
            });
        }
        data.usages = sqlx::query_scalar("SELECT name FROM voice_usages ORDER BY position")
            .fetch_all(&mut *tx)
            .await?;
        for row in
            sqlx::query("SELECT name, pattern, usages, trunks FROM voice_routes ORDER BY position")
                .fetch_all(&mut *tx)
                .await?
        {
            let usages: String = row.try_get("usages")?;
            let trunks: String = row.try_get("trunks")?;
            data.routes.push(Route {
                name: row.try_get("name")?,
                pattern: row.try_get("pattern")?,
                usages: names(&usages),
                trunks: names(&trunks),
            });
        }
        for row in sqlx::query(
            "SELECT name, gateway, transport, from_topology FROM voice_trunks ORDER BY position",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let name: String = row.try_get("name")?;
            let gateway: String = row.try_get("gateway")?;
            let transport: String = row.try_get("transport")?;
            let from_topology: i64 = row.try_get("from_topology")?;
            data.trunks.push(Trunk {
                from_topology: from_topology != 0,
                rules: rules_of(&format!("trunk:{name}")),
                gateway: gateway
                    .parse::<SocketAddr>()
                    .map_err(|_| corrupt("gateway", &gateway))?,
                transport: TrunkTransport::parse(&transport)
                    .ok_or_else(|| corrupt("transport", &transport))?,
                name,
            });
        }
        for row in sqlx::query(
            "SELECT address, line_uri, dial_plan, voice_policy FROM voice_users ORDER BY address",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            data.users.push(UserVoice {
                address: row.try_get("address")?,
                line_uri: row.try_get("line_uri")?,
                dial_plan: row.try_get("dial_plan")?,
                voice_policy: row.try_get("voice_policy")?,
            });
        }
        for row in sqlx::query(
            "SELECT name, audio_file, tones, target FROM voice_announcements ORDER BY position",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            data.announcements.push(Announcement {
                name: row.try_get("name")?,
                audio_file: row.try_get("audio_file")?,
                tones: row.try_get("tones")?,
                target: row.try_get("target")?,
            });
        }
        for row in sqlx::query(
            "SELECT name, range_start, range_end, announcement, priority FROM voice_unassigned \
             ORDER BY position",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            data.unassigned.push(UnassignedRange {
                name: row.try_get("name")?,
                start: row.try_get("range_start")?,
                end: row.try_get("range_end")?,
                announcement: row.try_get("announcement")?,
                priority: row.try_get("priority")?,
            });
        }
        for row in sqlx::query(
            "SELECT name, range_start, range_end, timeout_secs, fallback, music_file, music_tones \
             FROM voice_park_orbits ORDER BY position",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let timeout: i64 = row.try_get("timeout_secs")?;
            data.park_orbits.push(ParkOrbit {
                name: row.try_get("name")?,
                start: row.try_get("range_start")?,
                end: row.try_get("range_end")?,
                timeout_secs: u32::try_from(timeout).unwrap_or(u32::MAX),
                fallback: row.try_get("fallback")?,
                music_file: row.try_get("music_file")?,
                music_tones: row.try_get("music_tones")?,
            });
        }
        tx.commit().await?;
        Ok((rev, data))
    }

    /// Replaces the voice configuration (everything but users' settings) with
    /// `data`, if the configuration is still at revision `expected` (the one it
    /// was read at). The caller checked `data`.
    pub async fn save_voice_config(&self, expected: i64, data: &VoiceData) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let rev = bump_voice_rev(&mut tx).await?;
        if rev != expected + 1 {
            return Err(StoreError::Voice(
                "the voice configuration changed meanwhile; nothing was changed, try again".into(),
            ));
        }
        for table in [
            "voice_rules",
            "voice_dial_plans",
            "voice_policies",
            "voice_usages",
            "voice_routes",
            "voice_trunks",
            "voice_announcements",
            "voice_unassigned",
            "voice_park_orbits",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        let insert_rule = async |tx: &mut Tx, owner: &str, pos: usize, r: &Rule| {
            sqlx::query(
                "INSERT INTO voice_rules (owner, name, position, pattern, translation) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(owner)
            .bind(&r.name)
            .bind(pos as i64)
            .bind(&r.pattern)
            .bind(&r.translation)
            .execute(&mut **tx)
            .await
        };
        for (i, p) in data.dial_plans.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_dial_plans (scope, description, position) VALUES ($1, $2, $3)",
            )
            .bind(p.scope.to_string())
            .bind(p.description.clone())
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
            let owner = format!("dialplan:{}", p.scope);
            for (j, r) in p.rules.iter().enumerate() {
                insert_rule(&mut tx, &owner, j, r).await?;
            }
        }
        for (i, p) in data.policies.iter().enumerate() {
            sqlx::query("INSERT INTO voice_policies (scope, usages, position) VALUES ($1, $2, $3)")
                .bind(p.scope.to_string())
                .bind(p.usages.join(" "))
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        for (i, u) in data.usages.iter().enumerate() {
            sqlx::query("INSERT INTO voice_usages (name, position) VALUES ($1, $2)")
                .bind(u)
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        for (i, r) in data.routes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_routes (name, position, pattern, usages, trunks) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&r.name)
            .bind(i as i64)
            .bind(&r.pattern)
            .bind(r.usages.join(" "))
            .bind(r.trunks.join(" "))
            .execute(&mut *tx)
            .await?;
        }
        for (i, t) in data.trunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_trunks (name, gateway, transport, position, from_topology) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.name)
            .bind(t.gateway.to_string())
            .bind(t.transport.as_str())
            .bind(i as i64)
            .bind(i64::from(t.from_topology))
            .execute(&mut *tx)
            .await?;
            let owner = format!("trunk:{}", t.name);
            for (j, r) in t.rules.iter().enumerate() {
                insert_rule(&mut tx, &owner, j, r).await?;
            }
        }
        for (i, a) in data.announcements.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_announcements (name, audio_file, tones, target, position) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&a.name)
            .bind(a.audio_file.clone())
            .bind(a.tones.clone())
            .bind(a.target.clone())
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        for (i, r) in data.unassigned.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_unassigned \
                 (name, range_start, range_end, announcement, priority, position) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.name)
            .bind(&r.start)
            .bind(&r.end)
            .bind(&r.announcement)
            .bind(r.priority)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        for (i, o) in data.park_orbits.iter().enumerate() {
            sqlx::query(
                "INSERT INTO voice_park_orbits (name, range_start, range_end, timeout_secs, \
                 fallback, music_file, music_tones, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&o.name)
            .bind(&o.start)
            .bind(&o.end)
            .bind(i64::from(o.timeout_secs))
            .bind(o.fallback.clone())
            .bind(o.music_file.clone())
            .bind(o.music_tones.clone())
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rev)
    }

    /// Sets a user's voice settings (the user must exist), if the configuration is
    /// still at revision `expected`. The caller checked the result. A number that
    /// is someone else's line URI is refused.
    pub async fn set_user_voice(&self, expected: i64, v: &UserVoice) -> Result<i64> {
        let address = Address::parse(&v.address)?.to_string();
        let mut tx = self.pool.begin().await?;
        let rev = bump_voice_rev(&mut tx).await?;
        if rev != expected + 1 {
            return Err(StoreError::Voice(
                "the voice configuration changed meanwhile; nothing was changed, try again".into(),
            ));
        }
        let exists: Option<String> =
            sqlx::query_scalar("SELECT address FROM users WHERE address = $1")
                .bind(&address)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::UserNotFound(address));
        }
        if let Some(n) = &v.line_uri {
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT address FROM voice_users WHERE line_uri = $1 AND address <> $2",
            )
            .bind(n)
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(owner) = owner {
                return Err(StoreError::Voice(format!(
                    "number {n} is already the line URI of {owner}"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO voice_users (address, line_uri, dial_plan, voice_policy) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO UPDATE SET \
             line_uri = excluded.line_uri, dial_plan = excluded.dial_plan, \
             voice_policy = excluded.voice_policy",
        )
        .bind(&address)
        .bind(v.line_uri.clone())
        .bind(v.dial_plan.clone())
        .bind(v.voice_policy.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewUser;
    use confab_auth::credentials::derive;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_sqlite(&dir.path().join("v.db")).await.unwrap();
        (dir, s)
    }

    fn sample() -> VoiceData {
        VoiceData {
            dial_plans: vec![DialPlan {
                scope: Scope::Global,
                description: Some("US".into()),
                rules: vec![Rule {
                    name: "local7".into(),
                    pattern: r"(\d{7})".into(),
                    translation: "+1425$1".into(),
                }],
            }],
            policies: vec![VoicePolicy {
                scope: Scope::Global,
                usages: vec!["local".into(), "intl".into()],
            }],
            usages: vec!["local".into(), "intl".into()],
            routes: vec![Route {
                name: "us".into(),
                pattern: r"\+1\d+".into(),
                usages: vec!["local".into()],
                trunks: vec!["gw1".into()],
            }],
            trunks: vec![Trunk {
                from_topology: true,
                name: "gw1".into(),
                gateway: "127.0.0.1:5080".parse().unwrap(),
                transport: TrunkTransport::Udp,
                rules: vec![Rule {
                    name: "strip".into(),
                    pattern: r"\+(\d+)".into(),
                    translation: "$1".into(),
                }],
            }],
            users: vec![],
            announcements: vec![Announcement {
                name: "gone".into(),
                audio_file: None,
                tones: Some("440:1000".into()),
                target: Some("sip:bob@example.com".into()),
            }],
            unassigned: vec![UnassignedRange {
                name: "old".into(),
                start: "+14255550100".into(),
                end: "+14255550199".into(),
                announcement: "gone".into(),
                priority: 3,
            }],
            park_orbits: vec![ParkOrbit {
                name: "main".into(),
                start: "7000".into(),
                end: "7099".into(),
                timeout_secs: 90,
                fallback: Some("sip:operator@example.com".into()),
                music_file: None,
                music_tones: Some("440:500".into()),
            }],
        }
    }

    #[tokio::test]
    async fn voice_config_round_trips_and_bumps_the_revision() {
        let (_d, s) = store().await;
        let (rev, empty) = s.voice_data().await.unwrap();
        assert_eq!(empty, VoiceData::default());
        let data = sample();
        let new_rev = s.save_voice_config(rev, &data).await.unwrap();
        assert_eq!(new_rev, rev + 1);
        let (rev2, back) = s.voice_data().await.unwrap();
        assert_eq!(rev2, new_rev);
        assert_eq!(back, data);
        // A save based on the old revision is refused and changes nothing.
        let e = s.save_voice_config(rev, &VoiceData::default()).await;
        assert!(matches!(e, Err(StoreError::Voice(_))));
        assert_eq!(s.voice_data().await.unwrap().1, data);
    }

    #[tokio::test]
    async fn line_uris_are_unique_and_go_with_the_user() {
        let (_d, s) = store().await;
        for a in ["alice@example.com", "bob@example.com"] {
            s.add_user(NewUser {
                address: a.into(),
                display_name: None,
                creds: derive(a.split('@').next().unwrap(), "example.com", "pw"),
            })
            .await
            .unwrap();
        }
        let alice = UserVoice {
            address: "alice@example.com".into(),
            line_uri: Some("+14255550100".into()),
            dial_plan: None,
            voice_policy: None,
        };
        let rev = s.voice_rev().await.unwrap();
        let rev = s.set_user_voice(rev, &alice).await.unwrap();
        let bob = UserVoice {
            address: "bob@example.com".into(),
            ..alice.clone()
        };
        let e = s.set_user_voice(rev, &bob).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "number +14255550100 is already the line URI of alice@example.com"
        );
        let nobody = UserVoice {
            address: "carol@example.com".into(),
            line_uri: None,
            ..alice.clone()
        };
        assert!(matches!(
            s.set_user_voice(rev, &nobody).await,
            Err(StoreError::UserNotFound(_))
        ));
        assert_eq!(s.voice_data().await.unwrap().1.users, vec![alice]);
        s.remove_user("alice@example.com").await.unwrap();
        let (rev2, data) = s.voice_data().await.unwrap();
        assert!(data.users.is_empty());
        assert!(rev2 > rev, "removing a user with a number bumps voice_rev");
    }
}
