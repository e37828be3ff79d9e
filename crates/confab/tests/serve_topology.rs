//! `confab serve` started from a bootstrapped topology: a Standard Edition server,
//! and (when CONFAB_TEST_POSTGRES_URL is set) two Enterprise front ends sharing a
//! PostgreSQL back end, each answering SIP over UDP.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

fn confab(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run confab")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> String {
    let t = text(&o);
    assert!(o.status.success(), "confab failed:\n{t}");
    t
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A loopback port free for both TCP and UDP (SIP binds both).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Front-end port overrides on free ports: `(table, sip, sip-tls, web)`.
fn front_end_ports() -> (String, u16, u16, u16) {
    let (sip, tls, web) = (free_port(), free_port(), free_port());
    (
        format!(
            "[pool.machine.ports]\nfront-end.sip = {sip}\nfront-end.sip-udp = {sip}\nfront-end.sip-tls = {tls}\nfront-end.web = {web}\n"
        ),
        sip,
        tls,
        web,
    )
}

/// A running `confab serve`, killed when dropped (also when the test fails).
struct Server {
    child: Child,
    /// Log lines read so far.
    log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(data: &Path, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(flags)
            .env_remove("RUST_LOG")
            .env_remove("LD_PRELOAD")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start confab serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            log: Vec::new(),
            lines,
        }
    }

    /// Waits for the "front end ready" line and returns it.
    fn ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let ready = line.contains("front end ready");
                    self.log.push(line.clone());
                    if ready {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = self.child.try_wait().ok().flatten();
        panic!(
            "confab serve did not become ready (exit: {status:?}):\n{}",
            self.log.join("\n")
        );
    }

    fn log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` over UDP to 127.0.0.1:`port` and returns the first final response.
fn exchange(sock: &UdpSocket, port: u16, request: &str) -> String {
    sock.send_to(request.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.starts_with("SIP/2.0 1") {
            continue;
        }
        return msg;
    }
    panic!("no response from 127.0.0.1:{port} to:\n{request}");
}

fn udp_client() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn options(sock: &UdpSocket, port: u16, domain: &str) -> String {
    let local = sock.local_addr().unwrap();
    let request = format!(
        "OPTIONS sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{domain}>;tag={}\r\n\
         To: <sip:{domain}>\r\n\
         Call-ID: {}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        token(),
        token(),
        token()
    );
    exchange(sock, port, &request)
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The value of `name="..."` or `name=token` in a digest challenge.
fn param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge.trim_start_matches("Digest").trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value.to_string());
        }
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    None
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// REGISTERs `user@domain` with digest authentication; returns the final response.
fn register(sock: &UdpSocket, port: u16, user: &str, domain: &str, password: &str) -> String {
    let local = sock.local_addr().unwrap();
    let call_id = token();
    let tag = token();
    let uri = format!("sip:{domain}");
    let build = |cseq: u32, auth: Option<&str>| {
        let mut r = format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{domain}>;tag={tag}\r\n\
             To: <sip:{user}@{domain}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local};transport=udp>\r\n\
             Expires: 600\r\n",
            token()
        );
        if let Some(a) = auth {
            r.push_str(&format!("Authorization: {a}\r\n"));
        }
        r.push_str("Content-Length: 0\r\n\r\n");
        r
    };
    let first = exchange(sock, port, &build(1, None));
    assert!(
        first.starts_with("SIP/2.0 401"),
        "expected a challenge:\n{first}"
    );
    let challenge = header(&first, "WWW-Authenticate").expect("WWW-Authenticate");
    let realm = param(challenge, "realm").expect("realm");
    let nonce = param(challenge, "nonce").expect("nonce");
    let opaque = param(challenge, "opaque");
    let qop = param(challenge, "qop");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let mut auth = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5"
    );
    let response = if qop.is_some_and(|q| q.split(',').any(|q| q.trim() == "auth")) {
        let (nc, cnonce) = ("00000001", "0a4f113b");
        auth.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    } else {
        md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
    };
    auth.push_str(&format!(", response=\"{response}\""));
    if let Some(o) = opaque {
        auth.push_str(&format!(", opaque=\"{o}\""));
    }
    exchange(sock, port, &build(2, Some(&auth)))
}

#[test]
fn standard_edition_serves_from_its_topology() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("topology.toml");
    ok(confab(
        &data,
        &[
            "topology",
            "new",
            "--edition",
            "standard",
            "--fqdn",
            "se01.contoso.com",
            "-o",
            arg(&file),
        ],
    ));
    // Loopback only, on free ports.
    let (ports, _, topo_tls, topo_web) = front_end_ports();
    let starter = std::fs::read_to_string(&file).unwrap();
    let topology = starter
        .replacen("addresses = []", "addresses = [\"127.0.0.1\"]", 1)
        .replacen(
            "roles = [\"front-end\"]\n",
            &format!("roles = [\"front-end\"]\n{ports}"),
            1,
        );
    assert_ne!(topology, starter);
    std::fs::write(&file, topology).unwrap();
    ok(confab(&data, &["topology", "publish", arg(&file)]));
    ok(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "se01.contoso.com"],
    ));

    // The SIP flag wins over the topology; TLS and HTTP come from it, and so do the
    // listen address (127.0.0.1) and the domain.
    let sip = free_port();
    let mut server = Server::start(&data, &["--sip", &format!("127.0.0.1:{sip}")]);
    let ready = server.ready();
    assert!(ready.contains("domain=contoso.com"), "{ready}");
    assert!(ready.contains(&format!("sip=127.0.0.1:{sip}")), "{ready}");
    assert!(ready.contains(&format!("127.0.0.1:{topo_tls}")), "{ready}");
    assert!(
        ready.contains(&format!("http=127.0.0.1:{topo_web}")),
        "{ready}"
    );
    let log = server.log();
    assert!(log.contains("topology"), "{log}");
    assert!(log.contains("se01.contoso.com"), "{log}");

    let sock = udp_client();
    let reply = options(&sock, sip, "contoso.com");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    drop(server);

    // Every port given by flag: the flags win.
    let (sip, tls, http) = (free_port(), free_port(), free_port());
    let mut server = Server::start(
        &data,
        &[
            "--sip",
            &format!("127.0.0.1:{sip}"),
            "--tls",
            &format!("127.0.0.1:{tls}"),
            "--http",
            &format!("127.0.0.1:{http}"),
        ],
    );
    let ready = server.ready();
    assert!(ready.contains(&format!("127.0.0.1:{tls}")), "{ready}");
    assert!(ready.contains(&format!("http=127.0.0.1:{http}")), "{ready}");
    let reply = options(&sock, sip, "contoso.com");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
}

#[tokio::test]
async fn enterprise_front_ends_share_a_postgres_back_end() {
    let Ok(base) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    let backend =
        confab_topology::db::with_database(&base, &format!("confab_test_{}_serve", token()))
            .unwrap();
    let run = tokio::task::spawn_blocking({
        let backend = backend.clone();
        move || enterprise_scenario(&backend)
    })
    .await;
    use sqlx::migrate::MigrateDatabase;
    if sqlx::Postgres::database_exists(&backend).await.unwrap() {
        sqlx::Postgres::force_drop_database(&backend).await.unwrap();
    }
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn enterprise_scenario(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("topology.toml");
    let (ports1, sip1, _, _) = front_end_ports();
    let (ports2, topo_sip2, _, _) = front_end_ports();
    std::fs::write(
        &file,
        format!(
            r#"sip_domains = ["contoso.com"]

[[site]]
name = "main"

[[store]]
name = "backend"
kind = "back-end"
url = "{backend}"

[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
users = 10000

[[pool.machine]]
fqdn = "fe01.contoso.com"
addresses = ["127.0.0.1"]
roles = ["front-end"]
{ports1}
[[pool.machine]]
fqdn = "fe02.contoso.com"
roles = ["front-end"]
{ports2}"#
        ),
    )
    .unwrap();
    let admin = dir.path().join("admin");
    ok(confab(&admin, &["topology", "publish", arg(&file)]));

    let fe1 = dir.path().join("fe01");
    let fe2 = dir.path().join("fe02");
    for (data, fqdn) in [(&fe1, "fe01.contoso.com"), (&fe2, "fe02.contoso.com")] {
        ok(confab(
            data,
            &["bootstrap", "--force", "--cms", backend, "--fqdn", fqdn],
        ));
    }
    // One user, added once, in the shared back end.
    ok(confab(
        &fe1,
        &[
            "user",
            "add",
            "alice@contoso.com",
            "--password",
            "pw",
            "--database",
            backend,
        ],
    ));

    // The first front end starts from its replica alone: database, domain, address
    // and ports come from the topology. The second has no address in the topology,
    // so it is given loopback addresses on other ports by flag (the flags win);
    // its database and domain still come from the topology.
    let (sip2, tls2, http2) = (free_port(), free_port(), free_port());
    let mut s1 = Server::start(&fe1, &[]);
    let mut s2 = Server::start(
        &fe2,
        &[
            "--sip",
            &format!("127.0.0.1:{sip2}"),
            "--tls",
            &format!("127.0.0.1:{tls2}"),
            "--http",
            &format!("127.0.0.1:{http2}"),
        ],
    );
    assert_ne!(sip2, topo_sip2);
    for (server, sip, fqdn) in [
        (&mut s1, sip1, "fe01.contoso.com"),
        (&mut s2, sip2, "fe02.contoso.com"),
    ] {
        let ready = server.ready();
        assert!(ready.contains("domain=contoso.com"), "{ready}");
        assert!(ready.contains(&format!("sip=127.0.0.1:{sip}")), "{ready}");
        assert!(ready.contains("users=1"), "{ready}");
        let log = server.log();
        assert!(log.contains(fqdn), "{log}");
        assert!(log.contains("postgres://"), "{log}");
        assert!(!log.contains("confab:confab@"), "password logged:\n{log}");
    }

    // The two front ends form the topology's pool (issue 12): alice's first
    // sign-in homes her on fe01; signing in on fe02 sends her home.
    let sock = udp_client();
    let reply = register(&sock, sip1, "alice", "contoso.com", "pw");
    assert!(
        reply.starts_with("SIP/2.0 200"),
        "REGISTER at 127.0.0.1:{sip1}:\n{reply}"
    );
    for (server, fqdn) in [(&mut s1, "fe01.contoso.com"), (&mut s2, "fe02.contoso.com")] {
        let log = server.log();
        assert!(
            log.contains("joined the pool") && log.contains("pool01.contoso.com"),
            "{fqdn} did not join the pool:\n{log}"
        );
    }
    // fe01 records alice's home in the back end just after answering her, and
    // fe02 learns it through the pool's change feed; a sign-in on fe02 before
    // that is served where it lands (docs/decisions.md, "One pool").
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s1
        .log()
        .contains("user homed user=alice@contoso.com home=fe01.contoso.com")
    {
        assert!(
            std::time::Instant::now() < end,
            "fe01 never homed alice:\n{}",
            s1.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut reply = String::new();
    for _ in 0..25 {
        reply = register(&sock, sip2, "alice", "contoso.com", "pw");
        if reply.starts_with("SIP/2.0 301") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        reply.starts_with("SIP/2.0 301")
            && reply.contains(&format!("<sip:127.0.0.1:{sip1};transport=udp>")),
        "REGISTER at fe02 (alice is homed on fe01):\n{reply}\n--- fe01 ---\n{}\n--- fe02 ---\n{}",
        s1.log(),
        s2.log()
    );
}
