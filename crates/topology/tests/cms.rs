//! The central management store on real SQLite and (when
//! CONFAB_TEST_POSTGRES_URL is set) real PostgreSQL.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_topology::cms::{CentralStore, PublishOutcome};
use confab_topology::db;
use confab_topology::diff;
use confab_topology::local::{LocalReplica, Pointer, local_roles};
use confab_topology::{Role, Topology, TopologyError};
use sqlx::migrate::MigrateDatabase;

const V1: &str = include_str!("../../../examples/topology-enterprise.toml");

fn v2() -> String {
    V1.replace("users = 18000", "users = 19000")
        .replace(
            "[[pool.machine]]\nfqdn = \"fe03.fabrikam.com\"\naddresses = [\"10.0.0.13\"]\nroles = [\"front-end\"]\n",
            "[[pool.machine]]\nfqdn = \"fe03.fabrikam.com\"\naddresses = [\"10.0.0.13\"]\nroles = [\"front-end\"]\n\n[[pool.machine]]\nfqdn = \"fe04.fabrikam.com\"\naddresses = [\"10.0.0.14\"]\nroles = [\"front-end\"]\n",
        )
}

async fn exercise(url: &str) {
    // Reading before anything was published says so.
    if db::is_sqlite(url) {
        assert!(matches!(
            CentralStore::open_existing(url).await,
            Err(TopologyError::NotPublished)
        ));
    }
    let cms = CentralStore::open(url).await.unwrap();
    assert!(cms.latest().await.unwrap().is_none());
    assert!(!cms.create_tables().await.unwrap(), "tables already exist");

    let out = cms.publish(V1, "alice", "first").await.unwrap();
    assert_eq!(out, PublishOutcome::Published { version: 1 });
    let again = cms.publish(V1, "bob", "same again").await.unwrap();
    assert_eq!(again, PublishOutcome::Unchanged { version: 1 });
    let v2 = v2();
    assert_eq!(
        cms.publish(&v2, "bob", "").await.unwrap(),
        PublishOutcome::Published { version: 2 }
    );

    let latest = cms.latest().await.unwrap().unwrap();
    assert_eq!(latest.version, 2);
    assert_eq!(latest.source, v2);
    assert_eq!(latest.published_by, "bob");
    let first = cms.version(1).await.unwrap().unwrap();
    assert_eq!(first.source, V1);
    assert_eq!(first.comment, "first");
    assert!(cms.version(3).await.unwrap().is_none());
    let history = cms.history().await.unwrap();
    assert_eq!(
        history.iter().map(|p| p.version).collect::<Vec<_>>(),
        vec![1, 2]
    );

    let changes = diff::changes(
        &Topology::parse(&first.source).unwrap(),
        &Topology::parse(&latest.source).unwrap(),
    );
    let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|c| c.starts_with("+ machine fe04.fabrikam.com: in pool pool01.fabrikam.com")),
        "{text:?}"
    );
    assert!(
        text.contains(&"~ pool pool01.fabrikam.com users: 18000 -> 19000".to_string()),
        "{text:?}"
    );
    assert_eq!(text.len(), 2, "{text:?}");

    assert!(
        cms.record_machine("fe01.fabrikam.com", "pool01.fabrikam.com", "front-end", 2)
            .await
            .unwrap()
    );
    assert!(
        !cms.record_machine("fe01.fabrikam.com", "pool01.fabrikam.com", "front-end", 2)
            .await
            .unwrap()
    );
    assert!(
        cms.record_machine("fe01.fabrikam.com", "pool01.fabrikam.com", "front-end", 3)
            .await
            .unwrap()
    );
    let machines = cms.machines().await.unwrap();
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0].version, 3);
    cms.close().await;

    // Reopening finds everything.
    let cms = CentralStore::open_existing(url).await.unwrap();
    assert_eq!(cms.latest().await.unwrap().unwrap().version, 2);
    cms.close().await;
}

#[tokio::test]
async fn sqlite_central_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = db::sqlite_url(&dir.path().join("sub/confab.db"));
    exercise(&url).await;
}

#[tokio::test]
async fn postgres_central_store() {
    let Ok(base) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    let name = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let url = db::with_database(&base, &name).unwrap();
    assert!(matches!(
        CentralStore::open_existing(&url).await,
        Err(TopologyError::NotPublished)
    ));
    let run = tokio::spawn({
        let url = url.clone();
        async move { exercise(&url).await }
    })
    .await;
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
    if let Err(e) = run {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn postgres_database_creation_is_idempotent() {
    let Ok(base) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: set CONFAB_TEST_POSTGRES_URL");
        return;
    };
    let name = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let url = db::with_database(&base, &name).unwrap();
    let first = db::ensure_postgres_database(&url).await;
    let second = db::ensure_postgres_database(&url).await;
    sqlx::Postgres::force_drop_database(&url).await.unwrap();
    assert!(first.unwrap());
    assert!(!second.unwrap());
}

#[test]
fn local_replica_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    assert!(LocalReplica::load(dir.path()).unwrap().is_none());
    assert!(
        local_roles(dir.path(), "fe01.fabrikam.com")
            .unwrap()
            .is_none()
    );
    let replica = LocalReplica {
        pointer: Pointer {
            url: "postgres://confab:pw@db/confab".into(),
            version: 4,
            fqdn: Some("fe02.fabrikam.com".into()),
        },
        source: Some(V1.to_string()),
    };
    assert!(replica.save(dir.path()).unwrap());
    assert!(
        !replica.save(dir.path()).unwrap(),
        "second save changes nothing"
    );
    assert_eq!(LocalReplica::load(dir.path()).unwrap().unwrap(), replica);
    let roles = local_roles(dir.path(), "ignored.example.com")
        .unwrap()
        .unwrap();
    assert_eq!(roles.fqdn, "fe02.fabrikam.com");
    assert_eq!(roles.pool, "pool01.fabrikam.com");
    assert_eq!(roles.roles, vec![Role::FrontEnd]);
    assert_eq!(roles.version, 4);
    assert!(roles.listeners.iter().any(|l| l.port == 5061));

    std::fs::write(dir.path().join("topology/cms.toml"), "url = 3\n").unwrap();
    assert!(LocalReplica::load(dir.path()).is_err());
}

#[test]
fn text_diff_names_lines() {
    let d = diff::text_diff("a\nb\nc\n", "a\nB\nc\nd\n").unwrap();
    assert!(d.contains("- b    (old line 2)"), "{d}");
    assert!(d.contains("+ B    (new line 2)"), "{d}");
    assert!(d.contains("+ d    (new line 4)"), "{d}");
}
