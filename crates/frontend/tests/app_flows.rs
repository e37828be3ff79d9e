//! Requests of an application behind the front end (the Persistent Chat service)
//! towards a client reach the client over the connection the dialog was created on
//! (the flow named in the front end's signed Record-Route), whatever the client's
//! Contact says: a Lync client (pidgin-sipe) puts
//! `<sip:user@domain:port;maddr=ip;transport=tcp>` there, which names no registered
//! binding and no address to send to.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

mod common;

use common::*;
use confab_frontend::apps::AppRoute;
use confab_frontend::{Dest, Transport};
use confab_sip::HeaderName;

const CHAT: &str = "127.0.0.1:5070";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=message 5060 sip null\r\n";

fn harness() -> Harness {
    Harness::with(|c| {
        c.trusted_peers = vec![CHAT.parse().unwrap()];
        c.app_routes = vec![AppRoute {
            uri: "sip:chatsrv@example.com".into(),
            dest: Dest {
                transport: Transport::Tcp,
                addr: CHAT.parse().unwrap(),
                conn: None,
            },
        }];
    })
}

/// `ua` (over TCP) INVITEs the chat server URI with a SIPE-style Contact; the
/// chat service answers 200. Returns the chat service's view of the dialog: the
/// Record-Route it saw, the client's From and the Call-ID.
fn chat_dialog(h: &mut Harness, ua: &mut Ua, chat: &Ua) -> (Vec<String>, String, String) {
    let sipe_contact = format!(
        "<sip:{}@example.com:{};maddr={};transport=tcp>;proxy=replace",
        ua.user,
        ua.addr.port(),
        ua.addr.ip()
    );
    let invite = ua
        .request(
            "INVITE",
            "sip:chatsrv@example.com",
            "sip:chatsrv@example.com",
        )
        .set("Contact", sipe_contact)
        .body("application/sdp", SDP);
    let (invite, out) = h.send_authed(ua, invite);
    let fwd = out.one_to(chat);
    assert_eq!(fwd.method(), Some("INVITE"), "{}", out.dump());
    let rr = fwd.headers(HeaderName::RecordRoute);
    assert!(!rr.is_empty(), "{}", out.dump());
    let out = h.answer(chat, &fwd, 200);
    let ok = out.one_to(ua);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    (
        rr,
        invite.get("From").unwrap().to_owned(),
        invite.get("Call-ID").unwrap().to_owned(),
    )
}

/// The chat service's INFO in the dialog, as `send_info` builds it: Request-URI =
/// the client's Contact, Route = the Record-Route it saw.
fn chat_info(chat: &mut Ua, ruri: &str, rr: &[String], to: &str, call_id: &str, n: u32) -> Req {
    let mut info = Req {
        method: "INFO".into(),
        ruri: ruri.to_owned(),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", chat.via());
    for r in rr {
        info = info.header("Route", r.clone());
    }
    info.header("Max-Forwards", "70")
        .header(
            "From",
            format!("<sip:chatsrv@example.com>;tag={}-1270015070", chat.tag),
        )
        .header("To", to)
        .header("Call-ID", call_id)
        .header("CSeq", format!("{n} INFO"))
        .body("text/plain", format!("<xccos ver=\"1\" envid=\"{n}\"/>"))
}

#[test]
fn chat_infos_reach_each_client_over_its_own_flow() {
    let mut h = harness();
    let mut alice = h.ua("alice", "192.0.2.10:40001").tcp(11);
    let mut bob = h.ua("bob", "192.0.2.20:40002").tcp(12);
    h.register(&mut alice, 600);
    h.register(&mut bob, 600);
    let mut chat = Ua::new("chat", "x", CHAT).tcp(99);

    let (a_rr, a_from, a_cid) = chat_dialog(&mut h, &mut alice, &chat);
    let (b_rr, b_from, b_cid) = chat_dialog(&mut h, &mut bob, &chat);

    for n in 1..=3 {
        for (ua, rr, from, cid) in [
            (&alice, &a_rr, &a_from, &a_cid),
            (&bob, &b_rr, &b_from, &b_cid),
        ] {
            let ruri = format!(
                "sip:{}@example.com:{};maddr={};transport=tcp",
                ua.user,
                ua.addr.port(),
                ua.addr.ip()
            );
            let info = chat_info(&mut chat, &ruri, rr, from, cid, n);
            let out = h.send(&chat, &info);
            let got = out.to_ua(ua);
            assert_eq!(got.len(), 1, "INFO {n} for {}:\n{}", ua.user, out.dump());
            assert_eq!(got[0].method(), Some("INFO"));
            assert_eq!(got[0].dest.conn, ua.conn, "over the dialog's flow");
            assert_eq!(got[0].msg.call_id(), cid.as_str());
            // Only to that client.
            assert_eq!(out.len(), 1, "{}", out.dump());
        }
    }
}

#[test]
fn the_dialog_flow_wins_over_a_request_uri_naming_another_binding() {
    let mut h = harness();
    // alice signs in twice (two connections); the chat dialog is on the second.
    let mut first = h.ua("alice", "192.0.2.10:40001").tcp(11);
    let mut second = h.ua("alice", "192.0.2.11:40009").tcp(12);
    h.register(&mut first, 600);
    h.register(&mut second, 600);
    let mut chat = Ua::new("chat", "x", CHAT).tcp(99);
    let (rr, from, cid) = chat_dialog(&mut h, &mut second, &chat);
    // A Request-URI naming the first connection's binding.
    let info = chat_info(&mut chat, &first.contact_uri(), &rr, &from, &cid, 1);
    let out = h.send(&chat, &info);
    assert!(out.to_ua(&first).is_empty(), "{}", out.dump());
    assert_eq!(out.one_to(&second).dest.conn, second.conn);
}

#[test]
fn the_flow_is_only_used_towards_the_caller_and_cannot_be_forged() {
    let mut h = harness();
    let mut alice = h.ua("alice", "192.0.2.10:40001").tcp(11);
    let mut bob = h.ua("bob", "192.0.2.20:40002").tcp(12);
    h.register(&mut alice, 600);
    h.register(&mut bob, 600);
    let mut chat = Ua::new("chat", "x", CHAT).tcp(99);
    let (rr, from, cid) = chat_dialog(&mut h, &mut alice, &chat);
    // The flow in the token pointed at bob's connection: the MAC no longer
    // matches, so the route is not ours and alice's Contact is not routable.
    let forged: Vec<String> = rr
        .iter()
        .map(|r| r.replacen(".tcp.11.", ".tcp.12.", 1))
        .collect();
    assert_ne!(forged, rr, "the Record-Route names the flow: {rr:?}");
    let ruri = "sip:alice@example.com:40001;maddr=192.0.2.10;transport=tcp";
    let info = chat_info(&mut chat, ruri, &forged, &from, &cid, 1);
    let out = h.send(&chat, &info);
    assert!(out.to_ua(&bob).is_empty(), "{}", out.dump());
    assert!(out.to_ua(&alice).is_empty(), "{}", out.dump());
}
