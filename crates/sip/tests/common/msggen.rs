//! proptest generators of valid SIP messages with the values they must parse to.
//! Formatting varies (header order, compact forms, folding, comma-joined Via lists,
//! whitespace around colons) while the meaning stays known.

use proptest::prelude::*;

#[derive(Clone, Debug)]
pub struct GenVia {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    /// `None`: an RFC 2543 Via without branch.
    pub branch: Option<String>,
    pub rport: bool,
}

impl GenVia {
    pub fn text(&self) -> String {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        if self.rport {
            s.push_str(";rport");
        }
        if let Some(b) = &self.branch {
            s.push_str(&format!(";branch={b}"));
        }
        s
    }
}

#[derive(Clone, Debug)]
pub struct GenAddr {
    /// Display name as written (quotes and escapes included).
    pub display: Option<String>,
    pub uri: String,
    pub tag: Option<String>,
    /// `<uri>` (forced when there is a display name or the URI has parameters).
    pub bracket: bool,
}

impl GenAddr {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let bracket = self.bracket || self.display.is_some() || self.uri.contains(';');
        if let Some(d) = &self.display {
            s.push_str(d);
            s.push(' ');
        }
        if bracket {
            s.push('<');
            s.push_str(&self.uri);
            s.push('>');
        } else {
            s.push_str(&self.uri);
        }
        if let Some(t) = &self.tag {
            s.push_str(";tag=");
            s.push_str(t);
        }
        s
    }

    /// The display name as `NameAddr::display` reports it (quotes stripped).
    pub fn display_view(&self) -> Option<&str> {
        self.display.as_deref().map(|d| {
            d.strip_prefix('"')
                .and_then(|d| d.strip_suffix('"'))
                .unwrap_or(d)
        })
    }
}

/// How one header line is written.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub compact: bool,
    /// 0: "Name: v", 1: "Name:v", 2: "Name :  v", 3: "Name:\t v"
    pub colon: u8,
    /// Fold the line after the colon.
    pub fold_after_colon: bool,
    /// Fold at the first space inside the value (when there is one).
    pub fold_inside: bool,
}

#[derive(Clone, Debug)]
pub struct GenMsg {
    /// `(method, request-uri)` for a request.
    pub request: Option<(String, String)>,
    /// `(code, reason)` for a response.
    pub response: Option<(u16, String)>,
    pub vias: Vec<GenVia>,
    /// `join[i]`: Via i+1 goes on the same line as Via i (comma-joined).
    pub join: Vec<bool>,
    pub from: GenAddr,
    pub to: GenAddr,
    pub call_id: String,
    pub cseq: u32,
    pub max_forwards: Option<u32>,
    pub contact: Option<GenAddr>,
    pub extra: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Write Content-Length (always true for stream transports).
    pub with_cl: bool,
    pub styles: Vec<Style>,
    /// Permutation seed for the header order (Via lines keep their relative order).
    pub order: Vec<u16>,
}

impl GenMsg {
    pub fn method(&self) -> &str {
        match &self.request {
            Some((m, _)) => m,
            None => "INVITE",
        }
    }

    /// The Via values, in order.
    pub fn via_texts(&self) -> Vec<String> {
        self.vias.iter().map(GenVia::text).collect()
    }

    /// Renders the message with its formatting choices.
    pub fn to_bytes(&self) -> Vec<u8> {
        // (full name, compact letter, value, is_via)
        let mut lines: Vec<(&str, Option<&str>, String, bool)> = Vec::new();
        let mut via_line = self.vias.first().map(GenVia::text).unwrap_or_default();
        for (i, v) in self.vias.iter().enumerate().skip(1) {
            if self.join.get(i - 1).copied().unwrap_or(false) {
                via_line.push_str(" , ");
                via_line.push_str(&v.text());
            } else {
                lines.push(("Via", Some("v"), std::mem::take(&mut via_line), true));
                via_line = v.text();
            }
        }
        lines.push(("Via", Some("v"), via_line, true));
        lines.push(("From", Some("f"), self.from.text(), false));
        lines.push(("To", Some("t"), self.to.text(), false));
        lines.push(("Call-ID", Some("i"), self.call_id.clone(), false));
        lines.push((
            "CSeq",
            None,
            format!("{} {}", self.cseq, self.method()),
            false,
        ));
        if let Some(mf) = self.max_forwards {
            lines.push(("Max-Forwards", None, mf.to_string(), false));
        }
        if let Some(c) = &self.contact {
            lines.push(("Contact", Some("m"), c.text(), false));
        }
        for (n, v) in &self.extra {
            lines.push((n.as_str(), None, v.clone(), false));
        }
        if let Some(ct) = &self.content_type {
            lines.push(("Content-Type", Some("c"), ct.clone(), false));
        }
        if self.with_cl {
            lines.push((
                "Content-Length",
                Some("l"),
                self.body.len().to_string(),
                false,
            ));
        }
        // Shuffle, then put the Via lines back in their original relative order.
        let n = lines.len();
        let mut idx: Vec<usize> = (0..n).collect();
        for (i, seed) in self.order.iter().enumerate().take(n) {
            let j = usize::from(*seed) % n;
            idx.swap(i, j);
        }
        let mut shuffled: Vec<_> = idx.iter().map(|&i| lines[i].clone()).collect();
        let vias: Vec<_> = lines.iter().filter(|l| l.3).cloned().collect();
        let mut vi = vias.into_iter();
        for l in shuffled.iter_mut() {
            if l.3
                && let Some(v) = vi.next()
            {
                *l = v;
            }
        }

        let mut out = String::new();
        match (&self.request, &self.response) {
            (Some((m, u)), _) => out.push_str(&format!("{m} {u} SIP/2.0\r\n")),
            (None, Some((c, r))) => out.push_str(&format!("SIP/2.0 {c} {r}\r\n")),
            (None, None) => out.push_str("OPTIONS sip:x@example.com SIP/2.0\r\n"),
        }
        for (i, (name, compact, value, _)) in shuffled.iter().enumerate() {
            let st = self.styles.get(i).copied().unwrap_or(Style {
                compact: false,
                colon: 0,
                fold_after_colon: false,
                fold_inside: false,
            });
            let name = match compact {
                Some(c) if st.compact => c,
                _ => name,
            };
            out.push_str(name);
            out.push_str(match st.colon {
                0 => ": ",
                1 => ":",
                2 => " :  ",
                _ => ":\t ",
            });
            if st.fold_after_colon {
                out.push_str("\r\n ");
            }
            let mut value = value.clone();
            if st.fold_inside {
                // Fold at a space that is LWS in every generated value (never inside a
                // quoted display name or a token).
                if let Some(p) = lws_position(&value) {
                    value.replace_range(p..p + 1, "\r\n\t");
                }
            }
            out.push_str(&value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A space in a header value where folding is allowed: between `SIP/2.0/X` and the
/// sent-by, around a Via comma, or between the CSeq number and method.
fn lws_position(v: &str) -> Option<usize> {
    if v.starts_with("SIP/2.0/") {
        return v.find(' ');
    }
    let b = v.as_bytes();
    if !b.is_empty() && b.iter().take_while(|c| c.is_ascii_digit()).count() > 0 {
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if b.get(digits) == Some(&b' ') {
            return Some(digits);
        }
    }
    None
}

pub fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

pub fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "INVITE",
            "REGISTER",
            "OPTIONS",
            "MESSAGE",
            "SUBSCRIBE",
            "NOTIFY",
            "BYE",
            "INFO",
            "SERVICE",
            "BENOTIFY",
            "NEGOTIATE",
            "PUBLISH",
            "REFER",
            "UPDATE",
            "PRACK",
        ])
        .prop_map(str::to_owned),
        "[A-Z][A-Z0-9_.!%*+`'~-]{0,11}",
    ]
}

pub fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,9}(\\.[a-z][a-z0-9]{0,9}){0,3}",
        2 => (any::<u8>(), any::<u8>(), any::<u8>(), 1u8..255)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        1 => (1u16..0xffff, any::<u16>()).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

pub fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.2),
        proptest::option::weighted(0.8, "[a-zA-Z0-9._~!*+-]{1,10}(%4[1-9A-F])?"),
        host(),
        proptest::option::of(1u16..=65535),
        prop::sample::subsequence(
            vec![";transport=tcp", ";lr", ";maddr=192.0.2.1", ";x-y=z"],
            0..3,
        ),
    )
        .prop_map(|(sips, user, host, port, params)| {
            let mut s = String::from(if sips { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for p in params {
                s.push_str(p);
            }
            s
        })
}

pub fn display() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.6,
        prop_oneof![
            "[A-Za-z][A-Za-z.]{0,7}( [A-Za-z.]{1,8}){0,2}",
            "[A-Za-z ,;:<>@()\u{e9}\u{4e2d}]{0,12}".prop_map(|s| format!("\"{s}\"")),
            "[A-Za-z ]{0,6}".prop_map(|s| format!("\"{s} \\\" {s}\\\\\"")),
        ],
    )
}

pub fn addr(tag: bool) -> impl Strategy<Value = GenAddr> {
    (display(), sip_uri(), any::<bool>(), token()).prop_map(move |(display, uri, bracket, t)| {
        GenAddr {
            display,
            uri,
            tag: tag.then_some(t),
            bracket,
        }
    })
}

pub fn via() -> impl Strategy<Value = GenVia> {
    (
        prop::sample::select(vec!["UDP", "TCP", "TLS", "tcp", "WS", "WSS", "SCTP"]),
        host(),
        proptest::option::of(1u16..=65535),
        proptest::option::weighted(0.9, token().prop_map(|t| format!("z9hG4bK{t}"))),
        any::<bool>(),
    )
        .prop_map(|(t, host, port, branch, rport)| GenVia {
            transport: t.to_owned(),
            host,
            port,
            branch,
            rport,
        })
}

pub fn style() -> impl Strategy<Value = Style> {
    (
        prop::bool::weighted(0.3),
        0u8..4,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(compact, colon, fold_after_colon, fold_inside)| Style {
            compact,
            colon,
            fold_after_colon,
            fold_inside,
        })
}

pub fn extra_header() -> impl Strategy<Value = (String, String)> {
    (
        "X-[A-Za-z0-9-]{1,10}",
        prop_oneof![
            "[!-~]([ -~]{0,30}[!-~])?",
            "[a-z\u{e9}\u{fc}\u{4e2d}\u{6587}]{1,10}",
        ],
    )
}

/// Any valid message. `stream`: always with Content-Length (for the framer).
pub fn message(stream: bool) -> impl Strategy<Value = GenMsg> {
    message_of(stream, true)
}

/// A valid request.
pub fn request(stream: bool) -> impl Strategy<Value = GenMsg> {
    message_of(stream, false)
}

fn message_of(stream: bool, responses: bool) -> impl Strategy<Value = GenMsg> {
    let start = (
        method(),
        sip_uri(),
        prop::bool::weighted(0.25),
        100u16..700,
        "[A-Za-z][A-Za-z ]{0,20}",
    )
        .prop_map(move |(m, u, resp, c, r)| {
            if resp && responses {
                (None, Some((c, r)))
            } else {
                (Some((m, u)), None)
            }
        });
    let headers = (
        prop::collection::vec(via(), 1..5),
        prop::collection::vec(any::<bool>(), 4),
        addr(true),
        addr(false),
        (token(), proptest::option::of(host())).prop_map(|(t, h)| match h {
            Some(h) => format!("{t}@{h}"),
            None => t,
        }),
        0u32..(1 << 31),
        proptest::option::of(0u32..=255),
        proptest::option::of(addr(false)),
    );
    let tail = (
        prop::collection::vec(extra_header(), 0..4),
        prop::collection::vec(any::<u8>(), 0..80),
        proptest::option::of(prop::sample::select(vec![
            "application/sdp",
            "text/plain;charset=UTF-8",
        ])),
        prop::bool::weighted(0.85),
        prop::collection::vec(style(), 16),
        prop::collection::vec(any::<u16>(), 16),
        any::<bool>(),
    );
    (start, headers, tail).prop_map(
        move |(
            (request, response),
            (vias, join, from, to, call_id, cseq, max_forwards, contact),
            (extra, body, content_type, with_cl, styles, order, to_tagged),
        )| {
            // One line per extension header name, so its value is known after shuffling.
            let mut extra = extra;
            let mut seen = std::collections::HashSet::new();
            extra.retain(|(n, _)| seen.insert(n.to_ascii_lowercase()));
            let mut to = to;
            if response.is_some() && to_tagged {
                to.tag = Some("resp1".into());
            }
            GenMsg {
                request,
                response,
                vias,
                join,
                from,
                to,
                call_id,
                cseq,
                max_forwards,
                contact,
                extra,
                body,
                content_type: content_type.map(str::to_owned),
                with_cl: with_cl || stream,
                styles,
                order,
            }
        },
    )
}
