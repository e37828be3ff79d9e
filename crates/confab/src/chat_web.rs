//! Persistent Chat room management on the web port (issue 11): a page and a
//! JSON API under `/chat` where users (not only administrators) sign in with
//! their confab credentials, see the rooms they manage, create rooms in the
//! categories where they are creators, and change the rooms they manage.
//!
//! - Sessions, sign-in limits and CSRF tokens are [`crate::web_session`]'s (cookie
//!   `confab_chat`, path `/chat`); every answer but the sign-in page and the static
//!   files needs a session, and every change the session's `X-CSRF-Token`.
//! - Every operation goes through [`crate::chat_rooms`], the code path of
//!   `confab chat room ...`, with the signed-in user as the actor: Lync's rules
//!   are checked on every request against the store as it is now.
//! - Users are signed in against the front end's user store; rooms live in the
//!   chat store (the same database on Standard Edition).

// Handlers' helpers return the refusal as the finished answer (`Err(Response)`).
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use confab_chat::Directory;
use confab_store::{ChatRoom, ChatRoomUpdate, NewChatRoom, Privacy, RoomType, Store, StoreError};
use confab_web::http::PeerInfo;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

mod files;

pub use files::RoomPoster;

use crate::chat_rooms::{self, Actor, Refused};
use crate::config::WebConfig;
use crate::web_session::{
    Live, Sessions, api_error, body_json, field, html, json_response, no_store,
};

const SIGNIN_HTML: &str = include_str!("chat_web/signin.html");
const ROOMS_HTML: &str = include_str!("chat_web/rooms.html");
const ROOMS_JS: &str = include_str!("chat_web/rooms.js");
const SIGNIN_JS: &str = include_str!("chat_web/signin.js");
const CHAT_CSS: &str = include_str!("chat_web/chat.css");
/// The Control Panel's style sheet, shared.
const APP_CSS: &str = include_str!("control_panel/assets/app.css");
/// Principals in one list of a request at most.
const MAX_LIST: usize = 1000;

/// The room pages' state.
pub struct ChatWeb {
    /// Persistent Chat tables.
    chat: Store,
    /// Users (the front end's database).
    users: Store,
    /// Domain of new room URIs.
    domain: String,
    sessions: Sessions,
    files: files::Files,
}

impl ChatWeb {
    /// `file_store` is the directory of file posts; `poster` hands committed file
    /// posts to the running chat service (none when it runs elsewhere).
    pub fn new(
        users: Store,
        chat: Store,
        domain: &str,
        web: &WebConfig,
        file_store: std::path::PathBuf,
        poster: Option<Box<dyn RoomPoster>>,
    ) -> ChatWeb {
        ChatWeb {
            sessions: Sessions::new(users.clone(), "confab_chat", "/chat", web),
            chat,
            users,
            domain: domain.to_owned(),
            files: files::Files::new(file_store, poster, web.tls),
        }
    }
}

type Shared = Arc<ChatWeb>;

pub fn router(web: ChatWeb) -> Router {
    Router::new()
        .route("/chat/rooms", get(rooms_page))
        .route("/chat/signin", get(signin_page))
        .route("/chat/static/{file}", get(static_file))
        .route("/chat/api/signin", post(api_signin))
        .route("/chat/api/signout", post(api_signout))
        .route("/chat/api/session", get(api_session))
        .route("/chat/api/rooms", get(api_rooms).post(api_add_room))
        .route("/chat/api/rooms/update", post(api_update_room))
        .route("/chat/api/rooms/disable", post(api_disable))
        .route("/chat/api/rooms/enable", post(api_enable))
        .route(
            "/chat/api/files",
            get(files::api_list).post(files::api_begin),
        )
        .route("/chat/api/files/{upload}", put(files::api_chunk))
        .route("/chat/api/files/{upload}/commit", post(files::api_commit))
        .route("/chat/files/{file}", get(files::download))
        .route(
            "/chat/api/{*rest}",
            get(api_unknown)
                .post(api_unknown_post)
                .put(api_unknown_post),
        )
        .with_state(Arc::new(web))
}

/// Why a request is not served.
enum Refusal {
    Unauthenticated,
    Csrf,
    Internal,
}

fn api_refusal(r: Refusal) -> Response {
    match r {
        Refusal::Unauthenticated => api_error(
            StatusCode::UNAUTHORIZED,
            "sign in first (no session, or it expired)",
        ),
        Refusal::Csrf => api_error(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (X-CSRF-Token): reload the page",
        ),
        Refusal::Internal => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

impl ChatWeb {
    /// The session of an enabled user, and for a change its CSRF token.
    async fn authorize(&self, headers: &HeaderMap, changing: bool) -> Result<Live, Refusal> {
        let live = match self.sessions.live_user(headers).await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Refusal::Unauthenticated),
            Err(e) => {
                warn!(error = %e, "chat rooms: reading the user failed");
                return Err(Refusal::Internal);
            }
        };
        if changing && !Sessions::csrf_ok(headers, &live) {
            return Err(Refusal::Csrf);
        }
        Ok(live)
    }

    async fn changing(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(Live, Map<String, Value>), Response> {
        let live = self.authorize(headers, true).await.map_err(api_refusal)?;
        let m = body_json(body)?;
        Ok((live, m))
    }
}

/// An operation's error as the API answers it.
fn op_error(e: &anyhow::Error) -> Response {
    if let Some(r) = e.downcast_ref::<Refused>() {
        return match r {
            Refused::Forbidden(why) => api_error(StatusCode::FORBIDDEN, why.clone()),
            Refused::NotFound(why) => api_error(StatusCode::NOT_FOUND, why.clone()),
        };
    }
    match e.downcast_ref::<StoreError>() {
        Some(StoreError::Chat(why)) if why.contains("already exists") => {
            api_error(StatusCode::CONFLICT, why.clone())
        }
        Some(StoreError::Database(_) | StoreError::Migrate(_)) => {
            warn!(error = %e, "chat rooms: store error");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
        _ => api_error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// An optional text field.
fn opt_text(m: &Map<String, Value>, name: &str) -> Result<Option<String>, Response> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("{name} must be text"),
        )),
    }
}

/// A list of principals: an array of strings or one comma-separated string.
fn list(m: &Map<String, Value>, name: &str) -> Result<Vec<String>, Response> {
    let bad = || {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("{name} must be a list of SIP addresses (or one comma-separated text)"),
        )
    };
    let out: Vec<String> = match m.get(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    if out.len() > MAX_LIST {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!("{name}: at most {MAX_LIST} entries"),
        ));
    }
    Ok(out)
}

fn privacy(s: &str) -> Result<Privacy, Response> {
    Privacy::parse(s).ok_or_else(|| {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("invalid privacy {s:?} (open, closed or secret)"),
        )
    })
}

fn room_type(s: &str) -> Result<RoomType, Response> {
    RoomType::parse(s).ok_or_else(|| {
        api_error(
            StatusCode::BAD_REQUEST,
            format!("invalid room type {s:?} (normal or auditorium)"),
        )
    })
}

fn room_json(dir: &Directory, r: &ChatRoom) -> Value {
    json!({
        // `POOL\\NAME` for a room of another chat pool than the default one.
        "name": r.qualified_name(),
        "uri": r.uri,
        "pool": r.pool,
        "category": dir.category(&r.category_id).map(|c| c.qualified_name()),
        "privacy": r.privacy.as_str(),
        "type": r.room_type.as_str(),
        "disabled": r.disabled,
        "description": r.description,
        "members": r.members,
        "managers": r.managers,
        "presenters": r.presenters,
    })
}

// ---- pages ----

async fn signin_page() -> Response {
    html(SIGNIN_HTML.to_owned())
}

async fn rooms_page(State(w): State<Shared>, headers: HeaderMap) -> Response {
    match w.authorize(&headers, false).await {
        Ok(_) => html(ROOMS_HTML.to_owned()),
        Err(Refusal::Unauthenticated) => no_store(
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/chat/signin")],
                "sign in first\n",
            )
                .into_response(),
        ),
        Err(_) => no_store((StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()),
    }
}

async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "chat.css" => (CHAT_CSS, "text/css; charset=utf-8"),
        "rooms.js" => (ROOMS_JS, "text/javascript; charset=utf-8"),
        "signin.js" => (SIGNIN_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

// ---- API ----

async fn api_signin(
    State(w): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    body: Bytes,
) -> Response {
    let ip = peer.ip();
    let address =
        match crate::web_session::check_sign_in(&w.sessions, ip, &body, "chat rooms").await {
            Ok(a) => a,
            Err(r) => return r,
        };
    match w.chat.chat_directory().await {
        Ok(d) if d.policy.enabled_for(&address) => {}
        Ok(_) => {
            return api_error(
                StatusCode::FORBIDDEN,
                format!(
                    "Persistent Chat is not enabled for {address}: an administrator enables it with `confab chat policy set {address} --enable`"
                ),
            );
        }
        Err(e) => {
            warn!(error = %e, "chat rooms sign-in: reading the policy failed");
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    let Some((cookie, csrf)) = w.sessions.open(&address) else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many sessions; try again later",
        );
    };
    info!(%address, %ip, "chat rooms sign-in");
    let mut r = json_response(StatusCode::OK, json!({ "address": address, "csrf": csrf }));
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

async fn api_signout(State(w): State<Shared>, headers: HeaderMap) -> Response {
    let live = match w.authorize(&headers, true).await {
        Ok(l) => l,
        Err(r) => return api_refusal(r),
    };
    w.sessions.drop_session(&live.key);
    let mut r = json_response(StatusCode::OK, json!({ "signed_out": true }));
    if let Some(v) = w.sessions.clear_cookie() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn api_session(State(w): State<Shared>, headers: HeaderMap) -> Response {
    match w.authorize(&headers, false).await {
        Ok(l) => json_response(
            StatusCode::OK,
            json!({ "address": l.address, "csrf": l.csrf }),
        ),
        Err(r) => api_refusal(r),
    }
}

/// The rooms the user manages and the categories they may create rooms in.
async fn api_rooms(State(w): State<Shared>, headers: HeaderMap) -> Response {
    let live = match w.authorize(&headers, false).await {
        Ok(l) => l,
        Err(r) => return api_refusal(r),
    };
    let dir = match w.chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(&e.into()),
    };
    let user = live.address.as_str();
    if !dir.enabled_for(user) {
        return api_error(
            StatusCode::FORBIDDEN,
            format!("Persistent Chat is not enabled for {user}"),
        );
    }
    let categories: Vec<Value> = chat_rooms::creator_categories(&dir, user)
        .iter()
        .map(|c| json!({ "name": c.qualified_name(), "description": c.description, "file_upload": c.file_upload }))
        .collect();
    // Rooms the user may post files in (the upload form).
    let file_rooms: Vec<Value> = dir
        .data
        .rooms
        .iter()
        .filter(|r| files::upload_refusal(&dir, &r.uri, user).is_ok())
        .map(|r| json!({ "name": r.qualified_name(), "uri": r.uri }))
        .collect();
    let rooms: Vec<Value> = chat_rooms::managed_rooms(&dir, user)
        .iter()
        .map(|r| room_json(&dir, r))
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "address": user, "categories": categories, "rooms": rooms, "file_rooms": file_rooms }),
    )
}

/// The room as it is stored now.
async fn room_answer(w: &ChatWeb, name: &str) -> Response {
    match w.chat.chat_directory().await {
        Ok(d) => {
            let dir = Directory::new(d);
            match dir.room_by_name_or_uri(name) {
                Some(r) => json_response(StatusCode::OK, room_json(&dir, r)),
                None => api_error(StatusCode::NOT_FOUND, format!("unknown room {name:?}")),
            }
        }
        Err(e) => op_error(&e.into()),
    }
}

async fn api_add_room(State(w): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (live, m) = match w.changing(&headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let new = (|| -> Result<NewChatRoom, Response> {
        Ok(NewChatRoom {
            name: field(&m, "name")?.to_owned(),
            // The category's pool (chat_rooms::add_room).
            pool: String::new(),
            category: field(&m, "category")?.to_owned(),
            description: opt_text(&m, "description")?.unwrap_or_default(),
            privacy: privacy(opt_text(&m, "privacy")?.as_deref().unwrap_or("closed"))?,
            room_type: room_type(opt_text(&m, "type")?.as_deref().unwrap_or("normal"))?,
            disabled: false,
            members: list(&m, "members")?,
            managers: list(&m, "managers")?,
            presenters: list(&m, "presenters")?,
        })
    })();
    let new = match new {
        Ok(n) => n,
        Err(r) => return r,
    };
    let name = new.name.trim().to_owned();
    let actor = Actor::User(&live.address);
    match chat_rooms::add_room(&w.users, &w.chat, &w.domain, actor, new).await {
        Ok(_) => {
            info!(user = %live.address, room = %name, "room created on the web");
            room_answer(&w, &name).await
        }
        Err(e) => op_error(&e),
    }
}

async fn api_update_room(State(w): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (live, m) = match w.changing(&headers, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let parsed = (|| -> Result<(String, ChatRoomUpdate), Response> {
        let room = field(&m, "room")?.to_owned();
        let u = ChatRoomUpdate {
            rename: opt_text(&m, "rename")?.filter(|n| !n.trim().is_empty()),
            description: opt_text(&m, "description")?,
            category: opt_text(&m, "category")?.filter(|c| !c.trim().is_empty()),
            privacy: opt_text(&m, "privacy")?
                .as_deref()
                .map(privacy)
                .transpose()?,
            room_type: opt_text(&m, "type")?
                .as_deref()
                .map(room_type)
                .transpose()?,
            disabled: None,
            add_members: list(&m, "add_members")?,
            remove_members: list(&m, "remove_members")?,
            add_managers: list(&m, "add_managers")?,
            remove_managers: list(&m, "remove_managers")?,
            add_presenters: list(&m, "add_presenters")?,
            remove_presenters: list(&m, "remove_presenters")?,
        };
        Ok((room, u))
    })();
    let (room, u) = match parsed {
        Ok(x) => x,
        Err(r) => return r,
    };
    let actor = Actor::User(&live.address);
    match chat_rooms::update_room(&w.users, &w.chat, actor, &room, u).await {
        Ok(name) => {
            info!(user = %live.address, room = %name, "room changed on the web");
            room_answer(&w, &name).await
        }
        Err(e) => op_error(&e),
    }
}

async fn set_disabled(w: &ChatWeb, headers: &HeaderMap, body: &Bytes, disabled: bool) -> Response {
    let (live, m) = match w.changing(headers, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let room = match field(&m, "room") {
        Ok(r) => r,
        Err(r) => return r,
    };
    match chat_rooms::set_disabled(&w.chat, Actor::User(&live.address), room, disabled).await {
        Ok(name) => {
            info!(user = %live.address, room = %name, disabled, "room disabled/enabled on the web");
            room_answer(w, &name).await
        }
        Err(e) => op_error(&e),
    }
}

async fn api_disable(State(w): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    set_disabled(&w, &headers, &body, true).await
}

async fn api_enable(State(w): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    set_disabled(&w, &headers, &body, false).await
}

async fn api_unknown(State(w): State<Shared>, headers: HeaderMap) -> Response {
    match w.authorize(&headers, false).await {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "no such API"),
        Err(r) => api_refusal(r),
    }
}

async fn api_unknown_post(State(w): State<Shared>, headers: HeaderMap) -> Response {
    match w.authorize(&headers, true).await {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "no such API"),
        Err(r) => api_refusal(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_arrays_or_comma_separated_text() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"a":["x@example.com","y@example.com"],"b":" x@example.com, ,y@example.com","c":7,"d":[1]}"#,
        )
        .unwrap_or_default();
        let want = vec!["x@example.com".to_owned(), "y@example.com".to_owned()];
        assert_eq!(list(&m, "a").ok(), Some(want.clone()));
        assert_eq!(list(&m, "b").ok(), Some(want));
        assert_eq!(list(&m, "none").ok(), Some(vec![]));
        assert!(list(&m, "c").is_err());
        assert!(list(&m, "d").is_err());
    }
}
