use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, Method, ResponseBuilder, Rewriter};

fn parse(s: &str) -> Result<Message, confab_sip::ParseError> {
    Message::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default())
}

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK74bf9 , SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=9fxced76sl\r\n\
t: Bob\r\n <sip:bob@example.com>\r\n\
i: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:alice@10.0.0.1>\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\n";

#[test]
fn parses_invite_with_compact_folding_and_lists() {
    let m = parse(INVITE).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.request_uri(), Some("sip:bob@example.com"));
    assert_eq!(m.top_via().branch(), Some("z9hG4bK74bf9"));
    assert_eq!(m.header_values(HeaderName::Via).count(), 2);
    assert_eq!(m.from().display, Some("Alice"));
    assert_eq!(m.from_tag(), Some("9fxced76sl"));
    assert_eq!(m.to().uri, "sip:bob@example.com");
    assert_eq!(m.to().display, Some("Bob"));
    assert_eq!(m.call_id(), "3848276298220188511@atlanta.example.com");
    assert_eq!(m.cseq(), (2, &Method::Invite));
    assert_eq!(m.max_forwards(), Some(70));
    assert_eq!(m.body(), b"v=0\r");
}

#[test]
fn extension_methods_pass() {
    let m = parse("SERVICE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/tcp 127.0.0.1:4000\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: x\r\nCSeq: 3 SERVICE\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert_eq!(m.method().unwrap().as_str(), "SERVICE");
    let m = parse("FOOBAR sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 3 FOOBAR\r\n\r\n").unwrap();
    assert_eq!(m.method().unwrap().as_str(), "FOOBAR");
}

#[test]
fn errors_name_the_problem_and_can_be_answered() {
    let e = parse("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 3 INVITE\r\n\r\n").unwrap_err();
    assert_eq!(e.status, 400);
    assert!(e.reason.contains("CSeq"), "{}", e.reason);
    let resp = String::from_utf8(e.response().unwrap().to_vec()).unwrap();
    assert!(
        resp.starts_with("SIP/2.0 400 CSeq method does not match"),
        "{resp}"
    );
    assert!(resp.contains("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"));
    let e = parse("MESSAGE sip:a@b SIP/7.0\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap_err();
    assert_eq!(e.status, 505);
    let e = parse("garbage").unwrap_err();
    assert!(e.response().is_none());
    let e = parse("MESSAGE sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\n\r\n").unwrap_err();
    assert_eq!(e.reason, "Missing Via header");
    assert!(e.response().is_none());
    let e = parse("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 50\r\n\r\nshort").unwrap_err();
    assert!(e.reason.contains("Content-Length"));
    let e = parse("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nX: a\u{0}b\r\n\r\n").unwrap_err();
    assert!(e.reason.contains("Control character"));
}

#[test]
fn limits() {
    let mut s = String::from(
        "MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\n",
    );
    for i in 0..300 {
        s.push_str(&format!("X-{i}: y\r\n"));
    }
    s.push_str("\r\n");
    assert_eq!(parse(&s).unwrap_err().status, 513);
    let big = "x".repeat(70_000);
    assert_eq!(parse(&big).unwrap_err().status, 513);
}

#[test]
fn response_and_rewrite_round_trip() {
    let m = parse(INVITE).unwrap();
    let r = ResponseBuilder::new(&m, 180)
        .to_tag("srv1")
        .header("Server", "confab")
        .build();
    let r = Message::parse(r, &Limits::default()).unwrap();
    assert_eq!(r.status(), Some(180));
    assert_eq!(r.to_tag(), Some("srv1"));
    assert_eq!(r.header_values(HeaderName::Via).count(), 2);
    assert_eq!(r.call_id(), m.call_id());

    let fwd = Rewriter::new(&m)
        .request_uri("sip:bob@10.0.0.9:5070")
        .prepend("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKproxy")
        .prepend("Record-Route", "<sip:127.0.0.1:5060;lr>")
        .max_forwards(69)
        .build();
    let f = Message::parse(fwd, &Limits::default()).unwrap();
    assert_eq!(f.request_uri(), Some("sip:bob@10.0.0.9:5070"));
    assert_eq!(f.top_via().branch(), Some("z9hG4bKproxy"));
    assert_eq!(f.header_values(HeaderName::Via).count(), 3);
    assert_eq!(f.max_forwards(), Some(69));
    assert_eq!(f.body(), m.body());

    // A response going back upstream loses its top Via value.
    let resp = Message::parse(
        ResponseBuilder::new(&f, 200).to_tag("x").build(),
        &Limits::default(),
    )
    .unwrap();
    let up = Message::parse(
        Rewriter::new(&resp)
            .pop_first_value(HeaderName::Via)
            .build(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(up.top_via().branch(), Some("z9hG4bK74bf9"));
    assert_eq!(up.header_values(HeaderName::Via).count(), 2);
}
