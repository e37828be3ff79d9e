//! `GET /chat/search`: Persistent Chat history search for signed-in users.
//!
//! The web layer only takes the request apart (HTTP Basic credentials, query
//! parameters) and turns the answer into a response; checking the password, the
//! rooms the user may read and the search itself belong to the embedding layer
//! behind [`ChatSearch`] (the same code path as `confab chat search`).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::WebState;
use crate::http::PeerInfo;

/// Why a search was not answered with results.
#[derive(Debug)]
pub enum SearchError {
    /// Missing or wrong credentials, or a disabled user: `401`.
    Unauthorized,
    /// Too many failed sign-ins from this address: `429` with `Retry-After` seconds.
    Blocked(u64),
    /// A query parameter is wrong: `400` with the reason.
    BadRequest(String),
    /// The store failed: `500` (details are logged by the implementation).
    Internal,
}

/// The answer's JSON document, or why there is none.
pub type SearchFuture<'a> = Pin<Box<dyn Future<Output = Result<String, SearchError>> + Send + 'a>>;

/// Searches the history of the rooms `user` may read.
pub trait ChatSearch: Send + Sync {
    /// `query` holds the request's parameters (`text`, `author`, `room`, `since`,
    /// `until`, `limit`, `page`); `peer` is the client's address (failure limits).
    fn search<'a>(
        &'a self,
        peer: IpAddr,
        user: &'a str,
        password: &'a str,
        query: &'a HashMap<String, String>,
    ) -> SearchFuture<'a>;
}

/// `user:password` from an `Authorization: Basic ...` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "sign in with your SIP address and password\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"confab\", charset=\"UTF-8\""),
    );
    r
}

pub(crate) async fn handler(
    State(st): State<WebState>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(service) = st.chat_search.as_ref() else {
        return (StatusCode::NOT_FOUND, "Persistent Chat is not enabled\n").into_response();
    };
    let Some((user, password)) = basic_credentials(&headers) else {
        return unauthorized();
    };
    match service.search(peer.ip(), &user, &password, &query).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(SearchError::Unauthorized) => unauthorized(),
        Err(SearchError::Blocked(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            "too many failed sign-ins from this address\n",
        )
            .into_response(),
        Err(SearchError::BadRequest(reason)) => {
            (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
        }
        Err(SearchError::Internal) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "search failed\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic Ym9iQGV4YW1wbGUuY29tOnB3OnR3bw=="),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("bob@example.com".into(), "pw:two".into()))
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
    }
}
