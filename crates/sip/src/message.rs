//! Zero-copy SIP message parsing (RFC 3261 §7 and §25).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use smallvec::SmallVec;

use crate::header::{HeaderName, NameAddr, Via, is_token_char, split_values};
use crate::method::Method;

/// Size limits applied while parsing. Anything larger is refused (513).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_535,
            max_headers: 256,
        }
    }
}

/// A byte range into the message buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Request line or status line.
#[derive(Clone, Debug)]
pub enum StartLine {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

#[derive(Clone, Copy, Debug)]
struct RawHeader {
    name: HeaderName,
    name_span: Span,
    value: Span,
}

/// A parsed top Via as spans of the buffer.
#[derive(Clone, Copy, Debug, Default)]
struct ViaSpans {
    transport: Span,
    host: Span,
    port: Option<u16>,
    params: Span,
}

/// A parsed name-addr (From/To) as spans of the buffer, with its tag.
#[derive(Clone, Copy, Debug, Default)]
struct AddrSpans {
    display: Option<Span>,
    uri: Span,
    params: Span,
    bracketed: bool,
    tag: Option<Span>,
}

/// Where a core header was found while reading the header lines (see `core_slot`).
#[derive(Clone, Copy, Debug, Default)]
struct CoreHeader {
    first: Option<Span>,
    differs: bool,
}

/// Headers indexed while the header lines are read: Via, From, To, Call-ID, CSeq,
/// Max-Forwards, Content-Length.
const CORE_HEADERS: usize = 7;

fn core_slot(name: HeaderName) -> Option<usize> {
    Some(match name {
        HeaderName::Via => 0,
        HeaderName::From => 1,
        HeaderName::To => 2,
        HeaderName::CallId => 3,
        HeaderName::CSeq => 4,
        HeaderName::MaxForwards => 5,
        HeaderName::ContentLength => 6,
        _ => return None,
    })
}

/// A message's bytes. The head (start line and header lines) is always UTF-8:
/// parsing checks it.
#[derive(Clone, Debug)]
enum Buffer {
    /// The whole message is UTF-8, checked once: spans are read as `&str` with no
    /// further check (the usual case: SIP bodies are SDP, XML or text).
    Text(ByteString),
    /// The body is not UTF-8: each span is checked when it is read.
    Binary(Bytes),
}

impl Buffer {
    /// Wraps a message whose head (`..head_end`) is known to be UTF-8; `None` if
    /// it is not after all.
    fn new(buf: Bytes, head_end: usize) -> Option<Buffer> {
        if buf
            .get(head_end..)
            .is_some_and(|body| std::str::from_utf8(body).is_ok())
        {
            ByteString::try_from(buf).ok().map(Buffer::Text)
        } else {
            Some(Buffer::Binary(buf))
        }
    }

    fn bytes(&self) -> &Bytes {
        match self {
            Buffer::Text(s) => s.as_bytes(),
            Buffer::Binary(b) => b,
        }
    }

    /// The text of a span of the head (empty for a span that is not text).
    fn str(&self, s: Span) -> &str {
        match self {
            Buffer::Text(t) => t.get(s.range()).unwrap_or(""),
            Buffer::Binary(b) => b
                .get(s.range())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }
}

/// A parsed SIP request or response. Cheap to clone (the buffer is shared).
#[derive(Clone, Debug)]
pub struct Message {
    buf: Buffer,
    start: StartLine,
    headers: SmallVec<[RawHeader; 20]>,
    body: Span,
    top_via: Span,
    /// The top Via and From/To, parsed once when the message is validated: every
    /// layer (transactions, proxy, registrar) reads them, often more than once.
    via: ViaSpans,
    from: Span,
    from_addr: AddrSpans,
    to: Span,
    to_addr: AddrSpans,
    call_id: Span,
    cseq_num: u32,
    cseq_method: Method,
    max_forwards: Option<u32>,
    /// When the transport read the message (set by the transport, see
    /// [`Message::set_received_at`]): the start of the receive-to-send latency.
    received_at: Option<std::time::Instant>,
}

/// Why a message could not be accepted, with what to answer (when an answer can be
/// addressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Status code to answer with: 400, 505 or 513.
    pub status: u16,
    /// Human-readable reason, used as the reason phrase of the error response.
    pub reason: String,
    reply: Option<Box<ReplyContext>>,
}

/// The raw headers of a broken request that are needed to answer it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct ReplyContext {
    vias: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: Option<String>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    fn new(status: u16, reason: impl Into<String>) -> ParseError {
        ParseError {
            status,
            reason: reason.into(),
            reply: None,
        }
    }

    /// Whether the broken message was a request that can be answered (it had a Via).
    pub fn can_reply(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| !r.vias.is_empty())
    }

    /// The error response to send back, or `None` when the message cannot be answered
    /// (a response, garbage, or no Via to address it to). The reason phrase names the
    /// problem.
    pub fn response(&self) -> Option<Bytes> {
        let r = self.reply.as_ref()?;
        if r.vias.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(256);
        let reason: String = self
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.push_str(&format!("SIP/2.0 {} {}\r\n", self.status, reason));
        for v in &r.vias {
            out.push_str("Via: ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        for (name, v) in [
            ("From", &r.from),
            ("To", &r.to),
            ("Call-ID", &r.call_id),
            ("CSeq", &r.cseq),
        ] {
            if let Some(v) = v {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(v);
                out.push_str("\r\n");
            }
        }
        out.push_str("Server: confab\r\nContent-Length: 0\r\n\r\n");
        Some(Bytes::from(out))
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < buf.len() {
        let i = memchr::memchr(b'\r', &buf[pos..])? + pos;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i);
        }
        pos = i + 1;
    }
    None
}

/// Finds the end of the header section: the index of the blank line's CRLF CRLF.
pub(crate) fn find_header_end(buf: &[u8]) -> Option<usize> {
    // One memchr per line: cheaper than building a memmem searcher per message.
    memchr::memchr_iter(b'\n', buf)
        .find(|&i| i > 0 && buf[i - 1] == b'\r' && buf.get(i + 1..i + 3) == Some(b"\r\n"))
        .map(|i| i - 1)
}

/// Whether `s` has a control character other than HTAB (CTL, RFC 3261 §25.1).
/// Written as a fold without early exit so that it compiles to SIMD: this check runs
/// over every header byte and dominated parsing as a short-circuiting loop.
fn has_ctl(s: &[u8]) -> bool {
    s.iter().fold(0u8, |acc, &c| {
        acc | (u8::from(c < 0x20) & u8::from(c != b'\t')) | u8::from(c == 0x7f)
    }) != 0
}

/// How many bytes of `s` are control characters other than HTAB (CTL, RFC 3261
/// §25.1), DEL or not ASCII. A message head whose count is exactly its CRLFs has
/// none of them anywhere else: it is ASCII (so UTF-8) and no line needs checking
/// on its own. One pass over the whole head, written so that it compiles to SIMD
/// (a wrapping byte count per chunk of at most 255 bytes cannot overflow): the
/// per-line checks it replaces ran their scalar tail on every short value.
fn count_ctl_or_high(s: &[u8]) -> usize {
    s.chunks(255)
        .map(|chunk| {
            let n = chunk.iter().fold(0u8, |n, &c| {
                n.wrapping_add((u8::from(c < 0x20) & u8::from(c != b'\t')) | u8::from(c >= 0x7f))
            });
            usize::from(n)
        })
        .sum()
}

/// Whether every control character of a header value is the escaped character of
/// a quoted-pair inside a quoted string (`"\<NUL>"`), which RFC 3261 §25.1 allows
/// (`quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)`); the slow path of
/// [`has_ctl`], taken only when that found one.
fn ctl_only_in_quoted_pairs(s: &[u8]) -> bool {
    let is_ctl = |c: u8| (c < 0x20 && c != b'\t') || c == 0x7f;
    let mut quoted = false;
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if quoted && c == b'\\' {
            match s.get(i + 1) {
                Some(b'\r' | b'\n') | None => return false,
                Some(_) => {
                    i += 2;
                    continue;
                }
            }
        }
        if c == b'"' {
            quoted = !quoted;
        } else if is_ctl(c) {
            return false;
        }
        i += 1;
    }
    true
}

/// The part `part` of `text`, the string of the span `whole` (which contains
/// `part`); empty if it does not (a default span). Slicing a `&str` only checks the
/// two ends, where converting the part from bytes would check every byte again.
fn sub_str(text: &str, whole: Span, part: Span) -> &str {
    let start = part.start.wrapping_sub(whole.start) as usize;
    let end = part.end.wrapping_sub(whole.start) as usize;
    text.get(start..end).unwrap_or("")
}

/// The header name of a header line and its colon: `(name start, name end, colon)`,
/// or `None` when the bytes before the first colon are not a token with optional
/// whitespace around it (or there is no colon).
fn scan_header_name(line: &[u8]) -> Option<(usize, usize, usize)> {
    let blank = |c: &u8| *c == b' ' || *c == b'\t';
    let start = line.iter().take_while(|c| blank(c)).count();
    let end = start
        + line[start..]
            .iter()
            .take_while(|&&c| is_token_char(c))
            .count();
    let colon = end + line[end..].iter().take_while(|c| blank(c)).count();
    (end > start && line.get(colon) == Some(&b':')).then_some((start, end, colon))
}

fn trim_span(buf: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && (buf[s] == b' ' || buf[s] == b'\t') {
        s += 1;
    }
    while e > s && (buf[e - 1] == b' ' || buf[e - 1] == b'\t') {
        e -= 1;
    }
    (s, e)
}

impl Message {
    /// Records when the transport read this message off the network.
    pub fn set_received_at(&mut self, at: std::time::Instant) {
        self.received_at = Some(at);
    }

    /// When the transport read this message, if it said so.
    pub fn received_at(&self) -> Option<std::time::Instant> {
        self.received_at
    }

    /// Parses one complete message (a UDP datagram, a WebSocket frame, or a frame cut
    /// by [`crate::Framer`]). Leading CRLFs are ignored. A Content-Length shorter than
    /// the remaining bytes cuts the body; a longer one is an error.
    pub fn parse(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        Self::parse_with(buf, limits, true)
    }

    /// [`Message::parse`]; `one_pass`: whether the head's bytes may be checked in
    /// one pass (the tests compare it with the line-by-line checks).
    fn parse_with(buf: Bytes, limits: &Limits, one_pass: bool) -> Result<Message, ParseError> {
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let buf = if lead > 0 { buf.slice(lead..) } else { buf };
        if buf.len() > limits.max_message_bytes {
            return Err(ParseError::new(513, "Message Too Large"));
        }
        if buf.is_empty() {
            return Err(ParseError::new(400, "Empty message"));
        }
        // One pass over the line ends finds the blank line and any folding, and
        // records where every (unfolded) line ends, so the header pass below does
        // not search for them again.
        let mut folded = false;
        let mut ends: SmallVec<[u32; 32]> = SmallVec::new();
        let head_end = memchr::memchr_iter(b'\n', &buf)
            .find(|&i| {
                if i == 0 || buf[i - 1] != b'\r' {
                    return false;
                }
                match buf.get(i + 1) {
                    Some(b' ' | b'\t') => {
                        folded = true;
                        false
                    }
                    _ => {
                        ends.push((i - 1) as u32);
                        buf.get(i + 1..i + 3) == Some(b"\r\n")
                    }
                }
            })
            .map(|i| i - 1)
            .ok_or_else(|| ParseError::new(400, "Missing empty line after headers"))?;
        // Unfold continuation lines (CRLF followed by whitespace) in place by turning
        // the CRLF into two spaces: same length, so every span stays valid.
        let buf = if folded {
            let mut m = BytesMut::from(&buf[..]);
            let mut i = 0;
            while i < head_end && i + 2 < m.len() {
                if m[i] == b'\r' && m[i + 1] == b'\n' && matches!(m[i + 2], b' ' | b'\t') {
                    m[i] = b' ';
                    m[i + 1] = b' ';
                }
                i += 1;
            }
            m.freeze()
        } else {
            buf
        };
        Self::parse_unfolded(buf, head_end, &ends, limits, one_pass)
    }

    /// `ends`: the position of every line's CRLF up to `head_end` (the last one).
    fn parse_unfolded(
        buf: Bytes,
        head_end: usize,
        ends: &[u32],
        limits: &Limits,
        one_pass: bool,
    ) -> Result<Message, ParseError> {
        let b = &buf[..];
        let line_end = ends.first().map_or(head_end, |&e| e as usize).min(head_end);
        // A request refused for its header bytes is still answered (400 with the
        // reason) when the headers needed to address a response are intact.
        let is_request_line = !b.starts_with(b"SIP/") && !b.starts_with(b"sip/");
        let answerable = |b: &[u8], mut e: ParseError| {
            if is_request_line {
                e.reply = Some(Box::new(raw_reply_context(b, line_end + 2, head_end)));
            }
            e
        };
        // The common case, checked in one pass: the head is ASCII and its only
        // control characters are the CRLFs ending its lines (`ends`, the last one at
        // `head_end` excluded). Otherwise every line is checked on its own below, so
        // that the error names what is wrong and where.
        let clean =
            one_pass && count_ctl_or_high(&b[..head_end]) == 2 * ends.len().saturating_sub(1);
        // A clean head is ASCII; any other is checked here.
        if !clean && std::str::from_utf8(&b[..head_end]).is_err() {
            return Err(answerable(
                b,
                ParseError::new(400, "Invalid UTF-8 in message headers"),
            ));
        }
        let start = match parse_start_line(b, line_end, clean) {
            Ok(s) => s,
            Err(mut e) => {
                // A request in an unsupported version is still answered (505).
                if e.status == 505 && !b.starts_with(b"SIP/") && !b.starts_with(b"sip/") {
                    e.reply = Some(Box::new(raw_reply_context(b, line_end + 2, head_end)));
                }
                return Err(e);
            }
        };
        let is_request = matches!(start, StartLine::Request { .. });

        let buf = Buffer::new(buf, head_end)
            .ok_or_else(|| ParseError::new(400, "Invalid UTF-8 in message headers"))?;
        // Built before the header lines are read, so that they are pushed where
        // they stay (a moved header table is a copy of some 400 bytes).
        let mut msg = Message {
            buf,
            start,
            headers: SmallVec::new(),
            body: Span::default(),
            top_via: Span::default(),
            via: ViaSpans::default(),
            from: Span::default(),
            from_addr: AddrSpans::default(),
            to: Span::default(),
            to_addr: AddrSpans::default(),
            call_id: Span::default(),
            cseq_num: 0,
            cseq_method: Method::Ack,
            max_forwards: None,
            received_at: None,
        };
        let b = &msg.buf.bytes()[..];
        let headers = &mut msg.headers;
        // The core headers are indexed in the same pass (see `core_slot`).
        let mut core = [CoreHeader::default(); CORE_HEADERS];
        let mut pos = line_end + 2;
        for &end in ends.get(1..).unwrap_or_default() {
            let end = end as usize;
            if end > pos {
                if headers.len() >= limits.max_headers {
                    return Err(answerable(
                        b,
                        ParseError::new(513, "Too many header fields"),
                    ));
                }
                let line = &b[pos..end];
                // The name is a token with optional whitespace around it, then the
                // colon: one scan finds the colon and checks the name.
                let (ns, ne, colon) = scan_header_name(line).ok_or_else(|| {
                    let reason = if memchr::memchr(b':', line).is_some() {
                        format!("Malformed header name at byte {pos}")
                    } else {
                        format!("Header line without ':' at byte {pos}")
                    };
                    answerable(b, ParseError::new(400, reason))
                })?;
                let (ns, ne) = (pos + ns, pos + ne);
                let name = &b[ns..ne];
                let (vs, ve) = trim_span(b, pos + colon + 1, end);
                if !clean && has_ctl(&b[vs..ve]) && !ctl_only_in_quoted_pairs(&b[vs..ve]) {
                    return Err(answerable(
                        b,
                        ParseError::new(
                            400,
                            format!(
                                "Control character in {} header",
                                String::from_utf8_lossy(name)
                            ),
                        ),
                    ));
                }
                let name = HeaderName::from_bytes(name);
                let value = Span::new(vs, ve);
                if let Some(k) = core_slot(name) {
                    let found = &mut core[k];
                    match found.first {
                        None => found.first = Some(value),
                        Some(first) => {
                            if !found.differs && b[first.range()] != b[vs..ve] {
                                found.differs = true;
                            }
                        }
                    }
                }
                headers.push(RawHeader {
                    name,
                    name_span: Span::new(ns, ne),
                    value,
                });
            }
            pos = end + 2;
        }

        let checked = msg.validate(head_end + 4, core);
        checked.map_err(|mut e| {
            if is_request {
                e.reply = Some(Box::new(msg.reply_context()));
            }
            e
        })?;
        Ok(msg)
    }

    fn reply_context(&self) -> ReplyContext {
        let one = |n| self.header(n).map(str::to_owned);
        ReplyContext {
            vias: self
                .headers_named(HeaderName::Via)
                .map(str::to_owned)
                .collect(),
            from: one(HeaderName::From),
            to: one(HeaderName::To),
            call_id: one(HeaderName::CallId),
            cseq: one(HeaderName::CSeq),
        }
    }

    /// The value of a header that must appear once (repeats with the same value
    /// are tolerated), from what the header pass found (see `core_slot`).
    fn single(&self, found: CoreHeader, label: &str) -> Result<Span, ParseError> {
        let first = found
            .first
            .ok_or_else(|| ParseError::new(400, format!("Missing {label} header")))?;
        if found.differs {
            return Err(ParseError::new(
                400,
                format!("More than one {label} header"),
            ));
        }
        if first.start == first.end {
            return Err(ParseError::new(400, format!("Empty {label} header")));
        }
        Ok(first)
    }

    fn validate(
        &mut self,
        body_start: usize,
        core: [CoreHeader; CORE_HEADERS],
    ) -> Result<(), ParseError> {
        let [via, from, to, call_id, cseq, max_forwards, content_length] = core;
        // Via: the top value must be well formed.
        let via_hdr = via
            .first
            .ok_or_else(|| ParseError::new(400, "Missing Via header"))?;
        let via_text = self.span_str(via_hdr);
        let first = split_values(via_text)
            .next()
            .ok_or_else(|| ParseError::new(400, "Empty Via header"))?;
        let via = Via::parse(first)
            .map_err(|e| ParseError::new(400, format!("Malformed Via header: {e}")))?;
        let via = ViaSpans {
            transport: self.span_of(via.transport),
            host: self.span_of(via.host),
            port: via.port,
            params: self.span_of(via.params),
        };
        self.top_via = self.span_of(first);
        self.via = via;

        self.from = self.single(from, "From")?;
        let from = NameAddr::parse(self.span_str(self.from))
            .map_err(|e| ParseError::new(400, format!("Malformed From header: {e}")))?;
        self.from_addr = self.addr_spans(&from);
        self.to = self.single(to, "To")?;
        let to = NameAddr::parse(self.span_str(self.to))
            .map_err(|e| ParseError::new(400, format!("Malformed To header: {e}")))?;
        self.to_addr = self.addr_spans(&to);
        self.call_id = self.single(call_id, "Call-ID")?;
        if self
            .span_str(self.call_id)
            .bytes()
            .any(|c| c == b' ' || c == b'\t')
        {
            return Err(ParseError::new(400, "Malformed Call-ID header"));
        }

        let cseq = self.span_str(self.single(cseq, "CSeq")?);
        let mut parts = cseq.split_ascii_whitespace();
        let num = parts
            .next()
            .filter(|n| !n.starts_with('+')) // 1*DIGIT; Rust's parse takes a sign
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n < (1u32 << 31))
            .ok_or_else(|| ParseError::new(400, "Malformed CSeq header: bad sequence number"))?;
        let method = parts
            .next()
            .and_then(|m| Method::parse(m.as_bytes()))
            .ok_or_else(|| ParseError::new(400, "Malformed CSeq header: bad method"))?;
        if parts.next().is_some() {
            return Err(ParseError::new(400, "Malformed CSeq header"));
        }
        if let StartLine::Request { method: m, .. } = &self.start
            && *m != method
        {
            return Err(ParseError::new(
                400,
                "CSeq method does not match request method",
            ));
        }
        self.cseq_num = num;
        self.cseq_method = method;

        if let Some(mf) = max_forwards.first.map(|s| self.span_str(s)) {
            let n = mf
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 255 && !mf.starts_with('+'))
                .ok_or_else(|| ParseError::new(400, "Malformed Max-Forwards header"))?;
            self.max_forwards = Some(n);
        }

        let available = self.buf.bytes().len().saturating_sub(body_start);
        let mut cl: Option<usize> = None;
        let parse_cl = |v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|_| !v.starts_with('+'))
                .ok_or_else(|| ParseError::new(400, "Malformed Content-Length header"))
        };
        if content_length.differs {
            // Repeated with different text ("5" and "05" still agree): compare them
            // as numbers.
            for h in self
                .headers
                .iter()
                .filter(|h| h.name == HeaderName::ContentLength)
            {
                let n = parse_cl(self.span_str(h.value))?;
                if cl.is_some_and(|c| c != n) {
                    return Err(ParseError::new(400, "Conflicting Content-Length headers"));
                }
                cl = Some(n);
            }
        } else if let Some(v) = content_length.first {
            cl = Some(parse_cl(self.span_str(v))?);
        }
        let body_len = match cl {
            Some(n) if n > available => {
                return Err(ParseError::new(
                    400,
                    "Content-Length larger than message body",
                ));
            }
            Some(n) => n,
            None => available,
        };
        self.body = Span::new(
            body_start.min(self.buf.bytes().len()),
            body_start + body_len,
        );
        Ok(())
    }

    /// The span of `s`, a slice of this message's buffer (an empty span for an
    /// empty or foreign string).
    fn span_of(&self, s: &str) -> Span {
        let base = self.buf.bytes().as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if s.is_empty() || p < base || p + s.len() > base + self.buf.bytes().len() {
            return Span::default();
        }
        Span::new(p - base, p - base + s.len())
    }

    fn addr_spans(&self, a: &NameAddr<'_>) -> AddrSpans {
        AddrSpans {
            display: a.display.map(|d| self.span_of(d)),
            uri: self.span_of(a.uri),
            params: self.span_of(a.params),
            bracketed: a.bracketed,
            tag: a.tag().map(|t| self.span_of(t)),
        }
    }

    /// `whole` is the header value the spans of `a` lie in: it is converted to
    /// `&str` once and the parts are cut out of it.
    fn name_addr(&self, whole: Span, a: &AddrSpans) -> NameAddr<'_> {
        let text = self.span_str(whole);
        NameAddr {
            display: a.display.map(|d| sub_str(text, whole, d)),
            uri: sub_str(text, whole, a.uri),
            params: sub_str(text, whole, a.params),
            bracketed: a.bracketed,
        }
    }

    fn span_str(&self, s: Span) -> &str {
        self.buf.str(s)
    }

    /// The whole message as received (after unfolding).
    pub fn as_bytes(&self) -> &Bytes {
        self.buf.bytes()
    }

    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method; `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Request-URI text; `None` for responses.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(self.span_str(*uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// Status code; `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.span_str(*reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// First value of the named header (the whole line for list headers).
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| self.span_str(h.value))
    }

    /// Every line of the named header, unsplit.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.span_str(h.value))
    }

    /// Every value of the named header; comma-joined values of list headers are split.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        let list = name.is_list();
        self.headers_named(name).flat_map(move |line| {
            let mut whole = Some(line);
            let mut split = list.then(|| split_values(line));
            std::iter::from_fn(move || match &mut split {
                Some(s) => s.next(),
                None => whole.take(),
            })
        })
    }

    /// First value of a header looked up by name text (case-insensitive), for
    /// extension headers such as `ms-keep-alive`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| self.buf.bytes()[h.name_span.range()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| self.span_str(h.value))
    }

    /// All headers in order as `(name, name as received, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName, &str, &str)> {
        self.headers
            .iter()
            .map(|h| (h.name, self.span_str(h.name_span), self.span_str(h.value)))
    }

    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The `i`-th header line as `(name, name as confab writes it, value)`: the
    /// canonical spelling for known names, the received text otherwise. Used by the
    /// store of completed transactions to refer to lines a response copied.
    pub(crate) fn header_line(&self, i: usize) -> Option<(HeaderName, &[u8], &[u8])> {
        let h = self.headers.get(i)?;
        let name = match h.name {
            HeaderName::Other => &self.buf.bytes()[h.name_span.range()],
            known => known.as_str().as_bytes(),
        };
        Some((h.name, name, &self.buf.bytes()[h.value.range()]))
    }

    pub fn call_id(&self) -> &str {
        self.span_str(self.call_id)
    }

    pub fn cseq(&self) -> (u32, &Method) {
        (self.cseq_num, &self.cseq_method)
    }

    pub fn from(&self) -> NameAddr<'_> {
        self.name_addr(self.from, &self.from_addr)
    }

    pub fn to(&self) -> NameAddr<'_> {
        self.name_addr(self.to, &self.to_addr)
    }

    pub fn from_tag(&self) -> Option<&str> {
        self.from_addr.tag.map(|t| self.span_str(t))
    }

    pub fn to_tag(&self) -> Option<&str> {
        self.to_addr.tag.map(|t| self.span_str(t))
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Via<'_> {
        let text = self.span_str(self.top_via);
        Via {
            transport: sub_str(text, self.top_via, self.via.transport),
            host: sub_str(text, self.top_via, self.via.host),
            port: self.via.port,
            params: sub_str(text, self.top_via, self.via.params),
        }
    }

    /// Text of the topmost Via value.
    pub fn top_via_str(&self) -> &str {
        self.span_str(self.top_via)
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.max_forwards
    }

    /// The Expires header as seconds, if present and numeric.
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|v| v.min(u32::MAX as u64) as u32)
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    pub fn body(&self) -> &[u8] {
        &self.buf.bytes()[self.body.range()]
    }

    /// The body as a shared slice of the buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.bytes().slice(self.body.range())
    }

    /// Whether the given option tag is listed in a header such as Supported/Require.
    pub fn has_option(&self, name: HeaderName, tag: &str) -> bool {
        self.header_values(name)
            .any(|v| v.eq_ignore_ascii_case(tag))
    }
}

/// The reply headers of a request whose start line could not be parsed, read from
/// the raw header lines `from..head_end` (values with control characters skipped).
fn raw_reply_context(b: &[u8], from: usize, head_end: usize) -> ReplyContext {
    let mut ctx = ReplyContext::default();
    let mut pos = from;
    while pos < head_end {
        let end = find_crlf(b, pos).unwrap_or(head_end).min(head_end);
        let line = &b[pos..end];
        pos = end + 2;
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        // Invalid UTF-8 (in a display name, say) is replaced, not dropped: the
        // answer then still names the request's From and To.
        let value = String::from_utf8_lossy(line[colon + 1..].trim_ascii());
        let value = value.as_ref();
        if value.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            continue;
        }
        let slot = match HeaderName::from_bytes(line[..colon].trim_ascii()) {
            HeaderName::Via => {
                ctx.vias.push(value.to_owned());
                continue;
            }
            HeaderName::From => &mut ctx.from,
            HeaderName::To => &mut ctx.to,
            HeaderName::CallId => &mut ctx.call_id,
            HeaderName::CSeq => &mut ctx.cseq,
            _ => continue,
        };
        slot.get_or_insert_with(|| value.to_owned());
    }
    ctx
}

/// `clean`: the caller found no control character in the head but its CRLFs.
fn parse_start_line(b: &[u8], end: usize, clean: bool) -> Result<StartLine, ParseError> {
    let line = &b[..end];
    if !clean && has_ctl(line) {
        return Err(ParseError::new(400, "Control character in start line"));
    }
    if line.starts_with(b"SIP/") || line.starts_with(b"sip/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', line)
            .ok_or_else(|| ParseError::new(400, "Malformed status line"))?;
        if !line[..sp].eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::new(505, "Version Not Supported"));
        }
        let rest = &line[sp + 1..];
        let code_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let code = std::str::from_utf8(&rest[..code_end])
            .ok()
            .filter(|c| c.len() == 3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c))
            .ok_or_else(|| ParseError::new(400, "Malformed status code"))?;
        let rs = (sp + 1 + code_end + 1).min(end);
        return Ok(StartLine::Response {
            code,
            reason: Span::new(rs, end),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version
    let sp1 =
        memchr::memchr(b' ', line).ok_or_else(|| ParseError::new(400, "Malformed request line"))?;
    let sp2 = memchr::memrchr(b' ', line).unwrap_or(sp1);
    if sp2 == sp1 {
        return Err(ParseError::new(400, "Malformed request line"));
    }
    let method = Method::parse(&line[..sp1])
        .ok_or_else(|| ParseError::new(400, "Malformed request method"))?;
    let version = &line[sp2 + 1..];
    if !version.starts_with(b"SIP/") && !version.starts_with(b"sip/") {
        return Err(ParseError::new(400, "Malformed request line"));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err(ParseError::new(505, "Version Not Supported"));
    }
    let uri = &line[sp1 + 1..sp2];
    if uri.is_empty() || uri.iter().any(|&c| c == b' ' || c == b'\t') {
        return Err(ParseError::new(400, "Whitespace in Request-URI"));
    }
    if uri.starts_with(b"<") {
        return Err(ParseError::new(400, "Request-URI in angle brackets"));
    }
    if !uri.contains(&b':') {
        return Err(ParseError::new(400, "Request-URI has no scheme"));
    }
    Ok(StartLine::Request {
        method,
        uri: Span::new(sp1 + 1, sp2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a sender would see of a parse: the error, or the headers read back.
    fn outcome(r: Result<Message, ParseError>) -> Result<Vec<(HeaderName, String)>, String> {
        match r {
            Ok(m) => Ok(m
                .headers
                .iter()
                .map(|h| (h.name, m.span_str(h.value).to_owned()))
                .collect()),
            Err(e) => Err(format!("{e} (can reply: {})", e.can_reply())),
        }
    }

    /// The one-pass check of the head must answer as the line-by-line checks do:
    /// valid messages with bytes of every class written over them one at a time
    /// (control characters, DEL, CR, LF, bytes above 0x7f, in the start line, the
    /// names, the values and the blank line).
    #[test]
    fn one_pass_head_check_answers_as_the_line_by_line_checks() {
        let messages: [&[u8]; 3] = [
            b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/tcp 127.0.0.1:59484;branch=z9hG4bK3E1B\r\n\
From: \"A \\\"x\\\"\" <sip:alice@example.com>;tag=598727094\r\n\
To: <sip:alice@example.com>\r\n\
Max-Forwards: 70\r\n\
CSeq: 1 REGISTER\r\n\
Call-ID: ED38g5560aD124i9B01mD94Et6BCAb7353xF722x\r\n\
Subject: a\r\n b\r\n\
Content-Length: 0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@b>;tag=1\r\n\
t: <sip:c@d>;tag=2\r\ni: x\r\nCSeq: 2 INVITE\r\nl: 3\r\n\r\nabc",
            b"\r\nMESSAGE sip:b@d SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: y\r\nCSeq: 3 MESSAGE\r\n\
Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
        ];
        let bytes = [
            0x00u8, 0x01, b'\t', b'\n', b'\r', 0x1f, b' ', b':', b'"', 0x7f, 0x80, 0xc3, 0xff,
        ];
        let limits = Limits::default();
        let mut compared = 0;
        for msg in messages {
            for at in 0..msg.len() {
                for &c in &bytes {
                    let mut m = msg.to_vec();
                    m[at] = c;
                    let m = Bytes::from(m);
                    let fast = outcome(Message::parse_with(m.clone(), &limits, true));
                    let slow = outcome(Message::parse_with(m.clone(), &limits, false));
                    assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&m));
                    compared += 1;
                }
            }
            assert!(outcome(Message::parse(Bytes::from_static(msg), &limits)).is_ok());
        }
        assert!(compared > 5_000);
    }

    #[test]
    fn control_characters_are_counted_in_every_chunk() {
        assert_eq!(count_ctl_or_high(b""), 0);
        assert_eq!(count_ctl_or_high(b"a\tb c"), 0);
        assert_eq!(count_ctl_or_high(b"\r\n\x7f\x80\xff\x00"), 6);
        assert_eq!(count_ctl_or_high(&[0x01; 600]), 600);
        assert_eq!(count_ctl_or_high(&[0x80; 255]), 255);
    }
}
