//! Property tests for the parser, views, builders and framer.
//!
//! (a) arbitrary bytes never panic; (b) mutated valid messages never panic; (c)
//! generated valid messages parse to the generated values; (d) builder/rewriter
//! output parses again; (e) the framer gives the same messages however a stream is cut.

mod common;

use bytes::Bytes;
use common::msggen::{self, GenMsg};
use common::{harness, squash};
use confab_sip::{
    Frame, Framer, HeaderName, Limits, Message, Method, ResponseBuilder, Rewriter, Uri,
};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The valid corpus: RFC 4475 messages that parse, and the pidgin-sipe captures.
static SEEDS: std::sync::LazyLock<Vec<Bytes>> = std::sync::LazyLock::new(seeds);

fn seeds() -> Vec<Bytes> {
    let mut v: Vec<Bytes> = common::corpus("rfc4475")
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| common::parse(b).is_ok())
        .collect();
    v.extend(common::corpus("sipe").into_iter().map(|(_, b)| b));
    assert!(v.len() > 40);
    v
}

/// SIP-looking noise: a plausible start line followed by lines from a SIP alphabet.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        "(Via|v|From|f|To|t|Call-ID|i|CSeq|Content-Length|l|Max-Forwards|Contact|m|X-A) ?: ?[ -~]{0,40}",
        "[ \t][ -~]{0,20}",
        "[\\x00-\\xff]{0,8}".prop_map(|s| s.chars().map(|c| (c as u32 as u8) as char).collect()),
        "SIP/2.0/(UDP|TCP) [a-z0-9.:\\[\\]]{1,12}(;branch=z9hG4bK[a-z0-9]{0,6})?(;[a-z]{0,3}(=[a-z\"]{0,3})?)*",
        "<sip:[a-z@.:;=]{0,12}>(;tag=[a-z0-9]{0,4})?",
        "[0-9]{1,12} [A-Z]{1,8}",
    ];
    (
        prop_oneof![
            Just("INVITE sip:a@b SIP/2.0".to_owned()),
            Just("SIP/2.0 200 OK".to_owned()),
            "[A-Z]{1,8} [a-z:@.<>; ]{1,12} (SIP|sip)/[0-9.]{1,4}",
            "SIP/2.0 [0-9]{1,5}[ -~]{0,10}",
        ],
        prop::collection::vec(line, 0..12),
        prop::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(start, lines, body, blank)| {
            let mut s = start.into_bytes();
            s.extend_from_slice(b"\r\n");
            for l in lines {
                s.extend_from_slice(l.as_bytes());
                s.extend_from_slice(b"\r\n");
            }
            if blank {
                s.extend_from_slice(b"\r\n");
            }
            s.extend_from_slice(&body);
            s
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Duplicate(usize, usize),
    Insert(usize, &'static [u8]),
    Delete(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                &b"\r\n"[..],
                b"\0",
                b"\r\n ",
                b"\r\n\r\n",
                b",",
                b";",
                b"\"",
                b"<",
                b">",
                b":",
                b"%",
                b"\\",
                b"\xff",
                b"\xc3",
                b" ",
                b"\t",
                b"\n",
                b"\r",
            ]),
        )
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn mutate(mut v: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = v.len().max(1);
        match *m {
            Mutation::Flip(i, b) => {
                if !v.is_empty() {
                    v[i % len] ^= b | 1;
                }
            }
            Mutation::Truncate(i) => v.truncate(i % len),
            Mutation::Duplicate(i, n) => {
                let s = (i % len).min(v.len());
                let e = (s + n).min(v.len());
                let dup = v[s..e].to_vec();
                v.splice(e..e, dup);
            }
            Mutation::Insert(i, s) => {
                let at = (i % len).min(v.len());
                v.splice(at..at, s.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let s = (i % len).min(v.len());
                let e = (s + n).min(v.len());
                v.drain(s..e);
            }
        }
    }
    v
}

fn parse_gen(g: &GenMsg) -> Message {
    let bytes = g.to_bytes();
    match Message::parse(Bytes::from(bytes.clone()), &Limits::default()) {
        Ok(m) => m,
        Err(e) => panic!(
            "generated message rejected: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}

/// Checks a parsed message against what was generated.
fn check_gen(g: &GenMsg, m: &Message) {
    match (&g.request, &g.response) {
        (Some((method, uri)), _) => {
            assert_eq!(m.method().map(Method::as_str), Some(method.as_str()));
            assert_eq!(m.request_uri(), Some(uri.as_str()));
            let u = Uri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert!(!u.host.is_empty());
        }
        (None, Some((code, reason))) => {
            assert_eq!(m.status(), Some(*code));
            assert_eq!(m.reason(), Some(reason.as_str()));
        }
        (None, None) => unreachable!(),
    }
    assert_eq!(m.call_id(), g.call_id);
    assert_eq!(m.cseq().0, g.cseq);
    assert_eq!(m.cseq().1.as_str(), g.method());
    assert_eq!(m.max_forwards(), g.max_forwards);

    let vias: Vec<String> = m.header_values(HeaderName::Via).map(squash).collect();
    assert_eq!(vias, g.via_texts(), "Via list");
    let top = m.top_via();
    assert_eq!(top.transport, g.vias[0].transport);
    assert_eq!(top.host, g.vias[0].host);
    assert_eq!(top.port, g.vias[0].port);
    assert_eq!(top.branch(), g.vias[0].branch.as_deref());
    assert_eq!(top.rport(), g.vias[0].rport.then_some(None));

    for (want, got) in [(&g.from, m.from()), (&g.to, m.to())] {
        assert_eq!(got.uri, want.uri);
        assert_eq!(got.tag(), want.tag.as_deref());
        assert_eq!(got.display, want.display_view());
    }
    assert_eq!(m.from_tag(), g.from.tag.as_deref());
    if let Some(c) = &g.contact {
        let got: Vec<_> = m.header_values(HeaderName::Contact).collect();
        assert_eq!(got.len(), 1);
        let n = confab_sip::NameAddr::parse(got[0]).unwrap_or_else(|e| panic!("{}: {e}", got[0]));
        assert_eq!(n.uri, c.uri);
        assert_eq!(n.display, c.display_view());
    }
    for (name, value) in &g.extra {
        assert_eq!(m.header_str(name).map(squash), Some(squash(value)));
    }
    assert_eq!(m.content_type(), g.content_type.as_deref());
    assert_eq!(m.body(), &g.body[..]);
}

proptest! {
    #![proptest_config(config(2000))]

    // (a) arbitrary bytes
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1024)) {
        harness::exercise_message(&data);
        harness::exercise_framer(&data);
        harness::exercise_uri(&data);
    }

    #[test]
    fn sip_like_noise_never_panics(data in sipish()) {
        harness::exercise_message(&data);
        harness::exercise_framer(&data);
    }

    #[test]
    fn arbitrary_text_views_never_panic(s in "[ -~\t\u{e9}\u{4e2d}]{0,80}") {
        harness::exercise_uri(s.as_bytes());
        let _ = confab_sip::header::params(&s).count();
        let _ = confab_sip::header::param(&s, "tag");
    }
}

proptest! {
    #![proptest_config(config(3000))]

    // (b) mutated valid messages
    #[test]
    fn mutated_corpus_never_panics(
        pick in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..6),
    ) {
        let seed = pick.get(&SEEDS);
        let data = mutate(seed.to_vec(), &muts);
        harness::exercise_message(&data);
        harness::exercise_framer(&data);
    }

    #[test]
    fn mutated_generated_never_panics(g in msggen::message(false), muts in prop::collection::vec(mutation(), 1..4)) {
        let data = mutate(g.to_bytes(), &muts);
        harness::exercise_message(&data);
        harness::exercise_framer(&data);
    }
}

proptest! {
    #![proptest_config(config(1500))]

    // (c) generated valid messages parse to what was generated
    #[test]
    fn generated_messages_parse(g in msggen::message(false)) {
        let m = parse_gen(&g);
        check_gen(&g, &m);
        // and survive every accessor and the builder round trips
        harness::exercise_parsed(&m);
    }

    // (d) builder and rewriter output parses again
    #[test]
    fn response_builder_output_parses(g in msggen::request(false), code in 100u16..700, tag in msggen::token(),
                                      body in prop::collection::vec(any::<u8>(), 0..40)) {
        let req = parse_gen(&g);
        let out = ResponseBuilder::new(&req, code)
            .to_tag(tag.clone())
            .header("Allow", "INVITE, ACK, BYE")
            .body("application/octet-stream", Bytes::from(body.clone()))
            .build();
        let r = Message::parse(out, &Limits::default()).unwrap();
        prop_assert_eq!(r.status(), Some(code));
        prop_assert_eq!(r.call_id(), req.call_id());
        prop_assert_eq!(r.cseq(), req.cseq());
        prop_assert_eq!(r.from_tag(), req.from_tag());
        prop_assert_eq!(r.from().uri, req.from().uri);
        prop_assert_eq!(r.to().uri, req.to().uri);
        let want_tag = if code > 100 { Some(tag.as_str()) } else { None };
        prop_assert_eq!(r.to_tag(), want_tag);
        let vias: Vec<String> = r.header_values(HeaderName::Via).map(squash).collect();
        prop_assert_eq!(vias, g.via_texts());
        prop_assert_eq!(r.body(), &body[..]);
        prop_assert_eq!(r.header_values(HeaderName::Allow).count(), 3);
    }

    #[test]
    fn rewriter_output_parses(g in msggen::message(false), mf in 0u32..70, drop_contact in any::<bool>()) {
        let m = parse_gen(&g);
        let mut rw = Rewriter::new(&m)
            .prepend("Via", "SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bKp1")
            .prepend("Record-Route", "<sip:proxy.example.com;lr>")
            .max_forwards(mf)
            .append("X-Trace", "proxy");
        if m.is_request() {
            rw = rw.request_uri("sip:next@192.0.2.77;transport=tls");
        }
        if drop_contact {
            rw = rw.remove(HeaderName::Contact);
        }
        let f = Message::parse(rw.build(), &Limits::default()).unwrap();
        prop_assert_eq!(f.top_via().branch(), Some("z9hG4bKp1"));
        let mut want = vec!["SIP/2.0/TLS proxy.example.com:5061;branch=z9hG4bKp1".to_owned()];
        want.extend(g.via_texts());
        let vias: Vec<String> = f.header_values(HeaderName::Via).map(squash).collect();
        prop_assert_eq!(vias, want);
        prop_assert_eq!(f.max_forwards(), Some(mf));
        prop_assert_eq!(f.call_id(), m.call_id());
        prop_assert_eq!(f.cseq(), m.cseq());
        prop_assert_eq!(f.body(), m.body());
        prop_assert_eq!(f.header_str("x-trace"), Some("proxy"));
        if drop_contact {
            prop_assert_eq!(f.header(HeaderName::Contact), None);
        }
        if m.is_request() {
            prop_assert_eq!(f.request_uri(), Some("sip:next@192.0.2.77;transport=tls"));
        } else {
            // A response going upstream: pop the top Via value (ours, then theirs).
            let up = Message::parse(Rewriter::new(&f).pop_first_value(HeaderName::Via).build(), &Limits::default()).unwrap();
            let vias: Vec<String> = up.header_values(HeaderName::Via).map(squash).collect();
            prop_assert_eq!(vias, g.via_texts());
        }
    }
}

#[derive(Clone, Debug)]
enum Piece {
    Msg(Box<GenMsg>),
    Ping,
    Pong,
}

fn stream() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            6 => msggen::message(true).prop_map(|g| Piece::Msg(Box::new(g))),
            1 => Just(Piece::Ping),
            1 => Just(Piece::Pong),
        ],
        1..6,
    )
}

proptest! {
    #![proptest_config(config(1000))]

    // (e) the framer is independent of how the stream is cut
    #[test]
    fn framer_any_split(pieces in stream(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        // Expected frames; a pong (lone CRLF) is only sent before a message.
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for (i, p) in pieces.iter().enumerate() {
            match p {
                Piece::Msg(g) => {
                    let b = g.to_bytes();
                    want.push(Frame::Message(Bytes::from(b.clone())));
                    bytes.extend_from_slice(&b);
                }
                Piece::Ping => {
                    want.push(Frame::Ping);
                    bytes.extend_from_slice(b"\r\n\r\n");
                }
                Piece::Pong => {
                    if matches!(pieces.get(i + 1), Some(Piece::Msg(_))) {
                        bytes.extend_from_slice(b"\r\n");
                    }
                }
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        points.dedup();
        let mut framer = Framer::new(65_535);
        let mut got = Vec::new();
        for w in points.windows(2) {
            framer.push(&bytes[w[0]..w[1]]);
            while let Some(f) = framer.next_frame().unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(framer.pending(), 0);
        prop_assert_eq!(&got, &want);
        for (f, p) in got.iter().zip(pieces.iter().filter(|p| !matches!(p, Piece::Pong))) {
            if let (Frame::Message(b), Piece::Msg(g)) = (f, p) {
                let m = Message::parse(b.clone(), &Limits::default()).unwrap();
                check_gen(g, &m);
            }
        }
    }
}
