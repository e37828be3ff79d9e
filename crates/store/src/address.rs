//! User addresses (`alice@example.com`): parsing and normalization.

use std::fmt;

use crate::StoreError;

/// Longest address accepted (user part, `@` and domain).
const MAX_ADDRESS_LEN: usize = 320;

/// A normalized user address: lower-case `username@domain`, without a `sip:` prefix.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Address {
    username: String,
    domain: String,
}

impl Address {
    /// Parses `alice@example.com` or `sip:alice@example.com` (any case) and normalizes it
    /// to lower case. The domain must be a valid host name.
    pub fn parse(input: &str) -> Result<Address, StoreError> {
        let invalid = |reason: &'static str| StoreError::InvalidAddress {
            address: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        let rest = match trimmed.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("sip:") => &trimmed[4..],
            _ => trimmed,
        };
        if rest.is_empty() {
            return Err(invalid("empty address"));
        }
        if rest.len() > MAX_ADDRESS_LEN {
            return Err(invalid("address too long"));
        }
        let Some((user, domain)) = rest.split_once('@') else {
            return Err(invalid("expected user@domain"));
        };
        if user.is_empty() {
            return Err(invalid("empty user part"));
        }
        if !user.bytes().all(valid_user_byte) {
            return Err(invalid(
                "user part contains a character that is not allowed",
            ));
        }
        if !is_valid_host_name(domain) {
            return Err(invalid("domain is not a valid host name"));
        }
        Ok(Address {
            username: user.to_ascii_lowercase(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The user part (`alice`): what digest clients send as `username`.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The domain (`example.com`): the realm of the user's stored hashes.
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.username, self.domain)
    }
}

/// Printable ASCII allowed in a SIP user part (RFC 3261 `user`: unreserved, escaped and
/// user-unreserved characters), minus the characters that would break an address.
fn valid_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b';'
                | b'?'
                | b'/'
        )
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-` (not at either
/// end of a label), each 1..=63 bytes, 253 bytes at most in all. The last label may not
/// be all digits (that would be an IPv4 address, not a name).
pub fn is_valid_host_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut last = "";
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let (Some(&first), Some(&end)) = (bytes.first(), bytes.last()) else {
            return false;
        };
        if bytes.len() > 63
            || first == b'-'
            || end == b'-'
            || !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        {
            return false;
        }
        last = label;
    }
    !last.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_sip_prefix() {
        let a = Address::parse(" SIP:Alice@Example.COM ").unwrap();
        assert_eq!(a.to_string(), "alice@example.com");
        assert_eq!(a.username(), "alice");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(
            Address::parse("bob.smith@lab.example.org")
                .unwrap()
                .username(),
            "bob.smith"
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "",
            "sip:",
            "alice",
            "@example.com",
            "alice@",
            "alice@exa mple.com",
            "al ice@example.com",
            "alice@bob@example.com",
            "alice@-example.com",
            "alice@example..com",
            "alice@10.0.0.1",
            "alice:pw@example.com",
            "<alice@example.com>",
        ] {
            assert!(
                matches!(Address::parse(bad), Err(StoreError::InvalidAddress { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn host_names() {
        assert!(is_valid_host_name("example.com"));
        assert!(is_valid_host_name("localhost"));
        assert!(is_valid_host_name("a-b.c0"));
        assert!(!is_valid_host_name("example.com."));
        assert!(!is_valid_host_name("exa_mple.com"));
        assert!(!is_valid_host_name(&"a".repeat(64)));
        assert!(!is_valid_host_name("1.2.3.4"));
    }
}
