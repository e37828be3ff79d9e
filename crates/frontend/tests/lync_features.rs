//! Lync features a client uses after sign-in, as the client sees them: the roaming
//! contact list (SUBSCRIBE + SOAP SERVICE edits, acknowledged only after the store
//! saved them), in-band provisioning, and category presence (SERVICE publication,
//! batched SUBSCRIBE, NOTIFY/BENOTIFY), including what a PIDF watcher sees of a
//! Lync user. These requests are authenticated with digest here (the NTLM
//! sign-in itself is covered by `lync_signin.rs` and the real-client tests).

mod common;

use common::*;
use confab_frontend::StoreRequest;
use confab_frontend::contacts::{Contact, ContactGroup, ContactList};

const SOAP_NS: &str = "http://schemas.microsoft.com/winrtc/2002/11/sip";

fn soap(op: &str, inner: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:m=\"{SOAP_NS}\"><s:Body><m:{op}>{inner}</m:{op}></s:Body></s:Envelope>"
    )
}

fn set_contact(uri: &str, groups: &str, delta: u64) -> String {
    soap(
        "setContact",
        &format!(
            "<m:displayName>{uri}</m:displayName><m:groups>{groups}</m:groups><m:subscribed>true</m:subscribed><m:URI>{uri}</m:URI><m:externalURI /><m:deltaNum>{delta}</m:deltaNum>"
        ),
    )
}

/// A TCP user agent of a known user, registered.
fn signed_in(h: &mut Harness, user: &str, port: u16, conn: u64) -> Ua {
    let mut ua = h.ua(user, &format!("192.0.2.{conn}:{port}")).tcp(conn);
    h.register(&mut ua, 3600);
    ua
}

/// SUBSCRIBE to one's own address for a Lync event package; returns the 200 and
/// the NOTIFYs/BENOTIFYs that came with it.
fn self_subscribe(
    h: &mut Harness,
    ua: &mut Ua,
    event: &str,
    body: Option<(&str, String)>,
) -> (Sent, Vec<Sent>) {
    let uri = ua.uri();
    let mut req = ua
        .request("SUBSCRIBE", &uri, &uri)
        .header("Event", event)
        .header("Supported", "ms-benotify")
        .header("Supported", "ms-piggyback-first-notify");
    if let Some((ct, b)) = body {
        req = req.header("Require", "adhoclist, categoryList").body(ct, b);
    }
    let (_, out) = h.send_authed(ua, req);
    let mine = out.to_ua(ua);
    let ok = mine
        .iter()
        .find(|s| s.status().is_some())
        .cloned()
        .unwrap_or_else(|| panic!("no response:\n{}", out.dump()));
    let notes = mine.into_iter().filter(|s| s.msg.is_request()).collect();
    (ok, notes)
}

/// A SERVICE to one's own address; returns everything the core sent.
fn service(h: &mut Harness, ua: &mut Ua, content_type: &str, body: String) -> Vec<Sent> {
    let uri = ua.uri();
    let req = ua.request("SERVICE", &uri, &uri).body(content_type, body);
    h.send_authed(ua, req).1
}

/// Carries out the store requests the core made, with the given result.
fn store_answers(h: &mut Harness, ok: bool) -> Vec<ContactList> {
    let mut reqs = Vec::new();
    h.core.drain_store_requests(&mut reqs);
    let mut lists = Vec::new();
    for r in reqs {
        match r {
            StoreRequest::SaveContacts { op, list } => {
                lists.push(list);
                let res = if ok { Ok(()) } else { Err("disk full".into()) };
                h.core.on_contacts_saved(op, res);
            }
        }
    }
    lists
}

fn categories_xml(uri: &str, pubs: &str) -> String {
    format!(
        "<publish xmlns=\"http://schemas.microsoft.com/2006/09/sip/rich-presence\"><publications uri=\"{uri}\">{pubs}</publications></publish>"
    )
}

fn user_state(avail: u32) -> String {
    format!(
        "<publication categoryName=\"state\" instance=\"536870912\" container=\"2\" version=\"0\" expireType=\"static\"><state xmlns=\"http://schemas.microsoft.com/2006/09/sip/state\" manual=\"true\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"userState\"><availability>{avail}</availability><endpointLocation/></state></publication>"
    )
}

fn note(text: &str) -> String {
    format!(
        "<publication categoryName=\"note\" instance=\"0\" container=\"200\" version=\"0\" expireType=\"static\"><note xmlns=\"http://schemas.microsoft.com/2006/09/sip/note\"><body type=\"personal\" uri=\"\">{text}</body></note></publication>"
    )
}

fn batch(owner: &str, resources: &[&str]) -> String {
    let res: String = resources
        .iter()
        .map(|r| format!("<resource uri=\"{r}\"/>"))
        .collect();
    format!(
        "<batchSub xmlns=\"http://schemas.microsoft.com/2006/01/sip/batch-subscribe\" uri=\"{owner}\" name=\"\"><action name=\"subscribe\" id=\"63792024\"><adhocList>{res}</adhocList><categoryList xmlns=\"http://schemas.microsoft.com/2006/09/sip/categorylist\"><category name=\"note\"/><category name=\"state\"/></categoryList></action></batchSub>"
    )
}

fn availability_in(body: &str) -> Option<u32> {
    let start = body.find("<availability>")? + "<availability>".len();
    let end = body[start..].find('<')? + start;
    body[start..end].parse().ok()
}

#[test]
fn contact_list_edits_are_acknowledged_after_the_store_and_pushed_to_every_endpoint() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    // A second endpoint of alice's, also following her list.
    let mut alice2 = h.ua("alice", "192.0.2.2:5071").tcp(2);
    alice2.tag = "alice2-tag".into();
    h.register(&mut alice2, 3600);

    let (ok, notes) = self_subscribe(&mut h, &mut alice, "vnd-microsoft-roaming-contacts", None);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(notes.len(), 1);
    let first = notes[0].body();
    assert!(first.contains("<contactList"), "{first}");
    assert!(!first.contains("bob@"), "{first}");
    let (ok2, _) = self_subscribe(&mut h, &mut alice2, "vnd-microsoft-roaming-contacts", None);
    assert_eq!(ok2.status(), Some(200));

    // addGroup: no answer until the store has it, then the group id.
    let out = service(
        &mut h,
        &mut alice,
        "application/SOAP+xml",
        soap(
            "addGroup",
            "<m:name>Team</m:name><m:externalURI /><m:deltaNum>1</m:deltaNum>",
        ),
    );
    assert!(
        out.to_ua(&alice).iter().all(|s| s.status() != Some(200)),
        "{}",
        out.dump()
    );
    let saved = store_answers(&mut h, true);
    assert_eq!(saved.len(), 1);
    // The default group the client was shown exists for real, so the new
    // group gets a fresh id.
    let names: Vec<&str> = saved[0].groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["~", "Team"]);
    let gid = saved[0].groups[1].id;
    assert_ne!(gid, saved[0].groups[0].id);
    let out = h.outputs();
    let ok = out
        .to_ua(&alice)
        .into_iter()
        .find(|s| s.status() == Some(200))
        .unwrap_or_else(|| panic!("no 200:\n{}", out.dump()));
    assert!(ok.body().contains(&format!("<m:groupID>{gid}</m:groupID>")));

    // setContact bob in that group: stored, then both endpoints get the new list.
    service(
        &mut h,
        &mut alice,
        "application/SOAP+xml",
        set_contact("sip:bob@example.com", &gid.to_string(), 2),
    );
    let saved = store_answers(&mut h, true);
    assert_eq!(
        saved[0].contacts,
        vec![Contact {
            uri: "bob@example.com".into(),
            name: String::new(),
            groups: vec![gid],
            subscribed: true,
        }]
    );
    let out = h.outputs();
    assert!(out.to_ua(&alice).iter().any(|s| s.status() == Some(200)));
    for ua in [&alice, &alice2] {
        let got = out
            .to_ua(ua)
            .into_iter()
            .filter(|s| s.msg.is_request())
            .map(|s| s.body())
            .find(|b| b.contains("contactList"))
            .unwrap_or_else(|| panic!("no list pushed to {}:\n{}", ua.addr, out.dump()));
        assert!(got.contains("uri=\"bob@example.com\""), "{got}");
        assert!(got.contains("name=\"Team\""), "{got}");
    }
    assert_eq!(
        h.core
            .contact_list("alice@example.com")
            .map(|l| l.contacts.len()),
        Some(1)
    );

    // A failed save is reported to the client, not acknowledged.
    service(
        &mut h,
        &mut alice,
        "application/SOAP+xml",
        set_contact("sip:carol@example.com", "", 3),
    );
    store_answers(&mut h, false);
    let out = h.outputs();
    let r = out.one_to(&alice);
    assert_eq!(r.status(), Some(500), "{}", out.dump());

    // Bad SOAP is refused with a reason.
    let out = service(&mut h, &mut alice, "application/SOAP+xml", "<nope".into());
    assert_eq!(out.one_to(&alice).status(), Some(400), "{}", out.dump());
}

#[test]
fn a_list_changed_in_the_store_reaches_the_client_and_stale_copies_are_ignored() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    self_subscribe(&mut h, &mut alice, "vnd-microsoft-roaming-contacts", None);
    let list = |delta: u64, contacts: &[&str]| ContactList {
        owner: "alice@example.com".into(),
        delta_num: delta,
        groups: vec![ContactGroup {
            id: 1,
            name: "~".into(),
        }],
        contacts: contacts
            .iter()
            .map(|c| Contact {
                uri: (*c).into(),
                name: String::new(),
                groups: vec![1],
                subscribed: true,
            })
            .collect(),
    };
    h.core.load_contact_list(list(5, &["bob@example.com"]));
    let out = h.outputs();
    let n = out.to_ua(&alice);
    assert_eq!(n.len(), 1, "{}", out.dump());
    assert!(n[0].body().contains("bob@example.com"));
    // Older than what we have: ignored.
    h.core.load_contact_list(list(4, &[]));
    assert!(h.outputs().is_empty());
    // The same again: nothing to tell.
    h.core.load_contact_list(list(5, &["bob@example.com"]));
    assert!(h.outputs().is_empty());
}

#[test]
fn provisioning_is_answered_once_and_terminated() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    let (ok, notes) = self_subscribe(&mut h, &mut alice, "vnd-microsoft-provisioning-v2", None);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].method(), Some("NOTIFY"));
    assert!(
        notes[0]
            .msg
            .header(confab_sip::HeaderName::SubscriptionState)
            .is_some_and(|s| s.starts_with("terminated"))
    );
    assert!(notes[0].body().contains("provisionGroupList"));
}

#[test]
fn category_presence_reaches_lync_and_pidf_watchers() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    let mut bob = signed_in(&mut h, "bob", 5072, 3);
    let mut carol = h.ua("carol", "192.0.2.5:5060");
    h.register(&mut carol, 3600);

    // alice: one batched subscription for bob and carol.
    let (ok, notes) = self_subscribe(
        &mut h,
        &mut alice,
        "presence",
        Some((
            "application/msrtc-adrl-categorylist+xml",
            batch(
                "sip:alice@example.com",
                &["sip:bob@example.com", "sip:carol@example.com"],
            ),
        )),
    );
    assert_eq!(ok.status(), Some(200));
    assert_eq!(notes.len(), 2, "one document per resource");
    assert_eq!(notes[0].method(), Some("NOTIFY"));
    assert_eq!(notes[1].method(), Some("BENOTIFY"));
    for (n, who) in notes
        .iter()
        .zip(["sip:bob@example.com", "sip:carol@example.com"])
    {
        let b = n.body();
        assert!(b.contains(&format!("uri=\"{who}\"")), "{b}");
        assert_eq!(availability_in(&b), Some(3500), "registered = online: {b}");
    }

    // carol (a SIMPLE client) watches bob with PIDF.
    let req = carol
        .request("SUBSCRIBE", &bob.uri(), &bob.uri())
        .header("Event", "presence")
        .header("Accept", "application/pidf+xml")
        .header("Expires", "600");
    let (_, out) = h.send_authed(&mut carol, req);
    assert!(
        out.to_ua(&carol)
            .iter()
            .any(|s| s.body().contains("<basic>open</basic>"))
    );

    // bob publishes Away with a note: alice gets it as categories, carol as PIDF.
    let out = service(
        &mut h,
        &mut bob,
        "application/msrtc-category-publish+xml",
        categories_xml(
            "sip:bob@example.com",
            &(user_state(15500) + &note("at lunch")),
        ),
    );
    assert_eq!(
        out.to_ua(&bob).first().and_then(|s| s.status()),
        Some(200),
        "{}",
        out.dump()
    );
    let to_alice: Vec<Sent> = out.to_ua(&alice);
    assert_eq!(to_alice.len(), 1, "{}", out.dump());
    assert_eq!(to_alice[0].method(), Some("BENOTIFY"));
    let b = to_alice[0].body();
    assert_eq!(availability_in(&b), Some(15500), "{b}");
    assert!(b.contains("at lunch"), "{b}");
    let to_carol = out.to_ua(&carol);
    assert_eq!(to_carol.len(), 1, "{}", out.dump());
    let pidf = to_carol[0].body();
    assert!(pidf.contains("at lunch"), "{pidf}");
    assert_eq!(
        h.core.presence_of("bob@example.com").availability,
        confab_presence::Availability::Away
    );

    // Back online.
    let out = service(
        &mut h,
        &mut bob,
        "application/msrtc-category-publish+xml",
        categories_xml("sip:bob@example.com", &user_state(3500)),
    );
    let b = out.to_ua(&alice)[0].body();
    assert_eq!(availability_in(&b), Some(3500), "{b}");

    // bob signs out: offline for alice, and his manual state is gone with him.
    let out = h.register_out(&mut bob, 0);
    let b = out.to_ua(&alice)[0].body();
    assert_eq!(availability_in(&b), Some(18500), "{b}");
    h.register(&mut bob, 3600);
    assert_eq!(
        h.core.presence_of("bob@example.com").availability,
        confab_presence::Availability::Online
    );
}

#[test]
fn roaming_self_and_acl_requests_are_accepted() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    let (ok, notes) = self_subscribe(&mut h, &mut alice, "vnd-microsoft-roaming-self", None);
    assert_eq!(ok.status(), Some(200));
    assert!(notes[0].body().contains("roamingData"));
    let out = service(
        &mut h,
        &mut alice,
        "application/msrtc-setcontainermembers+xml",
        "<setContainerMembers xmlns=\"http://schemas.microsoft.com/2006/09/sip/container-management\"><container id=\"200\" version=\"0\"><member action=\"add\" type=\"sameEnterprise\"/></container></setContainerMembers>".into(),
    );
    assert_eq!(out.one_to(&alice).status(), Some(200));
    let out = service(&mut h, &mut alice, "application/x-unknown", "x".into());
    assert_eq!(out.one_to(&alice).status(), Some(415));
}

#[test]
fn a_contact_added_later_joins_the_existing_batched_subscription() {
    let mut h = Harness::new();
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    signed_in(&mut h, "bob", 5072, 3);
    signed_in(&mut h, "carol", 5074, 4);
    let uri = alice.uri();
    let first = alice
        .request("SUBSCRIBE", &uri, &uri)
        .header("Event", "presence")
        .header("Supported", "ms-benotify")
        .header("Require", "adhoclist, categoryList")
        .body(
            "application/msrtc-adrl-categorylist+xml",
            batch(&uri, &["sip:bob@example.com"]),
        );
    let (sent, out) = h.send_authed(&mut alice, first);
    let ok = out
        .to_ua(&alice)
        .into_iter()
        .find(|s| s.status() == Some(200))
        .unwrap_or_else(|| panic!("{}", out.dump()));
    // SIPE's way: the same dialog, a body naming only the new contact.
    let via = alice.via();
    let again = Req {
        method: "SUBSCRIBE".into(),
        ruri: uri_of(ok.header("Contact").unwrap_or_default()).to_owned(),
        headers: Vec::new(),
        body: None,
    }
    .header("Via", via)
    .header("Max-Forwards", "70")
    .header("From", sent.get("From").unwrap_or_default().to_owned())
    .header("To", ok.header("To").unwrap_or_default().to_owned())
    .header(
        "Call-ID",
        sent.get("Call-ID").unwrap_or_default().to_owned(),
    )
    .header("CSeq", format!("{} SUBSCRIBE", sent.cseq() + 1))
    .header("Contact", format!("<{}>", alice.contact_uri()))
    .header("Event", "presence")
    .header("Require", "adhoclist, categoryList")
    .body(
        "application/msrtc-adrl-categorylist+xml",
        batch(&uri, &["sip:CAROL@example.com"]),
    );
    let out = h.send(&alice, &again);
    let docs: Vec<String> = out
        .to_ua(&alice)
        .into_iter()
        .filter(|s| s.msg.is_request())
        .map(|s| s.body())
        .collect();
    assert_eq!(
        docs.len(),
        1,
        "only the new contact is sent:\n{}",
        out.dump()
    );
    assert!(
        docs[0].contains("uri=\"sip:carol@example.com\""),
        "{}",
        docs[0]
    );
    // From now on carol's changes reach alice too.
    let mut carol2 = h.ua("carol", "192.0.2.9:5090").tcp(9);
    carol2.tag = "carol2".into();
    let out = h.register_out(&mut carol2, 0);
    assert!(out.to_ua(&alice).is_empty(), "carol still has an endpoint");
}

/// Persistent Chat policy for the provisioning test: bob only.
#[derive(Debug)]
struct BobOnly;

impl confab_frontend::ChatProvisioning for BobOnly {
    fn pool_uri(&self, user: &str) -> Option<String> {
        (user == "bob@example.com").then(|| "sip:ocschat@example.com".to_owned())
    }
}

/// Provisioning tells a user whose policy enables Persistent Chat where the chat
/// service is (Lync's `persistentChatConfiguration` group, read by pidgin-sipe),
/// and tells everyone else it is off.
#[test]
fn provisioning_tells_enabled_users_where_persistent_chat_is() {
    let mut h = Harness::with(|c| c.chat_provisioning = Some(std::sync::Arc::new(BobOnly)));
    let mut alice = signed_in(&mut h, "alice", 5070, 1);
    let mut bob = signed_in(&mut h, "bob", 5072, 3);
    let (_, notes) = self_subscribe(&mut h, &mut bob, "vnd-microsoft-provisioning-v2", None);
    let body = notes[0].body();
    assert!(
        body.contains(
            "<provisionGroup name=\"persistentChatConfiguration\"><propertyEntryList>\
             <property name=\"EnablePersistentChat\">true</property>\
             <property name=\"DefaultPersistentChatPoolUri\">sip:ocschat@example.com</property>"
        ),
        "{body}"
    );
    let (_, notes) = self_subscribe(&mut h, &mut alice, "vnd-microsoft-provisioning-v2", None);
    let body = notes[0].body();
    assert!(
        body.contains("<property name=\"EnablePersistentChat\">false</property>"),
        "{body}"
    );
    assert!(!body.contains("DefaultPersistentChatPoolUri"), "{body}");
}
