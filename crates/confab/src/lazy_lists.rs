//! Contact lists loaded on first use instead of all at start-up (80,000 users'
//! lists made start-up take about 20 s).
//!
//! Only requests *from* a list's owner use the list (the roaming-contacts
//! SUBSCRIBE and the SOAP `SERVICE` edits go from the owner to their own
//! address), so the embedding layer looks at each request before the core does:
//! the first request from a local user whose list is not in memory starts a load
//! from the store; a REGISTER goes on to the core at once (a sign-in need not
//! wait), any other request from that user waits until the list is in, then goes
//! on in order. Requests of every other user are not delayed.
//!
//! Plain state, no I/O: `serve.rs` carries out the loads and feeds the results back.

use std::collections::{HashMap, HashSet};

use confab_frontend::Dest;
use confab_sip::{Message, Method};

/// What to do with a request (see [`LazyLists::admit`]).
#[derive(Debug)]
pub enum Admit {
    /// Hand it to the core now.
    Pass(Message, Dest),
    /// Hand it to the core now, and load `owner`'s list.
    PassAndLoad(Message, Dest, String),
    /// Held until `owner`'s list is in; load it.
    HeldAndLoad(String),
    /// Held until a load already under way finishes.
    Held,
}

/// Which owners' lists the core holds, and the requests waiting for one.
#[derive(Debug, Default)]
pub struct LazyLists {
    loaded: HashSet<String>,
    waiting: HashMap<String, Vec<(Message, Dest)>>,
}

/// `alice@example.com` from a From/To URI (`sip:Alice@Example.com;x=y`).
pub fn owner_of(uri: &str) -> Option<String> {
    let u = uri.trim();
    let u = u
        .strip_prefix("sip:")
        .or_else(|| u.strip_prefix("SIP:"))
        .or_else(|| u.strip_prefix("sips:"))
        .unwrap_or(u);
    let u = u.split([';', '?', '>']).next().unwrap_or("");
    let (user, host) = u.split_once('@')?;
    // Drop a port from the host.
    let host = host.split(':').next().unwrap_or(host);
    (!user.is_empty() && !host.is_empty()).then(|| {
        // Every request comes through here: the usual ASCII address is built in
        // one allocation and lower-cased in place.
        if user.is_ascii() && host.is_ascii() {
            let mut owner = String::with_capacity(user.len() + 1 + host.len());
            owner.push_str(user);
            owner.push('@');
            owner.push_str(host);
            owner.make_ascii_lowercase();
            owner
        } else {
            format!("{user}@{host}").to_lowercase()
        }
    })
}

impl LazyLists {
    pub fn new() -> LazyLists {
        LazyLists::default()
    }

    /// Looks at a message before the core: `is_user` says whether an address is a
    /// local user (only their lists exist).
    pub fn admit(&mut self, msg: Message, src: Dest, is_user: impl Fn(&str) -> bool) -> Admit {
        let Some(method) = msg.method() else {
            return Admit::Pass(msg, src);
        };
        let register = *method == Method::Register;
        let Some(owner) = owner_of(msg.from().uri) else {
            return Admit::Pass(msg, src);
        };
        if self.loaded.contains(&owner) || !is_user(&owner) {
            return Admit::Pass(msg, src);
        }
        match self.waiting.get_mut(&owner) {
            Some(queue) => {
                if register {
                    Admit::Pass(msg, src)
                } else {
                    queue.push((msg, src));
                    Admit::Held
                }
            }
            None => {
                if register {
                    self.waiting.insert(owner.clone(), Vec::new());
                    Admit::PassAndLoad(msg, src, owner)
                } else {
                    self.waiting.insert(owner.clone(), vec![(msg, src)]);
                    Admit::HeldAndLoad(owner)
                }
            }
        }
    }

    /// `owner`'s list is in the core (loaded on demand or through the change
    /// feed): the requests that waited for it, in order.
    pub fn loaded(&mut self, owner: &str) -> Vec<(Message, Dest)> {
        self.loaded.insert(owner.to_owned());
        self.waiting.remove(owner).unwrap_or_default()
    }

    /// Loading `owner`'s list failed: the waiting requests go on (the core then
    /// serves an empty list, and a save based on it is refused by the store's
    /// version check); the next request tries again.
    pub fn failed(&mut self, owner: &str) -> Vec<(Message, Dest)> {
        self.waiting.remove(owner).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use confab_frontend::Transport;

    fn req(method: &str, from: &str) -> Message {
        let text = format!(
            "{method} sip:{from} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK{method}\r\nMax-Forwards: 70\r\nFrom: <sip:{from}>;tag=1\r\nTo: <sip:{from}>\r\nCall-ID: c-{method}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), &confab_sip::Limits::default()).unwrap()
    }

    fn src() -> Dest {
        Dest {
            transport: Transport::Tcp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            conn: None,
        }
    }

    fn users(a: &str) -> bool {
        a.ends_with("@example.com")
    }

    #[test]
    fn owner_from_uri() {
        assert_eq!(
            owner_of("sip:Alice@Example.COM;transport=tcp").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            owner_of("sip:bob@example.com:5061").as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(
            owner_of("sip:Zo\u{cb}@Example.com").as_deref(),
            Some("zo\u{eb}@example.com"),
            "a non-ASCII user is lower-cased too"
        );
        assert_eq!(owner_of("sip:example.com"), None);
        assert_eq!(owner_of("tel:+123"), None);
    }

    #[test]
    fn a_register_passes_and_starts_the_load_other_requests_wait() {
        let mut l = LazyLists::new();
        let a = l.admit(req("REGISTER", "alice@example.com"), src(), users);
        assert!(
            matches!(&a, Admit::PassAndLoad(_, _, o) if o == "alice@example.com"),
            "{a:?}"
        );
        // The load is under way: the SUBSCRIBE and SERVICE wait, a re-REGISTER does not.
        assert!(matches!(
            l.admit(req("SUBSCRIBE", "alice@example.com"), src(), users),
            Admit::Held
        ));
        assert!(matches!(
            l.admit(req("REGISTER", "alice@example.com"), src(), users),
            Admit::Pass(..)
        ));
        assert!(matches!(
            l.admit(req("SERVICE", "alice@example.com"), src(), users),
            Admit::Held
        ));
        // Another user is not delayed by alice's load, and starts their own.
        assert!(matches!(
            l.admit(req("MESSAGE", "bob@example.com"), src(), users),
            Admit::HeldAndLoad(o) if o == "bob@example.com"
        ));
        // Strangers have no list.
        assert!(matches!(
            l.admit(req("MESSAGE", "mallory@evil.example"), src(), users),
            Admit::Pass(..)
        ));
        let released = l.loaded("alice@example.com");
        let methods: Vec<String> = released
            .iter()
            .map(|(m, _)| m.method().map(|m| m.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(methods, ["SUBSCRIBE", "SERVICE"]);
        assert!(matches!(
            l.admit(req("SUBSCRIBE", "alice@example.com"), src(), users),
            Admit::Pass(..)
        ));
    }

    #[test]
    fn a_failed_load_releases_and_retries() {
        let mut l = LazyLists::new();
        assert!(matches!(
            l.admit(req("SUBSCRIBE", "alice@example.com"), src(), users),
            Admit::HeldAndLoad(_)
        ));
        assert_eq!(l.failed("alice@example.com").len(), 1);
        assert!(matches!(
            l.admit(req("SUBSCRIBE", "alice@example.com"), src(), users),
            Admit::HeldAndLoad(_)
        ));
    }
}
