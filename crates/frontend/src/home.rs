//! Users homed on front ends of a pool (issue 12; docs/decisions.md, "One pool").
//!
//! In an Enterprise pool every user has a home front end, which holds all of the
//! user's state (registrations, presence, subscriptions as presentity, contact
//! list), so that the core stays single-server logic. The core asks a
//! [`HomeRouter`] once per request for a user of the domain (answered from
//! memory, no database round trip) and, when the user is homed on another front
//! end, forwards the request there (this module decides, see [`decide`]; the core
//! carries the verdict out) as a trusted peer: with the authenticated
//! `P-Asserted-Identity` and a signed Record-Route, so the dialog's later
//! requests pass through both front ends. Requests that come from a peer front
//! end are always served here (never bounced on), so two front ends whose views
//! differ for a moment cannot loop a request.
//!
//! A front end that lost its pool's back end answers `503` with `Retry-After`.

use std::net::SocketAddr;
use std::sync::Arc;

use confab_sip::{HeaderName, Message, Method, Rewriter};
use tracing::debug;

use crate::types::{Dest, Transport};
use crate::verdict::{Forward, Verdict};

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
    /// Whether a sign-in (`msg`, a REGISTER) for a user served elsewhere is
    /// redirected there (`301`) rather than proxied. A Director proxies for
    /// clients that do not follow redirects (see `confab-director`).
    fn redirect_sign_in(&self, msg: &Message) -> bool {
        let _ = msg;
        true
    }
}

/// Shared handle the core keeps.
pub type SharedHomeRouter = Arc<dyn HomeRouter>;

/// Seconds a client is told to wait when this front end cannot route.
const RETRY_AFTER_SECS: u32 = 10;

/// Where a request for `target` is served: [`Verdict::Pass`] here, a forward to
/// its home front end when that is another one, a redirect when a user signs in
/// away from a live home, or a refusal when this front end cannot tell.
/// `identity` is the authenticated user (`None` for a trusted peer).
pub(crate) fn decide(
    router: &dyn HomeRouter,
    msg: &Message,
    src: Dest,
    target: &str,
    identity: Option<&str>,
) -> Verdict {
    if router.is_peer(src.addr) {
        return Verdict::Pass;
    }
    let sign_in = msg.method() == Some(&Method::Register);
    match router.route(target, sign_in) {
        HomeRoute::Local => Verdict::Pass,
        HomeRoute::Unavailable(reason) => Verdict::Reply {
            code: 503,
            reason,
            headers: vec![("Retry-After", RETRY_AFTER_SECS.to_string())],
        },
        HomeRoute::Peer(dest) if sign_in && router.redirect_sign_in(msg) => {
            // The client signed in through a front end other than its home (its
            // home is live): send it there, as Lync's home-server redirect does.
            debug!(user = %target, home = %dest.addr, "REGISTER redirected to the home front end");
            // The client comes back over its own kind of transport: pidgin-sipe
            // reads only `transport=tcp` (anything else means TLS), on the
            // peer's SIP port (UDP and TCP share it).
            let transport = match src.transport {
                Transport::Udp => "udp",
                _ => "tcp",
            };
            let contact = format!(
                "<sip:{}:{};transport={transport}>",
                host(dest.addr),
                dest.addr.port()
            );
            Verdict::Reply {
                code: 301,
                reason: "Moved to the user's home front end".to_owned(),
                headers: vec![("Contact", contact)],
            }
        }
        HomeRoute::Peer(dest) => {
            let mut rw = Rewriter::new(msg).remove(HeaderName::PAssertedIdentity);
            if let Some(user) = identity {
                rw = rw.append("P-Asserted-Identity", format!("<sip:{user}>"));
            }
            let ruri = msg.request_uri().unwrap_or("").to_owned();
            let record_route = matches!(
                msg.method(),
                Some(Method::Invite | Method::Subscribe | Method::Refer)
            );
            debug!(user = %target, home = %dest.addr, "request forwarded to the home front end");
            Verdict::Forward(Forward {
                rewritten: Some(rw.build()),
                targets: vec![(ruri, dest)],
                record_route,
                serial: false,
            })
        }
    }
}

fn host(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}
