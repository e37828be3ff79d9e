//! Stateful proxy and instant messaging (RFC 3261 §16), as the clients see it.

mod common;

use common::*;
use confab_sip::HeaderName;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const OUR_VIA_PREFIX: &str = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcf";
const OUR_RR: &str = "<sip:192.0.2.1:5060;lr>";

/// Record-Route values without their dialog token (`;cfd=...`, see the
/// front end's relaying policy), which every entry must carry.
fn rr_untokened(s: &Sent) -> Vec<String> {
    s.headers(HeaderName::RecordRoute)
        .into_iter()
        .map(|v| {
            let at = v
                .find(";cfd=")
                .unwrap_or_else(|| panic!("Record-Route without a token: {v}"));
            let end = v[at + 1..].find([';', '>']).map_or(v.len(), |e| at + 1 + e);
            format!("{}{}", &v[..at], &v[end..])
        })
        .collect()
}

fn vias(s: &Sent) -> Vec<String> {
    s.headers(HeaderName::Via)
}

/// A request inside a dialog.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    ua: &mut Ua,
    method: &str,
    target: &str,
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    route: &[String],
) -> Req {
    let via = ua.via();
    let mut r = Req {
        method: method.into(),
        ruri: target.into(),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", via)
    .header("Max-Forwards", "70")
    .header("From", from)
    .header("To", to)
    .header("Call-ID", call_id)
    .header("CSeq", format!("{cseq} {method}"));
    for rt in route {
        r = r.header("Route", rt.clone());
    }
    r
}

struct World {
    h: Harness,
    alice: Ua,
    bob: Ua,
}

fn world() -> World {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    World { h, alice, bob }
}

#[test]
fn message_is_challenged_then_relayed_and_answered() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .without("Contact")
        .body("text/plain", "hello bob");
    let out = h.send(&alice, &req);
    let ch = out.one_to(&alice);
    assert_eq!(out.len(), 1, "{}", out.dump());
    assert_eq!(ch.status(), Some(407));
    assert_eq!(ch.reason(), "Proxy Authentication Required");
    let pa = ch
        .header("Proxy-Authenticate")
        .unwrap_or_default()
        .to_owned();
    assert!(
        pa.contains("realm=\"example.com\"") && pa.contains("algorithm=MD5"),
        "{pa}"
    );
    assert!(ch.header("WWW-Authenticate").is_none());

    let req = alice.authorize(&req, &ch.msg);
    let out = h.send(&alice, &req);
    assert!(
        out.to_ua(&alice).is_empty(),
        "no answer before bob's: {}",
        out.dump()
    );
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("MESSAGE"));
    assert_eq!(fwd.dest, bob.dest());
    // Request-URI rewritten to the registered contact.
    assert_eq!(fwd.msg.request_uri(), Some(bob.contact_uri().as_str()));
    let v = vias(&fwd);
    assert_eq!(v.len(), 2, "{}", fwd.text());
    assert!(v[0].starts_with(OUR_VIA_PREFIX), "{}", v[0]);
    assert_eq!(v[1], req.get("Via").unwrap_or_default());
    assert_eq!(fwd.msg.max_forwards(), Some(69));
    assert_eq!(fwd.body(), "hello bob");
    assert_eq!(fwd.msg.content_type(), Some("text/plain"));
    assert_eq!(fwd.header("From"), req.get("From"));
    assert_eq!(fwd.header("To"), req.get("To"));
    assert_eq!(fwd.msg.call_id(), req.get("Call-ID").unwrap_or_default());
    assert!(
        fwd.header("Record-Route").is_none(),
        "MESSAGE is not record-routed"
    );
    // Alice's credentials for our realm are consumed here, not handed to bob.
    assert!(
        fwd.header("Proxy-Authorization").is_none(),
        "{}",
        fwd.text()
    );
    assert_eq!(h.metric(|m| &m.messages_relayed_total), 1);

    let out = h.answer(&bob, &fwd, 200);
    let resp = out.one_to(&alice);
    assert_eq!(out.len(), 1);
    assert_eq!(resp.status(), Some(200));
    assert_eq!(
        vias(&resp),
        vec![req.get("Via").unwrap_or_default().to_owned()]
    );
    assert_eq!(resp.msg.call_id(), req.get("Call-ID").unwrap_or_default());
    assert!(resp.msg.to_tag().is_some_and(|t| t.starts_with("bob-tag")));

    // A retransmission of bob's 200 is absorbed by the client transaction.
    let out = h.answer(&bob, &fwd, 200);
    assert!(out.is_empty(), "{}", out.dump());
    // Alice retransmitting her request gets the 200 again, bob is not bothered.
    let out = h.send(&alice, &req);
    assert_eq!(out.one_to(&alice).status(), Some(200));
    assert!(out.to_ua(&bob).is_empty());
}

#[test]
fn credentials_for_other_realms_are_passed_on() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let foreign = "Digest username=\"alice\", realm=\"upstream.example\", nonce=\"n\", uri=\"sip:bob@example.com\", response=\"0123\"";
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "hi");
    let ch = h.send(&alice, &req).one_to(&alice);
    let authed = alice.authorize(&req, &ch.msg);
    let ours = authed
        .get("Proxy-Authorization")
        .unwrap_or_default()
        .to_owned();
    // The other realm's credentials come first: ours must still be found.
    let req = authed
        .without("Proxy-Authorization")
        .header("Proxy-Authorization", foreign)
        .header("Proxy-Authorization", ours);
    let out = h.send(&alice, &req);
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("MESSAGE"), "{}", out.dump());
    let creds: Vec<&str> = fwd
        .msg
        .headers_named(HeaderName::ProxyAuthorization)
        .collect();
    assert_eq!(creds, vec![foreign]);
    assert_eq!(h.metric(|m| &m.auth_failures_total), 0);
}

#[test]
fn message_to_unknown_user_is_404() {
    let World {
        mut h, mut alice, ..
    } = world();
    let req = alice
        .request(
            "MESSAGE",
            "sip:nobody@example.com",
            "sip:nobody@example.com",
        )
        .body("text/plain", "?");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(404));
    assert_eq!(r.reason(), "User not found");
}

#[test]
fn message_to_offline_user_is_480() {
    let World {
        mut h, mut alice, ..
    } = world();
    let req = alice
        .request("MESSAGE", "sip:carol@example.com", "sip:carol@example.com")
        .body("text/plain", "?");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(480));
    assert_eq!(r.reason(), "User is offline");
}

#[test]
fn message_to_disabled_user_is_404() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    h.add_user("bob", "bob-pw", false);
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "?");
    let (_, out) = h.send_authed(&mut alice, req);
    assert_eq!(out.one_to(&alice).status(), Some(404));
}

#[test]
fn spoofed_from_is_refused() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    // Alice authenticates as herself but claims to be carol.
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("From", "<sip:carol@example.com>;tag=x")
        .body("text/plain", "it's carol");
    let out = h.send(&alice, &req);
    let ch = out.one_to(&alice);
    let req = alice.authorize(&req, &ch.msg);
    let out = h.send(&alice, &req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "From does not match the authenticated user");
    assert!(out.to_ua(&bob).is_empty());
}

#[test]
fn max_forwards_zero_is_483() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("Max-Forwards", "0");
    let out = h.send(&alice, &req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(483));
    assert_eq!(r.reason(), "Too Many Hops");
    assert!(out.to_ua(&bob).is_empty());
}

#[test]
fn max_forwards_one_is_forwarded_with_zero() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .set("Max-Forwards", "1");
    let (_, out) = h.send_authed(&mut alice, req);
    assert_eq!(out.one_to(&bob).msg.max_forwards(), Some(0));
}

#[test]
fn relaying_for_foreign_users_is_denied() {
    let World { mut h, .. } = world();
    let mut mallory = Ua::new("mallory", "x", "198.51.100.7:5060");
    let req = mallory
        .request(
            "MESSAGE",
            "sip:victim@other.example",
            "sip:victim@other.example",
        )
        .set("From", "<sip:mallory@evil.example>;tag=m");
    let out = h.send(&mallory, &req);
    let r = out.one_to(&mallory);
    assert_eq!(out.len(), 1);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Relaying denied");
    // Also towards IP literals.
    let req = mallory
        .request("INVITE", "sip:victim@203.0.113.5", "sip:victim@203.0.113.5")
        .set("From", "<sip:mallory@evil.example>;tag=m");
    let out = h.send(&mallory, &req);
    assert_eq!(out.len(), 1, "{}", out.dump());
    assert_eq!(out.one_to(&mallory).status(), Some(403));
}

#[test]
fn local_user_to_foreign_domain_is_404_without_federation() {
    let World {
        mut h, mut alice, ..
    } = world();
    let req = alice
        .request("MESSAGE", "sip:x@other.example", "sip:x@other.example")
        .body("text/plain", "?");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(404));
    assert_eq!(
        r.reason(),
        "Domain not served here (federation is not enabled)"
    );
}

#[test]
fn options_to_the_server_is_answered() {
    let World {
        mut h, mut alice, ..
    } = world();
    let req = alice.request("OPTIONS", "sip:example.com", "sip:example.com");
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert!(
        r.header("Allow")
            .is_some_and(|a| a.contains("INVITE") && a.contains("SUBSCRIBE"))
    );
}

#[test]
fn unsupported_uri_scheme_is_416() {
    let World {
        mut h, mut alice, ..
    } = world();
    let req = alice.request("MESSAGE", "mailto:bob@example.com", "sip:bob@example.com");
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(416));
}

/// What a caller keeps of an established call.
struct Call {
    invite: Req,
    ok: Sent,
}

/// Alice calls bob (one contact) and bob answers.
fn establish(h: &mut Harness, alice: &mut Ua, bob: &Ua) -> (Call, Sent) {
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(alice, invite);
    let fwd = out.one_to(bob);
    let out = h.answer(bob, &fwd, 200);
    let ok = out.one_to(alice);
    assert_eq!(ok.status(), Some(200));
    (Call { invite, ok }, fwd)
}

#[test]
fn invite_gets_trying_and_is_record_routed() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let out = h.send(&alice, &invite);
    let ch = out.one_to(&alice);
    assert_eq!(ch.status(), Some(407));
    // The 407 goes to a source nobody verified yet: sent once, not
    // retransmitted (no UDP amplification, issue 15).
    let re = h.secs(1);
    assert!(re.is_empty(), "{}", re.dump());
    let (invite, out) = h.send_authed(&mut alice, invite);
    let trying = out.to_ua(&alice);
    assert_eq!(trying.len(), 1, "{}", out.dump());
    assert_eq!(trying[0].status(), Some(100));
    assert_eq!(trying[0].reason(), "Trying");
    assert!(
        trying[0].msg.to_tag().is_none(),
        "100 Trying carries no To tag"
    );
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("INVITE"));
    assert_eq!(fwd.msg.request_uri(), Some(bob.contact_uri().as_str()));
    assert_eq!(rr_untokened(&fwd), vec![OUR_RR.to_owned()]);
    assert!(vias(&fwd)[0].starts_with(OUR_VIA_PREFIX));
    assert_eq!(fwd.msg.max_forwards(), Some(69));
    assert_eq!(fwd.body(), SDP);
    assert_eq!(h.metric(|m| &m.calls_forwarded_total), 1);

    // bob rings, then answers; both are relayed with our Via removed.
    let out = h.answer(&bob, &fwd, 180);
    let ring = out.one_to(&alice);
    assert_eq!(ring.status(), Some(180));
    assert_eq!(
        vias(&ring),
        vec![invite.get("Via").unwrap_or_default().to_owned()]
    );
    let out = h.answer(&bob, &fwd, 200);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(rr_untokened(&ok), vec![OUR_RR.to_owned()]);
    assert_eq!(
        ok.header("Contact"),
        Some(format!("<{}>", bob.contact_uri()).as_str())
    );
    // A retransmitted 2xx (bob did not see the ACK yet) is relayed too.
    let out = h.answer(&bob, &fwd, 200);
    assert_eq!(out.one_to(&alice).status(), Some(200));
}

#[test]
fn ack_and_bye_follow_the_route_set() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let (call, _) = establish(&mut h, &mut alice, &bob);
    let route: Vec<String> = call.ok.headers(HeaderName::RecordRoute); // reversed: a single entry
    let from = call.invite.get("From").unwrap_or_default().to_owned();
    let to = call.ok.header("To").unwrap_or_default().to_owned();
    let call_id = call.invite.get("Call-ID").unwrap_or_default().to_owned();
    let target = uri_of(call.ok.header("Contact").unwrap_or_default()).to_owned();
    let n = call.invite.cseq();

    // ACK for the 2xx: a new transaction, forwarded statelessly. It carries the
    // INVITE's credentials (§13.2.2.4), which are not handed to bob.
    let ack = in_dialog(&mut alice, "ACK", &target, &from, &to, &call_id, n, &route).header(
        "Proxy-Authorization",
        call.invite
            .get("Proxy-Authorization")
            .unwrap_or_default()
            .to_owned(),
    );
    let out = h.send(&alice, &ack);
    let fwd = out.one_to(&bob);
    assert_eq!(out.len(), 1, "{}", out.dump());
    assert_eq!(fwd.method(), Some("ACK"));
    assert_eq!(fwd.msg.request_uri(), Some(target.as_str()));
    assert!(
        fwd.header("Route").is_none(),
        "our Route entry is consumed: {}",
        fwd.text()
    );
    assert!(
        fwd.header("Proxy-Authorization").is_none(),
        "{}",
        fwd.text()
    );
    assert!(vias(&fwd)[0].starts_with(OUR_VIA_PREFIX));
    assert_eq!(vias(&fwd).len(), 2);
    assert_eq!(fwd.msg.max_forwards(), Some(69));

    // BYE from the caller: no challenge inside the dialog.
    let bye = in_dialog(
        &mut alice,
        "BYE",
        &target,
        &from,
        &to,
        &call_id,
        n + 1,
        &route,
    );
    let out = h.send(&alice, &bye);
    assert!(out.to_ua(&alice).is_empty(), "{}", out.dump());
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("BYE"));
    assert_eq!(fwd.msg.request_uri(), Some(target.as_str()));
    assert!(fwd.header("Route").is_none());
    assert!(vias(&fwd)[0].starts_with(OUR_VIA_PREFIX));
    let out = h.answer(&bob, &fwd, 200);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.msg.cseq().1.as_str(), "BYE");
    assert_eq!(vias(&r).len(), 1);
}

#[test]
fn callee_bye_reaches_the_caller() {
    let World {
        mut h,
        mut alice,
        mut bob,
    } = world();
    let (call, fwd_invite) = establish(&mut h, &mut alice, &bob);
    // bob's view of the dialog: route set = Record-Route as received.
    let route = fwd_invite.headers(HeaderName::RecordRoute);
    let from = call.ok.header("To").unwrap_or_default().to_owned();
    let to = call.invite.get("From").unwrap_or_default().to_owned();
    let call_id = call.invite.get("Call-ID").unwrap_or_default().to_owned();
    let target = uri_of(call.invite.get("Contact").unwrap_or_default()).to_owned();
    let bye = in_dialog(&mut bob, "BYE", &target, &from, &to, &call_id, 1, &route);
    let out = h.send(&bob, &bye);
    let fwd = out.one_to(&alice);
    assert_eq!(fwd.method(), Some("BYE"));
    assert_eq!(fwd.dest, alice.dest());
    let out = h.answer(&alice, &fwd, 200);
    assert_eq!(out.one_to(&bob).status(), Some(200));
}

#[test]
fn forking_first_2xx_wins_and_the_other_branch_is_cancelled() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut desk = h.ua("bob", "192.0.2.20:5060");
    let mut mobile = h.ua("bob", "192.0.2.21:5060");
    h.register(&mut desk, 600);
    h.register(&mut mobile, 600);

    let invite = alice
        .request("INVITE", &desk.uri(), &desk.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(&mut alice, invite);
    assert_eq!(out.one_to(&alice).status(), Some(100));
    let f_desk = out.one_to(&desk);
    let f_mobile = out.one_to(&mobile);
    assert_eq!(f_desk.msg.request_uri(), Some(desk.contact_uri().as_str()));
    assert_eq!(
        f_mobile.msg.request_uri(),
        Some(mobile.contact_uri().as_str())
    );
    assert_ne!(
        f_desk.msg.top_via().branch(),
        f_mobile.msg.top_via().branch()
    );
    for f in [&f_desk, &f_mobile] {
        assert_eq!(rr_untokened(f), vec![OUR_RR.to_owned()]);
    }

    // The mobile rings.
    let out = h.answer(&mobile, &f_mobile, 180);
    assert_eq!(out.one_to(&alice).status(), Some(180));
    // The desk phone answers: the 200 goes upstream, the mobile is cancelled.
    let out = h.answer(&desk, &f_desk, 200);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        vias(&ok),
        vec![invite.get("Via").unwrap_or_default().to_owned()]
    );
    let cancel = out.one_to(&mobile);
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.msg.request_uri(), f_mobile.msg.request_uri());
    assert_eq!(
        cancel.msg.top_via().branch(),
        f_mobile.msg.top_via().branch()
    );
    assert_eq!(
        vias(&cancel).len(),
        1,
        "CANCEL carries only our Via: {}",
        cancel.text()
    );
    assert_eq!(cancel.msg.cseq().0, f_mobile.msg.cseq().0);
    assert_eq!(cancel.msg.cseq().1.as_str(), "CANCEL");
    assert_eq!(cancel.msg.call_id(), f_mobile.msg.call_id());
    assert_eq!(cancel.header("From"), f_mobile.header("From"));
    assert!(cancel.msg.to_tag().is_none());

    // The mobile confirms; its 487 is acknowledged hop by hop and not relayed.
    let out = h.answer(&mobile, &cancel, 200);
    assert!(out.is_empty(), "{}", out.dump());
    let out = h.answer(&mobile, &f_mobile, 487);
    let ack = out.one_to(&mobile);
    assert_eq!(out.len(), 1, "{}", out.dump());
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(ack.msg.top_via().branch(), f_mobile.msg.top_via().branch());
    assert!(ack.msg.to_tag().is_some());

    // Nothing else happens later (no retransmissions to the finished branches).
    let later = h.secs(64);
    assert!(
        later.iter().all(|s| s.dest != alice.dest()),
        "{}",
        later.dump()
    );
    assert!(later.to_ua(&mobile).is_empty(), "{}", later.dump());
    assert!(later.to_ua(&desk).is_empty(), "{}", later.dump());
}

#[test]
fn forking_late_provisional_is_cancelled_when_it_arrives() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut desk = h.ua("bob", "192.0.2.20:5060");
    let mut mobile = h.ua("bob", "192.0.2.21:5060");
    h.register(&mut desk, 600);
    h.register(&mut mobile, 600);
    let invite = alice
        .request("INVITE", &desk.uri(), &desk.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let f_desk = out.one_to(&desk);
    let f_mobile = out.one_to(&mobile);
    let out = h.answer(&desk, &f_desk, 200);
    assert_eq!(out.one_to(&alice).status(), Some(200));
    // No CANCEL yet: the mobile has sent nothing (RFC 3261 §9.1).
    assert!(out.to_ua(&mobile).is_empty(), "{}", out.dump());
    let out = h.answer(&mobile, &f_mobile, 180);
    assert!(
        out.to_ua(&alice).is_empty(),
        "a cancelled branch's 180 is not relayed: {}",
        out.dump()
    );
    let cancel = out.one_to(&mobile);
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(
        cancel.msg.top_via().branch(),
        f_mobile.msg.top_via().branch()
    );
}

#[test]
fn forking_every_2xx_goes_upstream() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut desk = h.ua("bob", "192.0.2.20:5060");
    let mut mobile = h.ua("bob", "192.0.2.21:5060");
    h.register(&mut desk, 600);
    h.register(&mut mobile, 600);
    let invite = alice
        .request("INVITE", &desk.uri(), &desk.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let f_desk = out.one_to(&desk);
    let f_mobile = out.one_to(&mobile);
    let first = h.answer(&desk, &f_desk, 200).one_to(&alice);
    assert_eq!(first.status(), Some(200));
    // Both answered at the same time: the second 2xx is relayed as well (§16.7).
    let out = h.answer(&mobile, &f_mobile, 200);
    let second = out.one_to(&alice);
    assert_eq!(second.status(), Some(200));
    assert_ne!(second.msg.to_tag(), first.msg.to_tag());
}

#[test]
fn forking_best_failure_is_relayed() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut desk = h.ua("bob", "192.0.2.20:5060");
    let mut mobile = h.ua("bob", "192.0.2.21:5060");
    h.register(&mut desk, 600);
    h.register(&mut mobile, 600);
    let invite = alice
        .request("INVITE", &desk.uri(), &desk.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let f_desk = out.one_to(&desk);
    let f_mobile = out.one_to(&mobile);
    let out = h.answer(&desk, &f_desk, 480);
    assert!(
        out.to_ua(&alice).is_empty(),
        "wait for every branch: {}",
        out.dump()
    );
    assert_eq!(out.one_to(&desk).method(), Some("ACK"));
    let out = h.answer(&mobile, &f_mobile, 486);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(486), "486 beats 480");
    assert_eq!(r.reason(), "Busy Here");
}

#[test]
fn cancel_from_the_caller() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    assert_eq!(h.answer(&bob, &fwd, 180).one_to(&alice).status(), Some(180));

    let mut cancel = Req {
        method: "CANCEL".into(),
        ruri: invite.ruri.clone(),
        headers: Vec::new(),
        body: None,
    };
    for name in ["Via", "Max-Forwards", "From", "To", "Call-ID"] {
        cancel = cancel.header(name, invite.get(name).unwrap_or_default().to_owned());
    }
    cancel = cancel.header("CSeq", format!("{} CANCEL", invite.cseq()));
    let out = h.send(&alice, &cancel);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.msg.cseq().1.as_str(), "CANCEL");
    let c = out.one_to(&bob);
    assert_eq!(c.method(), Some("CANCEL"));
    assert_eq!(c.msg.top_via().branch(), fwd.msg.top_via().branch());

    assert!(h.answer(&bob, &c, 200).is_empty());
    let out = h.answer(&bob, &fwd, 487);
    assert_eq!(out.one_to(&bob).method(), Some("ACK"));
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(487));
    assert_eq!(r.reason(), "Request Terminated");
    assert_eq!(r.msg.cseq().1.as_str(), "INVITE");
    assert_eq!(
        vias(&r),
        vec![invite.get("Via").unwrap_or_default().to_owned()]
    );

    // Alice's ACK for the 487 is absorbed; the 487 is then no longer retransmitted.
    let ack = ack_for_non2xx(&invite, &r.msg);
    assert!(h.send(&alice, &ack).is_empty());
    let later = h.secs(40);
    assert!(later.to_ua(&alice).is_empty(), "{}", later.dump());
}

#[test]
fn cancel_for_unknown_transaction_is_481() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let cancel = alice
        .request("CANCEL", &bob.uri(), &bob.uri())
        .without("Contact");
    let r = h.send(&alice, &cancel).one_to(&alice);
    assert_eq!(r.status(), Some(481));
}

#[test]
fn unanswered_message_times_out_with_408() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "anyone?");
    let (_, out) = h.send_authed(&mut alice, req);
    let fwd = out.one_to(&bob);
    // Timer E retransmissions over UDP, and nothing to alice yet.
    let out = h.secs(31);
    assert!(out.len() >= 8, "{}", out.dump());
    for s in &out {
        assert_eq!(s.dest, bob.dest());
        assert_eq!(s.msg.as_bytes(), fwd.msg.as_bytes());
    }
    // Timer F (64*T1 = 32 s): 408 upstream (after a last retransmission to bob).
    let out = h.secs(2);
    for s in out.to_ua(&bob) {
        assert_eq!(s.msg.as_bytes(), fwd.msg.as_bytes());
    }
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(408), "{}", out.dump());
    assert_eq!(r.reason(), "Request Timeout");
    assert_eq!(r.msg.cseq().1.as_str(), "MESSAGE");
    assert_eq!(vias(&r).len(), 1);
    // And then silence.
    let out = h.secs(120);
    assert!(out.is_empty(), "{}", out.dump());
    assert_eq!(h.metric(|m| &m.client_transactions), 0);
}

#[test]
fn unanswered_invite_times_out_with_408() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, _) = h.send_authed(&mut alice, invite);
    let out = h.secs(33);
    let to_alice = out.to_ua(&alice);
    assert!(!to_alice.is_empty(), "{}", out.dump());
    assert_eq!(to_alice[0].status(), Some(408));
    assert_eq!(to_alice[0].msg.cseq().1.as_str(), "INVITE");
    // Retransmitted (Timer G) until acknowledged.
    for s in &to_alice {
        assert_eq!(s.msg.as_bytes(), to_alice[0].msg.as_bytes());
    }
    let ack = ack_for_non2xx(&invite, &to_alice[0].msg);
    assert!(h.send(&alice, &ack).is_empty());
    let out = h.secs(10);
    assert!(out.to_ua(&alice).is_empty(), "{}", out.dump());
}

#[test]
fn tcp_branch_has_no_retransmissions() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:40000").tcp(1);
    let mut bob = h.ua("bob", "192.0.2.20:40001").tcp(2);
    h.register(&mut bob, 600);
    let req = alice
        .request("MESSAGE", &bob.uri(), &bob.uri())
        .body("text/plain", "over tcp");
    let (_, out) = h.send_authed(&mut alice, req);
    let fwd = out.one_to(&bob);
    assert_eq!(
        fwd.dest,
        bob.dest(),
        "sent over bob's registration connection"
    );
    assert!(
        vias(&fwd)[0].starts_with("SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKcf"),
        "{}",
        fwd.text()
    );
    let out = h.secs(10);
    assert!(out.is_empty(), "{}", out.dump());
    let out = h.answer(&bob, &fwd, 200);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.dest, alice.dest());
}

#[test]
fn transport_change_double_record_routes() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:40000").tcp(1);
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    assert_eq!(
        rr_untokened(&fwd),
        // Callee side first: bob's route set starts with the entry facing him.
        vec![
            OUR_RR.to_owned(),
            "<sip:192.0.2.1:5060;transport=tcp;lr>".to_owned()
        ]
    );
}

#[test]
fn request_received_again_after_its_transaction_is_handled_again() {
    // Over TCP the server transaction ends with the final response; the same
    // request arriving again starts a new one, which must get its own answer
    // even while the first forwarding context lingers.
    // The BYE belongs to no dialog record-routed here: alice's address is
    // trusted so that it is relayed without a signed route.
    let mut h = Harness::with(|c| c.trusted_peers = vec!["192.0.2.10:0".parse().unwrap()]);
    let mut alice = h.ua("alice", "192.0.2.10:40000").tcp(1);
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);
    let route = vec![OUR_RR.to_owned()];
    let bye = in_dialog(
        &mut alice,
        "BYE",
        &bob.contact_uri(),
        "<sip:alice@example.com>;tag=a1",
        "<sip:bob@example.com>;tag=b1",
        "call-again",
        7,
        &route,
    );
    let fwd = h.send(&alice, &bye).one_to(&bob);
    assert_eq!(h.answer(&bob, &fwd, 200).one_to(&alice).status(), Some(200));
    h.advance(std::time::Duration::from_millis(1));
    let again = h.send(&alice, &bye).one_to(&bob);
    assert_eq!(again.method(), Some("BYE"));
    assert_ne!(again.msg.top_via().branch(), fwd.msg.top_via().branch());
    // bob is silent this time: alice gets a 408, and nothing is left behind.
    let out = h.secs(33);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(408), "{}", out.dump());
    h.secs(60);
    assert_eq!(h.metric(|m| &m.server_transactions), 0);
    assert_eq!(h.metric(|m| &m.client_transactions), 0);
}

#[test]
fn responses_without_an_upstream_via_are_not_relayed() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    // A broken callee that drops every Via but ours (§16.7 step 3).
    let strip = |data: bytes::Bytes| {
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut seen = false;
        let lines: Vec<&str> = text
            .split("\r\n")
            .filter(|l| {
                if !l.starts_with("Via:") {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            })
            .collect();
        bytes::Bytes::from(lines.join("\r\n"))
    };
    let out = h.receive(bob.dest(), strip(bob.response(&fwd.msg, 180)));
    assert!(out.is_empty(), "{}", out.dump());
    let out = h.receive(bob.dest(), strip(bob.response(&fwd.msg, 486)));
    // The branch failed: bob's 486 is acknowledged, alice gets an answer of our own.
    assert_eq!(out.one_to(&bob).method(), Some("ACK"));
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(500), "{}", out.dump());
    assert_eq!(vias(&r).len(), 1);
}

#[test]
fn ringing_forever_is_cancelled_by_timer_c() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    assert_eq!(h.answer(&bob, &fwd, 180).one_to(&alice).status(), Some(180));
    let out = h.secs(179);
    assert!(out.is_empty(), "{}", out.dump());
    // Timer C (3 min): the proxy cancels the branch.
    let out = h.secs(2);
    let cancels = out.to_ua(&bob);
    assert!(!cancels.is_empty(), "{}", out.dump());
    // (Retransmitted over UDP until answered.)
    assert!(
        cancels
            .iter()
            .all(|c| c.msg.as_bytes() == cancels[0].msg.as_bytes())
    );
    let cancel = cancels[0].clone();
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.msg.top_via().branch(), fwd.msg.top_via().branch());
    assert!(out.to_ua(&alice).is_empty());
    // bob confirms: the caller gets the 487.
    assert!(h.answer(&bob, &cancel, 200).is_empty());
    let out = h.answer(&bob, &fwd, 487);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(487));
    assert!(h.send(&alice, &ack_for_non2xx(&invite, &r.msg)).is_empty());
    h.secs(60);
    assert_eq!(h.metric(|m| &m.server_transactions), 0);
    assert_eq!(h.metric(|m| &m.client_transactions), 0);
}

#[test]
fn callee_vanishing_after_ringing_is_given_up() {
    let World {
        mut h,
        mut alice,
        bob,
    } = world();
    let invite = alice
        .request("INVITE", &bob.uri(), &bob.uri())
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    h.answer(&bob, &fwd, 180);
    // bob never answers again, not even the CANCEL.
    let out = h.secs(181);
    let cancels = out.requests("CANCEL");
    assert!(!cancels.is_empty(), "{}", out.dump());
    assert!(
        cancels
            .iter()
            .all(|c| c.msg.as_bytes() == cancels[0].msg.as_bytes())
    );
    let out = h.secs(33);
    let to_alice = out.to_ua(&alice);
    assert!(!to_alice.is_empty(), "{}", out.dump());
    assert_eq!(to_alice[0].status(), Some(408));
    assert!(
        h.send(&alice, &ack_for_non2xx(&invite, &to_alice[0].msg))
            .is_empty()
    );
    h.secs(60);
    assert_eq!(h.metric(|m| &m.server_transactions), 0);
    assert_eq!(h.metric(|m| &m.client_transactions), 0);
}
