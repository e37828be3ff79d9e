//! The store against real databases: SQLite in a temp dir always; PostgreSQL when
//! `CONFAB_TEST_POSTGRES_URL` names a server (each test in its own fresh database).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::time::Duration;

use confab_auth::credentials::derive;
use confab_store::{NewUser, Store, StoreError, StoredCredentials, UserChange};
use sqlx::Connection;

use common::{new_user, with_database};

on_both_backends!(
    add_get_list,
    duplicate_add_is_refused,
    updates_and_removal,
    change_feed,
    import_many,
    import_is_all_or_nothing,
    settings,
    invalid_addresses,
    concurrent_writers,
);

async fn add_get_list(store: Store) {
    let mut bob = new_user("bob@example.com", "bob-pw");
    bob.display_name = Some("  Bob Builder ".into());
    let added = store.add_user(bob.clone()).await.unwrap();
    assert_eq!(added.address, "bob@example.com");
    assert_eq!(added.display_name.as_deref(), Some("Bob Builder"));
    assert!(added.enabled);
    assert!(added.rev > 0);
    store
        .add_user(new_user("Alice@Example.COM", "alice-pw"))
        .await
        .unwrap();

    let alice = store
        .get_user("sip:alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.address, "alice@example.com");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.domain, "example.com");
    assert_eq!(alice.display_name, None);
    assert_eq!(
        alice.credentials(),
        derive("alice", "example.com", "alice-pw")
    );
    assert!(alice.created_at > 1_700_000_000);
    assert_eq!(alice.created_at, alice.updated_at);

    let debug = format!("{alice:?}");
    assert!(debug.contains("alice@example.com"));
    let creds = alice.credentials();
    for secret in [&creds.ha1_md5, &creds.ha1_sha256, &creds.nt_hash] {
        assert!(
            !debug.contains(secret.as_str()),
            "Debug leaks a hash: {debug}"
        );
    }

    let got = store.get_user("BOB@example.com").await.unwrap().unwrap();
    assert_eq!(got, added);
    assert!(store.get_user("carol@example.com").await.unwrap().is_none());

    let all = store.list_users().await.unwrap();
    let addresses: Vec<_> = all.iter().map(|u| u.address.as_str()).collect();
    assert_eq!(addresses, ["alice@example.com", "bob@example.com"]);
    assert_eq!(store.count_users().await.unwrap(), 2);
}

async fn duplicate_add_is_refused(store: Store) {
    store
        .add_user(new_user("alice@example.com", "one"))
        .await
        .unwrap();
    let rev = store.current_rev().await.unwrap();
    for dup in ["alice@example.com", "sip:ALICE@example.com"] {
        let err = store.add_user(new_user(dup, "two")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::UserExists(a) if a == "alice@example.com"),
            "{err}"
        );
        assert_eq!(err.to_string(), "user alice@example.com already exists");
    }
    // The failed adds changed nothing: same password, same revision.
    let alice = store.get_user("alice@example.com").await.unwrap().unwrap();
    assert_eq!(alice.credentials(), derive("alice", "example.com", "one"));
    assert_eq!(store.current_rev().await.unwrap(), rev);
}

async fn updates_and_removal(store: Store) {
    let added = store
        .add_user(new_user("alice@example.com", "old"))
        .await
        .unwrap();

    let new_creds = derive("alice", "example.com", "new");
    let u = store
        .set_credentials("alice@example.com", new_creds.clone())
        .await
        .unwrap();
    assert_eq!(u.credentials(), new_creds);
    assert!(u.rev > added.rev);
    assert_eq!(u.id, added.id);

    let u = store
        .set_display_name("sip:alice@example.com", Some("Alice A."))
        .await
        .unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Alice A."));
    let u = store
        .set_display_name("alice@example.com", None)
        .await
        .unwrap();
    assert_eq!(u.display_name, None);

    let u = store.set_enabled("alice@example.com", false).await.unwrap();
    assert!(!u.enabled);
    let fetched = store.get_user("alice@example.com").await.unwrap().unwrap();
    assert!(!fetched.enabled);
    assert_eq!(fetched.credentials(), new_creds);
    assert!(
        store
            .set_enabled("alice@example.com", true)
            .await
            .unwrap()
            .enabled
    );

    for result in [
        store
            .set_enabled("nobody@example.com", false)
            .await
            .map(|_| ()),
        store
            .set_credentials("nobody@example.com", new_creds.clone())
            .await
            .map(|_| ()),
        store
            .set_display_name("nobody@example.com", Some("x"))
            .await
            .map(|_| ()),
        store.remove_user("nobody@example.com").await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(&err, StoreError::UserNotFound(a) if a == "nobody@example.com"));
        assert_eq!(err.to_string(), "user nobody@example.com not found");
    }

    store.remove_user("SIP:Alice@example.com").await.unwrap();
    assert!(store.get_user("alice@example.com").await.unwrap().is_none());
    assert!(store.list_users().await.unwrap().is_empty());
    assert!(matches!(
        store.remove_user("alice@example.com").await,
        Err(StoreError::UserNotFound(_))
    ));
    // The address can be taken again.
    let again = store
        .add_user(new_user("alice@example.com", "x"))
        .await
        .unwrap();
    assert_ne!(again.id, added.id);
}

async fn change_feed(store: Store) {
    assert_eq!(store.current_rev().await.unwrap(), 0);
    assert_eq!(store.user_changes_since(0).await.unwrap(), (0, vec![]));

    store
        .add_user(new_user("alice@example.com", "a"))
        .await
        .unwrap();
    store
        .add_user(new_user("bob@example.com", "b"))
        .await
        .unwrap();
    let (rev1, changes) = store.user_changes_since(0).await.unwrap();
    assert_eq!(rev1, store.current_rev().await.unwrap());
    let upserted: Vec<_> = changes
        .iter()
        .map(|c| match c {
            UserChange::Upsert(u) => u.address.clone(),
            UserChange::Removed { .. } => panic!("unexpected removal"),
        })
        .collect();
    assert_eq!(upserted, ["alice@example.com", "bob@example.com"]);

    // Nothing new: same revision back, no changes.
    assert_eq!(
        store.user_changes_since(rev1).await.unwrap(),
        (rev1, vec![])
    );

    store.set_enabled("alice@example.com", false).await.unwrap();
    store.remove_user("bob@example.com").await.unwrap();
    let (rev2, changes) = store.user_changes_since(rev1).await.unwrap();
    assert!(rev2 > rev1);
    assert_eq!(changes.len(), 2);
    match &changes[0] {
        UserChange::Upsert(u) => {
            assert_eq!(u.address, "alice@example.com");
            assert!(!u.enabled);
            assert_eq!(u.credentials(), derive("alice", "example.com", "a"));
        }
        other => panic!("expected alice's upsert, got {other:?}"),
    }
    assert_eq!(
        changes[1],
        UserChange::Removed {
            address: "bob@example.com".into()
        }
    );

    // A poller starting from scratch sees the removal too, after the current users.
    let (rev_all, all) = store.user_changes_since(0).await.unwrap();
    assert_eq!(rev_all, rev2);
    assert_eq!(all.len(), 2);

    // Re-adding a removed user supersedes the tombstone.
    store
        .add_user(new_user("bob@example.com", "b2"))
        .await
        .unwrap();
    let (rev3, changes) = store.user_changes_since(rev2).await.unwrap();
    assert!(rev3 > rev2);
    assert!(matches!(&changes[..], [UserChange::Upsert(u)] if u.address == "bob@example.com"));
    let (_, all) = store.user_changes_since(0).await.unwrap();
    assert!(all.iter().all(|c| matches!(c, UserChange::Upsert(_))));
}

async fn import_many(store: Store) {
    store
        .add_user(new_user("existing@example.com", "x"))
        .await
        .unwrap();
    let rev0 = store.current_rev().await.unwrap();
    let n = 2_345;
    let users = (0..n).map(|i| {
        let mut u = new_user(&format!("user{i:05}@example.com"), &format!("pw{i}"));
        u.display_name = (i % 2 == 0).then(|| format!("User {i}"));
        u
    });
    let mut seen = Vec::new();
    let count = store
        .import_users(users, |done| seen.push(done))
        .await
        .unwrap();
    assert_eq!(count, n);
    assert_eq!(seen, [1000, 2000, n]);
    assert_eq!(store.count_users().await.unwrap(), n as i64 + 1);

    let u = store
        .get_user("user01233@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.display_name, None);
    assert_eq!(
        u.credentials(),
        derive("user01233", "example.com", "pw1233")
    );
    let u = store
        .get_user("user02344@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.display_name.as_deref(), Some("User 2344"));
    assert!(u.enabled);

    // One revision for the whole import; the feed has every imported user.
    assert_eq!(store.current_rev().await.unwrap(), rev0 + 1);
    let (rev, changes) = store.user_changes_since(rev0).await.unwrap();
    assert_eq!(rev, rev0 + 1);
    assert_eq!(changes.len(), n);

    // Importing nothing is fine.
    assert_eq!(store.import_users(Vec::new(), |_| {}).await.unwrap(), 0);
}

async fn import_is_all_or_nothing(store: Store) {
    store
        .add_user(new_user("taken@example.com", "x"))
        .await
        .unwrap();
    let rev = store.current_rev().await.unwrap();

    // An address already in the database, in the second batch.
    let mut users: Vec<_> = (0..1500)
        .map(|i| new_user(&format!("u{i}@example.com"), "pw"))
        .collect();
    users.push(new_user("Taken@example.com", "y"));
    let err = store.import_users(users, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::UserExists(a) if a == "taken@example.com"),
        "{err}"
    );

    // The same address twice in one import.
    let users = vec![
        new_user("a@example.com", "1"),
        new_user("sip:A@example.com", "2"),
    ];
    let err = store.import_users(users, |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::UserExists(a) if a == "a@example.com"),
        "{err}"
    );

    // A bad address.
    let mut bad = new_user("b@example.com", "1");
    bad.address = "not an address".into();
    let users = vec![new_user("c@example.com", "1"), bad];
    let err = store.import_users(users, |_| {}).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidAddress { .. }), "{err}");

    // Nothing of any of them was kept.
    let all = store.list_users().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].credentials(), derive("taken", "example.com", "x"));
    assert_eq!(store.current_rev().await.unwrap(), rev);
}

async fn settings(store: Store) {
    assert_eq!(store.get_setting("nonce_secret").await.unwrap(), None);
    store.set_setting("nonce_secret", "abc").await.unwrap();
    assert_eq!(
        store.get_setting("nonce_secret").await.unwrap().as_deref(),
        Some("abc")
    );
    store.set_setting("nonce_secret", "def").await.unwrap();
    store.set_setting("other", "").await.unwrap();
    assert_eq!(
        store.get_setting("nonce_secret").await.unwrap().as_deref(),
        Some("def")
    );
    assert_eq!(
        store.get_setting("other").await.unwrap().as_deref(),
        Some("")
    );
}

async fn invalid_addresses(store: Store) {
    for bad in [
        "alice",
        "alice@",
        "@example.com",
        "alice@bad_domain",
        "a b@example.com",
    ] {
        let err = store
            .add_user(new_user("x@example.com", "pw"))
            .await
            .map(|_| ());
        assert!(err.is_ok() || matches!(err, Err(StoreError::UserExists(_))));
        let mut u = new_user("x@example.com", "pw");
        u.address = bad.into();
        assert!(
            matches!(
                store.add_user(u).await,
                Err(StoreError::InvalidAddress { .. })
            ),
            "{bad}"
        );
        assert!(matches!(
            store.get_user(bad).await,
            Err(StoreError::InvalidAddress { .. })
        ));
    }
}

async fn concurrent_writers(store: Store) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let addr = format!("c{i}@example.com");
            store.add_user(new_user(&addr, "pw")).await.unwrap();
            store.set_enabled(&addr, false).await.unwrap();
        }));
    }
    let bulk = (0..1500).map(|i| new_user(&format!("bulk{i}@example.com"), "pw"));
    assert_eq!(store.import_users(bulk, |_| {}).await.unwrap(), 1500);
    for t in tasks {
        t.await.unwrap();
    }
    // 20 adds + 20 updates + 1 import.
    assert_eq!(store.current_rev().await.unwrap(), 41);
    let (rev, changes) = store.user_changes_since(0).await.unwrap();
    assert_eq!((rev, changes.len()), (41, 1520));
    let revs: Vec<i64> = changes
        .iter()
        .filter_map(|c| match c {
            UserChange::Upsert(u) if u.address.starts_with('c') => Some(u.rev),
            _ => None,
        })
        .collect();
    let mut unique = revs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 20, "each update has its own revision");
}

// ---- SQLite specifics ----

fn pw_creds(addr: &str) -> StoredCredentials {
    let (u, d) = addr.split_once('@').unwrap();
    derive(u, d, "pw")
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_uses_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub dir #1").join("confab.db");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let store = Store::open_sqlite(&path).await.unwrap();
        store
            .add_user(new_user("alice@example.com", "pw"))
            .await
            .unwrap();
        store.set_setting("k", "v").await.unwrap();
        store.close().await;
    }
    assert!(path.exists());
    let store = Store::open_sqlite(&path).await.unwrap();
    let alice = store.get_user("alice@example.com").await.unwrap().unwrap();
    assert_eq!(alice.credentials(), pw_creds("alice@example.com"));
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(store.current_rev().await.unwrap(), 1);
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
    )
    .await
    .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_two_stores_on_one_file_write_concurrently() {
    // A server and `confab user ...` commands share one database file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("confab.db");
    let a = Store::open_sqlite(&path).await.unwrap();
    let b = Store::open_sqlite(&path).await.unwrap();
    let mut tasks = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        for i in 0..25 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .add_user(new_user(&format!("{name}{i}@example.com"), "pw"))
                    .await
                    .unwrap();
            }));
        }
    }
    let big = (0..3000).map(|i| new_user(&format!("bulk{i}@example.com"), "pw"));
    let imported = b.import_users(big, |_| {}).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(imported, 3000);
    assert_eq!(a.count_users().await.unwrap(), 3050);
    // 50 single adds + 1 import, each with its own revision.
    assert_eq!(a.current_rev().await.unwrap(), 51);
    let (rev, changes) = b.user_changes_since(0).await.unwrap();
    assert_eq!((rev, changes.len()), (51, 3050));
    a.close().await;
    b.close().await;
}

/// Child half of `sqlite_write_survives_process_abort`.
const CHILD_DB_ENV: &str = "CONFAB_STORE_TEST_CHILD_DB";

#[tokio::test]
async fn sqlite_write_survives_process_abort() {
    if let Ok(db) = std::env::var(CHILD_DB_ENV) {
        // Child: commit, then die without closing anything (like kill -9).
        let store = Store::open_sqlite(Path::new(&db)).await.unwrap();
        store
            .add_user(new_user("durable@example.com", "pw"))
            .await
            .unwrap();
        store.set_setting("k", "v").await.unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("confab.db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite_write_survives_process_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    assert!(
        db.with_extension("db-wal").exists(),
        "the child left its WAL behind"
    );

    let store = Store::open_sqlite(&db).await.unwrap();
    let user = store.get_user("durable@example.com").await.unwrap();
    assert!(user.is_some(), "committed user lost after abort");
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    store.close().await;
}

#[tokio::test]
async fn open_refuses_unknown_urls() {
    for url in ["mysql://root@localhost/db", "confab.db", ""] {
        assert!(
            matches!(Store::open(url).await, Err(StoreError::UnsupportedUrl)),
            "{url}"
        );
    }
}

#[tokio::test]
async fn postgres_connect_errors_do_not_leak_the_password() {
    // Nothing listens on port 1: the error must not repeat the URL's password.
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        Store::open("postgres://confab:s3cr3t-pw@127.0.0.1:1/confab"),
    )
    .await
    .unwrap()
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
}

#[test]
fn database_name_substitution() {
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres", "x"),
        "postgres://u:p@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// Import speed on SQLite: `cargo test -p confab-store --release -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn sqlite_import_100k_timing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("confab.db"))
        .await
        .unwrap();
    let creds = derive("u", "example.com", "pw");
    let users: Vec<_> = (0..100_000)
        .map(|i| NewUser {
            address: format!("user{i}@example.com"),
            display_name: Some(format!("User {i}")),
            creds: creds.clone(),
        })
        .collect();
    let start = std::time::Instant::now();
    assert_eq!(store.import_users(users, |_| {}).await.unwrap(), 100_000);
    println!("imported 100000 users in {:?}", start.elapsed());
    let start = std::time::Instant::now();
    assert_eq!(store.list_users().await.unwrap().len(), 100_000);
    println!("listed 100000 users in {:?}", start.elapsed());
    store.close().await;
}
