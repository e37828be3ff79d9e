//! Two Enterprise pools and a Director (issue 12) on loopback addresses, sharing
//! one PostgreSQL database (the topology's directory):
//! - pool A's front end on 127.0.0.2, pool B's on 127.0.0.3, the Director on
//!   127.0.0.4 (`[director] enabled`);
//! 1. pidgin-sipe (carol, homed on pool A) signs in through the Director: NTLM
//!    there, `301` to pool A's front end, signs in there with her contact list
//!    (`confab pool status`: registered on pool A's front end, none on the
//!    Director);
//! 2. baresip: alice on pool A's front end and bob (pool B) through the Director,
//!    which proxies baresip's sign-in (it does not follow redirects): MESSAGEs
//!    both ways and a call across the pools;
//! 3. `confab user move carol --pool B`: carol signs in through the Director again
//!    and lands on pool B, with her contact list.
//!
//! Needs CONFAB_TEST_POSTGRES_URL (skipped with a message otherwise), baresip,
//! python3, psql and the pidgin-sipe tools.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, run_bounded, tail, tests_dir, tools_required,
};

const DOMAIN: &str = "example.com";
const POOL_A: &str = "poola.example.com";
const POOL_B: &str = "poolb.example.com";
const FE_A: &str = "fea1.example.com";
const FE_B: &str = "feb1.example.com";
const DIRECTOR: &str = "dir01.example.com";
const CAROL: (&str, &str) = ("carol@example.com", "carolpw");

fn psql(url: &str, sql: &str) -> Result<()> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(30))?;
    if !out.status.success() {
        return Err(Error(format!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// A database of its own on the test server, dropped at the end.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn create(admin: &str) -> Result<TestDb> {
        let name: String = format!("confab_dir_{}", confab_acceptance::unique_token())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        let (base, _) = admin
            .rsplit_once('/')
            .ok_or_else(|| Error::new("CONFAB_TEST_POSTGRES_URL has no database part"))?;
        Ok(TestDb {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

struct Topology {
    db: TestDb,
    _dir: tempfile::TempDir,
    conf_a: PathBuf,
    fe_a: ConfabServer,
    fe_b: ConfabServer,
    director: ConfabServer,
}

impl Topology {
    fn servers(&self) -> [&ConfabServer; 3] {
        [&self.fe_a, &self.fe_b, &self.director]
    }

    fn logs(&self) -> String {
        self.servers().iter().map(|s| s.context()).collect()
    }

    /// `confab ARGS --database URL`.
    fn cli(&self, args: &[&str]) -> Result<String> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--database", self.db.url.as_str()]);
        self.fe_a.cli(&all)
    }

    /// `confab pool status` (every pool).
    fn status(&self) -> Result<String> {
        let conf = self.conf_a.to_string_lossy().into_owned();
        self.fe_a.cli(&[
            "--config",
            &conf,
            "pool",
            "status",
            "--database",
            &self.db.url,
        ])
    }

    fn wait_status(&self, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let st = self.status()?;
            if ok(&st) {
                return Ok(st);
            }
            if Instant::now() > end {
                return Err(Error(format!("pool status never showed {what}:\n{st}")));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A server's status line: (state, homed users, registrations).
fn member_line<'a>(status: &'a str, member: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with(member))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    // member sip heartbeat state users registrations
    Some((f.get(3).copied()?, f.get(4).copied()?, f.get(5).copied()?))
}

fn registrations(status: &str, member: &str) -> u64 {
    member_line(status, member)
        .and_then(|(_, _, r)| r.parse().ok())
        .unwrap_or(0)
}

fn homed(status: &str, member: &str, user: &str) -> bool {
    status.lines().any(|l| {
        l.trim_start()
            .strip_prefix(&format!("users homed on {member}: "))
            .is_some_and(|users| users.split(", ").any(|u| u == user))
    })
}

fn conf(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).map_err(|e| Error(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

fn start(admin: &str) -> Result<Topology> {
    let db = TestDb::create(admin)?;
    let dir = confab_acceptance::temp_dir("director")?;
    let pool = |pool: &str, member: &str| {
        format!(
            "[pool]\nenabled = true\nname = \"{pool}\"\nmember = \"{member}\"\n\
             heartbeat_ms = 250\nlease_ms = 2000\n"
        )
    };
    let conf_a = conf(dir.path(), "fea1", &pool(POOL_A, FE_A))?;
    let conf_b = conf(dir.path(), "feb1", &pool(POOL_B, FE_B))?;
    let conf_d = conf(
        dir.path(),
        "dir01",
        &format!(
            "{}\n[director]\nenabled = true\n",
            pool("dir.example.com", DIRECTOR).replace("enabled = true\n", "")
        ),
    )?;
    let opts = |ip: Ipv4Addr, conf: &Path| {
        ServerOptions::new()
            .domain(DOMAIN)
            .ip(ip)
            .arg("--database")
            .arg(&db.url)
            .arg("--config")
            .arg(&conf.to_string_lossy())
    };
    let fe_a = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 2), &conf_a))?;
    let fe_b = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 3), &conf_b))?;
    let director = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 4), &conf_d))?;
    Ok(Topology {
        db,
        _dir: dir,
        conf_a,
        fe_a,
        fe_b,
        director,
    })
}

/// run_pool.py: `a`/`b` are `(user, password, server)`.
fn run_pool(
    t: &Topology,
    label: &str,
    a: (&str, &str, &ConfabServer),
    b: (&str, &str, &ConfabServer),
    extra: &[&str],
) -> Result<String> {
    let side = |(user, pw, s): (&str, &str, &ConfabServer)| {
        format!("{user}:{pw}@{}:{}", s.sip_addr().ip(), s.sip_port())
    };
    let workdir = t.fe_a.work_dir().join(format!("baresip-{label}"));
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
        "[director] {label}: {:.1} s\n{}",
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
        return Err(Error(format!(
            "{label}: {summary}\n{}\n--- stderr ---\n{}{}",
            tail(&stdout, 150),
            tail(&String::from_utf8_lossy(&out.stderr), 20),
            t.logs()
        )));
    }
    Ok(stdout)
}

/// carol signs in with pidgin-sipe through the Director and must be registered
/// on `home` (and nowhere else), with alice in her buddy list (her server-side
/// contact list).
fn sipe_through_director(t: &Topology, label: &str, home: &str, other: &str) -> Result<()> {
    let work = t.director.work_dir().join("sipe");
    let run = SipeCmd::new(&work, label, t.director.sip_port(), "tcp", CAROL)
        .host(Ipv4Addr::new(127, 0, 0, 4))
        .args(&[
            "--expect-buddy",
            "sip:alice@example.com",
            "--contact-wait",
            "15",
            "--stay",
            "3",
        ])
        .start()?;
    let signed_in = run.wait_for_output("PASS sign-in carol@example.com", Duration::from_secs(90));
    // While carol stays signed in: her registration is on her home pool's front
    // end (heartbeats carry each server's registration count).
    let seen = signed_in
        .then(|| {
            t.wait_status(&format!("carol registered on {home}"), |st| {
                registrations(st, home) >= 1 && homed(st, home, CAROL.0)
            })
        })
        .transpose();
    let out = run.finish(Duration::from_secs(180))?;
    out.require(
        &[
            "sign-in carol@example.com",
            "buddy list of carol@example.com has sip:alice@example.com",
        ],
        &t.director,
    )
    .map_err(|e| Error(format!("{label}: {e}\n{}", t.logs())))?;
    let st = seen?.ok_or_else(|| Error(format!("{label}: carol never signed in")))?;
    eprintln!("[director] {label}: confab pool status:\n{st}");
    assert_eq!(
        registrations(&st, DIRECTOR),
        0,
        "the Director holds no registrations:\n{st}"
    );
    assert_eq!(
        registrations(&st, other),
        0,
        "carol is not on {other}:\n{st}"
    );
    assert!(
        !homed(&st, other, CAROL.0),
        "carol is not homed on {other}:\n{st}"
    );
    let log = t.director.log_text();
    assert!(log.contains("running as a Director"), "{}", tail(&log, 40));
    Ok(())
}

#[test]
fn two_pools_and_a_director() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let mut tools = vec!["baresip", "python3", "psql"];
    tools.extend_from_slice(SIPE_TOOLS);
    if !tools_required(&tools) {
        return Ok(());
    }
    let t0 = Instant::now();
    let t = start(&admin)?;
    if t.fe_a.skip_if_external("two_pools_and_a_director") {
        return Ok(());
    }
    t.wait_status("three live servers", |st| {
        [FE_A, FE_B, DIRECTOR]
            .iter()
            .all(|m| member_line(st, m).is_some_and(|(s, _, _)| s == "live"))
    })?;

    // Users are homed on pools; with two pools the pool must be named.
    let err = t
        .cli(&["user", "add", "dave@example.com", "--password", "d"])
        .expect_err("two pools and no --pool");
    assert!(err.0.contains("several front-end pools"), "{err}");
    for (user, pw, pool) in [
        ("alice", "alicepw", POOL_A),
        ("bob", "bobpw", POOL_B),
        ("carol", "carolpw", POOL_A),
    ] {
        let out = t.cli(&[
            "user",
            "add",
            &format!("{user}@{DOMAIN}"),
            "--password",
            pw,
            "--pool",
            pool,
        ])?;
        assert!(out.contains(&format!("(pool {pool})")), "{out}");
    }
    let list = t.cli(&["user", "list"])?;
    assert!(
        list.lines()
            .any(|l| l.starts_with("bob@example.com") && l.trim_end().ends_with(POOL_B)),
        "{list}"
    );
    let err = t
        .cli(&["user", "move", "nobody@example.com", "--pool", POOL_B])
        .expect_err("unknown user");
    assert!(err.0.contains("nobody@example.com not found"), "{err}");
    let err = t
        .cli(&["user", "move", CAROL.0, "--pool", "dir.example.com"])
        .expect_err("a Director pool homes no one");
    assert!(err.0.contains("unknown pool dir.example.com"), "{err}");
    t.cli(&["contact", "add", CAROL.0, "alice@example.com"])?;
    // The users reach every server through the user change feed (200 ms).
    std::thread::sleep(Duration::from_millis(600));

    // 1. pidgin-sipe through the Director lands on pool A.
    sipe_through_director(&t, "carol-a", FE_A, FE_B)?;

    // 2. alice on pool A, bob (pool B) through the Director: IM and a call.
    run_pool(
        &t,
        "across-pools",
        ("alice", "alicepw", &t.fe_a),
        ("bob", "bobpw", &t.director),
        &["--call"],
    )?;
    let st = t.status()?;
    assert!(
        homed(&st, FE_B, "bob@example.com"),
        "bob homed on pool B:\n{st}"
    );

    // 3. carol moves to pool B and signs in there, contact list intact.
    let out = t.cli(&["user", "move", CAROL.0, "--pool", POOL_B])?;
    assert!(
        out.contains(
            "moved carol@example.com from pool poola.example.com to pool poolb.example.com"
        ),
        "{out}"
    );
    assert!(
        t.cli(&["user", "show", CAROL.0])?
            .contains(&format!("pool:          {POOL_B}"))
    );
    std::thread::sleep(Duration::from_millis(300));
    sipe_through_director(&t, "carol-b", FE_B, FE_A)?;
    eprintln!("[director] whole test: {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
