//! Robustness: whatever arrives, the core never panics, every message it emits
//! parses, and malformed requests are answered where they came from.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use confab_frontend::{ConnId, Dest, Output};
use confab_sip::{Limits, Message, ResponseBuilder};
use proptest::prelude::*;

fn raw_outputs(h: &mut Harness) -> Vec<(Dest, Bytes)> {
    h.core
        .take_output()
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { dest, data } => Some((dest, data)),
            Output::Close { .. } => None,
        })
        .collect()
}

fn parse_error_reply(h: &mut Harness, src: Dest, text: &str) -> Vec<(Dest, Bytes)> {
    let err = match Message::parse(Bytes::from(text.to_owned()), &Limits::default()) {
        Ok(m) => panic!("unexpectedly parsed: {m:?}"),
        Err(e) => e,
    };
    h.core.on_parse_error(&err, src);
    raw_outputs(h)
}

const VIA: &str = "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbroken1;rport";

fn broken(start: &str, headers: &[&str], body: &str) -> String {
    let mut s = format!("{start}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.push_str(body);
    s
}

#[test]
fn parse_errors_are_answered_to_the_source_with_the_problem_named() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let via = format!("Via: {VIA}");
    let cases: Vec<(String, u16, &str)> = vec![
        (
            broken(
                "MESSAGE sip:bob@example.com SIP/2.0",
                &[
                    &via,
                    "From: <sip:alice@example.com>;tag=1",
                    "To: <sip:bob@example.com>",
                    "CSeq: 1 MESSAGE",
                    "Content-Length: 0",
                ],
                "",
            ),
            400,
            "Missing Call-ID header",
        ),
        (
            broken(
                "MESSAGE sip:bob@example.com SIP/2.0",
                &[
                    &via,
                    "From: <sip:alice@example.com>;tag=1",
                    "To: <sip:bob@example.com>",
                    "Call-ID: c1",
                    "CSeq: 1 INVITE",
                ],
                "",
            ),
            400,
            "CSeq method does not match request method",
        ),
        (
            broken(
                "MESSAGE sip:bob@example.com SIP/2.0",
                &[
                    &via,
                    "From: <sip:alice@example.com>;tag=1",
                    "To: <sip:bob@example.com>",
                    "Call-ID: c1",
                    "CSeq: 1 MESSAGE",
                    "Max-Forwards: many",
                ],
                "",
            ),
            400,
            "Malformed Max-Forwards header",
        ),
        (
            broken(
                "MESSAGE sip:bob@example.com SIP/2.0",
                &[
                    &via,
                    "From: <sip:alice@example.com>;tag=1",
                    "To: <sip:bob@example.com>",
                    "Call-ID: c1",
                    "CSeq: 1 MESSAGE",
                    "Content-Length: 500",
                ],
                "short",
            ),
            400,
            "Content-Length larger than message body",
        ),
        (
            broken(
                "INVITE sip:bob@example.com SIP/3.0",
                &[
                    &via,
                    "From: <sip:alice@example.com>;tag=1",
                    "To: <sip:bob@example.com>",
                    "Call-ID: c1",
                    "CSeq: 1 INVITE",
                ],
                "",
            ),
            505,
            "Version Not Supported",
        ),
    ];
    for (i, (text, status, reason)) in cases.into_iter().enumerate() {
        let out = parse_error_reply(&mut h, alice.dest(), &text);
        assert_eq!(out.len(), 1, "case {i}: {text}");
        let (dest, data) = &out[0];
        assert_eq!(*dest, alice.dest(), "case {i}");
        let reply = String::from_utf8_lossy(data);
        assert!(
            reply.starts_with(&format!("SIP/2.0 {status} {reason}\r\n")),
            "case {i}: {reply}"
        );
        assert!(
            reply.contains(&format!("\r\nVia: {VIA}\r\n")),
            "case {i}: the Via is echoed: {reply}"
        );
        assert!(
            reply.contains("\r\nFrom: <sip:alice@example.com>;tag=1\r\n"),
            "case {i}: {reply}"
        );
        assert!(
            reply.contains("\r\nTo: <sip:bob@example.com>"),
            "case {i}: {reply}"
        );
        assert_eq!(h.metric(|m| &m.sip_parse_errors_total), i as u64 + 1);
    }
}

#[test]
fn parse_error_reply_goes_back_over_the_connection() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:40000").tcp(42);
    let text = broken(
        "OPTIONS sip:example.com SIP/2.0",
        &[
            "Via: SIP/2.0/TCP 192.0.2.10:40000;branch=z9hG4bKt1",
            "From: <sip:alice@example.com>;tag=1",
            "To: <sip:example.com>",
            "CSeq: 1 OPTIONS",
        ],
        "",
    );
    let out = parse_error_reply(&mut h, alice.dest(), &text);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.conn, Some(ConnId(42)));
    assert!(
        String::from_utf8_lossy(&out[0].1).starts_with("SIP/2.0 400 Missing Call-ID header\r\n")
    );
}

#[test]
fn unanswerable_garbage_is_dropped_silently() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    for text in [
        "".to_owned(),
        "hello world".to_owned(),
        "\r\n\r\n".to_owned(),
        // A response cannot be answered.
        broken(
            "SIP/2.0 200 OK",
            &[
                "From: <sip:a@example.com>;tag=1",
                "To: <sip:b@example.com>",
                "CSeq: 1 INVITE",
            ],
            "",
        ),
        // A request without Via cannot be addressed.
        broken(
            "MESSAGE sip:bob@example.com SIP/2.0",
            &[
                "From: <sip:alice@example.com>;tag=1",
                "To: <sip:bob@example.com>",
                "Call-ID: x",
                "CSeq: 1 MESSAGE",
            ],
            "",
        ),
        "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n".to_owned(),
    ] {
        let out = parse_error_reply(&mut h, alice.dest(), &text);
        assert!(out.is_empty(), "{text:?} -> {out:?}");
    }
}

#[test]
fn responses_nobody_asked_for_are_dropped() {
    let mut h = Harness::new();
    let bob = h.ua("bob", "192.0.2.20:5060");
    let text = broken(
        "SIP/2.0 200 OK",
        &[
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcfdeadbeef",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx",
            "From: <sip:alice@example.com>;tag=1",
            "To: <sip:bob@example.com>;tag=2",
            "Call-ID: stray",
            "CSeq: 1 INVITE",
            "Content-Length: 0",
        ],
        "",
    );
    let out = h.receive(bob.dest(), Bytes::from(text));
    assert!(out.is_empty(), "{}", out.dump());
    assert_eq!(h.metric(|m| &m.sip_responses_received_total), 1);
}

#[test]
fn unauthenticated_mode_answers_a_malformed_from() {
    let mut h = Harness::with(|c| c.allow_unauthenticated = true);
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob.register(600).set("From", "|sip:bob@example.com>;tag=1");
    let r = h.send(&bob, &req).one_to(&bob);
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.reason(), "Malformed From URI");
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn non_ascii_credentials_are_challenged_not_a_crash() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    // A multi-byte character straddling the end of "Digest ".
    for value in [
        "Digest\u{e9} username=\"alice\"",
        "\u{e9}\u{e9}\u{e9}\u{e9}",
        "Dig\u{20ac}st x",
    ] {
        let req = alice.register(600).header("Authorization", value);
        let r = h.send(&alice, &req).one_to(&alice);
        assert_eq!(r.status(), Some(401), "{value}");
        let req = alice
            .request("MESSAGE", "sip:bob@example.com", "sip:bob@example.com")
            .header("Proxy-Authorization", value);
        let r = h.send(&alice, &req).one_to(&alice);
        assert_eq!(r.status(), Some(407), "{value}");
    }
}

// ---------------------------------------------------------------------------
// Property tests.

/// Header lines worth splicing into messages.
const LINES: &[&str] = &[
    "Contact: *",
    "Expires: 0",
    "Expires: 4294967295",
    "Expires: -1",
    "Expires: 30",
    "Max-Forwards: 0",
    "Max-Forwards: 1",
    "Route: <sip:192.0.2.1:5060;lr>",
    "Route: <sip:example.com;lr>, <sip:192.0.2.20:5060;lr>",
    "Route: <sip:192.0.2.1:5060;lr>, <sip:192.0.2.1:5060;transport=tcp;lr>",
    "Route: garbage",
    "Record-Route: <sip:192.0.2.99;lr>",
    "To: <sip:alice@example.com>;tag=abc",
    "To: <sip:bob@example.com>",
    "To: <tel:+12345>",
    "To: sip:@",
    "From: <sip:alice@example.com>;tag=zz",
    "From: <sip:mallory@evil.example>;tag=1",
    "From: <sip:192.0.2.1>;tag=1",
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcf0011223344556677",
    "Via: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bKx",
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK",
    "Contact: <sip:bob@192.0.2.20:5060>;expires=0",
    "Contact: <sip:bob@192.0.2.21:5060>;expires=99999999999999999999",
    "Contact: <sips:bob@[2001:db8::2]>;+sip.instance=\"<urn:uuid:1>\";reg-id=1",
    "Contact: <sip:bob@host.invalid;transport=ws>",
    "Contact: <sip:bob@192.0.2.1:5060>",
    "Contact: \"Bob\" <sip:bob@192.0.2.20>, <sip:bob@192.0.2.22>",
    "Contact: <mailto:x@y>",
    "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"AAAA\", uri=\"sip:example.com\", response=\"00\"",
    "Authorization: Digest username=\"alice\", realm=\"other\", nonce=\"\", uri=\"\", response=\"\", qop=auth, nc=zz, cnonce=\"1\"",
    "Proxy-Authorization: Digest username=\"\"",
    "Proxy-Authorization: NTLM abc",
    "Event: presence",
    "Event: presence;id=1",
    "Event: dialog",
    "SIP-If-Match: x",
    "Content-Type: application/pidf+xml",
    "Content-Type: text/plain",
    "Subscription-State: active",
    "Require: 100rel",
    "Content-Length: 0",
    "Content-Length: 5",
    "Call-ID: fixed-call",
    "CSeq: 99 INVITE",
];

const CODES: &[u16] = &[
    100, 180, 183, 200, 202, 302, 401, 407, 408, 481, 486, 487, 500, 503, 603,
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    AddLine(usize, usize),
    ReplaceLine(usize, usize),
    DupLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, l)| Mutation::AddLine(i, l)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, l)| Mutation::ReplaceLine(i, l)),
        any::<usize>().prop_map(Mutation::DupLine),
    ]
}

fn apply(data: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v = data.to_vec();
    let n = v.len().max(1);
    // Header lines (between the start line and the blank line).
    let text = String::from_utf8_lossy(data).into_owned();
    let head_end = text.find("\r\n\r\n").unwrap_or(text.len());
    let (head, rest) = text.split_at(head_end);
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_owned).collect();
    let nl = lines.len().max(1);
    let join = |lines: Vec<String>| -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str(rest);
        s.into_bytes()
    };
    match m {
        Mutation::FlipByte(i, b) => {
            if !v.is_empty() {
                let i = i % n;
                v[i] ^= *b;
            }
            v
        }
        Mutation::Insert(i, b) => {
            let i = i % (v.len() + 1);
            v.splice(i..i, b.iter().copied());
            v
        }
        Mutation::Delete(i, k) => {
            if !v.is_empty() {
                let i = i % n;
                let end = (i + k).min(v.len());
                v.drain(i..end);
            }
            v
        }
        Mutation::Truncate(i) => {
            v.truncate(i % n);
            v
        }
        Mutation::AddLine(i, l) => {
            let at = 1 + i % nl;
            lines.insert(at.min(lines.len()), LINES[l % LINES.len()].to_owned());
            join(lines)
        }
        Mutation::ReplaceLine(i, l) => {
            let new = LINES[l % LINES.len()];
            let name = new.split(':').next().unwrap_or("");
            // Replace a line of the same header when there is one.
            let pos = lines
                .iter()
                .skip(1)
                .position(|x| {
                    x.split(':')
                        .next()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .map(|p| p + 1)
                .unwrap_or(1 + i % nl);
            if pos < lines.len() {
                lines[pos] = new.to_owned();
            } else {
                lines.push(new.to_owned());
            }
            join(lines)
        }
        Mutation::DupLine(i) => {
            let i = i % nl;
            if let Some(l) = lines.get(i).cloned() {
                lines.insert(i, l);
            }
            join(lines)
        }
    }
}

/// Requests the user agents of the fuzz world start from.
fn seeds(uas: &mut [Ua]) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@example.com\"><tuple id=\"a\"><status><basic>open</basic></status><note>n</note></tuple></presence>";
    let batch_sub = "<batchSub xmlns=\"http://schemas.microsoft.com/2006/01/sip/batch-subscribe\" uri=\"sip:alice@example.com\"><action name=\"subscribe\" id=\"1\"><adhocList><resource uri=\"sip:bob@example.com\"/><resource uri=\"sip:carol@example.com\"/></adhocList></action></batchSub>";
    let soap = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:m=\"http://schemas.microsoft.com/winrtc/2002/11/sip\"><s:Body><m:setContact><m:displayName></m:displayName><m:groups>1</m:groups><m:subscribed>true</m:subscribed><m:URI>sip:bob@example.com</m:URI><m:deltaNum>1</m:deltaNum></m:setContact></s:Body></s:Envelope>";
    let publish = "<publish xmlns=\"http://schemas.microsoft.com/2006/09/sip/rich-presence\"><publications uri=\"sip:alice@example.com\"><publication categoryName=\"state\" instance=\"1\" container=\"2\" version=\"0\" expireType=\"static\"><state xmlns=\"http://schemas.microsoft.com/2006/09/sip/state\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" manual=\"true\" xsi:type=\"userState\"><availability>15500</availability></state></publication><publication categoryName=\"note\" instance=\"0\" container=\"200\" version=\"0\" expireType=\"static\"><note xmlns=\"http://schemas.microsoft.com/2006/09/sip/note\"><body type=\"personal\">x</body></note></publication></publications></publish>";
    for (i, ua) in uas.iter_mut().enumerate() {
        let me = ua.uri();
        let bob = "sip:bob@example.com";
        let alice = "sip:alice@example.com";
        let reqs = vec![
            ua.register(600),
            ua.register(0).set("Contact", "*"),
            ua.request("MESSAGE", bob, bob).body("text/plain", "hi"),
            ua.request("INVITE", bob, bob)
                .body("application/sdp", "v=0\r\n"),
            ua.request("INVITE", alice, alice).set("Max-Forwards", "1"),
            ua.request("SUBSCRIBE", alice, alice)
                .header("Event", "presence")
                .header("Expires", "60"),
            ua.request("SUBSCRIBE", bob, bob)
                .header("Event", "presence")
                .header("Expires", "0"),
            ua.request("PUBLISH", &me, &me)
                .header("Event", "presence")
                .body("application/pidf+xml", pidf),
            ua.request("OPTIONS", "sip:example.com", "sip:example.com"),
            ua.request("OPTIONS", "sip:192.0.2.1:5060", "sip:192.0.2.1"),
            ua.request("BYE", "sip:bob@192.0.2.20:5060", bob)
                .set("To", "<sip:bob@example.com>;tag=t1")
                .header("Route", "<sip:192.0.2.1:5060;lr>"),
            ua.request("ACK", "sip:bob@192.0.2.20:5060", bob)
                .set("To", "<sip:bob@example.com>;tag=t1")
                .header("Route", "<sip:192.0.2.1:5060;lr>"),
            ua.request("CANCEL", bob, bob),
            ua.request("NOTIFY", "sip:192.0.2.1:5060", alice)
                .set("To", "<sip:alice@example.com>;tag=x")
                .header("Event", "presence"),
            ua.request("INFO", "sip:carol@example.com", "sip:carol@example.com"),
            ua.request("MESSAGE", "sip:x@other.example", "sip:x@other.example"),
            ua.request("MESSAGE", "sip:bob@192.0.2.20:5060", bob),
            ua.request("MESSAGE", "tel:+15551234", bob),
            // Lync requests to one's own address.
            ua.request("SUBSCRIBE", &me, &me)
                .header("Event", "vnd-microsoft-roaming-contacts"),
            ua.request("SUBSCRIBE", &me, &me)
                .header("Event", "vnd-microsoft-provisioning-v2")
                .header("Expires", "0"),
            ua.request("SUBSCRIBE", &me, &me)
                .header("Event", "presence")
                .header("Supported", "ms-benotify")
                .body("application/msrtc-adrl-categorylist+xml", batch_sub),
            ua.request("SERVICE", &me, &me)
                .body("application/SOAP+xml", soap),
            ua.request("SERVICE", &me, &me)
                .body("application/msrtc-category-publish+xml", publish),
            ua.request("INVITE", bob, bob)
                .header("ms-text-format", "text/plain; charset=UTF-8;ms-body=aGk=")
                .body("application/sdp", "v=0\r\nm=message 5060 sip null\r\n"),
        ];
        for r in reqs {
            out.push((i, r.bytes()));
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Action {
    /// A seed request (possibly mutated) from one of the user agents.
    Send {
        seed: usize,
        ua: usize,
        muts: Vec<Mutation>,
    },
    /// Feed an earlier input again (a retransmission).
    Repeat(usize),
    /// The receiver of a request the core sent answers it.
    Respond {
        pick: usize,
        code: usize,
        mutate: Option<Mutation>,
    },
    /// Time passes.
    Tick(u64),
    /// A TCP connection closes.
    Close(u64),
    /// Random bytes from a user agent.
    Garbage { ua: usize, data: Vec<u8> },
    /// A directory change: a user is disabled or enabled.
    Toggle { user: usize, enabled: bool },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>(), prop::collection::vec(mutation(), 0..3))
            .prop_map(|(seed, ua, muts)| Action::Send { seed, ua, muts }),
        1 => any::<usize>().prop_map(Action::Repeat),
        5 => (any::<usize>(), any::<usize>(), prop::option::weighted(0.2, mutation()))
            .prop_map(|(pick, code, mutate)| Action::Respond { pick, code, mutate }),
        2 => prop_oneof![0u64..1_000, 0u64..40_000, 0u64..4_000_000].prop_map(Action::Tick),
        1 => (1u64..4).prop_map(Action::Close),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(ua, data)| Action::Garbage { ua, data }),
        1 => (0usize..3, any::<bool>()).prop_map(|(user, enabled)| Action::Toggle { user, enabled }),
    ]
}

/// Runs a sequence of actions against a fresh core.
fn run(open: bool, actions: &[Action]) {
    let mut h = Harness::with(|c| {
        c.allow_unauthenticated = open;
        c.max_contacts_per_aor = 4;
    });
    let mut uas = vec![
        h.ua("alice", "192.0.2.10:5060"),
        h.ua("bob", "192.0.2.20:5060"),
        h.ua("bob", "192.0.2.21:40000").tcp(1),
        h.ua("carol", "192.0.2.30:40001").tcp(2),
        Ua::new("mallory", "x", "198.51.100.7:5060"),
        h.ua("alice", "192.0.2.11:40002").tcp(3),
    ];
    // Some state to start from: bob online on two devices, carol watching alice.
    for i in [1, 2] {
        let mut ua = uas[i].clone();
        h.register(&mut ua, 600);
        uas[i] = ua;
    }
    let mut carol = uas[3].clone();
    let req = carol
        .request(
            "SUBSCRIBE",
            "sip:alice@example.com",
            "sip:alice@example.com",
        )
        .header("Event", "presence")
        .header("Expires", "600");
    h.send_authed(&mut carol, req);
    uas[3] = carol;
    let seeds = seeds(&mut uas);

    let mut inputs: Vec<(Dest, Bytes)> = Vec::new();
    let mut emitted: Vec<Sent> = Vec::new();
    for a in actions {
        match a {
            Action::Send { seed, ua, muts } => {
                let (owner, bytes) = &seeds[seed % seeds.len()];
                // Usually the seed's own user agent, sometimes another address.
                let src = if ua % 4 == 0 {
                    uas[ua % uas.len()].dest()
                } else {
                    uas[*owner].dest()
                };
                let mut data = bytes.to_vec();
                for m in muts {
                    data = apply(&data, m);
                }
                let data = Bytes::from(data);
                inputs.push((src, data.clone()));
                feed(&mut h, src, data, &mut emitted);
            }
            Action::Repeat(i) => {
                if !inputs.is_empty() {
                    let (src, data) = inputs[i % inputs.len()].clone();
                    feed(&mut h, src, data, &mut emitted);
                }
            }
            Action::Respond { pick, code, mutate } => {
                let reqs: Vec<&Sent> = emitted.iter().filter(|s| s.msg.is_request()).collect();
                if reqs.is_empty() {
                    continue;
                }
                let req = reqs[pick % reqs.len()].clone();
                if req.method() == Some("ACK") {
                    continue;
                }
                let code = CODES[code % CODES.len()];
                let mut data = ResponseBuilder::new(&req.msg, code)
                    .to_tag(format!("r{pick}"))
                    .build()
                    .to_vec();
                if let Some(m) = mutate {
                    data = apply(&data, m);
                }
                feed(&mut h, req.dest, Bytes::from(data), &mut emitted);
            }
            Action::Tick(ms) => {
                let out = h.advance(Duration::from_millis(*ms));
                emitted.extend(out);
            }
            Action::Close(c) => {
                let now = h.now;
                h.core.on_connection_closed(ConnId(*c), now);
                emitted.extend(h.outputs());
            }
            Action::Garbage { ua, data } => {
                let src = uas[ua % uas.len()].dest();
                feed(&mut h, src, Bytes::from(data.clone()), &mut emitted);
            }
            Action::Toggle { user, enabled } => {
                let name = ["alice", "bob", "carol"][*user];
                h.add_user(name, &format!("{name}-pw"), *enabled);
                emitted.extend(h.outputs());
            }
        }
        // The store (a fake here) saves what the core hands it.
        let mut saves = Vec::new();
        h.core.drain_store_requests(&mut saves);
        for r in saves {
            let confab_frontend::StoreRequest::SaveContacts { op, .. } = r;
            h.core.on_contacts_saved(op, Ok(()));
            emitted.extend(h.outputs());
        }
        // Bookkeeping agrees with what is exported.
        assert_eq!(
            h.metric(|m| &m.registrations),
            h.core.registrations() as u64
        );
        if emitted.len() > 400 {
            emitted.drain(..200);
        }
    }
    // Everything winds down once time passes: no timer left behind that would spin.
    let out = h.advance(Duration::from_secs(8000));
    emitted.extend(out);
    if std::env::var("DUMP").is_ok() {
        eprintln!("{}", emitted.dump());
    }
    assert_eq!(h.core.registrations(), 0);
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
    assert_eq!(h.metric(|m| &m.client_transactions), 0);
    assert_eq!(
        h.metric(|m| &m.server_transactions),
        0,
        "server transactions leak"
    );
}

/// Feeds bytes; outputs of a parsed message must parse, a parse error yields at
/// most one reply, to the source.
fn feed(h: &mut Harness, src: Dest, data: Bytes, emitted: &mut Vec<Sent>) {
    let (now, wall) = (h.now, h.wall_ms());
    match Message::parse(data, &Limits::default()) {
        Ok(m) => {
            h.core.on_message(m, src, now, wall);
            emitted.extend(h.outputs());
        }
        Err(e) => {
            h.core.on_parse_error(&e, src);
            let out = raw_outputs(h);
            assert!(out.len() <= 1);
            for (dest, data) in out {
                assert_eq!(dest, src);
                assert!(data.starts_with(format!("SIP/2.0 {} ", e.status).as_bytes()));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..1500), tcp in any::<bool>()) {
        let mut h = Harness::new();
        let ua = if tcp { h.ua("alice", "192.0.2.10:40000").tcp(1) } else { h.ua("alice", "192.0.2.10:5060") };
        let mut emitted = Vec::new();
        feed(&mut h, ua.dest(), Bytes::from(data), &mut emitted);
    }

    #[test]
    fn mutated_messages_never_panic(
        open in any::<bool>(),
        actions in prop::collection::vec(action(), 1..40),
    ) {
        run(open, &actions);
    }
}
