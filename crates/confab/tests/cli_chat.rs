//! `confab chat ...` run as a real process on a temporary data directory (SQLite), and
//! against PostgreSQL when `CONFAB_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_env;

use cli_env::*;
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// Runs the whole verb list against `db` (None: the data directory's SQLite file).
fn every_verb(env: &Env, db: Option<&str>) {
    let with_db = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Some(db) = db {
            v.push("--database".into());
            v.push(db.into());
        }
        v
    };
    let ok = |args: &[&str]| {
        let v = with_db(args);
        env.ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let fails = |args: &[&str]| {
        let v = with_db(args);
        env.fails(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    for u in ["alice", "bob", "carol"] {
        ok(&[
            "user",
            "add",
            &format!("{u}@example.com"),
            "--password",
            "pw",
        ]);
    }

    assert_eq!(ok(&["chat", "category", "list"]), "no categories\n");
    assert_eq!(
        ok(&[
            "chat",
            "category",
            "add",
            "General",
            "--description",
            "all staff",
            "--allowed-members",
            "@example.com",
            "--denied-members",
            "sip:carol@example.com",
            "--creators",
            "alice@example.com",
            "--file-upload",
            "true"
        ]),
        "added category General\n"
    );
    let cats = json(&ok(&["chat", "category", "list", "--json"]));
    assert_eq!(cats[0]["name"], "General");
    assert_eq!(
        cats[0]["allowed_members"],
        serde_json::json!(["@example.com"])
    );
    assert_eq!(
        cats[0]["denied_members"],
        serde_json::json!(["carol@example.com"])
    );
    assert_eq!(cats[0]["file_upload"], true);
    assert_eq!(cats[0]["chat_history"], true);
    ok(&[
        "chat",
        "category",
        "set",
        "General",
        "--denied-members",
        "",
        "--chat-history",
        "false",
    ]);
    let cats = json(&ok(&["chat", "category", "list", "--json"]));
    assert_eq!(cats[0]["denied_members"], serde_json::json!([]));
    assert_eq!(cats[0]["chat_history"], false);

    let out = ok(&[
        "chat",
        "room",
        "add",
        "RoomOne",
        "--category",
        "general",
        "--description",
        "test <room>",
        "--members",
        "alice@example.com,bob@example.com",
    ]);
    assert!(
        out.starts_with("added room RoomOne ma-chan://example.com/"),
        "{out}"
    );
    ok(&[
        "chat",
        "room",
        "add",
        "Stage",
        "--category",
        "General",
        "--privacy",
        "open",
        "--type",
        "auditorium",
        "--presenters",
        "alice@example.com",
    ]);
    let rooms = json(&ok(&["chat", "room", "list", "--json"]));
    assert_eq!(rooms.as_array().unwrap().len(), 2);
    let r1 = &rooms[0];
    assert_eq!(r1["name"], "RoomOne");
    assert_eq!(r1["category"], "General");
    assert_eq!(r1["privacy"], "closed", "Lync's default privacy");
    assert_eq!(r1["type"], "normal");
    assert_eq!(r1["disabled"], false);
    assert_eq!(r1["description"], "test <room>");
    assert_eq!(
        r1["members"],
        serde_json::json!(["alice@example.com", "bob@example.com"])
    );
    assert!(
        r1["uri"]
            .as_str()
            .unwrap()
            .starts_with("ma-chan://example.com/")
    );
    assert_eq!(rooms[1]["type"], "auditorium");
    let uri = r1["uri"].as_str().unwrap().to_owned();
    assert_eq!(
        json(&ok(&["chat", "room", "show", &uri, "--json"]))["name"],
        "RoomOne"
    );
    let table = ok(&["chat", "room", "list"]);
    assert!(
        table.lines().nth(1).unwrap().starts_with("RoomOne"),
        "{table}"
    );
    assert!(
        ok(&["chat", "room", "show", "roomone"])
            .contains("members:     alice@example.com,bob@example.com")
    );

    // Bad input: a clear error, nothing changed.
    let before = ok(&["chat", "room", "list", "--json"]);
    let cats_before = ok(&["chat", "category", "list", "--json"]);
    assert!(
        fails(&["chat", "room", "add", "roomONE", "--category", "General"])
            .contains("already exists")
    );
    assert!(
        fails(&["chat", "room", "add", "Other", "--category", "Nope"]).contains("unknown category")
    );
    assert!(
        fails(&[
            "chat",
            "room",
            "add",
            "Other",
            "--category",
            "General",
            "--members",
            "zed@example.com"
        ])
        .contains("unknown user zed@example.com")
    );
    assert!(
        fails(&[
            "chat",
            "room",
            "add",
            "Other",
            "--category",
            "General",
            "--privacy",
            "hidden"
        ])
        .contains("invalid privacy")
    );
    assert!(
        fails(&[
            "chat",
            "room",
            "set",
            "RoomOne",
            "--add-members",
            "zed@example.com",
            "--description",
            "x"
        ])
        .contains("unknown user")
    );
    assert!(
        fails(&["chat", "room", "set", "Missing", "--description", "x"]).contains("unknown room")
    );
    assert!(fails(&["chat", "category", "remove", "General"]).contains("used by 2 room"));
    assert!(fails(&["chat", "category", "add", "general"]).contains("already exists"));
    assert!(
        fails(&["chat", "policy", "set", "zed@example.com", "--enable"]).contains("unknown user")
    );
    assert!(
        fails(&["chat", "config", "set", "--default-history", "0"]).contains("between 1 and 500")
    );
    assert!(fails(&["chat", "clear", "RoomOne", "--before", "someday"]).contains("invalid date"));
    assert!(fails(&["chat", "message", "remove", "999"]).contains("no message with id 999"));
    assert!(fails(&["chat", "search", "--as", "zed@example.com"]).contains("unknown user"));
    assert_eq!(ok(&["chat", "room", "list", "--json"]), before);
    assert_eq!(ok(&["chat", "category", "list", "--json"]), cats_before);

    ok(&[
        "chat",
        "room",
        "set",
        "roomone",
        "--add-members",
        "carol@example.com",
        "--remove-members",
        "bob@example.com",
        "--add-managers",
        "alice@example.com",
        "--privacy",
        "secret",
        "--rename",
        "Room 1",
    ]);
    let r = json(&ok(&["chat", "room", "show", "Room 1", "--json"]));
    assert_eq!(
        r["members"],
        serde_json::json!(["alice@example.com", "carol@example.com"])
    );
    assert_eq!(r["managers"], serde_json::json!(["alice@example.com"]));
    assert_eq!(r["privacy"], "secret");
    assert_eq!(
        ok(&["chat", "room", "disable", "Room 1"]),
        "disabled room Room 1\n"
    );
    assert_eq!(
        json(&ok(&["chat", "room", "show", "Room 1", "--json"]))["disabled"],
        true
    );
    ok(&["chat", "room", "enable", "Room 1"]);
    assert_eq!(
        json(&ok(&["chat", "room", "show", "Room 1", "--json"]))["disabled"],
        false
    );

    // Policy and config.
    let p = json(&ok(&["chat", "policy", "show", "--json"]));
    assert_eq!(p["global"], false, "Lync's default");
    ok(&["chat", "policy", "set", "--global", "--enable"]);
    ok(&["chat", "policy", "set", "bob@example.com", "--disable"]);
    assert_eq!(
        ok(&["chat", "policy", "show", "bob@example.com"]),
        "bob@example.com: disabled (user setting)\n"
    );
    assert_eq!(
        ok(&["chat", "policy", "show", "alice@example.com"]),
        "alice@example.com: enabled (global setting)\n"
    );
    ok(&["chat", "policy", "set", "bob@example.com", "--clear"]);
    assert_eq!(
        json(&ok(&[
            "chat",
            "policy",
            "show",
            "bob@example.com",
            "--json"
        ]))["enabled"],
        true
    );
    let c = json(&ok(&["chat", "config", "show", "--json"]));
    assert_eq!(
        (
            c["default_history"].as_u64(),
            c["max_message_bytes"].as_u64(),
            c["participant_update_limit"].as_u64()
        ),
        (Some(30), Some(8000), Some(75))
    );
    ok(&["chat", "config", "set", "--default-history", "50"]);
    let c = json(&ok(&["chat", "config", "show", "--json"]));
    assert_eq!(
        (
            c["default_history"].as_u64(),
            c["max_message_bytes"].as_u64()
        ),
        (Some(50), Some(8000))
    );

    // Messages and search (posts written as the chat service would).
    assert_eq!(ok(&["chat", "message", "list", "Room 1"]), "no messages\n");
    ok(&["chat", "room", "remove", "Stage"]);
    ok(&[
        "chat",
        "room",
        "add",
        "Lobby",
        "--category",
        "General",
        "--privacy",
        "open",
    ]);
    ok(&[
        "chat",
        "category",
        "add",
        "Legal",
        "--allowed-members",
        "carol@example.com",
    ]);
    ok(&[
        "chat",
        "room",
        "add",
        "Vault",
        "--category",
        "Legal",
        "--privacy",
        "open",
    ]);
    assert!(fails(&["chat", "category", "remove", "Legal"]).contains("used by"));
}

async fn seed_posts(store: &confab_store::Store) {
    let dir = store.chat_directory().await.unwrap();
    let id = |name: &str| {
        dir.rooms
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .id
            .clone()
    };
    let day = 86_400_000i64;
    let t0 = 1_735_689_600_000i64; // 2025-01-01
    store
        .insert_chat_post(&id("Room 1"), "alice@example.com", t0, "budget <draft> é")
        .await
        .unwrap();
    store
        .insert_chat_post(&id("Room 1"), "carol@example.com", t0 + day, "budget final")
        .await
        .unwrap();
    store
        .insert_chat_post(
            &id("Lobby"),
            "bob@example.com",
            t0 + 2 * day,
            "lobby budget talk",
        )
        .await
        .unwrap();
    store
        .insert_chat_post(
            &id("Vault"),
            "carol@example.com",
            t0 + 3 * day,
            "vault budget secret",
        )
        .await
        .unwrap();
}

fn messages_and_search(env: &Env, db: Option<&str>) {
    let run = |args: &[&str]| -> String {
        let mut v: Vec<&str> = args.to_vec();
        if let Some(db) = db {
            v.push("--database");
            v.push(db);
        }
        env.ok(&v)
    };
    let list = json(&run(&["chat", "message", "list", "Room 1", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["author"], "alice@example.com");
    assert_eq!(list[0]["ts"], "2025-01-01T00:00:00.000Z");
    assert_eq!(list[0]["text"], "budget <draft> é");
    assert_eq!(list[0]["state"], "active");
    let first = list[0]["id"].as_i64().unwrap().to_string();
    let second = list[1]["id"].as_i64().unwrap().to_string();

    // Alice reads Room 1 and the Lobby, never the Vault (Legal category).
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--text",
        "budget",
        "--json",
    ]));
    let rooms: Vec<&str> = s["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, vec!["Lobby", "Room 1", "Room 1"], "newest first");
    assert_eq!(s["page"], 1);
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "carol@example.com",
        "--text",
        "budget",
        "--room",
        "Vault",
        "--json",
    ]));
    assert_eq!(s["results"][0]["text"], "vault budget secret");
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--author",
        "carol@example.com",
        "--json",
    ]));
    assert_eq!(s["results"].as_array().unwrap().len(), 1);
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--since",
        "2025-01-02",
        "--until",
        "2025-01-03",
        "--json",
    ]));
    assert_eq!(s["results"][0]["text"], "budget final");
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--text",
        "budget",
        "--limit",
        "1",
        "--page",
        "3",
        "--json",
    ]));
    assert_eq!(s["results"][0]["text"], "budget <draft> é");

    assert_eq!(
        run(&["chat", "message", "replace", &first]),
        format!("replaced message {first}\n")
    );
    assert_eq!(
        run(&["chat", "message", "remove", &second]),
        format!("removed message {second}\n")
    );
    let list = json(&run(&["chat", "message", "list", "Room 1", "--json"]));
    assert_eq!(
        list[0]["text"],
        "This message was replaced by the Persistent Chat administrator."
    );
    assert_eq!(list[0]["original"], "budget <draft> é");
    assert_eq!(list[1]["state"], "removed");
    let s = json(&run(&[
        "chat",
        "search",
        "--as",
        "alice@example.com",
        "--text",
        "budget",
        "--room",
        "Room 1",
        "--json",
    ]));
    assert!(
        s["results"].as_array().unwrap().is_empty(),
        "removed and replaced posts are not found"
    );
    assert_eq!(
        run(&["chat", "clear", "Lobby", "--before", "2025-02-01"]),
        "cleared 1 message(s) from Lobby\n"
    );
    let list = json(&run(&["chat", "message", "list", "Lobby", "--json"]));
    assert_eq!(list[0]["state"], "removed");
    assert_eq!(list[0]["original"], "lobby budget talk");
}

#[tokio::test]
async fn every_verb_on_sqlite() {
    let env = Env::new();
    every_verb(&env, None);
    let store = env.store().await;
    seed_posts(&store).await;
    store.close().await;
    messages_and_search(&env, None);
}

#[tokio::test]
async fn every_verb_on_postgres() {
    let Ok(admin) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        println!("skipped: CONFAB_TEST_POSTGRES_URL is not set");
        return;
    };
    use sqlx::Connection;
    let db = format!("confab_chatcli_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    let body_url = url.clone();
    // On its own task, so that a failure still drops the database below.
    let outcome = tokio::spawn(async move {
        let env = Env::new();
        every_verb(&env, Some(&body_url));
        let store = confab_store::Store::open(&body_url).await.unwrap();
        seed_posts(&store).await;
        store.close().await;
        messages_and_search(&env, Some(&body_url));
    })
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {db} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
