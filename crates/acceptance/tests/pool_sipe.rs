//! Two pidgin-sipe users (Lync protocol in bitlbee, NTLM over TCP) on different
//! front ends of one Enterprise pool (issue 12): fe01 on 127.0.0.2 and fe02 on
//! 127.0.0.3 sharing a PostgreSQL back end.
//!
//! Both clients are pointed at fe01. alice signs in first and is homed there; bob
//! is then homed on the least-loaded front end, fe02, and fe01 answers his
//! REGISTER `301` with fe02's address: SIPE follows the redirect and signs in on
//! fe02. Then, across the two front ends: each adds the other in the client
//! (SOAP setContact, stored by their own home), each sees the other Online (the
//! batched MS-PRES subscription is served by the watcher's home, which knows the
//! other front end's user from the pool's shared presence), alice sees bob Away
//! and Online again, IMs go both ways (session IM: INVITE and MESSAGE through
//! both front ends), and every message SIPE received carried a valid signature
//! of the front end it is connected to. A contact added to alice's list with
//! `confab contact add` (on fe02's side of the pool) while she is signed in
//! shows up in her buddy list: her front end hears of the change through
//! PostgreSQL LISTEN/NOTIFY and pushes it.
//!
//! Needs CONFAB_TEST_POSTGRES_URL (skipped with a message otherwise), bitlbee,
//! python3, gcc and psql. About 40 s.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use confab_acceptance::pg::TestDb;
use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tools_required};

const DOMAIN: &str = "example.com";
const POOL: &str = "pool01.example.com";
const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");
const BOB: (&str, &str) = ("bob@example.com", "bob-secret");
const CAROL: (&str, &str) = ("carol@example.com", "carol-secret");

fn write_conf(dir: &Path, member: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{member}.toml"));
    std::fs::write(
        &path,
        format!(
            "[pool]\nenabled = true\nname = \"{POOL}\"\nmember = \"{member}\"\n\
             heartbeat_ms = 250\nlease_ms = 2000\n"
        ),
    )
    .map_err(|e| Error(format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

fn pool_status(s: &ConfabServer, db: &TestDb, conf: &Path) -> Result<String> {
    let conf = conf.to_string_lossy().into_owned();
    s.cli(&["--config", &conf, "pool", "status", "--database", &db.url])
}

#[test]
fn sipe_users_on_two_front_ends_of_a_pool() -> Result<()> {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    if !tools_required(SIPE_TOOLS) || !tools_required(&["psql"]) {
        return Ok(());
    }
    let t0 = Instant::now();
    let db = TestDb::create(&admin, "poolsipe")?;
    let dir = confab_acceptance::temp_dir("pool-sipe")?;
    let (conf1, conf2) = (
        write_conf(dir.path(), "fe01.example.com")?,
        write_conf(dir.path(), "fe02.example.com")?,
    );
    let opts = |ip: Ipv4Addr, conf: &Path| {
        ServerOptions::new()
            .domain(DOMAIN)
            .ip(ip)
            .arg("--database")
            .arg(&db.url)
            .arg("--config")
            .arg(&conf.to_string_lossy())
    };
    let fe1 = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 2), &conf1))?;
    for (user, pw) in [ALICE, BOB, CAROL] {
        fe1.cli(&["user", "add", user, "--password", pw, "--database", &db.url])?;
    }
    let fe2 = ConfabServer::start(opts(Ipv4Addr::new(127, 0, 0, 3), &conf2))?;
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let st = pool_status(&fe1, &db, &conf1)?;
        let live = |m: &str| {
            st.lines()
                .any(|l| l.trim_start().starts_with(m) && l.contains(" live "))
        };
        if live("fe01.example.com") && live("fe02.example.com") {
            break;
        }
        if Instant::now() > end {
            return Err(Error(format!(
                "the pool never had two live front ends:\n{st}"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let fe1_tcp = fe1.sip_addr().to_string();
    let run = SipeCmd::new(
        &fe1.work_dir().join("sipe-pool"),
        "alice-bob",
        fe1.sip_port(),
        "tcp",
        ALICE,
    )
    .host(fe1.sip_addr().ip())
    .args(&[
        "--user2",
        BOB.0,
        "--password2",
        BOB.1,
        "--server2",
        &fe1_tcp,
    ])
    .args(&[
        "--contacts",
        "add",
        "--expect-buddy",
        "sip:carol@example.com",
    ])
    .args(&[
        "--contact-wait",
        "20",
        "--presence-wait",
        "15",
        "--im-wait",
        "15",
    ])
    .start()?;
    // Once both are signed in, carol joins alice's list from the command line.
    let mut cli_problem = None;
    if run.wait_for_output("PASS sign-in bob@example.com", Duration::from_secs(120))
        && let Err(e) = fe2.cli(&["contact", "add", ALICE.0, CAROL.0, "--database", &db.url])
    {
        cli_problem = Some(e);
    }
    let out = run.finish(Duration::from_secs(240))?;
    eprintln!(
        "[pool_sipe] run_sipe.py: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let with_fe2 = |e: Error| Error(format!("{}\n--- fe02 ---\n{}", e.0, fe2.context()));
    if let Some(e) = cli_problem {
        return Err(with_fe2(e));
    }
    out.require(
        &[
            "sign-in alice@example.com",
            "sign-in bob@example.com",
            "buddy list of alice@example.com has sip:carol@example.com",
            "alice@example.com adds sip:bob@example.com in the client",
            "server accepts alice@example.com's setContact sip:bob@example.com",
            "bob@example.com adds sip:alice@example.com in the client",
            "server accepts bob@example.com's setContact sip:alice@example.com",
            "alice@example.com sees bob@example.com Online",
            "bob@example.com sees alice@example.com Online",
            "alice@example.com sees bob@example.com Away after /away",
            "alice@example.com sees bob@example.com Online again",
            "IM alice@example.com -> bob@example.com",
            "IM bob@example.com -> alice@example.com",
        ],
        &fe1,
    )
    .map_err(with_fe2)?;
    out.require_signed().map_err(with_fe2)?;

    // bob followed fe01's redirect to fe02, where he is homed.
    let log = out.client_log();
    assert!(
        log.contains("with redirect") || log.contains("redirected to host"),
        "SIPE never followed a 301 (SIPE log in {})",
        out.dir.display()
    );
    let st = pool_status(&fe1, &db, &conf1)?;
    assert!(
        st.contains("users homed on fe01.example.com: alice@example.com")
            && st.contains("users homed on fe02.example.com: bob@example.com"),
        "alice homed on fe01 and bob on fe02:\n{st}"
    );
    // Each list was stored by the user's own home front end.
    let bobs = fe1.cli(&["contact", "list", BOB.0, "--database", &db.url])?;
    assert!(bobs.contains("alice@example.com"), "{bobs}");
    eprintln!(
        "[pool_sipe] whole test: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
