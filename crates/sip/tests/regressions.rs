//! Bugs found while writing the torture, property, differential and fuzz tests, one
//! test each, so they stay fixed.

mod common;

use common::parse_str;
use confab_sip::{Frame, Framer, FramingError, Uri, Via};

const TAIL: &str =
    "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: reg1\r\n";

#[test]
fn uri_user_part_may_contain_question_mark() {
    // '?' is a user-unreserved character; headers start at the '?' after the host.
    let u = Uri::parse("sip:what?ever@example.com;lr?subject=x").unwrap();
    assert_eq!(u.user, Some("what?ever"));
    assert_eq!(u.host, "example.com");
    assert_eq!(u.params, ";lr");
    assert_eq!(u.headers, "subject=x");
    let u = Uri::parse("sip:example.com?subject=x").unwrap();
    assert_eq!(
        (u.user, u.host, u.headers),
        (None, "example.com", "subject=x")
    );
}

#[test]
fn via_with_nameless_parameter_is_malformed() {
    for bad in [
        "SIP/2.0/UDP 192.0.2.15;;",
        "SIP/2.0/UDP 192.0.2.15;",
        "SIP/2.0/UDP 192.0.2.15;branch=z9hG4bK1;",
        "SIP/2.0/UDP 192.0.2.15; ;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.15;=x",
    ] {
        assert!(Via::parse(bad).is_err(), "{bad}");
    }
    let v = Via::parse("SIP/2.0/UDP h ; rport ; x=\"a;;b\" ;branch=z9hG4bK1").unwrap();
    assert_eq!(v.branch(), Some("z9hG4bK1"));
}

#[test]
fn unsupported_version_request_is_answered_with_505() {
    let e = parse_str(&format!(
        "OPTIONS sip:x@example.com SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK5\r\n{TAIL}CSeq: 1 OPTIONS\r\n\r\n"
    ))
    .unwrap_err();
    assert_eq!(e.status, 505);
    let r = common::parse(&e.response().unwrap()).unwrap();
    assert_eq!(r.status(), Some(505));
    assert_eq!(r.call_id(), "reg1");
    assert_eq!(r.top_via().branch(), Some("z9hG4bK5"));
    // A response in another version is never answered.
    let e = parse_str(&format!(
        "SIP/3.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n{TAIL}CSeq: 1 OPTIONS\r\n\r\n"
    ))
    .unwrap_err();
    assert_eq!((e.status, e.response()), (505, None));
}

#[test]
fn signed_numbers_are_not_numbers() {
    for (h, what) in [
        ("CSeq: +1 OPTIONS\r\n", "CSeq"),
        ("CSeq: 1 OPTIONS\r\nMax-Forwards: +70\r\n", "Max-Forwards"),
        (
            "CSeq: 1 OPTIONS\r\nContent-Length: +0\r\n",
            "Content-Length",
        ),
    ] {
        let e = parse_str(&format!(
            "OPTIONS sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n{TAIL}{h}\r\n"
        ))
        .unwrap_err();
        assert!(e.reason.contains(what), "{what}: {e}");
    }
    let mut f = Framer::new(1000);
    f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: +0\r\n\r\n");
    assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
}

#[test]
fn control_characters_in_start_line_are_refused() {
    for start in [
        "OPTIONS sip:x@exa\nmple.com SIP/2.0",
        "OPTIONS sip:x@\0 SIP/2.0",
        "SIP/2.0 200 O\u{7f}K",
    ] {
        let e = parse_str(&format!(
            "{start}\r\nVia: SIP/2.0/UDP h\r\n{TAIL}CSeq: 1 OPTIONS\r\n\r\n"
        ))
        .unwrap_err();
        assert!(e.reason.contains("start line"), "{start:?}: {e}");
    }
    // A tab in the reason phrase is allowed.
    let m = parse_str(&format!(
        "SIP/2.0 200 O\tK\r\nVia: SIP/2.0/UDP h\r\n{TAIL}CSeq: 1 OPTIONS\r\n\r\n"
    ))
    .unwrap();
    assert_eq!(m.reason(), Some("O\tK"));
}

#[test]
fn framer_huge_content_length_is_too_large_not_an_overflow() {
    let mut f = Framer::new(65_535);
    f.push(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n");
    assert_eq!(f.next_frame(), Err(FramingError::TooLarge(65_535)));
}

#[test]
fn framer_reads_a_folded_content_length() {
    let msg = b"MESSAGE sip:x SIP/2.0\r\nContent-Length:\r\n  5\r\n\r\nhelloNEXT";
    let mut f = Framer::new(1000);
    f.push(msg);
    assert_eq!(
        f.next_frame(),
        Ok(Some(Frame::Message(msg[..msg.len() - 4].to_vec().into())))
    );
    assert_eq!(f.pending(), 4);
    let mut f = Framer::new(1000);
    f.push(b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 5\r\n 6\r\n\r\nhello!");
    assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
}

#[test]
fn framer_ignores_colons_on_continuation_lines() {
    // "\tl:1" continues the Via; it is not a compact Content-Length.
    let msg = b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP\r\n\tl:1\r\nContent-Length: 2\r\n\r\nhi";
    let mut f = Framer::new(1000);
    f.push(msg);
    assert_eq!(
        f.next_frame(),
        Ok(Some(Frame::Message(msg.to_vec().into())))
    );
}
