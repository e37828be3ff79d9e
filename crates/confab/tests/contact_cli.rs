//! `confab contact ...` run as a real process on a temporary data directory.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_env;

use cli_env::*;

/// `contact list` output: the delta_num from its first line, and the data rows of the
/// table (header checked and skipped), split on runs of 2+ spaces.
fn parse_list(list: &str) -> (u64, Vec<Vec<String>>) {
    let mut lines = list.lines();
    let first = lines.next().unwrap();
    let delta = first.rsplit_once("delta_num ").unwrap().1.parse().unwrap();
    let Some(header) = lines.next() else {
        return (delta, vec![]);
    };
    if header == "no contacts" {
        return (delta, vec![]);
    }
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["URI", "NAME", "GROUPS", "SUBSCRIBED"]
    );
    let rows = lines
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect();
    (delta, rows)
}

fn add_users(env: &Env, addresses: &[&str]) {
    for a in addresses {
        env.ok(&["user", "add", a, "--password", "pw"]);
    }
}

#[tokio::test]
async fn add_list_and_remove() {
    let env = Env::new();
    add_users(&env, &["alice@example.com", "bob@example.com"]);
    assert_eq!(
        env.ok(&["contact", "list", "alice@example.com"]),
        "contact list of alice@example.com, delta_num 0\nno contacts\n"
    );

    assert_eq!(
        env.ok(&["contact", "add", "alice@example.com", "sip:Bob@Example.com"]),
        "added bob@example.com to the contact list of alice@example.com \
         (groups: ~; delta_num 1)\n"
    );
    // Federated contacts are fine; a group is created by name.
    assert_eq!(
        env.ok(&[
            "contact",
            "add",
            "SIP:Alice@example.com",
            "carol@partner.example",
            "--name",
            "Carol P.",
            "--group",
            "Partners",
        ]),
        "added carol@partner.example to the contact list of alice@example.com \
         (groups: Partners; delta_num 2)\n"
    );
    // Adding again updates: bob moves from "~" into Team and gets an alias.
    assert_eq!(
        env.ok(&[
            "contact",
            "add",
            "alice@example.com",
            "bob@example.com",
            "--group",
            "Team",
            "--name",
            "Bobby"
        ]),
        "updated bob@example.com in the contact list of alice@example.com \
         (groups: Team; delta_num 3)\n"
    );

    let (delta, rows) = parse_list(&env.ok(&["contact", "list", "alice@example.com"]));
    assert_eq!(delta, 3);
    assert_eq!(
        rows,
        [
            ["bob@example.com", "Bobby", "Team", "yes"],
            ["carol@partner.example", "Carol P.", "Partners", "yes"],
        ]
    );

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["contact", "list", "alice@example.com", "--json"])).unwrap();
    assert_eq!(json["owner"], "alice@example.com");
    assert_eq!(json["delta_num"], 3);
    let groups: Vec<&str> = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["~", "Partners", "Team"]);
    assert_eq!(json["contacts"][0]["uri"], "bob@example.com");
    assert_eq!(json["contacts"][0]["groups"], serde_json::json!(["Team"]));
    assert_eq!(json["contacts"][0]["group_ids"], serde_json::json!([3]));
    assert_eq!(json["contacts"][1]["name"], "Carol P.");
    assert_eq!(json["contacts"][1]["subscribed"], true);

    assert_eq!(
        env.ok(&["contact", "remove", "alice@example.com", "BOB@example.com"]),
        "removed bob@example.com from the contact list of alice@example.com\n"
    );
    assert_eq!(
        env.fails(&["contact", "remove", "alice@example.com", "bob@example.com"]),
        "error: bob@example.com is not in the contact list of alice@example.com\n"
    );
    let (delta, rows) = parse_list(&env.ok(&["contact", "list", "alice@example.com"]));
    assert_eq!(delta, 4);
    assert_eq!(
        rows,
        [["carol@partner.example", "Carol P.", "Partners", "yes"]]
    );

    // What the server reads: the same list, and the change feed names alice.
    let store = env.store().await;
    let list = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(list.delta_num, 4);
    assert_eq!(list.contacts.len(), 1);
    let (_, owners) = store.contact_changes_since(0).await.unwrap();
    assert_eq!(owners, ["alice@example.com"]);
    store.close().await;

    // Removing the user removes the list.
    env.ok(&["user", "remove", "alice@example.com"]);
    add_users(&env, &["alice@example.com"]);
    let (delta, rows) = parse_list(&env.ok(&["contact", "list", "alice@example.com"]));
    assert_eq!((delta, rows.len()), (0, 0));
}

#[test]
fn unknown_owner_and_bad_input_are_refused() {
    let env = Env::new();
    add_users(&env, &["alice@example.com"]);
    for args in [
        &["contact", "add", "nobody@example.com", "bob@example.com"][..],
        &["contact", "remove", "nobody@example.com", "bob@example.com"],
        &["contact", "list", "sip:Nobody@example.com"],
        &["contact", "list", "nobody@example.com", "--json"],
    ] {
        assert_eq!(
            env.fails(args),
            "error: user nobody@example.com not found\n",
            "{args:?}"
        );
    }
    for bad in [
        "bob",
        "bob@",
        "@example.com",
        "bob@bad_domain",
        "b b@example.com",
    ] {
        let err = env.fails(&["contact", "add", "alice@example.com", bad]);
        assert!(
            err.starts_with(&format!("error: invalid address {bad:?}: ")),
            "{bad}: {err}"
        );
        let err = env.fails(&["contact", "list", bad]);
        assert!(err.starts_with("error: invalid address "), "{bad}: {err}");
    }
    assert_eq!(
        env.fails(&[
            "contact",
            "add",
            "alice@example.com",
            "bob@example.com",
            "--group",
            " "
        ]),
        "error: the group name must not be empty\n"
    );
    assert_eq!(
        env.fails(&[
            "contact",
            "add",
            "alice@example.com",
            "bob@example.com",
            "--name",
            "a\u{7}b"
        ]),
        "error: the alias must not contain control characters\n"
    );
    // Nothing was stored by any of that.
    assert_eq!(
        env.ok(&["contact", "list", "alice@example.com"]),
        "contact list of alice@example.com, delta_num 0\nno contacts\n"
    );

    // Usage errors: exit code 2.
    let out = env.run(&["contact", "add", "alice@example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<URI>"), "{}", stderr(&out));
}

#[test]
fn lists_persist_across_processes() {
    let env = Env::new();
    add_users(&env, &["alice@example.com"]);
    for (uri, group) in [
        ("bob@example.com", None),
        ("carol@example.com", Some("Team")),
        ("dave@example.com", Some("Team")),
    ] {
        let mut args = vec!["contact", "add", "alice@example.com", uri];
        if let Some(g) = group {
            args.extend(["--group", g]);
        }
        env.ok(&args);
    }
    // Each command was its own process; a later one reads what they stored.
    let (delta, rows) = parse_list(&env.ok(&["contact", "list", "alice@example.com"]));
    assert_eq!(delta, 3);
    assert_eq!(
        rows,
        [
            ["bob@example.com", "-", "~", "yes"],
            ["carol@example.com", "-", "Team", "yes"],
            ["dave@example.com", "-", "Team", "yes"],
        ]
    );
    // --database names the same file explicitly.
    let url = confab_store::sqlite_url(&env.data().join("confab.db")).unwrap();
    let out = env.ok(&["contact", "list", "alice@example.com", "--database", &url]);
    assert_eq!(parse_list(&out).1.len(), 3);
}
