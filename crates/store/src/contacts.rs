//! Server-side contact lists (Lync "roaming contacts"): per owner, groups and contacts
//! and the `deltaNum` version the clients see.
//!
//! A list is written as a whole in one transaction that takes a revision from the global
//! counter, like user writes, so [`Store::contact_changes_since`] reports every change
//! in commit order. Lists are deleted with their owner (in [`Store::remove_user`]'s
//! transaction), leaving a tombstone for the feed.

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use crate::users::insert_sql;
use crate::{Address, Backend, Result, Store, StoreError, next_rev};

/// Name of the group Lync clients show as "Other Contacts": where contacts added
/// without a group go.
pub const OTHER_CONTACTS_GROUP: &str = "~";

/// Rows per multi-row INSERT: 5 bind parameters a row stays far below the limits of
/// SQLite (32766) and PostgreSQL (65535).
const INSERT_BATCH: usize = 1000;

/// A group of a contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactGroup {
    pub id: u32,
    pub name: String,
}

/// A contact of a contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Normalized address: lower-case `bob@example.com`, without `sip:`.
    pub uri: String,
    /// The owner's alias for the contact; empty when none.
    pub name: String,
    /// Ids of the groups the contact is in (stored sorted, without duplicates).
    pub groups: Vec<u32>,
    /// Whether the owner subscribes to the contact's presence.
    pub subscribed: bool,
}

/// One user's contact list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactList {
    /// Normalized address of the owner: `alice@example.com`.
    pub owner: String,
    /// Version of the list the clients see (`deltaNum`), bumped by every change.
    pub delta_num: u64,
    /// Sorted by id.
    pub groups: Vec<ContactGroup>,
    /// Sorted by uri.
    pub contacts: Vec<Contact>,
}

impl ContactList {
    /// An empty list (delta_num 0) of `owner`.
    pub fn empty(owner: impl Into<String>) -> ContactList {
        ContactList {
            owner: owner.into(),
            ..ContactList::default()
        }
    }

    /// The group with this name, if any.
    pub fn group_by_name(&self, name: &str) -> Option<&ContactGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// The contact with this (normalized) uri, if any.
    pub fn contact(&self, uri: &str) -> Option<&Contact> {
        self.contacts
            .binary_search_by(|c| c.uri.as_str().cmp(uri))
            .ok()
            .map(|i| &self.contacts[i])
    }

    /// An id not used by any group: one more than the largest.
    fn next_group_id(&self) -> Option<u32> {
        match self.groups.iter().map(|g| g.id).max() {
            None => Some(1),
            Some(max) => max.checked_add(1),
        }
    }

    /// Puts groups and contacts in their canonical order.
    fn sort(&mut self) {
        self.groups.sort_by_key(|g| g.id);
        self.contacts.sort_by(|a, b| a.uri.cmp(&b.uri));
    }
}

fn invalid(owner: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidContactList {
        owner: owner.to_owned(),
        reason: reason.into(),
    }
}

/// Bad data read back from the database.
fn decode_error(what: String) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}

/// Normalized address (lower case, no `sip:`); refuses anything but `user@domain`.
fn normalize(address: &str) -> Result<String> {
    Ok(Address::parse(address)?.to_string())
}

/// `"1 3"` for `[1, 3]`.
fn format_group_ids(ids: &[u32]) -> String {
    let mut out = String::with_capacity(ids.len() * 3);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&id.to_string());
    }
    out
}

fn parse_group_ids(owner: &str, text: &str) -> std::result::Result<Vec<u32>, sqlx::Error> {
    text.split_ascii_whitespace()
        .map(|t| {
            t.parse::<u32>()
                .map_err(|_| decode_error(format!("bad group id {t:?} in a contact of {owner}")))
        })
        .collect()
}

fn group_from_row(row: &AnyRow, owner: &str) -> std::result::Result<ContactGroup, sqlx::Error> {
    let id: i64 = row.try_get("id")?;
    Ok(ContactGroup {
        id: u32::try_from(id)
            .map_err(|_| decode_error(format!("bad group id {id} in the list of {owner}")))?,
        name: row.try_get("name")?,
    })
}

fn contact_from_row(row: &AnyRow, owner: &str) -> std::result::Result<Contact, sqlx::Error> {
    let groups: &str = row.try_get("groups")?;
    let subscribed: i64 = row.try_get("subscribed")?;
    Ok(Contact {
        uri: row.try_get("uri")?,
        name: row.try_get("name")?,
        groups: parse_group_ids(owner, groups)?,
        subscribed: subscribed != 0,
    })
}

fn delta_from_db(owner: &str, delta: i64) -> std::result::Result<u64, sqlx::Error> {
    u64::try_from(delta)
        .map_err(|_| decode_error(format!("negative delta_num {delta} in the list of {owner}")))
}

/// The list with owner, uris and group ids normalized and checked: unique group ids,
/// unique contacts, every group a contact names exists, delta_num fits the database.
fn normalized(list: &ContactList) -> Result<ContactList> {
    let owner = normalize(&list.owner)?;
    if i64::try_from(list.delta_num).is_err() {
        return Err(invalid(&owner, "delta_num is too large"));
    }
    let mut ids = HashSet::with_capacity(list.groups.len());
    for g in &list.groups {
        if !ids.insert(g.id) {
            return Err(invalid(&owner, format!("group id {} is used twice", g.id)));
        }
    }
    let mut uris = HashSet::with_capacity(list.contacts.len());
    let mut contacts = Vec::with_capacity(list.contacts.len());
    for c in &list.contacts {
        let uri = normalize(&c.uri)?;
        if !uris.insert(uri.clone()) {
            return Err(invalid(&owner, format!("contact {uri} is listed twice")));
        }
        let mut groups = c.groups.clone();
        groups.sort_unstable();
        groups.dedup();
        if let Some(missing) = groups.iter().find(|id| !ids.contains(id)) {
            return Err(invalid(
                &owner,
                format!("contact {uri} is in group {missing}, which does not exist"),
            ));
        }
        contacts.push(Contact {
            uri,
            name: c.name.clone(),
            groups,
            subscribed: c.subscribed,
        });
    }
    let mut out = ContactList {
        owner,
        delta_num: list.delta_num,
        groups: list.groups.clone(),
        contacts,
    };
    out.sort();
    Ok(out)
}

/// Fails with [`StoreError::UserNotFound`] unless `owner` is a user. Inside a write
/// transaction (after [`next_rev`]) this cannot race with the user's removal.
async fn ensure_user(conn: &mut AnyConnection, owner: &str) -> Result<()> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE address = $1")
        .bind(owner)
        .fetch_one(&mut *conn)
        .await?;
    if n == 0 {
        return Err(StoreError::UserNotFound(owner.to_owned()));
    }
    Ok(())
}

/// The stored list of `owner` (normalized), or an empty one.
async fn load_list(conn: &mut AnyConnection, owner: &str) -> Result<ContactList> {
    let delta: Option<i64> =
        sqlx::query_scalar("SELECT delta_num FROM contact_lists WHERE owner = $1")
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?;
    let mut list = ContactList::empty(owner);
    let Some(delta) = delta else {
        return Ok(list);
    };
    list.delta_num = delta_from_db(owner, delta)?;
    let rows = sqlx::query("SELECT id, name FROM contact_groups WHERE owner = $1")
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        list.groups.push(group_from_row(row, owner)?);
    }
    let rows = sqlx::query("SELECT uri, name, groups, subscribed FROM contacts WHERE owner = $1")
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        list.contacts.push(contact_from_row(row, owner)?);
    }
    list.sort();
    Ok(list)
}

/// Replaces the stored list of `list.owner` by `list` (already normalized), at `rev`.
async fn write_list(
    conn: &mut AnyConnection,
    backend: Backend,
    list: &ContactList,
    rev: i64,
) -> Result<()> {
    let owner = list.owner.as_str();
    let delta =
        i64::try_from(list.delta_num).map_err(|_| invalid(owner, "delta_num is too large"))?;
    for table in ["contact_groups", "contacts"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE owner = $1"
        )))
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    }

    for batch in list.groups.chunks(INSERT_BATCH) {
        let sql = insert_sql(
            backend,
            "INSERT INTO contact_groups (owner, id, name) VALUES ",
            3,
            batch.len(),
            "",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for g in batch {
            query = query
                .bind(owner.to_owned())
                .bind(i64::from(g.id))
                .bind(g.name.clone());
        }
        query.execute(&mut *conn).await?;
    }

    for batch in list.contacts.chunks(INSERT_BATCH) {
        let sql = insert_sql(
            backend,
            "INSERT INTO contacts (owner, uri, name, groups, subscribed) VALUES ",
            5,
            batch.len(),
            "",
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for c in batch {
            query = query
                .bind(owner.to_owned())
                .bind(c.uri.clone())
                .bind(c.name.clone())
                .bind(format_group_ids(&c.groups))
                .bind(i64::from(c.subscribed));
        }
        query.execute(&mut *conn).await?;
    }

    sqlx::query(
        "INSERT INTO contact_lists (owner, delta_num, rev) VALUES ($1, $2, $3) \
         ON CONFLICT (owner) DO UPDATE SET delta_num = excluded.delta_num, rev = excluded.rev",
    )
    .bind(owner)
    .bind(delta)
    .bind(rev)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM contact_list_tombstones WHERE owner = $1")
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the contact list of `owner` (normalized) inside a write transaction at `rev`,
/// leaving a tombstone for the change feed if there was a list.
pub(crate) async fn delete_list(conn: &mut AnyConnection, owner: &str, rev: i64) -> Result<()> {
    for table in ["contact_groups", "contacts"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE owner = $1"
        )))
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    }
    let deleted = sqlx::query("DELETE FROM contact_lists WHERE owner = $1")
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    if deleted.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO contact_list_tombstones (owner, rev) VALUES ($1, $2) \
             ON CONFLICT (owner) DO UPDATE SET rev = excluded.rev",
        )
        .bind(owner)
        .bind(rev)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A read-only transaction whose statements all see one snapshot (SQLite: a deferred
    /// transaction in WAL mode; PostgreSQL: REPEATABLE READ).
    async fn read_snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin().await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    /// The stored list of `owner` (`alice@example.com` or `sip:alice@example.com`, any
    /// case). An owner with none gets an empty list with delta_num 0 (not an error).
    pub async fn contact_list(&self, owner: &str) -> Result<ContactList> {
        let owner = normalize(owner)?;
        let mut tx = self.read_snapshot().await?;
        let list = load_list(&mut tx, &owner).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Every stored list, ordered by owner, read in one snapshot with one query per
    /// table; rows are grouped as they stream in (no per-owner queries).
    ///
    /// To follow changes afterwards, read [`Store::current_rev`] *before* this and pass
    /// it to [`Store::contact_changes_since`].
    pub async fn all_contact_lists(&self) -> Result<Vec<ContactList>> {
        let mut tx = self.read_snapshot().await?;
        let mut lists: HashMap<String, ContactList> = HashMap::new();

        // `try_map` runs the closure on each row as it arrives, so only the lists are
        // kept in memory, never every row at once.
        sqlx::query("SELECT owner, delta_num FROM contact_lists")
            .try_map(|row: AnyRow| {
                let owner: String = row.try_get("owner")?;
                let delta = delta_from_db(&owner, row.try_get("delta_num")?)?;
                let mut list = ContactList::empty(owner.clone());
                list.delta_num = delta;
                lists.insert(owner, list);
                Ok(())
            })
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("SELECT owner, id, name FROM contact_groups")
            .try_map(|row: AnyRow| {
                let owner: &str = row.try_get("owner")?;
                // Groups without a list row cannot be written; skip them if present.
                if let Some(list) = lists.get_mut(owner) {
                    let group = group_from_row(&row, owner)?;
                    list.groups.push(group);
                }
                Ok(())
            })
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("SELECT owner, uri, name, groups, subscribed FROM contacts")
            .try_map(|row: AnyRow| {
                let owner: &str = row.try_get("owner")?;
                if let Some(list) = lists.get_mut(owner) {
                    let contact = contact_from_row(&row, owner)?;
                    list.contacts.push(contact);
                }
                Ok(())
            })
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;

        let mut out: Vec<ContactList> = lists.into_values().collect();
        for list in &mut out {
            list.sort();
        }
        out.sort_by(|a, b| a.owner.cmp(&b.owner));
        Ok(out)
    }

    /// Replaces the owner's whole list (groups, contacts and delta_num, stored as given)
    /// in one transaction that takes a revision, so it appears in the change feed.
    ///
    /// The owner and the contact uris are normalized (lower case, no `sip:`) and group
    /// ids of a contact sorted and deduplicated; [`StoreError::InvalidAddress`] for a
    /// malformed address, [`StoreError::InvalidContactList`] for a group id used twice,
    /// a contact listed twice or one in a group that does not exist, and
    /// [`StoreError::UserNotFound`] when the owner is not a user.
    pub async fn save_contact_list(&self, list: &ContactList) -> Result<()> {
        let list = normalized(list)?;
        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        ensure_user(&mut tx, &list.owner).await?;
        write_list(&mut tx, self.backend, &list, rev).await?;
        tx.commit().await?;
        tracing::debug!(owner = %list.owner, delta_num = list.delta_num, rev, "contact list saved");
        Ok(())
    }

    /// Replaces the owner's list like [`Store::save_contact_list`], but only if the
    /// stored list is still at version `based_on` (its `delta_num`; 0 when there
    /// is none): a compare-and-swap, so that an edit made from a stale copy (the
    /// running server's, while `confab contact` changed the list) cannot silently
    /// undo the other. Fails with [`StoreError::ContactListChanged`] otherwise,
    /// writing nothing.
    pub async fn save_contact_list_from(&self, list: &ContactList, based_on: u64) -> Result<()> {
        let list = normalized(list)?;
        let mut tx = self.pool.begin().await?;
        // Taking the revision first serializes writers (SQLite: the write lock;
        // PostgreSQL: the counter row), so the version read below cannot change
        // before the commit.
        let rev = next_rev(&mut tx).await?;
        ensure_user(&mut tx, &list.owner).await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT delta_num FROM contact_lists WHERE owner = $1")
                .bind(&list.owner)
                .fetch_optional(&mut *tx)
                .await?;
        let found = match found {
            Some(d) => delta_from_db(&list.owner, d)?,
            None => 0,
        };
        if found != based_on {
            // Rolled back on drop: nothing written, the revision not used up.
            return Err(StoreError::ContactListChanged {
                owner: list.owner.clone(),
                expected: based_on,
                found,
            });
        }
        write_list(&mut tx, self.backend, &list, rev).await?;
        tx.commit().await?;
        tracing::debug!(owner = %list.owner, delta_num = list.delta_num, rev, "contact list saved");
        Ok(())
    }

    /// Owners whose list changed (or was deleted with its owner) after revision `rev`,
    /// each once, oldest change first, and the revision to pass next time. Same
    /// contract as [`Store::user_changes_since`]: read the current lists with
    /// [`Store::contact_list`] for the owners named.
    pub async fn contact_changes_since(&self, rev: i64) -> Result<(i64, Vec<String>)> {
        // One statement, so one snapshot on both backends.
        let rows = sqlx::query(
            "SELECT owner, rev FROM contact_lists WHERE rev > $1 \
             UNION ALL \
             SELECT owner, rev FROM contact_list_tombstones WHERE rev > $1 \
             ORDER BY rev",
        )
        .bind(rev)
        .fetch_all(&self.pool)
        .await?;
        let mut last = rev;
        let mut seen = HashSet::with_capacity(rows.len());
        let mut owners = Vec::with_capacity(rows.len());
        for row in &rows {
            let owner: String = row.try_get("owner")?;
            let row_rev: i64 = row.try_get("rev")?;
            last = last.max(row_rev);
            if seen.insert(owner.clone()) {
                owners.push(owner);
            }
        }
        Ok((last, owners))
    }

    /// Adds `uri` to the owner's list, or updates it if it is there already; one
    /// transaction that bumps delta_num and takes a revision. Returns the new list.
    ///
    /// - `name`: the alias (trimmed; empty clears it). `None` keeps an existing contact's
    ///   alias (a new contact gets none).
    /// - `group`: a group name, created if missing. The contact joins that group and
    ///   leaves [`OTHER_CONTACTS_GROUP`]; its other groups are kept. `None` puts a new
    ///   contact in [`OTHER_CONTACTS_GROUP`] (created if missing, as id 1 if that is
    ///   free) and leaves an existing contact's groups alone.
    ///
    /// New contacts are `subscribed`. Fails with [`StoreError::UserNotFound`] when the
    /// owner is not a user, [`StoreError::InvalidAddress`] for a malformed address and
    /// [`StoreError::InvalidContactList`] for a blank group name.
    pub async fn add_contact(
        &self,
        owner: &str,
        uri: &str,
        name: Option<&str>,
        group: Option<&str>,
    ) -> Result<ContactList> {
        let owner = normalize(owner)?;
        let uri = normalize(uri)?;
        let group = group.map(str::trim);
        if group == Some("") {
            return Err(invalid(&owner, "the group name is empty"));
        }
        let name = name.map(str::trim);

        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        ensure_user(&mut tx, &owner).await?;
        let mut list = load_list(&mut tx, &owner).await?;

        let group_id = match group {
            Some(g) => Some(group_id_or_create(&mut list, g)?),
            None if list.contact(&uri).is_none() => {
                Some(group_id_or_create(&mut list, OTHER_CONTACTS_GROUP)?)
            }
            None => None,
        };
        let other = list.group_by_name(OTHER_CONTACTS_GROUP).map(|g| g.id);
        match list.contacts.binary_search_by(|c| c.uri.cmp(&uri)) {
            Ok(i) => {
                let contact = &mut list.contacts[i];
                if let Some(name) = name {
                    name.clone_into(&mut contact.name);
                }
                if let Some(id) = group_id {
                    if Some(id) != other {
                        contact.groups.retain(|g| Some(*g) != other);
                    }
                    if let Err(pos) = contact.groups.binary_search(&id) {
                        contact.groups.insert(pos, id);
                    }
                }
            }
            Err(i) => list.contacts.insert(
                i,
                Contact {
                    uri: uri.clone(),
                    name: name.unwrap_or_default().to_owned(),
                    groups: group_id.into_iter().collect(),
                    subscribed: true,
                },
            ),
        }
        list.delta_num = list
            .delta_num
            .checked_add(1)
            .ok_or_else(|| invalid(&owner, "delta_num is too large"))?;

        write_list(&mut tx, self.backend, &list, rev).await?;
        tx.commit().await?;
        tracing::debug!(owner = %owner, contact = %uri, delta_num = list.delta_num, rev, "contact added");
        Ok(list)
    }

    /// Removes `uri` from the owner's list; returns whether it was there. A removal bumps
    /// delta_num and takes a revision; removing a contact that is not there changes
    /// nothing. Fails with [`StoreError::UserNotFound`] when the owner is not a user.
    pub async fn remove_contact(&self, owner: &str, uri: &str) -> Result<bool> {
        let owner = normalize(owner)?;
        let uri = normalize(uri)?;
        let mut tx = self.pool.begin().await?;
        let rev = next_rev(&mut tx).await?;
        ensure_user(&mut tx, &owner).await?;
        let deleted = sqlx::query("DELETE FROM contacts WHERE owner = $1 AND uri = $2")
            .bind(&owner)
            .bind(&uri)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            // Rolled back on drop: the revision is not used up.
            return Ok(false);
        }
        sqlx::query(
            "UPDATE contact_lists SET delta_num = delta_num + 1, rev = $1 WHERE owner = $2",
        )
        .bind(rev)
        .bind(&owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::debug!(owner = %owner, contact = %uri, rev, "contact removed");
        Ok(true)
    }
}

/// The id of the group named `name`, created (with the next free id; id 1 for
/// [`OTHER_CONTACTS_GROUP`] if free) if there is none.
fn group_id_or_create(list: &mut ContactList, name: &str) -> Result<u32> {
    if let Some(g) = list.group_by_name(name) {
        return Ok(g.id);
    }
    let one_free = !list.groups.iter().any(|g| g.id == 1);
    let id = if name == OTHER_CONTACTS_GROUP && one_free {
        1
    } else {
        list.next_group_id()
            .ok_or_else(|| invalid(&list.owner, "no group id left"))?
    };
    let pos = list.groups.partition_point(|g| g.id < id);
    list.groups.insert(
        pos,
        ContactGroup {
            id,
            name: name.to_owned(),
        },
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_id_text_round_trip() {
        assert_eq!(format_group_ids(&[]), "");
        assert_eq!(format_group_ids(&[1, 3, 40]), "1 3 40");
        assert_eq!(parse_group_ids("o", "1 3  40").unwrap(), [1, 3, 40]);
        assert_eq!(parse_group_ids("o", "").unwrap(), Vec::<u32>::new());
        assert!(parse_group_ids("o", "1 x").is_err());
        assert!(parse_group_ids("o", "-1").is_err());
    }

    #[test]
    fn normalizing_a_list() {
        let list = ContactList {
            owner: "SIP:Alice@Example.com".into(),
            delta_num: 4,
            groups: vec![
                ContactGroup {
                    id: 2,
                    name: "Team".into(),
                },
                ContactGroup {
                    id: 1,
                    name: "~".into(),
                },
            ],
            contacts: vec![
                Contact {
                    uri: "sip:Zed@example.com".into(),
                    name: String::new(),
                    groups: vec![2, 1, 2],
                    subscribed: true,
                },
                Contact {
                    uri: "bob@example.com".into(),
                    name: "Bob".into(),
                    groups: vec![1],
                    subscribed: false,
                },
            ],
        };
        let n = normalized(&list).unwrap();
        assert_eq!(n.owner, "alice@example.com");
        assert_eq!(n.groups.iter().map(|g| g.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(n.contacts[0].uri, "bob@example.com");
        assert_eq!(n.contacts[1].uri, "zed@example.com");
        assert_eq!(n.contacts[1].groups, [1, 2]);

        let mut dup = list.clone();
        dup.contacts[1].uri = "zed@EXAMPLE.com".into();
        assert!(matches!(
            normalized(&dup),
            Err(StoreError::InvalidContactList { .. })
        ));
        let mut missing = list.clone();
        missing.contacts[0].groups = vec![7];
        assert!(matches!(
            normalized(&missing),
            Err(StoreError::InvalidContactList { .. })
        ));
        let mut ids = list.clone();
        ids.groups[1].id = 2;
        assert!(matches!(
            normalized(&ids),
            Err(StoreError::InvalidContactList { .. })
        ));
        let mut big = list;
        big.delta_num = u64::MAX;
        assert!(matches!(
            normalized(&big),
            Err(StoreError::InvalidContactList { .. })
        ));
    }

    #[test]
    fn other_contacts_group_takes_id_one_if_free() {
        let mut list = ContactList::empty("a@example.com");
        assert_eq!(group_id_or_create(&mut list, "Team").unwrap(), 1);
        assert_eq!(group_id_or_create(&mut list, "~").unwrap(), 2);
        assert_eq!(group_id_or_create(&mut list, "Team").unwrap(), 1);

        let mut list = ContactList::empty("a@example.com");
        assert_eq!(group_id_or_create(&mut list, "~").unwrap(), 1);
        assert_eq!(group_id_or_create(&mut list, "Team").unwrap(), 2);
    }
}
