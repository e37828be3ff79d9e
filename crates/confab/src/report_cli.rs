//! `confab report calls|ims [--user U] [--since DATE] [--csv]`: the call detail
//! records (calls through the Mediation server, calls between users) and the IM
//! sessions the monitoring writers recorded (Lync's Monitoring reports), as a table
//! or CSV, from the monitoring store (the topology's `monitoring_store`, else the
//! server's database; `--database` names one).

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use confab_store::{CallDetail, ImSession, Store};

use crate::config::ServeConfig;

#[derive(Args)]
pub struct ReportArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Calls: between users (internal), and through the Mediation role (outbound
    /// to and inbound from the PSTN)
    Calls {
        /// Only calls this user made or received (alice@example.com)
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only calls started at or after this UTC date (YYYY-MM-DD or
        /// YYYY-MM-DDTHH:MM:SS)
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// CSV instead of a table
        #[arg(long)]
        csv: bool,
        /// At most this many calls
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
    },
    /// IM sessions between users (pager-mode MESSAGEs and INVITE-based sessions)
    Ims {
        /// Only sessions this user took part in (alice@example.com)
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only sessions started at or after this UTC date (YYYY-MM-DD or
        /// YYYY-MM-DDTHH:MM:SS)
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// CSV instead of a table
        #[arg(long)]
        csv: bool,
        /// At most this many sessions
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
    },
}

/// `--user` checked and normalized; `--since` as epoch ms.
fn filters(user: Option<String>, since: Option<&str>) -> anyhow::Result<(Option<String>, i64)> {
    let since = match since {
        Some(s) => parse_date(s)?,
        None => 0,
    };
    if let Some(u) = &user
        && (!u.contains('@') || u.contains(char::is_whitespace))
    {
        bail!("bad user {u:?}: want an address such as alice@example.com");
    }
    Ok((
        user.map(|u| u.trim_start_matches("sip:").to_lowercase()),
        since,
    ))
}

/// The monitoring store: `--database` when given, else the topology's
/// `monitoring_store` when this machine's topology names one, else the server's
/// database.
async fn monitoring_store(cfg: &ServeConfig, explicit: bool) -> anyhow::Result<Store> {
    if !explicit && let Ok(t) = crate::roles::apply_topology(cfg.clone()) {
        if let Some(url) = &t.monitoring.database {
            return Store::open(url).await.with_context(|| {
                format!(
                    "opening the monitoring database {}",
                    confab_store::redact_url(url)
                )
            });
        }
        return crate::database::open_store(&t).await;
    }
    crate::database::open_store(cfg).await
}

fn im_state(s: &ImSession) -> String {
    if s.active {
        "active".to_owned()
    } else if (200..300).contains(&s.code) {
        "ended".to_owned()
    } else {
        format!("failed {}", s.code)
    }
}

fn print_ims(sessions: &[ImSession], csv: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if csv {
        writeln!(out, "started,ended,kind,from,to,messages,code,state")?;
        for s in sessions {
            let fields = [
                format_ts(s.started),
                format_ts(s.ended),
                s.kind.clone(),
                s.from_user.clone(),
                s.to_user.clone(),
                s.messages.to_string(),
                s.code.to_string(),
                im_state(s),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", line.join(","))?;
        }
    } else {
        writeln!(
            out,
            "{:<20}  {:<7}  {:<24}  {:<24}  {:>8}  {:>8}  STATE",
            "STARTED", "KIND", "FROM", "TO", "MESSAGES", "SECONDS"
        )?;
        for s in sessions {
            writeln!(
                out,
                "{:<20}  {:<7}  {:<24}  {:<24}  {:>8}  {:>8.1}  {}",
                format_ts(s.started),
                s.kind,
                s.from_user,
                s.to_user,
                s.messages,
                (s.ended - s.started) as f64 / 1000.0,
                im_state(s)
            )?;
        }
        writeln!(out, "{} IM session(s)", sessions.len())?;
    }
    Ok(())
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS` (UTC) as epoch milliseconds.
pub fn parse_date(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("bad date {s:?}: want YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)");
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let nums = |t: &str, n: usize| -> anyhow::Result<Vec<i64>> {
        let v: Vec<i64> = t
            .split([':', '-'])
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 4 {
                    Err(bad())
                } else {
                    p.parse::<i64>().map_err(|_| bad())
                }
            })
            .collect::<anyhow::Result<_>>()?;
        if v.len() != n {
            return Err(bad());
        }
        Ok(v)
    };
    let d = nums(date, 3)?;
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    if civil_from_days(days_from_civil(y, m, day)) != (y, m, day) {
        return Err(bad());
    }
    let secs = match time {
        Some(t) => {
            let t = nums(t.trim_end_matches('Z'), 3)?;
            if t[0] > 23 || t[1] > 59 || t[2] > 59 {
                return Err(bad());
            }
            t[0] * 3600 + t[1] * 60 + t[2]
        }
        None => 0,
    };
    Ok((days_from_civil(y, m, day) * 86_400 + secs) * 1000)
}

/// Epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

fn outcome(c: &CallDetail) -> String {
    if c.answered > 0 {
        "answered".to_owned()
    } else {
        format!("failed {}", c.code)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

pub async fn run(cfg: &ServeConfig, args: ReportArgs) -> anyhow::Result<()> {
    let explicit = args.database.is_some();
    match args.command {
        ReportCommand::Ims {
            user,
            since,
            csv,
            limit,
        } => {
            let (user, since) = filters(user, since.as_deref())?;
            let store = monitoring_store(cfg, explicit).await?;
            let sessions = store
                .im_sessions(user.as_deref(), since, limit)
                .await
                .context("reading the IM sessions")?;
            print_ims(&sessions, csv)
        }
        ReportCommand::Calls {
            user,
            since,
            csv,
            limit,
        } => {
            let (user, since) = filters(user, since.as_deref())?;
            let store = monitoring_store(cfg, explicit).await?;
            let calls = store
                .call_details(user.as_deref(), since, limit)
                .await
                .context("reading the call records")?;
            let mut out = std::io::stdout().lock();
            if csv {
                writeln!(
                    out,
                    "started,answered,ended,direction,caller,callee,number,trunk,code,outcome,attempts,relayed_packets"
                )?;
                for c in &calls {
                    let answered = if c.answered > 0 {
                        format_ts(c.answered)
                    } else {
                        String::new()
                    };
                    let fields = [
                        format_ts(c.started),
                        answered,
                        format_ts(c.ended),
                        c.direction.clone(),
                        c.caller.clone(),
                        c.callee.clone(),
                        c.number.clone(),
                        c.trunk.clone(),
                        c.code.to_string(),
                        outcome(c),
                        c.attempts.clone(),
                        c.relayed_packets.to_string(),
                    ];
                    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                    writeln!(out, "{}", line.join(","))?;
                }
            } else {
                writeln!(
                    out,
                    "{:<20}  {:<8}  {:<24}  {:<24}  {:<8}  {:<12}  {:>8}  ATTEMPTS",
                    "STARTED", "DIRECTION", "CALLER", "CALLEE", "TRUNK", "OUTCOME", "SECONDS"
                )?;
                for c in &calls {
                    let secs = if c.answered > 0 {
                        format!("{:.1}", (c.ended - c.answered) as f64 / 1000.0)
                    } else {
                        "-".to_owned()
                    };
                    writeln!(
                        out,
                        "{:<20}  {:<8}  {:<24}  {:<24}  {:<8}  {:<12}  {:>8}  {}",
                        format_ts(c.started),
                        c.direction,
                        c.caller,
                        c.callee,
                        if c.trunk.is_empty() { "-" } else { &c.trunk },
                        outcome(c),
                        secs,
                        c.attempts
                    )?;
                }
                writeln!(out, "{} call(s)", calls.len())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(parse_date("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("2026-12-07").unwrap(), 1_796_601_600_000);
        assert_eq!(format_ts(1_796_601_600_000), "2026-12-07T00:00:00Z");
        assert_eq!(
            parse_date("2026-12-06T23:59:58").unwrap() + 2000,
            parse_date("2026-12-07").unwrap()
        );
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "yesterday",
            "2026-1-1x",
            "",
            "2026-12-07T25:00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
