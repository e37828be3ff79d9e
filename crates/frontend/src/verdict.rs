//! What an application behind the front end decides about a request.
//!
//! The applications that own some requests (Persistent Chat's URIs in `apps`, a
//! user homed on another front end in `home`, phone numbers in `voice_app`) do not
//! reach into the core: each looks at the request and the little state it is given
//! and returns a [`Verdict`], which the dispatcher carries out in one place
//! (`Core::apply_verdict`). The applications stay testable on their own and the
//! core stays the only module that sends.

use bytes::Bytes;

use crate::types::Dest;

/// An application's decision about one out-of-dialog request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not this application's request: the dispatcher goes on.
    Pass,
    /// Answer with `code`, a reason phrase and extra headers.
    Reply {
        code: u16,
        reason: String,
        headers: Vec<(&'static str, String)>,
    },
    /// Proxy the request statefully.
    Forward(Forward),
    /// Deliver to every registered contact of this local user (`user@domain`),
    /// record-routed (a call to the user's number).
    ToUser(String),
}

/// A request to proxy (see [`Verdict::Forward`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    /// The request to send instead of the one received (headers rewritten), if any.
    pub rewritten: Option<Bytes>,
    /// Request-URI and destination of each target.
    pub targets: Vec<(String, Dest)>,
    /// Insert our signed Record-Route.
    pub record_route: bool,
    /// Try the targets one after the other (failover on 503, 408, a timeout)
    /// instead of forking to all of them at once.
    pub serial: bool,
}

impl Verdict {
    /// An answer with a reason phrase and no extra header.
    pub(crate) fn reply(code: u16, reason: impl Into<String>) -> Verdict {
        Verdict::Reply {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}
