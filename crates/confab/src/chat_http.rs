//! `GET /chat/search` behind the web layer: signs the user in (HTTP Basic against
//! the stored digest HA1, compared in constant time; failures limited per address)
//! and runs the same search as `confab chat search`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use confab_auth::ratelimit::FailureLimiter;
use confab_store::{Store, normalize_principal};
use confab_web::chat_search::{ChatSearch, SearchError, SearchFuture};
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::chat_cli::{SearchRequest, search, search_json};

/// Failed sign-ins per address and window before `429`.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

pub struct StoreChatSearch {
    /// Users (the front end's database).
    store: Store,
    /// Persistent Chat tables (the same database on Standard Edition).
    chat: Store,
    failures: Mutex<FailureLimiter<IpAddr>>,
}

impl StoreChatSearch {
    pub fn new(store: Store, chat: Store) -> StoreChatSearch {
        StoreChatSearch {
            store,
            chat,
            failures: Mutex::new(FailureLimiter::new(MAX_FAILURES, WINDOW, 100_000)),
        }
    }

    /// The normalized address of the user these credentials sign in, if any.
    async fn sign_in(&self, user: &str, password: &str) -> Result<Option<String>, SearchError> {
        let Some(address) = normalize_principal(user).filter(|a| !a.starts_with('@')) else {
            return Ok(None);
        };
        let found = self.store.get_user(&address).await.map_err(|e| {
            warn!(error = %e, "chat search: reading the user failed");
            SearchError::Internal
        })?;
        let Some(u) = found.filter(|u| u.enabled) else {
            return Ok(None);
        };
        let want = u.credentials().ha1_md5;
        let got = confab_auth::credentials::ha1_md5(&u.username, &u.domain, password);
        Ok(bool::from(want.as_bytes().ct_eq(got.as_bytes())).then_some(address))
    }
}

fn param(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.get(name).filter(|v| !v.is_empty()).cloned()
}

fn number(q: &HashMap<String, String>, name: &str, default: u32) -> Result<u32, SearchError> {
    match q.get(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| SearchError::BadRequest(format!("{name} must be a whole number"))),
    }
}

impl ChatSearch for StoreChatSearch {
    fn search<'a>(
        &'a self,
        peer: IpAddr,
        user: &'a str,
        password: &'a str,
        query: &'a HashMap<String, String>,
    ) -> SearchFuture<'a> {
        Box::pin(async move {
            if let Some(wait) = self.failures.lock().is_blocked(&peer, Instant::now()) {
                return Err(SearchError::Blocked(wait.as_secs().max(1)));
            }
            let Some(address) = self.sign_in(user, password).await? else {
                self.failures.lock().record_failure(peer, Instant::now());
                return Err(SearchError::Unauthorized);
            };
            let limit = number(query, "limit", 20)?.min(200);
            let page = number(query, "page", 1)?;
            let req = SearchRequest {
                text: param(query, "text"),
                author: param(query, "author"),
                room: param(query, "room"),
                since: param(query, "since"),
                until: param(query, "until"),
                limit,
                page,
            };
            match search(&self.chat, &address, &req).await {
                Ok(hits) => Ok(search_json(&hits, page).to_string()),
                Err(e) if e.downcast_ref::<confab_store::StoreError>().is_some() => {
                    warn!(error = %e, "chat search failed");
                    Err(SearchError::Internal)
                }
                Err(e) => Err(SearchError::BadRequest(e.to_string())),
            }
        })
    }
}
