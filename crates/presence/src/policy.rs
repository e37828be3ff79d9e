//! Presence authorization policy.

/// Who may watch whose presence.
///
/// Today: everyone may watch themselves; users of the same domain may watch
/// each other when [`same_domain_visible`](Self::same_domain_visible) is set;
/// everything else is denied. Per-user allow/block lists (from the Lync
/// roaming ACL / containers) are to be layered on top later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Users of the same domain may see each other's presence.
    pub same_domain_visible: bool,
}

impl Default for Policy {
    /// Same-domain visibility on, like Lync's default "colleagues" container.
    fn default() -> Self {
        Policy {
            same_domain_visible: true,
        }
    }
}

impl Policy {
    /// Whether `watcher` may subscribe to the presence of `target`.
    ///
    /// Both are addresses such as `sip:alice@example.com`, `sips:…`,
    /// `alice@example.com` or `<sip:alice@example.com;transport=tls>`. The
    /// user part is compared case-sensitively, the host case-insensitively;
    /// URI parameters, headers and ports are ignored. Addresses without a
    /// user and a host are never allowed.
    pub fn may_watch(&self, watcher: &str, target: &str) -> bool {
        let (Some(w), Some(t)) = (Address::parse(watcher), Address::parse(target)) else {
            return false;
        };
        let same_domain = w.host.eq_ignore_ascii_case(t.host);
        if same_domain && w.user == t.user {
            return true;
        }
        self.same_domain_visible && same_domain
    }
}

struct Address<'a> {
    user: &'a str,
    host: &'a str,
}

impl<'a> Address<'a> {
    fn parse(s: &'a str) -> Option<Address<'a>> {
        let s = s.trim();
        let s = s.strip_prefix('<').unwrap_or(s);
        let s = s.strip_suffix('>').unwrap_or(s);
        let s = strip_scheme(s, "sips:")
            .or_else(|| strip_scheme(s, "sip:"))
            .or_else(|| strip_scheme(s, "pres:"))
            .unwrap_or(s);
        let s = s.split(['>', ';', '?']).next().unwrap_or(s);
        let (user, hostport) = s.rsplit_once('@')?;
        let host = if let Some(rest) = hostport.strip_prefix('[') {
            rest.split_once(']').map(|(h, _)| h)?
        } else {
            hostport.split(':').next().unwrap_or(hostport)
        };
        if user.is_empty() || host.is_empty() || user.contains(':') {
            return None;
        }
        Some(Address { user, host })
    }
}

fn strip_scheme<'a>(s: &'a str, scheme: &str) -> Option<&'a str> {
    let head = s.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &s[scheme.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_always_allowed() {
        let closed = Policy {
            same_domain_visible: false,
        };
        assert!(closed.may_watch("sip:alice@example.com", "sip:alice@example.com"));
        assert!(closed.may_watch(
            "<sips:alice@EXAMPLE.com:5061;transport=tls>",
            "alice@example.com"
        ));
        assert!(!closed.may_watch("sip:bob@example.com", "sip:alice@example.com"));
        // User part is case-sensitive.
        assert!(!closed.may_watch("sip:Alice@example.com", "sip:alice@example.com"));
    }

    #[test]
    fn same_domain_visibility() {
        let open = Policy::default();
        assert!(open.same_domain_visible);
        assert!(open.may_watch("sip:bob@example.com", "sip:alice@Example.COM"));
        assert!(!open.may_watch("sip:bob@other.org", "sip:alice@example.com"));
        assert!(!open.may_watch("sip:bob@sub.example.com", "sip:alice@example.com"));
        assert!(open.may_watch("sip:bob@[2001:db8::1]:5060", "sip:alice@[2001:DB8::1]"));
    }

    #[test]
    fn malformed_addresses_are_denied() {
        let open = Policy::default();
        assert!(!open.may_watch("sip:example.com", "sip:alice@example.com"));
        assert!(!open.may_watch("", ""));
        assert!(!open.may_watch("sip:@example.com", "sip:@example.com"));
        assert!(!open.may_watch("sip:bob@", "sip:alice@"));
        assert!(!open.may_watch("tel:+1555", "tel:+1555"));
        assert!(!open.may_watch("sip:a@[::1", "sip:a@[::1"));
    }
}
