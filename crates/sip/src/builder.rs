//! Serialization: building responses to a request, new requests, and rewriting a
//! received message for forwarding (proxy) without re-serializing headers it keeps.

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::{HeaderName, split_values};
use crate::message::Message;
use crate::method::Method;

fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

/// Builds a response to a request (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq
/// are copied; the To tag is added when the request had none.
pub struct ResponseBuilder<'a> {
    req: &'a Message,
    code: u16,
    reason: Option<String>,
    to_tag: Option<String>,
    top_via: Option<String>,
    copy_record_route: bool,
    headers: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

impl<'a> ResponseBuilder<'a> {
    pub fn new(req: &'a Message, code: u16) -> Self {
        ResponseBuilder {
            req,
            code,
            reason: None,
            to_tag: None,
            top_via: None,
            copy_record_route: false,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Overrides the reason phrase (default: the standard phrase for the code).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The tag to add to To when the request had none (ignored for 100 Trying).
    pub fn to_tag(mut self, tag: impl Into<String>) -> Self {
        self.to_tag = Some(tag.into());
        self
    }

    /// Replaces the top Via value (e.g. with `received`/`rport` filled in).
    pub fn top_via(mut self, via: impl Into<String>) -> Self {
        self.top_via = Some(via.into());
        self
    }

    /// Copies Record-Route (a UAS answering a dialog-creating request).
    pub fn copy_record_route(mut self) -> Self {
        self.copy_record_route = true;
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    pub fn build(self) -> Bytes {
        use std::fmt::Write as _;
        let req = self.req;
        let reason = self
            .reason
            .as_deref()
            .unwrap_or_else(|| crate::reason_phrase(self.code));
        let reason: std::borrow::Cow<'_, str> = if reason.chars().any(char::is_control) {
            reason
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .into()
        } else {
            reason.into()
        };
        let to = req.header(HeaderName::To).unwrap_or("");
        let add_tag = match (&self.to_tag, req.to_tag()) {
            (Some(tag), None) if self.code > 100 => Some(tag.as_str()),
            _ => None,
        };
        let (n, m) = req.cseq();
        // Allocate the exact size (within a few bytes) once: a response is kept
        // by its server transaction for Timer J, so slack is memory held.
        let header_len = |name: &str, value: &str| name.len() + value.len() + 4;
        let mut cap = 24 + reason.len();
        let via_lines: usize = req
            .headers_named(HeaderName::Via)
            .map(|l| header_len("Via", l))
            .sum();
        cap += via_lines + self.top_via.as_ref().map_or(0, |t| t.len() + 9);
        if self.copy_record_route {
            cap += req
                .headers_named(HeaderName::RecordRoute)
                .map(|l| header_len("Record-Route", l))
                .sum::<usize>();
        }
        cap += header_len("From", req.header(HeaderName::From).unwrap_or(""));
        cap += header_len("To", to) + add_tag.map_or(0, |t| t.len() + 5);
        cap += header_len("Call-ID", req.call_id());
        cap += 30 + m.as_str().len();
        cap += self
            .headers
            .iter()
            .map(|(k, v)| header_len(k, v))
            .sum::<usize>();
        cap += match &self.body {
            Some((ct, body)) => header_len("Content-Type", ct) + 40 + body.len(),
            None => 24,
        };
        let mut out = BytesMut::with_capacity(cap);
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.code, reason);
        let mut first_via = true;
        for line in req.headers_named(HeaderName::Via) {
            if first_via && let Some(top) = &self.top_via {
                first_via = false;
                // Replace only the first value of the first line.
                let rest: Vec<&str> = split_values(line).skip(1).collect();
                put_header(&mut out, "Via", top);
                if !rest.is_empty() {
                    put_header(&mut out, "Via", &rest.join(", "));
                }
                continue;
            }
            first_via = false;
            put_header(&mut out, "Via", line);
        }
        if self.copy_record_route {
            for rr in req.headers_named(HeaderName::RecordRoute) {
                put_header(&mut out, "Record-Route", rr);
            }
        }
        put_header(&mut out, "From", req.header(HeaderName::From).unwrap_or(""));
        match add_tag {
            Some(tag) => {
                out.put_slice(b"To: ");
                out.put_slice(to.as_bytes());
                out.put_slice(b";tag=");
                out.put_slice(tag.as_bytes());
                out.put_slice(b"\r\n");
            }
            None => put_header(&mut out, "To", to),
        }
        put_header(&mut out, "Call-ID", req.call_id());
        let _ = write!(out, "CSeq: {n} {m}\r\n");
        for (k, v) in &self.headers {
            put_header(&mut out, k, v);
        }
        match &self.body {
            Some((ct, body)) => {
                put_header(&mut out, "Content-Type", ct);
                let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
                out.put_slice(body);
            }
            None => out.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        debug_assert!(
            out.len() <= cap,
            "response size estimate {cap} < {}",
            out.len()
        );
        out.freeze()
    }
}

/// Builds a new request (server-originated NOTIFY, MESSAGE, ...).
pub struct RequestBuilder {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Bytes)>,
}

impl RequestBuilder {
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        RequestBuilder {
            method,
            uri: uri.into(),
            headers: Vec::with_capacity(10),
            body: None,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    pub fn build(self) -> Bytes {
        let mut out = BytesMut::with_capacity(512 + self.body.as_ref().map_or(0, |b| b.1.len()));
        out.put_slice(format!("{} {} SIP/2.0\r\n", self.method, self.uri).as_bytes());
        for (k, v) in &self.headers {
            put_header(&mut out, k, v);
        }
        match &self.body {
            Some((ct, body)) => {
                put_header(&mut out, "Content-Type", ct);
                put_header(&mut out, "Content-Length", &body.len().to_string());
                out.put_slice(b"\r\n");
                out.put_slice(body);
            }
            None => out.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        out.freeze()
    }
}

/// Rewrites a received message for forwarding: headers that are kept are copied
/// byte for byte.
pub struct Rewriter<'a> {
    msg: &'a Message,
    start_line: Option<String>,
    prepend: Vec<(String, String)>,
    append: Vec<(String, String)>,
    remove: Vec<HeaderName>,
    pop_first: Vec<(HeaderName, usize)>,
    max_forwards: Option<u32>,
}

impl<'a> Rewriter<'a> {
    pub fn new(msg: &'a Message) -> Self {
        Rewriter {
            msg,
            start_line: None,
            prepend: Vec::new(),
            append: Vec::new(),
            remove: Vec::new(),
            pop_first: Vec::new(),
            max_forwards: None,
        }
    }

    /// Replaces the Request-URI (requests only).
    pub fn request_uri(mut self, uri: &str) -> Self {
        if let Some(m) = self.msg.method() {
            self.start_line = Some(format!("{m} {uri} SIP/2.0"));
        }
        self
    }

    /// Adds a header line before all others (a proxy's Via, Record-Route).
    pub fn prepend(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.prepend.push((name.into(), value.into()));
        self
    }

    pub fn append(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.append.push((name.into(), value.into()));
        self
    }

    /// Drops every line of a header.
    pub fn remove(mut self, name: HeaderName) -> Self {
        self.remove.push(name);
        self
    }

    /// Removes the first value of a list header (top Via of a response, first Route).
    pub fn pop_first_value(self, name: HeaderName) -> Self {
        self.pop_values(name, 1)
    }

    /// Removes the first `n` values of a list header, across lines (the Route
    /// entries that point at this server).
    pub fn pop_values(mut self, name: HeaderName, n: usize) -> Self {
        if n > 0 {
            self.pop_first.push((name, n));
        }
        self
    }

    /// Sets Max-Forwards (added when absent).
    pub fn max_forwards(mut self, n: u32) -> Self {
        self.max_forwards = Some(n);
        self
    }

    pub fn build(self) -> Bytes {
        let msg = self.msg;
        let raw = msg.as_bytes();
        let mut out = BytesMut::with_capacity(raw.len() + 256);
        match &self.start_line {
            Some(l) => out.put_slice(l.as_bytes()),
            None => {
                let end = memchr::memmem::find(raw, b"\r\n").unwrap_or(0);
                out.put_slice(&raw[..end]);
            }
        }
        out.put_slice(b"\r\n");
        for (k, v) in &self.prepend {
            put_header(&mut out, k, v);
        }
        let mut to_pop: Vec<(HeaderName, usize)> = self.pop_first.clone();
        let mut mf_written = false;
        for (name, raw_name, value) in msg.headers() {
            if self.remove.contains(&name) && name != HeaderName::Other {
                continue;
            }
            if name == HeaderName::ContentLength {
                continue;
            }
            if name == HeaderName::MaxForwards
                && let Some(n) = self.max_forwards
            {
                if !mf_written {
                    put_header(&mut out, "Max-Forwards", &n.to_string());
                    mf_written = true;
                }
                continue;
            }
            if let Some(entry) = to_pop.iter_mut().find(|(n, left)| *n == name && *left > 0) {
                let values: Vec<&str> = split_values(value).collect();
                let skip = entry.1.min(values.len());
                entry.1 -= skip;
                let rest = &values[skip..];
                if !rest.is_empty() {
                    put_header(&mut out, raw_name, &rest.join(", "));
                }
                continue;
            }
            put_header(&mut out, raw_name, value);
        }
        if let Some(n) = self.max_forwards
            && !mf_written
        {
            put_header(&mut out, "Max-Forwards", &n.to_string());
        }
        for (k, v) in &self.append {
            put_header(&mut out, k, v);
        }
        let body = msg.body();
        put_header(&mut out, "Content-Length", &body.len().to_string());
        out.put_slice(b"\r\n");
        out.put_slice(body);
        out.freeze()
    }
}
