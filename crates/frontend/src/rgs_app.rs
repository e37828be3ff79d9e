//! Response Groups behind the front end: a call to a workflow's SIP URI or
//! number goes, record-routed, to the Response Group service (crates/rgs), which
//! answers it. The workflows change while the server runs, so the front end asks
//! a narrow trait, [`WorkflowRouter`], implemented outside it (the binary keeps
//! it current from the store). Called from two places of the dispatcher: the
//! voice hook leaves a workflow's number alone ([`claims`]), and the
//! application routes' place decides ([`decide`]) once the caller is
//! authenticated.

use std::sync::Arc;

use confab_sip::{HeaderName, Message, Method, Rewriter};

use crate::types::Dest;
use crate::verdict::{Forward, Verdict};

/// Which addresses are Response Group workflows.
pub trait WorkflowRouter: Send + Sync + std::fmt::Debug {
    /// Whether `aor` (`user@domain`, lower case) is a workflow's SIP URI, or its
    /// user part a workflow's number (`+14255550300`).
    fn serves(&self, aor: &str) -> bool;
}

/// Where the Response Group service listens and which addresses it serves.
#[derive(Debug, Clone)]
pub struct RgsRoute {
    pub dest: Dest,
    pub router: Arc<dyn WorkflowRouter>,
}

/// Whether the Response Group service takes requests for `aor`.
pub(crate) fn claims(route: Option<&RgsRoute>, aor: &str) -> bool {
    route.is_some_and(|r| r.router.serves(aor))
}

/// An INVITE for a workflow (`aor`): proxied to the service, record-routed, with
/// the authenticated caller in `P-Asserted-Identity` (`None` for a trusted peer,
/// whose own is kept). Other methods are refused.
pub(crate) fn decide(route: &RgsRoute, msg: &Message, identity: Option<&str>) -> Verdict {
    if msg.method() != Some(&Method::Invite) {
        return Verdict::reply(405, "A Response Group workflow only takes calls");
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
        targets: vec![(ruri, route.dest)],
        record_route: true,
        serial: false,
    })
}
