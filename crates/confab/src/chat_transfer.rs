//! `confab chat export FILE` / `confab chat import FILE`: categories, rooms (with
//! members, managers, presenters) and history carried between deployments (the
//! analog of Lync's Export-/Import-CsPersistentChatData). Format: one JSON document,
//! described in docs/persistent-chat.md ("Export and import").

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use confab_store::{
    ImportedPost, NewChatCategory, NewChatRoom, PostState, Privacy, RoomType, Store,
    normalize_principal,
};
use serde::{Deserialize, Serialize};

/// The format's name and version.
const FORMAT: &str = "confab-chat-export";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    version: u32,
    categories: Vec<Category>,
    rooms: Vec<Room>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Category {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    allowed_members: Vec<String>,
    #[serde(default)]
    denied_members: Vec<String>,
    #[serde(default)]
    creators: Vec<String>,
    #[serde(default)]
    file_upload: bool,
    #[serde(default = "yes")]
    chat_history: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Room {
    name: String,
    category: String,
    #[serde(default)]
    description: String,
    privacy: String,
    #[serde(rename = "type")]
    room_type: String,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    managers: Vec<String>,
    #[serde(default)]
    presenters: Vec<String>,
    #[serde(default)]
    posts: Vec<Post>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Post {
    author: String,
    /// Epoch milliseconds.
    ts: i64,
    text: String,
    original: String,
    state: String,
}

/// Writes every category, room and post of `store` to `file`.
pub async fn export(store: &Store, file: &Path) -> anyhow::Result<()> {
    let dir = store.chat_directory().await?;
    let cat_name = |id: &str| {
        dir.categories
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    };
    let mut rooms = Vec::new();
    let mut n_posts = 0;
    for r in &dir.rooms {
        let posts: Vec<Post> = store
            .chat_posts(&r.id)
            .await?
            .into_iter()
            .map(|p| Post {
                author: p.author,
                ts: p.ts_ms,
                text: p.text,
                original: p.original,
                state: p.state.as_str().to_owned(),
            })
            .collect();
        n_posts += posts.len();
        rooms.push(Room {
            name: r.name.clone(),
            category: cat_name(&r.category_id),
            description: r.description.clone(),
            privacy: r.privacy.as_str().to_owned(),
            room_type: r.room_type.as_str().to_owned(),
            disabled: r.disabled,
            members: r.members.clone(),
            managers: r.managers.clone(),
            presenters: r.presenters.clone(),
            posts,
        });
    }
    let doc = Document {
        format: FORMAT.to_owned(),
        version: VERSION,
        categories: dir
            .categories
            .iter()
            .map(|c| Category {
                name: c.name.clone(),
                description: c.description.clone(),
                allowed_members: c.allowed.clone(),
                denied_members: c.denied.clone(),
                creators: c.creators.clone(),
                file_upload: c.file_upload,
                chat_history: c.chat_history,
            })
            .collect(),
        rooms,
    };
    let text = serde_json::to_string_pretty(&doc)?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "exported {} categories, {} rooms, {n_posts} posts to {}",
        doc.categories.len(),
        doc.rooms.len(),
        file.display()
    );
    Ok(())
}

/// Normalizes a role list; every address must be an existing user.
async fn principals(store: &Store, what: &str, list: &[String]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for p in list {
        let Some(n) = normalize_principal(p) else {
            bail!("{what}: {p:?} is neither a SIP address nor @domain");
        };
        if !n.starts_with('@') && store.get_user(&n).await?.is_none() {
            bail!("{what}: unknown user {n}");
        }
        out.push(n);
    }
    Ok(out)
}

fn state(s: &str) -> Option<PostState> {
    match s {
        "active" => Some(PostState::Active),
        "removed" => Some(PostState::Removed),
        "replaced" => Some(PostState::Replaced),
        _ => None,
    }
}

/// Imports `file` into `store`: every check first (format, names new and unique,
/// categories known, users existing, values valid); on any error nothing is changed.
pub async fn import(store: &Store, domain: &str, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: Document = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a chat export", file.display()))?;
    if doc.format != FORMAT || doc.version != VERSION {
        bail!(
            "{}: format {:?} version {}, expected {FORMAT:?} version {VERSION}",
            file.display(),
            doc.format,
            doc.version
        );
    }
    let existing = store.chat_directory().await?;
    let mut cat_names = HashSet::new();
    let mut cats = Vec::new();
    for c in &doc.categories {
        let key = c.name.trim().to_lowercase();
        if key.is_empty() {
            bail!("a category has an empty name");
        }
        if !cat_names.insert(key.clone())
            || existing
                .categories
                .iter()
                .any(|e| e.name.to_lowercase() == key)
        {
            bail!(
                "category {:?} exists already (or twice in the file)",
                c.name
            );
        }
        let what = format!("category {:?}", c.name);
        cats.push(NewChatCategory {
            name: c.name.clone(),
            description: c.description.clone(),
            allowed: principals(store, &what, &c.allowed_members).await?,
            denied: principals(store, &what, &c.denied_members).await?,
            creators: principals(store, &what, &c.creators).await?,
            file_upload: c.file_upload,
            chat_history: c.chat_history,
            pool: String::new(),
        });
    }
    let mut room_names = HashSet::new();
    let mut rooms = Vec::new();
    for r in &doc.rooms {
        let key = r.name.trim().to_lowercase();
        if key.is_empty() {
            bail!("a room has an empty name");
        }
        if !room_names.insert(key.clone())
            || existing.rooms.iter().any(|e| e.name.to_lowercase() == key)
        {
            bail!("room {:?} exists already (or twice in the file)", r.name);
        }
        let ckey = r.category.to_lowercase();
        if !cat_names.contains(&ckey)
            && !existing
                .categories
                .iter()
                .any(|e| e.name.to_lowercase() == ckey)
        {
            bail!("room {:?}: unknown category {:?}", r.name, r.category);
        }
        let what = format!("room {:?}", r.name);
        let privacy = Privacy::parse(&r.privacy)
            .with_context(|| format!("{what}: invalid privacy {:?}", r.privacy))?;
        let room_type = RoomType::parse(&r.room_type)
            .with_context(|| format!("{what}: invalid type {:?}", r.room_type))?;
        let mut posts = Vec::new();
        for (i, p) in r.posts.iter().enumerate() {
            let Some(author) = normalize_principal(&p.author).filter(|a| !a.starts_with('@'))
            else {
                bail!("{what}: post {i}: invalid author {:?}", p.author);
            };
            let Some(st) = state(&p.state) else {
                bail!("{what}: post {i}: invalid state {:?}", p.state);
            };
            if p.ts < 0 {
                bail!("{what}: post {i}: negative time");
            }
            posts.push(ImportedPost {
                author,
                ts_ms: p.ts,
                text: p.text.clone(),
                original: p.original.clone(),
                state: st,
            });
        }
        rooms.push((
            NewChatRoom {
                name: r.name.clone(),
                pool: String::new(),
                category: r.category.clone(),
                description: r.description.clone(),
                privacy,
                room_type,
                disabled: r.disabled,
                members: principals(store, &what, &r.members).await?,
                managers: principals(store, &what, &r.managers).await?,
                presenters: principals(store, &what, &r.presenters).await?,
            },
            posts,
        ));
    }
    let mut n_posts = 0;
    for c in &cats {
        store.add_chat_category(domain, c).await?;
    }
    for (room, posts) in &rooms {
        let id = store.add_chat_room(domain, room).await?;
        n_posts += store.import_chat_posts(&id, posts).await?;
    }
    while store.chat_index_pending().await? >= 5_000 {}
    println!(
        "imported {} categories, {} rooms, {n_posts} posts",
        cats.len(),
        rooms.len()
    );
    Ok(())
}
