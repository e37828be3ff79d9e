//! Sign-in sessions of the web pages (the Control Panel under `/admin`, the
//! Persistent Chat room pages under `/chat`): one implementation, each area with
//! its own cookie name and path, so a session of one is no session of the other.
//!
//! - sign-in checks the stored digest HA1 in constant time; failures are limited
//!   per client address (10 a minute, then `429`);
//! - sessions live in the server's memory (a restart signs everyone out), end after
//!   `[web] session_idle_secs` without a request and `session_max_secs` after
//!   sign-in; the cookie is `HttpOnly; Secure; SameSite=Strict`, and only a hash
//!   of its token is kept;
//! - every state-changing request must carry the session's CSRF token in
//!   `X-CSRF-Token` ([`Sessions::csrf_ok`], compared in constant time).
//!
//! Also the answer helpers both areas share (JSON errors, `no-store`, the pages'
//! Content-Security-Policy).

// Handlers' helpers return the refusal as the finished answer (`Err(Response)`).
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_auth::ratelimit::FailureLimiter;
use confab_store::{Address, Store};
use parking_lot::Mutex;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::config::WebConfig;
use tracing::warn;

/// Failed sign-ins per client address and window before `429`.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sessions held at most per area (expired ones are dropped first).
const MAX_SESSIONS: usize = 10_000;
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Content-Security-Policy of the pages: scripts and styles from this server only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Session {
    address: String,
    csrf: String,
    created: Instant,
    last: Instant,
}

/// A live session of a request.
pub struct Live {
    /// SHA-256 of the cookie's token (hex): the session's key.
    pub key: String,
    pub address: String,
    pub csrf: String,
}

/// Why a sign-in is refused.
pub enum SignInRefusal {
    /// Too many failures from this address: wait this long.
    Blocked(Duration),
    /// Wrong address or password, or a disabled account.
    Wrong,
    /// The store failed.
    Internal(anyhow::Error),
}

/// The sessions of one area (cookie name and path).
pub struct Sessions {
    store: Store,
    cookie: &'static str,
    path: &'static str,
    idle: Duration,
    max: Duration,
    /// By SHA-256 of the cookie's token (hex).
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<FailureLimiter<IpAddr>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn token_key(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in the request, if any.
fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

impl Sessions {
    /// `store` holds the users; `cookie` names the session cookie, sent for `path`.
    pub fn new(store: Store, cookie: &'static str, path: &'static str, web: &WebConfig) -> Self {
        Sessions {
            store,
            cookie,
            path,
            idle: Duration::from_secs(web.session_idle_secs),
            max: Duration::from_secs(web.session_max_secs),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(FailureLimiter::new(MAX_FAILURES, FAILURE_WINDOW, 100_000)),
        }
    }

    /// The session of this request, if it is live (touching it).
    pub fn session(&self, headers: &HeaderMap) -> Option<Live> {
        let token = cookie_token(headers, self.cookie)?;
        let key = token_key(&token);
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let s = sessions.get_mut(&key)?;
        if now.duration_since(s.last) > self.idle || now.duration_since(s.created) > self.max {
            sessions.remove(&key);
            return None;
        }
        s.last = now;
        Some(Live {
            key,
            address: s.address.clone(),
            csrf: s.csrf.clone(),
        })
    }

    pub fn drop_session(&self, key: &str) {
        self.sessions.lock().remove(key);
    }

    /// The live session of an enabled user (a disabled or removed user's session
    /// ends here); `Ok(None)` when there is none.
    pub async fn live_user(&self, headers: &HeaderMap) -> anyhow::Result<Option<Live>> {
        let Some(live) = self.session(headers) else {
            return Ok(None);
        };
        let user = self.store.get_user(&live.address).await?;
        if !user.is_some_and(|u| u.enabled) {
            self.drop_session(&live.key);
            return Ok(None);
        }
        Ok(Some(live))
    }

    /// Whether the request carries the session's CSRF token.
    pub fn csrf_ok(headers: &HeaderMap, live: &Live) -> bool {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        bool::from(sent.as_bytes().ct_eq(live.csrf.as_bytes()))
    }

    /// Checks the credentials (rate-limited per client address); the user's
    /// normalized address when they sign in.
    pub async fn verify(
        &self,
        ip: IpAddr,
        address: &str,
        password: &str,
    ) -> Result<String, SignInRefusal> {
        if let Some(wait) = self.failures.lock().is_blocked(&ip, Instant::now()) {
            return Err(SignInRefusal::Blocked(wait));
        }
        match self.check_password(address, password).await {
            Ok(Some(a)) => {
                self.failures.lock().record_success(&ip);
                Ok(a)
            }
            Ok(None) => {
                self.failures.lock().record_failure(ip, Instant::now());
                Err(SignInRefusal::Wrong)
            }
            Err(e) => Err(SignInRefusal::Internal(e)),
        }
    }

    /// The user these credentials sign in (enabled, right password), if any.
    async fn check_password(
        &self,
        address: &str,
        password: &str,
    ) -> anyhow::Result<Option<String>> {
        let Ok(address) = Address::parse(address) else {
            return Ok(None);
        };
        let Some(u) = self.store.get_user(&address.to_string()).await? else {
            return Ok(None);
        };
        if !u.enabled {
            return Ok(None);
        }
        let want = u.credentials().ha1_md5;
        let got = confab_auth::credentials::ha1_md5(&u.username, &u.domain, password);
        Ok(bool::from(want.as_bytes().ct_eq(got.as_bytes())).then_some(u.address))
    }

    /// Opens a session for `address`: its cookie header value and CSRF token, or
    /// `None` when the table is full of live sessions.
    pub fn open(&self, address: &str) -> Option<(HeaderValue, String)> {
        let token = random_hex();
        let csrf = random_hex();
        let now = Instant::now();
        {
            let mut sessions = self.sessions.lock();
            if sessions.len() >= MAX_SESSIONS {
                let (idle, max) = (self.idle, self.max);
                sessions.retain(|_, s| {
                    now.duration_since(s.last) <= idle && now.duration_since(s.created) <= max
                });
            }
            if sessions.len() >= MAX_SESSIONS {
                return None;
            }
            sessions.insert(
                token_key(&token),
                Session {
                    address: address.to_owned(),
                    csrf: csrf.clone(),
                    created: now,
                    last: now,
                },
            );
        }
        let cookie = format!(
            "{}={token}; Path={}; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            self.cookie,
            self.path,
            self.max.as_secs()
        );
        let v = HeaderValue::from_str(&cookie).ok()?;
        Some((v, csrf))
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{}=; Path={}; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
            self.cookie, self.path
        ))
        .ok()
    }
}

pub fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json_response(status: StatusCode, v: Value) -> Response {
    no_store((status, axum::Json(v)).into_response())
}

pub fn api_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

/// The `429` of a blocked sign-in, with `Retry-After`.
pub fn blocked(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed sign-ins from this address: try again in {secs} seconds"),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// A page (HTML) with the pages' Content-Security-Policy.
pub fn html(body: String) -> Response {
    let mut r =
        no_store(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response());
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

/// A sign-in request's body (`address`, `password`) checked against the user's
/// credentials and the sign-in limits: the address, or the answer to give.
/// `area` names the site in the log ("control panel", "chat rooms").
pub async fn check_sign_in(
    sessions: &Sessions,
    ip: IpAddr,
    body: &Bytes,
    area: &str,
) -> Result<String, Response> {
    let m = body_json(body)?;
    let (Ok(address), Ok(password)) = (field(&m, "address"), field(&m, "password")) else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "give your SIP address and password",
        ));
    };
    match sessions.verify(ip, address, password).await {
        Ok(a) => Ok(a),
        Err(SignInRefusal::Blocked(wait)) => Err(blocked(wait)),
        Err(SignInRefusal::Wrong) => Err(api_error(
            StatusCode::UNAUTHORIZED,
            "wrong address or password (or the account is disabled)",
        )),
        Err(SignInRefusal::Internal(e)) => {
            warn!(error = %e, "{area} sign-in: reading the user failed");
            Err(api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

/// The JSON object of a request body.
pub fn body_json(body: &Bytes) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(api_error(
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object",
        )),
    }
}

pub fn field<'a>(m: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, Response> {
    m.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| api_error(StatusCode::BAD_REQUEST, format!("{name} is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; confab_cp=abc123 ; b=2"),
        );
        assert_eq!(cookie_token(&h, "confab_cp").as_deref(), Some("abc123"));
        assert_eq!(cookie_token(&h, "confab_chat"), None);
        h.insert(header::COOKIE, HeaderValue::from_static("confab_cpx=1"));
        assert_eq!(cookie_token(&h, "confab_cp"), None);
    }
}
