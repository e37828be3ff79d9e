//! Issue 15 (hardening), as clients and attackers see it: no relaying for
//! strangers, no user enumeration, honest digest, bounded UDP answers, parsing
//! edges, and calls that ring.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use confab_frontend::{Dest, Transport};
use confab_sip::HeaderName;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
/// Where an attacker wants the server to send traffic.
const TRAP: &str = "198.51.100.99:5060";

fn trap() -> std::net::SocketAddr {
    TRAP.parse().unwrap()
}

fn nothing_to_trap(out: &[Sent]) {
    assert!(
        out.iter().all(|s| s.dest.addr != trap()),
        "something was sent to the trap:\n{}",
        out.dump()
    );
}

/// A request with a To tag, as in a dialog, built by hand.
fn in_dialog(ua: &mut Ua, method: &str, target: &str, from: &str, route: Option<&str>) -> Req {
    let via = ua.via();
    let call_id = ua.new_call_id();
    let mut r = Req {
        method: method.into(),
        ruri: target.into(),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", via)
    .header("Max-Forwards", "70")
    .header("From", from.to_owned())
    .header("To", format!("<{target}>;tag=victim-tag"))
    .header("Call-ID", call_id)
    .header("CSeq", format!("1 {method}"));
    if let Some(rt) = route {
        r = r.header("Route", rt.to_owned());
    }
    r
}

// ------------------------------------------------------------------ item 1

#[test]
fn forged_in_dialog_requests_are_not_relayed() {
    let mut h = Harness::new();
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let mut mallory = Ua::new("mallory", "x", "203.0.113.66:5060");
    let target = format!("sip:victim@{TRAP}");
    let routes = [
        None,
        Some("<sip:192.0.2.1:5060;lr>"),
        Some("<sip:192.0.2.1:5060;lr;cfd=00112233445566778899aabb>"),
        Some("<sip:example.com;lr>"),
    ];
    for from in [
        "<sip:mallory@evil.example>;tag=m1",
        "<sip:alice@example.com>;tag=m2",
    ] {
        for route in routes {
            for method in ["BYE", "INVITE", "MESSAGE", "ACK"] {
                let mut req = in_dialog(&mut mallory, method, &target, from, route);
                if method == "INVITE" {
                    req = req.body("application/sdp", SDP);
                }
                let out = h.send(&mallory, &req);
                nothing_to_trap(&out);
                let out2 = h.secs(40);
                nothing_to_trap(&out2);
                if method == "ACK" {
                    assert!(out.is_empty(), "{}", out.dump());
                } else {
                    let r = out.one_to(&mallory);
                    assert_eq!(r.status(), Some(403), "{method} {route:?}: {}", out.dump());
                    assert_eq!(r.reason(), "Not a dialog of this server");
                }
            }
        }
    }
    // Over TCP too.
    let mut tcp = Ua::new("mallory", "x", "203.0.113.66:40000").tcp(77);
    let req = in_dialog(
        &mut tcp,
        "BYE",
        &format!("sip:victim@{TRAP};transport=tcp"),
        "<sip:mallory@evil.example>;tag=m3",
        Some("<sip:192.0.2.1:5060;lr>"),
    );
    let out = h.send(&tcp, &req);
    nothing_to_trap(&out);
    assert_eq!(out.one_to(&tcp).status(), Some(403));
}

#[test]
fn a_signed_route_is_only_good_for_its_own_dialog() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    let rr = fwd.headers(HeaderName::RecordRoute);
    assert_eq!(rr.len(), 1);
    assert!(rr[0].contains(";cfd="), "{rr:?}");
    // Replayed on another Call-ID (the attacker's own "dialog"): refused.
    let mut mallory = Ua::new("mallory", "x", "203.0.113.66:5060");
    let req = in_dialog(
        &mut mallory,
        "BYE",
        &format!("sip:victim@{TRAP}"),
        "<sip:mallory@evil.example>;tag=m1",
        Some(&rr[0]),
    );
    let out = h.send(&mallory, &req);
    nothing_to_trap(&out);
    assert_eq!(out.one_to(&mallory).status(), Some(403));
}

#[test]
fn authenticated_user_reaches_a_registered_flow_without_a_route() {
    // The other way the issue allows: an authenticated sender, a registered target.
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let req = in_dialog(
        &mut alice,
        "BYE",
        &bob.contact_uri(),
        "<sip:alice@example.com>;tag=a9",
        None,
    );
    let (_, out) = h.send_authed(&mut alice, req);
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("BYE"));
}

// ------------------------------------------------------------------ items 2 and 3

#[test]
fn strangers_do_not_reach_local_users() {
    let mut h = Harness::new();
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let mut mallory = Ua::new("mallory", "x", "203.0.113.66:5060");
    for method in ["MESSAGE", "INVITE", "SUBSCRIBE", "OPTIONS"] {
        let req = mallory
            .request(method, &bob.uri(), &bob.uri())
            .set("From", "<sip:mallory@evil.example>;tag=m")
            .body("text/plain", "buy now");
        let out = h.send(&mallory, &req);
        assert!(out.to_ua(&bob).is_empty(), "{}", out.dump());
        let r = out.one_to(&mallory);
        assert_eq!(r.status(), Some(403), "{method}");
        assert!(r.reason().contains("federation"), "{}", r.reason());
    }
}

#[test]
fn unauthenticated_callers_learn_nothing_about_which_users_exist() {
    let mut h = Harness::new();
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600); // carol exists but is offline; zed does not exist
    h.add_user("dave", "dave-pw", false);
    for from in [
        "<sip:mallory@evil.example>;tag=m",
        "<sip:alice@example.com>;tag=a",
    ] {
        let mut mallory = Ua::new("mallory", "x", "203.0.113.66:5060");
        let mut seen = Vec::new();
        for user in ["bob", "carol", "dave", "zed"] {
            for method in ["INVITE", "MESSAGE"] {
                let uri = format!("sip:{user}@{DOMAIN}");
                let req = mallory.request(method, &uri, &uri).set("From", from);
                let out = h.send(&mallory, &req);
                assert!(out.to_ua(&bob).is_empty());
                let r = out.one_to(&mallory);
                seen.push((method, r.status(), r.reason().to_owned()));
            }
        }
        let invites: Vec<_> = seen.iter().filter(|s| s.0 == "INVITE").collect();
        let messages: Vec<_> = seen.iter().filter(|s| s.0 == "MESSAGE").collect();
        assert!(invites.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        assert!(messages.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
        assert!(
            matches!(seen[0].1, Some(403 | 407)),
            "refused or challenged: {seen:?}"
        );
    }
}

#[test]
fn a_trusted_peer_may_send_from_other_domains_both_ways_in_a_dialog() {
    let peer_addr = "127.0.0.1:5070";
    let mut h = Harness::with(|c| c.trusted_peers = vec![peer_addr.parse().unwrap()]);
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let mut chat = Ua::new("chat", "x", peer_addr);
    // A MESSAGE from another domain, not challenged.
    let req = chat
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("From", "<sip:ocschat@chat.example>;tag=c1")
        .body("text/plain", "room news");
    let out = h.send(&chat, &req);
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.body(), "room news");
    // Another port of the same host is not trusted.
    let mut other = Ua::new("chat", "x", "127.0.0.1:5071");
    let req = other
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("From", "<sip:ocschat@chat.example>;tag=c2");
    let out = h.send(&other, &req);
    assert!(out.to_ua(&bob).is_empty());
    assert_eq!(out.one_to(&other).status(), Some(403));

    // An INVITE from the peer is record-routed (signed); bob's in-dialog request
    // goes back to the peer, and the peer's reaches bob.
    let invite = chat
        .request("INVITE", &bob.uri(), &bob.uri())
        .set("From", "<sip:ocschat@chat.example>;tag=c3")
        .set("Contact", format!("<sip:chat@{peer_addr}>"))
        .body("application/sdp", SDP);
    let out = h.send(&chat, &invite);
    let fwd = out.one_to(&bob);
    let rr = fwd.headers(HeaderName::RecordRoute);
    assert!(rr[0].contains(";cfd="), "{rr:?}");
    let out = h.answer(&bob, &fwd, 200);
    let ok = out.one_to(&chat);
    assert_eq!(ok.status(), Some(200));
    let call_id = invite.get("Call-ID").unwrap().to_owned();
    let bob_tag = ok.msg.to_tag().unwrap().to_owned();
    // bob -> peer, along the route set (from a different address than the peer).
    let mut bye = Req {
        method: "INFO".into(),
        ruri: format!("sip:chat@{peer_addr}"),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", bob.via())
    .header("Max-Forwards", "70")
    .header("From", format!("<{}>;tag={bob_tag}", bob.uri()))
    .header("To", "<sip:ocschat@chat.example>;tag=c3")
    .header("Call-ID", call_id.clone())
    .header("CSeq", "2 INFO");
    for r in &rr {
        bye = bye.header("Route", r.clone());
    }
    let out = h.send(&bob, &bye);
    let fwd = out.one_to(&chat);
    assert_eq!(fwd.method(), Some("INFO"));
    // peer -> bob, with the route set as the peer saw it.
    let info = Req {
        method: "INFO".into(),
        ruri: bob.contact_uri(),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", chat.via())
    .header("Max-Forwards", "70")
    .header("From", "<sip:ocschat@chat.example>;tag=c3")
    .header("To", format!("<{}>;tag={bob_tag}", bob.uri()))
    .header("Call-ID", call_id)
    .header("CSeq", "3 INFO")
    .header("Route", ok.headers(HeaderName::RecordRoute)[0].clone());
    let out = h.send(&chat, &info);
    assert_eq!(out.one_to(&bob).method(), Some("INFO"));
}

// ------------------------------------------------------------------ item 4

/// RFC 2069 credentials (no qop, no nonce count) answering `challenge`.
fn rfc2069(ua: &Ua, req: &Req, challenge: &Sent) -> String {
    let v = challenge.header("Proxy-Authenticate").unwrap().to_owned();
    let p = confab_auth::params::parse(&v).unwrap();
    let nonce = p.get("nonce").unwrap().to_owned();
    let opaque = p.get("opaque").unwrap_or_default().to_owned();
    let ha1 = confab_auth::credentials::ha1_md5(&ua.user, DOMAIN, &ua.password);
    let response = confab_auth::digest::compute_response(
        confab_auth::digest::Algorithm::Md5,
        &ha1,
        &nonce,
        None,
        None,
        None,
        &req.method,
        &req.ruri,
    );
    format!(
        "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{}\", response=\"{response}\", opaque=\"{opaque}\"",
        ua.user, req.ruri
    )
}

fn rfc2069_message_status(h: &mut Harness) -> Vec<Sent> {
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "hi");
    let out = h.send(&alice, &req);
    let ch = out.one_to(&alice);
    let next = alice.next(&req);
    let creds = rfc2069(&alice, &next, &ch);
    let next = next.header("Proxy-Authorization", creds);
    h.send(&alice, &next)
}

#[test]
fn rfc2069_digest_answers_are_refused_by_default() {
    let mut h = Harness::new();
    let out = rfc2069_message_status(&mut h);
    assert!(
        out.iter().all(|s| s.method() != Some("MESSAGE")),
        "relayed on an RFC 2069 answer:\n{}",
        out.dump()
    );
    assert_eq!(out.responses()[0].status(), Some(407));
    // The fallback, when configured, still works.
    let mut h = Harness::with(|c| c.digest_allow_rfc2069 = true);
    let out = rfc2069_message_status(&mut h);
    assert_eq!(out.requests("MESSAGE").len(), 1, "{}", out.dump());
}

// ------------------------------------------------------------------ item 5

#[test]
fn digest_uri_must_name_the_request_uri() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "hi");
    let out = h.send(&alice, &req);
    let ch = out.one_to(&alice);
    // Credentials computed for another URI (e.g. captured from another request).
    let next = alice.next(&req);
    let mut other = next.clone();
    other.ruri = "sip:carol@example.com".into();
    let (name, value) = alice.credentials(&other, &ch.msg);
    let sent = next.header(&name, value);
    let out = h.send(&alice, &sent);
    assert!(out.to_ua(&bob).is_empty(), "{}", out.dump());
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.reason(), "Digest uri does not match the Request-URI");
}

// ------------------------------------------------------------------ item 6

#[test]
fn wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere() {
    let mut h = Harness::new();
    let mut attacker = Ua::new("bob", "wrong", "203.0.113.66:5060");
    let mut last = None;
    for _ in 0..12 {
        let req = attacker.register(600);
        let out = h.send(&attacker, &req);
        let ch = out.one_to(&attacker);
        let req = attacker.authorize(&req, &ch.msg);
        last = h.send(&attacker, &req).one_to(&attacker).status();
    }
    // The attacker's address is blocked for bob...
    assert_eq!(last, Some(403));
    // ...but bob, from his own address, signs in.
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let r = h.register(&mut bob, 600);
    assert_eq!(r.status(), Some(200));
}

// ------------------------------------------------------------------ item 10

#[test]
fn spoofed_udp_invites_are_answered_once() {
    let mut h = Harness::new();
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    // The "sender" is a victim whose address was spoofed: it never ACKs.
    let mut victim = Ua::new("alice", "x", "203.0.113.66:5060");
    let mut received = 0usize;
    let mut sent = 0usize;
    for from in [
        "<sip:alice@example.com>;tag=v",    // challenged
        "<sip:mallory@evil.example>;tag=v", // refused
        "<sip:alice@example.com>;tag=v",    // unknown user: challenged too
    ] {
        let req = victim
            .request("INVITE", &bob.uri(), &bob.uri())
            .set("From", from);
        received += req.bytes().len();
        let out = h.send(&victim, &req);
        sent += out.iter().map(|s| s.msg.as_bytes().len()).sum::<usize>();
        let out = h.secs(64);
        sent += out
            .iter()
            .filter(|s| s.dest.addr == victim.addr)
            .map(|s| s.msg.as_bytes().len())
            .sum::<usize>();
    }
    assert!(
        sent <= 2 * received,
        "amplification: {sent} bytes sent for {received} received"
    );
    assert_eq!(h.metric(|m| &m.server_transactions), 0);
}

#[test]
fn authenticated_invite_failures_are_still_retransmitted_until_acked() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    let out = h.answer(&bob, &fwd, 486);
    assert_eq!(out.one_to(&alice).status(), Some(486));
    let re = h.secs(2);
    assert!(
        re.iter()
            .any(|s| s.dest == alice.dest() && s.status() == Some(486)),
        "{}",
        re.dump()
    );
}

// ------------------------------------------------------------------ item 11

#[test]
fn nul_and_invalid_utf8_in_headers_get_a_400_over_udp() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .header("Subject", "a\u{0}b");
    let out = h.send(&alice, &req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(400));
    assert!(
        r.reason().contains("Control character in Subject"),
        "{}",
        r.reason()
    );

    // An authenticated MESSAGE whose display name is not UTF-8.
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "hi");
    let ch = h.send(&alice, &req).one_to(&alice);
    let authed = alice.authorize(&req, &ch.msg);
    let text = String::from_utf8_lossy(&authed.bytes()).into_owned();
    let text = text.replace("From: <sip:alice", "From: \"AL\u{1}\" <sip:alice");
    let mut bytes = text.into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xff; // not UTF-8
    let out = h.receive(alice.dest(), Bytes::from(bytes));
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(400));
    assert!(r.reason().contains("UTF-8"), "{}", r.reason());
    // Valid UTF-8 in a quoted display name is fine.
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("From", format!("\"Älice 雪\" <{}>;tag=u8", alice.uri()))
        .body("text/plain", "hi");
    let (_, out) = h.send_authed(&mut alice, req);
    assert_eq!(out.one_to(&bob).method(), Some("MESSAGE"));
}

// ------------------------------------------------------------------ item 12

#[test]
fn unknown_methods_get_501_not_silence() {
    let mut h = Harness::new();
    let text = "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-.!%66*_+`'~\r\n\
To: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n\
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"живой параметр\";tag=_token~1'+`*%!-.\r\n\
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\r\n\
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n\
Max-Forwards: 255\r\n\
extensionHeader-!.%*+_`'~:\u{feff}大停電\r\n\
Content-Length: 0\r\n\r\n";
    let src = Dest {
        transport: Transport::Udp,
        addr: "192.0.2.10:5060".parse().unwrap(),
        conn: None,
    };
    let out = h.receive(src, Bytes::from(text));
    assert_eq!(out.len(), 1, "{}", out.dump());
    assert_eq!(out[0].status(), Some(501), "{}", out.dump());
    assert!(out[0].header("Allow").is_some());
    let tcp = Dest {
        transport: Transport::Tcp,
        conn: Some(confab_frontend::ConnId(5)),
        ..src
    };
    let out = h.receive(tcp, Bytes::from(text.replace("UDP", "TCP")));
    assert_eq!(out[0].status(), Some(501), "{}", out.dump());
}

// ------------------------------------------------------------------ item 13

#[test]
fn callee_sending_100_then_180_then_183_rings_and_plays_early_media() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    let out = h.answer(&bob, &fwd, 100);
    assert!(out.to_ua(&alice).is_empty(), "100 is not forwarded");
    let out = h.answer(&bob, &fwd, 180);
    assert_eq!(out.one_to(&alice).status(), Some(180), "{}", out.dump());
    let early = bob.response_with(&fwd.msg, 183, |b| b.body("application/sdp", SDP));
    let out = h.receive(bob.dest(), early);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(183));
    assert_eq!(r.body(), SDP);
    let out = h.answer(&bob, &fwd, 200);
    assert_eq!(out.one_to(&alice).status(), Some(200));
}

// ------------------------------------------------------------------ item 14

#[test]
fn invite_retransmitted_after_its_2xx_is_absorbed() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    let out = h.answer(&bob, &fwd, 200);
    assert_eq!(out.one_to(&alice).status(), Some(200));
    // alice's INVITE retransmission crossed the 200: not a new call, not a new
    // challenge, nothing to bob.
    h.advance(Duration::from_millis(500));
    let out = h.send(&alice, &invite);
    assert!(out.is_empty(), "{}", out.dump());
    // bob's 2xx retransmission still reaches alice.
    let out = h.answer(&bob, &fwd, 200);
    assert_eq!(out.one_to(&alice).status(), Some(200));
    h.secs(40);
    assert_eq!(h.metric(|m| &m.server_transactions), 0);
}
