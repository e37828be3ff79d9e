//! Presence agent (RFC 3856, RFC 3903, RFC 6665), as watchers and presentities see it.

mod common;

use common::*;
use confab_presence::Availability;

fn pidf(entity: &str, basic: &str, note: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\">\
         <tuple id=\"t1\"><status><basic>{basic}</basic></status><note>{note}</note></tuple></presence>"
    )
}

/// The watcher's side of a subscription dialog.
struct Subscription {
    subscribe: Req,
    ok: Sent,
    /// The last NOTIFY received.
    notify: Sent,
}

fn response_and_notify(out: &[Sent], ua: &Ua) -> (Sent, Sent) {
    let mine = out.to_ua(ua);
    assert_eq!(
        mine.len(),
        2,
        "expected a response and a NOTIFY:\n{}",
        out.dump()
    );
    assert!(
        !mine[0].msg.is_request(),
        "the response comes first:\n{}",
        out.dump()
    );
    assert_eq!(mine[1].method(), Some("NOTIFY"));
    (mine[0].clone(), mine[1].clone())
}

fn subscribe(h: &mut Harness, watcher: &mut Ua, target: &Ua, expires: u32) -> Subscription {
    let req = watcher
        .request("SUBSCRIBE", &target.uri(), &target.uri())
        .header("Event", "presence")
        .header("Accept", "application/pidf+xml")
        .header("Expires", expires.to_string());
    let (subscribe, out) = h.send_authed(watcher, req);
    let (ok, notify) = response_and_notify(&out, watcher);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    Subscription {
        subscribe,
        ok,
        notify,
    }
}

/// An in-dialog SUBSCRIBE (refresh, or unsubscribe with `expires` 0).
fn resubscribe(
    h: &mut Harness,
    watcher: &mut Ua,
    sub: &Subscription,
    cseq: u32,
    expires: u32,
) -> Vec<Sent> {
    let via = watcher.via();
    let target = uri_of(sub.ok.header("Contact").unwrap_or_default()).to_owned();
    let req = Req {
        method: "SUBSCRIBE".into(),
        ruri: target,
        headers: Vec::new(),
        body: None,
    }
    .header("Via", via)
    .header("Max-Forwards", "70")
    .header(
        "From",
        sub.subscribe.get("From").unwrap_or_default().to_owned(),
    )
    .header("To", sub.ok.header("To").unwrap_or_default().to_owned())
    .header(
        "Call-ID",
        sub.subscribe.get("Call-ID").unwrap_or_default().to_owned(),
    )
    .header("CSeq", format!("{cseq} SUBSCRIBE"))
    .header("Contact", format!("<{}>", watcher.contact_uri()))
    .header("Event", "presence")
    .header("Expires", expires.to_string());
    h.send(watcher, &req)
}

fn publish_req(ua: &mut Ua, expires: u32) -> Req {
    let uri = ua.uri();
    ua.request("PUBLISH", &uri, &uri)
        .without("Contact")
        .header("Event", "presence")
        .header("Expires", expires.to_string())
}

fn notifies(out: &[Sent], ua: &Ua) -> Vec<Sent> {
    out.to_ua(ua)
        .into_iter()
        .filter(|s| s.method() == Some("NOTIFY"))
        .collect()
}

#[test]
fn subscribe_is_challenged_then_accepted_with_an_initial_notify() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob
        .request("SUBSCRIBE", &alice.uri(), &alice.uri())
        .header("Event", "presence")
        .header("Expires", "600");
    let ch = h.send(&bob, &req).one_to(&bob);
    assert_eq!(ch.status(), Some(407));
    let req = bob.authorize(&req, &ch.msg);
    let out = h.send(&bob, &req);
    let (ok, notify) = response_and_notify(&out, &bob);
    assert_eq!(out.len(), 2, "{}", out.dump());

    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header("Expires"), Some("600"));
    let our_tag = ok.msg.to_tag().unwrap_or_default().to_owned();
    assert!(!our_tag.is_empty());
    assert_eq!(ok.header("Contact"), Some("<sip:192.0.2.1:5060>"));

    assert_eq!(notify.dest, bob.dest());
    assert_eq!(notify.msg.request_uri(), Some(bob.contact_uri().as_str()));
    assert!(
        notify
            .msg
            .top_via_str()
            .starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcf")
    );
    assert_eq!(notify.msg.from_tag(), Some(our_tag.as_str()));
    assert_eq!(
        uri_of(notify.header("From").unwrap_or_default()),
        alice.uri()
    );
    assert_eq!(notify.header("To"), req.get("From"));
    assert_eq!(notify.msg.call_id(), req.get("Call-ID").unwrap_or_default());
    assert_eq!(notify.msg.cseq().0, 1);
    assert_eq!(notify.header("Event"), Some("presence"));
    assert_eq!(
        notify.header("Subscription-State"),
        Some("active;expires=600")
    );
    assert_eq!(notify.msg.content_type(), Some("application/pidf+xml"));
    let body = notify.body();
    assert!(body.contains("entity=\"sip:alice@example.com\""), "{body}");
    assert!(
        body.contains("<basic>closed</basic>"),
        "alice is offline: {body}"
    );
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 1);
    assert_eq!(h.metric(|m| &m.presence_notifies_sent_total), 1);

    // The watcher's 200 for the NOTIFY is consumed quietly.
    let out = h.answer(&bob, &notify, 200);
    assert!(out.is_empty(), "{}", out.dump());
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 1);
}

#[test]
fn registration_and_publication_are_notified() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 600);
    h.answer(&bob, &sub.notify, 200);
    h.secs(5);

    // alice signs in: bob sees her online.
    let out = h.register_out(&mut alice, 600);
    let n = notifies(&out, &bob);
    assert_eq!(n.len(), 1, "{}", out.dump());
    assert!(
        n[0].body().contains("<basic>open</basic>"),
        "{}",
        n[0].body()
    );
    assert_eq!(
        n[0].header("Subscription-State"),
        Some("active;expires=595")
    );
    assert_eq!(n[0].msg.cseq().0, 2);
    assert_eq!(n[0].msg.call_id(), sub.notify.msg.call_id());
    assert_eq!(n[0].msg.from_tag(), sub.notify.msg.from_tag());
    h.answer(&bob, &n[0], 200);
    assert_eq!(
        h.core.presence_of("alice@example.com").availability,
        Availability::Online
    );

    // alice publishes a note.
    let req = publish_req(&mut alice, 600).body(
        "application/pidf+xml",
        pidf(&alice.uri(), "open", "In a meeting"),
    );
    let (_, out) = h.send_authed(&mut alice, req);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    let etag = ok.header("SIP-ETag").unwrap_or_default().to_owned();
    assert!(!etag.is_empty());
    assert_eq!(ok.header("Expires"), Some("600"));
    let n = notifies(&out, &bob);
    assert_eq!(n.len(), 1, "{}", out.dump());
    assert!(
        n[0].body().contains("<note>In a meeting</note>"),
        "{}",
        n[0].body()
    );
    assert_eq!(n[0].msg.cseq().0, 3);
    h.answer(&bob, &n[0], 200);
    assert_eq!(
        h.core.presence_of("alice@example.com").note.as_deref(),
        Some("In a meeting")
    );
    assert_eq!(h.metric(|m| &m.presence_publications_total), 1);

    // A refresh without a body: new entity-tag, nothing changes for bob.
    let req = publish_req(&mut alice, 600).header("SIP-If-Match", etag.clone());
    let (_, out) = h.send_authed(&mut alice, req);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    let etag2 = ok.header("SIP-ETag").unwrap_or_default().to_owned();
    assert!(!etag2.is_empty());
    assert_ne!(etag2, etag);
    assert!(notifies(&out, &bob).is_empty(), "{}", out.dump());

    // The old tag is gone now.
    let req = publish_req(&mut alice, 600).header("SIP-If-Match", etag);
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(412));
    assert_eq!(r.reason(), "entity-tag does not match a live publication");

    // A modification with the current tag changes the note.
    let req = publish_req(&mut alice, 600)
        .header("SIP-If-Match", etag2.clone())
        .body(
            "application/pidf+xml",
            pidf(&alice.uri(), "open", "Back soon"),
        );
    let (_, out) = h.send_authed(&mut alice, req);
    let ok = out.one_to(&alice);
    assert_eq!(ok.status(), Some(200));
    let etag3 = ok.header("SIP-ETag").unwrap_or_default().to_owned();
    let n = notifies(&out, &bob);
    assert_eq!(n.len(), 1);
    assert!(n[0].body().contains("<note>Back soon</note>"));
    h.answer(&bob, &n[0], 200);

    // Removing the publication: back to plain "registered".
    let req = publish_req(&mut alice, 0).header("SIP-If-Match", etag3);
    let (_, out) = h.send_authed(&mut alice, req);
    assert_eq!(out.one_to(&alice).status(), Some(200));
    let n = notifies(&out, &bob);
    assert_eq!(n.len(), 1);
    assert!(!n[0].body().contains("<note>"), "{}", n[0].body());
    assert!(n[0].body().contains("<basic>open</basic>"));
}

#[test]
fn publish_with_unknown_etag_is_412() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let req = publish_req(&mut alice, 600).header("SIP-If-Match", "no-such-tag");
    let (_, out) = h.send_authed(&mut alice, req);
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(412));
    assert_eq!(r.reason(), "entity-tag does not match a live publication");
}

#[test]
fn publish_errors() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    type Case = (Req, u16, Option<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        // No body on an initial publication.
        (publish_req(&mut alice, 600), 400, None),
        (
            publish_req(&mut alice, 600).body("text/plain", "online"),
            415,
            Some(("Accept", "application/pidf+xml")),
        ),
        (
            publish_req(&mut alice, 600).body("application/pidf+xml", "<not-xml"),
            400,
            None,
        ),
        (
            publish_req(&mut alice, 600)
                .set("Event", "dialog")
                .body("application/pidf+xml", pidf(&alice.uri(), "open", "")),
            489,
            Some(("Allow-Events", "presence")),
        ),
        (
            publish_req(&mut alice, 10)
                .body("application/pidf+xml", pidf(&alice.uri(), "open", "")),
            423,
            Some(("Min-Expires", "60")),
        ),
    ];
    for (req, code, header) in cases {
        let (_, out) = h.send_authed(&mut alice, req);
        let r = out.one_to(&alice);
        assert_eq!(r.status(), Some(code), "{}", r.text());
        if let Some((name, value)) = header {
            assert_eq!(r.header(name), Some(value), "{}", r.text());
        }
    }
}

#[test]
fn publish_for_someone_else_is_403() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob
        .request("PUBLISH", &alice.uri(), &alice.uri())
        .header("Event", "presence")
        .header("Expires", "600")
        .body(
            "application/pidf+xml",
            pidf(&alice.uri(), "closed", "gone fishing"),
        );
    let (_, out) = h.send_authed(&mut bob, req);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Only the user may publish their own presence");
    assert_eq!(h.core.presence_of("alice@example.com").note, None);
}

#[test]
fn unsubscribe_ends_with_a_terminated_notify() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 600);
    h.answer(&bob, &sub.notify, 200);

    // A refresh first: 200 and a NOTIFY with the new expiry.
    h.secs(100);
    let out = resubscribe(&mut h, &mut bob, &sub, sub.subscribe.cseq() + 1, 600);
    let (ok, notify) = response_and_notify(&out, &bob);
    assert_eq!(ok.status(), Some(200), "{}", out.dump());
    assert_eq!(ok.header("Expires"), Some("600"));
    assert_eq!(ok.msg.to_tag(), sub.ok.msg.to_tag());
    assert_eq!(
        notify.header("Subscription-State"),
        Some("active;expires=600")
    );
    h.answer(&bob, &notify, 200);

    let out = resubscribe(&mut h, &mut bob, &sub, sub.subscribe.cseq() + 2, 0);
    let (ok, notify) = response_and_notify(&out, &bob);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header("Expires"), Some("0"));
    let state = notify
        .header("Subscription-State")
        .unwrap_or_default()
        .to_owned();
    assert!(state.starts_with("terminated"), "{state}");
    assert_eq!(notify.msg.call_id(), sub.notify.msg.call_id());
    h.answer(&bob, &notify, 200);
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);

    // No more NOTIFYs for bob.
    let out = h.register_out(&mut alice, 600);
    assert!(notifies(&out, &bob).is_empty(), "{}", out.dump());
    // And the dialog is gone: another in-dialog SUBSCRIBE is not ours any more.
    let out = resubscribe(&mut h, &mut bob, &sub, sub.subscribe.cseq() + 3, 600);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(481), "{}", out.dump());
}

#[test]
fn subscription_expires_with_a_terminated_notify() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 120);
    assert_eq!(sub.ok.header("Expires"), Some("120"));
    h.answer(&bob, &sub.notify, 200);
    let out = h.secs(119);
    assert!(out.is_empty(), "{}", out.dump());
    let out = h.secs(2);
    let n = notifies(&out, &bob);
    assert!(!n.is_empty(), "{}", out.dump());
    // (Retransmissions of the same NOTIFY until bob answers.)
    assert!(
        n.iter().all(|x| x.msg.as_bytes() == n[0].msg.as_bytes()),
        "{}",
        out.dump()
    );
    assert_eq!(
        n[0].header("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert!(n[0].body().is_empty());
    h.answer(&bob, &n[0], 200);
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
    let out = h.register_out(&mut alice, 600);
    assert!(notifies(&out, &bob).is_empty(), "{}", out.dump());
}

#[test]
fn subscription_expiry_is_capped() {
    let mut h = Harness::with(|c| c.max_subscription_expires = 300);
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 7200);
    assert_eq!(sub.ok.header("Expires"), Some("300"));
    assert_eq!(
        sub.notify.header("Subscription-State"),
        Some("active;expires=300")
    );
}

#[test]
fn watcher_answering_481_ends_the_subscription() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 600);
    let out = h.answer(&bob, &sub.notify, 481);
    assert!(out.is_empty(), "{}", out.dump());
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
    let out = h.register_out(&mut alice, 600);
    assert!(notifies(&out, &bob).is_empty(), "{}", out.dump());
}

#[test]
fn unanswered_notify_ends_the_subscription() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let sub = subscribe(&mut h, &mut bob, &alice, 600);
    // bob is gone: the NOTIFY is retransmitted, then times out.
    let out = h.secs(40);
    assert!(!out.is_empty());
    assert!(
        out.iter()
            .all(|s| s.msg.as_bytes() == sub.notify.msg.as_bytes()),
        "{}",
        out.dump()
    );
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
    let out = h.register_out(&mut alice, 600);
    assert!(notifies(&out, &bob).is_empty(), "{}", out.dump());
}

#[test]
fn several_watchers_are_all_notified() {
    let mut h = Harness::new();
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let mut carol = h.ua("carol", "192.0.2.30:5060");
    let s1 = subscribe(&mut h, &mut bob, &alice, 3600);
    let s2 = subscribe(&mut h, &mut carol, &alice, 3600);
    h.answer(&bob, &s1.notify, 200);
    h.answer(&carol, &s2.notify, 200);
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 2);
    let out = h.register_out(&mut alice, 120);
    for w in [&bob, &carol] {
        let n = notifies(&out, w);
        assert_eq!(n.len(), 1, "{}", out.dump());
        h.answer(w, &n[0], 200);
    }
    // alice's registration expiring takes her offline for both.
    let out = h.secs(121);
    let nb = notifies(&out, &bob);
    assert!(!nb.is_empty(), "{}", out.dump());
    assert!(nb[0].body().contains("<basic>closed</basic>"));
    assert!(!notifies(&out, &carol).is_empty());
}

#[test]
fn self_subscription_and_visibility_policy() {
    let mut h = Harness::with(|c| c.presence_same_domain_visible = false);
    let mut alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob
        .request("SUBSCRIBE", &alice.uri(), &alice.uri())
        .header("Event", "presence")
        .header("Expires", "600");
    let (_, out) = h.send_authed(&mut bob, req);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), "Presence of this user is not visible to you");
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
    // Watching oneself is always allowed.
    let me = alice.clone();
    let sub = subscribe(&mut h, &mut alice, &me, 600);
    assert_eq!(
        sub.notify.header("Subscription-State"),
        Some("active;expires=600")
    );
}

#[test]
fn subscribe_without_contact_is_400() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob
        .request("SUBSCRIBE", &alice.uri(), &alice.uri())
        .without("Contact")
        .header("Event", "presence");
    let (_, out) = h.send_authed(&mut bob, req);
    let r = out.one_to(&bob);
    assert_eq!(r.status(), Some(400));
    assert_eq!(r.reason(), "SUBSCRIBE without Contact");
}

#[test]
fn subscribe_with_a_malformed_contact_is_400() {
    let mut h = Harness::new();
    let alice = h.ua("alice", "192.0.2.10:5060");
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    for contact in ["*", "<mailto:bob@example.com>"] {
        let req = bob
            .request("SUBSCRIBE", &alice.uri(), &alice.uri())
            .set("Contact", contact)
            .header("Event", "presence");
        let (_, out) = h.send_authed(&mut bob, req);
        let r = out.one_to(&bob);
        assert_eq!(r.status(), Some(400), "{contact}");
        assert_eq!(r.reason(), "Malformed Contact URI");
    }
    assert_eq!(h.metric(|m| &m.presence_subscriptions), 0);
}

#[test]
fn subscribe_to_unknown_user_is_404() {
    let mut h = Harness::new();
    let mut bob = h.ua("bob", "192.0.2.20:5060");
    let req = bob
        .request(
            "SUBSCRIBE",
            "sip:nobody@example.com",
            "sip:nobody@example.com",
        )
        .header("Event", "presence");
    let (_, out) = h.send_authed(&mut bob, req);
    assert_eq!(out.one_to(&bob).status(), Some(404));
}
