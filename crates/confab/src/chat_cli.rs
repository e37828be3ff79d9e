//! `confab chat ...`: Persistent Chat administration (the analog of Lync's
//! `*-CsPersistentChat*` cmdlets) on the server's database. A running server picks the
//! changes up within about a second (it polls the chat revision).

use std::io::Write;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use confab_chat::Directory;
use confab_chat::xccos::{parse_date, rfc3339};
use confab_store::{
    ChatCategory, ChatCategoryUpdate, ChatConfig, ChatPost, ChatRoom, ChatRoomUpdate, ChatSearch,
    NewChatCategory, NewChatRoom, Privacy, RoomType, Store, normalize_principal,
};
use serde_json::{Value, json};

use crate::chat_rooms::{self, Actor};
use crate::config::ServeConfig;

#[derive(Args)]
pub struct ChatArgs {
    /// Database URL [default: the database option of the config file, else the sqlite
    /// file DATA/confab.db]
    #[arg(long, value_name = "URL", global = true)]
    pub database: Option<String>,

    /// Domain of new room and category URIs [default: the configured domain]
    #[arg(long, value_name = "DOMAIN", global = true)]
    pub domain: Option<String>,

    #[command(subcommand)]
    pub command: ChatCommand,
}

#[derive(Subcommand)]
pub enum ChatCommand {
    /// Categories: the ethical walls rooms belong to
    Category {
        #[command(subcommand)]
        command: CategoryCommand,
    },
    /// Rooms
    Room {
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// Who may use Persistent Chat (EnablePersistentChat)
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Server-wide chat settings
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Administer posts (the originals are kept for compliance)
    Message {
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Remove a room's posts older than a date from users' view
    Clear {
        room: String,
        /// YYYY-MM-DD or RFC 3339
        #[arg(long, value_name = "DATE")]
        before: String,
    },
    /// Write categories, rooms (members, managers, presenters) and history to a JSON file
    Export {
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Add the categories, rooms and history of an export (every check first: on any
    /// error nothing is changed)
    Import { file: std::path::PathBuf },
    /// Compliance records (Lync's compliance service)
    Compliance {
        #[command(subcommand)]
        command: crate::chat_compliance::ComplianceCommand,
    },
    /// The chat servers of the pool: active or passive, heartbeat age, load
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The pool's chat servers: make a passive one active (or back)
    Pool {
        #[command(subcommand)]
        command: crate::chat_pool::PoolCommand,
    },
    /// Search the history of the rooms a user may read, newest first
    Search {
        /// The user searching (only rooms they may read are searched)
        #[arg(long = "as", value_name = "USER")]
        as_user: String,
        #[arg(long, value_name = "WORDS")]
        text: Option<String>,
        #[arg(long, value_name = "USER")]
        author: Option<String>,
        #[arg(long, value_name = "NAME")]
        room: Option<String>,
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Default)]
pub struct CategoryOptions {
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Comma-separated SIP addresses and @domains
    #[arg(long, value_name = "LIST")]
    allowed_members: Option<String>,
    #[arg(long, value_name = "LIST")]
    denied_members: Option<String>,
    #[arg(long, value_name = "LIST")]
    creators: Option<String>,
    #[arg(long, value_name = "BOOL")]
    file_upload: Option<bool>,
    #[arg(long, value_name = "BOOL")]
    chat_history: Option<bool>,
}

#[derive(Subcommand)]
pub enum CategoryCommand {
    /// Add a category
    Add {
        name: String,
        /// The Persistent Chat pool (its FQDN) whose rooms it holds [default: the
        /// default chat pool]; name it `POOL\\NAME` afterwards
        #[arg(long, value_name = "FQDN")]
        pool: Option<String>,
        #[command(flatten)]
        opts: CategoryOptions,
    },
    /// Change a category (list options replace the list)
    Set {
        name: String,
        #[command(flatten)]
        opts: CategoryOptions,
    },
    /// List categories
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a category (refused while rooms use it)
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum RoomCommand {
    /// Add a room
    Add {
        name: String,
        /// The category (in `--pool`, or `POOL\\NAME`, or its URI)
        #[arg(long, value_name = "CATEGORY")]
        category: String,
        /// The Persistent Chat pool (its FQDN) [default: the category's]; the room is
        /// named `POOL\\NAME` afterwards (names are unique per pool)
        #[arg(long, value_name = "FQDN")]
        pool: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        #[arg(long, value_name = "open|closed|secret", default_value = "closed")]
        privacy: String,
        #[arg(
            long = "type",
            value_name = "normal|auditorium",
            default_value = "normal"
        )]
        room_type: String,
        #[arg(long, value_name = "LIST")]
        members: Option<String>,
        #[arg(long, value_name = "LIST")]
        managers: Option<String>,
        #[arg(long, value_name = "LIST")]
        presenters: Option<String>,
        #[arg(long)]
        disabled: bool,
    },
    /// Change a room
    Set {
        name: String,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        #[arg(long, value_name = "open|closed|secret")]
        privacy: Option<String>,
        #[arg(long = "type", value_name = "normal|auditorium")]
        room_type: Option<String>,
        #[arg(long, value_name = "CATEGORY")]
        category: Option<String>,
        #[arg(long, value_name = "LIST")]
        add_members: Option<String>,
        #[arg(long, value_name = "LIST")]
        remove_members: Option<String>,
        #[arg(long, value_name = "LIST")]
        add_managers: Option<String>,
        #[arg(long, value_name = "LIST")]
        remove_managers: Option<String>,
        #[arg(long, value_name = "LIST")]
        add_presenters: Option<String>,
        #[arg(long, value_name = "LIST")]
        remove_presenters: Option<String>,
        #[arg(long, value_name = "NEW")]
        rename: Option<String>,
    },
    /// List rooms
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one room
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Disable a room: its members are dropped, it is hidden, its content kept
    Disable { name: String },
    /// Enable a disabled room
    Enable { name: String },
    /// Remove a room and its posts
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Enable or disable Persistent Chat globally or for one user
    Set {
        /// The user (omit with --global)
        user: Option<String>,
        #[arg(long, conflicts_with = "user")]
        global: bool,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Remove the user's own setting (the global one applies again)
        #[arg(long, conflicts_with_all = ["enable", "disable", "global"])]
        clear: bool,
    },
    /// Show the policy (for one user: whether they may use Persistent Chat)
    Show {
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Show the chat settings
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change chat settings
    Set {
        /// Posts sent as backfill on join (1-500)
        #[arg(long, value_name = "N")]
        default_history: Option<u32>,
        /// Largest post accepted, in bytes
        #[arg(long, value_name = "N")]
        max_message_bytes: Option<u32>,
        /// Above this many participants live participant lists stop
        #[arg(long, value_name = "N")]
        participant_update_limit: Option<u32>,
        /// Largest file post, in KB (MaxFileSizeKB)
        #[arg(long, value_name = "KB")]
        max_file_size_kb: Option<u32>,
    },
}

#[derive(Subcommand)]
pub enum MessageCommand {
    /// List a room's posts, oldest first
    List {
        room: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a post from users' view
    Remove { id: i64 },
    /// Replace a post's text
    Replace {
        id: i64,
        #[arg(long, value_name = "TEXT")]
        text: Option<String>,
    },
}

/// Runs one `confab chat` command.
pub async fn run(cfg: &ServeConfig, args: ChatArgs) -> anyhow::Result<()> {
    let mut cfg = cfg.clone();
    if let Some(db) = args.database {
        cfg.database = Some(db);
    }
    let domain = args.domain.unwrap_or_else(|| cfg.domain.clone());
    let store = crate::database::open_store(&cfg).await?;
    let result = match args.command {
        ChatCommand::Compliance { command } => {
            crate::chat_compliance::run(&cfg, &store, command).await
        }
        ChatCommand::Status { json } => crate::chat_pool::status(&cfg, &store, json).await,
        ChatCommand::Pool { command } => crate::chat_pool::run(&store, command).await,
        ChatCommand::Export { out } => crate::chat_transfer::export(&store, &out).await,
        ChatCommand::Import { file } => crate::chat_transfer::import(&store, &domain, &file).await,
        other => execute(&store, &domain, &cfg.chat_file_store(), other).await,
    };
    store.close().await;
    result
}

/// Splits a LIST and checks every address names an existing user.
async fn list(store: &Store, s: Option<&str>) -> anyhow::Result<Vec<String>> {
    chat_rooms::principals(store, &split(s)).await
}

/// The entries of a comma-separated LIST (checked by [`chat_rooms`]).
fn split(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn opt_list(store: &Store, s: Option<&str>) -> anyhow::Result<Option<Vec<String>>> {
    match s {
        None => Ok(None),
        Some(s) => Ok(Some(list(store, Some(s)).await?)),
    }
}

fn privacy(s: &str) -> anyhow::Result<Privacy> {
    Privacy::parse(s).with_context(|| format!("invalid privacy {s:?} (open, closed or secret)"))
}

fn room_type(s: &str) -> anyhow::Result<RoomType> {
    RoomType::parse(s).with_context(|| format!("invalid room type {s:?} (normal or auditorium)"))
}

fn date(s: &str) -> anyhow::Result<i64> {
    parse_date(s).with_context(|| format!("invalid date {s:?} (YYYY-MM-DD or RFC 3339)"))
}

/// Deletes the stored files of `stored` from the file store; returns how many
/// were deleted (a file already gone is not an error).
fn delete_stored_files(files: &std::path::Path, stored: &[confab_store::ChatFile]) -> usize {
    let mut deleted = 0;
    for f in stored {
        // Ids are 32 hex digits (chat_web::files); never a path of another kind.
        if f.id.len() != 32 || !f.id.chars().all(|c| c.is_ascii_hexdigit()) {
            tracing::warn!(file = %f.id, "a stored file id is not a file name; left alone");
            continue;
        }
        match std::fs::remove_file(files.join(&f.id)) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %f.id, error = %e, "deleting a stored file failed"),
        }
    }
    deleted
}

/// A pool as listed: its FQDN, or `(default)`.
fn pool_label(pool: &str) -> &str {
    if pool.is_empty() { "(default)" } else { pool }
}

fn category_json(c: &ChatCategory) -> Value {
    json!({
        "name": c.name,
        "uri": c.uri,
        "description": c.description,
        "allowed_members": c.allowed,
        "denied_members": c.denied,
        "creators": c.creators,
        "file_upload": c.file_upload,
        "chat_history": c.chat_history,
        "pool": c.pool,
    })
}

fn room_json(dir: &Directory, r: &ChatRoom) -> Value {
    json!({
        "name": r.name,
        "uri": r.uri,
        "category": dir.category(&r.category_id).map(|c| c.name.clone()),
        "pool": r.pool,
        "privacy": r.privacy.as_str(),
        "type": r.room_type.as_str(),
        "disabled": r.disabled,
        "description": r.description,
        "members": r.members,
        "managers": r.managers,
        "presenters": r.presenters,
    })
}

fn post_json(p: &ChatPost) -> Value {
    json!({
        "id": p.id,
        "author": p.author,
        "ts": rfc3339(p.ts_ms),
        "text": p.text,
        "original": p.original,
        "state": p.state.as_str(),
    })
}

fn dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

async fn room_of(store: &Store, name: &str) -> anyhow::Result<(Directory, ChatRoom)> {
    let dir = Directory::new(store.chat_directory().await?);
    let room = dir
        .room_by_name_or_uri(name)
        .cloned()
        .with_context(|| format!("unknown room {name:?}"))?;
    Ok((dir, room))
}

async fn execute(
    store: &Store,
    domain: &str,
    files: &std::path::Path,
    cmd: ChatCommand,
) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    let result = apply(store, domain, files, cmd, &mut buf).await;
    std::io::stdout().write_all(&buf)?;
    result
}

/// Runs one `confab chat` command handled here (not status, pool, export, import,
/// compliance), writing what the CLI prints to `out`: the one code path of the
/// command line and the Control Panel's chat page. `files` is the chat file
/// store (a removed room's files are deleted from it).
pub async fn apply<W: Write + Send>(
    store: &Store,
    domain: &str,
    files: &std::path::Path,
    cmd: ChatCommand,
    out: &mut W,
) -> anyhow::Result<()> {
    let out = &mut *out;
    match cmd {
        ChatCommand::Category { command } => match command {
            CategoryCommand::Add { name, pool, opts } => {
                let new = NewChatCategory {
                    name: name.clone(),
                    pool: pool.unwrap_or_default(),
                    description: opts.description.unwrap_or_default(),
                    allowed: list(store, opts.allowed_members.as_deref()).await?,
                    denied: list(store, opts.denied_members.as_deref()).await?,
                    creators: list(store, opts.creators.as_deref()).await?,
                    file_upload: opts.file_upload.unwrap_or(false),
                    chat_history: opts.chat_history.unwrap_or(true),
                };
                store.add_chat_category(domain, &new).await?;
                writeln!(
                    out,
                    "added category {}",
                    confab_store::chat_qualified_name(
                        &confab_store::chat_pool_key(&new.pool)?,
                        name.trim()
                    )
                )?;
            }
            CategoryCommand::Set { name, opts } => {
                let u = ChatCategoryUpdate {
                    description: opts.description,
                    allowed: opt_list(store, opts.allowed_members.as_deref()).await?,
                    denied: opt_list(store, opts.denied_members.as_deref()).await?,
                    creators: opt_list(store, opts.creators.as_deref()).await?,
                    file_upload: opts.file_upload,
                    chat_history: opts.chat_history,
                };
                store.update_chat_category(&name, &u).await?;
                writeln!(out, "updated category {}", name.trim())?;
            }
            CategoryCommand::List { json } => {
                let dir = store.chat_directory().await?;
                if json {
                    let v: Vec<Value> = dir.categories.iter().map(category_json).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else if dir.categories.is_empty() {
                    writeln!(out, "no categories")?;
                } else {
                    writeln!(
                        out,
                        "{:<24}  {:<24}  {:<28}  {:<20}  URI",
                        "NAME", "POOL", "ALLOWED", "DENIED"
                    )?;
                    for c in &dir.categories {
                        writeln!(
                            out,
                            "{:<24}  {:<24}  {:<28}  {:<20}  {}",
                            c.name,
                            pool_label(&c.pool),
                            dash(&c.allowed),
                            dash(&c.denied),
                            c.uri
                        )?;
                    }
                }
            }
            CategoryCommand::Remove { name } => {
                store.remove_chat_category(&name).await?;
                writeln!(out, "removed category {}", name.trim())?;
            }
        },
        ChatCommand::Room { command } => match command {
            RoomCommand::Add {
                name,
                category,
                pool,
                description,
                privacy: p,
                room_type: t,
                members,
                managers,
                presenters,
                disabled,
            } => {
                let new = NewChatRoom {
                    name: name.clone(),
                    pool: pool.unwrap_or_default(),
                    category,
                    description,
                    privacy: privacy(&p)?,
                    room_type: room_type(&t)?,
                    disabled,
                    members: split(members.as_deref()),
                    managers: split(managers.as_deref()),
                    presenters: split(presenters.as_deref()),
                };
                let id = chat_rooms::add_room(store, store, domain, Actor::Admin, new).await?;
                let dir = store.chat_directory().await?;
                let shown = dir
                    .rooms
                    .iter()
                    .find(|r| r.id == id)
                    .map_or_else(|| name.trim().to_owned(), ChatRoom::qualified_name);
                writeln!(
                    out,
                    "added room {shown} ma-chan://{}/{id}",
                    domain.to_ascii_lowercase()
                )?;
            }
            RoomCommand::Set {
                name,
                description,
                privacy: p,
                room_type: t,
                category,
                add_members,
                remove_members,
                add_managers,
                remove_managers,
                add_presenters,
                remove_presenters,
                rename,
            } => {
                let u = ChatRoomUpdate {
                    rename,
                    description,
                    category,
                    privacy: p.as_deref().map(privacy).transpose()?,
                    room_type: t.as_deref().map(room_type).transpose()?,
                    disabled: None,
                    add_members: split(add_members.as_deref()),
                    remove_members: split(remove_members.as_deref()),
                    add_managers: split(add_managers.as_deref()),
                    remove_managers: split(remove_managers.as_deref()),
                    add_presenters: split(add_presenters.as_deref()),
                    remove_presenters: split(remove_presenters.as_deref()),
                };
                let (_, room) = room_of(store, &name).await?;
                chat_rooms::update_room(store, store, Actor::Admin, &room.qualified_name(), u)
                    .await?;
                writeln!(out, "updated room {}", room.name)?;
            }
            RoomCommand::List { json } => {
                let dir = Directory::new(store.chat_directory().await?);
                if json {
                    let v: Vec<Value> = dir.data.rooms.iter().map(|r| room_json(&dir, r)).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else if dir.data.rooms.is_empty() {
                    writeln!(out, "no rooms")?;
                } else {
                    writeln!(
                        out,
                        "{:<24}  {:<24}  {:<16}  {:<7}  {:<10}  {:<8}  URI",
                        "NAME", "POOL", "CATEGORY", "PRIVACY", "TYPE", "DISABLED"
                    )?;
                    for r in &dir.data.rooms {
                        writeln!(
                            out,
                            "{:<24}  {:<24}  {:<16}  {:<7}  {:<10}  {:<8}  {}",
                            r.name,
                            pool_label(&r.pool),
                            dir.category(&r.category_id)
                                .map_or("-", |c| c.name.as_str()),
                            r.privacy.as_str(),
                            r.room_type.as_str(),
                            if r.disabled { "yes" } else { "no" },
                            r.uri
                        )?;
                    }
                }
            }
            RoomCommand::Show { name, json } => {
                let (dir, r) = room_of(store, &name).await?;
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::to_string_pretty(&room_json(&dir, &r))?
                    )?;
                } else {
                    writeln!(out, "name:        {}", r.name)?;
                    writeln!(out, "uri:         {}", r.uri)?;
                    writeln!(out, "pool:        {}", pool_label(&r.pool))?;
                    writeln!(
                        out,
                        "category:    {}",
                        dir.category(&r.category_id)
                            .map_or("-", |c| c.name.as_str())
                    )?;
                    writeln!(out, "description: {}", r.description)?;
                    writeln!(out, "privacy:     {}", r.privacy.as_str())?;
                    writeln!(out, "type:        {}", r.room_type.as_str())?;
                    writeln!(
                        out,
                        "disabled:    {}",
                        if r.disabled { "yes" } else { "no" }
                    )?;
                    writeln!(out, "members:     {}", dash(&r.members))?;
                    writeln!(out, "managers:    {}", dash(&r.managers))?;
                    writeln!(out, "presenters:  {}", dash(&r.presenters))?;
                }
            }
            RoomCommand::Disable { name } => {
                let name = chat_rooms::set_disabled(store, Actor::Admin, &name, true).await?;
                writeln!(out, "disabled room {name}")?;
            }
            RoomCommand::Enable { name } => {
                let name = chat_rooms::set_disabled(store, Actor::Admin, &name, false).await?;
                writeln!(out, "enabled room {name}")?;
            }
            RoomCommand::Remove { name } => {
                let (_, room) = room_of(store, &name).await?;
                let stored = store.chat_room_files(&room.id).await?;
                store.remove_chat_room(&room.qualified_name()).await?;
                // Then its files: once the rows are gone nobody can download them.
                let deleted = delete_stored_files(files, &stored);
                writeln!(
                    out,
                    "removed room {} ({deleted} stored file(s) deleted)",
                    room.qualified_name()
                )?;
            }
        },
        ChatCommand::Policy { command } => match command {
            PolicyCommand::Set {
                user,
                global,
                enable,
                disable,
                clear,
            } => {
                if user.is_none() && !global {
                    bail!("name a user or give --global");
                }
                if !clear && enable == disable {
                    bail!("give --enable or --disable");
                }
                let value = if clear { None } else { Some(enable) };
                let user = match user {
                    Some(u) => {
                        let Some(p) = normalize_principal(&u).filter(|p| !p.starts_with('@'))
                        else {
                            bail!("invalid user address {u:?}");
                        };
                        if store.get_user(&p).await?.is_none() {
                            bail!("unknown user {p}");
                        }
                        Some(p)
                    }
                    None => None,
                };
                store.set_chat_policy(user.as_deref(), value).await?;
                let who = user.as_deref().unwrap_or("global");
                let what = match value {
                    Some(true) => "enabled",
                    Some(false) => "disabled",
                    None => "cleared",
                };
                writeln!(out, "persistent chat {what} for {who}")?;
            }
            PolicyCommand::Show { user, json } => {
                let policy = store.chat_directory().await?.policy;
                match user {
                    Some(u) => {
                        let Some(p) = normalize_principal(&u).filter(|p| !p.starts_with('@'))
                        else {
                            bail!("invalid user address {u:?}");
                        };
                        let enabled = policy.enabled_for(&p);
                        let own = policy.users.get(&p).copied();
                        if json {
                            let v = json!({"user": p, "enabled": enabled, "user_setting": own, "global": policy.global});
                            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                        } else {
                            let from = if own.is_some() { "user" } else { "global" };
                            writeln!(
                                out,
                                "{p}: {} ({from} setting)",
                                if enabled { "enabled" } else { "disabled" }
                            )?;
                        }
                    }
                    None => {
                        let mut users: Vec<(&String, &bool)> = policy.users.iter().collect();
                        users.sort();
                        if json {
                            let map: serde_json::Map<String, Value> = users
                                .iter()
                                .map(|(u, e)| ((*u).clone(), Value::Bool(**e)))
                                .collect();
                            let v = json!({"global": policy.global, "users": map});
                            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                        } else {
                            writeln!(
                                out,
                                "global: {}",
                                if policy.global { "enabled" } else { "disabled" }
                            )?;
                            for (u, e) in users {
                                writeln!(out, "{u}: {}", if *e { "enabled" } else { "disabled" })?;
                            }
                        }
                    }
                }
            }
        },
        ChatCommand::Config { command } => match command {
            ConfigCommand::Show { json } => {
                let c = store.chat_directory().await?.config;
                if json {
                    let v = json!({
                        "default_history": c.default_history,
                        "max_message_bytes": c.max_message_bytes,
                        "participant_update_limit": c.participant_update_limit,
                        "max_file_size_kb": c.max_file_size_kb,
                    });
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else {
                    writeln!(out, "default history:          {}", c.default_history)?;
                    writeln!(out, "max message bytes:        {}", c.max_message_bytes)?;
                    writeln!(
                        out,
                        "participant update limit: {}",
                        c.participant_update_limit
                    )?;
                    writeln!(out, "max file size (KB):       {}", c.max_file_size_kb)?;
                }
            }
            ConfigCommand::Set {
                default_history,
                max_message_bytes,
                participant_update_limit,
                max_file_size_kb,
            } => {
                let old = store.chat_directory().await?.config;
                let c = ChatConfig {
                    default_history: default_history.unwrap_or(old.default_history),
                    max_message_bytes: max_message_bytes.unwrap_or(old.max_message_bytes),
                    participant_update_limit: participant_update_limit
                        .unwrap_or(old.participant_update_limit),
                    max_file_size_kb: max_file_size_kb.unwrap_or(old.max_file_size_kb),
                };
                store.set_chat_config(&c).await?;
                writeln!(out, "chat configuration updated")?;
            }
        },
        ChatCommand::Compliance { .. }
        | ChatCommand::Status { .. }
        | ChatCommand::Pool { .. }
        | ChatCommand::Export { .. }
        | ChatCommand::Import { .. } => {
            bail!("run by chat_cli::run")
        }
        ChatCommand::Message { command } => match command {
            MessageCommand::List { room, json } => {
                let (_, r) = room_of(store, &room).await?;
                let posts = store.chat_posts(&r.id).await?;
                if json {
                    let v: Vec<Value> = posts.iter().map(post_json).collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                } else if posts.is_empty() {
                    writeln!(out, "no messages")?;
                } else {
                    for p in &posts {
                        writeln!(
                            out,
                            "{}  {}  {}  {}  {}",
                            p.id,
                            rfc3339(p.ts_ms),
                            p.author,
                            p.state.as_str(),
                            p.text.replace('\n', " ")
                        )?;
                    }
                }
            }
            MessageCommand::Remove { id } => {
                store.remove_chat_post(id).await?;
                writeln!(out, "removed message {id}")?;
            }
            MessageCommand::Replace { id, text } => {
                store.replace_chat_post(id, text.as_deref()).await?;
                writeln!(out, "replaced message {id}")?;
            }
        },
        ChatCommand::Clear { room, before } => {
            let before = date(&before)?;
            let (_, r) = room_of(store, &room).await?;
            let n = store.clear_chat_room(&r.qualified_name(), before).await?;
            writeln!(out, "cleared {n} message(s) from {}", r.name)?;
        }
        ChatCommand::Search {
            as_user,
            text,
            author,
            room,
            since,
            until,
            limit,
            page,
            json,
        } => {
            let Some(user) = normalize_principal(&as_user).filter(|p| !p.starts_with('@')) else {
                bail!("invalid user address {as_user:?}");
            };
            if store.get_user(&user).await?.is_none() {
                bail!("unknown user {user}");
            }
            let req = SearchRequest {
                text,
                author,
                room,
                since,
                until,
                limit,
                page,
            };
            let hits = search(store, &user, &req).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&search_json(&hits, page))?
                )?;
            } else if hits.is_empty() {
                writeln!(out, "no results")?;
            } else {
                for h in &hits {
                    writeln!(
                        out,
                        "{}  {}  {}  {}  {}",
                        h.id,
                        h.ts,
                        h.room,
                        h.author,
                        h.text.replace('\n', " ")
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// What a history search asks (the CLI's options, the HTTP query's parameters).
pub(crate) struct SearchRequest {
    pub text: Option<String>,
    pub author: Option<String>,
    pub room: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: u32,
    pub page: u32,
}

/// One search result as the CLI and `GET /chat/search` show it.
pub(crate) struct SearchHit {
    pub id: i64,
    pub room: String,
    pub room_uri: Option<String>,
    pub author: String,
    /// RFC 3339.
    pub ts: String,
    pub text: String,
}

/// Searches the history of the rooms `user` (a normalized address) may read, newest
/// first: the one code path of `confab chat search` and `GET /chat/search`.
pub(crate) async fn search(
    store: &Store,
    user: &str,
    req: &SearchRequest,
) -> anyhow::Result<Vec<SearchHit>> {
    if req.limit == 0 || req.page == 0 {
        bail!("--limit and --page must be at least 1");
    }
    let dir = Directory::new(store.chat_directory().await?);
    let mut rooms = dir.readable_rooms(user);
    if let Some(name) = &req.room {
        let r = dir
            .room_by_name_or_uri(name)
            .with_context(|| format!("unknown room {name:?}"))?;
        rooms.retain(|id| *id == r.id);
    }
    let q = ChatSearch {
        rooms,
        text: req.text.clone(),
        author: req
            .author
            .as_deref()
            .map(|a| normalize_principal(a).with_context(|| format!("invalid author {a:?}")))
            .transpose()?,
        since_ms: req.since.as_deref().map(date).transpose()?,
        until_ms: req.until.as_deref().map(date).transpose()?,
        limit: req.limit,
        page: req.page,
    };
    let hits = store.search_chat(&q).await?;
    Ok(hits
        .into_iter()
        .map(|p| {
            let room = dir.room(&p.room_id);
            SearchHit {
                room: room.map_or(String::new(), |r| r.name.clone()),
                room_uri: room.map(|r| r.uri.clone()),
                ts: rfc3339(p.ts_ms),
                id: p.id,
                author: p.author,
                text: p.text,
            }
        })
        .collect())
}

/// The JSON document of a search's results.
pub(crate) fn search_json(hits: &[SearchHit], page: u32) -> Value {
    let v: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({
                "id": h.id,
                "room": h.room,
                "room_uri": h.room_uri,
                "author": h.author,
                "ts": h.ts,
                "text": h.text,
            })
        })
        .collect();
    json!({"results": v, "page": page})
}
