//! The sans-IO chat core driven like pidgin-sipe drives a Persistent Chat server
//! (through the front end, which adds P-Asserted-Identity and Record-Route), with no
//! sockets and no database: every test feeds SIP messages and reads what the core sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_chat::{ChatCore, CoreConfig, PoolScope, StoreRequest};
use confab_frontend::{ConnId, Dest, Output, Transport};
use confab_presence::xmltree::{Limits, Node, parse_tree};
use confab_sip::{HeaderName, Message, NameAddr};
use confab_store::{
    ChatCategory, ChatConfig, ChatDirectory, ChatPolicy, ChatPost, ChatRoom, PostState, Privacy,
    RoomType,
};

const DOMAIN: &str = "example.com";

fn fe() -> Dest {
    Dest {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5060".parse::<SocketAddr>().unwrap(),
        conn: Some(ConnId(7)),
    }
}

fn parse(s: &str) -> Message {
    Message::parse(Bytes::from(s.to_owned()), &confab_sip::Limits::default()).unwrap()
}

fn category(id: &str, allowed: &[&str], denied: &[&str]) -> ChatCategory {
    ChatCategory {
        id: id.into(),
        uri: format!("ma-cat://{DOMAIN}/{id}"),
        name: id.to_uppercase(),
        description: String::new(),
        allowed: allowed.iter().map(|s| s.to_string()).collect(),
        denied: denied.iter().map(|s| s.to_string()).collect(),
        creators: vec![],
        file_upload: false,
        chat_history: true,
        pool: String::new(),
    }
}

fn room(id: &str, name: &str, cat: &str, privacy: Privacy, members: &[&str]) -> ChatRoom {
    ChatRoom {
        id: id.into(),
        uri: format!("ma-chan://{DOMAIN}/{id}"),
        name: name.into(),
        description: format!("about {name} <&>"),
        category_id: cat.into(),
        privacy,
        room_type: RoomType::Normal,
        disabled: false,
        members: members.iter().map(|s| s.to_string()).collect(),
        managers: vec![],
        presenters: vec![],
        pool: String::new(),
    }
}

fn directory() -> ChatDirectory {
    let mut stage = room("stage", "Stage", "main", Privacy::Open, &["@example.com"]);
    stage.room_type = RoomType::Auditorium;
    stage.presenters = vec!["carol@example.com".into()];
    ChatDirectory {
        categories: vec![
            category("main", &["@example.com"], &["eve@example.com"]),
            category("walled", &["@example.com"], &["alice@example.com"]),
        ],
        rooms: vec![
            room("open1", "Lobby", "main", Privacy::Open, &[]),
            room(
                "closed1",
                "RoomOne",
                "main",
                Privacy::Closed,
                &["alice@example.com", "bob@example.com", "carol@example.com"],
            ),
            room(
                "secret1",
                "Hideout",
                "main",
                Privacy::Secret,
                &["bob@example.com"],
            ),
            room("wall1", "Legal", "walled", Privacy::Open, &[]),
            stage,
        ],
        policy: ChatPolicy {
            global: true,
            users: [("dave@example.com".to_owned(), false)]
                .into_iter()
                .collect(),
        },
        config: ChatConfig::default(),
    }
}

struct Harness {
    core: ChatCore,
    now: Instant,
    wall: i64,
}

/// One SIPE-like client: a dialog to the lookup URI, then one to the chat server.
struct Client {
    user: String,
    call_id: String,
    tag: String,
    remote_tag: String,
    cseq: u32,
    envid: u64,
}

#[derive(Debug)]
struct Sent {
    msg: Message,
    dest: Dest,
}

impl Sent {
    fn xccos(&self) -> Node {
        parse_tree(
            self.msg.body(),
            &Limits {
                max_bytes: 1 << 20,
                max_depth: 10,
                max_elements: 100_000,
            },
        )
        .unwrap()
    }
    /// The first child of the xccos body (rpl, ntc or grpchat).
    fn item(&self) -> Node {
        let mut x = self.xccos();
        assert_eq!(x.name, "xccos");
        x.children.remove(0)
    }
    fn to_user(&self) -> String {
        let to = self.msg.header(HeaderName::To).unwrap();
        NameAddr::parse(to).unwrap().parsed_uri().unwrap().aor()
    }
}

impl Harness {
    fn new() -> Harness {
        let mut core = ChatCore::new(CoreConfig::new(DOMAIN, "127.0.0.1:5041"), 42);
        core.apply_directory(directory(), vec![]);
        Harness {
            core,
            now: Instant::now(),
            wall: 1_704_067_200_000,
        }
    }

    fn feed(&mut self, m: Message) {
        self.core.on_message(m, fe(), self.now, self.wall);
    }

    fn out(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        self.core.drain_output(&mut out);
        out.into_iter()
            .map(|o| match o {
                Output::Send { dest, data } => Sent {
                    msg: Message::parse(data, &confab_sip::Limits::default()).unwrap(),
                    dest,
                },
                Output::Close { .. } => panic!("unexpected close"),
            })
            .collect()
    }

    fn store_requests(&mut self) -> Vec<StoreRequest> {
        let mut v = Vec::new();
        self.core.drain_store_requests(&mut v);
        v
    }

    fn invite(&mut self, user: &str, uri: &str, call_id: &str) -> Vec<Sent> {
        let m = parse(&format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKfe{call_id}\r\n\
             Via: SIP/2.0/TCP 10.0.0.9:5070;branch=z9hG4bKc{call_id}\r\n\
             Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:{user}>;tag=t{call_id}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{user}:5070;maddr=10.0.0.9;transport=tcp>;proxy=replace\r\n\
             P-Asserted-Identity: <sip:{user}>\r\n\
             Supported: ms-sender\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: 0\r\n\r\n"
        ));
        self.feed(m);
        self.out()
    }

    /// Discovery and connection as SIPE does it; returns the chat-server client.
    fn connect(&mut self, user: &str) -> Client {
        let lookup_cid = format!("lk-{user}");
        let out = self.invite(user, "sip:ocschat@example.com", &lookup_cid);
        assert_eq!(out.len(), 1);
        let ok = &out[0].msg;
        assert_eq!(ok.status(), Some(200));
        let remote_tag = ok.to_tag().unwrap().to_owned();
        let mut lookup = Client {
            user: user.into(),
            call_id: lookup_cid,
            tag: format!("tlk-{user}"),
            remote_tag,
            cseq: 1,
            envid: 1000,
        };
        lookup.tag = format!("t{}", lookup.call_id);
        let out = self.command(&mut lookup, "cmd:requri", "<data/>");
        let rpl = out.iter().find(|s| s.msg.is_request()).unwrap().item();
        assert_eq!(rpl.attr("id"), Some("rpl:requri"));
        let uri = rpl
            .child("data")
            .unwrap()
            .child("uib")
            .unwrap()
            .attr("uri")
            .unwrap()
            .to_owned();
        assert_eq!(uri, "sip:chatsrv@example.com");
        let bye = self.in_dialog(&mut lookup, "BYE", "", "");
        assert_eq!(bye[0].msg.status(), Some(200));

        let cid = format!("cs-{user}");
        let out = self.invite(user, &uri, &cid);
        assert_eq!(out[0].msg.status(), Some(200));
        Client {
            user: user.into(),
            tag: format!("t{cid}"),
            remote_tag: out[0].msg.to_tag().unwrap().to_owned(),
            call_id: cid,
            cseq: 1,
            envid: 2000,
        }
    }

    fn in_dialog(&mut self, c: &mut Client, method: &str, ctype: &str, body: &str) -> Vec<Sent> {
        c.cseq += 1;
        let ct = if ctype.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        let m = parse(&format!(
            "{method} sip:chatsrv@127.0.0.1:5041;transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKfe{}{}\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:{}>;tag={}\r\n\
             To: <sip:chatsrv@example.com>;tag={}\r\n\
             Call-ID: {}\r\n\
             CSeq: {} {method}\r\n\
             {ct}Content-Length: {}\r\n\r\n{body}",
            c.call_id,
            c.cseq,
            c.user,
            c.tag,
            c.remote_tag,
            c.call_id,
            c.cseq,
            body.len()
        ));
        self.feed(m);
        self.out()
    }

    fn command(&mut self, c: &mut Client, id: &str, data: &str) -> Vec<Sent> {
        c.envid += 1;
        let body = format!(
            "<xccos ver=\"1\" envid=\"{}\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"{id}\" seqid=\"1\">{data}</cmd></xccos>",
            c.envid
        );
        let out = self.in_dialog(c, "INFO", "text/plain", &body);
        let resp = out
            .iter()
            .find(|s| !s.msg.is_request())
            .expect("INFO answered");
        assert_eq!(
            resp.msg.status(),
            Some(200),
            "a command INFO is always answered 200"
        );
        out
    }

    /// The reply INFO for `c` in `out`.
    fn reply(out: &[Sent], c: &Client, id: &str) -> Node {
        let s = out
            .iter()
            .find(|s| {
                s.msg.is_request()
                    && s.msg.call_id() == c.call_id
                    && s.item().attr("id") == Some(id)
            })
            .unwrap_or_else(|| panic!("no {id} for {}", c.user));
        let item = s.item();
        let envid = item
            .child("commandid")
            .unwrap()
            .attr("envid")
            .unwrap()
            .to_owned();
        assert_eq!(
            envid,
            c.envid.to_string(),
            "commandid echoes the command's envid"
        );
        item
    }

    fn join(&mut self, c: &mut Client, room_id: &str) -> Vec<Sent> {
        self.command(
            c,
            "cmd:join",
            &format!("<data><chanid key=\"0\" domain=\"{DOMAIN}\" value=\"{room_id}\"/></data>"),
        )
    }

    fn post(&mut self, c: &mut Client, room_id: &str, text: &str) -> Vec<Sent> {
        c.envid += 1;
        let mut esc = String::new();
        confab_chat::xccos::text(&mut esc, text);
        let body = format!(
            "<xccos ver=\"1\" envid=\"{}\" xmlns=\"urn:parlano:xml:ns:xccos\"><grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://{DOMAIN}/{room_id}\" author=\"sip:{}\" ts=\"2024-01-01T00:00:00Z\"><chat>{esc}</chat></grpchat></xccos>",
            c.envid, c.user
        );
        self.in_dialog(c, "INFO", "text/plain", &body)
    }

    /// Posts and completes the store round trip; returns what the core sent after the save.
    fn post_saved(&mut self, c: &mut Client, room_id: &str, text: &str, id: i64) -> Vec<Sent> {
        let before = self.post(c, room_id, text);
        assert!(
            before.is_empty(),
            "nothing is answered or fanned out before the post is stored: {before:?}"
        );
        let reqs = self.store_requests();
        assert_eq!(reqs.len(), 1);
        let StoreRequest::SavePost {
            op, text: stored, ..
        } = &reqs[0];
        assert_eq!(stored, text, "stored unescaped, exactly as typed");
        self.core.on_post_saved(*op, Ok(id));
        self.out()
    }
}

/// A refused post's XCCOS reply: `rpl:grpchat` to its author, echoing the post's
/// envid, with the reason in `<resp>` and the room in `<data><chanib>`.
fn assert_refusal(s: &Sent, c: &Client, room_id: &str, code: &str, reason_prefix: &str) {
    assert!(s.msg.is_request(), "{s:?}");
    assert_eq!(s.msg.call_id(), c.call_id);
    let item = s.item();
    assert_eq!(item.name, "rpl");
    assert_eq!(item.attr("id"), Some("rpl:grpchat"));
    assert_eq!(
        item.child("commandid").unwrap().attr("envid"),
        Some(c.envid.to_string().as_str())
    );
    let resp = item.child("resp").unwrap();
    assert_eq!(resp.attr("code"), Some(code));
    let text = resp.text.clone();
    assert!(text.starts_with(reason_prefix), "{text}");
    assert_eq!(
        item.child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .attr("uri"),
        Some(format!("ma-chan://{DOMAIN}/{room_id}").as_str())
    );
}

fn chan_names(rpl: &Node) -> Vec<String> {
    rpl.child("data")
        .unwrap()
        .children_named("chanib")
        .map(|c| c.attr("name").unwrap().to_owned())
        .collect()
}

#[test]
fn discovery_session_expires_update_and_getinv() {
    let mut h = Harness::new();
    let out = h.invite("alice@example.com", "sip:ocschat@example.com", "x1");
    let ok = &out[0].msg;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::SessionExpires), Some("300"));
    assert!(
        ok.header(HeaderName::Contact)
            .unwrap()
            .contains("sip:chatsrv@127.0.0.1:5041")
    );
    assert_eq!(
        ok.header(HeaderName::RecordRoute),
        Some("<sip:127.0.0.1:5060;transport=tcp;lr>")
    );
    assert_eq!(out[0].dest, fe(), "answered to where the INVITE came from");

    let mut a = h.connect("alice@example.com");
    let out = h.command(
        &mut a,
        "cmd:getinv",
        "<data><inv inviteId=\"1\" domain=\"example.com\"/></data>",
    );
    let rpl = Harness::reply(&out, &a, "rpl:getinv");
    assert_eq!(rpl.child("resp").unwrap().attr("code"), Some("200"));
    // The reply INFO follows the dialog: R-URI = client's Contact, Route = record-route.
    let info = out.iter().find(|s| s.msg.is_request()).unwrap();
    assert_eq!(
        info.msg.request_uri(),
        Some("sip:alice@example.com:5070;maddr=10.0.0.9;transport=tcp")
    );
    assert_eq!(
        info.msg.header(HeaderName::Route),
        Some("<sip:127.0.0.1:5060;transport=tcp;lr>")
    );
    assert!(
        info.msg
            .header(HeaderName::From)
            .unwrap()
            .starts_with("<sip:chatsrv@example.com>;tag=")
    );
    assert_eq!(info.to_user(), "alice@example.com");
    assert_eq!(info.msg.content_type(), Some("text/plain"));
    assert_eq!(info.dest, fe(), "sent back over the front end's connection");

    let out = h.command(&mut a, "cmd:getserverinfo", "<data/>");
    let rpl = Harness::reply(&out, &a, "rpl:getserverinfo");
    let sib = rpl.child("data").unwrap().child("sib").unwrap();
    assert_eq!(sib.attr("messageSizeLimit"), Some("8000"));
    // The server's clock (the harness's wall clock: 2024-01-01T00:00:00Z), not 1970.
    assert_eq!(sib.attr("serverTime"), Some("2024-01-01T00:00:00Z"));

    let out = h.in_dialog(&mut a, "UPDATE", "", "");
    assert_eq!(out[0].msg.status(), Some(200));
    let mut ghost = Client {
        call_id: "nope".into(),
        ..a
    };
    let out = h.in_dialog(&mut ghost, "UPDATE", "", "");
    assert_eq!(out[0].msg.status(), Some(481));
    let out = h.in_dialog(&mut ghost, "INFO", "text/plain", "<xccos/>");
    assert_eq!(out[0].msg.status(), Some(481));
}

#[test]
fn policy_and_identity_gate_the_invite() {
    let mut h = Harness::new();
    let out = h.invite("dave@example.com", "sip:ocschat@example.com", "d1");
    assert_eq!(out[0].msg.status(), Some(403));
    assert_eq!(
        out[0].msg.reason(),
        Some("Persistent Chat is not enabled for this user")
    );
    // No P-Asserted-Identity (not through the front end): refused.
    let m = parse(
        "INVITE sip:ocschat@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bKx\r\n\
         From: <sip:alice@example.com>;tag=a\r\nTo: <sip:ocschat@example.com>\r\nCall-ID: n1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@1.2.3.4>\r\nContent-Length: 0\r\n\r\n",
    );
    h.feed(m);
    let out = h.out();
    assert_eq!(out[0].msg.status(), Some(403));
    assert_eq!(h.core.dialogs(), 0);
    let out = h.invite("alice@example.com", "sip:someone@example.com", "w1");
    assert_eq!(out[0].msg.status(), Some(404));
}

#[test]
fn room_list_honours_secret_and_denied_categories() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    let crit = "<data><qib qtype=\"BYNAME\" criteria=\"\" extended=\"false\"/></data>";
    let out = h.command(&mut a, "cmd:chansrch", crit);
    let rpl = Harness::reply(&out, &a, "rpl:chansrch");
    assert_eq!(chan_names(&rpl), vec!["Lobby", "RoomOne", "Stage"]);
    let first = rpl.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(first.attr("uri"), Some("ma-chan://example.com/open1"));
    assert_eq!(first.attr("description"), Some("about Lobby <&>"));
    let out = h.command(&mut b, "cmd:chansrch", crit);
    let rpl = Harness::reply(&out, &b, "rpl:chansrch");
    assert_eq!(
        chan_names(&rpl),
        vec!["Lobby", "RoomOne", "Hideout", "Legal", "Stage"]
    );
    let hideout = rpl
        .child("data")
        .unwrap()
        .children_named("chanib")
        .nth(2)
        .unwrap();
    assert!(
        hideout
            .children_named("info")
            .any(|i| i.attr("id") == Some("urn:parlano:ma:info:visibilty") && i.text == "private")
    );
    let out = h.command(
        &mut b,
        "cmd:chansrch",
        "<data><qib qtype=\"BYNAME\" criteria=\"room\" extended=\"false\"/></data>",
    );
    assert_eq!(
        chan_names(&Harness::reply(&out, &b, "rpl:chansrch")),
        vec!["RoomOne"]
    );
}

#[test]
fn join_members_posts_both_ways_and_backfill() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    let out = h.join(&mut a, "closed1");
    let rpl = Harness::reply(&out, &a, "rpl:join");
    assert_eq!(rpl.child("resp").unwrap().attr("code"), Some("200"));
    let chanib = rpl.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(chanib.attr("name"), Some("RoomOne"));
    assert_eq!(chanib.attr("uri"), Some("ma-chan://example.com/closed1"));
    assert_eq!(
        out.iter().filter(|s| s.msg.is_request()).count(),
        1,
        "nobody else to tell"
    );

    let out = h.join(&mut b, "closed1");
    let rpl = Harness::reply(&out, &b, "rpl:join");
    let data = rpl.child("data").unwrap();
    let uibs: Vec<&str> = data
        .children_named("uib")
        .map(|u| u.attr("uri").unwrap())
        .collect();
    assert_eq!(uibs, vec!["sip:alice@example.com", "sip:bob@example.com"]);
    assert_eq!(
        data.child("chanib")
            .unwrap()
            .child("aib")
            .unwrap()
            .attr("value"),
        Some("1,2")
    );
    let ntc = out
        .iter()
        .find(|s| s.to_user() == "alice@example.com")
        .expect("alice told")
        .item();
    assert_eq!(ntc.attr("id"), Some("ntc:join"));
    let uib = ntc.child("data").unwrap().child("uib").unwrap();
    assert_eq!(uib.attr("uri"), Some("sip:bob@example.com"));
    let aib = uib.child("aib").unwrap();
    assert_eq!(
        (aib.attr("domain"), aib.attr("value")),
        (Some("example.com"), Some("closed1"))
    );
    assert_eq!(
        h.core.participants("closed1"),
        vec!["alice@example.com", "bob@example.com"]
    );

    // Posts both ways, markup-like and non-ASCII text intact (escaped exactly once).
    let text = "hello <b>&amp; \"quoted\" — żółw 🐢";
    let out = h.post_saved(&mut b, "closed1", text, 1);
    let ok = out.iter().find(|s| !s.msg.is_request()).unwrap();
    assert_eq!(ok.msg.status(), Some(200));
    let delivered: Vec<&Sent> = out.iter().filter(|s| s.msg.is_request()).collect();
    assert_eq!(delivered.len(), 1, "fanned out to alice only (no echo)");
    let g = delivered[0].item();
    assert_eq!(delivered[0].to_user(), "alice@example.com");
    assert_eq!(g.name, "grpchat");
    assert_eq!(g.attr("author"), Some("sip:bob@example.com"));
    assert_eq!(g.attr("chanUri"), Some("ma-chan://example.com/closed1"));
    assert_eq!(g.attr("ts"), Some("2024-01-01T00:00:00Z"));
    assert_eq!(g.text_of("chat"), Some(text));
    h.wall += 61_000;
    let out = h.post_saved(&mut a, "closed1", "reply from alice", 2);
    let g = out.iter().find(|s| s.msg.is_request()).unwrap();
    assert_eq!(g.to_user(), "bob@example.com");
    assert_eq!(g.item().text_of("chat"), Some("reply from alice"));

    // Carol joins later: backfill oldest first, with the post times.
    let mut c = h.connect("carol@example.com");
    let out = h.join(&mut c, "closed1");
    assert_eq!(
        out.iter()
            .filter(|s| s.msg.is_request() && s.item().attr("id") == Some("ntc:join"))
            .count(),
        2
    );
    let out = h.command(
        &mut c,
        "cmd:bccontext",
        "<data><chanib uri=\"ma-chan://example.com/closed1\"/><bcq><last cnt=\"25\"/></bcq></data>",
    );
    let rpl = Harness::reply(&out, &c, "rpl:bccontext");
    let msgs: Vec<(String, String, String)> = rpl
        .child("data")
        .unwrap()
        .child("chanib")
        .unwrap()
        .children_named("msg")
        .map(|m| {
            (
                m.attr("author").unwrap().to_owned(),
                m.attr("ts").unwrap().to_owned(),
                m.text_of("chat").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        msgs,
        vec![
            (
                "sip:bob@example.com".into(),
                "2024-01-01T00:00:00Z".into(),
                text.into()
            ),
            (
                "sip:alice@example.com".into(),
                "2024-01-01T00:01:01Z".into(),
                "reply from alice".into()
            ),
        ]
    );
    let out = h.command(
        &mut c,
        "cmd:bccontext",
        "<data><chanib uri=\"ma-chan://example.com/closed1\"/><bcq><last cnt=\"1\"/></bcq></data>",
    );
    let rpl = Harness::reply(&out, &c, "rpl:bccontext");
    assert_eq!(
        rpl.child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .children_named("msg")
            .count(),
        1
    );
}

#[test]
fn backfill_comes_from_the_store_after_a_restart() {
    let mut h = Harness::new();
    let posts = (1..=40)
        .map(|i| ChatPost {
            id: i,
            room_id: "open1".into(),
            author: "bob@example.com".into(),
            ts_ms: 1_704_067_200_000 + i * 1000,
            text: format!("post {i}"),
            original: format!("post {i}"),
            state: PostState::Active,
        })
        .collect();
    h.core.apply_directory(directory(), posts);
    let mut a = h.connect("alice@example.com");
    h.join(&mut a, "open1");
    let out = h.command(
        &mut a,
        "cmd:bccontext",
        "<data><chanib uri=\"ma-chan://example.com/open1\"/><bcq><last cnt=\"25\"/></bcq></data>",
    );
    let rpl = Harness::reply(&out, &a, "rpl:bccontext");
    let texts: Vec<String> = rpl
        .child("data")
        .unwrap()
        .child("chanib")
        .unwrap()
        .children_named("msg")
        .map(|m| m.text_of("chat").unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 25);
    assert_eq!(texts.first().unwrap(), "post 16");
    assert_eq!(texts.last().unwrap(), "post 40");
}

#[test]
fn closed_room_refuses_non_member_with_a_reason() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    h.join(&mut a, "closed1");
    let mut f = h.connect("frank@example.com");
    let out = h.join(&mut f, "closed1");
    let rpl = Harness::reply(&out, &f, "rpl:join");
    let resp = rpl.child("resp").unwrap();
    assert_eq!(resp.attr("code"), Some("403"));
    assert!(resp.text.contains("not a member"), "{}", resp.text);
    assert_eq!(
        out.iter().filter(|s| s.msg.is_request()).count(),
        1,
        "no ntc:join to alice"
    );
    // A post to a room not joined is refused and fans out nothing.
    let out = h.post(&mut f, "closed1", "let me in");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].msg.status(), Some(403));
    assert_refusal(&out[1], &f, "closed1", "403", "ERR_USER_NOT_JOINED: ");
    assert!(h.store_requests().is_empty());
    // Secret room: a non-member is refused; an unknown room too.
    let out = h.join(&mut f, "secret1");
    assert_eq!(
        Harness::reply(&out, &f, "rpl:join")
            .child("resp")
            .unwrap()
            .attr("code"),
        Some("403")
    );
    let out = h.join(&mut f, "nope");
    assert_eq!(
        Harness::reply(&out, &f, "rpl:join")
            .child("resp")
            .unwrap()
            .attr("code"),
        Some("403")
    );
    // Alice's category wall.
    let out = h.join(&mut a, "wall1");
    assert_eq!(
        Harness::reply(&out, &a, "rpl:join")
            .child("resp")
            .unwrap()
            .attr("code"),
        Some("403")
    );
}

#[test]
fn auditorium_refuses_non_presenter_and_fans_nothing_out() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut c = h.connect("carol@example.com");
    h.join(&mut a, "stage");
    h.join(&mut c, "stage");
    let out = h.post(&mut a, "stage", "may I speak?");
    assert_eq!(out.len(), 2, "only the refusal: {out:?}");
    assert_eq!(out[0].msg.status(), Some(403));
    assert!(out[0].msg.reason().unwrap().contains("presenters"));
    assert_refusal(
        &out[1],
        &a,
        "stage",
        "403",
        "ERR_NO_PERMISSION: only presenters",
    );
    assert!(h.store_requests().is_empty(), "nothing stored");
    assert_eq!(h.core.stats.refused_posts, 1);
    let out = h.post_saved(&mut c, "stage", "welcome", 5);
    assert_eq!(out.iter().filter(|s| s.msg.is_request()).count(), 1);
}

#[test]
fn disabling_a_room_drops_its_members() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    h.join(&mut a, "closed1");
    h.join(&mut b, "closed1");
    h.out();
    let mut dir = directory();
    dir.rooms
        .iter_mut()
        .find(|r| r.id == "closed1")
        .unwrap()
        .disabled = true;
    h.core.apply_directory(dir, vec![]);
    let out = h.out();
    let parts: Vec<String> = out
        .iter()
        .filter(|s| s.msg.is_request() && s.item().attr("id") == Some("rpl:part"))
        .map(Sent::to_user)
        .collect();
    assert_eq!(parts, vec!["alice@example.com", "bob@example.com"]);
    assert!(h.core.participants("closed1").is_empty());
    let out = h.join(&mut a, "closed1");
    let resp = Harness::reply(&out, &a, "rpl:join")
        .child("resp")
        .unwrap()
        .text
        .clone();
    assert!(resp.contains("disabled"), "{resp}");
    // Removing bob from the members drops only bob, and alice sees him leave.
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    h.join(&mut a, "closed1");
    h.join(&mut b, "closed1");
    h.out();
    let mut dir = directory();
    dir.rooms
        .iter_mut()
        .find(|r| r.id == "closed1")
        .unwrap()
        .members
        .retain(|m| m != "bob@example.com");
    h.core.apply_directory(dir, vec![]);
    let out = h.out();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out.iter()
            .any(|s| s.to_user() == "bob@example.com" && s.item().attr("id") == Some("rpl:part"))
    );
    assert!(
        out.iter()
            .any(|s| s.to_user() == "alice@example.com" && s.item().attr("id") == Some("ntc:part"))
    );
    assert_eq!(h.core.participants("closed1"), vec!["alice@example.com"]);
}

#[test]
fn part_and_rejoin_in_one_session() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    h.join(&mut a, "open1");
    h.join(&mut b, "open1");
    let out = h.command(
        &mut b,
        "cmd:part",
        "<data><chanib uri=\"ma-chan://example.com/open1\"/></data>",
    );
    let rpl = Harness::reply(&out, &b, "rpl:part");
    assert_eq!(
        rpl.child("data")
            .unwrap()
            .child("chanib")
            .unwrap()
            .attr("uri"),
        Some("ma-chan://example.com/open1")
    );
    let ntc = out
        .iter()
        .find(|s| s.to_user() == "alice@example.com")
        .unwrap()
        .item();
    assert_eq!(ntc.attr("id"), Some("ntc:part"));
    let chanib = ntc.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(
        chanib.child("uib").unwrap().attr("uri"),
        Some("sip:bob@example.com")
    );
    assert_eq!(h.core.participants("open1"), vec!["alice@example.com"]);
    let out = h.join(&mut b, "open1");
    assert_eq!(
        Harness::reply(&out, &b, "rpl:join")
            .child("resp")
            .unwrap()
            .attr("code"),
        Some("200")
    );
    assert!(out.iter().any(|s| s.to_user() == "alice@example.com"));
    // Batch join answers rpl:bjoin with every room it could join.
    let out = h.command(&mut b, "cmd:bjoin", "<data><chanid key=\"0\" domain=\"example.com\" value=\"secret1\"/><chanid key=\"1\" domain=\"example.com\" value=\"wall1\"/></data>");
    let rpl = Harness::reply(&out, &b, "rpl:bjoin");
    assert_eq!(chan_names(&rpl), vec!["Hideout", "Legal"]);
}

#[test]
fn bye_and_idle_expiry_leave_every_room() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    let mut b = h.connect("bob@example.com");
    for r in ["open1", "closed1"] {
        h.join(&mut a, r);
        h.join(&mut b, r);
    }
    h.out();
    let out = h.in_dialog(&mut b, "BYE", "", "");
    assert_eq!(
        out.iter()
            .find(|s| !s.msg.is_request())
            .unwrap()
            .msg
            .status(),
        Some(200)
    );
    let parts: Vec<String> = out
        .iter()
        .filter(|s| s.msg.is_request())
        .map(|s| {
            assert_eq!(s.to_user(), "alice@example.com");
            let n = s.item();
            assert_eq!(n.attr("id"), Some("ntc:part"));
            n.child("data")
                .unwrap()
                .child("chanib")
                .unwrap()
                .attr("uri")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        parts,
        vec![
            "ma-chan://example.com/closed1",
            "ma-chan://example.com/open1"
        ]
    );
    assert_eq!(h.core.dialogs(), 1);
    // Alice goes silent: after twice Session-Expires her dialog ends (no BYE sent to her).
    let deadline = h.core.next_deadline().unwrap();
    assert!(deadline > h.now + Duration::from_secs(600));
    h.core.on_tick(deadline);
    assert!(h.out().is_empty());
    assert_eq!(h.core.dialogs(), 0);
    assert!(h.core.participants("open1").is_empty());
}

#[test]
fn oversized_and_empty_posts_are_refused_and_store_failure_is_reported() {
    let mut h = Harness::new();
    let mut a = h.connect("alice@example.com");
    h.join(&mut a, "open1");
    let big = "x".repeat(8001);
    let out = h.post(&mut a, "open1", &big);
    assert_eq!(out[0].msg.status(), Some(403));
    assert_refusal(&out[1], &a, "open1", "403", "ERR_LIMIT_EXCEEDED: ");
    let out = h.post(&mut a, "open1", "  ");
    assert_eq!(out[0].msg.status(), Some(403));
    assert_refusal(&out[1], &a, "open1", "403", "ERR_BAD_REQUEST: ");
    // Not joined (alice is a member of RoomOne but never joined it).
    let out = h.post(&mut a, "closed1", "hello?");
    assert_eq!(out[0].msg.status(), Some(403));
    assert_refusal(&out[1], &a, "closed1", "403", "ERR_USER_NOT_JOINED: ");
    assert!(h.store_requests().is_empty());
    h.post(&mut a, "open1", "ok");
    let reqs = h.store_requests();
    let StoreRequest::SavePost { op, .. } = &reqs[0];
    h.core.on_post_saved(*op, Err("disk full".into()));
    let out = h.out();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].msg.status(), Some(503));
    assert_refusal(&out[1], &a, "open1", "503", "ERR_SERVER: ");
    // Garbage in an INFO: answered 200, nothing else.
    let out = h.in_dialog(&mut a, "INFO", "text/plain", "<xccos><cmd id=");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].msg.status(), Some(200));
    // Unknown command: an XCCOS error reply, never a SIP error.
    let out = h.command(&mut a, "cmd:getpref", "<data/>");
    let rpl = Harness::reply(&out, &a, "rpl:getpref");
    assert_eq!(rpl.child("resp").unwrap().attr("code"), Some("501"));
}

/// SIPE draws Call-IDs and tags from `rand()`: two clients started in the same
/// second send the same Call-ID and From tag. Each still gets its own dialog, its
/// own replies, and one client's BYE does not end the other's dialog.
#[test]
fn clients_with_the_same_call_id_and_tag_get_separate_dialogs() {
    let mut h = Harness::new();
    let mut clients = Vec::new();
    for user in ["alice@example.com", "bob@example.com"] {
        let out = h.invite(user, "sip:ocschat@example.com", "same-cid");
        assert_eq!(out.len(), 1);
        let ok = &out[0].msg;
        assert_eq!(ok.status(), Some(200));
        clients.push(Client {
            user: user.into(),
            call_id: "same-cid".into(),
            tag: "tsame-cid".into(),
            remote_tag: ok.to_tag().unwrap().to_owned(),
            cseq: 1,
            envid: 1000,
        });
    }
    assert_ne!(clients[0].remote_tag, clients[1].remote_tag);
    assert_eq!(h.core.dialogs(), 2);
    // alice leaves the lookup dialog first (as SIPE does after rpl:requri).
    let mut alice = clients.remove(0);
    let mut bob = clients.remove(0);
    let out = h.in_dialog(&mut alice, "BYE", "", "");
    assert_eq!(out[0].msg.status(), Some(200));
    // bob's dialog is still there and its reply goes to bob.
    let out = h.command(&mut bob, "cmd:requri", "<data/>");
    let rpl: Vec<&Sent> = out.iter().filter(|s| s.msg.is_request()).collect();
    assert_eq!(rpl.len(), 1, "{out:?}");
    assert_eq!(rpl[0].item().attr("id"), Some("rpl:requri"));
    assert_eq!(rpl[0].to_user(), "bob@example.com");
    assert_eq!(rpl[0].msg.call_id(), "same-cid");
    assert_eq!(rpl[0].msg.from_tag(), Some(bob.remote_tag.as_str()));
}

/// The front end reaches the service over a connection of its own (from an
/// ephemeral port) and, for a UDP client, record-routes twice (RFC 5658). The
/// service's INFOs go back over that connection, after the 200 of the command they
/// answer: over a second connection (or UDP) they could overtake it, and a client
/// waiting for the 200 first lost them (bench/chat.sh: about one reply in ten).
#[test]
fn reply_infos_follow_the_front_ends_connection_even_when_the_route_names_udp() {
    let mut h = Harness::new();
    let fe_conn = Dest {
        transport: Transport::Tcp,
        addr: "127.0.0.1:40001".parse::<SocketAddr>().unwrap(),
        conn: Some(ConnId(9)),
    };
    for (n, rr) in [
        // RFC 5658 order (the hop towards us on top), then the reverse.
        "<sip:127.0.0.1:5060;transport=tcp;lr>, <sip:127.0.0.1:5060;transport=udp;lr>",
        "<sip:127.0.0.1:5060;transport=udp;lr>, <sip:127.0.0.1:5060;transport=tcp;lr>",
        "<sip:127.0.0.1:5060;transport=tcp;lr>",
    ]
    .iter()
    .enumerate()
    {
        let cid = format!("udp-{n}");
        let m = parse(&format!(
            "INVITE sip:ocschat@example.com SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKfe{cid}\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:40999;branch=z9hG4bKc{cid};rport=40999\r\n\
             Record-Route: {rr}\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:alice@example.com>;tag=t{cid}\r\n\
             To: <sip:ocschat@example.com>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:alice@127.0.0.1:40999>\r\n\
             P-Asserted-Identity: <sip:alice@example.com>\r\n\
             Content-Length: 0\r\n\r\n"
        ));
        h.core.on_message(m, fe_conn, h.now, h.wall);
        let out = h.out();
        assert_eq!(out[0].msg.status(), Some(200));
        assert_eq!(out[0].dest, fe_conn);
        let mut c = Client {
            user: "alice@example.com".into(),
            call_id: cid.clone(),
            tag: format!("t{cid}"),
            remote_tag: out[0].msg.to_tag().unwrap().to_owned(),
            cseq: 1,
            envid: 10,
        };
        c.envid += 1;
        let body = format!(
            "<xccos ver=\"1\" envid=\"{}\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd></xccos>",
            c.envid
        );
        let info = parse(&format!(
            "INFO sip:chatsrv@127.0.0.1:5041;transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKfei{cid}\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:alice@example.com>;tag=t{cid}\r\n\
             To: <sip:ocschat@example.com>;tag={}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 2 INFO\r\n\
             Content-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            c.remote_tag,
            body.len()
        ));
        h.core.on_message(info, fe_conn, h.now, h.wall);
        let out = h.out();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].msg.status(), Some(200), "the 200 first");
        assert_eq!(out[1].item().attr("id"), Some("rpl:requri"));
        let want = Dest {
            transport: Transport::Tcp,
            addr: "127.0.0.1:5060".parse::<SocketAddr>().unwrap(),
            conn: Some(ConnId(9)),
        };
        assert_eq!(
            out[1].dest, want,
            "route {rr}: the reply INFO goes over the front end's connection, not UDP"
        );
    }
}

/// Chat pools (issue 11): a core that is one of several active servers on one
/// store. Posts, joins and leaves of the other servers are fed in as events; its
/// own joins and leaves come out for them.
#[test]
fn pool_remote_posts_joins_leaves_and_a_dead_server() {
    use confab_store::ChatPoolEvent;
    let mut cfg = CoreConfig::new(DOMAIN, "127.0.0.1:5041");
    cfg.pool_server = Some("pchat02.example.com".into());
    let mut h = Harness {
        core: ChatCore::new(cfg, 42),
        now: Instant::now(),
        wall: 1_704_067_200_000,
    };
    h.core.apply_directory(directory(), vec![]);
    let mut b = h.connect("bob@example.com");
    h.join(&mut b, "open1");
    let mut evs = Vec::new();
    h.core.drain_pool_events(&mut evs);
    assert_eq!(
        evs,
        vec![ChatPoolEvent::Member {
            server: "pchat02.example.com".into(),
            room_id: "open1".into(),
            user: "bob@example.com".into(),
            joined: true,
        }],
        "the other servers hear of bob's join"
    );

    // Alice joins through pchat01: bob is told; she is a participant here.
    h.core
        .on_remote_member("pchat01.example.com", "open1", "alice@example.com", true);
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to_user(), "bob@example.com");
    assert_eq!(out[0].item().attr("id"), Some("ntc:join"));
    assert_eq!(
        h.core.participants("open1"),
        vec!["bob@example.com", "alice@example.com"]
    );
    // Unknown rooms are ignored.
    h.core
        .on_remote_member("pchat01.example.com", "nope", "alice@example.com", true);
    assert!(h.out().is_empty());

    // Her post, stored by pchat01, reaches bob here, once, and joins the backfill.
    let post = ChatPost {
        id: 7,
        room_id: "open1".into(),
        author: "alice@example.com".into(),
        ts_ms: 1_704_067_200_000,
        text: "hi from A <&>".into(),
        original: "hi from A <&>".into(),
        state: PostState::Active,
    };
    h.core.on_remote_post(post.clone());
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to_user(), "bob@example.com");
    let g = out[0].item();
    assert_eq!(g.name, "grpchat");
    assert_eq!(g.attr("author"), Some("sip:alice@example.com"));
    assert_eq!(g.text_of("chat"), Some("hi from A <&>"));
    h.core.on_remote_post(post);
    assert!(h.out().is_empty(), "a post heard twice is delivered once");
    assert_eq!(h.core.stats.remote_posts, 1);
    // A local post with a lower id heard later keeps the cache in id order.
    let out = h.post_saved(&mut b, "open1", "from B", 9);
    assert_eq!(
        out.len(),
        1,
        "200 only: alice is served by the other server"
    );
    h.core.on_remote_post(ChatPost {
        id: 8,
        room_id: "open1".into(),
        author: "alice@example.com".into(),
        ts_ms: 1_704_067_201_000,
        text: "second from A".into(),
        original: "second from A".into(),
        state: PostState::Active,
    });
    h.out();
    let mut c = h.connect("carol@example.com");
    let out = h.join(&mut c, "open1");
    let rpl = Harness::reply(&out, &c, "rpl:join");
    let uibs: Vec<&str> = rpl
        .child("data")
        .unwrap()
        .children_named("uib")
        .map(|u| u.attr("uri").unwrap())
        .collect();
    assert!(uibs.contains(&"sip:alice@example.com"), "{uibs:?}");
    let out = h.command(
        &mut c,
        "cmd:bccontext",
        "<data><chanib uri=\"ma-chan://example.com/open1\"/><bcq><last cnt=\"25\"/></bcq></data>",
    );
    let rpl = Harness::reply(&out, &c, "rpl:bccontext");
    let texts: Vec<String> = rpl
        .child("data")
        .unwrap()
        .child("chanib")
        .unwrap()
        .children_named("msg")
        .map(|m| m.text_of("chat").unwrap().to_owned())
        .collect();
    assert_eq!(texts, vec!["hi from A <&>", "second from A", "from B"]);

    // pchat01 dies: alice leaves the room for bob and carol.
    h.core.on_server_gone("pchat01.example.com");
    let out = h.out();
    let parted: Vec<String> = out
        .iter()
        .filter(|s| s.item().attr("id") == Some("ntc:part"))
        .map(Sent::to_user)
        .collect();
    assert_eq!(parted.len(), 2, "{out:?}");
    assert!(parted.contains(&"bob@example.com".to_owned()));
    assert!(
        !h.core
            .participants("open1")
            .contains(&"alice@example.com".to_owned())
    );
    assert!(h.core.remote_servers().is_empty());

    // Bob leaves: the other servers hear of it.
    let mut evs = Vec::new();
    h.core.drain_pool_events(&mut evs);
    h.command(
        &mut b,
        "cmd:part",
        "<data><chanib uri=\"ma-chan://example.com/open1\"/></data>",
    );
    evs.clear();
    h.core.drain_pool_events(&mut evs);
    assert_eq!(
        evs,
        vec![ChatPoolEvent::Member {
            server: "pchat02.example.com".into(),
            room_id: "open1".into(),
            user: "bob@example.com".into(),
            joined: false,
        }]
    );
}

/// Several Persistent Chat pools on one store: a server serves its own pool's
/// rooms (the default pool's are those with no pool); another pool's room is not
/// listed, its join is refused naming that pool, its backfill is not cached.
#[test]
fn a_server_serves_only_its_pools_rooms() {
    let with_scope = |pool: &str, default: bool| {
        let mut cfg = CoreConfig::new(DOMAIN, "127.0.0.1:5041");
        cfg.pool_scope = Some(PoolScope {
            pool: pool.into(),
            default,
        });
        let mut dir = directory();
        // "Lobby" of pool 2 has the default pool's Lobby's name.
        let mut cat2 = category("main2", &["@example.com"], &[]);
        cat2.pool = "pchat2.example.com".into();
        dir.categories.push(cat2);
        let mut lobby2 = room("open2", "Lobby", "main2", Privacy::Open, &[]);
        lobby2.pool = "pchat2.example.com".into();
        dir.rooms.push(lobby2);
        let post = |id: i64, room: &str| ChatPost {
            id,
            room_id: room.into(),
            author: "bob@example.com".into(),
            ts_ms: 1_704_067_100_000,
            text: format!("post {id}"),
            original: format!("post {id}"),
            state: PostState::Active,
        };
        let mut core = ChatCore::new(cfg, 7);
        core.apply_directory(dir, vec![post(1, "open1"), post(2, "open2")]);
        Harness {
            core,
            now: Instant::now(),
            wall: 1_704_067_200_000,
        }
    };
    let crit = "<data><qib qtype=\"BYNAME\" criteria=\"\" extended=\"false\"/></data>";

    // The default pool's server: its rooms, not pool 2's.
    let mut h = with_scope("pchat.example.com", true);
    let mut a = h.connect("alice@example.com");
    let out = h.command(&mut a, "cmd:chansrch", crit);
    let rpl = Harness::reply(&out, &a, "rpl:chansrch");
    assert_eq!(chan_names(&rpl), vec!["Lobby", "RoomOne", "Stage"]);
    h.join(&mut a, "open1");
    let out = h.join(&mut a, "open2");
    let rpl = Harness::reply(&out, &a, "rpl:join");
    let resp = rpl.child("resp").unwrap();
    assert_eq!(resp.attr("code"), Some("403"));
    assert!(
        resp.text.contains("pool pchat2.example.com"),
        "the refusal names the room's pool: {}",
        resp.text
    );

    // Pool 2's server: only its Lobby, with its own history.
    let mut h = with_scope("pchat2.example.com", false);
    let mut b = h.connect("bob@example.com");
    let out = h.command(&mut b, "cmd:chansrch", crit);
    let rpl = Harness::reply(&out, &b, "rpl:chansrch");
    assert_eq!(chan_names(&rpl), vec!["Lobby"]);
    let first = rpl.child("data").unwrap().child("chanib").unwrap();
    assert_eq!(first.attr("uri"), Some("ma-chan://example.com/open2"));
    h.join(&mut b, "open2");
    let out = h.join(&mut b, "open1");
    let rpl = Harness::reply(&out, &b, "rpl:join");
    let resp = rpl.child("resp").unwrap();
    assert!(
        resp.text.contains("the default Persistent Chat pool"),
        "{}",
        resp.text
    );
    assert_eq!(h.core.directory().data.rooms.len(), 1);
}
