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
            /// Names of two bytes or more are compared as a few machine words against
            /// the known names of the same length only (see [`lookup_long`]).
            pub fn from_bytes(name: &[u8]) -> HeaderName {
                if let [c] = name {
                    let c = c.to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                lookup_long(name)
            }
        }

        /// Every known name in its canonical spelling (not the compact forms).
        const KNOWN_NAMES: &[(&str, HeaderName)] = &[ $( ($canon, HeaderName::$variant), )* ];
    };
}

/// The longest header name [`lookup_long`] can hold (checked when it is built).
const MAX_NAME: usize = 24;

/// Known names of one length, at most (checked when the table is built).
const SAME_LENGTH: usize = 8;

/// A known header name as the words [`name_words`] loads: lower-cased, and a mask
/// with bit 0x20 set in the bytes that are letters. `(word | mask) == lower` then
/// holds exactly when the bytes are equal ignoring ASCII case: a letter matches in
/// either case, every other byte must be equal.
#[derive(Clone, Copy)]
struct FoldedName {
    lower: [u64; 3],
    mask: [u64; 3],
    name: HeaderName,
}

/// The bytes `off..off + width` of `s` as a little-endian word, lower-cased, or (with
/// `mask`) 0x20 for each letter and 0 for any other byte.
const fn const_word(s: &[u8], off: usize, width: usize, mask: bool) -> u64 {
    let mut w = 0u64;
    let mut k = 0;
    while k < width {
        let c = s[off + k];
        let b = if mask {
            if c.is_ascii_alphabetic() { 0x20 } else { 0 }
        } else {
            c.to_ascii_lowercase()
        };
        w |= (b as u64) << (8 * k);
        k += 1;
    }
    w
}

/// [`name_words`] for a known name, at compile time.
const fn const_words(s: &[u8], mask: bool) -> [u64; 3] {
    let n = s.len();
    if n >= 8 {
        let mid = if n - 8 < 8 { n - 8 } else { 8 };
        [
            const_word(s, 0, 8, mask),
            const_word(s, mid, 8, mask),
            const_word(s, n - 8, 8, mask),
        ]
    } else if n >= 4 {
        [const_word(s, 0, 4, mask), const_word(s, n - 4, 4, mask), 0]
    } else {
        [const_word(s, 0, 2, mask), const_word(s, n - 2, 2, mask), 0]
    }
}

/// The known names, folded.
static FOLDED_NAMES: [FoldedName; KNOWN_NAMES.len()] = {
    let mut t = [FoldedName {
        lower: [0; 3],
        mask: [0; 3],
        name: HeaderName::Other,
    }; KNOWN_NAMES.len()];
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        let s = KNOWN_NAMES[i].0.as_bytes();
        assert!(
            s.len() >= 2 && s.len() <= MAX_NAME,
            "known header name length"
        );
        t[i] = FoldedName {
            lower: const_words(s, false),
            mask: const_words(s, true),
            name: KNOWN_NAMES[i].1,
        };
        i += 1;
    }
    t
};

/// For each length, the indices in [`FOLDED_NAMES`] of the names that long; the
/// unused slots hold an index past the end.
static NAMES_BY_LENGTH: [[u8; SAME_LENGTH]; MAX_NAME + 1] = {
    let mut t = [[u8::MAX; SAME_LENGTH]; MAX_NAME + 1];
    assert!(
        KNOWN_NAMES.len() < u8::MAX as usize,
        "too many known header names"
    );
    let mut i = 0;
    while i < KNOWN_NAMES.len() {
        let n = KNOWN_NAMES[i].0.len();
        let mut k = 0;
        while t[n][k] != u8::MAX {
            k += 1;
            assert!(k < SAME_LENGTH, "too many known header names of one length");
        }
        t[n][k] = i as u8;
        i += 1;
    }
    t
};

/// `s` (2 to [`MAX_NAME`] bytes) as three words covering all its bytes, loaded at
/// offsets that depend only on its length (so they overlap for most lengths): 8-byte
/// words at 0, min(8, n-8) and n-8; below 8 bytes 4-byte words at 0 and n-4; below
/// 4 bytes 2-byte words at 0 and n-2.
fn name_words(s: &[u8]) -> [u64; 3] {
    let n = s.len();
    let word8 = |i: usize| {
        s.get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let word4 = |i: usize| {
        s.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    let word2 = |i: usize| {
        s.get(i..i + 2)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u16::from_le_bytes(b)))
    };
    if n >= 8 {
        [word8(0), word8((n - 8).min(8)), word8(n - 8)]
    } else if n >= 4 {
        [word4(0), word4(n - 4), 0]
    } else if n >= 2 {
        [word2(0), word2(n - 2), 0]
    } else {
        [0; 3]
    }
}

/// [`HeaderName::from_bytes`] for names of two bytes or more: the known names of
/// the same length (at most [`SAME_LENGTH`]), each compared as three words. The
/// chain of `eq_ignore_ascii_case` it replaces cost about 75 instructions a name.
fn lookup_long(name: &[u8]) -> HeaderName {
    let Some(candidates) = NAMES_BY_LENGTH.get(name.len()) else {
        return HeaderName::Other;
    };
    if name.len() < 2 {
        return HeaderName::Other;
    }
    let w = name_words(name);
    for &i in candidates {
        let Some(k) = FOLDED_NAMES.get(usize::from(i)) else {
            break;
        };
        if (w[0] | k.mask[0]) == k.lower[0]
            && (w[1] | k.mask[1]) == k.lower[1]
            && (w[2] | k.mask[2]) == k.lower[2]
        {
            return k.name;
        }
    }
    HeaderName::Other
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
        let (transport, rest) = match split_plain_protocol(v) {
            Some(parts) => parts,
            None => split_protocol(v)?,
        };
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

/// The sent-protocol of a Via value spelt the usual way, `SIP/2.0/<transport>`
/// (`SIP` in any case) followed by whitespace that is not followed by `/`: the
/// transport and what follows the whitespace. `None` for anything else, which
/// [`split_protocol`] then reads; both give the same answer where this one answers.
fn split_plain_protocol(v: &str) -> Option<(&str, &str)> {
    let b = v.as_bytes();
    let head: [u8; 8] = b.get(..8)?.try_into().ok()?;
    // "sip/2.0/" with bit 0x20 forced in the three letters only (see FoldedName)
    if u64::from_le_bytes(head) | 0x0020_2020 != u64::from_le_bytes(*b"sip/2.0/") {
        return None;
    }
    let end = 8 + b[8..].iter().take_while(|&&c| is_token_char(c)).count();
    let ws = b[end..]
        .iter()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    if end == 8 || ws == 0 || b.get(end + ws) == Some(&b'/') {
        return None;
    }
    Some((v.get(8..end)?, v.get(end + ws..)?))
}

/// The sent-protocol of a Via value in any spelling RFC 3261 allows (`SIP / 2.0 /
/// UDP`): the transport and the rest of the value.
fn split_protocol(v: &str) -> Result<(&str, &str), HeaderError> {
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
    Ok((transport, rest))
}

/// Whether a `;`-parameter section has a parameter without a name (`;;`, a trailing
/// `;`, `;=x`): RFC 4475 badinv01. Jumps between the bytes that matter (memchr):
/// `;` and `"` outside a quoted string, a backslash and `"` inside one.
fn has_nameless_param(section: &str) -> bool {
    let b = section.as_bytes();
    let mut i = 0;
    while let Some(n) = b
        .get(i..)
        .and_then(|rest| memchr::memchr2(b';', b'"', rest))
    {
        let at = i + n;
        if b[at] == b'"' {
            // to the closing quote; an unterminated string runs to the end
            let mut j = at + 1;
            loop {
                let Some(m) = b
                    .get(j..)
                    .and_then(|rest| memchr::memchr2(b'\\', b'"', rest))
                else {
                    return false;
                };
                if b[j + m] == b'"' {
                    i = j + m + 1;
                    break;
                }
                j += m + 2; // a quoted pair
            }
        } else {
            let mut j = at + 1;
            while matches!(b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            if matches!(b.get(j), None | Some(b';' | b'=')) {
                return true;
            }
            i = j;
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
            if host.is_empty() || find_byte(host, b':').is_some() {
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

    /// What [`HeaderName::from_bytes`] must answer for names of two bytes or more:
    /// the known names compared one by one.
    fn from_bytes_reference(name: &[u8]) -> HeaderName {
        KNOWN_NAMES
            .iter()
            .find(|(canon, _)| name.eq_ignore_ascii_case(canon.as_bytes()))
            .map_or(HeaderName::Other, |&(_, h)| h)
    }

    #[test]
    fn from_bytes_agrees_with_plain_comparisons_on_near_misses_and_noise() {
        // Every known name with one byte changed by one bit: the case bit (a letter
        // in the other case, or a non-letter turned into another byte, e.g. `-` into
        // CR), the low bit, the top bit.
        for &(canon, _) in KNOWN_NAMES {
            for i in 0..canon.len() {
                for bit in [0x20u8, 0x01, 0x80, 0x40] {
                    let mut b = canon.as_bytes().to_vec();
                    b[i] ^= bit;
                    let shown = String::from_utf8_lossy(&b).into_owned();
                    assert_eq!(
                        HeaderName::from_bytes(&b),
                        from_bytes_reference(&b),
                        "{shown:?}"
                    );
                }
            }
        }
        // Strings of every length up to 30 made of the bytes the names are made of,
        // in both cases (xorshift, fixed seed).
        let alphabet: Vec<u8> = KNOWN_NAMES
            .iter()
            .flat_map(|(c, _)| c.bytes())
            .flat_map(|c| [c, c ^ 0x20])
            .collect();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 2 + (x % 29) as usize;
            let b: Vec<u8> = (0..len)
                .map(|k| alphabet[((x >> (k % 8 * 8)) as usize + k * 31) % alphabet.len()])
                .collect();
            assert_eq!(HeaderName::from_bytes(&b), from_bytes_reference(&b));
        }
        assert_eq!(HeaderName::from_bytes(&[b'a'; 40]), HeaderName::Other);
    }

    #[test]
    fn via_plain_protocol_reads_as_the_general_one() {
        let cases = [
            "SIP/2.0/UDP host",
            "sip/2.0/tcp 127.0.0.1:5060;branch=z9hG4bK1",
            "Sip/2.0/TLS\thost",
            "SIP/2.0/UDP /host",
            "SIP/2.0/UDP \x0c/host",
            "SIP/2.0/UDP\x0c host",
            "SIP/2.0/ UDP host",
            "SIP/2.0/UDP/x host",
            "SIP/2.00/UDP host",
            "SIP/2.0/UDP",
            "SIP/2.0/",
            "SIP/2.0",
            "XIP/2.0/UDP host",
            "SIP/2.0/U\x0bDP host",
            "SIP/2.0/UDP(comment) host",
            "SIP\x0f2.0/UDP host",
        ];
        let mut plain = 0;
        for v in cases {
            if let Some(parts) = split_plain_protocol(v) {
                plain += 1;
                assert_eq!(Ok(parts), split_protocol(v), "{v:?}");
            }
        }
        // the usual spellings take the short way
        assert_eq!(plain, 4);
    }

    /// The byte-by-byte scan [`has_nameless_param`] replaced.
    fn has_nameless_param_reference(section: &str) -> bool {
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

    #[test]
    fn nameless_parameters_are_found_as_the_byte_scan_found_them() {
        for s in [
            ";branch=z9hG4bK1",
            ";branch=1;;rport",
            ";branch=1;",
            ";=x",
            "; ;x",
            ";x=\"a;;b\";y",
            ";x=\"a\\\";;\";y",
            ";x=\"unterminated;;",
            ";x=\"a\\",
            "",
        ] {
            assert_eq!(
                has_nameless_param(s),
                has_nameless_param_reference(s),
                "{s:?}"
            );
        }
        let alphabet = b";=\"\\ \tab";
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let s: String = (0..len)
                .map(|k| char::from(alphabet[((x >> (k * 5)) % alphabet.len() as u64) as usize]))
                .collect();
            assert_eq!(
                has_nameless_param(&s),
                has_nameless_param_reference(&s),
                "{s:?}"
            );
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
