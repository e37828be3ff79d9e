//! Enterprise Voice routing in the sans-IO core (crate::voice_app): numbers reach
//! their users, PSTN calls fail over from trunk to trunk on a timeout, callers
//! without a line URI are refused with the reason, inbound calls only from trunks.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use common::*;
use confab_frontend::{Dest, Transport};
use confab_voice::{
    Announcement, DialPlan, Homes, ParkOrbit, Route, Rule, Scope, Trunk, TrunkTransport,
    UnassignedRange, UserVoice, VoiceConfig, VoiceData, VoicePolicy,
};

const GW1: &str = "127.0.0.1:5080";
const GW2: &str = "127.0.0.1:5090";

fn voice() -> Arc<VoiceConfig> {
    let user = |a: &str, n: Option<&str>| UserVoice {
        address: format!("{a}@example.com"),
        line_uri: n.map(str::to_owned),
        dial_plan: None,
        voice_policy: None,
    };
    let trunk = |name: &str, gw: &str| Trunk {
        from_topology: false,
        name: name.into(),
        gateway: gw.parse().unwrap(),
        transport: TrunkTransport::Udp,
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
            trunks: vec!["gw1".into(), "gw2".into()],
        }],
        trunks: vec![trunk("gw1", GW1), trunk("gw2", GW2)],
        users: vec![
            user("alice", Some("+14255550100")),
            user("bob", Some("+14255550101")),
            user("carol", None),
        ],
        announcements: vec![Announcement {
            name: "gone".into(),
            audio_file: None,
            tones: Some("440:1000".into()),
            target: None,
        }],
        unassigned: vec![UnassignedRange {
            name: "old".into(),
            start: "+14255550150".into(),
            end: "+14255550159".into(),
            announcement: "gone".into(),
            priority: 0,
        }],
        park_orbits: vec![ParkOrbit {
            name: "main".into(),
            start: "7000".into(),
            end: "7099".into(),
            timeout_secs: 60,
            fallback: None,
            music_file: None,
            music_tones: None,
        }],
    };
    Arc::new(VoiceConfig::build(data, Homes::default()).unwrap())
}

fn harness() -> Harness {
    let mut h = Harness::new();
    h.core.set_voice_config(voice());
    h
}

#[test]
fn tel_uri_of_a_user_reaches_the_user() {
    let mut h = harness();
    let mut bob = h.ua("bob", "192.0.2.12:5060");
    h.register(&mut bob, 600);
    let mut alice = h.ua("alice", "192.0.2.11:5060");
    let invite = alice.request("INVITE", "tel:+14255550101", "tel:+14255550101");
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.one_to(&bob);
    assert_eq!(fwd.method(), Some("INVITE"), "{}", out.dump());
}

#[test]
fn pstn_call_fails_over_to_the_next_trunk_on_timeout() {
    let mut h = harness();
    let mut alice = h.ua("alice", "192.0.2.11:5060");
    let gw1 = Ua::new("gw1", "", GW1);
    let gw2 = Ua::new("gw2", "", GW2);
    let invite = alice.request(
        "INVITE",
        "sip:5550199@example.com",
        "sip:5550199@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    let first = out.to_ua(&gw1);
    assert_eq!(first.len(), 1, "{}", out.dump());
    assert!(
        first[0]
            .text()
            .starts_with("INVITE sip:+14255550199@127.0.0.1:5080;user=phone "),
        "{}",
        first[0].text()
    );
    let pai = first[0].header("P-Asserted-Identity").unwrap_or("");
    assert!(pai.contains("+14255550100"), "caller ID: {pai}");
    assert!(out.to_ua(&gw2).is_empty(), "trunks are tried one at a time");
    // gw1 never answers: Timer B (32 s), then gw2.
    let out = h.secs(31);
    assert!(out.to_ua(&gw2).is_empty(), "{}", out.dump());
    let out = h.secs(3);
    let second = out.to_ua(&gw2);
    assert!(!second.is_empty(), "{}", out.dump());
    assert!(
        second[0]
            .text()
            .starts_with("INVITE sip:+14255550199@127.0.0.1:5090;user=phone "),
        "{}",
        second[0].text()
    );
    let out = h.answer(&gw2, &second[0], 200);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
}

#[test]
fn caller_without_line_uri_is_refused_with_the_reason() {
    let mut h = harness();
    let mut carol = h.ua("carol", "192.0.2.13:5060");
    let invite = carol.request(
        "INVITE",
        "sip:5550199@example.com",
        "sip:5550199@example.com",
    );
    let (_, out) = h.send_authed(&mut carol, invite);
    let r = out.one_to(&carol);
    assert_eq!(r.status(), Some(403), "{}", out.dump());
    assert!(
        r.reason().contains("not enabled for Enterprise Voice"),
        "{}",
        r.reason()
    );
}

#[test]
fn inbound_only_from_a_trunk() {
    let mut h = harness();
    let mut bob = h.ua("bob", "192.0.2.12:5060");
    h.register(&mut bob, 600);
    let mut gw = Ua::new("gw1", "", GW1);
    let invite = gw
        .request(
            "INVITE",
            "sip:+14255550101@example.com;user=phone",
            "sip:+14255550101@example.com;user=phone",
        )
        .set("From", "<sip:+12065550123@pstn.invalid;user=phone>;tag=g1");
    let out = h.send(&gw, &invite);
    assert_eq!(out.one_to(&bob).method(), Some("INVITE"), "{}", out.dump());

    let unknown = gw
        .request(
            "INVITE",
            "sip:+14255550199@example.com;user=phone",
            "sip:+14255550199@example.com;user=phone",
        )
        .set("From", "<sip:+12065550123@pstn.invalid;user=phone>;tag=g2");
    let out = h.send(&gw, &unknown);
    assert_eq!(out.one_to(&gw).status(), Some(404), "{}", out.dump());

    let mut stranger = Ua::new("x", "", "127.0.0.1:5099");
    let invite = stranger
        .request(
            "INVITE",
            "sip:+14255550101@example.com;user=phone",
            "sip:+14255550101@example.com;user=phone",
        )
        .set("From", "<sip:+12065550123@pstn.invalid;user=phone>;tag=g3");
    let out = h.send(&stranger, &invite);
    assert_eq!(out.one_to(&stranger).status(), Some(403), "{}", out.dump());
    assert!(out.to_ua(&bob).is_empty());
}

const ANNOUNCEMENT: &str = "127.0.0.1:5070";

#[test]
fn unassigned_numbers_go_to_the_announcement_service() {
    let mut h = Harness::with(|c| {
        c.announcement_service = Some(Dest {
            transport: Transport::Udp,
            addr: ANNOUNCEMENT.parse().unwrap(),
            conn: None,
        });
    });
    h.core.set_voice_config(voice());
    let service = Ua::new("announcement", "", ANNOUNCEMENT);
    let gw1 = Ua::new("gw1", "", GW1);
    let mut alice = h.ua("alice", "192.0.2.11:5060");
    // Dialed as a 7-digit number: normalized, then in the unassigned range.
    let invite = alice.request(
        "INVITE",
        "sip:5550155@example.com",
        "sip:5550155@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.to_ua(&service);
    assert_eq!(fwd.len(), 1, "{}", out.dump());
    assert!(
        fwd[0]
            .text()
            .starts_with("INVITE sip:+14255550155@example.com;user=phone SIP/2.0"),
        "{}",
        fwd[0].text()
    );
    assert!(fwd[0].header("Record-Route").is_some());
    assert!(out.to_ua(&gw1).is_empty());
    // From a gateway too.
    let mut gw = Ua::new("gw1", "", GW1);
    let inbound = gw
        .request(
            "INVITE",
            "sip:+14255550159@example.com;user=phone",
            "sip:+14255550159@example.com;user=phone",
        )
        .set("From", "<sip:+12065550123@pstn.invalid;user=phone>;tag=g9");
    let out = h.send(&gw, &inbound);
    assert_eq!(out.to_ua(&service).len(), 1, "{}", out.dump());
    // A number outside the range still goes to the PSTN.
    let invite = alice.request(
        "INVITE",
        "sip:5550160@example.com",
        "sip:5550160@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    assert!(out.to_ua(&service).is_empty(), "{}", out.dump());
    assert_eq!(out.to_ua(&gw1).len(), 1, "{}", out.dump());
}

const PARK: &str = "127.0.0.1:5071";

#[test]
fn orbit_numbers_go_to_the_park_service() {
    let mut h = Harness::with(|c| {
        c.park_service = Some(Dest {
            transport: Transport::Udp,
            addr: PARK.parse().unwrap(),
            conn: None,
        });
    });
    h.core.set_voice_config(voice());
    let service = Ua::new("park", "", PARK);
    let gw1 = Ua::new("gw1", "", GW1);
    let mut alice = h.ua("alice", "192.0.2.11:5060");
    // A transfer to park: the Request-URI (with the parker) goes unchanged.
    let invite = alice.request(
        "INVITE",
        "sip:7000@example.com;parker=bob",
        "sip:7000@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    let fwd = out.to_ua(&service);
    assert_eq!(fwd.len(), 1, "{}", out.dump());
    assert!(
        fwd[0]
            .text()
            .starts_with("INVITE sip:7000@example.com;parker=bob SIP/2.0"),
        "{}",
        fwd[0].text()
    );
    assert!(fwd[0].header("Record-Route").is_some());
    assert!(out.to_ua(&gw1).is_empty());
    // A number outside the orbits does not.
    let invite = alice.request(
        "INVITE",
        "sip:5550160@example.com",
        "sip:5550160@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    assert!(out.to_ua(&service).is_empty(), "{}", out.dump());
}

#[test]
fn without_the_service_unassigned_numbers_are_routed() {
    let mut h = harness();
    let gw1 = Ua::new("gw1", "", GW1);
    let mut alice = h.ua("alice", "192.0.2.11:5060");
    let invite = alice.request(
        "INVITE",
        "sip:5550155@example.com",
        "sip:5550155@example.com",
    );
    let (_, out) = h.send_authed(&mut alice, invite);
    assert_eq!(out.to_ua(&gw1).len(), 1, "{}", out.dump());
}
