//! `confab user ...` run as a real process on a temporary data directory.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_env;

use cli_env::*;
use std::process::Command;

use confab_auth::credentials::derive;
use confab_store::UserChange;

/// The data rows of `user list` (header skipped), split on runs of 2+ spaces,
/// without the POOL column (see [`pools`]).
fn table(list: &str) -> Vec<Vec<String>> {
    full_table(list)
        .into_iter()
        .map(|mut r| {
            r.truncate(3);
            r
        })
        .collect()
}

/// Every column of `user list`'s data rows.
fn full_table(list: &str) -> Vec<Vec<String>> {
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["ADDRESS", "DISPLAY", "NAME", "ENABLED", "POOL"]
    );
    lines
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// A single server (no pool): users have the default pool, and naming a pool
/// that no front end has joined is refused clearly, for `add` and `move`.
#[tokio::test]
async fn pools_of_users_without_a_topology() {
    let env = Env::new();
    env.ok(&["user", "add", "alice@example.com", "--password", "a"]);
    assert_eq!(
        full_table(&env.ok(&["user", "list"])),
        [["alice@example.com", "-", "yes", "-"]]
    );
    assert!(
        env.ok(&["user", "show", "alice@example.com"])
            .contains("pool:          (default)")
    );
    let err = env.fails(&[
        "user",
        "add",
        "bob@example.com",
        "--password",
        "b",
        "--pool",
        "pool9.example.com",
    ]);
    assert!(err.contains("unknown pool pool9.example.com"), "{err}");
    assert_eq!(
        table(&env.ok(&["user", "list"])).len(),
        1,
        "bob was not added"
    );
    let err = env.fails(&[
        "user",
        "move",
        "alice@example.com",
        "--pool",
        "pool9.example.com",
    ]);
    assert!(err.contains("unknown pool pool9.example.com"), "{err}");
    assert!(err.contains("no front-end pool has joined"), "{err}");
}

#[tokio::test]
async fn add_list_show_and_remove() {
    let env = Env::new();
    assert!(!env.data().exists());
    assert_eq!(env.ok(&["user", "list"]), "no users\n");
    assert!(
        env.data().join("confab.db").exists(),
        "data dir and database are created"
    );

    let out = env.ok(&[
        "user",
        "add",
        "alice@example.com",
        "--password",
        "alice-secret",
        "--display-name",
        "Alice Liddell",
    ]);
    assert_eq!(out, "added alice@example.com\n");
    assert!(!out.contains("alice-secret"));
    assert_eq!(
        env.ok(&["user", "add", "SIP:Bob@Example.COM", "--password", "b"]),
        "added bob@example.com\n"
    );

    let list = env.ok(&["user", "list"]);
    assert_eq!(
        table(&list),
        [
            ["alice@example.com", "Alice Liddell", "yes"],
            ["bob@example.com", "-", "yes"]
        ]
    );

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    let users = json.as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["address"], "alice@example.com");
    assert_eq!(users[0]["display_name"], "Alice Liddell");
    assert_eq!(users[0]["enabled"], true);
    assert_eq!(users[1]["display_name"], serde_json::Value::Null);
    assert!(
        !json
            .to_string()
            .contains(&derive("alice", "example.com", "alice-secret").ha1_md5)
    );

    let show = env.ok(&["user", "show", "sip:alice@example.com"]);
    assert!(
        show.contains("address:       alice@example.com\n"),
        "{show}"
    );
    assert!(show.contains("display name:  Alice Liddell\n"), "{show}");
    assert!(show.contains("enabled:       yes\n"), "{show}");
    assert!(show.contains("domain:        example.com\n"), "{show}");
    assert!(show.contains(" UTC\n"), "{show}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["user", "show", "bob@example.com", "--json"])).unwrap();
    assert_eq!(json["username"], "bob");

    // Stored hashes: realm = the address's domain, digest username = the user part.
    let store = env.store().await;
    let alice = store.get_user("alice@example.com").await.unwrap().unwrap();
    assert_eq!(
        alice.credentials(),
        derive("alice", "example.com", "alice-secret")
    );
    store.close().await;

    assert_eq!(
        env.ok(&["user", "remove", "bob@example.com"]),
        "removed bob@example.com\n"
    );
    assert_eq!(
        table(&env.ok(&["user", "list"])),
        [["alice@example.com", "Alice Liddell", "yes"]]
    );
    assert_eq!(
        env.fails(&["user", "remove", "bob@example.com"]),
        "error: user bob@example.com not found\n"
    );
    assert_eq!(
        env.fails(&["user", "show", "bob@example.com"]),
        "error: user bob@example.com not found\n"
    );
}

#[test]
fn duplicate_add_fails_clearly() {
    let env = Env::new();
    env.ok(&["user", "add", "alice@example.com", "--password", "one"]);
    let err = env.fails(&["user", "add", "Alice@example.com", "--password", "two"]);
    assert_eq!(err, "error: user alice@example.com already exists\n");
    assert!(!err.contains("two"));
}

#[test]
fn bad_input_is_refused() {
    let env = Env::new();
    let err = env.fails(&["user", "add", "alice", "--password", "x"]);
    assert!(
        err.starts_with("error: invalid address \"alice\": expected user@domain"),
        "{err}"
    );
    let err = env.fails(&["user", "add", "alice@example.com", "--password", ""]);
    assert_eq!(err, "error: the password must not be empty\n");
    let err = env.fails(&[
        "user",
        "set-password",
        "nobody@example.com",
        "--password",
        "x",
    ]);
    assert_eq!(err, "error: user nobody@example.com not found\n");

    // Usage errors: exit code 2 and clap's message.
    let out = env.run(&["user", "add", "alice@example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--password"), "{}", stderr(&out));
    let out = env.run(&[
        "user",
        "add",
        "a@example.com",
        "--password",
        "x",
        "--password-stdin",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn password_from_stdin_and_set_password() {
    let env = Env::new();
    let out = env.run_with_stdin(
        &["user", "add", "carol@example.com", "--password-stdin"],
        "pa ss,wörd\n",
    );
    assert_ok(&out, &["add --password-stdin"]);
    assert_eq!(stdout(&out), "added carol@example.com\n");
    let store = env.store().await;
    let carol = store.get_user("carol@example.com").await.unwrap().unwrap();
    assert_eq!(
        carol.credentials(),
        derive("carol", "example.com", "pa ss,wörd")
    );

    // CRLF and no trailing newline both work.
    let out = env.run_with_stdin(
        &[
            "user",
            "set-password",
            "carol@example.com",
            "--password-stdin",
        ],
        "new-pw\r\n",
    );
    assert_ok(&out, &["set-password --password-stdin"]);
    assert_eq!(stdout(&out), "password changed for carol@example.com\n");
    let carol = store.get_user("carol@example.com").await.unwrap().unwrap();
    assert_eq!(
        carol.credentials(),
        derive("carol", "example.com", "new-pw")
    );

    assert_eq!(
        env.ok(&[
            "user",
            "set-password",
            "sip:carol@example.com",
            "--password",
            "third"
        ]),
        "password changed for carol@example.com\n"
    );
    let carol = store.get_user("carol@example.com").await.unwrap().unwrap();
    assert_eq!(carol.credentials(), derive("carol", "example.com", "third"));

    let out = env.run_with_stdin(&["user", "add", "dave@example.com", "--password-stdin"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: the password must not be empty\n");
    store.close().await;
}

#[test]
fn disable_enable_and_display_name() {
    let env = Env::new();
    env.ok(&["user", "add", "alice@example.com", "--password", "x"]);
    assert_eq!(
        env.ok(&["user", "disable", "alice@example.com"]),
        "disabled alice@example.com\n"
    );
    assert_eq!(
        table(&env.ok(&["user", "list"])),
        [["alice@example.com", "-", "no"]]
    );
    assert!(
        env.ok(&["user", "show", "alice@example.com"])
            .contains("enabled:       no\n")
    );
    assert_eq!(
        env.ok(&["user", "enable", "alice@example.com"]),
        "enabled alice@example.com\n"
    );
    assert_eq!(
        table(&env.ok(&["user", "list"])),
        [["alice@example.com", "-", "yes"]]
    );
    assert_eq!(
        env.fails(&["user", "disable", "zed@example.com"]),
        "error: user zed@example.com not found\n"
    );

    assert_eq!(
        env.ok(&["user", "set-display-name", "alice@example.com", "Alice A."]),
        "display name of alice@example.com set to \"Alice A.\"\n"
    );
    assert_eq!(
        table(&env.ok(&["user", "list"])),
        [["alice@example.com", "Alice A.", "yes"]]
    );
    assert_eq!(
        env.ok(&["user", "set-display-name", "alice@example.com"]),
        "display name of alice@example.com cleared\n"
    );
}

#[tokio::test]
async fn import_csv() {
    let env = Env::new();
    env.ok(&["user", "add", "existing@example.com", "--password", "x"]);
    let csv = env.path("users.csv");
    std::fs::write(
        &csv,
        "address,password,display_name\r\n\
         alice@example.com,alice-pw,\"Liddell, Alice\"\r\n\
         \r\n\
         sip:Bob@Example.com,\"bob \"\"pw\"\"\"\r\n\
         carol@example.com,carol-pw,Carol\r\n",
    )
    .unwrap();
    let out = env.ok(&["user", "import", csv.to_str().unwrap()]);
    assert_eq!(out, format!("imported 3 users from {}\n", csv.display()));
    assert_eq!(
        table(&env.ok(&["user", "list"])),
        [
            ["alice@example.com", "Liddell, Alice", "yes"],
            ["bob@example.com", "-", "yes"],
            ["carol@example.com", "Carol", "yes"],
            ["existing@example.com", "-", "yes"],
        ]
    );
    let store = env.store().await;
    let bob = store.get_user("bob@example.com").await.unwrap().unwrap();
    assert_eq!(
        bob.credentials(),
        derive("bob", "example.com", "bob \"pw\"")
    );
    store.close().await;

    // No header row.
    let csv2 = env.path("more.csv");
    std::fs::write(&csv2, "dave@example.com,d\n").unwrap();
    assert_eq!(
        env.ok(&["user", "import", csv2.to_str().unwrap()]),
        format!("imported 1 user from {}\n", csv2.display())
    );
}

#[tokio::test]
async fn import_refuses_bad_rows_and_imports_nothing() {
    let env = Env::new();
    env.ok(&["user", "add", "existing@example.com", "--password", "x"]);
    let cases: &[(&str, &str)] = &[
        (
            "a@example.com,pw\nb@example.com,pw\nnot-an-address,pw\n",
            ":3: invalid address \"not-an-address\"",
        ),
        (
            "address,password\na@example.com,pw\nb@example.com\n",
            ":3: expected 2 or 3 columns",
        ),
        (
            "a@example.com,pw\nb@example.com,pw,B,extra\n",
            ":2: expected 2 or 3 columns",
        ),
        (
            "a@example.com,pw\nb@example.com,\n",
            ":2: empty password for b@example.com",
        ),
        (
            "a@example.com,pw\nx@example.com,1\nA@example.com,pw\n",
            ":3: a@example.com is already on line 1",
        ),
        (
            "a@example.com,pw\nb@example.com,\"unterminated\n",
            ":2: unterminated quoted field",
        ),
        (
            "a@example.com,pw\n\nEXISTING@example.com,pw\n",
            ":3: user existing@example.com already exists",
        ),
        (
            "address,secret\na@example.com,pw\n",
            ":1: unexpected header",
        ),
    ];
    for (i, (content, expected)) in cases.iter().enumerate() {
        let csv = env.path(&format!("bad{i}.csv"));
        std::fs::write(&csv, content).unwrap();
        let err = env.fails(&["user", "import", csv.to_str().unwrap()]);
        let want = format!("error: {}{expected}", csv.display());
        assert!(
            err.starts_with(&want),
            "case {i}: expected {want:?}, got {err:?}"
        );
        assert!(
            err.trim_end().ends_with("nothing was imported"),
            "case {i}: {err}"
        );
    }
    let err = env.fails(&["user", "import", env.path("missing.csv").to_str().unwrap()]);
    assert!(
        err.starts_with("error: cannot read ") && err.contains("missing.csv"),
        "{err}"
    );

    let store = env.store().await;
    let users = store.list_users().await.unwrap();
    assert_eq!(users.len(), 1, "nothing was imported: {users:?}");
    store.close().await;
}

#[tokio::test]
async fn commands_work_beside_a_running_server() {
    // A "server" holds the database open and polls the change feed while the CLI writes.
    let env = Env::new();
    std::fs::create_dir_all(env.data()).unwrap();
    let server = env.store().await;
    let rev = server.current_rev().await.unwrap();

    env.ok(&["user", "add", "alice@example.com", "--password", "x"]);
    let csv = env.path("u.csv");
    std::fs::write(&csv, "bob@example.com,b\ncarol@example.com,c\n").unwrap();
    env.ok(&["user", "import", csv.to_str().unwrap()]);
    env.ok(&["user", "disable", "alice@example.com"]);
    env.ok(&["user", "remove", "carol@example.com"]);

    let (_, changes) = server.user_changes_since(rev).await.unwrap();
    let mut seen: Vec<String> = changes
        .iter()
        .map(|c| match c {
            UserChange::Upsert(u) => format!("{} enabled={}", u.address, u.enabled),
            UserChange::Removed { address } => format!("{address} removed"),
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "alice@example.com enabled=false",
            "bob@example.com enabled=true",
            "carol@example.com removed"
        ]
    );
    server.close().await;
}

#[test]
fn database_option_and_nested_data_dir() {
    let env = Env::new();
    let db = env.path("elsewhere/users.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let url = format!("sqlite://{}?mode=rwc", db.display());
    env.ok(&[
        "user",
        "--database",
        &url,
        "add",
        "a@example.com",
        "--password",
        "x",
    ]);
    assert!(db.exists());
    assert!(!env.data().exists(), "--database leaves the data dir alone");
    assert_eq!(
        table(&env.ok(&["user", "list", "--database", &url])),
        [["a@example.com", "-", "yes"]]
    );

    let nested = env.path("x/y/z");
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["user", "list", "--data"])
        .arg(&nested)
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert_ok(&out, &["list --data x/y/z"]);
    assert!(nested.join("confab.db").exists());
}

#[test]
fn logging_options() {
    let env = Env::new();
    let out = env.run(&[
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "user",
        "list",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = stderr(&out);
    assert!(!logs.is_empty(), "debug logging produced nothing");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    let out = env.run(&["user", "list", "--log-level", "nonsense=[=]"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--log-level: invalid log filter"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn postgres_database() {
    let Ok(admin_url) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped postgres_database: CONFAB_TEST_POSTGRES_URL is not set");
        return;
    };
    use sqlx::Connection;
    let db = format!("confab_cli_test_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url.as_str(), None), |(b, q)| (b, Some(q)));
    let base = &base[..base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .unwrap_or(base.len())];
    let url = match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    };

    let env = Env::new();
    let result = std::panic::catch_unwind(|| {
        env.ok(&[
            "user",
            "add",
            "pg@example.com",
            "--password",
            "x",
            "--database",
            &url,
        ]);
        let csv = env.path("u.csv");
        std::fs::write(&csv, "a@example.com,1\nb@example.com,2\n").unwrap();
        env.ok(&["user", "import", csv.to_str().unwrap(), "--database", &url]);
        let list = env.ok(&["user", "list", "--database", &url]);
        assert_eq!(table(&list).len(), 3, "{list}");
        assert!(!env.data().exists());
    });
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
