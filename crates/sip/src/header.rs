//! Header names (with RFC 3261 §7.3.3 compact forms) and borrowed views of the header
//! values confab needs typed: name-addr (From, To, Contact, Route, ...), Via and generic
//! `;name=value` parameters.

use crate::uri::Uri;

/// RFC 3261 `token` characters.
pub fn is_token_char(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// `is_token_char` as a table: it runs on every byte of every header name.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// Byte offset of an ASCII byte: a plain loop, faster than `str::find` (memchr
/// set-up) on the short values of header fields.
pub(crate) fn find_byte(s: &str, c: u8) -> Option<usize> {
    s.bytes().position(|b| b == c)
}

pub(crate) fn rfind_byte(s: &str, c: u8) -> Option<usize> {
    s.bytes().rposition(|b| b == c)
}

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header name. Known names are matched case-insensitively, including compact
        /// forms; anything else is [`HeaderName::Other`] and compared by its text.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum HeaderName {
            $( $variant, )*
            Other,
        }

        impl HeaderName {
            /// Canonical spelling used when confab writes the header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Looks up a header name as received (case-insensitive, compact forms).
            /// A plain chain of comparisons: each rejects on the length or the first
            /// byte, which measured fewer instructions than bucketing the names by
            /// length and first/last byte (docs/performance.md, issue 16).
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                if name.len() == 1 {
                    let c = name[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                $( if name.eq_ignore_ascii_case($canon.as_bytes()) { return HeaderName::$variant; } )*
                HeaderName::Other
            }
        }

        /// Every known name in its canonical spelling (not the compact forms).
        #[cfg(test)]
        const KNOWN_NAMES: &[(&str, HeaderName)] = &[ $( ($canon, HeaderName::$variant), )* ];
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    Contact => "Contact", b'm';
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Route => "Route";
    RecordRoute => "Record-Route";
    Path => "Path";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    SubscriptionState => "Subscription-State";
    SipEtag => "SIP-ETag";
    SipIfMatch => "SIP-If-Match";
    Supported => "Supported", b'k';
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject", b's';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    SessionExpires => "Session-Expires", b'x';
    RetryAfter => "Retry-After";
    Warning => "Warning";
    Timestamp => "Timestamp";
    PAssertedIdentity => "P-Asserted-Identity";
}

impl HeaderName {
    /// Headers whose values may be comma-joined on one line (RFC 3261 §7.3.1). Only
    /// these are split by [`split_values`]; the authentication headers and anything
    /// unknown are always kept whole.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::Accept
        )
    }
}

/// Splits a comma-joined header value into its elements, honouring quoted strings
/// and `<...>` so that commas inside URIs or display names do not split.
pub fn split_values(value: &str) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0usize;
    let mut pos = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut in_quote = false;
        let mut in_angle = false;
        // Jump between the bytes that matter in each state (memchr): in a quoted
        // string `\` and `"`; inside <> `"` and `>`; otherwise `"`, `<` and `,`.
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let next = if in_quote {
                memchr::memchr2(b'\\', b'"', rest)
            } else if in_angle {
                memchr::memchr2(b'"', b'>', rest)
            } else {
                memchr::memchr3(b'"', b'<', b',', rest)
            };
            let Some(n) = next else {
                pos = bytes.len();
                break;
            };
            pos += n;
            let b = bytes[pos];
            if in_quote {
                if b == b'\\' {
                    pos += 1;
                } else if b == b'"' {
                    in_quote = false;
                }
            } else if b == b'"' {
                in_quote = true;
            } else if b == b'<' {
                in_angle = true;
            } else if b == b'>' {
                in_angle = false;
            } else if b == b',' && !in_angle {
                let item = value.get(start..pos).unwrap_or("").trim_ascii();
                pos += 1;
                start = pos;
                return Some(item);
            }
            pos += 1;
        }
        done = true;
        let item = value
            .get(start.min(value.len())..)
            .unwrap_or("")
            .trim_ascii();
        Some(item)
    })
    .filter(|s| !s.is_empty())
}

/// Iterates `;name[=value]` parameters of a parameter section (leading `;` optional).
/// Values keep their quotes; use [`unquote`] for quoted strings.
pub fn params(section: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    let bytes = section.as_bytes();
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        loop {
            if pos >= bytes.len() {
                return None;
            }
            // skip separators
            while pos < bytes.len() && (bytes[pos] == b';' || bytes[pos].is_ascii_whitespace()) {
                pos += 1;
            }
            if pos >= bytes.len() {
                return None;
            }
            let start = pos;
            let mut in_quote = false;
            while pos < bytes.len() {
                // Jump to the next byte that matters (memchr).
                let rest = &bytes[pos..];
                let next = if in_quote {
                    memchr::memchr2(b'\\', b'"', rest)
                } else {
                    memchr::memchr2(b'"', b';', rest)
                };
                let Some(n) = next else {
                    pos = bytes.len();
                    break;
                };
                pos += n;
                let b = bytes[pos];
                if in_quote {
                    if b == b'\\' {
                        pos += 1;
                    } else if b == b'"' {
                        in_quote = false;
                    }
                } else if b == b'"' {
                    in_quote = true;
                } else if b == b';' {
                    break;
                }
                pos += 1;
            }
            let item = section
                .get(start..pos.min(bytes.len()))
                .unwrap_or("")
                .trim_ascii();
            if item.is_empty() {
                continue;
            }
            return Some(match find_byte(item, b'=') {
                Some(eq) => (item[..eq].trim_ascii(), Some(item[eq + 1..].trim_ascii())),
                None => (item, None),
            });
        }
    })
}

/// Finds a parameter by name (case-insensitive). `Some(None)` for a flag parameter.
pub fn param<'a>(section: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(section)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Removes surrounding double quotes (without unescaping; SIP values confab reads
/// from quoted strings never need it).
pub fn unquote(v: &str) -> &str {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route,
/// Record-Route, Refer-To... `"Alice" <sip:alice@example.com>;tag=1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Display name, without quotes.
    pub display: Option<&'a str>,
    /// The URI text (inside `<>` when present).
    pub uri: &'a str,
    /// Header parameters after the address, starting at the first `;` (or empty).
    pub params: &'a str,
    /// Whether the URI was enclosed in angle brackets.
    pub bracketed: bool,
}

/// Errors from typed header views.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("empty value")]
    Empty,
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("missing '>' after '<'")]
    UnterminatedAngle,
    #[error("no URI")]
    NoUri,
    #[error("malformed Via: {0}")]
    Via(&'static str),
    #[error("malformed CSeq")]
    CSeq,
}

impl<'a> NameAddr<'a> {
    pub fn parse(value: &'a str) -> Result<NameAddr<'a>, HeaderError> {
        let v = value.trim_ascii();
        if v.is_empty() {
            return Err(HeaderError::Empty);
        }
        let bytes = v.as_bytes();
        // Find '<' outside a quoted display name.
        let mut i = 0;
        let mut display_end = None;
        let mut lt = None;
        if bytes[0] == b'"' {
            i = 1;
            let mut closed = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 1,
                    b'"' => {
                        closed = true;
                        display_end = Some(i);
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            if !closed {
                return Err(HeaderError::UnterminatedQuote);
            }
        }
        while i < bytes.len() {
            if bytes[i] == b'<' {
                lt = Some(i);
                break;
            }
            if bytes[i] == b';' && display_end.is_none() {
                break;
            }
            i += 1;
        }
        if let Some(lt) = lt {
            let gt = find_byte(&v[lt..], b'>')
                .map(|g| g + lt)
                .ok_or(HeaderError::UnterminatedAngle)?;
            let display = match display_end {
                Some(end) => Some(&v[1..end]),
                None => {
                    let d = v[..lt].trim_ascii();
                    (!d.is_empty()).then_some(d)
                }
            };
            let uri = v[lt + 1..gt].trim_ascii();
            if uri.is_empty() {
                return Err(HeaderError::NoUri);
            }
            let rest = v[gt + 1..].trim_ascii_start();
            Ok(NameAddr {
                display,
                uri,
                params: rest,
                bracketed: true,
            })
        } else {
            if display_end.is_some() {
                return Err(HeaderError::NoUri);
            }
            // addr-spec: parameters after the first ';' belong to the header.
            let (uri, params) = match find_byte(v, b';') {
                Some(p) => (v[..p].trim_ascii(), &v[p..]),
                None => (v, ""),
            };
            if uri.is_empty() {
                return Err(HeaderError::NoUri);
            }
            Ok(NameAddr {
                display: None,
                uri,
                params,
                bracketed: false,
            })
        }
    }

    /// The `tag` header parameter.
    pub fn tag(&self) -> Option<&'a str> {
        param(self.params, "tag").flatten()
    }

    /// Parsed URI view.
    pub fn parsed_uri(&self) -> Result<Uri<'a>, crate::uri::UriError> {
        Uri::parse(self.uri)
    }

    /// A header parameter.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Transport token as received (`UDP`, `tcp`, `TLS`, `WS`, `WSS`...).
    pub transport: &'a str,
    /// sent-by host (IPv6 with brackets).
    pub host: &'a str,
    pub port: Option<u16>,
    /// Parameters, starting at the first `;` (or empty).
    pub params: &'a str,
}

impl<'a> Via<'a> {
    pub fn parse(value: &'a str) -> Result<Via<'a>, HeaderError> {
        let v = value.trim_ascii();
        let (proto, rest) = split_ws(v).ok_or(HeaderError::Via("no sent-by"))?;
        let mut parts = proto.split('/').map(str::trim_ascii);
        let name = parts.next().unwrap_or("");
        let version = parts.next().unwrap_or("");
        let transport = parts.next().unwrap_or("");
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(HeaderError::Via("protocol is not SIP/2.0"));
        }
        if transport.is_empty() || !transport.bytes().all(is_token_char) || parts.next().is_some() {
            return Err(HeaderError::Via("bad transport"));
        }
        let rest = rest.trim_ascii_start();
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(p) => (rest[..p].trim_ascii(), &rest[p..]),
            None => (rest.trim_ascii(), ""),
        };
        // A Via may carry a comment in parentheses; drop it.
        let sent_by = match find_byte(sent_by, b'(') {
            Some(p) => sent_by[..p].trim_ascii(),
            None => sent_by,
        };
        let (host, port) = split_host_port(sent_by).ok_or(HeaderError::Via("bad sent-by"))?;
        if has_nameless_param(params) {
            return Err(HeaderError::Via("empty parameter"));
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        param(self.params, "branch").flatten()
    }

    pub fn received(&self) -> Option<&'a str> {
        param(self.params, "received").flatten()
    }

    /// `None`: no rport; `Some(None)`: rport requested; `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        param(self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Whether the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.starts_with(crate::MAGIC_COOKIE))
    }
}

/// Whether a `;`-parameter section has a parameter without a name (`;;`, a trailing
/// `;`, `;=x`): RFC 4475 badinv01.
fn has_nameless_param(section: &str) -> bool {
    let b = section.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if in_quote {
            match c {
                b'\\' => i += 1,
                b'"' => in_quote = false,
                _ => {}
            }
        } else if c == b'"' {
            in_quote = true;
        } else if c == b';' {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if matches!(b.get(i), None | Some(b';' | b'=')) {
                return true;
            }
        }
    }
    false
}

fn split_ws(s: &str) -> Option<(&str, &str)> {
    // "SIP / 2.0 / UDP" may contain spaces around the slashes (RFC 4475 torture test);
    // the protocol ends at the first whitespace that is not next to a '/'.
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let prev_slash = i > 0 && b[i - 1] == b'/';
            let next_slash = j < b.len() && b[j] == b'/';
            if !prev_slash && !next_slash {
                return Some((&s[..i], &s[j..]));
            }
            i = j;
            continue;
        }
        i += 1;
    }
    None
}

/// Splits `host[:port]`, accepting `[v6]:port`. Returns `None` on a malformed port
/// or empty host.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim_ascii();
    if s.is_empty() {
        return None;
    }
    if s.starts_with('[') {
        let end = find_byte(s, b']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        if rest.is_empty() {
            return Some((host, None));
        }
        let port = rest.strip_prefix(':')?.trim_ascii().parse().ok()?;
        return Some((host, Some(port)));
    }
    match rfind_byte(s, b':') {
        Some(p) => {
            let host = s[..p].trim_ascii();
            if host.is_empty() || host.contains(':') {
                return None;
            }
            Some((host, Some(s[p + 1..].trim_ascii().parse().ok()?)))
        }
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b"q"), HeaderName::Other);
        assert_eq!(HeaderName::from_bytes(b""), HeaderName::Other);
    }

    #[test]
    fn every_known_name_is_found_in_any_case_and_near_misses_are_not() {
        for &(canon, h) in KNOWN_NAMES {
            assert_eq!(HeaderName::from_bytes(canon.as_bytes()), h, "{canon}");
            let upper = canon.to_ascii_uppercase();
            assert_eq!(HeaderName::from_bytes(upper.as_bytes()), h, "{upper}");
            let lower = canon.to_ascii_lowercase();
            assert_eq!(HeaderName::from_bytes(lower.as_bytes()), h, "{lower}");
            assert_eq!(h.as_str(), canon);
            // One byte more, one less, one changed: unknown.
            let longer = format!("{canon}x");
            assert_eq!(HeaderName::from_bytes(longer.as_bytes()), HeaderName::Other);
            let shorter = &canon.as_bytes()[..canon.len() - 1];
            if shorter.len() > 1 {
                assert_eq!(HeaderName::from_bytes(shorter), HeaderName::Other);
            }
            let mut changed = canon.as_bytes().to_vec();
            changed[canon.len() / 2] = b'#';
            assert_eq!(HeaderName::from_bytes(&changed), HeaderName::Other);
        }
    }

    #[test]
    fn split_respects_quotes_and_angles() {
        let v: Vec<_> = split_values(r#""A, B" <sip:a@b;x=1,2>;q=1, <sip:c@d>"#).collect();
        assert_eq!(v, vec![r#""A, B" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]);
        let v: Vec<_> = split_values("SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b").collect();
        assert_eq!(v, vec!["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"]);
    }

    #[test]
    fn name_addr_forms() {
        let n =
            NameAddr::parse(r#""J Rosenberg \"" <sip:jdrosen@example.com>;tag=98asjd8"#).unwrap();
        assert_eq!(n.display, Some(r#"J Rosenberg \""#));
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("sip:alice@example.com;tag=abc").unwrap();
        assert_eq!(n.uri, "sip:alice@example.com");
        assert_eq!(n.tag(), Some("abc"));
        let n = NameAddr::parse("Bob <sips:bob@[2001:db8::1]:5061;transport=tls>").unwrap();
        assert_eq!(n.display, Some("Bob"));
        assert_eq!(n.uri, "sips:bob@[2001:db8::1]:5061;transport=tls");
        assert!(NameAddr::parse("<sip:a@b").is_err());
        assert!(NameAddr::parse("\"unterminated <sip:a@b>").is_err());
        assert!(NameAddr::parse("").is_err());
    }

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.rport(), Some(None));
        assert!(v.is_rfc3261());
        let v = Via::parse("SIP / 2.0 / TCP [2001:db8::9]:5061 ; branch=abc").unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, "[2001:db8::9]");
        assert!(!v.is_rfc3261());
        let v = Via::parse("SIP/2.0/tcp 127.0.0.1:47894").unwrap();
        assert_eq!(v.branch(), None);
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:99999").is_err());
    }
}
