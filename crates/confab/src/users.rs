//! `confab user ...`: user administration on the server's database.
//!
//! The commands open the same database as the server (`--database`, the config file's
//! `database`, or `<data>/confab.db`), so they can run while it is up: SQLite is in WAL
//! mode with a busy timeout, and the server picks the changes up from the change feed.
//! Passwords are turned into the stored hashes here and never printed or logged.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use confab_auth::credentials::derive;
use confab_store::{Address, NewUser, Store, StoreError, StoredCredentials, User};
use indicatif::{ProgressBar, ProgressStyle};
use zeroize::Zeroizing;

use crate::admin::{self, Actor};
use crate::cli::{AuditCommand, PasswordArgs, UserCommand};
use crate::config::ServeConfig;

/// Runs one `confab user` command.
pub async fn run(cfg: &ServeConfig, cmd: UserCommand) -> anyhow::Result<()> {
    let store = crate::database::open_store(cfg).await?;
    let result = execute(&store, cmd).await;
    store.close().await;
    result
}

async fn execute(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let actor = Actor::cli();
    match cmd {
        UserCommand::Add {
            address,
            password,
            display_name,
            pool,
        } => {
            let password = read_password(&password)?;
            // Decided first: a refused pool adds nobody.
            let pool = admin::pool_for_new_user(store, pool.as_deref()).await?;
            let user = admin::add_user(store, &actor, &address, &password, display_name.as_deref())
                .await?;
            admin::set_new_user_pool(store, &user.address, pool.as_deref()).await?;
            match pool {
                Some(p) => writeln!(out, "added {} (pool {p})", user.address)?,
                None => writeln!(out, "added {}", user.address)?,
            }
        }
        UserCommand::Move { address, pool } => {
            let (address, before) = admin::move_user(store, &actor, &address, &pool).await?;
            writeln!(
                out,
                "moved {address} from pool {} to pool {}; their registrations there end at their next refresh, which is sent to the new pool",
                before.as_deref().unwrap_or("(default)"),
                pool.trim().to_ascii_lowercase()
            )?;
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            let pools: std::collections::HashMap<String, String> =
                store.user_pools().await?.into_iter().collect();
            let pool_of = |u: &User| pools.get(&u.address).cloned();
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| {
                        let mut v = user_json(u);
                        v["pool"] = serde_json::json!(pool_of(u));
                        v
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                write_table(&mut out, &users, &pool_of)?;
            }
        }
        UserCommand::Show { address, json } => {
            let address = parse_address(&address)?;
            let Some(user) = store.get_user(&address.to_string()).await? else {
                bail!("user {address} not found");
            };
            let role = admin::role_of(store, &user.address).await?;
            let pool = store.user_pool(&user.address).await?;
            if json {
                let mut v = user_json(&user);
                v["role"] = serde_json::json!(role.map(|r| r.name()));
                v["pool"] = serde_json::json!(pool);
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                write_user(&mut out, &user)?;
                writeln!(out, "role:          {}", role.map_or("-", |r| r.name()))?;
                writeln!(
                    out,
                    "pool:          {}",
                    pool.as_deref().unwrap_or("(default)")
                )?;
            }
        }
        UserCommand::SetPassword { address, password } => {
            let password = read_password(&password)?;
            let user = admin::set_password(store, &actor, &address, &password).await?;
            writeln!(out, "password changed for {}", user.address)?;
        }
        UserCommand::SetDisplayName { address, name } => {
            let user = admin::set_display_name(store, &actor, &address, name.as_deref()).await?;
            match &user.display_name {
                Some(n) => writeln!(out, "display name of {} set to {n:?}", user.address)?,
                None => writeln!(out, "display name of {} cleared", user.address)?,
            }
        }
        UserCommand::Set(args) => {
            let mut changed = false;
            if let Some(role) = args.role.change() {
                let address = admin::set_role(store, &actor, &args.address, role).await?;
                match role {
                    Some(r) => writeln!(out, "role of {address} set to {r}")?,
                    None => writeln!(out, "role of {address} removed")?,
                }
                changed = true;
            }
            if args.voice.any() {
                let msg = crate::voice_cli::user_set(store, &args.address, &args.voice).await?;
                writeln!(out, "{msg}")?;
                changed = true;
            }
            if !changed {
                bail!(
                    "nothing to set: give --role ROLE, --no-role, --line-uri, --dial-plan or --voice-policy"
                );
            }
        }
        UserCommand::Disable { address } => {
            let user = admin::set_enabled(store, &actor, &address, false).await?;
            writeln!(out, "disabled {}", user.address)?;
        }
        UserCommand::Enable { address } => {
            let user = admin::set_enabled(store, &actor, &address, true).await?;
            writeln!(out, "enabled {}", user.address)?;
        }
        UserCommand::Remove { address } => {
            let address = admin::remove_user(store, &actor, &address).await?;
            writeln!(out, "removed {address}")?;
        }
        UserCommand::Import { file } => {
            let count = import(store, &file).await?;
            admin::audit_import(store, &actor, &file.display().to_string(), count).await?;
            let noun = if count == 1 { "user" } else { "users" };
            writeln!(out, "imported {count} {noun} from {}", file.display())?;
        }
    }
    Ok(())
}

/// Runs `confab audit list`.
pub async fn run_audit(cfg: &ServeConfig, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = crate::database::open_store(cfg).await?;
    let result = async {
        let mut out = std::io::stdout().lock();
        match cmd {
            AuditCommand::List { actor, limit, json } => {
                let entries = store.audit_entries(actor.as_deref(), limit).await?;
                if json {
                    let list: Vec<_> = entries.iter().map(audit_json).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                } else if entries.is_empty() {
                    writeln!(out, "no audit records")?;
                } else {
                    for e in &entries {
                        writeln!(
                            out,
                            "{}  {}  from {}  {} {}{}",
                            format_epoch(e.at),
                            e.actor,
                            e.source,
                            e.action,
                            e.target.as_deref().unwrap_or("-"),
                            e.detail
                                .as_deref()
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default()
                        )?;
                    }
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

pub(crate) fn audit_json(e: &confab_store::AuditEntry) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq,
        "at": e.at,
        "time": format_epoch(e.at),
        "actor": e.actor,
        "source": e.source,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
    })
}

fn parse_address(input: &str) -> anyhow::Result<Address> {
    Ok(Address::parse(input)?)
}

/// Digest HA1s for the address's user part in its domain (the realm), and the NT hash.
fn credentials(address: &Address, password: &str) -> StoredCredentials {
    derive(address.username(), address.domain(), password)
}

fn check_display_name(name: &str) -> anyhow::Result<String> {
    check_name("display name", name)
}

pub(crate) use crate::admin::check_name;

/// The password from `--password`, or the first line of standard input.
fn read_password(args: &PasswordArgs) -> anyhow::Result<Zeroizing<String>> {
    let password = match &args.password {
        Some(p) => Zeroizing::new(p.clone()),
        None => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let end = line.trim_end_matches(['\n', '\r']).len();
            line.truncate(end);
            line
        }
    };
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(password)
}

pub(crate) fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn write_table(
    out: &mut impl Write,
    users: &[User],
    pool_of: &dyn Fn(&User) -> Option<String>,
) -> anyhow::Result<()> {
    if users.is_empty() {
        writeln!(out, "no users")?;
        return Ok(());
    }
    let pools: Vec<String> = users
        .iter()
        .map(|u| pool_of(u).unwrap_or_else(|| "-".to_owned()))
        .collect();
    let rows: Vec<[&str; 4]> = users
        .iter()
        .zip(&pools)
        .map(|(u, pool)| {
            [
                u.address.as_str(),
                u.display_name.as_deref().unwrap_or("-"),
                yes_no(u.enabled),
                pool.as_str(),
            ]
        })
        .collect();
    let header = ["ADDRESS", "DISPLAY NAME", "ENABLED", "POOL"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )?;
    }
    Ok(())
}

fn write_user(out: &mut impl Write, u: &User) -> anyhow::Result<()> {
    writeln!(out, "address:       {}", u.address)?;
    writeln!(
        out,
        "display name:  {}",
        u.display_name.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "enabled:       {}", yes_no(u.enabled))?;
    writeln!(out, "username:      {}", u.username)?;
    writeln!(out, "domain:        {}", u.domain)?;
    writeln!(out, "id:            {}", u.id)?;
    writeln!(out, "created:       {}", format_epoch(u.created_at))?;
    writeln!(out, "updated:       {}", format_epoch(u.updated_at))?;
    Ok(())
}

pub(crate) fn user_json(u: &User) -> serde_json::Value {
    serde_json::json!({
        "address": u.address,
        "display_name": u.display_name,
        "enabled": u.enabled,
        "username": u.username,
        "domain": u.domain,
        "id": u.id,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC` for epoch seconds.
pub(crate) fn format_epoch(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// ---- CSV import ----

/// One data row of an import file.
struct Row {
    line: usize,
    address: Address,
    password: Zeroizing<String>,
    display_name: Option<String>,
}

/// A CSV record and the line it starts on.
struct Record {
    line: usize,
    fields: Vec<Zeroizing<String>>,
}

/// Splits RFC 4180 CSV: `,` separated, fields optionally in double quotes (`""` is a
/// quote; quoted fields may hold commas and line breaks), LF or CRLF line ends. Blank
/// lines are skipped. Errors carry the line number.
fn parse_csv(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut chars = text.chars().peekable();
    let mut records = Vec::new();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields: Vec<Zeroizing<String>> = Vec::new();
        let mut field = Zeroizing::new(String::new());
        let mut quoted = false;
        let mut any_quoted = false;
        loop {
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some('"') if field.is_empty() && !quoted => {
                    quoted = true;
                    any_quoted = true;
                    loop {
                        match chars.next() {
                            None => return Err((start, "unterminated quoted field".to_owned())),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    quoted = false;
                }
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                Some(c) => {
                    if quoted {
                        return Err((line, format!("unexpected {c:?} after a closing quote")));
                    }
                    field.push(c);
                }
            }
        }
        let blank = !any_quoted && fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            records.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(records)
}

/// Reads and checks every row of an import file; any bad row fails the whole file.
fn read_import_file(file: &Path) -> anyhow::Result<Vec<Row>> {
    let name = file.display();
    let bytes = Zeroizing::new(std::fs::read(file).with_context(|| format!("cannot read {name}"))?);
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        anyhow::anyhow!("{name}:{line}: not valid UTF-8; nothing was imported")
    })?;
    let records = parse_csv(text)
        .map_err(|(line, msg)| anyhow::anyhow!("{name}:{line}: {msg}; nothing was imported"))?;

    let mut rows = Vec::with_capacity(records.len());
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, rec) in records.into_iter().enumerate() {
        let line = rec.line;
        let bad = |msg: String| anyhow::anyhow!("{name}:{line}: {msg}; nothing was imported");
        let first = rec.fields.first().map(|f| f.trim().to_ascii_lowercase());
        if i == 0 && first.as_deref() == Some("address") {
            let header: Vec<String> = rec
                .fields
                .iter()
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            if header != ["address", "password"]
                && header != ["address", "password", "display_name"]
            {
                return Err(bad(format!(
                    "unexpected header {:?}, expected address,password[,display_name]",
                    header.join(",")
                )));
            }
            continue;
        }
        let mut fields = rec.fields.into_iter();
        let (Some(address), Some(password), display_name, None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad(
                "expected 2 or 3 columns: address,password[,display_name]".to_owned(),
            ));
        };
        let address = Address::parse(&address).map_err(|e| bad(e.to_string()))?;
        if password.is_empty() {
            return Err(bad(format!("empty password for {address}")));
        }
        let display_name = match display_name {
            Some(n) if !n.trim().is_empty() => {
                Some(check_display_name(&n).map_err(|e| bad(e.to_string()))?)
            }
            _ => None,
        };
        if let Some(prev) = first_line.insert(address.to_string(), line) {
            return Err(bad(format!("{address} is already on line {prev}")));
        }
        rows.push(Row {
            line,
            address,
            password,
            display_name,
        });
    }
    Ok(rows)
}

async fn import(store: &Store, file: &Path) -> anyhow::Result<usize> {
    let rows = read_import_file(file)?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(rows.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("importing {bar:40} {pos}/{len} users, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let users = rows.iter().map(|r| NewUser {
        address: r.address.to_string(),
        display_name: r.display_name.clone(),
        creds: credentials(&r.address, &r.password),
    });
    let result = store
        .import_users(users, |done| bar.set_position(done as u64))
        .await;
    bar.finish_and_clear();
    match result {
        Ok(n) => Ok(n),
        Err(StoreError::UserExists(addr)) => {
            let line = rows
                .iter()
                .find(|r| r.address.to_string() == addr)
                .map_or(0, |r| r.line);
            bail!(
                "{}:{line}: user {addr} already exists; nothing was imported",
                file.display()
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context("importing users; nothing was imported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formatting() {
        assert_eq!(format_epoch(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_epoch(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_epoch(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_epoch(-1), "1969-12-31 23:59:59 UTC");
    }

    fn fields(text: &str) -> Vec<(usize, Vec<String>)> {
        parse_csv(text)
            .unwrap()
            .into_iter()
            .map(|r| (r.line, r.fields.iter().map(|f| f.to_string()).collect()))
            .collect()
    }

    #[test]
    fn csv_parsing() {
        assert_eq!(
            fields("a,b\r\n\n\"c,d\",\"e \"\"q\"\"\",f\n\"multi\nline\",x\ny,z"),
            vec![
                (1, vec!["a".into(), "b".into()]),
                (3, vec!["c,d".into(), "e \"q\"".into(), "f".into()]),
                (4, vec!["multi\nline".into(), "x".into()]),
                (6, vec!["y".into(), "z".into()]),
            ]
        );
        assert_eq!(
            fields("\u{feff}a,b"),
            vec![(1, vec!["a".into(), "b".into()])]
        );
        assert_eq!(parse_csv("a,\"b").err().unwrap().0, 1);
        assert_eq!(parse_csv("x\na,\"b\"c\n").err().unwrap().0, 2);
    }
}
