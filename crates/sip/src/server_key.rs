//! The key of a server transaction (RFC 3261 §17.2.3): the branch and sent-by of
//! the top Via and the method, or for requests without an RFC 3261 branch the
//! Call-ID, CSeq, From tag and sent-by. Its own module so that the transaction
//! table and the store of completed transactions both use it.

use crate::message::Message;
use crate::method::Method;

/// Identifies a server transaction.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum ServerKey {
    Rfc3261 {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Method,
    },
    Rfc2543 {
        call_id: Box<str>,
        cseq: u32,
        method: Method,
        from_tag: Box<str>,
        sent_by: Box<str>,
    },
}

impl ServerKey {
    /// Key of the transaction `msg` belongs to. ACK maps to its INVITE.
    pub fn of(msg: &Message) -> Option<ServerKey> {
        let method = msg.method()?;
        Some(Self::with_method(
            msg,
            if *method == Method::Ack {
                Method::Invite
            } else {
                method.clone()
            },
        ))
    }

    /// Key of the INVITE transaction a CANCEL targets (§9.2).
    pub fn cancel_target(cancel: &Message) -> ServerKey {
        Self::with_method(cancel, Method::Invite)
    }

    fn with_method(msg: &Message, method: Method) -> ServerKey {
        let via = msg.top_via();
        // host[:port], host in lower case: one allocation.
        let mut sent_by = String::with_capacity(via.host.len() + 6);
        sent_by.push_str(via.host);
        sent_by.make_ascii_lowercase();
        if let Some(p) = via.port {
            use std::fmt::Write as _;
            let _ = write!(sent_by, ":{p}");
        }
        let sent_by: Box<str> = sent_by.into();
        match via.branch() {
            // A branch that is only the cookie identifies nothing (RFC 4475 §3.2.1).
            Some(b)
                if b.starts_with(crate::MAGIC_COOKIE) && b.len() > crate::MAGIC_COOKIE.len() =>
            {
                ServerKey::Rfc3261 {
                    branch: b.into(),
                    sent_by,
                    method,
                }
            }
            _ => ServerKey::Rfc2543 {
                call_id: msg.call_id().into(),
                cseq: msg.cseq().0,
                method,
                from_tag: msg.from_tag().unwrap_or("").into(),
                sent_by,
            },
        }
    }
}
