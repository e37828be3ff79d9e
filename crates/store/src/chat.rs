//! Persistent Chat: categories, rooms, role lists, posts, policy and configuration.
//!
//! Administrative writes (categories, rooms, policy, config, message removal) bump the
//! `chat_rev` counter in their transaction; the chat service polls [`Store::chat_rev`]
//! and reloads [`Store::chat_directory`] when it moves. Posts do not bump it.
//!
//! Full-text search uses the database's own engine: a contentless SQLite FTS5 table
//! (`chat_posts_fts`, rowid = post id) or a PostgreSQL table of `tsvector`s with a GIN
//! index (`chat_posts_search`). Neither is touched when a post is inserted: an indexer
//! ([`Store::chat_index_pending`], run by the chat service every few hundred
//! milliseconds and by every search before it runs) adds the posts above a watermark,
//! so a post never waits for indexing.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use crate::{Backend, Result, Store, StoreError, now_secs};

/// Room privacy (Lync): who finds and who may join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privacy {
    /// Anyone allowed by the category finds and joins it.
    Open,
    /// Anyone allowed finds it; only members join (the default).
    Closed,
    /// Only members find and join it.
    Secret,
}

impl Privacy {
    pub fn as_str(self) -> &'static str {
        match self {
            Privacy::Open => "open",
            Privacy::Closed => "closed",
            Privacy::Secret => "secret",
        }
    }

    pub fn parse(s: &str) -> Option<Privacy> {
        match s.to_ascii_lowercase().as_str() {
            "open" => Some(Privacy::Open),
            "closed" => Some(Privacy::Closed),
            "secret" => Some(Privacy::Secret),
            _ => None,
        }
    }
}

/// Room type: in an auditorium only presenters post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomType {
    Normal,
    Auditorium,
}

impl RoomType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::Normal => "normal",
            RoomType::Auditorium => "auditorium",
        }
    }

    pub fn parse(s: &str) -> Option<RoomType> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Some(RoomType::Normal),
            "auditorium" => Some(RoomType::Auditorium),
            _ => None,
        }
    }
}

/// State of a post: administrators may remove or replace it (the original is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostState {
    Active,
    Removed,
    Replaced,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Active => "active",
            PostState::Removed => "removed",
            PostState::Replaced => "replaced",
        }
    }

    fn parse(s: &str) -> PostState {
        match s {
            "removed" => PostState::Removed,
            "replaced" => PostState::Replaced,
            _ => PostState::Active,
        }
    }
}

/// A category: an ethical wall every room belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCategory {
    pub id: String,
    /// `ma-cat://DOMAIN/<uuid>`
    pub uri: String,
    pub name: String,
    pub description: String,
    /// Principals allowed in the category's rooms (empty: nobody).
    pub allowed: Vec<String>,
    /// Principals never allowed (wins over `allowed`).
    pub denied: Vec<String>,
    /// Principals who may create rooms in it.
    pub creators: Vec<String>,
    pub file_upload: bool,
    pub chat_history: bool,
    /// The Persistent Chat pool (its FQDN, lower case); empty: the default pool.
    pub pool: String,
}

/// A room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRoom {
    pub id: String,
    /// `ma-chan://DOMAIN/<uuid>`
    pub uri: String,
    pub name: String,
    pub description: String,
    pub category_id: String,
    pub privacy: Privacy,
    pub room_type: RoomType,
    pub disabled: bool,
    pub members: Vec<String>,
    pub managers: Vec<String>,
    pub presenters: Vec<String>,
    /// The Persistent Chat pool (its category's); empty: the default pool.
    pub pool: String,
}

impl ChatCategory {
    /// `NAME` in the default pool, `POOL\\NAME` in another (what the CLI accepts).
    pub fn qualified_name(&self) -> String {
        chat_qualified_name(&self.pool, &self.name)
    }
}

impl ChatRoom {
    /// `NAME` in the default pool, `POOL\\NAME` in another (what the CLI accepts).
    pub fn qualified_name(&self) -> String {
        chat_qualified_name(&self.pool, &self.name)
    }
}

/// One post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPost {
    pub id: i64,
    pub room_id: String,
    /// Normalized address of the author (`bob@example.com`).
    pub author: String,
    /// Epoch milliseconds (server time).
    pub ts_ms: i64,
    /// What users see.
    pub text: String,
    /// The text as posted.
    pub original: String,
    pub state: PostState,
}

/// Server-wide chat settings (Lync's `Set-CsPersistentChatConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatConfig {
    /// Posts sent as backfill on join (1..=500, default 30).
    pub default_history: u32,
    /// Largest post accepted, in bytes of text (default 8000).
    pub max_message_bytes: u32,
    /// Above this many participants a room's live participant list stops (default 75).
    pub participant_update_limit: u32,
    /// Largest file post, in KB (Lync's `MaxFileSizeKB`, default 20,000).
    pub max_file_size_kb: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            default_history: 30,
            max_message_bytes: 8000,
            participant_update_limit: 75,
            max_file_size_kb: 20_000,
        }
    }
}

/// `EnablePersistentChat`: the global value and per-user overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPolicy {
    /// Global default (Lync: false).
    pub global: bool,
    /// Per-user settings (normalized address → enabled).
    pub users: HashMap<String, bool>,
}

impl ChatPolicy {
    /// Whether `user` (normalized address) may use Persistent Chat.
    pub fn enabled_for(&self, user: &str) -> bool {
        self.users.get(user).copied().unwrap_or(self.global)
    }
}

/// Everything but the posts: what the chat service holds in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatDirectory {
    pub categories: Vec<ChatCategory>,
    pub rooms: Vec<ChatRoom>,
    pub policy: ChatPolicy,
    pub config: ChatConfig,
}

/// A category to add.
#[derive(Debug, Clone, Default)]
pub struct NewChatCategory {
    pub name: String,
    pub description: String,
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
    pub creators: Vec<String>,
    pub file_upload: bool,
    pub chat_history: bool,
    /// The pool (FQDN); empty: the default pool.
    pub pool: String,
}

/// Changes to a category (`None` = unchanged; lists replace the stored list).
#[derive(Debug, Clone, Default)]
pub struct ChatCategoryUpdate {
    pub description: Option<String>,
    pub allowed: Option<Vec<String>>,
    pub denied: Option<Vec<String>>,
    pub creators: Option<Vec<String>>,
    pub file_upload: Option<bool>,
    pub chat_history: Option<bool>,
}

/// A room to add.
#[derive(Debug, Clone)]
pub struct NewChatRoom {
    pub name: String,
    /// The room's pool (FQDN; empty: the default pool); its category must be in it.
    /// A plain `category` name is looked up in this pool.
    pub pool: String,
    pub category: String,
    pub description: String,
    pub privacy: Privacy,
    pub room_type: RoomType,
    pub disabled: bool,
    pub members: Vec<String>,
    pub managers: Vec<String>,
    pub presenters: Vec<String>,
}

/// Changes to a room.
#[derive(Debug, Clone, Default)]
pub struct ChatRoomUpdate {
    pub rename: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    pub privacy: Option<Privacy>,
    pub room_type: Option<RoomType>,
    pub disabled: Option<bool>,
    pub add_members: Vec<String>,
    pub remove_members: Vec<String>,
    pub add_managers: Vec<String>,
    pub remove_managers: Vec<String>,
    pub add_presenters: Vec<String>,
    pub remove_presenters: Vec<String>,
}

/// A history search. `rooms` are the ids the asking user may read (the caller decides).
#[derive(Debug, Clone, Default)]
pub struct ChatSearch {
    pub rooms: Vec<String>,
    /// Words, all of which must occur.
    pub text: Option<String>,
    /// Normalized address of the author.
    pub author: Option<String>,
    /// Epoch milliseconds, inclusive.
    pub since_ms: Option<i64>,
    /// Epoch milliseconds, exclusive.
    pub until_ms: Option<i64>,
    pub limit: u32,
    /// 1-based page.
    pub page: u32,
}

/// Lists of principals as stored.
const LIST_ALLOWED: &str = "allowed";
const LIST_DENIED: &str = "denied";
const LIST_CREATORS: &str = "creators";
const LIST_MEMBERS: &str = "members";
const LIST_MANAGERS: &str = "managers";
const LIST_PRESENTERS: &str = "presenters";

/// Normalizes a principal: `sip:Bob@Example.com` → `bob@example.com`, `@Example.com`
/// → `@example.com`. `None` when it is neither an address nor a domain.
pub fn normalize_principal(p: &str) -> Option<String> {
    let p = p.trim();
    let p = p
        .strip_prefix("sip:")
        .or_else(|| p.strip_prefix("SIP:"))
        .unwrap_or(p);
    let lower = p.to_ascii_lowercase();
    let (user, domain) = lower.split_once('@')?;
    if domain.is_empty()
        || domain.contains('@')
        || !crate::is_valid_host_name(domain)
        || user
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == ':')
    {
        return None;
    }
    Some(lower)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn invalid(reason: impl Into<String>) -> StoreError {
    StoreError::Chat(reason.into())
}

fn principals(list: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let n = normalize_principal(p)
            .ok_or_else(|| invalid(format!("{p:?} is neither a SIP address nor @domain")))?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Inserts a post (and its compliance record) in `tx`; returns its id.
pub(crate) async fn insert_chat_post_tx(
    tx: &mut Tx,
    room_id: &str,
    author: &str,
    ts_ms: i64,
    text: &str,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'chat_post' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO chat_posts (id, room_id, author, ts, text, original, state) \
         VALUES ($1, $2, $3, $4, $5, $5, 'active')",
    )
    .bind(id)
    .bind(room_id)
    .bind(author)
    .bind(ts_ms)
    .bind(text)
    .execute(&mut **tx)
    .await?;
    crate::chat_compliance::record_post(tx, id, room_id, author, ts_ms, text).await?;
    Ok(id)
}

async fn bump_chat_rev(tx: &mut Tx) -> Result<i64> {
    let rev: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + 1 WHERE name = 'chat_rev' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    crate::announce(tx, "chat_rev").await?;
    Ok(rev)
}

async fn set_list(tx: &mut Tx, node: &str, list: &str, values: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM chat_principals WHERE node_id = $1 AND list = $2")
        .bind(node)
        .bind(list)
        .execute(&mut **tx)
        .await?;
    for v in values {
        sqlx::query("INSERT INTO chat_principals (node_id, list, principal) VALUES ($1, $2, $3)")
            .bind(node)
            .bind(list)
            .bind(v)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn edit_list(
    tx: &mut Tx,
    node: &str,
    list: &str,
    add: &[String],
    remove: &[String],
) -> Result<()> {
    for v in principals(remove)? {
        sqlx::query(
            "DELETE FROM chat_principals WHERE node_id = $1 AND list = $2 AND principal = $3",
        )
        .bind(node)
        .bind(list)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    }
    for v in principals(add)? {
        sqlx::query(
            "INSERT INTO chat_principals (node_id, list, principal) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(node)
        .bind(list)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn name_key(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(invalid(format!("invalid name {name:?}")));
    }
    if name.contains('\\') {
        return Err(invalid(format!(
            "invalid name {name:?}: a backslash separates a pool from a name (POOL\\NAME)"
        )));
    }
    Ok((name.to_owned(), name.to_lowercase()))
}

/// A pool name as stored: its FQDN in lower case, or empty for the default pool.
pub fn chat_pool_key(pool: &str) -> Result<String> {
    let pool = pool.trim().to_ascii_lowercase();
    if pool.len() > 255
        || !pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(invalid(format!(
            "invalid pool name {pool:?} (a pool's FQDN)"
        )));
    }
    Ok(pool)
}

/// The `name_key` of `key` (a lower-case name) in `pool`: the name itself in the
/// default pool, `pool\name` in another (Lync's `pool\room` identity).
fn pool_qualified(pool: &str, key: &str) -> String {
    if pool.is_empty() {
        key.to_owned()
    } else {
        format!("{pool}\\{key}")
    }
}

/// How a category or room is named to the CLI: `NAME` in the default pool,
/// `POOL\NAME` in another.
pub fn chat_qualified_name(pool: &str, name: &str) -> String {
    if pool.is_empty() {
        name.to_owned()
    } else {
        format!("{pool}\\{name}")
    }
}

fn post_from_row(r: &AnyRow) -> Result<ChatPost> {
    Ok(ChatPost {
        id: r.try_get("id")?,
        room_id: r.try_get("room_id")?,
        author: r.try_get("author")?,
        ts_ms: r.try_get("ts")?,
        text: r.try_get("text")?,
        original: r.try_get("original")?,
        state: PostState::parse(&r.try_get::<String, _>("state")?),
    })
}

/// The default text of a post replaced by an administrator (Lync's).
pub const REPLACED_TEXT: &str = "This message was replaced by the Persistent Chat administrator.";

/// Creates the backend-specific full-text objects (idempotent; called at open).
pub(crate) async fn ensure_search(pool: &sqlx::AnyPool, backend: Backend) -> Result<()> {
    match backend {
        Backend::Sqlite => {
            sqlx::query(
                "CREATE VIRTUAL TABLE IF NOT EXISTS chat_posts_fts USING fts5(text, content='', contentless_delete=1, \
                 tokenize='unicode61')",
            )
            .execute(pool)
            .await?;
        }
        Backend::Postgres => {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS chat_posts_search (id BIGINT PRIMARY KEY, \
                 tsv TSVECTOR NOT NULL)",
            )
            .execute(pool)
            .await?;
            sqlx::query(
                "CREATE INDEX IF NOT EXISTS chat_posts_search_tsv ON chat_posts_search USING GIN (tsv)",
            )
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// The administrative chat revision (moves on every category/room/policy/config or
    /// message-administration change).
    pub async fn chat_rev(&self) -> Result<i64> {
        let rev: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'chat_rev'")
            .fetch_one(&self.pool)
            .await?;
        Ok(rev)
    }

    /// Categories, rooms, policy and configuration.
    pub async fn chat_directory(&self) -> Result<ChatDirectory> {
        let mut lists: HashMap<(String, String), Vec<String>> = HashMap::new();
        for r in
            sqlx::query("SELECT node_id, list, principal FROM chat_principals ORDER BY principal")
                .fetch_all(&self.pool)
                .await?
        {
            let node: String = r.try_get("node_id")?;
            let list: String = r.try_get("list")?;
            lists
                .entry((node, list))
                .or_default()
                .push(r.try_get("principal")?);
        }
        let mut take = |node: &str, list: &str| {
            lists
                .remove(&(node.to_owned(), list.to_owned()))
                .unwrap_or_default()
        };
        let mut categories = Vec::new();
        for r in sqlx::query(
            "SELECT id, uri, name, description, file_upload, chat_history, pool \
             FROM chat_categories ORDER BY name_key",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let id: String = r.try_get("id")?;
            categories.push(ChatCategory {
                allowed: take(&id, LIST_ALLOWED),
                denied: take(&id, LIST_DENIED),
                creators: take(&id, LIST_CREATORS),
                uri: r.try_get("uri")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                file_upload: r.try_get::<i64, _>("file_upload")? != 0,
                chat_history: r.try_get::<i64, _>("chat_history")? != 0,
                pool: r.try_get("pool")?,
                id,
            });
        }
        let mut rooms = Vec::new();
        for r in sqlx::query(
            "SELECT id, uri, name, description, category_id, privacy, room_type, disabled, pool \
             FROM chat_rooms ORDER BY name_key",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let id: String = r.try_get("id")?;
            rooms.push(ChatRoom {
                members: take(&id, LIST_MEMBERS),
                managers: take(&id, LIST_MANAGERS),
                presenters: take(&id, LIST_PRESENTERS),
                uri: r.try_get("uri")?,
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                category_id: r.try_get("category_id")?,
                privacy: Privacy::parse(&r.try_get::<String, _>("privacy")?)
                    .unwrap_or(Privacy::Closed),
                room_type: RoomType::parse(&r.try_get::<String, _>("room_type")?)
                    .unwrap_or(RoomType::Normal),
                disabled: r.try_get::<i64, _>("disabled")? != 0,
                pool: r.try_get("pool")?,
                id,
            });
        }
        let mut policy = ChatPolicy::default();
        for r in sqlx::query("SELECT user_address, enabled FROM chat_policy")
            .fetch_all(&self.pool)
            .await?
        {
            let user: String = r.try_get("user_address")?;
            let enabled = r.try_get::<i64, _>("enabled")? != 0;
            if user.is_empty() {
                policy.global = enabled;
            } else {
                policy.users.insert(user, enabled);
            }
        }
        let mut config = ChatConfig::default();
        for r in sqlx::query("SELECT key, value FROM chat_config")
            .fetch_all(&self.pool)
            .await?
        {
            let key: String = r.try_get("key")?;
            let value = u32::try_from(r.try_get::<i64, _>("value")?).unwrap_or(0);
            match key.as_str() {
                "default_history" => config.default_history = value,
                "max_message_bytes" => config.max_message_bytes = value,
                "participant_update_limit" => config.participant_update_limit = value,
                "max_file_size_kb" => config.max_file_size_kb = value,
                _ => {}
            }
        }
        Ok(ChatDirectory {
            categories,
            rooms,
            policy,
            config,
        })
    }

    async fn category_id(tx: &mut Tx, name: &str) -> Result<String> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM chat_categories WHERE name_key = $1")
                .bind(name.trim().to_lowercase())
                .fetch_optional(&mut **tx)
                .await?;
        id.ok_or_else(|| invalid(format!("unknown category {:?}", name.trim())))
    }

    /// The category named `name` for a room of `pool`: a plain name is looked up in
    /// `pool`, a `POOL\\NAME` as given; refused when the category is in another pool.
    async fn category_in_pool(tx: &mut Tx, pool: &str, name: &str) -> Result<String> {
        let key = name.trim().to_lowercase();
        let key = if key.contains('\\') {
            key
        } else {
            pool_qualified(pool, &key)
        };
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, pool FROM chat_categories WHERE name_key = $1")
                .bind(&key)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((id, cat_pool)) = row else {
            return Err(invalid(format!(
                "unknown category {:?}{}",
                name.trim(),
                if pool.is_empty() {
                    String::new()
                } else {
                    format!(" in pool {pool}")
                }
            )));
        };
        if cat_pool != pool {
            return Err(invalid(format!(
                "category {:?} is in pool {:?}, not {:?}: a room lives in its category's pool",
                name.trim(),
                if cat_pool.is_empty() {
                    "(default)"
                } else {
                    &cat_pool
                },
                if pool.is_empty() { "(default)" } else { pool },
            )));
        }
        Ok(id)
    }

    async fn room_id(tx: &mut Tx, name: &str) -> Result<String> {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM chat_rooms WHERE name_key = $1")
                .bind(name.trim().to_lowercase())
                .fetch_optional(&mut **tx)
                .await?;
        id.ok_or_else(|| invalid(format!("unknown room {:?}", name.trim())))
    }

    /// Adds a category; its URI is `ma-cat://DOMAIN/<uuid>`.
    pub async fn add_chat_category(&self, domain: &str, new: &NewChatCategory) -> Result<String> {
        let (name, key) = name_key(&new.name)?;
        let pool = chat_pool_key(&new.pool)?;
        let key = pool_qualified(&pool, &key);
        let allowed = principals(&new.allowed)?;
        let denied = principals(&new.denied)?;
        let creators = principals(&new.creators)?;
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM chat_categories WHERE name_key = $1")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(invalid(format!(
                "category {:?} already exists",
                chat_qualified_name(&pool, &name)
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO chat_categories (id, uri, name, name_key, description, file_upload, \
             chat_history, created_at, pool) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(format!("ma-cat://{}/{id}", domain.to_ascii_lowercase()))
        .bind(&name)
        .bind(&key)
        .bind(new.description.trim())
        .bind(i64::from(new.file_upload))
        .bind(i64::from(new.chat_history))
        .bind(now_secs())
        .bind(&pool)
        .execute(&mut *tx)
        .await?;
        set_list(&mut tx, &id, LIST_ALLOWED, &allowed).await?;
        set_list(&mut tx, &id, LIST_DENIED, &denied).await?;
        set_list(&mut tx, &id, LIST_CREATORS, &creators).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes a category.
    pub async fn update_chat_category(&self, name: &str, u: &ChatCategoryUpdate) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let id = Self::category_id(&mut tx, name).await?;
        if let Some(d) = &u.description {
            sqlx::query("UPDATE chat_categories SET description = $1 WHERE id = $2")
                .bind(d.trim())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = u.file_upload {
            sqlx::query("UPDATE chat_categories SET file_upload = $1 WHERE id = $2")
                .bind(i64::from(v))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(v) = u.chat_history {
            sqlx::query("UPDATE chat_categories SET chat_history = $1 WHERE id = $2")
                .bind(i64::from(v))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        for (list, values) in [
            (LIST_ALLOWED, &u.allowed),
            (LIST_DENIED, &u.denied),
            (LIST_CREATORS, &u.creators),
        ] {
            if let Some(values) = values {
                set_list(&mut tx, &id, list, &principals(values)?).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a category; refused while rooms use it.
    pub async fn remove_chat_category(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let id = Self::category_id(&mut tx, name).await?;
        let rooms: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM chat_rooms WHERE category_id = $1")
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
        if rooms > 0 {
            return Err(invalid(format!(
                "category {:?} is used by {rooms} room(s)",
                name.trim()
            )));
        }
        sqlx::query("DELETE FROM chat_principals WHERE node_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM chat_categories WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a room; its URI is `ma-chan://DOMAIN/<uuid>`. Returns the room id.
    pub async fn add_chat_room(&self, domain: &str, new: &NewChatRoom) -> Result<String> {
        let (name, key) = name_key(&new.name)?;
        let pool = chat_pool_key(&new.pool)?;
        let key = pool_qualified(&pool, &key);
        let members = principals(&new.members)?;
        let managers = principals(&new.managers)?;
        let presenters = principals(&new.presenters)?;
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let category = Self::category_in_pool(&mut tx, &pool, &new.category).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM chat_rooms WHERE name_key = $1")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(invalid(format!(
                "a room named {name:?} already exists in {}",
                if pool.is_empty() {
                    "the default pool".to_owned()
                } else {
                    format!("pool {pool}")
                }
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO chat_rooms (id, uri, name, name_key, description, category_id, privacy, \
             room_type, disabled, created_at, pool) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(format!("ma-chan://{}/{id}", domain.to_ascii_lowercase()))
        .bind(&name)
        .bind(&key)
        .bind(new.description.trim())
        .bind(&category)
        .bind(new.privacy.as_str())
        .bind(new.room_type.as_str())
        .bind(i64::from(new.disabled))
        .bind(now_secs())
        .bind(&pool)
        .execute(&mut *tx)
        .await?;
        set_list(&mut tx, &id, LIST_MEMBERS, &members).await?;
        set_list(&mut tx, &id, LIST_MANAGERS, &managers).await?;
        set_list(&mut tx, &id, LIST_PRESENTERS, &presenters).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes a room.
    pub async fn update_chat_room(&self, name: &str, u: &ChatRoomUpdate) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let id = Self::room_id(&mut tx, name).await?;
        let pool: String = sqlx::query_scalar("SELECT pool FROM chat_rooms WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(new_name) = &u.rename {
            let (new_name, key) = name_key(new_name)?;
            let key = pool_qualified(&pool, &key);
            let other: Option<String> =
                sqlx::query_scalar("SELECT id FROM chat_rooms WHERE name_key = $1")
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if other.is_some_and(|o| o != id) {
                return Err(invalid(format!("a room named {new_name:?} already exists")));
            }
            sqlx::query("UPDATE chat_rooms SET name = $1, name_key = $2 WHERE id = $3")
                .bind(&new_name)
                .bind(&key)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(cat) = &u.category {
            let cat = Self::category_in_pool(&mut tx, &pool, cat).await?;
            sqlx::query("UPDATE chat_rooms SET category_id = $1 WHERE id = $2")
                .bind(&cat)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let sets: [(&str, Option<String>); 4] = [
            (
                "description",
                u.description.as_ref().map(|d| d.trim().to_owned()),
            ),
            ("privacy", u.privacy.map(|p| p.as_str().to_owned())),
            ("room_type", u.room_type.map(|t| t.as_str().to_owned())),
            ("disabled", None),
        ];
        for (col, value) in sets {
            if let Some(v) = value {
                let sql = format!("UPDATE chat_rooms SET {col} = $1 WHERE id = $2");
                sqlx::query(AssertSqlSafe(sql))
                    .bind(v)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(d) = u.disabled {
            sqlx::query("UPDATE chat_rooms SET disabled = $1 WHERE id = $2")
                .bind(i64::from(d))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        edit_list(
            &mut tx,
            &id,
            LIST_MEMBERS,
            &u.add_members,
            &u.remove_members,
        )
        .await?;
        edit_list(
            &mut tx,
            &id,
            LIST_MANAGERS,
            &u.add_managers,
            &u.remove_managers,
        )
        .await?;
        edit_list(
            &mut tx,
            &id,
            LIST_PRESENTERS,
            &u.add_presenters,
            &u.remove_presenters,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a room with its role lists, posts and file records (the caller
    /// deletes the files themselves: `chat_room_files` first).
    pub async fn remove_chat_room(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let id = Self::room_id(&mut tx, name).await?;
        self.unindex_where(&mut tx, "room_id = $1", &id).await?;
        for sql in [
            "DELETE FROM chat_posts WHERE room_id = $1",
            "DELETE FROM chat_files WHERE room_id = $1",
            "DELETE FROM chat_principals WHERE node_id = $1",
            "DELETE FROM chat_rooms WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets `EnablePersistentChat` globally (`user` None) or for one user; `enabled`
    /// None removes the user's own setting (the global one applies again).
    pub async fn set_chat_policy(&self, user: Option<&str>, enabled: Option<bool>) -> Result<()> {
        let key = match user {
            None => String::new(),
            Some(u) => normalize_principal(u)
                .filter(|p| !p.starts_with('@'))
                .ok_or_else(|| invalid(format!("invalid user address {u:?}")))?,
        };
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        match enabled {
            Some(e) => {
                sqlx::query(
                    "INSERT INTO chat_policy (user_address, enabled) VALUES ($1, $2) \
                     ON CONFLICT (user_address) DO UPDATE SET enabled = excluded.enabled",
                )
                .bind(&key)
                .bind(i64::from(e))
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM chat_policy WHERE user_address = $1")
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores the chat configuration (validated: history 1..=500, sizes > 0).
    pub async fn set_chat_config(&self, c: &ChatConfig) -> Result<()> {
        if !(1..=500).contains(&c.default_history) {
            return Err(invalid("default history must be between 1 and 500"));
        }
        if c.max_message_bytes == 0 || c.max_message_bytes > 1_000_000 {
            return Err(invalid(
                "maximum message size must be between 1 and 1000000 bytes",
            ));
        }
        if c.participant_update_limit == 0 {
            return Err(invalid("participant update limit must be at least 1"));
        }
        if c.max_file_size_kb == 0 || c.max_file_size_kb > 2_000_000 {
            return Err(invalid(
                "maximum file size must be between 1 and 2000000 KB",
            ));
        }
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        for (k, v) in [
            ("default_history", c.default_history),
            ("max_message_bytes", c.max_message_bytes),
            ("participant_update_limit", c.participant_update_limit),
            ("max_file_size_kb", c.max_file_size_kb),
        ] {
            sqlx::query(
                "INSERT INTO chat_config (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(k)
            .bind(i64::from(v))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores a post (durably, before the author's INFO is answered) and returns its id.
    pub async fn insert_chat_post(
        &self,
        room_id: &str,
        author: &str,
        ts_ms: i64,
        text: &str,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id = insert_chat_post_tx(&mut tx, room_id, author, ts_ms, text).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Every post of a room, oldest first (removed ones included, with their state).
    pub async fn chat_posts(&self, room_id: &str) -> Result<Vec<ChatPost>> {
        sqlx::query(
            "SELECT id, room_id, author, ts, text, original, state FROM chat_posts \
             WHERE room_id = $1 ORDER BY id",
        )
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(post_from_row)
        .collect()
    }

    /// One post.
    pub async fn chat_post(&self, id: i64) -> Result<Option<ChatPost>> {
        sqlx::query(
            "SELECT id, room_id, author, ts, text, original, state FROM chat_posts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(post_from_row)
        .transpose()
    }

    /// The newest `per_room` visible (not removed) posts of every room, oldest first
    /// within a room: the chat service's backfill cache.
    pub async fn recent_chat_posts(&self, per_room: u32) -> Result<Vec<ChatPost>> {
        sqlx::query(
            "SELECT id, room_id, author, ts, text, original, state FROM ( \
               SELECT p.*, ROW_NUMBER() OVER (PARTITION BY room_id ORDER BY id DESC) AS rn \
               FROM chat_posts p WHERE state <> 'removed') t \
             WHERE rn <= $1 ORDER BY room_id, id",
        )
        .bind(i64::from(per_room))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(post_from_row)
        .collect()
    }

    async fn unindex_where(&self, tx: &mut Tx, cond: &str, arg: &str) -> Result<()> {
        let table = match self.backend {
            Backend::Sqlite => "chat_posts_fts WHERE rowid",
            Backend::Postgres => "chat_posts_search WHERE id",
        };
        let sql = format!("DELETE FROM {table} IN (SELECT id FROM chat_posts WHERE {cond})");
        sqlx::query(AssertSqlSafe(sql))
            .bind(arg)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Administrator removal: the post disappears for users, its original text stays.
    pub async fn remove_chat_post(&self, id: i64) -> Result<()> {
        self.administer_post(id, None).await
    }

    /// Administrator replacement (default text [`REPLACED_TEXT`]).
    pub async fn replace_chat_post(&self, id: i64, text: Option<&str>) -> Result<()> {
        self.administer_post(id, Some(text.unwrap_or(REPLACED_TEXT)))
            .await
    }

    async fn administer_post(&self, id: i64, replacement: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM chat_posts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(invalid(format!("no message with id {id}")));
        }
        let (state, text) = match replacement {
            Some(t) => ("replaced", t),
            None => ("removed", ""),
        };
        crate::chat_compliance::record_admin(
            &mut tx,
            &uuid::Uuid::new_v4().to_string(),
            replacement,
            now_ms(),
            "p.id = CAST($4 AS BIGINT)",
            &id.to_string(),
        )
        .await?;
        sqlx::query("UPDATE chat_posts SET state = $1, text = $2 WHERE id = $3")
            .bind(state)
            .bind(text)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The index holds what users may find: drop the old text (the indexer skips
        // posts that are no longer active, so a replaced text is not indexed).
        self.unindex_where(&mut tx, "id = CAST($1 AS BIGINT)", &id.to_string())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a room's posts older than `before_ms` from users' view (Lync's
    /// Clear-CsPersistentChatRoom): they are marked removed, the originals are kept.
    /// Returns how many posts were cleared.
    pub async fn clear_chat_room(&self, room: &str, before_ms: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        bump_chat_rev(&mut tx).await?;
        let id = Self::room_id(&mut tx, room).await?;
        crate::chat_compliance::record_admin(
            &mut tx,
            &uuid::Uuid::new_v4().to_string(),
            None,
            now_ms(),
            &format!("p.room_id = $4 AND p.ts < {before_ms} AND p.state <> 'removed'"),
            &id,
        )
        .await?;
        let table = match self.backend {
            Backend::Sqlite => "chat_posts_fts WHERE rowid",
            Backend::Postgres => "chat_posts_search WHERE id",
        };
        let sql = format!(
            "DELETE FROM {table} IN (SELECT id FROM chat_posts WHERE room_id = $1 AND ts < $2)"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&id)
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "UPDATE chat_posts SET state = 'removed', text = '' \
             WHERE room_id = $1 AND ts < $2 AND state <> 'removed'",
        )
        .bind(&id)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Adds the posts not yet in the full-text index (up to 5,000 per call). Returns
    /// how many posts were looked at (5,000: call again). Concurrent callers are serialized by the watermark row.
    pub async fn chat_index_pending(&self) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        // Lock the watermark row (PostgreSQL) / take the write lock (SQLite) first.
        let mark: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value WHERE name = 'chat_indexed' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT id, text, state FROM chat_posts WHERE id > $1 ORDER BY id LIMIT 5000",
        )
        .bind(mark)
        .fetch_all(&mut *tx)
        .await?;
        let mut n = 0;
        let mut new_mark = mark;
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            new_mark = id;
            // Removed or replaced before it was indexed: nothing to find.
            if r.try_get::<String, _>("state")? != "active" {
                continue;
            }
            let text: String = r.try_get("text")?;
            let sql = match self.backend {
                Backend::Sqlite => "INSERT INTO chat_posts_fts (rowid, text) VALUES ($1, $2)",
                Backend::Postgres => {
                    "INSERT INTO chat_posts_search (id, tsv) VALUES ($1, to_tsvector('simple', $2)) \
                     ON CONFLICT (id) DO NOTHING"
                }
            };
            sqlx::query(sql)
                .bind(id)
                .bind(text)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        sqlx::query("UPDATE counters SET value = $1 WHERE name = 'chat_indexed'")
            .bind(new_mark)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::trace!(indexed = n, "chat posts indexed");
        Ok(rows.len())
    }

    /// Searches the history of `q.rooms`, newest first. Posts not yet indexed are
    /// indexed first, so a search sees every committed post.
    pub async fn search_chat(&self, q: &ChatSearch) -> Result<Vec<ChatPost>> {
        if q.rooms.is_empty() {
            return Ok(Vec::new());
        }
        for _ in 0..100 {
            if self.chat_index_pending().await? < 5000 {
                break;
            }
        }
        let mut sql = String::from(
            "SELECT p.id, p.room_id, p.author, p.ts, p.text, p.original, p.state FROM chat_posts p \
             WHERE p.state <> 'removed'",
        );
        let mut args: Vec<String> = Vec::new();
        let arg = |v: String, args: &mut Vec<String>| {
            args.push(v);
            format!("${}", args.len())
        };
        let mut room_params = Vec::new();
        for r in &q.rooms {
            room_params.push(arg(r.clone(), &mut args));
        }
        sql.push_str(&format!(" AND p.room_id IN ({})", room_params.join(", ")));
        if let Some(a) = &q.author {
            let a = normalize_principal(a).unwrap_or_else(|| a.to_ascii_lowercase());
            sql.push_str(&format!(" AND p.author = {}", arg(a, &mut args)));
        }
        if let Some(s) = q.since_ms {
            sql.push_str(&format!(
                " AND p.ts >= CAST({} AS BIGINT)",
                arg(s.to_string(), &mut args)
            ));
        }
        if let Some(u) = q.until_ms {
            sql.push_str(&format!(
                " AND p.ts < CAST({} AS BIGINT)",
                arg(u.to_string(), &mut args)
            ));
        }
        if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // Each word as a quoted term: user input never reaches the query syntax.
            let words: Vec<String> = text
                .split_whitespace()
                .map(|w| w.replace('"', ""))
                .filter(|w| !w.is_empty())
                .collect();
            match self.backend {
                Backend::Sqlite => {
                    let expr = words
                        .iter()
                        .map(|w| format!("\"{w}\""))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    sql.push_str(&format!(
                        " AND p.id IN (SELECT rowid FROM chat_posts_fts WHERE chat_posts_fts MATCH {})",
                        arg(expr, &mut args)
                    ));
                }
                Backend::Postgres => {
                    sql.push_str(&format!(
                        " AND p.id IN (SELECT id FROM chat_posts_search WHERE tsv @@ \
                         plainto_tsquery('simple', {}))",
                        arg(words.join(" "), &mut args)
                    ));
                }
            }
        }
        let limit = q.limit.clamp(1, 1000);
        let offset = u64::from(q.page.max(1) - 1) * u64::from(limit);
        sql.push_str(&format!(
            " ORDER BY p.id DESC LIMIT {limit} OFFSET {offset}"
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for a in args {
            query = query.bind(a);
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(post_from_row)
            .collect()
    }
}
