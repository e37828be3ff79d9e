//! Persistent Chat at the protocol level, for what pidgin-sipe cannot show
//! (crates/acceptance/src/xccos.rs: a digest-authenticated XCCOS client over TCP):
//! * discovery by a plain digest client, `cmd:getserverinfo`;
//! * an auditorium refuses a non-presenter's post and fans nothing out, while a
//!   presenter's post reaches the members;
//! * an oversize post is refused with an XCCOS error and fans nothing out;
//! * backfill (`cmd:bccontext`) oldest first with author and time; history and
//!   the search index survive a restart;
//! * a user whose policy disables Persistent Chat is refused the lookup INVITE;
//! * HTTP search (`GET /chat/search`, Basic auth) finds posts by words, author and
//!   room and never returns a room the user may not read;
//! * every `confab chat` verb against SQLite and PostgreSQL
//!   (`CONFAB_TEST_POSTGRES_URL`), bad input refused with a clear error and
//!   nothing changed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::server::{confab_bin, run_bounded};
use confab_acceptance::sip::Message;
use confab_acceptance::xccos::{XccosClient, elements, resp};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure, unique_token};
use serde_json::Value;

const DOMAIN: &str = "example.com";

fn chat(server: &ConfabServer, args: &[&str]) -> Result<String> {
    let mut all = vec!["chat"];
    all.extend_from_slice(args);
    server.cli(&all)
}

fn room_uri(server: &ConfabServer, name: &str) -> Result<String> {
    let out = chat(server, &["room", "show", name, "--json"])?;
    let v: Value = serde_json::from_str(out.trim())
        .map_err(|e| Error(format!("`chat room show {name} --json`: {e}: {out}")))?;
    Ok(v["uri"].as_str().unwrap_or("").to_string())
}

fn client(server: &ConfabServer, user: &str) -> Result<XccosClient> {
    let mut c = XccosClient::connect(server.sip_addr(), &format!("{user}@{DOMAIN}"), "pw")?;
    let st = c.discover()?;
    ensure!(
        st == 200,
        "{user}: lookup INVITE answered {st} {}\n{}",
        c.lookup_reason,
        c.transcript()
    );
    Ok(c)
}

/// A refused post: the reason inside XCCOS (`rpl:grpchat`, `<resp code="403">`
/// starting with `code`, mentioning `about`) and as the SIP reason phrase of the
/// INFO's 403 (what pidgin-sipe turns into "This message was not delivered").
fn post_refused(c: &mut XccosClient, r: &Message, code: &str, about: &str) -> Result<()> {
    let phrase = r.first_line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
    ensure!(
        r.status() == Some(403) && phrase.starts_with(code) && phrase.contains(about),
        "refused post answered `{}`, want 403 with the reason\n{}",
        r.first_line,
        c.transcript()
    );
    let body = c.wait_info("rpl:grpchat", Duration::from_secs(5), |b| {
        elements(b, "rpl")
            .iter()
            .any(|e| e.attr("id") == Some("rpl:grpchat"))
    })?;
    let (status, text) = resp(&body).unwrap_or((0, String::new()));
    ensure!(
        status == 403 && text.starts_with(code) && text.contains(about),
        "rpl:grpchat of a refused post: {status} {text:?}, want 403 {code}: ...{about}...\n{body}"
    );
    Ok(())
}

fn server() -> Result<ConfabServer> {
    let mut o = ServerOptions::new().domain(DOMAIN);
    for u in ["alice", "bob", "carol", "dave", "mallory"] {
        o = o.user(&format!("{u}@{DOMAIN}"), "pw");
    }
    ConfabServer::start(o)
}

#[test]
fn xccos_auditorium_oversize_serverinfo_backfill_restart() -> Result<()> {
    let mut server = server()?;
    if server.skip_if_external("xccos_auditorium_oversize_serverinfo_backfill_restart") {
        return Ok(());
    }
    let r = run_protocol(&mut server);
    server.with_log(r)
}

fn run_protocol(server: &mut ConfabServer) -> Result<()> {
    chat(server, &["policy", "set", "--global", "--enable"])?;
    chat(
        server,
        &["policy", "set", "mallory@example.com", "--disable"],
    )?;
    chat(server, &["config", "set", "--max-message-bytes", "500"])?;
    chat(
        server,
        &[
            "category",
            "add",
            "Gen",
            "--allowed-members",
            "@example.com",
        ],
    )?;
    chat(
        server,
        &[
            "room",
            "add",
            "Stage",
            "--category",
            "Gen",
            "--privacy",
            "open",
            "--type",
            "auditorium",
            "--presenters",
            "alice@example.com",
        ],
    )?;
    chat(
        server,
        &[
            "room",
            "add",
            "Open",
            "--category",
            "Gen",
            "--privacy",
            "open",
        ],
    )?;
    chat(
        server,
        &[
            "room",
            "add",
            "Private",
            "--category",
            "Gen",
            "--privacy",
            "secret",
            "--members",
            "carol@example.com",
        ],
    )?;
    let stage = room_uri(server, "Stage")?;
    let open = room_uri(server, "Open")?;

    // Policy: a disabled user is refused the lookup.
    let mut m = XccosClient::connect(server.sip_addr(), "mallory@example.com", "pw")?;
    let st = m.discover()?;
    ensure!(
        st == 403,
        "mallory (Persistent Chat disabled) got {st} {} to the lookup INVITE, want 403",
        m.lookup_reason
    );

    let mut alice = client(server, "alice")?;
    let mut bob = client(server, "bob")?;
    ensure!(
        alice.session_expires.is_some_and(|s| s > 10),
        "the lookup 200 carried no usable Session-Expires: {:?}",
        alice.session_expires
    );
    let up = alice.update()?;
    ensure!(
        up.status() == Some(200),
        "UPDATE in the chat-server dialog: {}",
        up.first_line
    );

    // Server info.
    let info = alice.call("getserverinfo", "<data/>").or_else(|_| {
        alice.wait_info("rpl:getservinfo", Duration::from_secs(1), |b| {
            b.contains("rpl:getserv")
        })
    })?;
    let sib = elements(&info, "sib");
    ensure!(!sib.is_empty(), "rpl:getserverinfo without <sib>: {info}");
    let s = &sib[0];
    for a in ["searchLimit", "messageSizeLimit", "serverTime"] {
        ensure!(s.attr(a).is_some(), "<sib> lacks {a}: {info}");
    }
    ensure!(
        s.attr("messageSizeLimit") == Some("500"),
        "messageSizeLimit {:?}, the configured maximum is 500: {info}",
        s.attr("messageSizeLimit")
    );
    ensure!(
        s.attr("rootUri")
            .is_some_and(|u| u.starts_with(&format!("ma-cat://{DOMAIN}/"))),
        "<sib rootUri> is not ma-cat://{DOMAIN}/...: {info}"
    );

    // Auditorium: only presenters post.
    alice.join_ok(&stage)?;
    bob.join_ok(&stage)?;
    alice.clear_inbox();
    bob.clear_inbox();
    let t = unique_token();
    let r = bob.post(&stage, &format!("not a presenter {t}"))?;
    post_refused(&mut bob, &r, "ERR_NO_PERMISSION", "presenters")?;
    ensure!(
        !alice.got_post(&t, Duration::from_secs(2))?,
        "a non-presenter's post was fanned out in the auditorium"
    );
    let t2 = unique_token();
    let r = alice.post(&stage, &format!("presenter {t2}"))?;
    ensure!(
        r.status() == Some(200),
        "presenter's post: {}",
        r.first_line
    );
    bob.wait_post(&t2, Duration::from_secs(5))?;

    // Oversize post: an XCCOS error, nothing fanned out.
    alice.join_ok(&open)?;
    bob.join_ok(&open)?;
    alice.clear_inbox();
    bob.clear_inbox();
    let t3 = unique_token();
    let big = format!("{t3} {}", "x".repeat(600));
    let r = alice.post(&open, &big)?;
    post_refused(&mut alice, &r, "ERR_LIMIT_EXCEEDED", "500 bytes")?;
    ensure!(
        !bob.got_post(&t3, Duration::from_secs(2))?,
        "the oversize post was fanned out"
    );

    // Posts for backfill and search.
    let mut texts = Vec::new();
    for i in 0..3 {
        let text = format!("zebra{i} <b>&amp; ünï {}", unique_token());
        let r = bob.post(&open, &text)?;
        ensure!(r.status() == Some(200), "bob's post: {}", r.first_line);
        alice.wait_post(&text, Duration::from_secs(5))?;
        texts.push(text);
    }
    let p = alice.backfill(&open, 25)?;
    let got: Vec<&str> = p
        .iter()
        .filter(|p| p.text.starts_with("zebra"))
        .map(|p| p.text.as_str())
        .collect();
    ensure!(
        got == texts.iter().map(String::as_str).collect::<Vec<_>>(),
        "backfill: want {texts:?} oldest first, got {got:?}"
    );
    for p in p.iter().filter(|p| p.text.starts_with("zebra")) {
        ensure!(
            p.author == "sip:bob@example.com" && p.ts.ends_with('Z') && p.ts.len() >= 20,
            "backfilled post without author/UTC time: {p:?}"
        );
    }
    // Restart: history survives.
    server.restart()?;
    let mut alice = client(server, "alice")?;
    alice.join_ok(&open)?;
    let p = alice.backfill(&open, 25)?;
    ensure!(
        texts.iter().all(|t| p.iter().any(|x| x.text == *t)),
        "history lost in the restart: {p:?}"
    );
    alice.bye()?;

    Ok(())
}

#[test]
fn http_search_never_returns_unreadable_rooms() -> Result<()> {
    let server = server()?;
    if server.skip_if_external("http_search_never_returns_unreadable_rooms") {
        return Ok(());
    }
    let r = run_search(&server);
    server.with_log(r)
}

fn run_search(server: &ConfabServer) -> Result<()> {
    chat(server, &["policy", "set", "--global", "--enable"])?;
    chat(
        server,
        &[
            "category",
            "add",
            "Gen",
            "--allowed-members",
            "@example.com",
        ],
    )?;
    chat(
        server,
        &[
            "room",
            "add",
            "Open",
            "--category",
            "Gen",
            "--privacy",
            "open",
        ],
    )?;
    chat(
        server,
        &[
            "room",
            "add",
            "Private",
            "--category",
            "Gen",
            "--privacy",
            "secret",
            "--members",
            "carol@example.com",
        ],
    )?;
    let open = room_uri(server, "Open")?;
    let private = room_uri(server, "Private")?;
    let mut bob = client(server, "bob")?;
    bob.join_ok(&open)?;
    let mut texts = Vec::new();
    for i in 0..3 {
        let text = format!("zebra{i} <b>&amp; ünï {}", unique_token());
        let r = bob.post(&open, &text)?;
        ensure!(r.status() == Some(200), "bob's post: {}", r.first_line);
        texts.push(text);
    }
    bob.bye()?;
    let s = carol_post(server, &private)?;
    // HTTP search never returns a room the user may not read.
    let http = server.http_addr()?;
    let (code, _) = http_basic(http, "/chat/search?text=zebra1", None)?;
    ensure!(code == 401, "search without credentials: {code}, want 401");
    let (code, body) = http_basic(
        http,
        "/chat/search?text=zebra1",
        Some(("bob@example.com", "pw")),
    )?;
    ensure!(code == 200, "bob's search: {code} {body}");
    let v: Value = serde_json::from_str(&body).map_err(|e| Error(format!("{e}: {body}")))?;
    let res = v["results"].as_array().cloned().unwrap_or_default();
    ensure!(
        res.iter()
            .any(|r| r["text"].as_str() == Some(texts[1].as_str())
                && r["room"].as_str() == Some("Open")
                && r["author"]
                    .as_str()
                    .is_some_and(|a| a.contains("bob@example.com"))),
        "bob's search for zebra1 misses his post: {body}"
    );
    let (code, body) = http_basic(
        http,
        &format!("/chat/search?text={s}"),
        Some(("bob@example.com", "pw")),
    )?;
    ensure!(code == 200, "bob's search: {code} {body}");
    ensure!(
        !body.contains(&s),
        "bob (not a member) found a post of the Secret room: {body}"
    );
    let (code, body) = http_basic(
        http,
        &format!("/chat/search?text={s}"),
        Some(("carol@example.com", "pw")),
    )?;
    ensure!(
        code == 200 && body.contains(&s),
        "carol does not find her own post in her Secret room: {code} {body}"
    );
    let (code, body) = http_basic(
        http,
        "/chat/search?author=bob@example.com&room=Open",
        Some(("alice@example.com", "pw")),
    )?;
    ensure!(
        code == 200 && texts.iter().all(|t| body.contains(&json_str(t))),
        "search by author and room misses bob's posts: {code} {body}"
    );
    Ok(())
}

/// JSON string body of `s` without quotes (how it appears in a JSON document).
fn json_str(s: &str) -> String {
    let q = Value::String(s.to_string()).to_string();
    q[1..q.len() - 1].to_string()
}

/// carol posts a unique word in her Secret room; returns the word.
fn carol_post(server: &ConfabServer, private: &str) -> Result<String> {
    let mut carol = client(server, "carol")?;
    carol.join_ok(private)?;
    let word = format!("secretword{}", unique_token());
    let r = carol.post(private, &format!("{word} only for members"))?;
    ensure!(r.status() == Some(200), "carol's post: {}", r.first_line);
    carol.bye()?;
    // the index may be updated after delivery
    std::thread::sleep(Duration::from_millis(1500));
    Ok(word)
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut o = String::new();
    for ch in b.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= ch.len() {
                o.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

/// GET with optional HTTP Basic credentials; (status, body). Connection: close.
fn http_basic(addr: SocketAddr, path: &str, cred: Option<(&str, &str)>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = cred
        .map(|(u, p)| format!("Authorization: Basic {}\r\n", b64(&format!("{u}:{p}"))))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 8192];
    while Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error(format!("bad HTTP response: {head}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((code, body))
}

// ---------------------------------------------------------------- CLI --

/// `confab --data DIR [--database URL] ARGS`: (success, stdout, stderr).
fn run(data: &Path, db: Option<&str>, args: &[&str]) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(confab_bin()?);
    cmd.arg("--data").arg(data).args(args);
    if let Some(db) = db {
        cmd.args(["--database", db]);
    }
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(60))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

struct Cli<'a> {
    data: &'a Path,
    db: Option<&'a str>,
}

impl Cli<'_> {
    fn ok(&self, args: &[&str]) -> Result<String> {
        let (ok, out, err) = run(self.data, self.db, args)?;
        ensure!(ok, "`confab {}` failed:\n{out}{err}", args.join(" "));
        Ok(out)
    }
    /// Must fail with a one-line message that mentions `about`.
    fn refused(&self, args: &[&str], about: &str) -> Result<()> {
        let (ok, out, err) = run(self.data, self.db, args)?;
        ensure!(
            !ok,
            "`confab {}` succeeded, want an error:\n{out}",
            args.join(" ")
        );
        ensure!(
            err.to_lowercase().contains(&about.to_lowercase()),
            "`confab {}`: the error does not name {about:?}:\n{err}",
            args.join(" ")
        );
        Ok(())
    }
    fn json(&self, args: &[&str]) -> Result<Value> {
        let out = self.ok(args)?;
        serde_json::from_str(out.trim())
            .map_err(|e| Error(format!("`confab {}`: {e}:\n{out}", args.join(" "))))
    }
}

fn cli_verbs(cli: &Cli) -> Result<()> {
    for u in ["alice", "bob", "carol"] {
        cli.ok(&["user", "add", &format!("{u}@{DOMAIN}"), "--password", "pw"])?;
    }
    cli.ok(&["chat", "policy", "set", "--global", "--enable"])?;
    cli.ok(&["chat", "policy", "set", "bob@example.com", "--disable"])?;
    let pol = cli.json(&["chat", "policy", "show", "bob@example.com", "--json"])?;
    ensure!(
        pol.to_string().contains("false"),
        "bob's policy does not show disabled: {pol}"
    );
    cli.ok(&["chat", "policy", "show"])?;
    cli.ok(&["chat", "config", "set", "--default-history", "40"])?;
    let cfg = cli.json(&["chat", "config", "show", "--json"])?;
    ensure!(cfg.to_string().contains("40"), "config show: {cfg}");

    cli.ok(&[
        "chat",
        "category",
        "add",
        "Eng",
        "--description",
        "engineering",
        "--allowed-members",
        "@example.com",
        "--denied-members",
        "carol@example.com",
    ])?;
    cli.ok(&["chat", "category", "set", "Eng", "--file-upload", "false"])?;
    let cats = cli.ok(&["chat", "category", "list", "--json"])?;
    ensure!(cats.contains("Eng"), "category list: {cats}");

    cli.ok(&[
        "chat",
        "room",
        "add",
        "Build",
        "--category",
        "Eng",
        "--description",
        "CI talk",
        "--members",
        "alice@example.com",
        "--managers",
        "alice@example.com",
    ])?;
    let before = cli.ok(&["chat", "room", "list", "--json"])?;
    // bad input changes nothing
    cli.refused(
        &["chat", "room", "add", "X1", "--category", "NoSuchCat"],
        "NoSuchCat",
    )?;
    cli.refused(
        &["chat", "room", "add", "build", "--category", "Eng"],
        "build",
    )?;
    cli.refused(
        &[
            "chat",
            "room",
            "add",
            "X2",
            "--category",
            "Eng",
            "--members",
            "nobody@example.com",
        ],
        "nobody@example.com",
    )?;
    cli.refused(
        &[
            "chat",
            "room",
            "set",
            "Build",
            "--add-members",
            "ghost@example.com",
        ],
        "ghost@example.com",
    )?;
    cli.refused(&["chat", "room", "show", "Nope"], "Nope")?;
    cli.refused(&["chat", "category", "remove", "Eng"], "Eng")?;
    let after = cli.ok(&["chat", "room", "list", "--json"])?;
    let (b, a): (Value, Value) = (
        serde_json::from_str(before.trim()).map_err(|e| Error(format!("{e}: {before}")))?,
        serde_json::from_str(after.trim()).map_err(|e| Error(format!("{e}: {after}")))?,
    );
    ensure!(
        b == a,
        "refused commands changed the rooms:\n{before}\n->\n{after}"
    );

    cli.ok(&[
        "chat",
        "room",
        "set",
        "Build",
        "--description",
        "builds",
        "--privacy",
        "open",
        "--add-members",
        "bob@example.com",
        "--add-presenters",
        "alice@example.com",
        "--type",
        "auditorium",
    ])?;
    let room = cli.json(&["chat", "room", "show", "Build", "--json"])?;
    for (k, want) in [
        ("description", "builds"),
        ("privacy", "open"),
        ("type", "auditorium"),
        ("category", "Eng"),
    ] {
        ensure!(
            room[k]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(want)),
            "room show: {k} is {}, want {want}: {room}",
            room[k]
        );
    }
    ensure!(
        room["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("ma-chan://{DOMAIN}/"))),
        "room uri: {room}"
    );
    ensure!(
        room["members"].to_string().contains("bob@example.com"),
        "members: {room}"
    );
    cli.ok(&["chat", "room", "set", "Build", "--rename", "Builds"])?;
    cli.ok(&["chat", "room", "disable", "Builds"])?;
    let room = cli.json(&["chat", "room", "show", "Builds", "--json"])?;
    ensure!(room["disabled"] == Value::Bool(true), "disable: {room}");
    cli.ok(&["chat", "room", "enable", "Builds"])?;
    let list = cli.json(&["chat", "room", "list", "--json"])?;
    ensure!(
        list.as_array().is_some_and(|a| a.len() == 1),
        "room list: {list}"
    );

    // messages: none yet; list/remove/replace/clear/search on an empty room
    let msgs = cli.json(&["chat", "message", "list", "Builds", "--json"])?;
    ensure!(
        msgs.as_array().is_some_and(Vec::is_empty),
        "message list: {msgs}"
    );
    cli.refused(&["chat", "message", "remove", "999999"], "999999")?;
    cli.refused(&["chat", "message", "replace", "999999"], "999999")?;
    cli.ok(&["chat", "clear", "Builds", "--before", "2030-01-01"])?;
    cli.refused(
        &["chat", "clear", "Builds", "--before", "yesterday"],
        "yesterday",
    )?;
    cli.ok(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--text",
        "anything",
        "--json",
    ])?;
    cli.refused(
        &["chat", "search", "--as", "ghost@example.com", "--text", "x"],
        "ghost@example.com",
    )?;
    cli.ok(&["chat", "room", "remove", "Builds"])?;
    cli.ok(&["chat", "category", "remove", "Eng"])?;
    let cats = cli.ok(&["chat", "category", "list", "--json"])?;
    ensure!(!cats.contains("\"Eng\""), "category still listed: {cats}");
    Ok(())
}

#[test]
fn chat_cli_sqlite() -> Result<()> {
    let dir = confab_acceptance::temp_dir("chat-cli")?;
    cli_verbs(&Cli {
        data: dir.path(),
        db: None,
    })
}

#[test]
fn chat_cli_postgres() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("skipped chat_cli_postgres: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let db = format!("confab_chat_cli_{}", unique_token());
    let psql = |sql: &str| -> Result<()> {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &admin, "-c", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = run_bounded(c, Duration::from_secs(30))?;
        ensure!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    psql(&format!("CREATE DATABASE {db}"))?;
    let (base, query) = admin
        .split_once('?')
        .map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let base = &base[..base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len())];
    let url = match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    };
    let dir = confab_acceptance::temp_dir("chat-cli-pg")?;
    let r = cli_verbs(&Cli {
        data: dir.path(),
        db: Some(&url),
    });
    let dropped = psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
    r.and(dropped)
}
