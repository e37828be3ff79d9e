//! Two `confab serve` front ends of one Enterprise pool (issue 12) on 127.0.0.2 and
//! 127.0.0.3 sharing a PostgreSQL back end, driven by real baresip user agents
//! (tests/clients/baresip/run_pool.py):
//! 1. alice signed in on fe01 and bob on fe02 see each other's presence, exchange
//!    MESSAGEs both ways and call each other both ways; alice calls bob's number
//!    (his Enterprise Voice line URI), which fe01 sends to bob's home fe02;
//! 2. fe02 is killed with SIGKILL: once its lease ends, bob signs in through fe01
//!    and alice and bob reach each other again;
//! 3. fe02 is started again and serves: carol signs in on it (homed there, the
//!    least-loaded front end) and exchanges MESSAGEs with alice on fe01.
//!
//! `confab pool status` is checked after each step. Needs CONFAB_TEST_POSTGRES_URL
//! (skipped with a message otherwise), baresip, python3 and psql.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::pg::TestDb;
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, run_bounded, tail, tests_dir, tools_required,
};

const DOMAIN: &str = "example.com";
const POOL: &str = "pool01.example.com";
const LEASE_MS: u64 = 2_000;
const BOB_LINE: &str = "tel:+14255550101";
/// bob's number as a Lync client dials it.
const BOB_NUMBER_URI: &str = "sip:+14255550101@example.com;user=phone";

/// Runs run_pool.py; `a`/`b` are `(user, password, server)`.
fn run_pool(
    label: &str,
    a: (&str, &str, &ConfabServer),
    b: (&str, &str, &ConfabServer),
    extra: &[&str],
    servers: &[&ConfabServer],
) -> Result<String> {
    let side = |(user, pw, s): (&str, &str, &ConfabServer)| {
        format!("{user}:{pw}@{}:{}", s.sip_addr().ip(), s.sip_port())
    };
    let workdir = a.2.work_dir().join(format!("baresip-{label}"));
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("clients/baresip/run_pool.py"))
        .args(["--a", &side(a), "--b", &side(b)])
        .args(["--domain", DOMAIN, "--timeout", "10", "--sip-trace"])
        .args(extra)
        .arg("--workdir")
        .arg(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = run_bounded(cmd, Duration::from_secs(180))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "[pool] {label}: {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        tail(&stdout, 30)
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.ends_with(" failed"))
        .unwrap_or("")
        .to_owned();
    if !out.status.success() || !summary.ends_with(" 0 failed") {
        let logs: String = servers.iter().map(|s| s.context()).collect();
        return Err(Error(format!(
            "{label}: {summary}\n{}\n--- stderr ---\n{}{logs}",
            tail(&stdout, 150),
            tail(&String::from_utf8_lossy(&out.stderr), 20)
        )));
    }
    Ok(stdout)
}

fn pool_status(s: &ConfabServer, db: &TestDb, conf: &std::path::Path) -> Result<String> {
    let conf = conf.to_string_lossy().into_owned();
    s.cli(&["--config", &conf, "pool", "status", "--database", &db.url])
}

/// The status line of a front end: (state, homed users).
fn member_line<'a>(status: &'a str, member: &str) -> Option<(&'a str, &'a str)> {
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with(member))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    // member sip heartbeat state users registrations
    Some((f.get(3).copied()?, f.get(4).copied()?))
}

fn wait_status(
    s: &ConfabServer,
    db: &TestDb,
    conf: &std::path::Path,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> Result<String> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let st = pool_status(s, db, conf)?;
        if ok(&st) {
            return Ok(st);
        }
        if Instant::now() > end {
            return Err(Error(format!("pool status never showed {what}:\n{st}")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_front_ends_act_as_one_pool() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    if !tools_required(&["baresip", "python3", "psql"]) {
        return Ok(());
    }
    let t0 = Instant::now();
    let db = TestDb::create(&admin, "pool")?;
    let dir = confab_acceptance::temp_dir("pool")?;
    let conf = |member: &str| -> Result<std::path::PathBuf> {
        let path = dir.path().join(format!("{member}.toml"));
        std::fs::write(
            &path,
            format!(
                "[pool]\nenabled = true\nname = \"{POOL}\"\nmember = \"{member}\"\n\
                 heartbeat_ms = 250\nlease_ms = {LEASE_MS}\n"
            ),
        )
        .map_err(|e| Error(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    };
    let (conf1, conf2) = (conf("fe01.example.com")?, conf("fe02.example.com")?);
    let opts = |ip: Ipv4Addr, conf: &std::path::Path| {
        ServerOptions::new()
            .domain(DOMAIN)
            .ip(ip)
            .arg("--database")
            .arg(&db.url)
            .arg("--config")
            .arg(&conf.to_string_lossy())
    };
    let fe1 = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 2), &conf1))?;
    for (user, pw) in [("alice", "alicepw"), ("bob", "bobpw"), ("carol", "carolpw")] {
        fe1.cli(&[
            "user",
            "add",
            &format!("{user}@{DOMAIN}"),
            "--password",
            pw,
            "--database",
            &db.url,
        ])?;
    }
    // bob's number (Enterprise Voice): alice calls it across the pool in step 1.
    for args in [
        &["user", "set", "bob@example.com", "--line-uri", BOB_LINE][..],
        &["voice", "dialplan", "add", "global"][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["--database", &db.url]);
        fe1.cli(&args)?;
    }
    let mut fe2 = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 3), &conf2))?;
    wait_status(&fe1, &db, &conf1, "two live front ends", |st| {
        member_line(st, "fe01.example.com").is_some_and(|(s, _)| s == "live")
            && member_line(st, "fe02.example.com").is_some_and(|(s, _)| s == "live")
    })?;
    // The users reach both front ends through the user change feed (200 ms).
    std::thread::sleep(Duration::from_millis(600));

    // 1. alice on fe01, bob on fe02: presence, IM and calls both ways.
    run_pool(
        "across",
        ("alice", "alicepw", &fe1),
        ("bob", "bobpw", &fe2),
        &["--presence", "--call", "--call-number", BOB_NUMBER_URI],
        &[&fe1, &fe2],
    )?;
    let st = pool_status(&fe1, &db, &conf1)?;
    assert!(
        st.contains("users homed on fe01.example.com: alice@example.com")
            && st.contains("users homed on fe02.example.com: bob@example.com"),
        "each user homed where they signed in:\n{st}"
    );
    // The call alice placed to bob's number is recorded once (where it entered,
    // fe01) as an internal call to bob, with the number dialed, answered.
    let report = || fe1.cli(&["report", "calls", "--csv", "--database", &db.url]);
    let by_number = |csv: &str| -> Vec<String> {
        csv.lines()
            .filter(|l| l.contains(",internal,alice@example.com,bob@example.com,+14255550101,"))
            .map(str::to_owned)
            .collect()
    };
    let csv =
        confab_acceptance::wait_for(Duration::from_secs(5), Duration::from_millis(200), || {
            report().ok().filter(|c| !by_number(c).is_empty())
        });
    let csv = match csv {
        Some(c) => c,
        None => report()?,
    };
    let lines = by_number(&csv);
    assert!(
        lines.len() == 1 && lines[0].contains(",,200,answered,"),
        "alice's call to bob's number in `confab report calls`:\n{csv}"
    );

    // 2. fe02 dies; its lease ends; bob signs in through fe01.
    fe2.kill9()?;
    wait_status(&fe1, &db, &conf1, "fe02 dead", |st| {
        member_line(st, "fe02.example.com").is_some_and(|(s, _)| s == "dead")
    })?;
    // fe01's own view uses the same lease (its clock may be a heartbeat behind).
    std::thread::sleep(Duration::from_millis(300));
    run_pool(
        "failover",
        ("alice", "alicepw", &fe1),
        ("bob", "bobpw", &fe1),
        &[],
        &[&fe1, &fe2],
    )?;
    let st = pool_status(&fe1, &db, &conf1)?;
    assert!(
        st.contains("users homed on fe01.example.com: alice@example.com, bob@example.com"),
        "bob rehomed on fe01:\n{st}"
    );

    // 3. fe02 comes back and takes the next new user.
    fe2.start_again()?;
    wait_status(&fe1, &db, &conf1, "fe02 live again", |st| {
        member_line(st, "fe02.example.com").is_some_and(|(s, _)| s == "live")
    })?;
    std::thread::sleep(Duration::from_millis(600));
    run_pool(
        "restarted",
        ("alice", "alicepw", &fe1),
        ("carol", "carolpw", &fe2),
        &[],
        &[&fe1, &fe2],
    )?;
    let st = pool_status(&fe1, &db, &conf1)?;
    eprintln!("[pool] confab pool status:\n{st}");
    assert!(
        st.contains("users homed on fe02.example.com: carol@example.com"),
        "carol homed on the restarted fe02:\n{st}"
    );
    eprintln!("[pool] whole test: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

#[test]
fn status_line_parsing() {
    let st = "pool p (lease 2.0 s)\n  front end sip heartbeat state users registrations\n  fe01.example.com 127.0.0.2:1 0.1s live 2 1\n";
    assert_eq!(member_line(st, "fe01.example.com"), Some(("live", "2")));
    assert_eq!(member_line(st, "fe02.example.com"), None);
}

/// A TCP relay to PostgreSQL that can be cut (every connection closed, new ones
/// closed at once) and restored, to take the back end away from a front end.
struct PgRelay {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl PgRelay {
    fn start(upstream: std::net::SocketAddr) -> Result<PgRelay> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error(format!("relay bind: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error(format!("relay: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error(format!("relay: {e}")))?;
        let relay = PgRelay {
            addr,
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, stop, conns) = (relay.up.clone(), relay.stop.clone(), relay.conns.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if !up.load(Ordering::Relaxed) {
                    continue; // dropped: closed at once
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) =
                    std::net::TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                let pairs = [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                if let Ok(mut c) = conns.lock() {
                    c.push(client);
                    c.push(server);
                }
                for (from, to) in pairs {
                    if let (Ok(mut from), Ok(mut to)) = (from, to) {
                        std::thread::spawn(move || {
                            let _ = std::io::copy(&mut from, &mut to);
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
            }
        });
        Ok(relay)
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut c) = self.conns.lock() {
            for s in c.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for PgRelay {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `postgres://user:pw@HOST:PORT/db` -> (HOST:PORT, URL with `with` instead).
fn split_host(url: &str, with: std::net::SocketAddr) -> Option<(std::net::SocketAddr, String)> {
    let at = url.rfind('@')?;
    let rest = &url[at + 1..];
    let slash = rest.find('/')?;
    let hostport = &rest[..slash];
    let addr: std::net::SocketAddr = hostport.parse().ok()?;
    Some((addr, format!("{}{with}{}", &url[..at + 1], &rest[slash..])))
}

#[test]
fn a_front_end_without_its_back_end_refuses_and_recovers() -> Result<()> {
    use confab_acceptance::sip::{Ua, UdpLink};
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    if !tools_required(&["psql"]) {
        return Ok(());
    }
    let db = TestDb::create(&admin, "pool")?;
    let placeholder: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
    let Some((upstream, _)) = split_host(&db.url, placeholder) else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL does not name an ip:port host");
        return Ok(());
    };
    let relay = PgRelay::start(upstream)?;
    let (_, relayed) = split_host(&db.url, relay.addr)
        .ok_or_else(|| Error::new("could not rewrite the database URL"))?;
    let dir = confab_acceptance::temp_dir("pool-outage")?;
    let conf = dir.path().join("fe.toml");
    std::fs::write(
        &conf,
        format!(
            "[pool]\nenabled = true\nname = \"{POOL}\"\nmember = \"fe09.example.com\"\n\
             heartbeat_ms = 200\nlease_ms = 1500\n"
        ),
    )
    .map_err(|e| Error(format!("writing the config: {e}")))?;
    let mut fe = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .ip(Ipv4Addr::new(127, 0, 0, 4))
            .arg("--database")
            .arg(&relayed)
            .arg("--config")
            .arg(&conf.to_string_lossy()),
    )?;
    fe.cli(&[
        "user",
        "add",
        &format!("dave@{DOMAIN}"),
        "--password",
        "davepw",
        "--database",
        &db.url,
    ])?;
    std::thread::sleep(Duration::from_millis(600));
    let mut dave = Ua::new(UdpLink::new(fe.sip_addr())?, "dave", "davepw", DOMAIN);
    fe.with_log(dave.register_ok(600))?;

    // The back end goes away: once the lease has run out, sign-in is refused at
    // once with a reason and a retry time (no hang, the server keeps running).
    relay.cut();
    std::thread::sleep(Duration::from_millis(2_500));
    let asked = Instant::now();
    let r = fe.with_log(dave.register(600))?;
    assert_eq!(r.status(), Some(503), "{}\n{}", r.summary(), fe.context());
    assert!(
        r.first_line.contains("lost the pool's back end"),
        "{}",
        r.first_line
    );
    assert!(r.header("Retry-After").is_some(), "{}", r.summary());
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(fe.is_running(), "{}", fe.context());

    // It comes back: the next heartbeat puts the front end back in the pool.
    relay.restore();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = fe.with_log(dave.register(600))?;
        if r.status() == Some(200) {
            break;
        }
        assert!(
            Instant::now() < end,
            "still {} after the back end returned\n{}",
            r.first_line,
            fe.context()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(())
}
