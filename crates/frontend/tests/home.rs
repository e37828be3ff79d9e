//! Users homed on front ends of a pool (crate::home), with a fake pool: requests
//! for a user homed on another front end go there as from a trusted peer, a peer's
//! requests are served here, and a front end that lost the pool refuses with 503.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use confab_frontend::{Dest, HomeRoute, HomeRouter, Transport};

const PEER: &str = "192.0.2.20:5060";

/// Users listed are homed on the peer; `down` makes every answer Unavailable.
struct FakePool {
    remote: Vec<String>,
    down: Mutex<bool>,
    asked: Mutex<Vec<(String, bool)>>,
}

fn peer_addr() -> SocketAddr {
    PEER.parse().unwrap_or_else(|_| unreachable!())
}

impl HomeRouter for FakePool {
    fn route(&self, user: &str, sign_in: bool) -> HomeRoute {
        if let Ok(mut a) = self.asked.lock() {
            a.push((user.to_owned(), sign_in));
        }
        if self.down.lock().is_ok_and(|d| *d) {
            return HomeRoute::Unavailable("This front end lost the pool's back end".into());
        }
        if self.remote.iter().any(|u| u == user) {
            HomeRoute::Peer(Dest {
                transport: Transport::Udp,
                addr: peer_addr(),
                conn: None,
            })
        } else {
            HomeRoute::Local
        }
    }

    fn is_peer(&self, addr: SocketAddr) -> bool {
        addr == peer_addr()
    }
}

fn pool_harness(remote: &[&str]) -> (Harness, Arc<FakePool>) {
    let mut h = Harness::new();
    let pool = Arc::new(FakePool {
        remote: remote.iter().map(|u| format!("{u}@{DOMAIN}")).collect(),
        down: Mutex::new(false),
        asked: Mutex::new(Vec::new()),
    });
    h.core.set_home_router(pool.clone());
    (h, pool)
}

#[test]
fn a_request_for_a_user_homed_elsewhere_goes_to_the_home_front_end() {
    let (mut h, pool) = pool_harness(&["bob"]);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 600);
    let req = alice
        .request(
            "MESSAGE",
            &format!("sip:bob@{DOMAIN}"),
            &format!("sip:bob@{DOMAIN}"),
        )
        .without("Contact")
        .header("P-Asserted-Identity", "<sip:mallory@example.com>")
        .body("text/plain", "hello bob");
    let (_, out) = h.send_authed(&mut alice, req);
    let fwd: Vec<Sent> = out
        .iter()
        .filter(|s| s.dest.addr == peer_addr())
        .cloned()
        .collect();
    assert_eq!(fwd.len(), 1, "{}", out.dump());
    let fwd = &fwd[0];
    assert_eq!(fwd.method(), Some("MESSAGE"));
    assert_eq!(fwd.msg.request_uri(), Some("sip:bob@example.com"));
    // The authenticated sender, not what the client claimed.
    assert_eq!(
        fwd.headers(confab_sip::HeaderName::PAssertedIdentity),
        vec!["<sip:alice@example.com>".to_owned()]
    );
    assert!(
        out.to_ua(&alice).iter().all(|s| s.status() != Some(480)),
        "{}",
        out.dump()
    );
    // The peer's answer goes back to alice.
    let peer = Ua::new("bob", "x", PEER);
    let back = h.answer(&peer, fwd, 200);
    assert_eq!(back.one_to(&alice).status(), Some(200), "{}", back.dump());
    // REGISTER asked as a sign-in, the MESSAGE's target as a lookup.
    let asked = pool.asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(
        asked.contains(&("alice@example.com".into(), true)),
        "{asked:?}"
    );
    assert!(
        asked.contains(&("bob@example.com".into(), false)),
        "{asked:?}"
    );
}

#[test]
fn a_call_to_a_user_homed_elsewhere_is_record_routed() {
    let (mut h, _pool) = pool_harness(&["bob"]);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    h.register(&mut alice, 600);
    let req = alice.request(
        "INVITE",
        &format!("sip:bob@{DOMAIN}"),
        &format!("sip:bob@{DOMAIN}"),
    );
    let (_, out) = h.send_authed(&mut alice, req);
    let fwd = out
        .iter()
        .find(|s| s.dest.addr == peer_addr() && s.method() == Some("INVITE"))
        .cloned()
        .unwrap_or_else(|| panic!("INVITE not sent to the home front end:\n{}", out.dump()));
    let rr = fwd.header("Record-Route").unwrap_or_default().to_owned();
    assert!(
        rr.contains("192.0.2.1:5060") && rr.contains(";cfd="),
        "{rr}"
    );
}

#[test]
fn requests_from_a_peer_front_end_are_served_here_without_a_challenge() {
    // bob is homed here: the peer's request reaches him, unchallenged.
    let (mut h, _pool) = pool_harness(&[]);
    let mut bob = h.ua("bob", "192.0.2.11:5060");
    h.register(&mut bob, 600);
    let mut peer = Ua::new("alice", "x", PEER);
    let req = peer
        .request(
            "MESSAGE",
            &format!("sip:bob@{DOMAIN}"),
            &format!("sip:bob@{DOMAIN}"),
        )
        .without("Contact")
        .body("text/plain", "via the pool");
    let out = h.send(&peer, &req);
    assert_eq!(out.one_to(&bob).method(), Some("MESSAGE"), "{}", out.dump());
    assert!(out.to_ua(&peer).iter().all(|s| s.status() != Some(407)));

    // A front end whose view says bob is on the peer serves the peer's request
    // itself (480: bob is not signed in here) instead of sending it back.
    let (mut other, _p) = pool_harness(&["bob"]);
    let out = other.send(&peer, &req);
    assert_eq!(out.one_to(&peer).status(), Some(480), "{}", out.dump());
}

#[test]
fn a_sign_in_on_a_front_end_that_is_not_home_is_redirected_home() {
    let (mut h, _pool) = pool_harness(&["bob"]);
    let mut bob = h.ua("bob", "192.0.2.11:5060");
    let req = bob.register(600);
    let (_, out) = h.send_authed(&mut bob, req);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(301), "{}", out.dump());
    assert_eq!(
        r.header("Contact"),
        Some("<sip:192.0.2.20:5060;transport=udp>")
    );
    assert_eq!(h.core.registrations(), 0);
}

#[test]
fn a_front_end_without_its_pool_refuses_with_503_and_recovers() {
    let (mut h, pool) = pool_harness(&[]);
    if let Ok(mut d) = pool.down.lock() {
        *d = true;
    }
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = alice.register(600);
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(503), "{}", out.dump());
    assert_eq!(r.reason(), "This front end lost the pool's back end");
    assert_eq!(r.header("Retry-After"), Some("10"));
    if let Ok(mut d) = pool.down.lock() {
        *d = false;
    }
    h.register(&mut alice, 600);
    assert_eq!(h.core.registrations(), 1);
}
