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
/// `tls_port`: this front end's TLS port, which the pool's front ends share (as
/// Lync's do), for redirecting a client that signed in over TLS.
pub(crate) fn decide(
    router: &dyn HomeRouter,
    msg: &Message,
    src: Dest,
    target: &str,
    identity: Option<&str>,
    tls_port: Option<u16>,
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
            // Over the transport the client used: pidgin-sipe reconnects with TLS
            // unless the Contact says `transport=tcp`, and a UDP client stays on UDP.
            // A front end's SIP port serves UDP and TCP.
            let (port, transport) = match src.transport {
                Transport::Udp => (dest.addr.port(), "udp"),
                Transport::Tcp => (dest.addr.port(), "tcp"),
                Transport::Tls | Transport::Ws | Transport::Wss => match tls_port {
                    Some(p) => (p, "tls"),
                    None => {
                        return Verdict::reply(503, "The user's home front end has no TLS port");
                    }
                },
            };
            let contact = format!("<sip:{}:{port};transport={transport}>", host(dest.addr));
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

/// A call to a user's number (Enterprise Voice resolved it to `user`): delivered
/// here when the user is homed here, else forwarded to the user's home front end
/// with the user's address as Request-URI (the home then serves an ordinary call
/// to the user, whatever number was dialed).
pub(crate) fn call_to_user(
    router: &dyn HomeRouter,
    msg: &Message,
    src: Dest,
    user: &str,
    identity: Option<&str>,
) -> Verdict {
    if router.is_peer(src.addr) {
        return Verdict::ToUser(user.to_owned());
    }
    match router.route(user, false) {
        HomeRoute::Local => Verdict::ToUser(user.to_owned()),
        HomeRoute::Unavailable(reason) => Verdict::Reply {
            code: 503,
            reason,
            headers: vec![("Retry-After", RETRY_AFTER_SECS.to_string())],
        },
        HomeRoute::Peer(dest) => {
            let mut rw = Rewriter::new(msg).remove(HeaderName::PAssertedIdentity);
            if let Some(caller) = identity {
                rw = rw.append("P-Asserted-Identity", format!("<sip:{caller}>"));
            }
            debug!(%user, home = %dest.addr, "call to a number forwarded to the user's home front end");
            Verdict::Forward(Forward {
                rewritten: Some(rw.build()),
                targets: vec![(format!("sip:{user}"), dest)],
                record_route: true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    struct Fixed(HomeRoute);

    impl HomeRouter for Fixed {
        fn route(&self, _user: &str, _sign_in: bool) -> HomeRoute {
            self.0.clone()
        }
        fn is_peer(&self, addr: SocketAddr) -> bool {
            addr == peer()
        }
    }

    fn peer() -> SocketAddr {
        "127.0.0.3:5070".parse().unwrap()
    }

    fn dest(transport: Transport, addr: SocketAddr) -> Dest {
        Dest {
            transport,
            addr,
            conn: None,
        }
    }

    fn request(method: &str, ruri: &str) -> Message {
        let text = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.9:4000;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: c1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
             P-Asserted-Identity: <sip:mallory@example.com>\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), &confab_sip::Limits::default()).unwrap()
    }

    fn client() -> SocketAddr {
        "127.0.0.9:4000".parse().unwrap()
    }

    #[test]
    fn a_redirect_names_the_transport_the_client_used() {
        let router = Fixed(HomeRoute::Peer(dest(Transport::Udp, peer())));
        let reg = request("REGISTER", "sip:example.com");
        let contact = |t: Transport| match decide(
            &router,
            &reg,
            dest(t, client()),
            "bob@example.com",
            Some("bob@example.com"),
            Some(5071),
        ) {
            Verdict::Reply {
                code: 301, headers, ..
            } => headers[0].1.clone(),
            v => panic!("{v:?}"),
        };
        assert_eq!(
            contact(Transport::Tcp),
            "<sip:127.0.0.3:5070;transport=tcp>"
        );
        assert_eq!(
            contact(Transport::Udp),
            "<sip:127.0.0.3:5070;transport=udp>"
        );
        assert_eq!(
            contact(Transport::Tls),
            "<sip:127.0.0.3:5071;transport=tls>"
        );
    }

    #[test]
    fn a_call_to_a_number_goes_to_the_user_s_home_as_a_call_to_the_user() {
        let invite = request("INVITE", "sip:+14255550101@example.com;user=phone");
        let away = Fixed(HomeRoute::Peer(dest(Transport::Udp, peer())));
        let Verdict::Forward(f) = call_to_user(
            &away,
            &invite,
            dest(Transport::Tcp, client()),
            "bob@example.com",
            Some("alice@example.com"),
        ) else {
            panic!("not forwarded");
        };
        assert_eq!(f.targets[0].0, "sip:bob@example.com");
        assert_eq!(f.targets[0].1.addr, peer());
        assert!(f.record_route);
        let sent = String::from_utf8(f.rewritten.unwrap().to_vec()).unwrap();
        assert!(
            sent.contains("P-Asserted-Identity: <sip:alice@example.com>"),
            "{sent}"
        );
        assert!(!sent.contains("mallory"), "{sent}");
        // Homed here, or asked by a peer front end: delivered here.
        let here = Fixed(HomeRoute::Local);
        let to_user = Verdict::ToUser("bob@example.com".into());
        assert_eq!(
            call_to_user(
                &here,
                &invite,
                dest(Transport::Tcp, client()),
                "bob@example.com",
                None
            ),
            to_user
        );
        assert_eq!(
            call_to_user(
                &away,
                &invite,
                dest(Transport::Udp, peer()),
                "bob@example.com",
                None
            ),
            to_user
        );
        let down = Fixed(HomeRoute::Unavailable("lost the back end".into()));
        assert!(matches!(
            call_to_user(
                &down,
                &invite,
                dest(Transport::Tcp, client()),
                "bob@example.com",
                None
            ),
            Verdict::Reply { code: 503, .. }
        ));
    }
}
