//! Users: accounts, their stored password hashes, and the change feed.

use std::collections::HashSet;
use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Address, Backend, Result, Store, StoreError, StoredCredentials, next_rev, now_secs};

/// Rows per multi-row INSERT in [`Store::import_users`]: 11 bind parameters a row stays
/// under the limits of SQLite (32766) and PostgreSQL (65535).
const IMPORT_BATCH: usize = 1000;

/// The columns of `users`, in the order [`user_from_row`] reads them.
macro_rules! user_columns {
    () => {
        "id, address, username, domain, display_name, enabled, ha1_md5, ha1_sha256, nt_hash, \
         created_at, updated_at, rev"
    };
}

/// A user account.
///
/// `Debug` never prints the stored hashes (they are password-equivalent).
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Uuid assigned when the user was added.
    pub id: String,
    /// Normalized address: `alice@example.com`.
    pub address: String,
    /// User part of the address: `alice`.
    pub username: String,
    /// Domain of the address (and realm of the hashes): `example.com`.
    pub domain: String,
    pub display_name: Option<String>,
    /// A disabled user cannot sign in.
    pub enabled: bool,
    /// Epoch seconds.
    pub created_at: i64,
    /// Epoch seconds.
    pub updated_at: i64,
    /// Revision of the last change to this user.
    pub rev: i64,
    creds: StoredCredentials,
}

impl User {
    /// The user's stored password hashes.
    pub fn credentials(&self) -> StoredCredentials {
        self.creds.clone()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("display_name", &self.display_name)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("rev", &self.rev)
            .finish_non_exhaustive()
    }
}

/// A user to add. `address` may be given as `alice@example.com` or
/// `sip:alice@example.com`, in any case; it is stored in lower case.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub address: String,
    pub display_name: Option<String>,
    /// Hashes derived for the address's user part and domain (see
    /// `confab_auth::credentials::derive`).
    pub creds: StoredCredentials,
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserChange {
    /// The user was added or changed; this is its state now.
    Upsert(User),
    /// The user was removed.
    Removed { address: String },
}

fn user_from_row(row: &AnyRow) -> std::result::Result<User, sqlx::Error> {
    let enabled: i64 = row.try_get("enabled")?;
    Ok(User {
        id: row.try_get("id")?,
        address: row.try_get("address")?,
        username: row.try_get("username")?,
        domain: row.try_get("domain")?,
        display_name: row.try_get("display_name")?,
        enabled: enabled != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        rev: row.try_get("rev")?,
        creds: StoredCredentials {
            ha1_md5: row.try_get("ha1_md5")?,
            ha1_sha256: row.try_get("ha1_sha256")?,
            nt_hash: row.try_get("nt_hash")?,
        },
    })
}

/// `None` for a missing or blank display name, else the trimmed name.
fn clean_display_name(name: Option<&str>) -> Option<String> {
    name.map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

impl Store {
    /// Adds a user. Fails with [`StoreError::UserExists`] if the address is taken.
    pub async fn add_user(&self, new: NewUser) -> Result<User> {
        let address = Address::parse(&new.address)?;
        let addr = address.to_string();
        let display_name = clean_display_name(new.display_name.as_deref());
        let now = now_secs();
        let id = uuid::Uuid::new_v4().to_string();

        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        let inserted = sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $9, $10) \
             ON CONFLICT (address) DO NOTHING"
        ))
        .bind(&id)
        .bind(&addr)
        .bind(address.username())
        .bind(address.domain())
        .bind(display_name.clone())
        .bind(&new.creds.ha1_md5)
        .bind(&new.creds.ha1_sha256)
        .bind(&new.creds.nt_hash)
        .bind(now)
        .bind(rev)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::UserExists(addr));
        }
        sqlx::query("DELETE FROM user_tombstones WHERE address = $1")
            .bind(&addr)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(address = %addr, rev, "user added");

        Ok(User {
            id,
            username: address.username().to_owned(),
            domain: address.domain().to_owned(),
            address: addr,
            display_name,
            enabled: true,
            created_at: now,
            updated_at: now,
            rev,
            creds: new.creds,
        })
    }

    /// The user with this address (`alice@example.com` or `sip:alice@example.com`, any
    /// case), if any.
    pub async fn get_user(&self, address: &str) -> Result<Option<User>> {
        let address = Address::parse(address)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE address = $1"
        ))
        .bind(address.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// Every user, ordered by address.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY address"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(user_from_row)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Number of users.
    pub async fn count_users(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Replaces the user's stored hashes (a password change).
    pub async fn set_credentials(&self, address: &str, creds: StoredCredentials) -> Result<User> {
        let sql = concat!(
            "UPDATE users SET ha1_md5 = $1, ha1_sha256 = $2, nt_hash = $3, updated_at = $4, \
             rev = $5 WHERE address = $6 RETURNING ",
            user_columns!()
        );
        let values = vec![
            Value::Text(Some(creds.ha1_md5)),
            Value::Text(Some(creds.ha1_sha256)),
            Value::Text(Some(creds.nt_hash)),
        ];
        self.update_user(address, sql, values).await
    }

    /// Sets or (with `None` or a blank name) clears the display name.
    pub async fn set_display_name(
        &self,
        address: &str,
        display_name: Option<&str>,
    ) -> Result<User> {
        let sql = concat!(
            "UPDATE users SET display_name = $1, updated_at = $2, rev = $3 WHERE address = $4 \
             RETURNING ",
            user_columns!()
        );
        let values = vec![Value::Text(clean_display_name(display_name))];
        self.update_user(address, sql, values).await
    }

    /// Enables or disables the user.
    pub async fn set_enabled(&self, address: &str, enabled: bool) -> Result<User> {
        let sql = concat!(
            "UPDATE users SET enabled = $1, updated_at = $2, rev = $3 WHERE address = $4 \
             RETURNING ",
            user_columns!()
        );
        self.update_user(address, sql, vec![Value::Int(i64::from(enabled))])
            .await
    }

    /// Runs `sql`, an UPDATE of one user binding `values` as `$1..$k`, then the time,
    /// the new revision and the address, and returning the user's columns.
    async fn update_user(
        &self,
        address: &str,
        sql: &'static str,
        values: Vec<Value>,
    ) -> Result<User> {
        let address = Address::parse(address)?.to_string();
        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        let mut query = sqlx::query(sql);
        for value in values {
            query = match value {
                Value::Text(t) => query.bind(t),
                Value::Int(i) => query.bind(i),
            };
        }
        let row = query
            .bind(now_secs())
            .bind(rev)
            .bind(&address)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::UserNotFound(address));
        };
        let user = user_from_row(&row)?;
        tx.commit().await?;
        tracing::debug!(address = %user.address, rev, "user updated");
        Ok(user)
    }

    /// Removes the user and their contact list. Fails with [`StoreError::UserNotFound`]
    /// if there is none.
    pub async fn remove_user(&self, address: &str) -> Result<()> {
        let address = Address::parse(address)?.to_string();
        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        let deleted = sqlx::query("DELETE FROM users WHERE address = $1")
            .bind(&address)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::UserNotFound(address));
        }
        sqlx::query(
            "INSERT INTO user_tombstones (address, rev) VALUES ($1, $2) \
             ON CONFLICT (address) DO UPDATE SET rev = excluded.rev",
        )
        .bind(&address)
        .bind(rev)
        .execute(&mut *tx)
        .await?;
        crate::contacts::delete_list(&mut tx, &address, rev).await?;
        crate::voice::delete_user(&mut tx, &address).await?;
        // An administrative role does not outlive its user.
        sqlx::query("DELETE FROM admin_roles WHERE address = $1")
            .bind(&address)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::debug!(address = %address, rev, "user removed");
        Ok(())
    }

    /// Adds many users in one transaction, with multi-row INSERTs: either all are added
    /// or none. Fails with [`StoreError::UserExists`] if an address is taken (or given
    /// twice) and [`StoreError::InvalidAddress`] on a bad address.
    ///
    /// `progress` is called after each batch with the number of users written so far.
    /// Returns the number of users added. All of them share one revision.
    pub async fn import_users<I>(&self, users: I, mut progress: impl FnMut(usize)) -> Result<usize>
    where
        I: IntoIterator<Item = NewUser>,
    {
        let mut users = users.into_iter();
        let mut seen: HashSet<String> = HashSet::new();
        let now = now_secs();
        let mut done = 0usize;

        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        loop {
            let batch: Vec<NewUser> = users.by_ref().take(IMPORT_BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let mut rows = Vec::with_capacity(batch.len());
            for new in batch {
                let address = Address::parse(&new.address)?;
                let addr = address.to_string();
                if !seen.insert(addr.clone()) {
                    return Err(StoreError::UserExists(addr));
                }
                rows.push((
                    address,
                    addr,
                    clean_display_name(new.display_name.as_deref()),
                    new.creds,
                ));
            }

            let mut params = Params::new(self.backend);
            let mut sql = String::with_capacity(64 + rows.len() * 100);
            sql.push_str(concat!("INSERT INTO users (", user_columns!(), ") VALUES "));
            for i in 0..rows.len() {
                if i > 0 {
                    sql.push(',');
                }
                // id, address, username, domain, display_name, enabled = 1, ha1_md5,
                // ha1_sha256, nt_hash, created_at, updated_at, rev
                sql.push('(');
                params.push_list(&mut sql, 5);
                sql.push_str(", 1, ");
                params.push_list(&mut sql, 6);
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (address) DO NOTHING RETURNING address");

            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (address, addr, display_name, creds) in &rows {
                query = query
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(addr.clone())
                    .bind(address.username().to_owned())
                    .bind(address.domain().to_owned())
                    .bind(display_name.clone())
                    .bind(creds.ha1_md5.clone())
                    .bind(creds.ha1_sha256.clone())
                    .bind(creds.nt_hash.clone())
                    .bind(now)
                    .bind(now)
                    .bind(rev);
            }
            let inserted = query.fetch_all(&mut *tx).await?;
            if inserted.len() != rows.len() {
                let mut got = HashSet::with_capacity(inserted.len());
                for row in &inserted {
                    got.insert(row.try_get::<String, _>(0)?);
                }
                let taken = rows
                    .iter()
                    .map(|r| &r.1)
                    .find(|a| !got.contains(*a))
                    .cloned()
                    .unwrap_or_default();
                return Err(StoreError::UserExists(taken));
            }

            let mut del = String::from("DELETE FROM user_tombstones WHERE address IN (");
            Params::new(self.backend).push_list(&mut del, rows.len());
            del.push(')');
            let mut query = sqlx::query(AssertSqlSafe(del));
            for (_, addr, _, _) in &rows {
                query = query.bind(addr.clone());
            }
            query.execute(&mut *tx).await?;

            done += rows.len();
            progress(done);
        }
        tx.commit().await?;
        tracing::debug!(count = done, rev, "users imported");
        Ok(done)
    }

    /// Changes after revision `rev`, oldest first, and the revision to pass next time.
    ///
    /// A user changed several times appears once, in its current state. Start with 0 (or
    /// with [`Store::current_rev`] after loading [`Store::list_users`]).
    pub async fn user_changes_since(&self, rev: i64) -> Result<(i64, Vec<UserChange>)> {
        // One statement, so one snapshot on both backends.
        let rows = sqlx::query(concat!(
            "SELECT 0 AS removed, ",
            user_columns!(),
            " FROM users WHERE rev > $1 \
             UNION ALL \
             SELECT 1 AS removed, NULL AS id, address, NULL AS username, NULL AS domain, \
             NULL AS display_name, NULL AS enabled, NULL AS ha1_md5, NULL AS ha1_sha256, \
             NULL AS nt_hash, NULL AS created_at, NULL AS updated_at, rev \
             FROM user_tombstones WHERE rev > $1 \
             ORDER BY rev"
        ))
        .bind(rev)
        .fetch_all(&self.pool)
        .await?;

        let mut last = rev;
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            let removed: i64 = row.try_get("removed")?;
            let row_rev: i64 = row.try_get("rev")?;
            last = last.max(row_rev);
            if removed != 0 {
                changes.push(UserChange::Removed {
                    address: row.try_get("address")?,
                });
            } else {
                changes.push(UserChange::Upsert(user_from_row(row)?));
            }
        }
        Ok((last, changes))
    }
}

/// Bind placeholders for generated statements, numbered in order of appearance:
/// `$1, $2, ...` on PostgreSQL, anonymous `?` on SQLite (where looking up thousands of
/// numbered parameters by name is quadratic).
pub(crate) struct Params {
    backend: Backend,
    next: usize,
}

impl Params {
    pub(crate) fn new(backend: Backend) -> Params {
        Params { backend, next: 1 }
    }

    /// Appends `count` comma-separated placeholders.
    pub(crate) fn push_list(&mut self, sql: &mut String, count: usize) {
        for i in 0..count {
            if i > 0 {
                sql.push_str(", ");
            }
            match self.backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&self.next.to_string());
                }
            }
            self.next += 1;
        }
    }
}

/// `head` followed by `rows` groups of `cols` parameters, then `tail`: numbered on
/// PostgreSQL, anonymous on SQLite, where binding a statement's numbered
/// parameters looks each one up by name, in time quadratic in their number (a
/// chunk of 64 IM sessions has 576), see [`Params`].
pub(crate) fn insert_sql(
    backend: Backend,
    head: &str,
    cols: usize,
    rows: usize,
    tail: &str,
) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 5);
    let mut params = Params::new(backend);
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        params.push_list(&mut sql, cols);
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// A value bound by [`Store::update_user`].
enum Value {
    Text(Option<String>),
    Int(i64),
}
