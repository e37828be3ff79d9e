//! A Persistent Chat server on its own machine (issue 10): two `confab serve`
//! processes on loopback (127.0.0.1 and 127.0.0.2) from one published topology — a Standard Edition front
//! end, and a machine whose only role is persistent-chat, on its pool's
//! PostgreSQL persistent-chat store. A digest XCCOS client signs in at the front
//! end, which routes `ocschat@`/the chat-server URI to the chat machine; two users
//! join a room and exchange a post, which lands in the PostgreSQL store.
//! Runs when `CONFAB_TEST_POSTGRES_URL` is set.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use confab_acceptance::ports::free_port;
use confab_acceptance::server::{confab_bin, run_bounded};
use confab_acceptance::xccos::XccosClient;
use confab_acceptance::{Error, Result, ensure, unique_token};

const DOMAIN: &str = "example.com";

/// A running `confab serve`, killed when dropped.
struct Serve {
    child: Child,
    log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    fn start(data: &Path) -> Result<Serve> {
        let mut child = Command::new(confab_bin()?)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .env_remove("RUST_LOG")
            .env_remove("LD_PRELOAD")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error(format!("starting confab serve: {e}")))?;
        let stderr = child.stderr.take().ok_or_else(|| Error::new("no stderr"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Serve {
            child,
            log: Vec::new(),
            lines,
        })
    }

    fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Err(Error(format!(
            "no `{needle}` from confab serve:\n{}",
            self.log()
        )))
    }

    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn confab(data: &Path, args: &[&str]) -> Result<String> {
    let mut c = Command::new(confab_bin()?);
    c.arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(c, Duration::from_secs(60))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "confab {args:?} failed:\n{text}");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn psql(admin: &str, sql: &str) -> Result<()> {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", admin, "-c", sql])
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
}

/// `admin` with its database replaced by `db`.
fn with_db(admin: &str, db: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map_or((admin, None), |(b, q)| (b, Some(q)));
    let base = &base[..base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len())];
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[test]
fn chat_server_on_its_own_machine() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("skipped chat_server_on_its_own_machine: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let db = format!("confab_chat_pool_{}", unique_token());
    psql(&admin, &format!("CREATE DATABASE {db}"))?;
    let url = with_db(&admin, &db);
    let r = scenario(&url);
    let dropped = psql(&admin, &format!("DROP DATABASE {db} WITH (FORCE)"));
    r.and(dropped)
}

fn scenario(pg: &str) -> Result<()> {
    let dir = confab_acceptance::temp_dir("chat-pool")?;
    let fe = dir.path().join("se01");
    let chatm = dir.path().join("pchat01");
    let file = dir.path().join("topology.toml");
    let (sip, tls, web, chat_port) = (free_port(), free_port(), free_port(), free_port());
    std::fs::write(
        &file,
        format!(
            r#"sip_domains = ["{DOMAIN}"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"

[[store]]
name = "pchat"
kind = "persistent-chat"
url = "{pg}"

[[pool]]
fqdn = "se01.{DOMAIN}"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.{DOMAIN}"
addresses = ["127.0.0.1"]
roles = ["front-end"]
[pool.machine.ports]
front-end.sip = {sip}
front-end.sip-udp = {sip}
front-end.sip-tls = {tls}
front-end.web = {web}

[[pool]]
fqdn = "pchat.{DOMAIN}"
site = "main"
next_hop = "se01.{DOMAIN}"
persistent_chat_store = "pchat"

[[pool.machine]]
fqdn = "pchat01.{DOMAIN}"
addresses = ["127.0.0.2"]
roles = ["persistent-chat"]
[pool.machine.ports]
persistent-chat.sip-tls = {chat_port}
"#
        ),
    )
    .map_err(|e| Error(format!("writing the topology: {e}")))?;
    confab(&fe, &["topology", "publish", &file.to_string_lossy()])?;
    confab(
        &fe,
        &["bootstrap", "--force", "--fqdn", &format!("se01.{DOMAIN}")],
    )?;
    let cms = format!("sqlite://{}", fe.join("confab.db").display());
    confab(
        &chatm,
        &[
            "bootstrap",
            "--force",
            "--cms",
            &cms,
            "--fqdn",
            &format!("pchat01.{DOMAIN}"),
        ],
    )?;
    for u in ["alice", "bob"] {
        confab(
            &fe,
            &["user", "add", &format!("{u}@{DOMAIN}"), "--password", "pw"],
        )?;
    }

    // The chat machine first: it creates the chat tables in PostgreSQL.
    let mut chat = Serve::start(&chatm)?;
    let line = chat.wait_for("persistent chat server started")?;
    ensure!(
        line.contains(&format!("127.0.0.2:{chat_port}")),
        "the chat service listens on the machine's address and its persistent-chat port: {line}"
    );
    let cli = |args: &[&str]| -> Result<String> {
        let mut all = vec!["chat"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database", pg]);
        confab(&fe, &all)
    };
    cli(&["policy", "set", "--global", "--enable"])?;
    cli(&[
        "category",
        "add",
        "General",
        "--allowed-members",
        &format!("@{DOMAIN}"),
    ])?;
    cli(&[
        "room",
        "add",
        "Lobby",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    let show = cli(&["room", "show", "Lobby", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(show.trim())
        .map_err(|e| Error(format!("room show --json: {e}: {show}")))?;
    let room = v["uri"].as_str().unwrap_or("").to_string();

    let mut front = Serve::start(&fe)?;
    front.wait_for("front end ready")?;
    let log = front.log();
    ensure!(
        log.contains(&format!("chat.remote=127.0.0.2:{chat_port}")),
        "the front end takes the chat server from the topology:\n{log}"
    );
    // Administrative changes reach the chat machine within about a second.
    std::thread::sleep(Duration::from_millis(1500));

    let server: std::net::SocketAddr = format!("127.0.0.1:{sip}")
        .parse()
        .map_err(|e| Error(format!("{e}")))?;
    let mut alice = XccosClient::connect(server, &format!("alice@{DOMAIN}"), "pw")?;
    let mut bob = XccosClient::connect(server, &format!("bob@{DOMAIN}"), "pw")?;
    for c in [&mut alice, &mut bob] {
        let st = c.discover()?;
        ensure!(
            st == 200,
            "lookup INVITE answered {st} {}\n{}\nchat machine:\n{}",
            c.lookup_reason,
            c.transcript(),
            chat.log()
        );
        c.join_ok(&room)?;
    }
    let text = format!("across machines {} <&> é", unique_token());
    let r = alice.post(&room, &text)?;
    ensure!(r.status() == Some(200), "post: {}", r.first_line);
    let got = bob.wait_post(&text, Duration::from_secs(10))?;
    ensure!(got.text == text, "{got:?}");
    ensure!(
        got.author == format!("sip:alice@{DOMAIN}"),
        "author {}",
        got.author
    );
    // The post is in the PostgreSQL persistent-chat store.
    let listed = cli(&["message", "list", "Lobby", "--json"])?;
    ensure!(
        listed.contains("across machines"),
        "the post is not in the chat store: {listed}"
    );
    drop(front);
    drop(chat);
    Ok(())
}

/// Issue 11, Persistent Chat pools: two active chat servers and a passive one on
/// one PostgreSQL store behind one front end. Users connected through different
/// servers chat in one room (each post is delivered at once through the other
/// server); `kill -9` of one server: `confab chat status` shows it dead, its users
/// rediscover and rejoin through the other, and every acknowledged post (the last
/// one acknowledged just before the kill) is in the backfill; then the passive
/// server is activated with `confab chat pool activate` and serves users.
#[test]
fn chat_pool_fails_over_and_activates_a_passive_server() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped chat_pool_fails_over_and_activates_a_passive_server: CONFAB_TEST_POSTGRES_URL is not set"
        );
        return Ok(());
    };
    let db = format!("confab_chat_pool_{}", unique_token());
    psql(&admin, &format!("CREATE DATABASE {db}"))?;
    let url = with_db(&admin, &db);
    let r = pool_scenario(&url);
    let dropped = psql(&admin, &format!("DROP DATABASE {db} WITH (FORCE)"));
    r.and(dropped)
}

/// The chat servers of the pool: (name, address, topology state).
const CHAT_SERVERS: [(&str, &str, &str); 3] = [
    ("pchat01", "127.0.0.2", "active"),
    ("pchat02", "127.0.0.3", "active"),
    ("pchat03", "127.0.0.4", "passive"),
];

/// Users the test signs in, in this order, until it has the ones it needs on each
/// server (front ends spread users by a stable hash of their address).
const USERS: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

/// `confab chat status --json`, as (server, state, live, joined).
fn chat_status(fe: &Path, pg: &str) -> Result<Vec<(String, String, bool, i64)>> {
    let out = confab(fe, &["chat", "status", "--json", "--database", pg])?;
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| Error(format!("chat status --json: {e}: {out}")))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["server"].as_str().unwrap_or("").to_owned(),
                s["state"].as_str().unwrap_or("").to_owned(),
                s["live"].as_bool().unwrap_or(false),
                s["joined"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}

/// Waits (bounded) until `confab chat status` satisfies `ok`.
fn wait_status(
    fe: &Path,
    pg: &str,
    what: &str,
    ok: impl Fn(&[(String, String, bool, i64)]) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = chat_status(fe, pg)?;
        if ok(&st) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{what}: chat status {st:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Signs a user in and joins `room`; returns the client and the address of the
/// chat server that serves it.
fn sign_in_and_join(
    server: std::net::SocketAddr,
    user: &str,
    room: &str,
) -> Result<(XccosClient, String)> {
    let mut c = XccosClient::connect(server, &format!("{user}@{DOMAIN}"), "pw")?;
    let st = c.discover()?;
    ensure!(
        st == 200,
        "{user}: lookup answered {st} {}\n{}",
        c.lookup_reason,
        c.transcript()
    );
    c.join_ok(room)?;
    let target = c.server_target().unwrap_or("").to_owned();
    let ip = CHAT_SERVERS
        .iter()
        .find(|(_, ip, _)| target.contains(&format!("{ip}:")))
        .map(|(_, ip, _)| (*ip).to_owned())
        .ok_or_else(|| {
            Error(format!(
                "{user}: the chat dialog's Contact {target:?} is no chat server"
            ))
        })?;
    Ok((c, ip))
}

fn pool_scenario(pg: &str) -> Result<()> {
    let dir = confab_acceptance::temp_dir("chat-pool-ha")?;
    let fe = dir.path().join("se01");
    let file = dir.path().join("topology.toml");
    let (sip, tls, web, chat_port) = (free_port(), free_port(), free_port(), free_port());
    let mut topology = format!(
        r#"sip_domains = ["{DOMAIN}"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"

[[store]]
name = "pchat"
kind = "persistent-chat"
url = "{pg}"

[[pool]]
fqdn = "se01.{DOMAIN}"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.{DOMAIN}"
addresses = ["127.0.0.1"]
roles = ["front-end"]
[pool.machine.ports]
front-end.sip = {sip}
front-end.sip-udp = {sip}
front-end.sip-tls = {tls}
front-end.web = {web}

[[pool]]
fqdn = "pchat.{DOMAIN}"
site = "main"
next_hop = "se01.{DOMAIN}"
persistent_chat_store = "pchat"
"#
    );
    for (name, ip, state) in CHAT_SERVERS {
        topology.push_str(&format!(
            r#"
[[pool.machine]]
fqdn = "{name}.{DOMAIN}"
addresses = ["{ip}"]
roles = ["persistent-chat"]
persistent_chat = "{state}"
[pool.machine.ports]
persistent-chat.sip-tls = {chat_port}
"#
        ));
    }
    std::fs::write(&file, topology).map_err(|e| Error(format!("writing the topology: {e}")))?;
    confab(&fe, &["topology", "publish", &file.to_string_lossy()])?;
    confab(
        &fe,
        &["bootstrap", "--force", "--fqdn", &format!("se01.{DOMAIN}")],
    )?;
    let cms = format!("sqlite://{}", fe.join("confab.db").display());
    for (name, _, _) in CHAT_SERVERS {
        confab(
            &dir.path().join(name),
            &[
                "bootstrap",
                "--force",
                "--cms",
                &cms,
                "--fqdn",
                &format!("{name}.{DOMAIN}"),
            ],
        )?;
    }
    for u in USERS {
        confab(
            &fe,
            &["user", "add", &format!("{u}@{DOMAIN}"), "--password", "pw"],
        )?;
    }

    // The first chat server creates the chat tables; then the others.
    let mut chats: Vec<Serve> = Vec::new();
    let mut first = Serve::start(&dir.path().join(CHAT_SERVERS[0].0))?;
    first.wait_for("persistent chat server started")?;
    chats.push(first);
    let mut second = Serve::start(&dir.path().join(CHAT_SERVERS[1].0))?;
    second.wait_for("persistent chat server started")?;
    chats.push(second);
    let mut passive = Serve::start(&dir.path().join(CHAT_SERVERS[2].0))?;
    passive.wait_for("passive Persistent Chat server standing by")?;

    let cli = |args: &[&str]| -> Result<String> {
        let mut all = vec!["chat"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database", pg]);
        confab(&fe, &all)
    };
    cli(&["policy", "set", "--global", "--enable"])?;
    cli(&[
        "category",
        "add",
        "General",
        "--allowed-members",
        &format!("@{DOMAIN}"),
    ])?;
    cli(&[
        "room",
        "add",
        "Lobby",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    let show = cli(&["room", "show", "Lobby", "--json"])?;
    let v: serde_json::Value = serde_json::from_str(show.trim())
        .map_err(|e| Error(format!("room show --json: {e}: {show}")))?;
    let room = v["uri"].as_str().unwrap_or("").to_string();

    let mut front = Serve::start(&fe)?;
    front.wait_for("front end ready")?;
    // Both active servers are live, the passive one stands by; the room reached
    // both active servers.
    wait_status(&fe, pg, "two live active servers and a passive one", |st| {
        st.len() == 3
            && st.iter().all(|s| s.2)
            && st.iter().filter(|s| s.1 == "active").count() == 2
            && st
                .iter()
                .any(|s| s.0 == format!("pchat03.{DOMAIN}") && s.1 == "passive")
    })?;
    std::thread::sleep(Duration::from_millis(1000));

    let server: std::net::SocketAddr = format!("127.0.0.1:{sip}")
        .parse()
        .map_err(|e| Error(format!("{e}")))?;
    // One user on each active server (and whoever else signed in on the way).
    let (a_ip, b_ip) = (CHAT_SERVERS[0].1, CHAT_SERVERS[1].1);
    let mut on_a: Vec<XccosClient> = Vec::new();
    let mut on_b: Vec<XccosClient> = Vec::new();
    let mut next_user = USERS.iter();
    while on_a.is_empty() || on_b.is_empty() {
        let Some(u) = next_user.next() else {
            return Err(Error(format!(
                "no user of {USERS:?} landed on both active servers: the front end does not spread users"
            )));
        };
        let (c, ip) = sign_in_and_join(server, u, &room)?;
        ensure!(
            ip != CHAT_SERVERS[2].1,
            "{u} was sent to the passive server"
        );
        if ip == a_ip {
            on_a.push(c)
        } else {
            on_b.push(c)
        }
    }
    wait_status(
        &fe,
        pg,
        "each active server reports its joined users",
        |st| st.iter().filter(|s| s.1 == "active").all(|s| s.3 >= 1),
    )?;

    // Posts cross servers at once, both ways.
    let mut acknowledged: Vec<String> = Vec::new();
    let t = format!("from A {}", unique_token());
    let r = on_a[0].post(&room, &t)?;
    ensure!(r.status() == Some(200), "post on A: {}", r.first_line);
    acknowledged.push(t.clone());
    let got = on_b[0].wait_post(&t, Duration::from_secs(5))?;
    ensure!(got.author == on_a[0].aor(), "author {} for {t}", got.author);
    let t = format!("from B {}", unique_token());
    let r = on_b[0].post(&room, &t)?;
    ensure!(r.status() == Some(200), "post on B: {}", r.first_line);
    acknowledged.push(t.clone());
    on_a[0].wait_post(&t, Duration::from_secs(5))?;
    // Acknowledged just before the server dies.
    let t = format!("last on A {}", unique_token());
    let r = on_a[0].post(&room, &t)?;
    ensure!(r.status() == Some(200), "post on A: {}", r.first_line);
    acknowledged.push(t.clone());

    // kill -9 of server A.
    let mut a = chats.remove(0);
    a.child
        .kill()
        .map_err(|e| Error(format!("killing the chat server: {e}")))?;
    let _ = a.child.wait();
    on_b[0].wait_post(&t, Duration::from_secs(5))?;
    wait_status(&fe, pg, "the killed server is dead", |st| {
        st.iter()
            .any(|s| s.0 == format!("pchat01.{DOMAIN}") && !s.2)
    })?;
    // A's users reconnect: rediscovery and join go through B; nothing acknowledged is lost.
    for c in on_a.iter_mut() {
        let st = c.discover()?;
        ensure!(st == 200, "rediscovery answered {st}\n{}", c.transcript());
        let target = c.server_target().unwrap_or("").to_owned();
        ensure!(
            target.contains(&format!("{b_ip}:")),
            "rejoined through {target}, not the live server"
        );
        c.join_ok(&room)?;
        let history = c.backfill(&room, 50)?;
        for t in &acknowledged {
            ensure!(
                history.iter().any(|p| p.text == *t),
                "acknowledged post {t:?} is missing from the backfill: {history:?}"
            );
        }
    }
    let t = format!("after failover {}", unique_token());
    let r = on_a[0].post(&room, &t)?;
    ensure!(
        r.status() == Some(200),
        "post after failover: {}",
        r.first_line
    );
    on_b[0].wait_post(&t, Duration::from_secs(5))?;

    // The passive server takes over when told to.
    let out = cli(&["pool", "activate", &format!("pchat03.{DOMAIN}")])?;
    ensure!(out.contains("active"), "chat pool activate: {out}");
    passive.wait_for("persistent chat server started")?;
    wait_status(&fe, pg, "the activated server is live and active", |st| {
        st.iter()
            .any(|s| s.0 == format!("pchat03.{DOMAIN}") && s.1 == "active" && s.2)
    })?;
    let c_ip = CHAT_SERVERS[2].1;
    let mut on_c = None;
    for u in next_user {
        let (c, ip) = sign_in_and_join(server, u, &room)?;
        ensure!(ip != a_ip, "{u} was sent to the dead server");
        if ip == c_ip {
            on_c = Some(c);
            break;
        }
    }
    let Some(mut on_c) = on_c else {
        return Err(Error::new("no user was sent to the activated server"));
    };
    let history = on_c.backfill(&room, 50)?;
    ensure!(
        history.iter().any(|p| p.text == t),
        "the activated server's backfill lacks {t:?}: {history:?}"
    );
    let t = format!("from C {}", unique_token());
    let r = on_c.post(&room, &t)?;
    ensure!(r.status() == Some(200), "post on C: {}", r.first_line);
    on_b[0].wait_post(&t, Duration::from_secs(5))?;
    on_a[0].wait_post(&t, Duration::from_secs(5))?;
    drop(front);
    drop(passive);
    drop(chats);
    Ok(())
}

/// Issue 11, several Persistent Chat pools in one topology: two chat pools behind
/// one front end on one PostgreSQL store, each with its own server process. A room
/// named "Lobby" in each (names are unique per pool); users reach the default pool
/// through `sip:ocschat@DOMAIN` and the other through its own lookup URI; a server
/// refuses a join of the other pool's room naming that pool; posts stay in their
/// pool (delivered to its users only, listed under its room).
#[test]
fn two_chat_pools_in_one_topology() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("skipped two_chat_pools_in_one_topology: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let db = format!("confab_chat_pools_{}", unique_token());
    psql(&admin, &format!("CREATE DATABASE {db}"))?;
    let url = with_db(&admin, &db);
    let r = pools_scenario(&url);
    let dropped = psql(&admin, &format!("DROP DATABASE {db} WITH (FORCE)"));
    r.and(dropped)
}

fn pools_scenario(pg: &str) -> Result<()> {
    let dir = confab_acceptance::temp_dir("chat-pools")?;
    let fe = dir.path().join("se01");
    let file = dir.path().join("topology.toml");
    let (sip, tls, web, chat_port) = (free_port(), free_port(), free_port(), free_port());
    // (pool, server, address)
    let pools = [
        ("pchat", "pchat01", "127.0.0.2"),
        ("pchat2", "pchat21", "127.0.0.3"),
    ];
    let mut topology = format!(
        r#"sip_domains = ["{DOMAIN}"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"

[[store]]
name = "pchat"
kind = "persistent-chat"
url = "{pg}"

[[pool]]
fqdn = "se01.{DOMAIN}"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.{DOMAIN}"
addresses = ["127.0.0.1"]
roles = ["front-end"]
[pool.machine.ports]
front-end.sip = {sip}
front-end.sip-udp = {sip}
front-end.sip-tls = {tls}
front-end.web = {web}
"#
    );
    for (pool, server, ip) in pools {
        topology.push_str(&format!(
            r#"
[[pool]]
fqdn = "{pool}.{DOMAIN}"
site = "main"
next_hop = "se01.{DOMAIN}"
persistent_chat_store = "pchat"

[[pool.machine]]
fqdn = "{server}.{DOMAIN}"
addresses = ["{ip}"]
roles = ["persistent-chat"]
[pool.machine.ports]
persistent-chat.sip-tls = {chat_port}
"#
        ));
    }
    std::fs::write(&file, topology).map_err(|e| Error(format!("writing the topology: {e}")))?;
    confab(&fe, &["topology", "publish", &file.to_string_lossy()])?;
    confab(
        &fe,
        &["bootstrap", "--force", "--fqdn", &format!("se01.{DOMAIN}")],
    )?;
    let cms = format!("sqlite://{}", fe.join("confab.db").display());
    for (_, server, _) in pools {
        confab(
            &dir.path().join(server),
            &[
                "bootstrap",
                "--force",
                "--cms",
                &cms,
                "--fqdn",
                &format!("{server}.{DOMAIN}"),
            ],
        )?;
    }
    for u in ["alice", "bob", "carol", "dave"] {
        confab(
            &fe,
            &["user", "add", &format!("{u}@{DOMAIN}"), "--password", "pw"],
        )?;
    }

    // The first chat server creates the chat tables; then the other pool's.
    let mut chats: Vec<Serve> = Vec::new();
    for (_, server, _) in pools {
        let mut s = Serve::start(&dir.path().join(server))?;
        s.wait_for("persistent chat server started")?;
        chats.push(s);
    }
    let log = chats[1].log();
    ensure!(
        log.contains(&format!("ocschat.pchat2.{DOMAIN}@{DOMAIN}")),
        "the second pool's server has a lookup URI of its own:\n{log}"
    );

    let cli = |args: &[&str]| -> Result<String> {
        let mut all = vec!["chat"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database", pg]);
        confab(&fe, &all)
    };
    let pool2 = format!("pchat2.{DOMAIN}");
    cli(&["policy", "set", "--global", "--enable"])?;
    let everyone = format!("@{DOMAIN}");
    cli(&["category", "add", "General", "--allowed-members", &everyone])?;
    cli(&[
        "category",
        "add",
        "General",
        "--pool",
        &pool2,
        "--allowed-members",
        &everyone,
    ])?;
    cli(&[
        "room",
        "add",
        "Lobby",
        "--category",
        "General",
        "--privacy",
        "open",
    ])?;
    let out = cli(&[
        "room",
        "add",
        "Lobby",
        "--category",
        "General",
        "--pool",
        &pool2,
        "--privacy",
        "open",
    ])?;
    ensure!(
        out.contains(&format!("added room {pool2}\\Lobby")),
        "room add --pool: {out}"
    );
    // A name is unique per pool.
    let mut again = Command::new(confab_bin()?);
    again
        .arg("--data")
        .arg(&fe)
        .args([
            "chat",
            "room",
            "add",
            "Lobby",
            "--category",
            "General",
            "--pool",
            &pool2,
            "--database",
            pg,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let dup = run_bounded(again, Duration::from_secs(60))?;
    let err = String::from_utf8_lossy(&dup.stderr).into_owned();
    ensure!(
        !dup.status.success() && err.contains("already exists in pool"),
        "a second Lobby in pool 2 must be refused: {err}"
    );
    let list = cli(&["room", "list"])?;
    ensure!(
        list.contains("POOL") && list.contains("(default)") && list.contains(&pool2),
        "room list shows each room's pool:\n{list}"
    );
    let uri_of = |name: &str| -> Result<String> {
        let show = cli(&["room", "show", name, "--json"])?;
        let v: serde_json::Value = serde_json::from_str(show.trim())
            .map_err(|e| Error(format!("room show --json: {e}: {show}")))?;
        Ok(v["uri"].as_str().unwrap_or("").to_string())
    };
    let room1 = uri_of("Lobby")?;
    let room2 = uri_of(&format!("{pool2}\\Lobby"))?;
    ensure!(
        room1 != room2 && room1.starts_with("ma-chan://") && room2.starts_with("ma-chan://"),
        "two rooms: {room1} {room2}"
    );

    let mut front = Serve::start(&fe)?;
    front.wait_for("front end ready")?;
    let log = front.log();
    ensure!(
        log.contains(&format!("ocschat.pchat2.{DOMAIN}@{DOMAIN}")),
        "the front end routes the second pool's URIs:\n{log}"
    );
    // Administrative changes reach the chat servers within about a second.
    std::thread::sleep(Duration::from_millis(1500));

    let server: std::net::SocketAddr = format!("127.0.0.1:{sip}")
        .parse()
        .map_err(|e| Error(format!("{e}")))?;
    let lookup2 = format!("sip:ocschat.{pool2}@{DOMAIN}");
    let mut through = |user: &str, lookup: Option<&str>, ip: &str| -> Result<XccosClient> {
        let mut c = XccosClient::connect(server, &format!("{user}@{DOMAIN}"), "pw")?;
        let st = match lookup {
            Some(l) => c.discover_at(l)?,
            None => c.discover()?,
        };
        ensure!(
            st == 200,
            "{user}: lookup answered {st} {}\n{}",
            c.lookup_reason,
            c.transcript()
        );
        let target = c.server_target().unwrap_or("").to_owned();
        ensure!(
            target.contains(&format!("{ip}:")),
            "{user}: the chat dialog's Contact {target:?} is not the pool's server {ip}\nfront end:\n{}",
            front.log()
        );
        Ok(c)
    };
    let (ip1, ip2) = (pools[0].2, pools[1].2);
    let mut alice = through("alice", None, ip1)?;
    let mut carol = through("carol", None, ip1)?;
    let mut bob = through("bob", Some(&lookup2), ip2)?;
    let mut dave = through("dave", Some(&lookup2), ip2)?;

    // Each pool's server serves its own Lobby and refuses the other's, naming its pool.
    let r = alice.join(&room2)?;
    let refusal = confab_acceptance::xccos::resp(&r);
    ensure!(
        matches!(&refusal, Some((403, reason)) if reason.contains(&pool2)),
        "a join of pool 2's room through pool 1: {refusal:?} {r}"
    );
    let r = bob.join(&room1)?;
    let refusal = confab_acceptance::xccos::resp(&r);
    ensure!(
        matches!(&refusal, Some((403, reason)) if reason.contains("default Persistent Chat pool")),
        "a join of the default pool's room through pool 2: {refusal:?} {r}"
    );
    alice.join_ok(&room1)?;
    carol.join_ok(&room1)?;
    bob.join_ok(&room2)?;
    dave.join_ok(&room2)?;

    // Posts stay in their pool.
    let t1 = format!("pool one {}", unique_token());
    let r = alice.post(&room1, &t1)?;
    ensure!(r.status() == Some(200), "post in pool 1: {}", r.first_line);
    carol.wait_post(&t1, Duration::from_secs(5))?;
    let t2 = format!("pool two {}", unique_token());
    let r = bob.post(&room2, &t2)?;
    ensure!(r.status() == Some(200), "post in pool 2: {}", r.first_line);
    dave.wait_post(&t2, Duration::from_secs(5))?;
    ensure!(
        !dave.got_post(&t1, Duration::from_millis(500))?
            && !carol.got_post(&t2, Duration::from_millis(500))?,
        "a post crossed pools"
    );
    let history = dave.backfill(&room2, 50)?;
    ensure!(
        history.iter().any(|p| p.text == t2) && !history.iter().any(|p| p.text == t1),
        "pool 2's backfill: {history:?}"
    );
    let listed1 = cli(&["message", "list", "Lobby", "--json"])?;
    let listed2 = cli(&["message", "list", &format!("{pool2}\\Lobby"), "--json"])?;
    ensure!(
        listed1.contains(&t1) && !listed1.contains(&t2),
        "the default pool's Lobby holds its post only: {listed1}"
    );
    ensure!(
        listed2.contains(&t2) && !listed2.contains(&t1),
        "pool 2's Lobby holds its post only: {listed2}"
    );
    drop(front);
    drop(chats);
    Ok(())
}
