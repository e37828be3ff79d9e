//! The park UA, deterministically: park, MESSAGE, retrieve and bridge, ring back
//! to the parker then the fallback, refusals that leave other calls alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::{HeaderName, Limits, Message, Method};
use confab_voice::{Homes, ParkOrbit, VoiceConfig, VoiceData};

use crate::ua::{LegId, Out, ParkConfig, ParkUa};

const FE: &str = "127.0.0.1:5060";

fn fe() -> SocketAddr {
    FE.parse().unwrap()
}

fn ua(fallback: Option<&str>) -> ParkUa {
    let data = VoiceData {
        park_orbits: vec![ParkOrbit {
            name: "main".into(),
            start: "7000".into(),
            end: "7001".into(),
            timeout_secs: 30,
            fallback: fallback.map(Into::into),
            music_file: None,
            music_tones: Some("700:1000".into()),
        }],
        ..VoiceData::default()
    };
    let voice = Arc::new(VoiceConfig::build(data, Homes::default()).unwrap());
    ParkUa::new(
        ParkConfig {
            sip: "127.0.0.1:7070".parse().unwrap(),
            domain: "example.com".into(),
            front_end: fe(),
            ring: Duration::from_secs(10),
        },
        voice,
        7,
    )
}

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
    m=audio 6676 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn invite(call_id: &str, ruri: &str, from: &str, sdp: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe{call_id}\r\n\
         Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
         From: <sip:{from}@example.com>;tag=t{call_id}\r\nTo: <{ruri}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from}@127.0.0.1:20000>\r\n\
         Max-Forwards: 69\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

fn ack(call_id: &str, to_tag: &str) -> Bytes {
    Bytes::from(format!(
        "ACK sip:park@127.0.0.1:7070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
         From: <sip:x@example.com>;tag=t{call_id}\r\nTo: <sip:7000@example.com>;tag={to_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// A response to a request we sent, from its headers.
fn respond(req: &Message, code: u16, to_tag: &str, body: &str) -> Bytes {
    let mut s = format!(
        "SIP/2.0 {code} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag={to_tag}\r\nCall-ID: {}\r\n\
         CSeq: {} {}\r\nContact: <sip:bob@127.0.0.1:30000>\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\n",
        req.header(HeaderName::Via).unwrap(),
        req.header(HeaderName::From).unwrap(),
        req.header(HeaderName::To).unwrap(),
        req.call_id(),
        req.cseq().0,
        req.cseq().1,
    );
    if body.is_empty() {
        s.push_str("Content-Length: 0\r\n\r\n");
    } else {
        s.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    Bytes::from(s)
}

fn sent(outs: &[Out]) -> Vec<Message> {
    outs.iter()
        .filter_map(|o| match o {
            Out::Send { data, .. } => Message::parse(data.clone(), &Limits::default()).ok(),
            _ => None,
        })
        .collect()
}

fn opened(outs: &[Out]) -> LegId {
    outs.iter()
        .find_map(|o| match o {
            Out::OpenMedia { leg } => Some(*leg),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no OpenMedia in {outs:?}"))
}

/// An INVITE answered: (leg, the 200).
fn answered(
    ua: &mut ParkUa,
    call_id: &str,
    ruri: &str,
    from: &str,
    now: Instant,
) -> (LegId, Message) {
    ua.on_datagram(invite(call_id, ruri, from, OFFER), fe(), now);
    let leg = opened(&ua.take_output());
    ua.media_ready(leg, "127.0.0.1:40000".parse().unwrap(), now);
    let ok = sent(&ua.take_output()).remove(0);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    (leg, ok)
}

/// A parks at 7000 (parker bob): the leg, and everything output after the ACK.
fn park(ua: &mut ParkUa, call_id: &str, now: Instant) -> (LegId, Vec<Out>) {
    let (leg, ok) = answered(ua, call_id, "sip:7000@example.com;parker=bob", "alice", now);
    ua.on_datagram(ack(call_id, ok.to_tag().unwrap()), fe(), now);
    let outs = ua.take_output();
    // The parker's phone takes the MESSAGE.
    for m in sent(&outs) {
        if m.method() == Some(&Method::Message) {
            ua.on_datagram(respond(&m, 200, "p1", ""), fe(), now);
        }
    }
    assert!(ua.take_output().is_empty());
    (leg, outs)
}

#[test]
fn parks_tells_the_parker_and_is_retrieved() {
    let t0 = Instant::now();
    let mut ua = ua(None);
    let (a, outs) = park(&mut ua, "a1", t0);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Out::Hold { leg, orbit } if *leg == a && orbit.name == "main"))
    );
    let msg = sent(&outs).remove(0);
    assert_eq!(msg.method(), Some(&Method::Message));
    assert_eq!(msg.request_uri(), Some("sip:bob@example.com"));
    let text = std::str::from_utf8(msg.body()).unwrap();
    assert!(text.contains("parked at orbit 7000"), "{text}");
    assert_eq!(ua.orbit_of("a1"), Some("7000"));
    // A second call parks at the next orbit; a third finds none free.
    park(&mut ua, "a2", t0);
    assert_eq!(ua.orbit_of("a2"), Some("7001"));
    ua.on_datagram(
        invite("a3", "sip:7000@example.com;parker=bob", "alice", OFFER),
        fe(),
        t0,
    );
    assert_eq!(sent(&ua.take_output())[0].status(), Some(486));

    // Carol dials 7000: answered, then bridged to A; the orbit is free again.
    let (c, ok) = answered(&mut ua, "c1", "sip:7000@example.com", "carol", t0);
    ua.on_datagram(ack("c1", ok.to_tag().unwrap()), fe(), t0);
    assert_eq!(ua.take_output(), vec![Out::Bridge { a, b: c }]);
    ua.on_datagram(
        invite("c2", "sip:7000@example.com", "carol", OFFER),
        fe(),
        t0,
    );
    assert_eq!(sent(&ua.take_output())[0].status(), Some(404));
    // Carol hangs up: A is hung up too.
    let bye = format!(
        "BYE sip:park@127.0.0.1:7070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\r\n\
         From: <sip:carol@example.com>;tag=tc1\r\nTo: <sip:7000@example.com>;tag={}\r\n\
         Call-ID: c1\r\nCSeq: 2 BYE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n",
        ok.to_tag().unwrap()
    );
    ua.on_datagram(Bytes::from(bye), fe(), t0);
    let outs = ua.take_output();
    assert!(outs.contains(&Out::Close { leg: c }));
    assert!(outs.contains(&Out::Close { leg: a }));
    let msgs = sent(&outs);
    assert_eq!(msgs[0].status(), Some(200));
    let bye_a = &msgs[1];
    assert_eq!(bye_a.method(), Some(&Method::Bye));
    assert_eq!(bye_a.call_id(), "a1");
    assert_eq!(bye_a.request_uri(), Some("sip:alice@127.0.0.1:20000"));
    assert_eq!(
        bye_a.header(HeaderName::Route),
        Some("<sip:127.0.0.1:5060;lr>")
    );
    assert_eq!(ua.parked(), 1);
}

#[test]
fn rings_the_parker_back_then_the_fallback() {
    let t0 = Instant::now();
    let mut ua = ua(Some("sip:operator@example.com"));
    let (a, _) = park(&mut ua, "a1", t0);
    assert_eq!(ua.next_timer(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    ua.on_timer(t1);
    let rb = opened(&ua.take_output());
    ua.media_ready(rb, "127.0.0.1:40002".parse().unwrap(), t1);
    let inv = sent(&ua.take_output()).remove(0);
    assert_eq!(inv.method(), Some(&Method::Invite));
    assert_eq!(inv.request_uri(), Some("sip:bob@example.com"));
    assert!(
        inv.header(HeaderName::From)
            .unwrap()
            .contains("sip:7000@example.com")
    );
    let offer = std::str::from_utf8(inv.body()).unwrap();
    assert!(offer.contains("m=audio 40002 RTP/AVP 0 101"), "{offer}");
    // Bob is busy: ACK, then the fallback is rung.
    ua.on_datagram(respond(&inv, 486, "b1", ""), fe(), t1);
    let outs = ua.take_output();
    assert_eq!(sent(&outs)[0].method(), Some(&Method::Ack));
    let fb = opened(&outs);
    ua.media_ready(fb, "127.0.0.1:40004".parse().unwrap(), t1);
    let inv2 = sent(&ua.take_output()).remove(0);
    assert_eq!(inv2.request_uri(), Some("sip:operator@example.com"));
    // It answers: ACK along its route, then the bridge.
    let answer = OFFER.replace("6676 RTP/AVP 0 8 101", "30002 RTP/AVP 0 101");
    ua.on_datagram(respond(&inv2, 200, "op1", &answer), fe(), t1);
    let outs = ua.take_output();
    let ack = sent(&outs).remove(0);
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri(), Some("sip:bob@127.0.0.1:30000"));
    assert_eq!(ack.to_tag(), Some("op1"));
    assert!(outs.contains(&Out::Bridge { a, b: fb }));
    assert!(outs.iter().any(|o| matches!(o, Out::Remote { leg, negotiated } if *leg == fb && negotiated.remote.port() == 30002)));
}

#[test]
fn unanswered_ring_back_without_fallback_hangs_up() {
    let t0 = Instant::now();
    let mut ua = ua(None);
    let (a, _) = park(&mut ua, "a1", t0);
    let t1 = t0 + Duration::from_secs(30);
    ua.on_timer(t1);
    let rb = opened(&ua.take_output());
    ua.media_ready(rb, "127.0.0.1:40002".parse().unwrap(), t1);
    let inv = sent(&ua.take_output()).remove(0);
    ua.on_datagram(respond(&inv, 180, "b1", ""), fe(), t1);
    assert!(ua.take_output().is_empty());
    // Ten seconds of ringing: CANCEL, and the caller is hung up.
    let t2 = t1 + Duration::from_secs(10);
    ua.on_timer(t2);
    let outs = ua.take_output();
    let methods: Vec<_> = sent(&outs)
        .iter()
        .filter_map(|m| m.method().cloned())
        .collect();
    assert!(methods.contains(&Method::Cancel), "{methods:?}");
    assert!(methods.contains(&Method::Bye), "{methods:?}");
    assert!(outs.contains(&Out::Close { leg: a }));
    assert_eq!(ua.parked(), 0);
    assert_eq!(ua.orbit_of("a1"), None);
}

#[test]
fn refusals_leave_parked_calls_alone() {
    let t0 = Instant::now();
    let mut ua = ua(None);
    park(&mut ua, "a1", t0);
    let opus = OFFER
        .replace("RTP/AVP 0 8 101", "RTP/AVP 96")
        .replace("101 telephone-event", "96 opus");
    let pcma = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 8");
    for (id, ruri, sdp, code) in [
        ("b1", "sip:7000@example.com;parker=bob", "garbage", 488),
        ("b2", "sip:7000@example.com", opus.as_str(), 488),
        ("b3", "sip:7000@example.com", pcma.as_str(), 488),
        ("b4", "sip:7500@example.com", OFFER, 404),
        ("b5", "sip:7001@example.com", OFFER, 404),
        ("b6", "sip:7001@example.com;parker=b%3Cx", OFFER, 400),
    ] {
        ua.on_datagram(invite(id, ruri, "mallory", sdp), fe(), t0);
        let msgs = sent(&ua.take_output());
        assert_eq!(msgs.len(), 1, "{id}");
        assert_eq!(msgs[0].status(), Some(code), "{id}");
    }
    ua.on_datagram(Bytes::from_static(b"\x00junk"), fe(), t0);
    assert!(ua.take_output().is_empty());
    assert_eq!(ua.orbit_of("a1"), Some("7000"));
    assert_eq!(ua.parked(), 1);
}
