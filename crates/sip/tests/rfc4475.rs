//! RFC 4475 ("SIP Torture Test Messages") as far as it applies to a message parser.
//!
//! The messages in `tests/data/rfc4475/` were constructed from the RFC's description
//! of each test (file name = the RFC's test name). Each test states what confab
//! does with it. Where the RFC leaves the choice to the implementation, or where
//! confab deliberately differs, the test says so and why.
//!
//! Deliberate choices, in short:
//! - The parser checks syntax of the start line and of the core headers (Via, From,
//!   To, Call-ID, CSeq, Max-Forwards, Content-Length). Everything else is parsed on
//!   access, so semantic errors in other headers (Date, Retry-After, Contact's
//!   form...) are accepted here and left to the layer that uses the header.
//! - The Request-URI must have a scheme (`x:`) and no whitespace or `<>`; unknown
//!   schemes are accepted by the parser (RFC 4475 §3.3.2 wants 416 from the core,
//!   which sees `Uri::parse` fail).
//! - Raw control characters (NUL, BEL, DEL...) are refused in every header (400,
//!   answered when the request can be addressed), except as the escaped character
//!   of a quoted-pair inside a quoted string, which RFC 3261 §25.1 allows (intmeth:
//!   the core then answers the unknown method with 501).

mod common;

use bytes::Bytes;
use common::{load, parse, squash};
use confab_sip::transaction::ServerKey;
use confab_sip::uri::Scheme;
use confab_sip::{HeaderName, Message, Method, NameAddr, ParseError, Uri, Via};

fn ok(name: &str) -> Message {
    let b = load("rfc4475", &format!("{name}.sip"));
    match parse(&b) {
        Ok(m) => m,
        Err(e) => panic!("{name} must parse, got {e}"),
    }
}

fn err(name: &str) -> ParseError {
    let b = load("rfc4475", &format!("{name}.sip"));
    match parse(&b) {
        Ok(_) => panic!("{name} must be rejected"),
        Err(e) => e,
    }
}

/// Status and a word of the reason; an answerable request gets an error response
/// that itself parses and echoes the request's Call-ID.
fn rejected(name: &str, status: u16, reason_has: &str, answerable: bool) -> ParseError {
    let e = err(name);
    assert_eq!(e.status, status, "{name}: {e}");
    assert!(
        e.reason.contains(reason_has),
        "{name}: reason {:?} lacks {reason_has:?}",
        e.reason
    );
    assert_eq!(e.response().is_some(), answerable, "{name}: answerable");
    if let Some(resp) = e.response() {
        assert!(resp.starts_with(format!("SIP/2.0 {status} ").as_bytes()));
        let text = String::from_utf8_lossy(&resp).into_owned();
        assert!(text.contains("\r\nVia: "), "{name}: {text}");
    }
    e
}

fn uri(s: &str) -> Uri<'_> {
    Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

// ---------------------------------------------------------------- 3.1.1 valid

#[test]
fn wsinv_short_tortuous_invite() {
    let m = ok("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(
        m.request_uri(),
        Some("sip:vivekg@chair-dnrc.example.com;unknownparam")
    );
    // header names in any case, whitespace before the colon, folded values
    assert_eq!(m.to().uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(m.from().display, Some(r#"J Rosenberg \\\""#));
    assert_eq!(m.from().uri, "sip:jdrosen@example.com");
    assert_eq!(m.from_tag(), Some("98asjd8"));
    assert_eq!(m.max_forwards(), Some(68)); // "0068"
    assert_eq!(m.call_id(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(m.cseq(), (9, &Method::Invite)); // "0009\r\n  INVITE"
    // "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw"
    let top = m.top_via();
    assert_eq!(
        (top.transport, top.host, top.port),
        ("UDP", "192.0.2.2", None)
    );
    assert_eq!(top.branch(), Some("390skdjuw"));
    assert!(!top.is_rfc3261());
    let vias: Vec<Via> = m
        .header_values(HeaderName::Via)
        .map(|v| Via::parse(v).unwrap())
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[1].transport, vias[1].host),
        ("TCP", "spindle.example.com")
    );
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(
        (vias[2].transport, vias[2].host),
        ("UDP", "192.168.255.111")
    );
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.header(HeaderName::Subject), Some("")); // "s :" with an empty value
    assert_eq!(
        m.header_str("newfangledheader").map(squash).as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        m.header_str("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let route = NameAddr::parse(m.header(HeaderName::Route).unwrap()).unwrap();
    assert_eq!(
        route.parsed_uri().unwrap().param("unknown-no-value"),
        Some(None)
    );
    let contact = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(contact.display, Some(r#"Quoted string \"\""#));
    assert_eq!(contact.uri, "sip:jdrosen@example.com");
    assert_eq!(contact.param("newparam"), Some(Some("newvalue")));
    assert_eq!(contact.param("secondparam"), Some(None));
    assert_eq!(contact.param("q"), Some(Some("0.33")));
    assert_eq!(m.content_type(), Some("application/sdp"));
    assert!(m.body().starts_with(b"v=0\r\n") && m.body().ends_with(b"a=rtpmap:31 LPC\r\n"));
}

const INTMETH: &str = "!interesting-Method0123456789_*+`.%indeed'~";

#[test]
fn intmeth_with_escaped_control_characters_parses() {
    // The To display name carries quoted-pair escaped NUL, BEL and DEL, which RFC
    // 3261 §25.1 allows (issue 15, item 12: this request used to get no answer).
    let m = ok("intmeth");
    assert_eq!(m.method().map(Method::as_str), Some(INTMETH));
    assert!(m.to().display.is_some_and(|d| d.contains('\0')));
}

#[test]
fn raw_control_characters_are_refused_with_an_answer() {
    // The same bytes outside a quoted-pair: refused, and answered (issue 15, item 11).
    let text = String::from_utf8_lossy(&load("rfc4475", "intmeth.sip")).into_owned();
    let raw = text.replace("\\\0", "\0").replace("\\\x07", "\x07");
    let e = match parse(&Bytes::from(raw)) {
        Ok(_) => panic!("raw NUL must be refused"),
        Err(e) => e,
    };
    assert_eq!(e.status, 400);
    assert!(e.reason.contains("Control character in To"), "{e}");
    let resp = e.response().expect("answerable");
    assert!(String::from_utf8_lossy(&resp).contains("Call-ID: intmeth.word"));
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let m = ok("intmeth-printable");
    assert_eq!(m.method().map(Method::as_str), Some(INTMETH));
    assert!(matches!(m.method(), Some(Method::Other(_))));
    assert_eq!(
        m.cseq(),
        (139_122_385, &Method::parse(INTMETH.as_bytes()).unwrap())
    );
    // The user part of the Request-URI contains '?', ';', ':' and ','.
    let ruri = m.request_uri().unwrap();
    let u = uri(ruri);
    assert_eq!(u.host, "example.com");
    assert_eq!(
        u.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(u.headers, "");
    let to = m.to();
    assert_eq!(to.display, Some(r"BEL:\b NUL:\0 DEL:\d"));
    assert_eq!(to.parsed_uri().unwrap().host, "example.com");
    assert_eq!(m.top_via().branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert!(m.top_via().is_rfc3261());
    assert_eq!(m.from().display, Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(m.from_tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.from().param("fromParam''~+*_!.-%"),
        Some(Some("\"живой параметр\""))
    );
    assert_eq!(m.call_id(), r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#);
    assert_eq!(m.max_forwards(), Some(255));
    assert_eq!(
        m.header_str("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
    assert_eq!(m.body(), b"");
}

#[test]
fn esc01_valid_percent_escapes() {
    let m = ok("esc01");
    assert_eq!(m.method(), Some(&Method::Invite));
    let u = uri(m.request_uri().unwrap());
    assert_eq!(u.host, "example.net");
    assert_eq!(u.user_unescaped().as_deref(), Some("sips:user@example.com"));
    assert_eq!(
        m.to().parsed_uri().unwrap().user_unescaped().as_deref(),
        Some("user")
    );
    assert_eq!(
        m.from().parsed_uri().unwrap().user_unescaped().as_deref(),
        Some("I have spaces")
    );
    assert_eq!(m.from_tag(), Some("938"));
    assert_eq!(m.call_id(), "esc01.239409asdfakjkn23onasd0-3234"); // compact "i"
    assert_eq!(m.cseq(), (234_234, &Method::Invite));
    assert_eq!(m.top_via().branch(), Some("z9hG4bKkdjuw"));
    assert_eq!(m.content_type(), Some("application/sdp")); // upper-case compact "C"
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    let cu = c.parsed_uri().unwrap();
    assert_eq!(cu.user_unescaped().as_deref(), Some("caller"));
    assert_eq!(cu.param("%6C%72"), Some(None)); // parameter names are not unescaped
    assert_eq!(cu.param("n%61me"), Some(Some("v%61lue%25%34%31")));
    assert_eq!(m.body().len(), 153);
}

#[test]
fn escnull_escaped_nulls_in_uris() {
    let m = ok("escnull");
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.call_id(), "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd");
    assert_eq!(m.cseq(), (14_398_234, &Method::Register));
    assert_eq!(m.top_via().branch(), Some("z9hG4bKkdjuw"));
    let to = m.to().parsed_uri().unwrap();
    assert_eq!(to.user_unescaped().as_deref(), Some("null-\0-null"));
    assert_eq!(m.header_values(HeaderName::Contact).count(), 2);
    assert_eq!(m.body(), b""); // "L:0"
}

#[test]
fn esc02_percent_that_is_not_an_escape() {
    let m = ok("esc02");
    // "RE%47IST%45R" is an extension method, not REGISTER.
    assert_eq!(m.method().map(Method::as_str), Some("RE%47IST%45R"));
    assert_ne!(m.method(), Some(&Method::Register));
    assert_eq!(m.cseq().1.as_str(), "RE%47IST%45R");
    assert_eq!(m.from().display, Some("%Z%45"));
    assert_eq!(m.from_tag(), Some("f232jadfj23"));
    assert_eq!(m.top_via().branch(), Some("z9hG4bK209%fzsnel234"));
    assert_eq!(m.top_via().rport(), Some(None));
    // "C%6Fntact" is an unknown header, not Contact.
    assert_eq!(m.header_values(HeaderName::Contact).count(), 2);
    assert_eq!(
        m.header_str("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );
}

#[test]
fn lwsdisp_no_lws_between_display_name_and_angle() {
    let m = ok("lwsdisp");
    assert_eq!(m.method(), Some(&Method::Options));
    assert_eq!(m.from().display, Some("caller"));
    assert_eq!(m.from().uri, "sip:caller@example.com");
    assert_eq!(m.from_tag(), Some("323"));
    assert_eq!(m.cseq(), (60, &Method::Options));
}

#[test]
fn longreq_long_values() {
    let m = ok("longreq");
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.top_via().branch(), Some("z9hG4bKlongreqtop"));
    assert_eq!(m.header_values(HeaderName::Via).count(), 33);
    assert!(
        m.to()
            .display
            .unwrap()
            .starts_with("I have a user name of extremeextreme")
    );
    assert_eq!(m.to().parsed_uri().unwrap().port, Some(6000));
    assert_eq!(m.from_tag().map(str::len), Some(202));
    assert!(m.call_id().starts_with("longreq.onereallyreally") && m.call_id().len() > 480);
    assert_eq!(m.cseq(), (3_882_340, &Method::Invite));
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.body().len(), 153);
}

#[test]
fn dblreq_extra_octets_in_datagram_are_ignored() {
    let m = ok("dblreq");
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.call_id(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412"); // compact "I"
    assert_eq!(m.cseq(), (8, &Method::Register));
    assert_eq!(m.top_via().branch(), Some("z9hG4bKkdjuw23492"));
    assert_eq!(
        m.body(),
        b"",
        "Content-Length: 0 cuts off the second request"
    );
    assert_eq!(m.header(HeaderName::ContentType), None);
}

#[test]
fn semiuri_semicolons_in_user_part() {
    let m = ok("semiuri");
    let u = uri(m.request_uri().unwrap());
    assert_eq!(u.user, Some("user;par=u%40example.net"));
    assert_eq!(u.host, "example.com");
    assert_eq!(u.params, "");
    assert_eq!(m.header_values(HeaderName::Accept).count(), 6); // folded list
    assert_eq!(m.cseq(), (8, &Method::Options));
}

#[test]
fn transports_varied_and_unknown() {
    let m = ok("transports");
    assert_eq!(m.call_id(), "transports.kijh4akdnaqjkwendsasfdj");
    let t: Vec<&str> = m
        .header_values(HeaderName::Via)
        .map(|v| Via::parse(v).unwrap().transport)
        .collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(m.top_via().branch(), Some("z9hG4bKkdjuw"));
}

#[test]
fn mpart01_binary_multipart_body() {
    let m = ok("mpart01");
    assert_eq!(m.method(), Some(&Method::Message));
    assert_eq!(m.call_id(), "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..");
    assert_eq!(
        m.top_via().branch(),
        Some("z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-")
    );
    assert_eq!(
        m.content_type(),
        Some("multipart/mixed;boundary=7a9cbec02ceef655")
    );
    let cl: usize = m
        .header(HeaderName::ContentLength)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(m.body().len(), cl);
    assert!(std::str::from_utf8(m.body()).is_err(), "the body is binary");
    assert!(m.body().ends_with(b"--7a9cbec02ceef655--\r\n"));
}

#[test]
fn unreason_utf8_reason_phrase() {
    let m = ok("unreason");
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.reason(),
        Some("= 2**3 * 5**2 но сто девяносто девять - простое")
    );
    assert_eq!(m.cseq(), (35, &Method::Invite));
    assert_eq!(m.to_tag(), Some("2229"));
}

#[test]
fn noreason_empty_reason_phrase() {
    let m = ok("noreason");
    assert_eq!(m.status(), Some(100));
    assert_eq!(m.reason(), Some(""));
    assert_eq!(m.call_id(), "noreason.asndj203insdf99223ndf");
    // Also without the SP after the code.
    let text = String::from_utf8(load("rfc4475", "noreason.sip").to_vec()).unwrap();
    let m = common::parse_str(&text.replacen("SIP/2.0 100 \r\n", "SIP/2.0 100\r\n", 1)).unwrap();
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));
}

// ---------------------------------------------------------------- 3.1.2 invalid

#[test]
fn badinv01_extraneous_separators() {
    // The top Via "SIP/2.0/UDP 192.0.2.15;;" has an empty parameter.
    rejected("badinv01", 400, "Via", true);
}

#[test]
fn clerr_content_length_larger_than_message() {
    rejected("clerr", 400, "Content-Length", true);
}

#[test]
fn ncl_negative_content_length() {
    rejected("ncl", 400, "Content-Length", true);
}

#[test]
fn scalar02_overlarge_request_values() {
    // CSeq 36893488147419103232 and Max-Forwards 300.
    rejected("scalar02", 400, "CSeq", true);
}

#[test]
fn scalarlg_overlarge_response_values() {
    // A response with an overflowing CSeq: dropped (a response is never answered).
    // Retry-After and Warning are not looked at by the parser.
    rejected("scalarlg", 400, "CSeq", false);
}

#[test]
fn quotbal_unterminated_quoted_string() {
    rejected("quotbal", 400, "To", true);
}

#[test]
fn ltgtruri_angle_brackets_around_request_uri() {
    // Fails before the headers are read: no response can be addressed.
    rejected("ltgtruri", 400, "angle", false);
}

#[test]
fn lwsruri_embedded_lws_in_request_uri() {
    rejected("lwsruri", 400, "Request-URI", false);
}

#[test]
fn lwsstart_multiple_sp_in_request_line() {
    rejected("lwsstart", 400, "Request-URI", false);
}

#[test]
fn trws_trailing_sp_after_request_line() {
    rejected("trws", 400, "request line", false);
}

#[test]
fn escruri_escaped_headers_in_request_uri() {
    // Deliberate: accepted by the parser. A Request-URI must not carry headers
    // (RFC 3261 §19.1.5 table); the core sees them in `Uri::headers` and answers 400.
    let m = ok("escruri");
    assert_eq!(
        uri(m.request_uri().unwrap()).headers,
        "Route=%3Csip:example.com%3E"
    );
}

#[test]
fn baddate_invalid_time_zone() {
    // Accepted: Date is never interpreted by confab (the RFC allows accepting it).
    let m = ok("baddate");
    assert_eq!(
        m.header(HeaderName::Date),
        Some("Fri, 01 Jan 2010 16:00:00 EST")
    );
}

#[test]
fn regbadct_addr_spec_with_uri_header() {
    // Deliberate: Contact is parsed on access. The addr-spec form cannot carry URI
    // headers, so the `?Route=...` ends up in the URI: the registrar rejects a
    // Contact whose URI has headers.
    let m = ok("regbadct");
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert!(!c.bracketed);
    assert_eq!(
        c.parsed_uri().unwrap().headers,
        "Route=%3Csip:sip.example.com%3E"
    );
}

#[test]
fn badaspec_spaces_in_addr_spec() {
    // Deliberate, and allowed by the RFC ("may ignore the spaces"): accepted. The
    // spaces just inside <> are trimmed; the space after "sip:" makes the From URI
    // unusable, which the layer reading it sees.
    let m = ok("badaspec");
    assert_eq!(m.to().uri, "sip:t.watson@example.org");
    assert_eq!(m.to().parsed_uri().unwrap().user, Some("t.watson"));
    assert_eq!(m.from().uri, "sip: a.g.bell@example.com");
    assert!(m.from().parsed_uri().is_err());
    assert_eq!(m.from_tag(), Some("43"));
}

#[test]
fn baddn_unquoted_non_token_display_name() {
    // Deliberate, and allowed by the RFC: an unquoted display name with a comma is
    // accepted as everything before '<'.
    let m = ok("baddn");
    assert_eq!(m.to().display, Some("Watson, Thomas"));
    assert_eq!(m.from().display, Some("Bell, Alexander"));
    assert_eq!(m.from_tag(), Some("43"));
}

#[test]
fn badvers_unknown_protocol_version() {
    // 505, and the request can be answered.
    let e = rejected("badvers", 505, "Version", true);
    let resp = e.response().unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    assert!(
        text.contains("Call-ID: badvers.31417@c.example.com\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Via: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n"),
        "{text}"
    );
}

#[test]
fn mismatch01_method_mismatch() {
    rejected("mismatch01", 400, "CSeq method", true);
}

#[test]
fn mismatch02_unknown_method_mismatch() {
    rejected("mismatch02", 400, "CSeq method", true);
}

#[test]
fn bigcode_overlarge_status_code() {
    rejected("bigcode", 400, "status code", false);
}

// ---------------------------------------------------------------- 3.2 transactions

#[test]
fn badbranch_bare_magic_cookie() {
    // Syntactically valid. The branch is only the magic cookie, so it identifies no
    // transaction: confab falls back to RFC 2543 matching for it.
    let m = ok("badbranch");
    assert_eq!(m.top_via().branch(), Some("z9hG4bK"));
    assert!(matches!(ServerKey::of(&m), Some(ServerKey::Rfc2543 { .. })));
}

// ---------------------------------------------------------------- 3.3 application

#[test]
fn insuf_missing_required_headers() {
    rejected("insuf", 400, "Missing From", true);
}

#[test]
fn unkscm_unknown_request_uri_scheme() {
    // Deliberate: parsed (the Request-URI has a scheme); the core answers 416
    // because `Uri::parse` refuses the scheme.
    let m = ok("unkscm");
    assert_eq!(
        m.request_uri(),
        Some("nobodyKnowsThisScheme:totallyopaquecontent")
    );
    assert!(Uri::parse(m.request_uri().unwrap()).is_err());
}

#[test]
fn novelsc_known_but_atypical_scheme() {
    let m = ok("novelsc");
    assert_eq!(m.request_uri(), Some("soap.beep://192.0.2.103:3002"));
    assert!(Uri::parse(m.request_uri().unwrap()).is_err());
}

#[test]
fn unksm2_unknown_schemes_in_headers() {
    let m = ok("unksm2");
    assert_eq!(m.to().uri, "isbn:2983792873");
    assert_eq!(m.from().uri, "http://www.example.com");
    assert_eq!(m.from_tag(), Some("3234233"));
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.uri, "name:John_Smith");
}

#[test]
fn bext01_require_and_proxy_require() {
    let m = ok("bext01");
    assert!(m.has_option(HeaderName::Require, "nothingSupportedHere"));
    assert!(m.has_option(HeaderName::ProxyRequire, "nothingsupportedhere"));
    assert_eq!(m.header_values(HeaderName::ProxyRequire).count(), 2);
}

#[test]
fn invut_unknown_content_type() {
    let m = ok("invut");
    assert_eq!(m.content_type(), Some("application/unknownformat"));
    assert!(m.body().starts_with(b"<audio>"));
}

#[test]
fn regaut01_unknown_authorization_scheme() {
    let m = ok("regaut01");
    assert_eq!(
        m.header(HeaderName::Authorization),
        Some("NoOneKnowsThisScheme opaque-data=here")
    );
}

#[test]
fn multi01_multiple_values_in_single_value_headers() {
    rejected("multi01", 400, "More than one", true);
}

#[test]
fn mcl01_multiple_content_lengths() {
    rejected("mcl01", 400, "Content-Length", true);
}

#[test]
fn bcast_broadcast_via() {
    // Parsed; dropping a response whose next Via is a broadcast address is the
    // transport layer's job.
    let m = ok("bcast");
    let vias: Vec<_> = m.header_values(HeaderName::Via).collect();
    assert_eq!(Via::parse(vias[1]).unwrap().host, "255.255.255.255");
}

#[test]
fn zeromf_max_forwards_zero() {
    assert_eq!(ok("zeromf").max_forwards(), Some(0));
}

#[test]
fn cparam01_contact_header_parameter() {
    let m = ok("cparam01");
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.uri, "sip:+19725552222@gw1.example.net");
    assert_eq!(c.param("unknownparam"), Some(None)); // header parameter
    assert_eq!(c.parsed_uri().unwrap().params, "");
}

#[test]
fn cparam02_contact_uri_parameter() {
    let m = ok("cparam02");
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    assert_eq!(c.param("unknownparam"), None);
    assert_eq!(c.parsed_uri().unwrap().param("unknownparam"), Some(None)); // URI parameter
}

#[test]
fn regescrt_escaped_route_in_contact() {
    let m = ok("regescrt");
    let c = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    let u = c.parsed_uri().unwrap();
    assert_eq!((u.user, u.host), (Some("user"), "example.com"));
    assert_eq!(u.headers, "Route=%3Csip:sip.example.com%3E");
}

#[test]
fn sdp01_unacceptable_accept() {
    let m = ok("sdp01");
    assert_eq!(m.header(HeaderName::Accept), Some("text/nobodyKnowsThis"));
    assert_eq!(m.method(), Some(&Method::Invite));
}

// ---------------------------------------------------------------- 3.4 RFC 2543

#[test]
fn inv2543_rfc2543_syntax() {
    let m = ok("inv2543");
    assert_eq!(m.top_via().branch(), None);
    assert_eq!(m.from_tag(), None);
    assert_eq!(m.max_forwards(), None);
    assert_eq!(m.to().uri, "sip:+16505552222@ss1.example.net");
    assert_eq!(m.to().param("user"), Some(Some("phone"))); // addr-spec: a header param
    assert_eq!(uri(m.request_uri().unwrap()).scheme, Scheme::Sip);
    assert!(matches!(ServerKey::of(&m), Some(ServerKey::Rfc2543 { .. })));
}

/// Every file in the folder is covered by a test above (or listed as valid/invalid
/// here), so a new file without expectations fails.
#[test]
fn every_file_has_an_expectation() {
    const VALID: &[&str] = &[
        "wsinv",
        "intmeth-printable",
        "intmeth",
        "esc01",
        "escnull",
        "esc02",
        "lwsdisp",
        "longreq",
        "dblreq",
        "semiuri",
        "transports",
        "mpart01",
        "unreason",
        "noreason",
        "escruri",
        "baddate",
        "regbadct",
        "badaspec",
        "baddn",
        "badbranch",
        "unkscm",
        "novelsc",
        "unksm2",
        "bext01",
        "invut",
        "regaut01",
        "bcast",
        "zeromf",
        "cparam01",
        "cparam02",
        "regescrt",
        "sdp01",
        "inv2543",
    ];
    const INVALID: &[&str] = &[
        "badinv01",
        "clerr",
        "ncl",
        "scalar02",
        "scalarlg",
        "quotbal",
        "ltgtruri",
        "lwsruri",
        "lwsstart",
        "trws",
        "badvers",
        "mismatch01",
        "mismatch02",
        "bigcode",
        "insuf",
        "multi01",
        "mcl01",
    ];
    for (name, bytes) in common::corpus("rfc4475") {
        let r = parse(&bytes);
        if VALID.contains(&name.as_str()) {
            assert!(r.is_ok(), "{name}: {:?}", r.err());
        } else if INVALID.contains(&name.as_str()) {
            assert!(r.is_err(), "{name} parsed");
        } else {
            panic!("{name}.sip has no expectation");
        }
        // Whatever the outcome, parsing it through the stream framer agrees.
        let mut f = confab_sip::Framer::new(65_535);
        f.push(&bytes);
        if let Ok(Some(confab_sip::Frame::Message(b))) = f.next_frame()
            && r.is_ok()
            && name != "dblreq"
        {
            assert_eq!(b, bytes, "{name}: framer cut");
        }
    }
    let _ = Bytes::new();
}
