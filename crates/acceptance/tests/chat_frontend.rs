//! Persistent Chat behind the front end of a real `confab serve` (issue 10): a digest
//! client over TCP is authenticated by the front end, its INVITE to the lookup URI is
//! proxied to the chat service (which sees the asserted identity), and the XCCOS
//! exchange in the dialog travels both ways through the front end. The pidgin-sipe
//! tests of the same flow are separate.

use std::time::{Duration, Instant};

use confab_acceptance::sip::{Link, Message, TcpLink, Ua};
use confab_acceptance::xccos::XccosClient;
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, unique_token};

const DOMAIN: &str = "example.com";

const SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 5060 sip null\r\na=accept-types:text/plain\r\n";

fn recv_until(
    ua: &mut Ua<TcpLink>,
    what: &str,
    pred: impl Fn(&Message) -> bool,
) -> Result<Message> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(raw) = ua.link.recv(Duration::from_millis(200))? {
            let m = Message::parse(&raw)?;
            if pred(&m) {
                return Ok(m);
            }
        }
    }
    Err(Error(format!("timed out waiting for {what}")))
}

#[test]
fn chat_through_the_front_end() -> Result<()> {
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("dave@example.com", "davepw"),
    )?;
    if server.skip_if_external("chat_through_the_front_end") {
        return Ok(());
    }
    server.cli(&["chat", "policy", "set", "--global", "--enable"])?;
    server.cli(&["chat", "policy", "set", "dave@example.com", "--disable"])?;
    server.cli(&[
        "chat",
        "category",
        "add",
        "General",
        "--allowed-members",
        "@example.com",
    ])?;
    server.cli(&[
        "chat",
        "room",
        "add",
        "RoomOne",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    // The running server picks the changes up within about a second.
    std::thread::sleep(Duration::from_millis(1500));

    // A user the policy excludes gets Lync's answer.
    let mut dave = Ua::new(
        TcpLink::connect(server.sip_addr())?,
        "dave",
        "davepw",
        DOMAIN,
    );
    let r = dave.request(
        "INVITE",
        "sip:ocschat@example.com",
        "sip:ocschat@example.com",
        &format!("d-{}", unique_token()),
        &[],
        Some(("application/sdp", SDP)),
    )?;
    assert_eq!(r.status(), Some(403), "{}", server.context());
    assert!(
        r.summary().contains("Persistent Chat is not enabled"),
        "{}",
        r.summary()
    );

    let mut alice = Ua::new(
        TcpLink::connect(server.sip_addr())?,
        "alice",
        "alicepw",
        DOMAIN,
    );
    let call_id = format!("c-{}", unique_token());
    let ok = alice.request(
        "INVITE",
        "sip:ocschat@example.com",
        "sip:ocschat@example.com",
        &call_id,
        &[(
            "P-Asserted-Identity",
            "<sip:mallory@example.com>".to_owned(),
        )],
        Some(("application/sdp", SDP)),
    )?;
    assert_eq!(
        ok.status(),
        Some(200),
        "{}\n{}",
        ok.summary(),
        server.context()
    );
    assert_eq!(ok.header("Session-Expires"), Some("300"));
    let rr = ok.headers_named("Record-Route");
    assert!(
        !rr.is_empty(),
        "the front end record-routes the chat dialog"
    );
    let contact = ok
        .header("Contact")
        .ok_or_else(|| Error::new("no Contact"))?;
    let target = contact
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_owned();
    let from = ok.header("From").unwrap_or_default().to_owned();
    let to = ok.header("To").unwrap_or_default().to_owned();

    // In the dialog: ACK, then cmd:requri through the front end.
    let mut routes: Vec<&str> = rr
        .iter()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .collect();
    routes.reverse();
    let route_lines: String = routes.iter().map(|r| format!("Route: {r}\r\n")).collect();
    let via = alice.link.via();
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: {via};branch=z9hG4bK{}\r\n{route_lines}Max-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        unique_token()
    );
    alice.link.send(ack.as_bytes())?;
    let body = "<xccos ver=\"1\" envid=\"77\" xmlns=\"urn:parlano:xml:ns:xccos\"><cmd id=\"cmd:requri\" seqid=\"1\"><data/></cmd></xccos>";
    let info = format!(
        "INFO {target} SIP/2.0\r\nVia: {via};branch=z9hG4bK{}\r\n{route_lines}Max-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 5 INFO\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        unique_token(),
        body.len()
    );
    alice.link.send(info.as_bytes())?;
    let answered = recv_until(&mut alice, "200 to the INFO", |m| {
        m.status().is_some() && m.cseq().is_some_and(|(n, _)| n == 5)
    })?;
    assert_eq!(answered.status(), Some(200), "{}", server.context());
    let reply = recv_until(&mut alice, "rpl:requri", |m| m.method() == Some("INFO"))?;
    let text = reply.body_text();
    assert!(text.contains("id=\"rpl:requri\""), "{text}");
    assert!(
        text.contains("<uib uri=\"sip:chatsrv@example.com\"/>"),
        "{text}"
    );
    assert!(
        text.contains("envid=\"77\""),
        "commandid echoes our envid: {text}"
    );
    assert_eq!(reply.header("Call-ID"), Some(call_id.as_str()));
    // The chat service saw the identity the front end asserted, not the forged one.
    assert!(
        !server.log_text().contains("mallory"),
        "forged P-Asserted-Identity must not reach the chat service"
    );
    Ok(())
}

/// Clients over UDP, many at once (bench/chat.sh's case): every reply INFO of the
/// chat service reaches its client, and after the 200 of the command it answers
/// (it used to overtake it about one time in ten, and a client waiting for the 200
/// first lost it).
#[test]
fn chat_over_udp_replies_follow_their_answers() -> Result<()> {
    const N: usize = 24;
    let mut opts = ServerOptions::new().domain(DOMAIN);
    for i in 0..N {
        opts = opts.user(&format!("u{i:02}@example.com"), "pw");
    }
    let server = ConfabServer::start(opts)?;
    if server.skip_if_external("chat_over_udp_replies_follow_their_answers") {
        return Ok(());
    }
    server.cli(&["chat", "policy", "set", "--global", "--enable"])?;
    server.cli(&[
        "chat",
        "category",
        "add",
        "General",
        "--allowed-members",
        "@example.com",
    ])?;
    server.cli(&[
        "chat",
        "room",
        "add",
        "Busy",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    let show = server.cli(&["chat", "room", "show", "Busy", "--json"])?;
    let room = show
        .split("\"uri\": \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| Error(format!("no uri in {show}")))?
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let addr = server.sip_addr();
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let room = room.clone();
            std::thread::spawn(move || -> Result<u32> {
                let mut c = XccosClient::connect_udp(addr, &format!("u{i:02}@example.com"), "pw")?;
                let st = c.discover()?;
                if st != 200 {
                    return Err(Error(format!("u{i:02}: lookup answered {st}")));
                }
                c.join_ok(&room)?;
                c.call(
                    "getinv",
                    "<data><inv inviteId=\"1\" domain=\"example.com\"/></data>",
                )?;
                c.backfill(&room, 25)?;
                Ok(c.early_replies)
            })
        })
        .collect();
    let mut early = 0;
    for t in threads {
        early += t
            .join()
            .map_err(|_| Error::new("client thread panicked"))??;
    }
    assert_eq!(
        early,
        0,
        "reply INFOs overtook the 200 of their command\n{}",
        server.context()
    );
    Ok(())
}

/// The benchmark's load generator with every user on its own TCP connection
/// (bench/chat.sh --transport tcp), as real clients connect: every user joins
/// through the front end, and every post reaches every other member of the room
/// over that user's connection (nothing is sent to the Contact over UDP).
#[test]
fn chat_load_over_tcp_delivers_every_post() -> Result<()> {
    const N: usize = 30;
    let mut opts = ServerOptions::new().domain(DOMAIN);
    for i in 0..N {
        opts = opts.user(&format!("t{i:04}@example.com"), "pw");
    }
    let server = ConfabServer::start(opts)?;
    if server.skip_if_external("chat_load_over_tcp_delivers_every_post") {
        return Ok(());
    }
    server.cli(&["chat", "policy", "set", "--global", "--enable"])?;
    server.cli(&[
        "chat",
        "category",
        "add",
        "General",
        "--allowed-members",
        "@example.com",
    ])?;
    server.cli(&[
        "chat",
        "room",
        "add",
        "Load",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    let show = server.cli(&["chat", "room", "show", "Load", "--json"])?;
    let room = show
        .split("\"uri\": \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| Error(format!("no uri in {show}")))?
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let dir = tempfile::tempdir().map_err(|e| Error(format!("tempdir: {e}")))?;
    let out = dir.path().join("chat.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_chat_load"))
        .args(["--transport", "tcp", "--server"])
        .arg(server.sip_addr().to_string())
        .args(["--domain", DOMAIN, "--password", "pw", "--user-prefix", "t"])
        .args(["--users", &N.to_string(), "--room", &format!("Load=0..{N}")])
        .args(["--uri", &format!("Load={room}")])
        .args(["--model", "Load:10:2", "--backfill", "Load", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error(format!("chat_load: {e}")))?;
    assert!(status.success(), "chat_load failed\n{}", server.context());
    let text = std::fs::read_to_string(&out).map_err(|e| Error(format!("{e}")))?;
    let d: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error(format!("{e}: {text}")))?;
    assert_eq!(d["transport"], "tcp", "{text}");
    assert_eq!(d["join"]["joined"], N, "every user joins over TCP: {text}");
    let posts = d["model"]["posts"].as_u64().unwrap_or(0);
    assert!(posts >= 10, "the model phase posted: {text}");
    assert_eq!(
        d["model"]["deliveries"].as_u64(),
        Some(posts * (N as u64 - 1)),
        "every post reaches the {} other members: {text}",
        N - 1
    );
    assert_eq!(d["backfill"]["errors"], 0, "{text}");
    Ok(())
}
