//! Users homed on front ends of a pool (issue 12; docs/decisions.md, "One pool").
//!
//! In an Enterprise pool every user has a home front end, which holds all of the
//! user's state (registrations, presence, subscriptions as presentity, contact
//! list), so that the core stays single-server logic. The core asks a
//! [`HomeRouter`] once per request for a user of the domain (answered from
//! memory, no database round trip) and, when the user is homed on another front
//! end, forwards the request there as a trusted peer: with the authenticated
//! `P-Asserted-Identity` and a signed Record-Route, so the dialog's later
//! requests pass through both front ends. Requests that come from a peer front
//! end are always served here (never bounced on), so two front ends whose views
//! differ for a moment cannot loop a request.
//!
//! A front end that lost its pool's back end answers `503` with `Retry-After`.

use std::net::SocketAddr;
use std::sync::Arc;

use confab_sip::transaction::ServerKey;
use confab_sip::{HeaderName, Message, Method, Rewriter};
use tracing::debug;

use crate::core::Core;
use crate::types::Dest;

/// Where a user is served (see [`HomeRouter::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeRoute {
    /// Here.
    Local,
    /// On the pool's front end at `Dest`.
    Peer(Dest),
    /// Not now (the reason goes into a `503`).
    Unavailable(String),
}

/// The pool's answer to "where is this user served", from memory.
pub trait HomeRouter: Send + Sync {
    /// The home of `user` (`alice@example.com`). `sign_in`: the user is signing
    /// in (REGISTER), so a user without a live home gets one.
    fn route(&self, user: &str, sign_in: bool) -> HomeRoute;
    /// Whether `addr` is another front end of the pool (trusted, like
    /// `CoreConfig::trusted_peers`).
    fn is_peer(&self, addr: SocketAddr) -> bool;
}

/// Shared handle the core keeps.
pub type SharedHomeRouter = Arc<dyn HomeRouter>;

/// Seconds a client is told to wait when this front end cannot route.
const RETRY_AFTER_SECS: u32 = 10;

/// Forwards the request to `target`'s home front end when that is another one,
/// or refuses it when this front end cannot tell. Returns `true` when the request
/// was handled (the caller stops), `false` when it is served here.
pub(crate) fn route_to_home(
    core: &mut Core,
    key: &ServerKey,
    msg: &Message,
    src: Dest,
    target: &str,
    identity: Option<&str>,
    pop_routes: usize,
) -> bool {
    let Some(router) = core.home.clone() else {
        return false;
    };
    if router.is_peer(src.addr) {
        return false;
    }
    let sign_in = msg.method() == Some(&Method::Register);
    match router.route(target, sign_in) {
        HomeRoute::Local => false,
        HomeRoute::Unavailable(reason) => {
            core.reply(key, msg, 503, |b| {
                b.reason(reason)
                    .header("Retry-After", RETRY_AFTER_SECS.to_string())
            });
            true
        }
        HomeRoute::Peer(dest) if sign_in => {
            // The client signed in through a front end other than its home (its
            // home is live): send it there, as Lync's home-server redirect does.
            debug!(user = %target, home = %dest.addr, "REGISTER redirected to the home front end");
            let contact = format!(
                "<sip:{}:{};transport=udp>",
                host(dest.addr),
                dest.addr.port()
            );
            core.reply(key, msg, 301, |b| {
                b.reason("Moved to the user's home front end")
                    .header("Contact", contact)
            });
            true
        }
        HomeRoute::Peer(dest) => {
            let mut rw = Rewriter::new(msg).remove(HeaderName::PAssertedIdentity);
            if let Some(user) = identity {
                rw = rw.append("P-Asserted-Identity", format!("<sip:{user}>"));
            }
            let Ok(rewritten) = Message::parse(rw.build(), &confab_sip::Limits::default()) else {
                core.reply(key, msg, 400, |b| {
                    b.reason("Request could not be forwarded")
                });
                return true;
            };
            let ruri = msg.request_uri().unwrap_or("").to_owned();
            let record_route = matches!(
                msg.method(),
                Some(Method::Invite | Method::Subscribe | Method::Refer)
            );
            debug!(user = %target, home = %dest.addr, "request forwarded to the home front end");
            core.forward(
                key.clone(),
                &rewritten,
                src,
                vec![(ruri, dest)],
                record_route,
                pop_routes,
            );
            true
        }
    }
}

fn host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}
