//! Room operations with Lync's rules: the one code path of `confab chat room
//! add|set|disable|enable` (an administrator: no role checks) and of the room
//! pages (`/chat/rooms`, a signed-in user: the rules below).
//!
//! For a user (Lync's room-management rules):
//! - Persistent Chat must be enabled for them (the policy);
//! - only a category's creators create rooms in it, and the creator becomes one
//!   of the room's managers;
//! - only a room's managers change it (description, privacy, type, members,
//!   managers, presenters, disable/enable); moving it to another category needs
//!   the manager to be a creator there; a room keeps at least one manager;
//! - a Secret room is "unknown" to a user without a role in it.
//!
//! For everyone: member, manager and presenter lists name existing users or
//! `@domain`s, and a room's name is unique in the pool (the store's check).

use anyhow::bail;
use confab_chat::Directory;
use confab_chat::rules::names;
use confab_store::{
    ChatCategory, ChatRoom, ChatRoomUpdate, NewChatRoom, Store, normalize_principal,
};

/// Who asks for a room operation.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// `confab chat ...` on the server's database: Lync's administrator.
    Admin,
    /// A signed-in user (normalized address).
    User(&'a str),
}

/// An operation refused by the rules (the API answers 403 / 404 with the text).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
}

/// Normalizes principals (addresses and `@domain`s) and checks every address
/// names an existing user of `users`.
pub async fn principals(users: &Store, list: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some(p) = normalize_principal(entry) else {
            bail!("{entry:?} is neither a SIP address nor @domain");
        };
        if !p.starts_with('@') && users.get_user(&p).await?.is_none() {
            bail!("unknown user {p}");
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Principals to remove: normalized, need not name existing users.
pub fn loose_principals(list: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in list.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some(p) = normalize_principal(entry) else {
            bail!("{entry:?} is neither a SIP address nor @domain");
        };
        out.push(p);
    }
    Ok(out)
}

fn policy_check(dir: &Directory, user: &str) -> Result<(), Refused> {
    if dir.enabled_for(user) {
        Ok(())
    } else {
        Err(Refused::Forbidden(format!(
            "Persistent Chat is not enabled for {user}"
        )))
    }
}

/// The categories `user` may create rooms in.
pub fn creator_categories<'a>(dir: &'a Directory, user: &str) -> Vec<&'a ChatCategory> {
    dir.data
        .categories
        .iter()
        .filter(|c| names(&c.creators, user))
        .collect()
}

/// The rooms `user` manages (disabled ones included: a manager enables them).
pub fn managed_rooms<'a>(dir: &'a Directory, user: &str) -> Vec<&'a ChatRoom> {
    dir.data
        .rooms
        .iter()
        .filter(|r| names(&r.managers, user))
        .collect()
}

/// The category `name`: its URI, `POOL\\NAME`, or a plain name in `pool` (empty:
/// the default pool).
fn category_by_name<'a>(dir: &'a Directory, name: &str, pool: &str) -> Option<&'a ChatCategory> {
    let key = name.trim().to_lowercase();
    let pool = pool.trim().to_ascii_lowercase();
    dir.data.categories.iter().find(|c| {
        c.uri == name.trim()
            || (key.contains('\\') && c.qualified_name().to_lowercase() == key)
            || (c.name.to_lowercase() == key && c.pool == pool)
    })
}

fn creator_check(dir: &Directory, category: &str, pool: &str, user: &str) -> Result<(), Refused> {
    let Some(cat) = category_by_name(dir, category, pool) else {
        return Err(Refused::NotFound(format!("unknown category {category:?}")));
    };
    if names(&cat.creators, user) {
        Ok(())
    } else {
        Err(Refused::Forbidden(format!(
            "{user} is not a creator in the category {:?}: only its creators create rooms in it",
            cat.name
        )))
    }
}

/// The room `name` (name or URI) as `actor` may change it.
pub async fn room_for_change(
    chat: &Store,
    actor: Actor<'_>,
    name: &str,
) -> anyhow::Result<(Directory, ChatRoom)> {
    let dir = Directory::new(chat.chat_directory().await?);
    let unknown = || Refused::NotFound(format!("unknown room {name:?}"));
    let room = dir.room_by_name_or_uri(name).cloned().ok_or_else(unknown)?;
    if let Actor::User(user) = actor {
        policy_check(&dir, user)?;
        if !names(&room.managers, user) {
            if room.privacy == confab_store::Privacy::Secret && !Directory::has_role(&room, user) {
                return Err(unknown().into());
            }
            return Err(Refused::Forbidden(format!(
                "{user} is not a manager of the room {:?}: only its managers change it",
                room.name
            ))
            .into());
        }
    }
    Ok((dir, room))
}

/// Adds a room (`new`'s lists not yet checked); returns its id.
pub async fn add_room(
    users: &Store,
    chat: &Store,
    domain: &str,
    actor: Actor<'_>,
    mut new: NewChatRoom,
) -> anyhow::Result<String> {
    let dir = Directory::new(chat.chat_directory().await?);
    // A room lives in its category's pool (a category named by URI or
    // `POOL\\NAME` gives it; a plain name is looked up in `new.pool`).
    if let Some(cat) = category_by_name(&dir, &new.category, &new.pool) {
        if !new.pool.trim().is_empty() && !cat.pool.eq_ignore_ascii_case(new.pool.trim()) {
            bail!(
                "category {:?} is in pool {:?}, not {:?}: a room lives in its category's pool",
                cat.name,
                if cat.pool.is_empty() {
                    "(default)"
                } else {
                    &cat.pool
                },
                new.pool.trim()
            );
        }
        new.pool = cat.pool.clone();
        new.category = cat.qualified_name();
    }
    if let Actor::User(user) = actor {
        policy_check(&dir, user)?;
        creator_check(&dir, &new.category, &new.pool, user)?;
        if !new
            .managers
            .iter()
            .any(|m| normalize_principal(m).is_some_and(|m| m == user))
        {
            new.managers.push(user.to_owned());
        }
    }
    new.members = principals(users, &new.members).await?;
    new.managers = principals(users, &new.managers).await?;
    new.presenters = principals(users, &new.presenters).await?;
    Ok(chat.add_chat_room(domain, &new).await?)
}

/// Changes a room (`u`'s add lists not yet checked); returns the room's name
/// after the change.
pub async fn update_room(
    users: &Store,
    chat: &Store,
    actor: Actor<'_>,
    name: &str,
    mut u: ChatRoomUpdate,
) -> anyhow::Result<String> {
    let (dir, room) = room_for_change(chat, actor, name).await?;
    u.add_members = principals(users, &u.add_members).await?;
    u.add_managers = principals(users, &u.add_managers).await?;
    u.add_presenters = principals(users, &u.add_presenters).await?;
    u.remove_members = loose_principals(&u.remove_members)?;
    u.remove_managers = loose_principals(&u.remove_managers)?;
    u.remove_presenters = loose_principals(&u.remove_presenters)?;
    if let Some(cat) = u
        .category
        .as_deref()
        .and_then(|c| category_by_name(&dir, c, &room.pool))
    {
        u.category = Some(cat.qualified_name());
    }
    if let Actor::User(user) = actor {
        if let Some(cat) = &u.category {
            creator_check(&dir, cat, &room.pool, user)?;
        }
        let mut managers: Vec<String> = room
            .managers
            .iter()
            .filter(|m| !u.remove_managers.contains(m))
            .cloned()
            .collect();
        managers.extend(u.add_managers.iter().cloned());
        if managers.is_empty() {
            bail!("a room keeps at least one manager");
        }
    }
    chat.update_chat_room(&room.qualified_name(), &u).await?;
    Ok(u.rename
        .as_deref()
        .map_or(room.name.clone(), |n| n.trim().to_owned()))
}

/// Disables or enables a room; returns its name.
pub async fn set_disabled(
    chat: &Store,
    actor: Actor<'_>,
    name: &str,
    disabled: bool,
) -> anyhow::Result<String> {
    let (_, room) = room_for_change(chat, actor, name).await?;
    chat.update_chat_room(
        &room.qualified_name(),
        &ChatRoomUpdate {
            disabled: Some(disabled),
            ..Default::default()
        },
    )
    .await?;
    Ok(room.name)
}
