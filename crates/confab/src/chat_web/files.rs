//! File posts (issue 11): upload in chunks, download streamed.
//!
//! ```text
//! POST /chat/api/files            {room, name, size}  -> {upload, chunk_size}
//! PUT  /chat/api/files/{upload}?offset=N   (body: the next chunk, at most chunk_size)
//! POST /chat/api/files/{upload}/commit     -> {file, post, url}
//! GET  /chat/files/{file}                  (the bytes, streamed)
//! ```
//!
//! - Only a user who may post in the room (a member of a Closed or Secret room,
//!   anyone the category allows in an Open one, presenters in an auditorium), only
//!   where the room's category allows file upload, at most `MaxFileSizeKB`
//!   (`confab chat config set --max-file-size-kb`); checked at the start and again
//!   at the commit.
//! - The chunks go to `FILE_STORE/.upload-<id>.part`; the commit syncs it, renames
//!   it to `FILE_STORE/<file id>` and then stores the post, the file's row and the
//!   compliance events in one transaction. An interrupted upload leaves only a
//!   `.part` file (removed when its upload is abandoned, and at start-up); a file
//!   without its row is never served.
//! - The committed post (the file's name, size and link) reaches the room's
//!   joined members through the running chat service ([`RoomPoster`]).
//! - Downloads need a session and the right to read the room.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_chat::Directory;
use confab_store::{ChatPost, NewChatFile, PostState};
use parking_lot::Mutex;
use serde_json::json;
use sha2::Digest as _;
use tokio::io::AsyncWriteExt as _;
use tracing::{info, warn};

use super::{Refusal, Shared, api_refusal, op_error};
use crate::web_session::{api_error, body_json, field, json_response, no_store};

/// Largest chunk accepted by one PUT.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// Uploads open at once, per user and in all.
const MAX_UPLOADS_PER_USER: usize = 4;
const MAX_UPLOADS: usize = 64;
/// An upload without a chunk for this long is abandoned.
const UPLOAD_IDLE: Duration = Duration::from_secs(600);

/// Hands a stored post to the running chat service, which sends it to the
/// room's joined members.
pub trait RoomPoster: Send + Sync {
    /// False when it could not be queued (the post stays in the history).
    fn posted(&self, post: ChatPost) -> bool;
}

impl RoomPoster for confab_chat::service::PostSender {
    fn posted(&self, post: ChatPost) -> bool {
        self.deliver(post)
    }
}

struct Upload {
    owner: String,
    room_id: String,
    name: String,
    size: u64,
    received: u64,
    hasher: sha2::Sha256,
    temp: PathBuf,
    last: Instant,
}

/// Removes a `.part` file unless disarmed (an upload taken out of the table
/// whose request was dropped half-way).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The file store and the uploads under way.
pub struct Files {
    dir: PathBuf,
    uploads: Mutex<HashMap<String, Upload>>,
    poster: Option<Box<dyn RoomPoster>>,
    /// `https` or `http`: the scheme of the links in file posts.
    scheme: &'static str,
}

impl Files {
    /// `dir` is the file store (created when missing; `.part` files of uploads
    /// cut short by a restart are removed).
    pub fn new(dir: PathBuf, poster: Option<Box<dyn RoomPoster>>, tls: bool) -> Files {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".upload-") && name.ends_with(".part") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Files {
            dir,
            uploads: Mutex::new(HashMap::new()),
            poster,
            scheme: if tls { "https" } else { "http" },
        }
    }

    /// Drops abandoned uploads (and their `.part` files).
    fn sweep(&self, now: Instant) {
        let mut gone = Vec::new();
        self.uploads.lock().retain(|_, u| {
            let keep = now.duration_since(u.last) <= UPLOAD_IDLE;
            if !keep {
                gone.push(u.temp.clone());
            }
            keep
        });
        for p in gone {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A random id of 32 hex digits (uploads, stored files).
fn new_id() -> String {
    use rand::Rng as _;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn io_error(e: &std::io::Error, what: &str) -> Response {
    warn!(error = %e, "file post: {what}");
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the file store failed ({what})"),
    )
}

/// A file name as given: 1..=255 characters, no control characters or slashes.
fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty()
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        && name != "."
        && name != "..")
        .then(|| name.to_owned())
}

/// Why `user` may not put a file into `room` now, as the API answers it.
pub(super) fn upload_refusal(
    dir: &Directory,
    room: &str,
    user: &str,
) -> Result<(String, u64), Response> {
    if !dir.enabled_for(user) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!("Persistent Chat is not enabled for {user}"),
        ));
    }
    let unknown = || api_error(StatusCode::NOT_FOUND, format!("unknown room {room:?}"));
    let r = dir.room_by_name_or_uri(room).ok_or_else(unknown)?;
    if !dir.may_find(r, user) && !Directory::has_role(r, user) {
        return Err(unknown());
    }
    if let Some(why) = dir.post_refusal(r, user) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!("you may not post files in {:?}: {why}", r.name),
        ));
    }
    let cat = dir.category(&r.category_id);
    if !cat.is_some_and(|c| c.file_upload) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            format!(
                "the category {:?} of the room {:?} does not allow file uploads",
                cat.map_or("", |c| c.name.as_str()),
                r.name
            ),
        ));
    }
    let max_kb = u64::from(dir.data.config.max_file_size_kb);
    Ok((r.id.clone(), max_kb))
}

fn too_big(max_kb: u64) -> Response {
    api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the file is larger than the largest file allowed, MaxFileSizeKB = {max_kb} KB"),
    )
}

/// `GET /chat/api/files?room=URI`: the files posted in a room the caller may
/// read, newest first, with their download links.
pub async fn api_list(
    State(w): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let live = match w.authorize(&headers, false).await {
        Ok(l) => l,
        Err(r) => return api_refusal(r),
    };
    let Some(room) = q.get("room").map(|r| r.trim()).filter(|r| !r.is_empty()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "room (the room's name or ma-chan:// address) is missing",
        );
    };
    let dir = match w.chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(&e.into()),
    };
    let user = live.address.as_str();
    let unknown = || api_error(StatusCode::NOT_FOUND, format!("unknown room {room:?}"));
    let Some(r) = dir.room_by_name_or_uri(room) else {
        return unknown();
    };
    if !dir.enabled_for(user) || !dir.may_read(r, user) {
        if dir.may_find(r, user) {
            return api_error(
                StatusCode::FORBIDDEN,
                format!("you may not read the room {:?}", r.name),
            );
        }
        return unknown();
    }
    let files = match w.chat.chat_room_files(&r.id).await {
        Ok(f) => f,
        Err(e) => return op_error(&e.into()),
    };
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "name": f.name,
                "size": f.size,
                "author": f.author,
                "sha256": f.sha256,
                "ts": f.ts_ms,
                "url": format!("/chat/files/{}", f.id),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "room": r.uri, "name": r.qualified_name(), "files": files }),
    )
}

/// `POST /chat/api/files`: starts an upload.
pub async fn api_begin(State(w): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (live, m) = match w.changing(&headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (room, name) = match (field(&m, "room"), field(&m, "name")) {
        (Ok(r), Ok(n)) => (r, n),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let Some(name) = valid_name(name) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "the file name must have 1 to 255 characters, without slashes or control characters",
        );
    };
    let Some(size) = m.get("size").and_then(serde_json::Value::as_u64) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "size (the file's length in bytes) is missing",
        );
    };
    let dir = match w.chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(&e.into()),
    };
    let (room_id, max_kb) = match upload_refusal(&dir, room, &live.address) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if size > max_kb.saturating_mul(1024) {
        return too_big(max_kb);
    }
    let files = &w.files;
    let now = Instant::now();
    files.sweep(now);
    {
        let uploads = files.uploads.lock();
        if uploads.len() >= MAX_UPLOADS
            || uploads.values().filter(|u| u.owner == live.address).count() >= MAX_UPLOADS_PER_USER
        {
            return api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many uploads under way: finish one first",
            );
        }
    }
    if let Err(e) = tokio::fs::create_dir_all(&files.dir).await {
        return io_error(&e, "creating the file store");
    }
    let id = new_id();
    let temp = files.dir.join(format!(".upload-{id}.part"));
    if let Err(e) = tokio::fs::File::create(&temp).await {
        return io_error(&e, "creating the upload");
    }
    files.uploads.lock().insert(
        id.clone(),
        Upload {
            owner: live.address.clone(),
            room_id,
            name,
            size,
            received: 0,
            hasher: sha2::Sha256::new(),
            temp,
            last: now,
        },
    );
    json_response(
        StatusCode::OK,
        json!({ "upload": id, "chunk_size": CHUNK_SIZE, "size": size }),
    )
}

/// Takes the caller's upload out of the table (it is put back when the request
/// ends well).
fn take(w: &Shared, id: &str, owner: &str) -> Result<(Upload, TempGuard), Response> {
    let mut uploads = w.files.uploads.lock();
    match uploads.get(id) {
        Some(u) if u.owner == owner => {}
        _ => {
            return Err(api_error(
                StatusCode::NOT_FOUND,
                "no such upload (it was finished, abandoned, or is being written by another request)",
            ));
        }
    }
    let u = uploads
        .remove(id)
        .ok_or_else(|| api_error(StatusCode::NOT_FOUND, "no such upload"))?;
    let guard = TempGuard(Some(u.temp.clone()));
    Ok((u, guard))
}

fn put_back(w: &Shared, id: String, mut u: Upload, mut guard: TempGuard) {
    guard.0 = None;
    u.last = Instant::now();
    w.files.uploads.lock().insert(id, u);
}

/// `PUT /chat/api/files/{upload}?offset=N`: the next chunk.
pub async fn api_chunk(
    State(w): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let live = match w.authorize(&headers, true).await {
        Ok(l) => l,
        Err(r) => return api_refusal(r),
    };
    let Some(offset) = q.get("offset").and_then(|o| o.parse::<u64>().ok()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "offset (where the chunk starts, in bytes) is missing",
        );
    };
    if body.len() > CHUNK_SIZE {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a chunk has at most {CHUNK_SIZE} bytes"),
        );
    }
    let (mut u, guard) = match take(&w, &id, &live.address) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if offset != u.received {
        let expected = u.received;
        put_back(&w, id, u, guard);
        return api_error(
            StatusCode::CONFLICT,
            format!("the next chunk starts at offset {expected}"),
        );
    }
    let len = body.len() as u64;
    if u.received + len > u.size {
        let size = u.size;
        put_back(&w, id, u, guard);
        return api_error(
            StatusCode::BAD_REQUEST,
            format!("more bytes than the {size} announced"),
        );
    }
    let write = async {
        let mut f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&u.temp)
            .await?;
        f.write_all(&body).await?;
        f.flush().await
    };
    if let Err(e) = write.await {
        // The guard removes the partial file: the upload is over.
        return io_error(&e, "writing a chunk");
    }
    u.hasher.update(&body);
    u.received += len;
    let received = u.received;
    put_back(&w, id, u, guard);
    json_response(StatusCode::OK, json!({ "received": received }))
}

/// The host the request was sent to (for the link in the post), if sane.
fn host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
}

fn human_size(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// `POST /chat/api/files/{upload}/commit`: the file becomes visible as a post.
pub async fn api_commit(
    State(w): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let live = match w.authorize(&headers, true).await {
        Ok(l) => l,
        Err(r) => return api_refusal(r),
    };
    if !body.is_empty()
        && let Err(r) = body_json(&body)
    {
        return r;
    }
    let (u, guard) = match take(&w, &id, &live.address) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if u.received != u.size {
        let (received, size) = (u.received, u.size);
        put_back(&w, id, u, guard);
        return api_error(
            StatusCode::BAD_REQUEST,
            format!("only {received} of {size} bytes were sent"),
        );
    }
    // The rules again: the room, the membership or the category may have changed.
    let dir = match w.chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(&e.into()),
    };
    let room = dir
        .room(&u.room_id)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let max_kb = match upload_refusal(&dir, &room, &live.address) {
        Ok((_, max_kb)) => max_kb,
        Err(r) => return r,
    };
    if u.size > max_kb.saturating_mul(1024) {
        return too_big(max_kb);
    }
    let sync = async {
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&u.temp)
            .await?;
        f.sync_all().await
    };
    if let Err(e) = sync.await {
        return io_error(&e, "syncing the upload");
    }
    let file_id = new_id();
    let path = w.files.dir.join(&file_id);
    if let Err(e) = tokio::fs::rename(&u.temp, &path).await {
        return io_error(&e, "storing the file");
    }
    drop(guard);
    let url = format!(
        "{}://{}/chat/files/{file_id}",
        w.files.scheme,
        host(&headers).unwrap_or("localhost")
    );
    let text = format!("📎 {} ({}): {url}", u.name, human_size(u.size));
    let file = NewChatFile {
        id: file_id.clone(),
        room_id: u.room_id.clone(),
        author: live.address.clone(),
        name: u.name.clone(),
        size: i64::try_from(u.size).unwrap_or(i64::MAX),
        sha256: hex::encode(u.hasher.finalize()),
    };
    let ts_ms = wall_ms();
    let post_id = match w.chat.insert_chat_file_post(&file, ts_ms, &text).await {
        Ok(id) => id,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return op_error(&e.into());
        }
    };
    info!(user = %live.address, room = %room, file = %file_id, size = u.size, "file posted");
    if let Some(p) = &w.files.poster {
        let delivered = p.posted(ChatPost {
            id: post_id,
            room_id: u.room_id.clone(),
            author: live.address.clone(),
            ts_ms,
            text: text.clone(),
            original: text.clone(),
            state: PostState::Active,
        });
        if !delivered {
            warn!(
                post = post_id,
                "the chat service did not take the file post"
            );
        }
    }
    json_response(
        StatusCode::OK,
        json!({ "file": file_id, "post": post_id, "url": url, "text": text, "sha256": file.sha256 }),
    )
}

/// A `Content-Disposition` for `name`: an ASCII fallback and the UTF-8 name.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// `GET /chat/files/{file}`: the bytes, streamed, for users who may read the room.
pub async fn download(
    State(w): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let live = match w.authorize(&headers, false).await {
        Ok(l) => l,
        Err(Refusal::Unauthenticated) => {
            return no_store(
                (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, "/chat/signin")],
                    "sign in first\n",
                )
                    .into_response(),
            );
        }
        Err(r) => return api_refusal(r),
    };
    let not_found = || api_error(StatusCode::NOT_FOUND, "no such file");
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return not_found();
    }
    let file = match w.chat.chat_file(&id).await {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(),
        Err(e) => return op_error(&e.into()),
    };
    let dir = match w.chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(&e.into()),
    };
    let Some(room) = dir.room(&file.room_id) else {
        return not_found();
    };
    if !dir.enabled_for(&live.address) {
        return api_error(
            StatusCode::FORBIDDEN,
            format!("Persistent Chat is not enabled for {}", live.address),
        );
    }
    if let Some(why) = dir.join_refusal(room, &live.address) {
        if !dir.may_find(room, &live.address) {
            return not_found();
        }
        return api_error(
            StatusCode::FORBIDDEN,
            format!("you may not read the room {:?}: {why}", room.name),
        );
    }
    let path: PathBuf = FsPath::new(&w.files.dir).join(&file.id);
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return io_error(&e, "opening a stored file"),
    };
    if let Err(e) = w
        .chat
        .record_chat_file_download(&file, &live.address, wall_ms())
        .await
    {
        warn!(error = %e, "recording a file download failed");
        return api_error(StatusCode::INTERNAL_SERVER_ERROR, "database error");
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 64 * 1024);
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_DISPOSITION, disposition(&file.name));
    if let Ok(v) = HeaderValue::from_str(&file.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    no_store(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_and_dispositions() {
        assert_eq!(valid_name(" a b.txt ").as_deref(), Some("a b.txt"));
        assert!(valid_name("../x").is_none());
        assert!(valid_name("a\nb").is_none());
        assert!(valid_name("").is_none());
        assert!(valid_name("..").is_none());
        let d = disposition("rapport é\".pdf");
        let d = d.to_str().unwrap_or("");
        assert!(
            d.starts_with("attachment; filename=\"rapport __.pdf\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''rapport%20%C3%A9%22.pdf"),
            "{d}"
        );
    }
}
