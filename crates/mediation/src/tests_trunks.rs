//! The B2BUA with TCP and TLS trunks: Via and Contact name the transport, no
//! request is retransmitted over a connection, a connection that could not be
//! opened fails over like a `503`, and calls from a gateway over TCP/TLS are
//! accepted from its IP (any source port) only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, Method};
use confab_voice::{
    DialPlan, Homes, Route, Rule, Scope, Trunk, TrunkTransport, UserVoice, VoiceConfig, VoiceData,
    VoicePolicy,
};

use crate::b2bua::{Action, Config, Mediation, NoRelays};
use crate::streams::unreachable_answers;

const MED: &str = "127.0.0.1:5070";
const MED_TLS: &str = "127.0.0.1:5071";
const FE: &str = "127.0.0.1:5060";
/// gw1: TCP, gw2: TLS, gw3: UDP.
const GW1: &str = "127.0.0.2:5080";
const GW2: &str = "127.0.0.3:5061";
const GW3: &str = "127.0.0.4:5060";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn voice() -> Arc<VoiceConfig> {
    let trunk = |name: &str, gw: &str, transport| Trunk {
        from_topology: false,
        name: name.into(),
        gateway: addr(gw),
        transport,
        rules: vec![],
    };
    let data = VoiceData {
        dial_plans: vec![DialPlan {
            scope: Scope::Global,
            description: None,
            rules: vec![Rule {
                name: "local7".into(),
                pattern: r"(\d{7})".into(),
                translation: "+1425$1".into(),
            }],
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
            trunks: vec!["gw1".into(), "gw2".into(), "gw3".into()],
        }],
        trunks: vec![
            trunk("gw1", GW1, TrunkTransport::Tcp),
            trunk("gw2", GW2, TrunkTransport::Tls),
            trunk("gw3", GW3, TrunkTransport::Udp),
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

fn mediation() -> Mediation {
    let mut cfg = Config::new(addr(MED), "example.com", addr(FE));
    cfg.tls_local = Some(addr(MED_TLS));
    cfg.instance = "t".into();
    Mediation::new(cfg, voice())
}

fn msg(head: &str, body: &str) -> Bytes {
    let head = head.trim_end().replace('\n', "\r\n");
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    Bytes::from(format!(
        "{head}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn parse(data: Bytes) -> Message {
    Message::parse(data, &Limits::default()).unwrap()
}

fn to(actions: &[Action], dest: &str) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, data } if *to == addr(dest) => Some(parse(data.clone())),
            _ => None,
        })
        .collect()
}

fn pool_invite() -> Message {
    parse(msg(
        "INVITE sip:5550199@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe1
Record-Route: <sip:127.0.0.1:5060;lr>
Max-Forwards: 69
From: <sip:alice@example.com>;tag=a1
To: <sip:5550199@example.com;user=phone>
Call-ID: call-a
CSeq: 10 INVITE
Contact: <sip:alice@10.1.1.1:5062>
P-Asserted-Identity: <sip:+14255550100@example.com;user=phone>",
        SDP,
    ))
}

#[test]
fn tcp_and_tls_trunks_get_their_via_no_retransmission_and_fail_over_when_unreachable() {
    let mut m = mediation();
    let t0 = Instant::now();
    let out = m.on_message(&pool_invite(), addr(FE), t0, &mut NoRelays);
    let inv1 = to(&out, GW1).remove(0);
    assert!(
        inv1.top_via_str()
            .starts_with("SIP/2.0/TCP 127.0.0.1:5070;"),
        "{}",
        inv1.top_via_str()
    );
    assert_eq!(
        inv1.header(HeaderName::Contact),
        Some("<sip:mediation@127.0.0.1:5070;transport=tcp>")
    );
    // Over TCP the INVITE is not retransmitted (it would be after T1 over UDP).
    assert!(to(&m.poll(t0 + Duration::from_millis(600), &mut NoRelays), GW1).is_empty());
    // The connection was refused: a 503 for it, and the TLS trunk is tried.
    let data = inv1.as_bytes().clone();
    let answers = unreachable_answers(&[data], "connection failed: refused");
    let t1 = t0 + Duration::from_millis(700);
    let out = m.on_message_over(
        &answers[0],
        addr(GW1),
        TrunkTransport::Tcp,
        t1,
        &mut NoRelays,
    );
    assert!(to(&out, FE).is_empty(), "the caller sees no failure");
    let inv2 = to(&out, GW2).remove(0);
    assert!(
        inv2.top_via_str()
            .starts_with("SIP/2.0/TLS 127.0.0.1:5071;")
    );
    assert_eq!(
        inv2.header(HeaderName::Contact),
        Some("<sip:mediation@127.0.0.1:5071;transport=tls>")
    );
    // The TLS handshake fails too: the UDP trunk, retransmitted as usual.
    let data = inv2.as_bytes().clone();
    let answers = unreachable_answers(&[data], "TLS handshake failed");
    let out = m.on_message_over(
        &answers[0],
        addr(GW2),
        TrunkTransport::Tls,
        t1,
        &mut NoRelays,
    );
    let inv3 = to(&out, GW3).remove(0);
    assert!(
        inv3.top_via_str()
            .starts_with("SIP/2.0/UDP 127.0.0.1:5070;")
    );
    let again = to(&m.poll(t1 + Duration::from_millis(600), &mut NoRelays), GW3);
    assert_eq!(again[0].method(), Some(&Method::Invite), "retransmitted");
    // gw3 fails: the caller gets its answer and the record every attempt.
    let fail = msg(
        &format!(
            "SIP/2.0 486 Busy Here\nVia: {}\nFrom: {}\nTo: {};tag=g3\nCall-ID: {}\nCSeq: 1 INVITE",
            inv3.top_via_str(),
            inv3.header(HeaderName::From).unwrap(),
            inv3.header(HeaderName::To).unwrap(),
            inv3.call_id()
        ),
        "",
    );
    let out = m.on_message(&parse(fail), addr(GW3), t1, &mut NoRelays);
    assert_eq!(to(&out, FE)[0].status(), Some(486));
    let rec = out
        .iter()
        .find_map(|a| match a {
            Action::Record(r) => Some(r.clone()),
            Action::Send { .. } => None,
        })
        .unwrap();
    assert_eq!(
        rec.attempts,
        vec![
            ("gw1".into(), 503),
            ("gw2".into(), 503),
            ("gw3".into(), 486)
        ]
    );
}

#[test]
fn calls_over_tcp_are_accepted_from_a_tcp_trunks_ip_only() {
    let mut m = mediation();
    let t0 = Instant::now();
    let invite = |call: &str| {
        parse(msg(
            &format!(
                "INVITE sip:+14255550100@127.0.0.1:5070;user=phone SIP/2.0
Via: SIP/2.0/TCP 127.0.0.2:40001;branch=z9hG4bK{call}
From: <sip:12065550111@127.0.0.2>;tag=g1
To: <sip:+14255550100@127.0.0.1>
Call-ID: {call}
CSeq: 1 INVITE
Contact: <sip:gw@127.0.0.2:5080;transport=tcp>"
            ),
            SDP,
        ))
    };
    // gw1's IP, the connection's own port: accepted, sent to alice.
    let src = addr("127.0.0.2:40001");
    let out = m.on_message_over(&invite("c1"), src, TrunkTransport::Tcp, t0, &mut NoRelays);
    assert_eq!(to(&out, "127.0.0.2:40001")[0].status(), Some(100));
    let inv = to(&out, FE).remove(0);
    assert_eq!(inv.request_uri(), Some("sip:alice@example.com"));
    // The answers to the gateway name TCP in our Contact.
    let ringing = msg(
        &format!(
            "SIP/2.0 180 Ringing\nVia: {}\nFrom: {}\nTo: {};tag=fe\nCall-ID: {}\nCSeq: 1 INVITE",
            inv.top_via_str(),
            inv.header(HeaderName::From).unwrap(),
            inv.header(HeaderName::To).unwrap(),
            inv.call_id()
        ),
        "",
    );
    let out = m.on_message(&parse(ringing), addr(FE), t0, &mut NoRelays);
    let r = to(&out, "127.0.0.2:40001").remove(0);
    assert_eq!(r.status(), Some(180));
    assert_eq!(
        r.header(HeaderName::Contact),
        Some("<sip:mediation@127.0.0.1:5070;transport=tcp>")
    );
    // The same IP over TLS (gw1 is a TCP trunk), or another IP over TCP: refused.
    let out = m.on_message_over(&invite("c2"), src, TrunkTransport::Tls, t0, &mut NoRelays);
    assert_eq!(to(&out, "127.0.0.2:40001")[0].status(), Some(403));
    let stranger = addr("127.0.0.9:40001");
    let out = m.on_message_over(
        &invite("c3"),
        stranger,
        TrunkTransport::Tcp,
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, "127.0.0.9:40001")[0].status(), Some(403));
    // Nor does a TCP connection from the pool's IP count as the pool.
    let out = m.on_message_over(
        &pool_invite(),
        addr(FE),
        TrunkTransport::Tcp,
        t0,
        &mut NoRelays,
    );
    assert_eq!(to(&out, FE)[0].status(), Some(403));
}
