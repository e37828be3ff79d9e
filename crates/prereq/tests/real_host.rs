//! The checks on the real machine: they must run and explain themselves; which
//! of them pass depends on the machine.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_prereq::{Plan, Status, SystemHost, host_fqdn, run};
use confab_topology::Role;

#[tokio::test]
async fn checks_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = Plan::for_roles(
        &[Role::FrontEnd, Role::PersistentChat, Role::Mediation],
        &host_fqdn(),
        dir.path(),
    );
    plan.bootstrap = true;
    let o = run(&SystemHost, &plan).await;
    println!("{}", o.render());
    for id in [
        "arch",
        "kernel",
        "libc",
        "distribution",
        "updates",
        "server-auth",
        "web",
        "media-runtime",
        "chat-delivery",
        "cpu",
        "memory",
        "open-files",
        "disk",
        "clock",
        "certificate",
        "preload",
        "store:backend",
        "port:front-end.sip",
    ] {
        let c = o.get(id).unwrap_or_else(|| panic!("no {id} check"));
        assert!(!c.detail.is_empty());
        if c.status != Status::Pass {
            assert!(c.fix.is_some(), "{id} says how to fix it");
        }
    }
    assert_eq!(o.get("arch").unwrap().status, Status::Pass);
    assert_eq!(o.get("store:backend").unwrap().status, Status::Pass);
    assert_eq!(
        o.get("certificate").unwrap().status,
        Status::Pass,
        "bootstrap creates it"
    );
}

#[tokio::test]
async fn probes_a_real_postgres() {
    let Ok(url) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    use confab_prereq::{Host, PostgresFacts};
    match SystemHost.postgres(&url).await {
        PostgresFacts::Reachable {
            version_num,
            database_exists,
            clock_offset,
        } => {
            assert!(version_num >= 100_000);
            assert!(database_exists);
            assert!(clock_offset.unwrap().abs() < 5.0);
        }
        other => panic!("{other:?}"),
    }
    let missing = confab_topology::db::with_database(&url, "confab_surely_missing_db").unwrap();
    match SystemHost.postgres(&missing).await {
        PostgresFacts::Reachable {
            database_exists, ..
        } => assert!(!database_exists),
        other => panic!("{other:?}"),
    }
    let bad =
        confab_topology::db::with_database("postgres://confab:wrong@127.0.0.1:1", "x").unwrap();
    assert!(matches!(
        SystemHost.postgres(&bad).await,
        PostgresFacts::Unreachable(_)
    ));
}
