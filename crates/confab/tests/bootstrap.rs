//! `confab bootstrap` against real SQLite and (when CONFAB_TEST_POSTGRES_URL is
//! set) real PostgreSQL: twice each, the second run changing nothing.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use confab_topology::Role;
use confab_topology::local::local_roles;

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

fn fails(o: Output) -> String {
    let t = text(&o);
    assert!(!o.status.success(), "confab should have failed:\n{t}");
    t
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Port overrides for a front end on free ports.
fn front_end_ports() -> String {
    format!(
        "[pool.machine.ports]\nfront-end.sip = {}\nfront-end.sip-udp = {}\nfront-end.sip-tls = {}\nfront-end.web = {}\n",
        free_port(),
        free_port(),
        free_port(),
        free_port()
    )
}

/// Port overrides for a front end whose SIP/TLS port is `sip_tls`.
fn ports_with_sip_tls(sip_tls: u16) -> String {
    format!(
        "[pool.machine.ports]\nfront-end.sip = {}\nfront-end.sip-udp = {}\nfront-end.sip-tls = {sip_tls}\nfront-end.web = {}\n",
        free_port(),
        free_port(),
        free_port()
    )
}

/// The line of bootstrap's closing list ("changed"/"unchanged") that mentions `needle`.
fn line_with<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| {
            let t = l.trim_start();
            (t.starts_with("changed") || t.starts_with("unchanged")) && l.contains(needle)
        })
        .unwrap_or_else(|| panic!("no changed/unchanged line with {needle:?}:\n{out}"))
}

#[test]
fn zero_configuration_standard_edition_twice() {
    for port in [5060, 5061, 8080] {
        if TcpListener::bind(("0.0.0.0", port)).is_err() {
            println!("skipped: default port {port} is in use on this machine");
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = ok(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "se01.contoso.com"],
    ));
    assert!(first.contains("zero-configuration default"), "{first}");
    assert!(first.contains("PASS  arch"), "{first}");
    assert!(
        line_with(&first, "back-end store")
            .trim_start()
            .starts_with("changed"),
        "{first}"
    );
    assert!(first.contains("applied"), "{first}");
    assert!(first.contains("self-signed"), "{first}");
    assert!(first.contains("To replace it"), "{first}");
    assert!(data.join("confab.db").exists());
    assert!(data.join("files").is_dir());
    let sans = confab_tls::cert_sans(&data.join("tls/cert.pem")).unwrap();
    assert!(sans.contains(&"se01.contoso.com".to_string()), "{sans:?}");

    let second = ok(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "se01.contoso.com"],
    ));
    assert!(second.contains("Nothing to do"), "{second}");
    assert!(!second.contains("  changed"), "{second}");
}

#[test]
fn refuses_on_a_failed_check_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let busy = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        format!(
            r#"sip_domains = ["contoso.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"
[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"
[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]
{}"#,
            ports_with_sip_tls(port)
        ),
    )
    .unwrap();
    ok(confab(&data, &["topology", "publish", arg(&file)]));
    let out = fails(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "se01.contoso.com"],
    ));
    assert!(out.contains("FAIL  port:front-end.sip-tls"), "{out}");
    assert!(out.contains("refusing to bootstrap"), "{out}");
    assert!(
        !data.join("tls/cert.pem").exists(),
        "nothing done after a failure"
    );
    drop(busy);

    // Once the failure is fixed it runs, warnings or not, without --force.
    let out = confab(&data, &["bootstrap", "--fqdn", "se01.contoso.com"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
}

/// A machine with prerequisite warnings (here: an open-file soft limit below what
/// the role needs, the hard limit above it) is bootstrapped without `--force`: the
/// warning is shown with its fix, and the work is done.
#[test]
fn warnings_warn_and_do_not_stop_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        format!(
            r#"sip_domains = ["contoso.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"
[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"
[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]
{}"#,
            front_end_ports()
        ),
    )
    .unwrap();
    ok(confab(&data, &["topology", "publish", arg(&file)]));
    // The soft limit is lowered for the child only (a shell's `ulimit -S`); the
    // hard limit stays, so the open-files check warns instead of failing.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 256 && exec "$0" --data "$1" bootstrap --fqdn se01.contoso.com"#)
        .arg(env!("CARGO_BIN_EXE_confab"))
        .arg(&data)
        .env_remove("RUST_LOG")
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let t = text(&out);
    if !t.contains("WARN  open-files") {
        println!("skipped: the hard open-file limit is too low to get a warning only:\n{t}");
        return;
    }
    assert!(
        out.status.success(),
        "a warning must not stop bootstrap:\n{t}"
    );
    assert!(!t.contains("refusing"), "{t}");
    assert!(t.contains("prerequisite warning"), "{t}");
    assert!(data.join("tls/cert.pem").exists(), "bootstrap did its work");
}

#[test]
fn standard_edition_topology_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("topology.toml");
    let topo = include_str!("../../../examples/topology-standard.toml").replace(
        "roles = [\"front-end\", \"persistent-chat\", \"mediation\"]\n",
        &format!(
            "roles = [\"front-end\", \"persistent-chat\", \"mediation\"]\n{}persistent-chat.sip-tls = {}\nmediation.sip-tls = {}\nmediation.gateway = {}\n",
            front_end_ports(),
            free_port(),
            free_port(),
            free_port()
        ),
    );
    std::fs::write(&file, topo).unwrap();
    ok(confab(&data, &["topology", "publish", arg(&file)]));

    // Not a machine of the topology.
    let out = fails(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "other.contoso.com"],
    ));
    assert!(out.contains("se01.contoso.com"), "{out}");

    let first = ok(confab(
        &data,
        &["bootstrap", "--force", "--fqdn", "se01.contoso.com"],
    ));
    assert!(first.contains("from topology version 1"), "{first}");
    assert!(
        first.contains("front-end, persistent-chat, mediation"),
        "{first}"
    );
    assert!(
        line_with(&first, "archiving store").contains("created its schema"),
        "{first}"
    );
    assert!(data.join("archiving.db").exists());
    assert!(data.join("files").is_dir());
    assert!(data.join("tls/cert.pem").exists());

    let second = ok(confab(&data, &["bootstrap", "--force"]));
    assert!(second.contains("Nothing to do"), "{second}");

    let roles = local_roles(&data, "ignored").unwrap().unwrap();
    assert_eq!(roles.fqdn, "se01.contoso.com");
    assert_eq!(
        roles.roles,
        vec![Role::FrontEnd, Role::PersistentChat, Role::Mediation]
    );
    let shown = ok(confab(&data, &["topology", "show"]));
    assert!(shown.contains("se01.contoso.com (pool se01.contoso.com, front-end,persistent-chat,mediation): version 1"), "{shown}");

    // A new version: bootstrap follows it.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("users = 2500", "users = 2600"),
    )
    .unwrap();
    ok(confab(&data, &["topology", "publish", arg(&file)]));
    let third = ok(confab(&data, &["bootstrap", "--force"]));
    assert!(third.contains("from topology version 2"), "{third}");
    assert!(!third.contains("Nothing to do"), "{third}");
    assert!(
        line_with(&third, "back-end store")
            .trim_start()
            .starts_with("unchanged"),
        "{third}"
    );
}

#[tokio::test]
async fn enterprise_pool_on_postgres() {
    let Ok(base) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let url = |what: &str| {
        confab_topology::db::with_database(&base, &format!("confab_test_{id}_{what}")).unwrap()
    };
    let (backend, pchat, compliance) = (url("backend"), url("pchat"), url("compliance"));
    let run = tokio::task::spawn_blocking({
        let (backend, pchat, compliance) = (backend.clone(), pchat.clone(), compliance.clone());
        move || enterprise_scenario(&backend, &pchat, &compliance)
    })
    .await;
    use sqlx::migrate::MigrateDatabase;
    let mut found = Vec::new();
    for u in [&backend, &pchat, &compliance] {
        found.push(sqlx::Postgres::database_exists(u).await.unwrap());
    }
    if run.is_ok() {
        check_databases(&backend, &pchat).await;
    }
    for u in [&backend, &pchat, &compliance] {
        sqlx::Postgres::force_drop_database(u).await.unwrap();
    }
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
    assert_eq!(found, vec![true, true, true]);
}

fn enterprise_scenario(backend: &str, pchat: &str, compliance: &str) {
    let dir = tempfile::tempdir().unwrap();
    // The pool's one file store, "mounted" at the same path for every front end.
    let shared = dir.path().join("shared-files");
    std::fs::create_dir(&shared).unwrap();
    let file = dir.path().join("topology.toml");
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

[[store]]
name = "pchat"
kind = "persistent-chat"
url = "{pchat}"

[[store]]
name = "compliance"
kind = "compliance"
url = "{compliance}"

[[store]]
name = "files"
kind = "file"
path = "{}"

[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
file_store = "files"
users = 10000

[[pool.machine]]
fqdn = "fe01.contoso.com"
roles = ["front-end"]
{}
[[pool.machine]]
fqdn = "fe02.contoso.com"
roles = ["front-end"]
{}
[[pool]]
fqdn = "pchat.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"
persistent_chat_store = "pchat"
compliance = true
compliance_store = "compliance"

[[pool.machine]]
fqdn = "pchat01.contoso.com"
roles = ["persistent-chat"]

[pool.machine.ports]
persistent-chat.sip-tls = {}
"#,
            shared.display(),
            front_end_ports(),
            front_end_ports(),
            free_port()
        ),
    )
    .unwrap();
    // The admin publishes from a workstation.
    let admin = dir.path().join("admin");
    let out = ok(confab(&admin, &["topology", "publish", arg(&file)]));
    assert!(out.contains("as topology version 1"), "{out}");

    // Each machine has its own data directory; all share the PostgreSQL back end.
    let fe1 = dir.path().join("fe01");
    let fe2 = dir.path().join("fe02");
    let chat = dir.path().join("pchat01");

    let first = ok(confab(
        &fe1,
        &[
            "bootstrap",
            "--force",
            "--cms",
            backend,
            "--fqdn",
            "fe01.contoso.com",
        ],
    ));
    assert!(
        first.contains("pool pool01.contoso.com, enterprise edition: front-end"),
        "{first}"
    );
    let line = line_with(&first, "back-end store");
    assert!(line.trim_start().starts_with("changed"), "{first}");
    assert!(line.contains("applied"), "{first}");
    assert!(
        !first.contains("confab:confab@"),
        "password shown:\n{first}"
    );
    let again = ok(confab(&fe1, &["bootstrap", "--force"]));
    assert!(again.contains("Nothing to do"), "{again}");

    // The second front end finds the shared parts in place.
    let second = ok(confab(
        &fe2,
        &[
            "bootstrap",
            "--force",
            "--cms",
            backend,
            "--fqdn",
            "fe02.contoso.com",
        ],
    ));
    let line = line_with(&second, "back-end store");
    assert!(line.trim_start().starts_with("unchanged"), "{second}");
    assert!(line.contains("schema up to date"), "{second}");
    assert!(second.contains("Bootstrapped fe02.contoso.com"), "{second}");
    let again = ok(confab(&fe2, &["bootstrap", "--force"]));
    assert!(again.contains("Nothing to do"), "{again}");

    // Persistent Chat: its own and the compliance database are created.
    let out = ok(confab(
        &chat,
        &[
            "bootstrap",
            "--force",
            "--cms",
            backend,
            "--fqdn",
            "pchat01.contoso.com",
        ],
    ));
    assert!(
        line_with(&out, "persistent-chat store").contains("created the database"),
        "{out}"
    );
    assert!(
        line_with(&out, "compliance store").contains("created the database"),
        "{out}"
    );
    let again = ok(confab(&chat, &["bootstrap", "--force"]));
    assert!(again.contains("Nothing to do"), "{again}");

    // Both front ends can start from what bootstrap left them.
    for (data, fqdn) in [(&fe1, "fe01.contoso.com"), (&fe2, "fe02.contoso.com")] {
        let roles = local_roles(data, "ignored").unwrap().unwrap();
        assert_eq!(roles.fqdn, fqdn);
        assert_eq!(roles.pool, "pool01.contoso.com");
        assert_eq!(roles.roles, vec![Role::FrontEnd]);
        let sans = confab_tls::cert_sans(&data.join("tls/cert.pem")).unwrap();
        assert!(sans.contains(&"pool01.contoso.com".to_string()), "{sans:?}");
        assert!(sans.contains(&fqdn.to_string()), "{sans:?}");
        let check = ok(confab(data, &["prereq", "check"]));
        assert!(
            check.contains(&format!("prerequisites of {fqdn}")),
            "{check}"
        );
    }
    let shown = ok(confab(&admin, &["topology", "show"]));
    for m in [
        "fe01.contoso.com",
        "fe02.contoso.com",
        "pchat01.contoso.com",
    ] {
        assert!(shown.contains(&format!("  {m} (pool")), "{shown}");
    }
}

async fn check_databases(backend: &str, pchat: &str) {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(backend).await.unwrap();
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert!(n > 0);
    let machines: i64 = sqlx::query("SELECT COUNT(*) FROM cms_machine")
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(machines, 3);
    pool.close().await;
    let pool = sqlx::AnyPool::connect(pchat).await.unwrap();
    let component: String = sqlx::query("SELECT component FROM schema_version")
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(component, "persistent-chat");
    pool.close().await;
}
