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

use crate::core::Core;
use crate::types::Dest;

/// What in-band provisioning tells a user about Persistent Chat: the chat pool's URI
/// when the user's policy (Lync's `EnablePersistentChat`) enables it. Implemented
/// outside the front end (the policy lives in the chat store).
pub trait ChatProvisioning: Send + Sync + std::fmt::Debug {
    /// The pool URI (`sip:ocschat@DOMAIN`) for `user` (`user@domain`), or `None`
    /// when Persistent Chat is not enabled for them.
    fn pool_uri(&self, user: &str) -> Option<String>;
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
/// to the application (the caller checked [`serves`]).
/// `identity` is the authenticated user (`None` for a trusted peer).
pub(crate) fn route(
    core: &mut Core,
    key: confab_sip::transaction::ServerKey,
    msg: &Message,
    src: Dest,
    target: &str,
    identity: Option<&str>,
    pop_routes: usize,
) {
    let Some(dest) = lookup(&core.cfg.app_routes, target) else {
        core.reply(&key, msg, 404, |b| b.reason("No such application"));
        return;
    };
    let mut rw = Rewriter::new(msg);
    if let Some(user) = identity {
        rw = rw
            .remove(HeaderName::PAssertedIdentity)
            .append("P-Asserted-Identity", format!("<sip:{user}>"));
    }
    let bytes = rw.build();
    let Ok(rewritten) = Message::parse(bytes, &confab_sip::Limits::default()) else {
        core.reply(&key, msg, 400, |b| {
            b.reason("Request could not be forwarded")
        });
        return;
    };
    let ruri = msg.request_uri().unwrap_or("").to_owned();
    let record_route = rewritten.method() == Some(&Method::Invite);
    core.forward(
        key,
        &rewritten,
        src,
        vec![(ruri, dest)],
        record_route,
        pop_routes,
    );
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
}
