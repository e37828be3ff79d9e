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
