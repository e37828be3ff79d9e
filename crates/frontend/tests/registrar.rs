//! Registrar and authentication (RFC 3261 §10, §22; RFC 7616), as a client sees it.

mod common;

use std::time::Duration;

use common::*;
use confab_auth::digest::Algorithm;
use confab_frontend::{ConnId, DirectoryChange, Transport};
use confab_sip::HeaderName;

fn contacts(r: &Sent) -> Vec<String> {
    r.headers(HeaderName::Contact)
}

#[test]
fn register_without_credentials_is_challenged_with_md5_only() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let out = h.send(&alice, &req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(401));
    assert_eq!(r.reason(), "Unauthorized");
    assert_eq!(r.dest, alice.dest());
    let challenges: Vec<&str> = r.msg.headers_named(HeaderName::WwwAuthenticate).collect();
    assert_eq!(challenges.len(), 1, "{}", r.text());
    let c = challenges[0];
    assert!(c.starts_with("Digest "), "{c}");
    assert!(c.contains("realm=\"example.com\""), "{c}");
    assert!(c.contains("algorithm=MD5"), "{c}");
    assert!(c.contains("qop=\"auth\""), "{c}");
    assert!(c.contains("nonce=\""), "{c}");
    assert!(!c.contains("SHA-256"), "{c}");
    assert!(!c.contains("stale"), "{c}");
    // The response answers this request: same Call-ID, CSeq and Via, a To tag.
    assert_eq!(r.msg.call_id(), req.get("Call-ID").unwrap_or_default());
    assert_eq!(r.msg.cseq().0, 1);
    assert_eq!(r.msg.top_via_str(), req.get("Via").unwrap_or_default());
    assert!(r.msg.to_tag().is_some());
    assert_eq!(h.core.registrations(), 0);
    assert_eq!(h.metric(|m| &m.auth_challenges_total), 1);
}

#[test]
fn register_with_credentials_lists_the_contact() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let (sent, out) = h.send_authed(&mut alice, req);
    assert!(sent.get("Authorization").is_some());
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200), "{}", out.dump());
    assert_eq!(r.reason(), "OK");
    assert_eq!(
        contacts(&r),
        vec![format!("<{}>;expires=600", alice.contact_uri())]
    );
    assert_eq!(r.header("Expires"), Some("600"));
    assert!(r.header("Allow").is_some_and(|a| a.contains("MESSAGE")));
    assert_eq!(r.msg.cseq().0, 2);
    assert_eq!(h.core.registrations(), 1);
    assert_eq!(h.metric(|m| &m.register_requests_total), 1);
    assert_eq!(h.metric(|m| &m.registrations), 1);
    assert_eq!(h.metric(|m| &m.registered_users), 1);
    assert_eq!(h.metric(|m| &m.auth_failures_total), 0);
}

#[test]
fn expires_is_capped_at_the_maximum() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let r = h.register(&mut alice, 100_000);
    assert_eq!(r.header("Expires"), Some("7200"));
    assert_eq!(
        contacts(&r),
        vec![format!("<{}>;expires=7200", alice.contact_uri())]
    );
}

#[test]
fn wrong_password_is_challenged_again_and_counted() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    alice.password = "wrong".into();
    let req = alice.register(600);
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(401));
    assert!(r.header("WWW-Authenticate").is_some());
    assert_eq!(h.core.registrations(), 0);
    assert_eq!(h.metric(|m| &m.auth_failures_total), 1);
    assert_eq!(h.metric(|m| &m.auth_challenges_total), 2);
}

#[test]
fn unknown_user_is_challenged_like_a_wrong_password() {
    let mut h = Harness::new();
    let mut mallory = Ua::new("mallory", "x", "192.0.2.66:5060");
    let req = mallory.register(600);
    let (_, out) = h.send_authed(&mut mallory, req);
    assert_eq!(out.one_to(&mallory).status(), Some(401));
    assert_eq!(h.metric(|m| &m.auth_failures_total), 1);
}

#[test]
fn too_many_failures_lock_the_user_out() {
    let mut h = Harness::with(|c| c.max_failures_per_user = 3);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    alice.password = "wrong".into();
    let mut req = alice.register(600);
    let mut challenge = h.send(&alice, &req).one_to(&alice);
    for i in 0..3 {
        req = alice.authorize(&req, &challenge.msg);
        challenge = h.send(&alice, &req).one_to(&alice);
        assert_eq!(challenge.status(), Some(401), "attempt {i}");
    }
    assert_eq!(h.metric(|m| &m.auth_failures_total), 3);
    // Even the right password is refused now.
    alice.password = "alice-pw".into();
    req = alice.authorize(&req, &challenge.msg);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Too many failed authentication attempts");
    let retry: u64 = r
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(h.metric(|m| &m.auth_rate_limited_total), 1);
    assert_eq!(h.core.registrations(), 0);

    // Another user from another address is not affected.
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut bob, 600);

    // Once the window is over, alice gets in.
    h.secs(61);
    let mut alice2 = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice2, 600);
    assert_eq!(h.core.registrations(), 2);
}

#[test]
fn too_many_failures_from_one_address_block_it() {
    let mut h = Harness::with(|c| {
        c.max_failures_per_source = 2;
        c.max_failures_per_user = 100;
    });
    let mut guesser = Ua::new("carol", "guess", "192.0.2.66:5060");
    for user in ["carol", "bob"] {
        guesser.user = user.into();
        let req = guesser.register(600);
        let (_, out) = h.send_authed(&mut guesser, req);
        assert_eq!(out.one_to(&guesser).status(), Some(401));
    }
    // Blocked before any credentials are even looked at.
    guesser.user = "alice".into();
    let req = guesser.register(600);
    let r = h.send(&guesser, &req).one_to(&guesser);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Too many failed authentication attempts");
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn stale_nonce_is_challenged_with_stale_true() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let challenge = h.send(&alice, &req).one_to(&alice);
    // The nonce lifetime (300 s) passes before the client answers.
    h.secs(301);
    let req = alice.authorize(&req, &challenge.msg);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(401));
    let c = r.header("WWW-Authenticate").unwrap_or_default().to_owned();
    assert!(c.contains("stale=true"), "{c}");
    // A stale nonce with the right password is not a failure.
    assert_eq!(h.metric(|m| &m.auth_failures_total), 0);
    // Answering the fresh challenge works.
    let req = alice.authorize(&req, &r.msg);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(200));
}

#[test]
fn a_nonce_is_reusable_with_increasing_nonce_count() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let challenge = h.send(&alice, &req).one_to(&alice);
    let req = alice.authorize(&req, &challenge.msg);
    assert_eq!(h.send(&alice, &req).one_to(&alice).status(), Some(200));
    // Refresh with the same nonce, next nc: no new challenge.
    let req = alice.authorize(&req, &challenge.msg);
    assert!(
        req.get("Authorization")
            .is_some_and(|a| a.contains("nc=00000002"))
    );
    assert_eq!(h.send(&alice, &req).one_to(&alice).status(), Some(200));
    // Replaying an old nonce count is refused.
    let replay = alice.next(&req);
    let replay = replay.set(
        "Authorization",
        req.get("Authorization").unwrap_or_default().to_owned(),
    );
    let r = h.send(&alice, &replay).one_to(&alice);
    assert_eq!(r.status(), Some(401));
}

#[test]
fn several_contacts_per_address() {
    let mut h = Harness::new();
    // Two devices of alice, each registering its own contact.
    let mut desk = h.ua("alice", "192.0.2.10:5060");
    let mut mobile = h.ua("alice", "192.0.2.11:5062");
    h.register(&mut desk, 600);
    h.secs(10);
    let r = h.register(&mut mobile, 300);
    let mut c = contacts(&r);
    c.sort();
    assert_eq!(
        c,
        vec![
            format!("<{}>;expires=590", desk.contact_uri()),
            format!("<{}>;expires=300", mobile.contact_uri())
        ]
    );
    assert_eq!(h.core.registrations(), 2);
    assert_eq!(h.metric(|m| &m.registered_users), 1);

    // One REGISTER carrying two contacts, one with its own expires parameter.
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice
        .register(600)
        .header("Contact", "<sip:alice@192.0.2.10:5070>;expires=120");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200));
    let mut c = contacts(&r);
    c.sort();
    assert_eq!(
        c,
        vec![
            "<sip:alice@192.0.2.10:5060>;expires=600".to_owned(),
            "<sip:alice@192.0.2.10:5070>;expires=120".to_owned()
        ]
    );
    assert_eq!(h.core.registrations(), 2);
}

#[test]
fn query_without_contact_lists_bindings() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 600);
    let req = alice.register(600).without("Contact");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        contacts(&r),
        vec![format!("<{}>;expires=600", alice.contact_uri())]
    );
    assert_eq!(h.core.registrations(), 1);
}

#[test]
fn refresh_and_explicit_unregister() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let (sent, _) = h.send_authed(&mut alice, req);
    let challenge = {
        // Take a fresh challenge for the following requests.
        let probe = alice.next(&sent).without("Authorization");
        h.send(&alice, &probe).one_to(&alice)
    };
    let last = alice.next(&sent);
    let unreg = alice.authorize(&last.set("Expires", "0"), &challenge.msg);
    let r = h.send(&alice, &unreg).one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert!(contacts(&r).is_empty(), "{}", r.text());
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn wildcard_contact_removes_everything() {
    let mut h = Harness::new();
    let mut desk = h.ua("alice", "192.0.2.10:5060");
    let mut mobile = h.ua("alice", "192.0.2.11:5060");
    h.register(&mut desk, 600);
    h.register(&mut mobile, 600);
    assert_eq!(h.core.registrations(), 2);

    let req = desk.register(0).set("Contact", "*");
    let (_, out) = h.send_authed(&mut desk, req);
    let r = out.one_to(&desk);
    assert_eq!(r.status(), Some(200), "{}", out.dump());
    assert!(contacts(&r).is_empty());
    assert_eq!(h.core.registrations(), 0);
    assert_eq!(h.metric(|m| &m.registrations), 0);
}

#[test]
fn wildcard_contact_without_expires_zero_is_refused() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 600);
    for req in [
        alice.register(600).set("Contact", "*"),
        alice.register(0).set("Contact", "*").without("Expires"),
        alice
            .register(0)
            .set("Contact", "*")
            .header("Contact", "<sip:alice@192.0.2.10:5070>"),
    ] {
        let (_, out) = h.send_authed(&mut alice, req);
        let r = out.one_to(&alice);
        assert_eq!(r.status(), Some(400));
        assert_eq!(
            r.reason(),
            "Wildcard Contact needs Expires: 0 and no other contact"
        );
    }
    assert_eq!(h.core.registrations(), 1);
}

#[test]
fn too_brief_expires_gets_423_with_min_expires() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(30);
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.reason(), "Interval Too Brief");
    assert_eq!(r.header("Min-Expires"), Some("60"));
    // The contact parameter wins over the header.
    let req = alice
        .register(600)
        .set("Contact", format!("<{}>;expires=10", alice.contact_uri()));
    let (_, out) = h.send_authed(&mut alice, req);
    assert_eq!(out.one_to(&alice).status(), Some(423));
    assert_eq!(h.core.registrations(), 0);
    // A client that follows the advice succeeds.
    h.register(&mut alice, 60);
}

#[test]
fn registrations_expire_with_time() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    h.register(&mut alice, 120);
    h.register(&mut bob, 600);
    assert_eq!(h.core.registrations(), 2);
    h.secs(119);
    assert_eq!(h.core.registrations(), 2);
    // The core asks to be woken for the expiry.
    assert!(
        h.core
            .next_deadline()
            .is_some_and(|d| d <= h.t0 + Duration::from_secs(120))
    );
    let out = h.secs(2);
    assert!(out.is_empty(), "{}", out.dump());
    assert_eq!(h.core.registrations(), 1);
    assert_eq!(h.metric(|m| &m.registrations), 1);
    h.secs(600);
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn a_refresh_postpones_expiry() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 120);
    h.secs(100);
    h.register(&mut alice, 120);
    h.secs(100);
    assert_eq!(h.core.registrations(), 1);
    h.secs(21);
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn to_must_be_the_authenticated_user() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600).set("To", "<sip:bob@example.com>");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(403));
    assert_eq!(
        r.reason(),
        "Authenticated user does not match the To address"
    );
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn register_for_another_domain_is_refused() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut req = alice.register(600);
    req.ruri = "sip:other.example".into();
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(404));
    assert_eq!(r.reason(), "Domain not served here");
}

#[test]
fn disabled_user_cannot_register_and_is_signed_out() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 600);
    assert_eq!(h.core.registrations(), 1);

    h.add_user("alice", "alice-pw", false);
    assert_eq!(
        h.core.registrations(),
        0,
        "disabling must end the registration"
    );
    assert_eq!(h.metric(|m| &m.registrations), 0);

    let req = alice.register(600);
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(401));
    assert_eq!(h.core.registrations(), 0);

    // Removed users too.
    h.add_user("alice", "alice-pw", true);
    h.register(&mut alice, 600);
    let now = h.now;
    h.core.apply_directory_change(
        DirectoryChange::Removed {
            address: "Alice@Example.com".into(),
        },
        now,
    );
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn tcp_registration_survives_its_connection_by_reconnecting() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:40000").tcp(7);
    let mut bob = h.ua("bob", "192.0.2.20:40001").tcp(8);
    let r = h.register(&mut alice, 600);
    // Answers go back over the connection the request came on.
    assert_eq!(r.dest, alice.dest());
    assert_eq!(r.dest.conn, Some(ConnId(7)));
    assert_eq!(r.dest.transport, Transport::Tcp);
    assert_eq!(
        contacts(&r),
        vec!["<sip:alice@192.0.2.10:40000;transport=tcp>;expires=600".to_owned()]
    );
    h.register(&mut bob, 600);
    assert_eq!(h.core.registrations(), 2);

    // A plain (non-outbound) contact stays: it is reached with a new connection.
    let now = h.now;
    h.core.on_connection_closed(ConnId(7), now);
    assert_eq!(h.core.registrations(), 2);
    assert!(h.outputs().is_empty());
    let req = bob
        .request("MESSAGE", &alice.uri(), &alice.uri())
        .body("text/plain", "hi");
    let (_, out) = h.send_authed(&mut bob, req);
    let fwd = out.iter().find(|s| s.method() == Some("MESSAGE")).cloned();
    let fwd = fwd.unwrap_or_else(|| panic!("not forwarded:\n{}", out.dump()));
    assert_eq!(fwd.dest.addr, alice.addr);
    assert_eq!(fwd.dest.transport, Transport::Tcp);
    assert_eq!(fwd.dest.conn, None, "the old connection is gone");
}

#[test]
fn outbound_registration_ends_with_its_connection() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:40000").tcp(7);
    let mut bob = h.ua("bob", "192.0.2.20:40001").tcp(8);
    let instance = "\"<urn:uuid:00000000-0000-0000-0000-00000000000a>\"";
    let req = alice.register(600).set(
        "Contact",
        format!(
            "<{}>;+sip.instance={instance};reg-id=1",
            alice.contact_uri()
        ),
    );
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(200), "{}", out.dump());
    assert_eq!(r.header("Require"), Some("outbound"));
    assert_eq!(
        contacts(&r),
        vec![format!(
            "<{}>;expires=600;+sip.instance={instance};reg-id=1",
            alice.contact_uri()
        )]
    );
    h.register(&mut bob, 600);
    assert_eq!(h.core.registrations(), 2);

    let now = h.now;
    h.core.on_connection_closed(ConnId(7), now);
    assert_eq!(h.core.registrations(), 1);
    assert_eq!(h.metric(|m| &m.registrations), 1);
    assert!(h.outputs().is_empty());
    // Closing an unrelated or unknown connection changes nothing.
    h.core.on_connection_closed(ConnId(99), now);
    assert_eq!(h.core.registrations(), 1);

    // Alice is now offline for her peers.
    let req = bob
        .request("MESSAGE", &alice.uri(), &alice.uri())
        .body("text/plain", "hi");
    let (_, out) = h.send_authed(&mut bob, req);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(480));
}

#[test]
fn sha256_is_offered_when_configured_and_accepted() {
    let mut h = Harness::with(|c| c.digest_offer_sha256 = true);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(401));
    let challenges: Vec<&str> = r.msg.headers_named(HeaderName::WwwAuthenticate).collect();
    assert_eq!(challenges.len(), 2, "{}", r.text());
    // MD5 first: deployed clients take the first one they understand.
    assert!(challenges[0].contains("algorithm=MD5"), "{}", challenges[0]);
    assert!(
        challenges[1].contains("algorithm=SHA-256"),
        "{}",
        challenges[1]
    );
    alice.algorithm = Algorithm::Sha256;
    let req = alice.authorize(&req, &r.msg);
    assert!(
        req.get("Authorization")
            .is_some_and(|a| a.contains("algorithm=SHA-256"))
    );
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(200));
}

#[test]
fn sha256_response_is_verified_even_when_not_offered() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let r = h.send(&alice, &req).one_to(&alice);
    // Answer the MD5 challenge's nonce with SHA-256.
    alice.algorithm = Algorithm::Md5;
    let req2 = alice.next(&req);
    let (name, value) = alice.credentials(&req2, &r.msg);
    let nonce = value
        .split("nonce=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let fake = r.text().replace("algorithm=MD5", "algorithm=SHA-256");
    let fake = confab_sip::Message::parse(bytes::Bytes::from(fake), &unbounded()).unwrap();
    alice.algorithm = Algorithm::Sha256;
    let (_, sha) = alice.credentials(&req2, &fake);
    assert!(sha.contains(&nonce));
    let r = h.send(&alice, &req2.header(&name, sha)).one_to(&alice);
    assert_eq!(r.status(), Some(200));
}

#[test]
fn retransmitted_register_gets_the_same_answer_without_reprocessing() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    // Challenges are stateless (RFC 3261 §8.2.7): a retransmitted unauthenticated
    // REGISTER is challenged again with a fresh nonce, and either nonce works.
    let req = alice.register(600);
    let first = h.send(&alice, &req).one_to(&alice);
    let again = h.send(&alice, &req).one_to(&alice);
    assert_eq!(again.status(), Some(401));
    assert_ne!(first.msg.as_bytes(), again.msg.as_bytes());
    assert_eq!(h.metric(|m| &m.auth_challenges_total), 2);
    assert_eq!(
        h.core.server_transactions(),
        0,
        "no state kept for a challenge"
    );

    let req = alice.authorize(&req, &first.msg);
    let ok = h.send(&alice, &req).one_to(&alice);
    assert_eq!(ok.status(), Some(200));
    h.secs(2);
    let again = h.send(&alice, &req).one_to(&alice);
    assert_eq!(
        ok.msg.as_bytes(),
        again.msg.as_bytes(),
        "a retransmission must get the same response"
    );
    assert_eq!(h.metric(|m| &m.register_requests_total), 1);
    assert_eq!(h.metric(|m| &m.sip_retransmissions_absorbed_total), 1);
    assert_eq!(
        h.metric(|m| &m.auth_failures_total),
        0,
        "the nonce count must not be checked twice"
    );
    assert_eq!(h.core.registrations(), 1);

    // After Timer J (32 s) the transaction is gone; the same request is now a
    // replay of the nonce count and is challenged.
    h.secs(40);
    let late = h.send(&alice, &req).one_to(&alice);
    assert_eq!(late.status(), Some(401));
}

#[test]
fn rfc2543_register_without_branch() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let via = "SIP/2.0/UDP 192.0.2.10:5060";
    let req = alice.register(600).set("Via", via);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(401));
    assert_eq!(r.msg.top_via_str(), via);
    let req = alice.authorize(&req, &r.msg).set("Via", via);
    let ok = h.send(&alice, &req).one_to(&alice);
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    assert_eq!(ok.msg.top_via_str(), via);
    assert_eq!(h.core.registrations(), 1);
    // Retransmission matched on Call-ID, CSeq, From tag and sent-by.
    let again = h.send(&alice, &req).one_to(&alice);
    assert_eq!(ok.msg.as_bytes(), again.msg.as_bytes());
    assert_eq!(h.metric(|m| &m.register_requests_total), 1);
}

#[test]
fn out_of_order_register_is_refused() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let challenge = h.send(&alice, &req).one_to(&alice);
    let req5 = alice.authorize(&req.clone().set("CSeq", "5 REGISTER"), &challenge.msg);
    assert_eq!(h.send(&alice, &req5).one_to(&alice).status(), Some(200));
    // Same Call-ID, lower CSeq (a delayed older request), new branch.
    let old = alice.authorize(&req.set("CSeq", "2 REGISTER"), &challenge.msg);
    let r = h.send(&alice, &old).one_to(&alice);
    assert_eq!(r.status(), Some(500));
    assert_eq!(r.reason(), "Out of order REGISTER");
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn contact_limit_per_address() {
    let mut h = Harness::with(|c| c.max_contacts_per_aor = 2);
    for port in [5060, 5061] {
        let mut ua = h.ua("alice", &format!("192.0.2.10:{port}"));
        h.register(&mut ua, 600);
    }
    let mut third = h.ua("alice", "192.0.2.10:5062");
    let req = third.register(600);
    let (_, out) = h.send_authed(&mut third, req);
    let r = out.one_to(&third);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Too many registered contacts (at most 2)");
    assert_eq!(h.core.registrations(), 2);
}

#[test]
fn unauthenticated_mode_accepts_everyone() {
    let mut h = Harness::with(|c| c.allow_unauthenticated = true);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let r = h.send(&alice, &req).one_to(&alice);
    assert_eq!(r.status(), Some(200));
    assert_eq!(h.core.registrations(), 1);
}
