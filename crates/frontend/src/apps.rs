//! Application routes: SIP URIs served by an application behind the front end (the
//! Persistent Chat service's lookup and chat-server URIs), each with where the
//! application listens.
//!
//! A request addressed to one of these URIs is authenticated like any request of a
//! local user, then proxied statefully to the application with Record-Route (so the
//! dialog's later requests, both ways, pass through the front end, which signs them
//! for Lync clients) and with `P-Asserted-Identity: <sip:user@domain>` naming the
//! authenticated user; a `P-Asserted-Identity` sent by the client is removed first.
//! A trusted peer's request keeps its own. The application's own address should be a
//! trusted peer (`CoreConfig::trusted_peers`).

use confab_sip::{HeaderName, Message, Method, Rewriter};

use crate::types::Dest;
use crate::verdict::{Forward, Verdict};

/// What in-band provisioning tells a user about Persistent Chat: the chat pool's URI
/// when the user's policy (Lync's `EnablePersistentChat`) enables it. Implemented
/// outside the front end (the policy lives in the chat store).
pub trait ChatProvisioning: Send + Sync + std::fmt::Debug {
    /// The pool URI (`sip:ocschat@DOMAIN`) for `user` (`user@domain`), or `None`
    /// when Persistent Chat is not enabled for them.
    fn pool_uri(&self, user: &str) -> Option<String>;
}

/// Picks, per request, where an application route's requests go when the
/// application runs on several servers (the active servers of a Persistent Chat
/// pool, which come and go): implemented outside the front end, from the servers'
/// heartbeats. Asked once per out-of-dialog request for an application URI.
pub trait AppRouter: Send + Sync + std::fmt::Debug {
    /// The servers for `user`'s (`user@domain`, `None` for a trusted peer) request
    /// to `aor`, most preferred first (tried in turn while one answers 503 or
    /// 408); `None` when this router does not handle `aor` (the route's own
    /// destination is used); an empty list when no server is available.
    fn targets(&self, aor: &str, user: Option<&str>) -> Option<Vec<Dest>>;
}

/// One application route: requests whose Request-URI is `uri` go to `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoute {
    /// Address of record, `user@domain` (a `sip:` prefix is accepted).
    pub uri: String,
    /// Where the application listens.
    pub dest: Dest,
}

fn aor_key(uri: &str) -> String {
    let u = uri.trim();
    let u = u.strip_prefix("sip:").unwrap_or(u);
    u.to_ascii_lowercase()
}

/// The destination of `aor` (`user@domain`, lower case), if an application serves it.
pub(crate) fn lookup(routes: &[AppRoute], aor: &str) -> Option<Dest> {
    routes
        .iter()
        .find(|r| aor_key(&r.uri) == aor)
        .map(|r| r.dest)
}

/// Whether an application serves `aor`.
pub(crate) fn serves(routes: &[AppRoute], aor: &str) -> bool {
    lookup(routes, aor).is_some()
}

/// Proxies an out-of-dialog request for an application URI (`target`, `user@domain`)
/// to the application: the verdict the core carries out.
/// `identity` is the authenticated user (`None` for a trusted peer).
pub(crate) fn decide(
    routes: &[AppRoute],
    router: Option<&dyn AppRouter>,
    msg: &Message,
    target: &str,
    identity: Option<&str>,
) -> Verdict {
    let Some(dest) = lookup(routes, target) else {
        return Verdict::reply(404, "No such application");
    };
    let dests = router
        .and_then(|r| r.targets(target, identity))
        .unwrap_or_else(|| vec![dest]);
    if dests.is_empty() {
        return Verdict::reply(503, "No server of the application is available");
    }
    let mut rw = Rewriter::new(msg);
    if let Some(user) = identity {
        rw = rw
            .remove(HeaderName::PAssertedIdentity)
            .append("P-Asserted-Identity", format!("<sip:{user}>"));
    }
    let ruri = msg.request_uri().unwrap_or("").to_owned();
    Verdict::Forward(Forward {
        rewritten: Some(rw.build()),
        serial: dests.len() > 1,
        targets: dests.into_iter().map(|d| (ruri.clone(), d)).collect(),
        record_route: msg.method() == Some(&Method::Invite),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Transport;

    #[test]
    fn lookup_by_aor() {
        let dest = Dest {
            transport: Transport::Tcp,
            addr: "127.0.0.1:5041".parse().unwrap_or_else(|_| unreachable!()),
            conn: None,
        };
        let routes = vec![AppRoute {
            uri: "sip:OCSchat@example.com".into(),
            dest,
        }];
        assert_eq!(lookup(&routes, "ocschat@example.com"), Some(dest));
        assert_eq!(lookup(&routes, "chatsrv@example.com"), None);
    }

    fn tcp(addr: &str) -> Dest {
        Dest {
            transport: Transport::Tcp,
            addr: addr.parse().unwrap_or_else(|_| unreachable!()),
            conn: None,
        }
    }

    /// A router that knows one URI and answers a fixed list of servers.
    #[derive(Debug)]
    struct Fixed(Vec<Dest>);

    impl AppRouter for Fixed {
        fn targets(&self, aor: &str, user: Option<&str>) -> Option<Vec<Dest>> {
            assert_eq!(user, Some("bob@example.com"));
            (aor == "ocschat@example.com").then(|| self.0.clone())
        }
    }

    fn invite() -> Message {
        let text = "INVITE sip:ocschat@example.com SIP/2.0\r\n\
                    Via: SIP/2.0/TCP 10.0.0.9:5070;branch=z9hG4bKx1\r\n\
                    Max-Forwards: 70\r\n\
                    From: <sip:bob@example.com>;tag=1\r\n\
                    To: <sip:ocschat@example.com>\r\n\
                    Call-ID: c1\r\n\
                    CSeq: 1 INVITE\r\n\
                    Content-Length: 0\r\n\r\n";
        Message::parse(bytes::Bytes::from(text), &confab_sip::Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_router_picks_the_servers_in_order() {
        let routes = vec![AppRoute {
            uri: "sip:ocschat@example.com".into(),
            dest: tcp("127.0.0.2:5041"),
        }];
        let msg = invite();
        let pool = Fixed(vec![tcp("127.0.0.3:5041"), tcp("127.0.0.4:5041")]);
        let v = decide(
            &routes,
            Some(&pool),
            &msg,
            "ocschat@example.com",
            Some("bob@example.com"),
        );
        let Verdict::Forward(f) = v else {
            panic!("{v:?}")
        };
        assert!(f.serial, "the other live servers are fall-backs, not forks");
        assert!(f.record_route);
        let dests: Vec<Dest> = f.targets.iter().map(|t| t.1).collect();
        assert_eq!(dests, vec![tcp("127.0.0.3:5041"), tcp("127.0.0.4:5041")]);
        assert!(f.targets.iter().all(|t| t.0 == "sip:ocschat@example.com"));

        // No live server: a clear 503.
        let none = Fixed(Vec::new());
        let v = decide(
            &routes,
            Some(&none),
            &msg,
            "ocschat@example.com",
            Some("bob@example.com"),
        );
        assert!(matches!(v, Verdict::Reply { code: 503, .. }), "{v:?}");

        // Without a router, the route's own destination.
        let v = decide(
            &routes,
            None,
            &msg,
            "ocschat@example.com",
            Some("bob@example.com"),
        );
        let Verdict::Forward(f) = v else {
            panic!("{v:?}")
        };
        assert!(!f.serial);
        assert_eq!(f.targets.len(), 1);
        assert_eq!(f.targets[0].1, tcp("127.0.0.2:5041"));
    }
}
