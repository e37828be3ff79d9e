//! The checks on a message head's bytes, as a sender sees them: the common case is
//! checked in one pass over the whole head (ASCII, no control character but the
//! CRLFs ending the lines), anything else line by line so that the 400 names what
//! is wrong. Both ways must give the answers below.

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, ParseError};

const HEAD: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n";

/// The request above with `extra` (header lines) before its Content-Length.
fn with_header_lines(extra: &[u8]) -> Result<Message, ParseError> {
    let mut m = HEAD.to_vec();
    m.extend_from_slice(extra);
    m.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Message::parse(Bytes::from(m), &Limits::default())
}

#[test]
fn header_bytes_are_accepted_or_refused_with_what_is_wrong() {
    let cases: &[(&[u8], Result<&str, &str>)] = &[
        (b"", Ok("")),
        (b"Subject: a\tb\r\n", Ok("a\tb")),
        (b"Subject: Zo\xc3\xab\r\n", Ok("Zo\u{eb}")),
        (b"Subject: a\r\n  b\r\n", Ok("a    b")),
        (b"Subject : x\r\n", Ok("x")),
        (b"Subject: \"a\\\x01\"\r\n", Ok("\"a\\\x01\"")),
        (
            b"Subject: a\rb\r\n",
            Err("Control character in Subject header"),
        ),
        (
            b"Subject: a\nb\r\n",
            Err("Control character in Subject header"),
        ),
        (
            b"Subject: a\x7fb\r\n",
            Err("Control character in Subject header"),
        ),
        (
            b"Subject: a\x00b\r\n",
            Err("Control character in Subject header"),
        ),
        (
            b"Subject: a\x01\r\n",
            Err("Control character in Subject header"),
        ),
        (
            b"Subject: Zo\xc3\r\n",
            Err("Invalid UTF-8 in message headers"),
        ),
        (b"Sub ject: x\r\n", Err("Malformed header name at byte")),
        (b"Sub\x01ject: x\r\n", Err("Malformed header name at byte")),
        (b": x\r\n", Err("Malformed header name at byte")),
        (b"Subject x\r\n", Err("Header line without ':' at byte")),
    ];
    for (extra, want) in cases {
        let shown = String::from_utf8_lossy(extra).into_owned();
        match (with_header_lines(extra), want) {
            (Ok(m), Ok(subject)) => {
                assert_eq!(
                    m.header(HeaderName::Subject).unwrap_or(""),
                    *subject,
                    "{shown:?}"
                );
            }
            (Err(e), Err(reason)) => {
                assert_eq!(e.status, 400, "{shown:?}: {e}");
                assert!(e.reason.starts_with(reason), "{shown:?}: {e}");
                assert!(e.can_reply(), "{shown:?}: a request with a Via is answered");
            }
            (got, want) => panic!("{shown:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_control_character_in_the_start_line_is_named() {
    for line in [
        &b"OPTIONS sip:bob@example.com\x7f SIP/2.0\r\n"[..],
        &b"OPTIONS sip:bob@exa\x01mple.com SIP/2.0\r\n"[..],
    ] {
        let mut m = line.to_vec();
        m.extend_from_slice(&HEAD[HEAD.iter().position(|&c| c == b'\n').unwrap_or(0) + 1..]);
        m.extend_from_slice(b"\r\n");
        let e = Message::parse(Bytes::from(m), &Limits::default()).unwrap_err();
        assert_eq!(
            (e.status, e.reason.as_str()),
            (400, "Control character in start line")
        );
    }
}

#[test]
fn a_long_head_of_control_characters_is_counted_past_each_chunk() {
    // 600 control characters in one value: more than one 255-byte chunk of the
    // one-pass count, which must not wrap to a count that looks clean.
    let mut extra = b"Subject: ".to_vec();
    extra.extend(std::iter::repeat_n(0x01u8, 600));
    extra.extend_from_slice(b"\r\n");
    let e = with_header_lines(&extra).unwrap_err();
    assert!(e.reason.starts_with("Control character in Subject"), "{e}");
    // 510 = 2 x 255: a count kept in one byte would wrap to 254 and could pass
    // for the CRLFs of 127 lines
    let mut extra = b"Subject: ".to_vec();
    extra.extend(std::iter::repeat_n(0x01u8, 510));
    extra.extend_from_slice(b"\r\n");
    assert!(with_header_lines(&extra).is_err());
}

/// A body that is not UTF-8 (RFC 4475 mpart01 carries one) is kept byte for byte,
/// and the head reads as it does with a text body: the head is text either way,
/// only where its spans are checked differs (once for the whole message, or at
/// each read).
#[test]
fn headers_read_the_same_with_a_binary_body_as_with_a_text_body() {
    let with_body = |body: &[u8]| {
        let mut m = HEAD.to_vec();
        m.extend_from_slice(b"Subject: Zo\xc3\xab\r\nContent-Type: application/octet-stream\r\n");
        m.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        m.extend_from_slice(body);
        Message::parse(Bytes::from(m), &Limits::default()).expect("parses")
    };
    let read = |m: &Message| {
        let headers: Vec<(String, String)> = m
            .headers()
            .map(|(_, n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let via = m.top_via();
        (
            headers,
            m.request_uri().map(str::to_owned),
            m.call_id().to_owned(),
            m.from_tag().map(str::to_owned),
            via.branch().map(str::to_owned),
            m.header(HeaderName::Subject).map(str::to_owned),
        )
    };
    let binary: &[u8] = b"\x00\xff\xfe\x80binary\r\n\xc3";
    let text: &[u8] = b"plain  text\r\n";
    let b = with_body(binary);
    let t = with_body(text);
    assert_eq!(b.body(), binary);
    assert_eq!(t.body(), text);
    assert_eq!(read(&b), read(&t));
    assert_eq!(
        b.header(HeaderName::Subject),
        Some("Zo\u{eb}"),
        "a UTF-8 value in the head is read as text"
    );
    assert_eq!(b.from_tag(), Some("1"));
}
