//! The Control Panel (issue 17): administrators sign in with their confab
//! credentials and manage users, see the topology and the live status.
//!
//! Served on the web port (HTTPS by default) under `/admin`. Pages and scripts
//! are compiled into the binary (`assets/`, no build step). Security:
//! - sign-in, sessions (cookie `confab_cp`, path `/admin`) and CSRF tokens are
//!   [`crate::web_session`]'s (shared with the chat room pages);
//! - only users with a role ([`crate::admin::Role`]) get a session; the role is
//!   read again on every request, so `confab user set --no-role` or disabling the
//!   user ends access at once;
//! - every change goes through [`crate::admin`] (the CLI's code path) and is
//!   written to the audit log with the administrator's address and client address;
//! - the voice and Persistent Chat pages ([`settings`]) run the `confab voice` and
//!   `confab chat` commands themselves (CsAdministrator changes, every role reads).
//!
//! Every page and API answer except the sign-in page and the static files
//! requires a session.

// Handlers' helpers return the refusal as the finished answer (`Err(Response)`);
// it is built once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

mod settings;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confab_frontend::Metrics;
use confab_store::{Address, Store, StoreError};
use confab_transport::Connections;
use confab_web::http::PeerInfo;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::admin::{self, Actor, Permission, Role};
use crate::config::WebConfig;
use crate::web_session::{Sessions, api_error, body_json, field, html, json_response, no_store};

/// Users listed at most per answer.
const MAX_LISTED: usize = 500;

const SIGNIN_HTML: &str = include_str!("assets/signin.html");
const PANEL_HTML: &str = include_str!("assets/panel.html");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const SIGNIN_JS: &str = include_str!("assets/signin.js");

/// The Control Panel's state.
pub struct Panel {
    store: Store,
    metrics: Arc<Metrics>,
    conns: Arc<Connections>,
    data_dir: PathBuf,
    sessions: Sessions,
    /// Domain of new chat room and category URIs (`confab chat`'s default).
    domain: String,
    /// A chat server is live while its heartbeat is younger than this.
    chat_lease_ms: u64,
    /// The chat file store (a room removed here loses its files, as with the CLI).
    chat_files: PathBuf,
}

impl Panel {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        conns: Arc<Connections>,
        data_dir: PathBuf,
        web: &WebConfig,
        domain: &str,
        chat_lease_ms: u64,
    ) -> Panel {
        Panel {
            sessions: Sessions::new(store.clone(), "confab_cp", "/admin", web),
            chat_files: data_dir.join("files"),
            store,
            metrics,
            conns,
            data_dir,
            domain: domain.to_owned(),
            chat_lease_ms,
        }
    }

    /// Where the chat service keeps posted files (`[chat] file_store`; default
    /// DATA/files).
    pub fn chat_files(mut self, dir: PathBuf) -> Panel {
        self.chat_files = dir;
        self
    }
}

type Shared = Arc<Panel>;

pub fn router(panel: Panel) -> Router {
    Router::new()
        .route("/admin", get(root))
        .route("/admin/", get(root))
        .route("/admin/signin", get(signin_page))
        .route("/admin/static/{file}", get(static_file))
        .route("/admin/users", get(users_page))
        .route("/admin/topology", get(topology_page))
        .route("/admin/status", get(status_page))
        .route("/admin/audit", get(audit_page))
        .route("/admin/voice", get(voice_page))
        .route("/admin/chat", get(chat_page))
        .route("/admin/api/signin", post(api_signin))
        .route("/admin/api/signout", post(api_signout))
        .route("/admin/api/session", get(api_session))
        .route("/admin/api/users", get(api_users).post(api_add_user))
        .route("/admin/api/users/disable", post(api_disable))
        .route("/admin/api/users/enable", post(api_enable))
        .route("/admin/api/users/password", post(api_password))
        .route("/admin/api/contacts", get(api_contacts))
        .route("/admin/api/topology", get(api_topology))
        .route("/admin/api/status", get(api_status))
        .route("/admin/api/audit", get(api_audit))
        .route(
            "/admin/api/voice",
            get(settings::api_voice).post(settings::api_voice_change),
        )
        .route("/admin/api/voice/test", get(settings::api_voice_test))
        .route("/admin/api/voice/user", post(settings::api_voice_user))
        .route(
            "/admin/api/chat",
            get(settings::api_chat).post(settings::api_chat_change),
        )
        .route(
            "/admin/api/{*rest}",
            get(api_unknown).post(api_unknown_post),
        )
        .with_state(Arc::new(panel))
}

// ---- sessions and refusals ----

/// Why a request is not served.
enum Refusal {
    /// No session, or it expired: sign in.
    Unauthenticated,
    /// Signed in, but the role does not allow it (or there is none any more).
    Forbidden(String),
    /// A state-changing request without the session's CSRF token.
    Csrf,
    /// The store failed (logged).
    Internal,
}

struct Authorized {
    address: String,
    role: Role,
    csrf: String,
    peer: IpAddr,
}

impl Authorized {
    fn actor(&self) -> Actor {
        Actor {
            who: self.address.clone(),
            from: self.peer.to_string(),
        }
    }
}

impl Panel {
    /// Checks the session, the user's role (read now), `perm`, and for a change the
    /// CSRF token.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        perm: Option<Permission>,
        changing: bool,
    ) -> Result<Authorized, Refusal> {
        let live = match self.sessions.live_user(headers).await {
            Ok(Some(l)) => l,
            Ok(None) => return Err(Refusal::Unauthenticated),
            Err(e) => {
                warn!(error = %e, "control panel: reading the user failed");
                return Err(Refusal::Internal);
            }
        };
        let address = live.address.clone();
        let role = admin::role_of(&self.store, &address).await.map_err(|e| {
            warn!(error = %e, "control panel: reading the role failed");
            Refusal::Internal
        })?;
        let Some(role) = role else {
            return Err(Refusal::Forbidden(format!(
                "{address} has no Control Panel role any more"
            )));
        };
        if let Some(p) = perm
            && !role.may(p)
        {
            return Err(Refusal::Forbidden(format!(
                "the role {role} may not do this"
            )));
        }
        if changing && !Sessions::csrf_ok(headers, &live) {
            return Err(Refusal::Csrf);
        }
        Ok(Authorized {
            address,
            role,
            csrf: live.csrf,
            peer,
        })
    }
}

fn api_refusal(r: Refusal) -> Response {
    match r {
        Refusal::Unauthenticated => api_error(
            StatusCode::UNAUTHORIZED,
            "sign in first (no session, or it expired)",
        ),
        Refusal::Forbidden(why) => api_error(StatusCode::FORBIDDEN, why),
        Refusal::Csrf => api_error(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (X-CSRF-Token): reload the page",
        ),
        Refusal::Internal => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn page_refusal(r: Refusal) -> Response {
    match r {
        Refusal::Unauthenticated => no_store(
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/admin/signin")],
                "sign in first\n",
            )
                .into_response(),
        ),
        Refusal::Forbidden(why) => {
            no_store((StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response())
        }
        Refusal::Csrf => no_store((StatusCode::FORBIDDEN, "403 Forbidden\n").into_response()),
        Refusal::Internal => {
            no_store((StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response())
        }
    }
}

/// An error of an operation as the API answers it.
fn op_error(e: anyhow::Error) -> Response {
    match e.downcast_ref::<StoreError>() {
        Some(StoreError::UserExists(a)) => {
            api_error(StatusCode::CONFLICT, format!("user {a} already exists"))
        }
        Some(StoreError::UserNotFound(a)) => {
            api_error(StatusCode::NOT_FOUND, format!("user {a} not found"))
        }
        Some(StoreError::Database(_) | StoreError::Migrate(_)) => {
            warn!(error = %e, "control panel: store error");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "database error")
        }
        _ => api_error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

// ---- pages ----

async fn root(State(p): State<Shared>, headers: HeaderMap) -> Response {
    let to = if p.sessions.session(&headers).is_some() {
        "/admin/users"
    } else {
        "/admin/signin"
    };
    no_store((StatusCode::SEE_OTHER, [(header::LOCATION, to)], "").into_response())
}

async fn signin_page() -> Response {
    html(SIGNIN_HTML.to_owned())
}

async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "signin.js" => (SIGNIN_JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn page(
    p: &Panel,
    headers: &HeaderMap,
    peer: IpAddr,
    perm: Permission,
    name: &str,
    title: &str,
) -> Response {
    match p.authorize(headers, peer, Some(perm), false).await {
        Ok(_) => html(
            PANEL_HTML
                .replace("{{PAGE}}", name)
                .replace("{{TITLE}}", title),
        ),
        Err(r) => page_refusal(r),
    }
}

async fn users_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewUsers,
        "users",
        "Users",
    )
    .await
}

async fn topology_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewTopology,
        "topology",
        "Topology",
    )
    .await
}

async fn status_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewStatus,
        "status",
        "Status",
    )
    .await
}

async fn audit_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewAudit,
        "audit",
        "Audit log",
    )
    .await
}

async fn voice_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewVoiceChat,
        "voice",
        "Voice",
    )
    .await
}

async fn chat_page(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    page(
        &p,
        &headers,
        peer.ip(),
        Permission::ViewVoiceChat,
        "chat",
        "Persistent Chat",
    )
    .await
}

// ---- API ----

async fn api_signin(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    body: Bytes,
) -> Response {
    let ip = peer.ip();
    let address =
        match crate::web_session::check_sign_in(&p.sessions, ip, &body, "control panel").await {
            Ok(a) => a,
            Err(r) => return r,
        };
    let role = match admin::role_of(&p.store, &address).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return api_error(
                StatusCode::FORBIDDEN,
                format!(
                    "{address} has no Control Panel role: an operator grants one with `confab user set {address} --role CsAdministrator`"
                ),
            );
        }
        Err(e) => {
            warn!(error = %e, "control panel sign-in: reading the role failed");
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let Some((cookie, csrf)) = p.sessions.open(&address) else {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many Control Panel sessions; try again later",
        );
    };
    info!(%address, %ip, role = %role, "Control Panel sign-in");
    let actor = Actor {
        who: address.clone(),
        from: ip.to_string(),
    };
    let _ = p
        .store
        .append_audit(&confab_store::AuditEntry {
            seq: 0,
            at: 0,
            actor: actor.who,
            source: actor.from,
            action: "session.sign-in".into(),
            target: None,
            detail: Some(role.name().into()),
        })
        .await;
    let mut r = json_response(
        StatusCode::OK,
        json!({ "address": address, "role": role.name(), "csrf": csrf }),
    );
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

async fn api_signout(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    match p.authorize(&headers, peer.ip(), None, true).await {
        Ok(_) | Err(Refusal::Forbidden(_)) => {}
        Err(r) => return api_refusal(r),
    }
    if let Some(live) = p.sessions.session(&headers) {
        p.sessions.drop_session(&live.key);
    }
    let mut r = json_response(StatusCode::OK, json!({ "signed_out": true }));
    if let Some(v) = p.sessions.clear_cookie() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn api_session(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    match p.authorize(&headers, peer.ip(), None, false).await {
        Ok(a) => json_response(
            StatusCode::OK,
            json!({
                "address": a.address,
                "role": a.role.name(),
                "csrf": a.csrf,
                "may": {
                    "change_users": a.role.may(Permission::ChangeUsers),
                    "view_audit": a.role.may(Permission::ViewAudit),
                    "change_voice_chat": a.role.may(Permission::ChangeVoiceChat),
                },
            }),
        ),
        Err(r) => api_refusal(r),
    }
}

async fn api_users(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = p
        .authorize(&headers, peer.ip(), Some(Permission::ViewUsers), false)
        .await
    {
        return api_refusal(r);
    }
    let needle = q
        .get("q")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let (users, roles) = match (p.store.list_users().await, p.store.admin_roles().await) {
        (Ok(u), Ok(r)) => (u, r.into_iter().collect::<HashMap<_, _>>()),
        (Err(e), _) | (_, Err(e)) => return op_error(e.into()),
    };
    let matching: Vec<_> = users
        .iter()
        .filter(|u| {
            needle.is_empty()
                || u.address.contains(&needle)
                || u.display_name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().contains(&needle))
        })
        .collect();
    let list: Vec<Value> = matching
        .iter()
        .take(MAX_LISTED)
        .map(|u| {
            json!({
                "address": u.address,
                "display_name": u.display_name,
                "enabled": u.enabled,
                "role": roles.get(&u.address),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({ "users": list, "matching": matching.len(), "total": users.len() }),
    )
}

async fn changing(
    p: &Panel,
    headers: &HeaderMap,
    peer: IpAddr,
    body: &Bytes,
) -> Result<(Authorized, serde_json::Map<String, Value>), Response> {
    let who = p
        .authorize(headers, peer, Some(Permission::ChangeUsers), true)
        .await
        .map_err(api_refusal)?;
    let m = body_json(body)?;
    Ok((who, m))
}

fn user_answer(u: &confab_store::User) -> Response {
    json_response(
        StatusCode::OK,
        json!({ "address": u.address, "display_name": u.display_name, "enabled": u.enabled }),
    )
}

async fn api_add_user(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (who, m) = match changing(&p, &headers, peer.ip(), &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (address, password) = match (field(&m, "address"), field(&m, "password")) {
        (Ok(a), Ok(pw)) => (a, pw),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let display_name = m
        .get("display_name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty());
    match admin::add_user(&p.store, &who.actor(), address, password, display_name).await {
        Ok(u) => user_answer(&u),
        Err(e) => op_error(e),
    }
}

async fn set_enabled(
    p: &Panel,
    headers: &HeaderMap,
    peer: IpAddr,
    body: &Bytes,
    on: bool,
) -> Response {
    let (who, m) = match changing(p, headers, peer, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let address = match field(&m, "address") {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !on && Address::parse(address).is_ok_and(|a| a.to_string() == who.address) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "you cannot disable your own account",
        );
    }
    match admin::set_enabled(&p.store, &who.actor(), address, on).await {
        Ok(u) => user_answer(&u),
        Err(e) => op_error(e),
    }
}

async fn api_disable(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_enabled(&p, &headers, peer.ip(), &body, false).await
}

async fn api_enable(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    set_enabled(&p, &headers, peer.ip(), &body, true).await
}

async fn api_password(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (who, m) = match changing(&p, &headers, peer.ip(), &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (address, password) = match (field(&m, "address"), field(&m, "password")) {
        (Ok(a), Ok(pw)) => (a, pw),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match admin::set_password(&p.store, &who.actor(), address, password).await {
        Ok(u) => user_answer(&u),
        Err(e) => op_error(e),
    }
}

async fn api_contacts(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = p
        .authorize(&headers, peer.ip(), Some(Permission::ViewUsers), false)
        .await
    {
        return api_refusal(r);
    }
    let Some(Ok(address)) = q.get("address").map(|a| Address::parse(a)) else {
        return api_error(StatusCode::BAD_REQUEST, "give a user's address");
    };
    let address = address.to_string();
    match p.store.get_user(&address).await {
        Ok(Some(_)) => {}
        Ok(None) => return api_error(StatusCode::NOT_FOUND, format!("user {address} not found")),
        Err(e) => return op_error(e.into()),
    }
    match p.store.contact_list(&address).await {
        Ok(l) => {
            let groups: HashMap<_, _> = l.groups.iter().map(|g| (g.id, g.name.clone())).collect();
            let contacts: Vec<Value> = l
                .contacts
                .iter()
                .map(|c| {
                    json!({
                        "uri": c.uri,
                        "name": c.name,
                        "groups": c.groups.iter().filter_map(|g| groups.get(g)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({ "owner": address, "contacts": contacts }),
            )
        }
        Err(e) => op_error(e.into()),
    }
}

async fn api_topology(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p
        .authorize(&headers, peer.ip(), Some(Permission::ViewTopology), false)
        .await
    {
        return api_refusal(r);
    }
    match crate::cmd_topology::status_json(&p.data_dir).await {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => {
            warn!(error = %e, "control panel: reading the topology failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the topology failed: {e}"),
            )
        }
    }
}

/// `name{labels} value` lines of the Prometheus text as a map.
fn metric_values(text: &str) -> serde_json::Map<String, Value> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), json!(v.trim().parse::<f64>().ok()?))))
        .collect()
}

async fn api_status(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p
        .authorize(&headers, peer.ip(), Some(Permission::ViewStatus), false)
        .await
    {
        return api_refusal(r);
    }
    let text = confab_web::metrics_text(&p.metrics, &p.conns);
    let users = p.store.count_users().await.unwrap_or(0);
    json_response(
        StatusCode::OK,
        json!({ "metrics": metric_values(&text), "users": users }),
    )
}

async fn api_audit(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = p
        .authorize(&headers, peer.ip(), Some(Permission::ViewAudit), false)
        .await
    {
        return api_refusal(r);
    }
    match p.store.audit_entries(None, 200).await {
        Ok(entries) => json_response(
            StatusCode::OK,
            json!({ "entries": entries.iter().map(crate::users::audit_json).collect::<Vec<_>>() }),
        ),
        Err(e) => op_error(e.into()),
    }
}

async fn api_unknown(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    match p.authorize(&headers, peer.ip(), None, false).await {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "no such API"),
        Err(r) => api_refusal(r),
    }
}

async fn api_unknown_post(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    match p.authorize(&headers, peer.ip(), None, true).await {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "no such API"),
        Err(r) => api_refusal(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_become_values() {
        let m = metric_values("# HELP x y\nconfab_registrations 3\nconfab_c{limit=\"a b\"} 7\n");
        assert_eq!(m["confab_registrations"], json!(3.0));
        assert_eq!(m["confab_c{limit=\"a b\"}"], json!(7.0));
    }
}
