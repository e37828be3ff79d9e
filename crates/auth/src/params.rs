//! Parser for the values of SIP/HTTP authentication headers (`WWW-Authenticate`,
//! `Proxy-Authenticate`, `Authorization`, `Proxy-Authorization`, `Authentication-Info`).
//!
//! Grammar accepted (RFC 7235 §2.1 / RFC 3261 §25.1, slightly lenient):
//!
//! ```text
//! credentials = auth-scheme [ 1*SP ( token68 / auth-param *( OWS "," OWS auth-param ) ) ]
//! auth-param  = token OWS "=" OWS ( quoted-string / value )
//! ```
//!
//! Leniencies, all unambiguous: whitespace includes HTAB, CR and LF (folded lines);
//! empty list elements (`a=1,,b=2`) are skipped; an unquoted value may hold any visible
//! character except `,` and `"` (some clients send `uri=sip:a@b` unquoted).
//!
//! Strictness: at most [`MAX_PARAMS`] parameters, at most [`MAX_HEADER_LEN`] bytes,
//! no duplicate parameter names (case-insensitive; duplicated names are a classic way
//! to confuse two parsers that disagree on which one wins), no control characters in
//! quoted strings, and nothing but parameters after the scheme. The parser never panics.
//!
//! Values without escapes are borrowed from the input ([`Cow::Borrowed`]).

use std::borrow::Cow;

/// Maximum number of parameters accepted in one header value.
pub const MAX_PARAMS: usize = 32;
/// Maximum length in bytes of a header value handed to [`parse`].
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Why a header value was rejected. Carries byte offsets, never parameter values (which
/// may be secrets such as `response` or `gssapi-data`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The value is empty or whitespace only.
    #[error("empty header value")]
    Empty,
    /// The value is longer than [`MAX_HEADER_LEN`].
    #[error("header value longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    /// The scheme is not a token.
    #[error("invalid auth scheme")]
    BadScheme,
    /// A parameter name is missing or not a token at this byte offset.
    #[error("invalid parameter name at byte {0}")]
    BadName(usize),
    /// A parameter name is not followed by `=` at this byte offset.
    #[error("expected '=' at byte {0}")]
    ExpectedEquals(usize),
    /// A parameter has no value at this byte offset.
    #[error("missing parameter value at byte {0}")]
    MissingValue(usize),
    /// A quoted string starting at this byte offset is not terminated.
    #[error("unterminated quoted string starting at byte {0}")]
    UnterminatedQuote(usize),
    /// A control character (other than HTAB) at this byte offset.
    #[error("control character at byte {0}")]
    ControlChar(usize),
    /// Something other than `,` follows a parameter at this byte offset.
    #[error("expected ',' at byte {0}")]
    ExpectedComma(usize),
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    /// The parameter with this (lower-cased) name appears twice.
    #[error("duplicate parameter {0:?}")]
    Duplicate(String),
}

/// A parsed authentication header value.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeader<'a> {
    scheme: &'a str,
    token68: Option<&'a str>,
    params: Vec<(&'a str, Cow<'a, str>)>,
}

impl std::fmt::Debug for AuthHeader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values can be secrets (digest responses, NTLM blobs, Basic credentials): only
        // the scheme and parameter names are shown.
        let names: Vec<&str> = self.params.iter().map(|(n, _)| *n).collect();
        f.debug_struct("AuthHeader")
            .field("scheme", &self.scheme)
            .field("token68", &self.token68.map(|_| ".."))
            .field("params", &names)
            .finish()
    }
}

impl<'a> AuthHeader<'a> {
    /// The scheme as written (`Digest`, `NTLM`, ...). Compare with
    /// [`AuthHeader::is_scheme`], schemes are case-insensitive.
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// Whether the scheme equals `name`, ignoring ASCII case.
    pub fn is_scheme(&self, name: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(name)
    }

    /// The token68 form (`Basic dXNlcjpwYXNz`), if the header used it instead of params.
    pub fn token68(&self) -> Option<&'a str> {
        self.token68
    }

    /// The value of parameter `name` (ASCII case-insensitive), unquoted.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// All parameters in the order they were written: (name as written, unquoted value).
    pub fn params(&self) -> &[(&'a str, Cow<'a, str>)] {
        &self.params
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // `f` only accepts ASCII bytes or stops at them, so the slice is on char
        // boundaries; `get` keeps this panic-free regardless.
        self.s.get(start..self.pos).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
}

/// Parses a quoted string whose opening `"` is at `c.pos`.
fn quoted<'a>(c: &mut Cursor<'a>) -> Result<Cow<'a, str>, ParamsError> {
    let open = c.pos;
    c.pos += 1;
    let start = c.pos;
    let bytes = c.s.as_bytes();
    let mut owned: Option<String> = None;
    let mut seg_start = start;
    loop {
        let Some(&b) = bytes.get(c.pos) else {
            return Err(ParamsError::UnterminatedQuote(open));
        };
        match b {
            b'"' => {
                let tail = c.s.get(seg_start..c.pos).unwrap_or("");
                c.pos += 1;
                return Ok(match owned {
                    None => Cow::Borrowed(tail),
                    Some(mut o) => {
                        o.push_str(tail);
                        Cow::Owned(o)
                    }
                });
            }
            b'\\' => {
                let o = owned.get_or_insert_with(String::new);
                o.push_str(c.s.get(seg_start..c.pos).unwrap_or(""));
                c.pos += 1;
                // The escaped character may be multi-byte UTF-8: copy the whole char.
                let Some(ch) = c.s.get(c.pos..).and_then(|r| r.chars().next()) else {
                    return Err(ParamsError::UnterminatedQuote(open));
                };
                if ch.is_control() && ch != '\t' {
                    return Err(ParamsError::ControlChar(c.pos));
                }
                o.push(ch);
                c.pos += ch.len_utf8();
                seg_start = c.pos;
            }
            b'\t' => c.pos += 1,
            // CR/LF inside a quoted string: allowed only as part of a fold (CRLF WSP),
            // which is kept verbatim like the rest of the whitespace.
            b'\r' | b'\n' => {
                let folded = bytes
                    .get(c.pos..)
                    .is_some_and(|r| r.starts_with(b"\r\n ") || r.starts_with(b"\r\n\t"))
                    || (b == b'\n'
                        && c.pos > 0
                        && bytes.get(c.pos - 1) == Some(&b'\r')
                        && bytes
                            .get(c.pos + 1)
                            .is_some_and(|n| *n == b' ' || *n == b'\t'));
                if !folded {
                    return Err(ParamsError::ControlChar(c.pos));
                }
                c.pos += 1;
            }
            0..=0x1f | 0x7f => return Err(ParamsError::ControlChar(c.pos)),
            _ => c.pos += 1,
        }
    }
}

/// Parses one authentication header value. See the module documentation for the grammar.
pub fn parse(input: &str) -> Result<AuthHeader<'_>, ParamsError> {
    if input.len() > MAX_HEADER_LEN {
        return Err(ParamsError::TooLong);
    }
    let mut c = Cursor { s: input, pos: 0 };
    c.skip_ws();
    if c.at_end() {
        return Err(ParamsError::Empty);
    }
    let scheme = c.take_while(is_tchar);
    if scheme.is_empty() {
        return Err(ParamsError::BadScheme);
    }
    let mut header = AuthHeader {
        scheme,
        token68: None,
        // Digest credentials carry about ten parameters: one allocation for them.
        params: Vec::with_capacity(12),
    };
    if c.at_end() {
        return Ok(header);
    }
    if !c.peek().is_some_and(is_ws) {
        return Err(ParamsError::BadScheme);
    }
    c.skip_ws();
    if c.at_end() {
        return Ok(header);
    }

    // token68: token68 chars, then '=' padding, then only whitespace.
    {
        let mut probe = Cursor {
            s: input,
            pos: c.pos,
        };
        let body = probe.take_while(is_token68_char);
        let pad_start = probe.pos;
        probe.take_while(|b| b == b'=');
        let padded_end = probe.pos;
        probe.skip_ws();
        let has_value_after_eq = padded_end == pad_start; // no '=' at all
        if !body.is_empty() && probe.at_end() && (padded_end > pad_start || has_value_after_eq) {
            // "realm" alone (no '=') is also token68 by grammar; "abc=" too.
            header.token68 = input.get(c.pos..padded_end);
            return Ok(header);
        }
    }

    loop {
        c.skip_ws();
        if c.at_end() {
            break;
        }
        if c.peek() == Some(b',') {
            // empty list element
            c.pos += 1;
            continue;
        }
        let name_pos = c.pos;
        let name = c.take_while(is_tchar);
        if name.is_empty() {
            return Err(ParamsError::BadName(name_pos));
        }
        c.skip_ws();
        if c.peek() != Some(b'=') {
            return Err(ParamsError::ExpectedEquals(c.pos));
        }
        c.pos += 1;
        c.skip_ws();
        let value = match c.peek() {
            Some(b'"') => quoted(&mut c)?,
            Some(b',') | None => return Err(ParamsError::MissingValue(c.pos)),
            Some(_) => {
                let v = c.take_while(|b| !is_ws(b) && b != b',' && b != b'"' && b >= 0x20);
                if v.is_empty() {
                    return Err(ParamsError::ControlChar(c.pos));
                }
                if v.bytes().any(|b| b == 0x7f) {
                    return Err(ParamsError::ControlChar(c.pos));
                }
                Cow::Borrowed(v)
            }
        };
        if header
            .params
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(ParamsError::Duplicate(name.to_ascii_lowercase()));
        }
        if header.params.len() >= MAX_PARAMS {
            return Err(ParamsError::TooManyParams);
        }
        header.params.push((name, value));
        c.skip_ws();
        match c.peek() {
            None => break,
            Some(b',') => c.pos += 1,
            Some(_) => return Err(ParamsError::ExpectedComma(c.pos)),
        }
    }
    Ok(header)
}

/// Renders `value` as a quoted-string: wraps it in `"` and escapes `"` and `\`.
/// Control characters (including CR and LF, which cannot be escaped and would allow
/// header injection) are replaced by a space.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\t' => out.push('\t'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digest_authorization() {
        let h = parse(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(h.is_scheme("digest"));
        assert_eq!(h.scheme(), "Digest");
        assert_eq!(h.len(), 9);
        assert_eq!(h.get("USERNAME"), Some("Mufasa"));
        assert_eq!(h.get("qop"), Some("auth"));
        assert_eq!(h.get("nc"), Some("00000001"));
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.params()[0].0, "username");
        assert!(matches!(h.params()[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_are_unquoted() {
        let h = parse(r#"Digest realm="a \"quoted\" \\ realm", x="é\ü""#).unwrap();
        assert_eq!(h.get("realm"), Some(r#"a "quoted" \ realm"#));
        assert!(matches!(h.params()[0].1, Cow::Owned(_)));
        assert_eq!(h.get("x"), Some("éü"));
    }

    #[test]
    fn sipe_ntlm_header() {
        let h = parse(
            "NTLM qop=\"auth\", opaque=\"85185AE4\", realm=\"SIP Communications Service\", \
             targetname=\"fe.example.com\", gssapi-data=\"\", version=4, crand=\"13317733\", cnum=\"1\"",
        )
        .unwrap();
        assert!(h.is_scheme("ntlm"));
        assert_eq!(h.get("gssapi-data"), Some(""));
        assert_eq!(h.get("version"), Some("4"));
        assert_eq!(h.get("realm"), Some("SIP Communications Service"));
    }

    #[test]
    fn whitespace_and_empty_elements() {
        let h = parse("  Digest\t a = 1 ,, b=\"2\" ,\r\n c=3  ").unwrap();
        assert_eq!(h.get("a"), Some("1"));
        assert_eq!(h.get("b"), Some("2"));
        assert_eq!(h.get("c"), Some("3"));
        let h = parse("Digest realm=\"folded\r\n value\"").unwrap();
        assert_eq!(h.get("realm"), Some("folded\r\n value"));
    }

    #[test]
    fn scheme_only_and_token68() {
        let h = parse("NTLM").unwrap();
        assert!(h.is_empty() && h.token68().is_none());
        let h = parse("Basic dXNlcjpwYXNz==").unwrap();
        assert_eq!(h.token68(), Some("dXNlcjpwYXNz=="));
        assert!(h.is_empty());
        let h = parse("Bearer abc.def-ghi").unwrap();
        assert_eq!(h.token68(), Some("abc.def-ghi"));
    }

    #[test]
    fn unquoted_uri_is_accepted() {
        let h = parse("Digest uri=sip:alice@example.com;transport=tcp, nc=1").unwrap();
        assert_eq!(h.get("uri"), Some("sip:alice@example.com;transport=tcp"));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(""), Err(ParamsError::Empty));
        assert_eq!(parse("   "), Err(ParamsError::Empty));
        assert_eq!(parse("=x"), Err(ParamsError::BadScheme));
        assert_eq!(parse("Dig\"est a=1"), Err(ParamsError::BadScheme));
        assert!(matches!(
            parse("Digest a=1, =2"),
            Err(ParamsError::BadName(_))
        ));
        assert!(matches!(
            parse("Digest a=1, b"),
            Err(ParamsError::ExpectedEquals(_))
        ));
        assert!(matches!(
            parse("Digest a=, b=1"),
            Err(ParamsError::MissingValue(_))
        ));
        assert!(matches!(
            parse("Digest b=1, a="),
            Err(ParamsError::MissingValue(_))
        ));
        // A lone `a=` is token68 by the RFC 7235 grammar.
        assert_eq!(parse("Digest a=").unwrap().token68(), Some("a="));
        assert!(matches!(
            parse("Digest a=\"open"),
            Err(ParamsError::UnterminatedQuote(_))
        ));
        assert!(matches!(
            parse("Digest a=\"open\\"),
            Err(ParamsError::UnterminatedQuote(_))
        ));
        assert!(matches!(
            parse("Digest a=\"x\ny\""),
            Err(ParamsError::ControlChar(_))
        ));
        assert!(matches!(
            parse("Digest a=\"x\0y\""),
            Err(ParamsError::ControlChar(_))
        ));
        assert!(matches!(
            parse("Digest a=\"x\" y=1"),
            Err(ParamsError::ExpectedComma(_))
        ));
        assert_eq!(
            parse("Digest realm=a, REALM=b"),
            Err(ParamsError::Duplicate("realm".into()))
        );
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            parse(&format!("Digest {}", many.join(", "))),
            Err(ParamsError::TooManyParams)
        );
        let ok: Vec<String> = (0..MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            parse(&format!("Digest {}", ok.join(", "))).unwrap().len(),
            MAX_PARAMS
        );
        let long = format!("Digest a=\"{}\"", "x".repeat(MAX_HEADER_LEN));
        assert_eq!(parse(&long), Err(ParamsError::TooLong));
    }

    #[test]
    fn debug_hides_values() {
        let h = parse("Digest response=\"secretvalue\"").unwrap();
        let s = format!("{h:?}");
        assert!(s.contains("response") && !s.contains("secretvalue"));
    }

    #[test]
    fn quote_roundtrip() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\r\ny"), "\"x  y\"");
        let v = "we \"love\" \\ quotes é";
        let hdr = format!("X v={}", quote(v));
        let h = parse(&hdr).unwrap();
        assert_eq!(h.get("v"), Some(v));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_auth_like(s in "[A-Za-z]{1,6}( [a-z=\", \\\\\r\n\t\u{7f}\u{e9}-]{0,80})?") {
            let _ = parse(&s);
        }

        #[test]
        fn quoted_values_roundtrip(v in "\\PC{0,40}", name in "[a-z][a-z0-9-]{0,10}") {
            let hdr = format!("Digest {name}={}", quote(&v));
            let h = parse(&hdr).unwrap();
            let expected: String = v
                .chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect();
            prop_assert_eq!(h.get(&name), Some(expected.as_str()));
        }
    }
}
