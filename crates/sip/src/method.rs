//! SIP request methods. Extension methods (Lync's `SERVICE`, `BENOTIFY`, `NEGOTIATE`,
//! or anything else that is a valid token) are kept, never rejected.

use std::fmt;

/// A SIP method. Known methods are compared without allocation; any other token is
/// kept as [`Method::Other`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Message,
    Subscribe,
    Notify,
    Publish,
    Info,
    Update,
    Prack,
    Refer,
    Service,
    Benotify,
    Negotiate,
    Other(Box<str>),
}

impl Method {
    /// Parses a method token (case-sensitive, RFC 3261 §7.1). `None` if it is not a token.
    pub fn parse(s: &[u8]) -> Option<Method> {
        if s.is_empty() || !s.iter().all(|&b| crate::header::is_token_char(b)) {
            return None;
        }
        Some(match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"MESSAGE" => Method::Message,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"REFER" => Method::Refer,
            b"SERVICE" => Method::Service,
            b"BENOTIFY" => Method::Benotify,
            b"NEGOTIATE" => Method::Negotiate,
            other => Method::Other(String::from_utf8_lossy(other).into()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Service => "SERVICE",
            Method::Benotify => "BENOTIFY",
            Method::Negotiate => "NEGOTIATE",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
