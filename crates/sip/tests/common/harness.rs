//! Fuzz harness: feeds arbitrary bytes to every parsing entry point and checks the
//! invariants that must hold for any input. Shared by the cargo-fuzz targets in
//! `fuzz/` (included with `#[path]`), the proptest suite and the corpus replay test,
//! so CI exercises exactly what the fuzzer does.
//!
//! A panic here is a finding: either a crash in confab-sip or a broken invariant.

use bytes::Bytes;
use confab_sip::header::{param, params, split_values, unquote};
use confab_sip::transaction::ServerKey;
use confab_sip::uri::percent_decode;
use confab_sip::{
    Frame, Framer, HeaderName, Limits, Message, NameAddr, ResponseBuilder, Rewriter, Uri, Via,
};

/// Limits used to re-parse what confab itself wrote (it may add a few headers and
/// bytes to a message that was just under the default limits).
const ROOMY: Limits = Limits {
    max_message_bytes: 1 << 20,
    max_headers: 4096,
};

/// Parse a datagram; on success touch every accessor and check that a response
/// and a proxied copy built from it parse again. On failure check the error reply.
pub fn exercise_message(data: &[u8]) {
    match Message::parse(Bytes::copy_from_slice(data), &Limits::default()) {
        Ok(m) => exercise_parsed(&m),
        Err(e) => {
            assert!(matches!(e.status, 400 | 505 | 513), "status {}", e.status);
            assert!(!e.reason.is_empty());
            let _ = e.to_string();
            if let Some(reply) = e.response() {
                assert!(e.can_reply());
                assert!(reply.starts_with(format!("SIP/2.0 {} ", e.status).as_bytes()));
                assert!(reply.ends_with(b"\r\n\r\n"));
                // The reply must be one well-framed message.
                let mut f = Framer::new(1 << 20);
                f.push(&reply);
                assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
                assert_eq!(f.pending(), 0);
            }
        }
    }
}

/// Every accessor of a parsed message, plus the builder round trips.
pub fn exercise_parsed(m: &Message) {
    let _ = m.start_line();
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.is_request(),
    );
    assert_eq!(m.is_request(), m.method().is_some());
    assert_eq!(m.is_request(), m.status().is_none());
    let _ = (
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
        m.expires(),
        m.content_type(),
    );
    assert!(!m.call_id().is_empty());
    let _ = (m.from(), m.to(), m.from_tag(), m.to_tag(), m.top_via_str());
    let via = m.top_via();
    assert!(!via.host.is_empty(), "top Via was validated at parse time");
    let _ = (via.branch(), via.received(), via.rport(), via.is_rfc3261());
    let _ = m.from().parsed_uri();
    let _ = m.to().parsed_uri();
    if let Some(u) = m.request_uri() {
        exercise_uri_str(u);
    }
    for (name, raw, value) in m.headers() {
        let _ = (name.as_str(), name.is_list());
        assert_eq!(HeaderName::from_bytes(raw.as_bytes()), name);
        let _ = m.header_str(raw);
        for v in split_values(value) {
            let _ = params(v).count();
        }
    }
    assert_eq!(m.headers().count(), m.header_count());
    for v in m.header_values(HeaderName::Via) {
        if let Ok(v) = Via::parse(v) {
            let _ = v.branch();
        }
    }
    for c in m.header_values(HeaderName::Contact) {
        if let Ok(n) = NameAddr::parse(c) {
            let _ = (n.param("expires"), n.parsed_uri().map(|u| u.aor()));
        }
    }
    for name in [
        HeaderName::Supported,
        HeaderName::Require,
        HeaderName::Allow,
    ] {
        let _ = m.has_option(name, "100rel");
    }
    let _ = m.header_str("ms-keep-alive");
    for a in m.headers_named(HeaderName::Authorization) {
        let _ = param(a, "gssapi-data").flatten().map(unquote);
    }
    let _ = (m.body(), m.body_bytes(), m.as_bytes());
    if m.is_request() {
        let _ = ServerKey::of(m);
        let _ = ServerKey::cancel_target(m);
        check_response_round_trip(m);
    } else {
        let _ = confab_sip::transaction::ClientKey::of_response(m);
    }
    check_rewrite_round_trip(m);
}

fn check_response_round_trip(req: &Message) {
    for code in [100u16, 180, 200, 486] {
        let out = ResponseBuilder::new(req, code)
            .to_tag("fuzz1")
            .header("Server", "confab")
            .body("text/plain", Bytes::from_static(b"hi"))
            .build();
        let r = match Message::parse(out.clone(), &ROOMY) {
            Ok(r) => r,
            Err(e) => panic!("response to a valid request does not parse: {e}\n{out:?}"),
        };
        assert_eq!(r.status(), Some(code));
        assert_eq!(r.call_id(), req.call_id());
        assert_eq!(r.cseq(), req.cseq());
        assert_eq!(r.top_via_str(), req.top_via_str());
        assert_eq!(r.body(), b"hi");
    }
}

fn check_rewrite_round_trip(m: &Message) {
    let mut rw = Rewriter::new(m)
        .prepend("Via", "SIP/2.0/TCP 192.0.2.9:5061;branch=z9hG4bKfuzzproxy")
        .max_forwards(42)
        .append("X-Fuzz", "1");
    if m.is_request() {
        rw = rw.request_uri("sip:target@192.0.2.10:5070;transport=tcp");
    }
    let out = rw.build();
    let f = match Message::parse(out.clone(), &ROOMY) {
        Ok(f) => f,
        Err(e) => panic!("rewritten message does not parse: {e}\n{out:?}"),
    };
    assert_eq!(f.call_id(), m.call_id());
    assert_eq!(f.cseq(), m.cseq());
    assert_eq!(f.body(), m.body());
    assert_eq!(f.max_forwards(), Some(42));
    assert_eq!(f.top_via().branch(), Some("z9hG4bKfuzzproxy"));
    // Popping our Via again gives back the original top Via.
    let back = Rewriter::new(&f).pop_first_value(HeaderName::Via).build();
    let b = match Message::parse(back.clone(), &ROOMY) {
        Ok(b) => b,
        Err(e) => panic!("message with our Via popped does not parse: {e}\n{back:?}"),
    };
    assert_eq!(b.top_via_str(), m.top_via_str());
}

/// Cut a byte stream into frames, once in one piece and once in small chunks (sizes
/// taken from the data), and check both give the same frames.
pub fn exercise_framer(data: &[u8]) {
    let whole = frame_all(data, data.len().max(1));
    let step = 1 + data.first().map_or(0, |b| usize::from(*b % 13));
    let chunked = frame_all(data, step);
    assert_eq!(
        whole, chunked,
        "framing depends on how the stream was cut (step {step})"
    );
    for f in whole.0 {
        if let Frame::Message(b) = f
            && let Ok(m) = Message::parse(b, &Limits::default())
        {
            let _ = (m.call_id(), m.body().len());
        }
    }
}

type Framed = (Vec<Frame>, Option<confab_sip::FramingError>, usize);

fn frame_all(data: &[u8], step: usize) -> Framed {
    let mut framer = Framer::new(4096);
    let mut frames = Vec::new();
    for chunk in data.chunks(step) {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e), 0),
            }
        }
    }
    assert!(framer.pending() <= 4096 + step);
    (frames, None, framer.pending())
}

/// URI, name-addr and Via views on arbitrary text.
pub fn exercise_uri(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    exercise_uri_str(s);
    if let Ok(n) = NameAddr::parse(s) {
        let _ = (n.tag(), n.param("q"), n.display);
        if let Ok(u) = n.parsed_uri() {
            let _ = u.aor();
        }
    }
    if let Ok(v) = Via::parse(s) {
        assert!(!v.host.is_empty());
        let _ = (v.branch(), v.rport(), v.received(), v.is_rfc3261());
    }
    for v in split_values(s) {
        assert!(!v.is_empty());
        let _ = params(v).count();
    }
    let _ = percent_decode(s);
    let _ = confab_sip::header::split_host_port(s);
}

fn exercise_uri_str(s: &str) {
    if let Ok(u) = Uri::parse(s) {
        let _ = (u.user_unescaped(), u.transport(), u.param("lr"), u.aor());
        if u.scheme != confab_sip::uri::Scheme::Tel {
            assert!(!u.host.is_empty());
        }
    }
}
