//! The browser client for users (the analog of Lync Web App) at `/client/`:
//! static files only, embedded in the binary. The page signs in over SIP over
//! secure WebSocket with the user's SIP password (digest, through the vendored
//! JsSIP library, see `assets/client/VENDORED.md`); every piece of data (contact
//! list, presence, messages, calls) then travels over that authenticated SIP
//! connection, so there is no HTTP API here to protect and no session cookie:
//! the password stays in the page's memory and never reaches a log or a cookie.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../assets/client/index.html");
const CLIENT_JS: &str = include_str!("../assets/client/client.js");
const CLIENT_CSS: &str = include_str!("../assets/client/client.css");
const JSSIP_JS: &str = include_str!("../assets/client/jssip.min.js");
const JSSIP_LICENSE: &str = include_str!("../assets/client/JSSIP-LICENSE");

/// What the client's pages may load and where they may connect: only this
/// origin (the WebSocket to `/` included), media from the browser's own streams.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The client's routes (stateless: merge into any router).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/client", get(|| async { Redirect::to("/client/") }))
        .route("/client/", get(index))
        .route("/client/static/{file}", get(static_file))
}

fn with_csp(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

async fn index() -> Response {
    let mut r = with_csp(
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            INDEX_HTML,
        )
            .into_response(),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The file served as `/client/static/{name}`, with its content type.
fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "client.js" => (CLIENT_JS, "text/javascript; charset=utf-8"),
        "client.css" => (CLIENT_CSS, "text/css; charset=utf-8"),
        "jssip.min.js" => (JSSIP_JS, "text/javascript; charset=utf-8"),
        "JSSIP-LICENSE" => (JSSIP_LICENSE, "text/plain; charset=utf-8"),
        _ => return None,
    })
}

async fn static_file(Path(file): Path<String>) -> Response {
    match asset(&file) {
        Some((body, kind)) => {
            let mut r = with_csp(([(header::CONTENT_TYPE, kind)], body).into_response());
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_known_by_name_only() {
        assert!(asset("client.js").is_some());
        assert!(asset("jssip.min.js").is_some_and(|(b, _)| b.contains("JsSIP")));
        assert!(asset("JSSIP-LICENSE").is_some_and(|(b, _)| b.contains("MIT")));
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("index.html").is_none());
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        for src in [
            "static/jssip.min.js",
            "static/client.js",
            "static/client.css",
        ] {
            assert!(INDEX_HTML.contains(src), "{src}");
        }
        assert!(!INDEX_HTML.contains("<script>"), "no inline script (CSP)");
    }
}
