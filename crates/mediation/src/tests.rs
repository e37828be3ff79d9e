//! The B2BUA fed datagrams and a clock: what each side would see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, Method};
use confab_voice::{
    DialPlan, Homes, Route, Rule, Scope, Trunk, TrunkTransport, UserVoice, VoiceConfig, VoiceData,
    VoicePolicy,
};

use crate::b2bua::{Action, Config, Direction, Mediation, NoRelays, Relays, Side};

mod transfer;

const MED: &str = "127.0.0.1:5070";
const FE: &str = "127.0.0.1:5060";
const GW1: &str = "127.0.0.2:5080";
const GW2: &str = "127.0.0.3:5080";
const CLIENT_SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const GW_SDP: &str = "v=0\r\no=- 2 2 IN IP4 10.2.2.2\r\ns=-\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn rule(name: &str, pattern: &str, translation: &str) -> Rule {
    Rule {
        name: name.into(),
        pattern: pattern.into(),
        translation: translation.into(),
    }
}

fn voice() -> Arc<VoiceConfig> {
    let data = VoiceData {
        dial_plans: vec![DialPlan {
            scope: Scope::Global,
            description: None,
            rules: vec![rule("local7", r"(\d{7})", "+1425$1")],
        }],
        policies: vec![VoicePolicy {
            scope: Scope::Global,
            usages: vec!["local".into()],
        }],
        usages: vec!["local".into()],
        routes: vec![Route {
            name: "us".into(),
            pattern: r"\+1\d{10}".into(),
            usages: vec!["local".into()],
            trunks: vec!["gw1".into(), "gw2".into()],
        }],
        trunks: vec![
            Trunk {
                from_topology: false,
                name: "gw1".into(),
                gateway: addr(GW1),
                transport: TrunkTransport::Udp,
                rules: vec![rule("strip-plus", r"\+(\d+)", "$1")],
            },
            Trunk {
                from_topology: false,
                name: "gw2".into(),
                gateway: addr(GW2),
                transport: TrunkTransport::Udp,
                rules: vec![],
            },
        ],
        users: vec![UserVoice {
            address: "alice@example.com".into(),
            line_uri: Some("+14255550100".into()),
            dial_plan: None,
            voice_policy: None,
        }],
        ..VoiceData::default()
    };
    Arc::new(VoiceConfig::build(data, Homes::default()).unwrap())
}

fn mediation(relay: bool) -> Mediation {
    let mut cfg = Config::new(addr(MED), "example.com", addr(FE));
    cfg.instance = "t".into();
    if relay {
        cfg.relay_trunks = vec!["gw1".into()];
    }
    Mediation::new(cfg, voice())
}

fn parse(s: &str) -> Message {
    Message::parse(
        Bytes::from(s.replace('\n', "\r\n").replace("\r\r\n", "\r\n")),
        &Limits::default(),
    )
    .unwrap()
}

fn with_body(head: &str, body: &str) -> Bytes {
    let head = head.trim_end().replace('\n', "\r\n");
    Bytes::from(format!(
        "{head}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn no_body(head: &str) -> Bytes {
    let head = head.trim_end().replace('\n', "\r\n");
    Bytes::from(format!("{head}\r\nContent-Length: 0\r\n\r\n"))
}

/// The datagrams sent, parsed, with their destination.
fn sent(actions: &[Action]) -> Vec<(SocketAddr, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, data } => Some((
                *to,
                Message::parse(data.clone(), &Limits::default()).unwrap(),
            )),
            Action::Record(_) => None,
        })
        .collect()
}

fn to(actions: &[Action], dest: &str) -> Vec<Message> {
    sent(actions)
        .into_iter()
        .filter(|(t, _)| *t == addr(dest))
        .map(|(_, m)| m)
        .collect()
}

fn records(actions: &[Action]) -> Vec<crate::CallRecord> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record(r) => Some(r.clone()),
            Action::Send { .. } => None,
        })
        .collect()
}

fn pool_invite(dialed: &str) -> Bytes {
    with_body(
        &format!(
            "INVITE sip:{dialed}@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe1
Via: SIP/2.0/UDP 10.1.1.1:5062;branch=z9hG4bKc1
Record-Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 69
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:{dialed}@example.com;user=phone>
Call-ID: call-a
CSeq: 10 INVITE
Contact: <sip:alice@10.1.1.1:5062>
P-Asserted-Identity: <sip:+14255550100@example.com;user=phone>"
        ),
        CLIENT_SDP,
    )
}

/// A response from a gateway to `req` with `code`, To tag `gwtag`.
fn answer(req: &Message, code: u16, body: Option<&str>) -> Bytes {
    let to = req.header(HeaderName::To).unwrap();
    let to = if code > 100 && req.to_tag().is_none() {
        format!("{to};tag=gwtag")
    } else {
        to.to_owned()
    };
    let mut head = format!("SIP/2.0 {code} X\n");
    for v in req.headers_named(HeaderName::Via) {
        head.push_str(&format!("Via: {v}\n"));
    }
    head.push_str(&format!(
        "From: {}\nTo: {to}\nCall-ID: {}\nCSeq: {} {}\nContact: <sip:gw@127.0.0.2:5080>\n",
        req.header(HeaderName::From).unwrap(),
        req.call_id(),
        req.cseq().0,
        req.cseq().1
    ));
    match body {
        Some(b) => with_body(&head, b),
        None => no_body(&head),
    }
}

struct FakeRelays {
    announced: Vec<(u64, Side, SocketAddr)>,
    closed: Vec<u64>,
}

impl Relays for FakeRelays {
    fn announce(&mut self, call: u64, from: Side, media: SocketAddr) -> Option<SocketAddr> {
        self.announced.push((call, from, media));
        Some(match from {
            Side::Pool => addr("127.0.0.1:40002"),
            Side::Gateway => addr("127.0.0.1:40000"),
        })
    }
    fn close(&mut self, call: u64) -> u64 {
        self.closed.push(call);
        42
    }
}

#[test]
fn an_answer_the_caller_never_acknowledges_ends_the_call_on_both_legs() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut NoRelays);
    let inv = to(&out, GW1).remove(0);
    let out = m.on_datagram(
        answer(&inv, 200, Some(GW_SDP)),
        addr(GW1),
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, FE)[0].status(), Some(200));
    // No ACK from the caller: the 2xx is retransmitted, then given up after
    // 64*T1 and the call ended with a BYE each way (RFC 3261 13.3.1.4).
    let mut t = t0;
    let mut byes = Vec::new();
    let mut recs = Vec::new();
    while let Some(next) = m.next_deadline() {
        assert!(
            next <= t0 + Duration::from_secs(40),
            "no timer left after give-up"
        );
        t = next.max(t);
        let out = m.poll(t, &mut NoRelays);
        byes.extend(
            sent(&out)
                .into_iter()
                .filter(|(_, msg)| msg.method() == Some(&Method::Bye)),
        );
        recs.extend(records(&out));
    }
    assert!(t >= t0 + Duration::from_secs(32));
    let dests: Vec<SocketAddr> = byes.iter().map(|(a, _)| *a).collect();
    assert_eq!(dests, vec![addr(FE), addr(GW1)]);
    assert_eq!(byes[1].1.call_id(), inv.call_id());
    assert_eq!(byes[0].1.call_id(), "call-a");
    assert_eq!(recs.len(), 1);
    assert_eq!(m.call_count(), 0);
}

#[test]
fn outbound_call_is_a_new_dialog_towards_the_trunk_and_either_side_hangs_up() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut NoRelays);
    let fe = to(&out, FE);
    assert_eq!(fe[0].status(), Some(100));
    let gw = to(&out, GW1);
    assert_eq!(gw.len(), 1);
    let inv = &gw[0];
    // Normalized with the dial plan, translated for gw1.
    assert_eq!(
        inv.request_uri(),
        Some("sip:14255550199@127.0.0.2:5080;user=phone")
    );
    assert_ne!(inv.call_id(), "call-a");
    assert_ne!(inv.from_tag(), Some("a1"));
    assert!(
        inv.header(HeaderName::From)
            .unwrap()
            .contains("+14255550100")
    );
    assert_eq!(
        inv.body(),
        CLIENT_SDP.as_bytes(),
        "media bypass: SDP untouched"
    );
    assert_eq!(inv.header_values(HeaderName::Via).count(), 1);

    // Ringing and early media pass through.
    let out = m.on_datagram(answer(inv, 183, Some(GW_SDP)), addr(GW1), t0, &mut NoRelays);
    let fe = to(&out, FE);
    assert_eq!(fe[0].status(), Some(183));
    assert_eq!(fe[0].call_id(), "call-a");
    assert_eq!(fe[0].body(), GW_SDP.as_bytes());
    assert_eq!(fe[0].header_values(HeaderName::Via).count(), 2);
    assert!(fe[0].header(HeaderName::RecordRoute).is_some());

    let out = m.on_datagram(answer(inv, 200, Some(GW_SDP)), addr(GW1), t0, &mut NoRelays);
    let gwo = to(&out, GW1);
    assert_eq!(gwo[0].method(), Some(&Method::Ack));
    assert_eq!(gwo[0].request_uri(), Some("sip:gw@127.0.0.2:5080"));
    assert_eq!(gwo[0].to_tag(), Some("gwtag"));
    let ok = &to(&out, FE)[0];
    assert_eq!(ok.status(), Some(200));
    let pool_tag = ok.to_tag().unwrap().to_owned();

    // The 2xx is retransmitted until the caller's ACK.
    let out = m.poll(t0 + Duration::from_millis(600), &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(200));
    let ack = no_body(&format!(
        "ACK sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe2
From: <sip:alice@example.com>;tag=a1
To: <sip:5550199@example.com;user=phone>;tag={pool_tag}
Call-ID: call-a
CSeq: 10 ACK"
    ));
    assert!(m.on_datagram(ack, addr(FE), t0, &mut NoRelays).is_empty());
    assert!(to(&m.poll(t0 + Duration::from_secs(2), &mut NoRelays), FE).is_empty());

    // The gateway hangs up: 200 to it, BYE on the pool's dialog.
    let bye = no_body(&format!(
        "BYE sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKgb
From: <{}>;tag=gwtag
To: {}
Call-ID: {}
CSeq: 1 BYE",
        inv.request_uri().unwrap(),
        inv.header(HeaderName::From).unwrap(),
        inv.call_id()
    ));
    let out = m.on_datagram(bye, addr(GW1), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].status(), Some(200));
    let fe_bye = &to(&out, FE)[0];
    assert_eq!(fe_bye.method(), Some(&Method::Bye));
    assert_eq!(fe_bye.call_id(), "call-a");
    assert_eq!(fe_bye.request_uri(), Some("sip:alice@10.1.1.1:5062"));
    assert_eq!(
        fe_bye.header(HeaderName::Route),
        Some("<sip:127.0.0.1:5060;lr>")
    );
    assert_eq!(fe_bye.to_tag(), Some("a1"));
    assert_eq!(fe_bye.from_tag(), Some(pool_tag.as_str()));
    let out = m.on_datagram(answer(fe_bye, 200, None), addr(FE), t0, &mut NoRelays);
    let r = records(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].direction, Direction::Outbound);
    assert_eq!(r[0].caller, "alice@example.com");
    assert_eq!(r[0].callee, "+14255550199");
    assert_eq!(r[0].trunk.as_deref(), Some("gw1"));
    assert_eq!(r[0].code, 200);
    assert!(r[0].answered.is_some());
    assert_eq!(m.call_count(), 0);
}

#[test]
fn fails_over_to_the_next_trunk_on_503_and_on_silence() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut NoRelays);
    let inv1 = to(&out, GW1).remove(0);
    let out = m.on_datagram(answer(&inv1, 503, None), addr(GW1), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].method(), Some(&Method::Ack));
    let inv2 = to(&out, GW2).remove(0);
    assert_eq!(
        inv2.request_uri(),
        Some("sip:+14255550199@127.0.0.3:5080;user=phone")
    );
    assert!(to(&out, FE).is_empty(), "the caller sees no failure");
    // gw2 is silent too: after the failover timeout, nothing is left: 408.
    let out = m.poll(t0 + Duration::from_millis(500), &mut NoRelays);
    assert_eq!(
        to(&out, GW2)[0].method(),
        Some(&Method::Invite),
        "retransmitted"
    );
    let out = m.poll(t0 + Duration::from_secs(5), &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(408));
    let r = records(&out);
    assert_eq!(
        r[0].attempts,
        vec![("gw1".into(), 503), ("gw2".into(), 408)]
    );
    assert_eq!(r[0].code, 408);

    // Silence from the first trunk: the second one is tried.
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1).len(), 1);
    let out = m.poll(t0 + Duration::from_secs(5), &mut NoRelays);
    assert_eq!(to(&out, GW2).len(), 1);
    // A 404 from the gateway is no reason to fail over.
    let inv2 = to(&out, GW2).remove(0);
    let out = m.on_datagram(answer(&inv2, 404, None), addr(GW2), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(404));
}

#[test]
fn caller_cancels_while_it_rings() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut NoRelays);
    let inv = to(&out, GW1).remove(0);
    m.on_datagram(answer(&inv, 180, None), addr(GW1), t0, &mut NoRelays);
    let cancel = no_body(
        "CANCEL sip:5550199@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe1
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:5550199@example.com;user=phone>
Call-ID: call-a
CSeq: 10 CANCEL",
    );
    let out = m.on_datagram(cancel, addr(FE), t0, &mut NoRelays);
    let fe = to(&out, FE);
    assert_eq!(
        fe.iter().map(|m| m.status()).collect::<Vec<_>>(),
        vec![Some(200), Some(487)]
    );
    let gw_cancel = to(&out, GW1).remove(0);
    assert_eq!(gw_cancel.method(), Some(&Method::Cancel));
    assert_eq!(gw_cancel.call_id(), inv.call_id());
    assert_eq!(gw_cancel.top_via_str(), inv.top_via_str());
    let out = m.on_datagram(answer(&inv, 487, None), addr(GW1), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].method(), Some(&Method::Ack));
    assert_eq!(records(&out)[0].code, 487);
    assert_eq!(m.call_count(), 0);
}

#[test]
fn inbound_calls_only_from_trunks_to_numbers_someone_owns() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let invite = |number: &str| {
        with_body(
            &format!(
                "INVITE sip:{number}@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKg1
From: \"PSTN\" <sip:12065550111@127.0.0.2>;tag=g1
To: <sip:{number}@127.0.0.1>
Call-ID: gw-call-{number}
CSeq: 1 INVITE
Contact: <sip:gw@127.0.0.2:5080>"
            ),
            GW_SDP,
        )
    };
    // From an address that is no trunk: refused.
    let out = m.on_datagram(
        invite("+14255550100"),
        addr("127.0.0.9:5080"),
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, "127.0.0.9:5080")[0].status(), Some(403));
    // A number nobody owns: 404.
    let out = m.on_datagram(invite("+14255550999"), addr(GW1), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].status(), Some(404));
    // Alice's number, dialed as 7 digits: normalized, sent to alice through the front end.
    let out = m.on_datagram(invite("5550100"), addr(GW1), t0, &mut NoRelays);
    let inv = to(&out, FE).remove(0);
    assert_eq!(inv.request_uri(), Some("sip:alice@example.com"));
    assert!(
        inv.header(HeaderName::From)
            .unwrap()
            .contains("sip:12065550111@example.com")
    );
    assert_eq!(inv.body(), GW_SDP.as_bytes());
    let out = m.on_datagram(answer(&inv, 180, None), addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, GW1)[0].status(), Some(180));
    let out = m.on_datagram(
        answer(&inv, 200, Some(CLIENT_SDP)),
        addr(FE),
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, FE)[0].method(), Some(&Method::Ack));
    let ok = to(&out, GW1).remove(0);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.call_id(), "gw-call-5550100");
    assert_eq!(m.call_count(), 1);
}

#[test]
fn re_invite_for_hold_passes_through_and_the_relay_rewrites_sdp() {
    let mut m = mediation(true);
    let mut relays = FakeRelays {
        announced: Vec::new(),
        closed: Vec::new(),
    };
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut relays);
    let inv = to(&out, GW1).remove(0);
    let body = std::str::from_utf8(inv.body()).unwrap().to_owned();
    assert!(body.contains("c=IN IP4 127.0.0.1\r\n"), "{body}");
    assert!(body.contains("m=audio 40002 "), "{body}");
    let out = m.on_datagram(answer(&inv, 200, Some(GW_SDP)), addr(GW1), t0, &mut relays);
    let ok = to(&out, FE).remove(0);
    let body = std::str::from_utf8(ok.body()).unwrap().to_owned();
    assert!(body.contains("m=audio 40000 "), "{body}");
    assert_eq!(relays.announced[0].2, addr("10.1.1.1:4000"));
    assert_eq!(relays.announced[1].2, addr("10.2.2.2:6000"));

    // The gateway puts the call on hold: a re-INVITE on the pool's dialog.
    let hold = with_body(
        &format!(
            "INVITE sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKgh
From: <{}>;tag=gwtag
To: {}
Call-ID: {}
CSeq: 2 INVITE
Contact: <sip:gw@127.0.0.2:5080>",
            inv.request_uri().unwrap(),
            inv.header(HeaderName::From).unwrap(),
            inv.call_id()
        ),
        &GW_SDP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n"),
    );
    let out = m.on_datagram(hold.clone(), addr(GW1), t0, &mut relays);
    assert_eq!(to(&out, GW1)[0].status(), Some(100));
    let re = to(&out, FE).remove(0);
    assert_eq!(re.method(), Some(&Method::Invite));
    assert_eq!(re.call_id(), "call-a");
    assert!(
        std::str::from_utf8(re.body())
            .unwrap()
            .contains("a=sendonly")
    );
    // A retransmission is not passed on again.
    let out = m.on_datagram(hold, addr(GW1), t0, &mut relays);
    assert!(to(&out, FE).is_empty());
    let out = m.on_datagram(
        answer(&re, 200, Some(CLIENT_SDP)),
        addr(FE),
        t0,
        &mut relays,
    );
    let ok2 = to(&out, GW1).remove(0);
    assert_eq!(ok2.status(), Some(200));
    assert_eq!(ok2.cseq().0, 2);
    let ack = no_body(&format!(
        "ACK sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5080;branch=z9hG4bKga
From: <{}>;tag=gwtag
To: {}
Call-ID: {}
CSeq: 2 ACK",
        inv.request_uri().unwrap(),
        ok2.header(HeaderName::To).unwrap(),
        inv.call_id()
    ));
    let out = m.on_datagram(ack, addr(GW1), t0, &mut relays);
    let fe_ack = to(&out, FE).remove(0);
    assert_eq!(fe_ack.method(), Some(&Method::Ack));
    assert_eq!(fe_ack.cseq().0, re.cseq().0);
    // The caller hangs up: the relay is closed with the call.
    let bye = no_body(&format!(
        "BYE sip:mediation@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfb
From: <sip:alice@example.com>;tag=a1
To: <sip:5550199@example.com;user=phone>;tag={}
Call-ID: call-a
CSeq: 11 BYE",
        ok.to_tag().unwrap()
    ));
    let out = m.on_datagram(bye, addr(FE), t0, &mut relays);
    let gw_bye = to(&out, GW1).remove(0);
    assert_eq!(gw_bye.method(), Some(&Method::Bye));
    let out = m.on_datagram(answer(&gw_bye, 200, None), addr(GW1), t0, &mut relays);
    assert_eq!(records(&out)[0].relayed_packets, Some(42));
    assert_eq!(relays.closed.len(), 1);
}

#[test]
fn malformed_and_stray_messages_get_an_answer_not_a_panic() {
    let mut m = mediation(false);
    let t0 = Instant::now();
    let out = m.on_datagram(
        Bytes::from_static(b"INVITE nonsense\r\n\r\n"),
        addr(FE),
        t0,
        &mut NoRelays,
    );
    assert!(out.len() <= 1);
    let bye = parse(
        "BYE sip:x@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx
From: <sip:a@example.com>;tag=1
To: <sip:b@example.com>;tag=2
Call-ID: nothing
CSeq: 1 BYE
Content-Length: 0

",
    );
    let out = m.on_message(&bye, addr(FE), t0, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(481));
}

#[test]
fn relay_is_the_trunks_choice_per_attempt() {
    let mut cfg = Config::new(addr(MED), "example.com", addr(FE));
    cfg.relay_trunks = vec!["gw2".into()];
    let mut m = Mediation::new(cfg, voice());
    let mut relays = FakeRelays {
        announced: Vec::new(),
        closed: Vec::new(),
    };
    let t0 = Instant::now();
    let out = m.on_datagram(pool_invite("5550199"), addr(FE), t0, &mut relays);
    let inv1 = to(&out, GW1).remove(0);
    assert_eq!(inv1.body(), CLIENT_SDP.as_bytes(), "gw1: media bypass");
    let out = m.on_datagram(answer(&inv1, 503, None), addr(GW1), t0, &mut relays);
    let inv2 = to(&out, GW2).remove(0);
    assert!(
        std::str::from_utf8(inv2.body())
            .unwrap()
            .contains("m=audio 40002 ")
    );
    assert_eq!(relays.announced.len(), 1);
}
