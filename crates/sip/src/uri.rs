//! A borrowed view of a SIP, SIPS or tel URI (RFC 3261 §19.1, RFC 3966).

use std::borrow::Cow;

use crate::header::{find_byte, param, rfind_byte, split_host_port};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// `sip:user:password@host:port;params?headers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// User part as written (may contain %-escapes); `None` when absent.
    pub user: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    /// URI parameters, starting at the first `;` (or empty).
    pub params: &'a str,
    /// Headers after `?` (or empty).
    pub headers: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("unsupported URI scheme")]
    Scheme,
    #[error("URI has no host")]
    NoHost,
    #[error("bad port in URI")]
    Port,
    #[error("invalid character in URI")]
    Char,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let s = s.trim_ascii();
        let colon = find_byte(s, b':').ok_or(UriError::Scheme)?;
        let scheme = &s[..colon];
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            return Err(UriError::Scheme);
        };
        let rest = &s[colon + 1..];
        // Every byte is looked at, with no early exit, so that this compiles to
        // vector compares: a URI has no such byte unless it is malformed.
        let bad = rest.bytes().fold(false, |bad, b| {
            bad | (b <= b' ') | (b == 0x7f) | (b == b'<') | (b == b'>') | (b == b'"')
        });
        if bad {
            return Err(UriError::Char);
        }
        if scheme == Scheme::Tel {
            let (number, params) = match find_byte(rest, b';') {
                Some(p) => (&rest[..p], &rest[p..]),
                None => (rest, ""),
            };
            if number.is_empty() {
                return Err(UriError::NoHost);
            }
            return Ok(Uri {
                scheme,
                user: Some(number),
                host: "",
                port: None,
                params,
                headers: "",
            });
        }
        // userinfo ends at the last '@' before any ';' of the host part. Users may
        // contain ';' (user-params) and '?' (RFC 4475 intmeth) so search '@' first;
        // '@' cannot appear unescaped in URI parameters or headers.
        let (user, hostpart) = match rfind_byte(rest, b'@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match find_byte(hostpart, b'?') {
            Some(q) => (&hostpart[..q], &hostpart[q + 1..]),
            None => (hostpart, ""),
        };
        let (hostport, params) = match find_byte(hostpart, b';') {
            Some(p) => (&hostpart[..p], &hostpart[p..]),
            None => (hostpart, ""),
        };
        let (host, port) = split_host_port(hostport).ok_or(if hostport.is_empty() {
            UriError::NoHost
        } else {
            UriError::Port
        })?;
        if host.is_empty() {
            return Err(UriError::NoHost);
        }
        if port == Some(0) {
            return Err(UriError::Port);
        }
        let user = user.map(|u| match find_byte(u, b':') {
            Some(c) => &u[..c],
            None => u,
        });
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    /// User part with %-escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'a, str>> {
        self.user.map(percent_decode)
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }

    /// The `transport` parameter, lower-cased by the caller if needed.
    pub fn transport(&self) -> Option<&'a str> {
        self.param("transport").flatten()
    }

    /// Address-of-record key: `user@host`, lower-case, escapes decoded; `host` alone
    /// when there is no user part.
    pub fn aor(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        match self.user_unescaped() {
            Some(u) if self.scheme != Scheme::Tel => format!("{}@{}", u.to_lowercase(), host),
            Some(u) => u.into_owned(),
            None => host,
        }
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let u = Uri::parse("sip:alice@example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.aor(), "alice@example.com");
        let u =
            Uri::parse("sips:bob:secret@[2001:db8::1]:5061;transport=tls;lr?subject=hi").unwrap();
        assert_eq!(u.user, Some("bob"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tls"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers, "subject=hi");
        let u = Uri::parse("sip:example.com").unwrap();
        assert_eq!(u.user, None);
        assert_eq!(u.aor(), "example.com");
        let u = Uri::parse("sip:%61lice@Example.COM").unwrap();
        assert_eq!(u.aor(), "alice@example.com");
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap();
        assert_eq!(u.user, Some("+1-201-555-0123"));
    }

    #[test]
    fn rejects_bad() {
        assert_eq!(Uri::parse("http://x"), Err(UriError::Scheme));
        assert_eq!(Uri::parse("sip:"), Err(UriError::NoHost));
        assert_eq!(Uri::parse("sip:a@b:0"), Err(UriError::Port));
        assert_eq!(Uri::parse("sip:a@b:x"), Err(UriError::Port));
        assert_eq!(Uri::parse("sip:a b@c"), Err(UriError::Char));
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
