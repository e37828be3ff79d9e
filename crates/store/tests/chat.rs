//! Persistent Chat tables against real databases: SQLite always, PostgreSQL when
//! `CONFAB_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use confab_store::{
    ChatCategoryUpdate, ChatConfig, ChatRoomUpdate, ChatSearch, NewChatCategory, NewChatRoom,
    PostState, Privacy, REPLACED_TEXT, RoomType, Store,
};

on_both_backends!(
    categories_and_rooms,
    bad_input_changes_nothing,
    posts_history_and_administration,
    search_by_words_author_room_date,
    policy_and_config,
    names_are_unique_per_pool,
);

fn cat(name: &str) -> NewChatCategory {
    NewChatCategory {
        name: name.into(),
        description: "d".into(),
        allowed: vec!["@example.com".into()],
        denied: vec!["sip:Eve@Example.com".into()],
        creators: vec!["alice@example.com".into()],
        file_upload: true,
        chat_history: true,
        pool: String::new(),
    }
}

fn room(name: &str, category: &str) -> NewChatRoom {
    NewChatRoom {
        name: name.into(),
        pool: String::new(),
        category: category.into(),
        description: "a room".into(),
        privacy: Privacy::Closed,
        room_type: RoomType::Normal,
        disabled: false,
        members: vec!["bob@example.com".into()],
        managers: vec![],
        presenters: vec![],
    }
}

async fn categories_and_rooms(store: Store) {
    let rev0 = store.chat_rev().await.unwrap();
    store
        .add_chat_category("example.com", &cat("General"))
        .await
        .unwrap();
    let id = store
        .add_chat_room("example.com", &room("RoomOne", "general"))
        .await
        .unwrap();
    assert!(
        store.chat_rev().await.unwrap() > rev0,
        "admin changes move the chat revision"
    );
    let dir = store.chat_directory().await.unwrap();
    assert_eq!(dir.categories.len(), 1);
    let c = &dir.categories[0];
    assert_eq!(c.allowed, vec!["@example.com"]);
    assert_eq!(c.denied, vec!["eve@example.com"]);
    assert!(c.uri.starts_with("ma-cat://example.com/"));
    let r = &dir.rooms[0];
    assert_eq!(r.id, id);
    assert_eq!(r.uri, format!("ma-chan://example.com/{id}"));
    assert_eq!(r.category_id, c.id);
    assert_eq!(r.privacy, Privacy::Closed);
    assert_eq!(r.members, vec!["bob@example.com"]);

    store
        .update_chat_room(
            "roomone",
            &ChatRoomUpdate {
                rename: Some("Room 1".into()),
                privacy: Some(Privacy::Secret),
                room_type: Some(RoomType::Auditorium),
                disabled: Some(true),
                add_members: vec!["carol@example.com".into(), "@other.org".into()],
                remove_members: vec!["bob@example.com".into()],
                add_presenters: vec!["carol@example.com".into()],
                description: Some("new".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let r = store.chat_directory().await.unwrap().rooms.remove(0);
    assert_eq!(r.name, "Room 1");
    assert_eq!(r.privacy, Privacy::Secret);
    assert_eq!(r.room_type, RoomType::Auditorium);
    assert!(r.disabled);
    assert_eq!(r.description, "new");
    assert_eq!(r.members, vec!["@other.org", "carol@example.com"]);
    assert_eq!(r.presenters, vec!["carol@example.com"]);

    store
        .update_chat_category(
            "GENERAL",
            &ChatCategoryUpdate {
                allowed: Some(vec!["@example.com".into(), "x@other.org".into()]),
                file_upload: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let c = store.chat_directory().await.unwrap().categories.remove(0);
    assert_eq!(c.allowed, vec!["@example.com", "x@other.org"]);
    assert!(!c.file_upload);
    let err = store.remove_chat_category("General").await.unwrap_err();
    assert!(err.to_string().contains("used by 1 room"), "{err}");
    store.remove_chat_room("Room 1").await.unwrap();
    store.remove_chat_category("General").await.unwrap();
    let dir = store.chat_directory().await.unwrap();
    assert!(dir.rooms.is_empty() && dir.categories.is_empty());
}

async fn bad_input_changes_nothing(store: Store) {
    store
        .add_chat_category("example.com", &cat("General"))
        .await
        .unwrap();
    store
        .add_chat_room("example.com", &room("RoomOne", "General"))
        .await
        .unwrap();
    let before = store.chat_directory().await.unwrap();
    let rev = store.chat_rev().await.unwrap();
    let e = store
        .add_chat_room("example.com", &room("roomONE", "General"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = store
        .add_chat_room("example.com", &room("Other", "Nope"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown category"), "{e}");
    let e = store
        .add_chat_category("example.com", &cat("general"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let mut bad = room("Other", "General");
    bad.members = vec!["not an address".into()];
    assert!(store.add_chat_room("example.com", &bad).await.is_err());
    let e = store
        .update_chat_room(
            "RoomOne",
            &ChatRoomUpdate {
                description: Some("changed".into()),
                category: Some("Nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown category"), "{e}");
    assert!(
        store
            .update_chat_room("Missing", &ChatRoomUpdate::default())
            .await
            .is_err()
    );
    assert!(store.remove_chat_post(12345).await.is_err());
    assert!(store.clear_chat_room("Missing", 0).await.is_err());
    assert_eq!(
        store.chat_directory().await.unwrap(),
        before,
        "nothing changed"
    );
    assert_eq!(
        store.chat_rev().await.unwrap(),
        rev,
        "failed changes are rolled back"
    );
}

async fn posts_history_and_administration(store: Store) {
    store
        .add_chat_category("example.com", &cat("General"))
        .await
        .unwrap();
    let a = store
        .add_chat_room("example.com", &room("A", "General"))
        .await
        .unwrap();
    let b = store
        .add_chat_room("example.com", &room("B", "General"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = if i % 2 == 0 { &a } else { &b };
        ids.push(
            store
                .insert_chat_post(r, "bob@example.com", 1_000 * i, &format!("post <{i}> é"))
                .await
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let recent = store.recent_chat_posts(5).await.unwrap();
    let in_a: Vec<&str> = recent
        .iter()
        .filter(|p| p.room_id == a)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(
        in_a,
        vec![
            "post <30> é",
            "post <32> é",
            "post <34> é",
            "post <36> é",
            "post <38> é"
        ]
    );
    assert_eq!(recent.len(), 10);

    let rev = store.chat_rev().await.unwrap();
    store.replace_chat_post(ids[38], None).await.unwrap();
    store.remove_chat_post(ids[36]).await.unwrap();
    assert!(store.chat_rev().await.unwrap() > rev);
    let p = store.chat_post(ids[38]).await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.text.as_str(), p.original.as_str()),
        (PostState::Replaced, REPLACED_TEXT, "post <38> é")
    );
    let p = store.chat_post(ids[36]).await.unwrap().unwrap();
    assert_eq!(
        (p.state, p.text.as_str(), p.original.as_str()),
        (PostState::Removed, "", "post <36> é")
    );
    let recent = store.recent_chat_posts(2).await.unwrap();
    let in_a: Vec<&str> = recent
        .iter()
        .filter(|p| p.room_id == a)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(
        in_a,
        vec!["post <34> é", REPLACED_TEXT],
        "removed posts are not backfilled"
    );

    let n = store.clear_chat_room("a", 10_000).await.unwrap();
    assert_eq!(n, 5, "posts 0,2,4,6,8 of room A");
    let all = store.chat_posts(&a).await.unwrap();
    assert_eq!(
        all.len(),
        20,
        "cleared posts are kept (for compliance), marked removed"
    );
    assert_eq!(
        all.iter().filter(|p| p.state == PostState::Removed).count(),
        6
    );
    assert_eq!(all[0].original, "post <0> é");
}

async fn search_by_words_author_room_date(store: Store) {
    store
        .add_chat_category("example.com", &cat("General"))
        .await
        .unwrap();
    let a = store
        .add_chat_room("example.com", &room("A", "General"))
        .await
        .unwrap();
    let b = store
        .add_chat_room("example.com", &room("B", "General"))
        .await
        .unwrap();
    let day = 86_400_000;
    store
        .insert_chat_post(&a, "bob@example.com", day, "the quarterly budget meeting")
        .await
        .unwrap();
    let approved = store
        .insert_chat_post(
            &a,
            "alice@example.com",
            2 * day,
            "Budget approved, zażółć gęślą",
        )
        .await
        .unwrap();
    store
        .insert_chat_post(&b, "bob@example.com", 3 * day, "secret budget of room B")
        .await
        .unwrap();
    let removed = store
        .insert_chat_post(&a, "bob@example.com", 4 * day, "budget leak")
        .await
        .unwrap();
    store.remove_chat_post(removed).await.unwrap();
    let q = |text: &str| ChatSearch {
        rooms: vec![a.clone()],
        text: Some(text.into()),
        limit: 10,
        page: 1,
        ..Default::default()
    };
    let hits = store.search_chat(&q("budget")).await.unwrap();
    let texts: Vec<&str> = hits.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(
        texts,
        vec![
            "Budget approved, zażółć gęślą",
            "the quarterly budget meeting"
        ],
        "newest first, room A only, removed never"
    );
    assert_eq!(
        store.search_chat(&q("budget meeting")).await.unwrap().len(),
        1
    );
    assert_eq!(store.search_chat(&q("gęślą")).await.unwrap().len(), 1);
    assert_eq!(
        store.search_chat(&q("\" OR NOT")).await.unwrap().len(),
        0,
        "query syntax is not injectable"
    );
    let mut by_author = q("budget");
    by_author.author = Some("sip:Alice@example.com".into());
    assert_eq!(store.search_chat(&by_author).await.unwrap().len(), 1);
    let mut both = q("budget");
    both.rooms.push(b.clone());
    both.since_ms = Some(2 * day);
    let hits = store.search_chat(&both).await.unwrap();
    assert_eq!(
        hits.iter().map(|p| p.room_id.as_str()).collect::<Vec<_>>(),
        vec![b.as_str(), a.as_str()]
    );
    both.until_ms = Some(3 * day);
    assert_eq!(store.search_chat(&both).await.unwrap().len(), 1);
    let mut paged = q("budget");
    paged.limit = 1;
    paged.page = 2;
    let hits = store.search_chat(&paged).await.unwrap();
    assert_eq!(hits[0].text, "the quarterly budget meeting");
    let none = ChatSearch {
        rooms: vec![],
        text: Some("budget".into()),
        limit: 10,
        page: 1,
        ..Default::default()
    };
    assert!(
        store.search_chat(&none).await.unwrap().is_empty(),
        "no readable room, no result"
    );
    // Administration of an already indexed post takes it out of the index.
    store
        .replace_chat_post(approved, Some("redacted"))
        .await
        .unwrap();
    assert!(store.search_chat(&q("gęślą")).await.unwrap().is_empty());
    assert!(
        store.search_chat(&q("redacted")).await.unwrap().is_empty(),
        "replacement text is not indexed"
    );
}

async fn policy_and_config(store: Store) {
    let dir = store.chat_directory().await.unwrap();
    assert!(!dir.policy.global, "Lync's default: Persistent Chat off");
    assert_eq!(dir.config, ChatConfig::default());
    assert_eq!(
        (
            dir.config.default_history,
            dir.config.participant_update_limit
        ),
        (30, 75)
    );
    store.set_chat_policy(None, Some(true)).await.unwrap();
    store
        .set_chat_policy(Some("sip:Bob@example.com"), Some(false))
        .await
        .unwrap();
    let p = store.chat_directory().await.unwrap().policy;
    assert!(p.enabled_for("alice@example.com"));
    assert!(!p.enabled_for("bob@example.com"));
    store
        .set_chat_policy(Some("bob@example.com"), None)
        .await
        .unwrap();
    assert!(
        store
            .chat_directory()
            .await
            .unwrap()
            .policy
            .enabled_for("bob@example.com")
    );
    assert!(
        store
            .set_chat_policy(Some("@example.com"), Some(true))
            .await
            .is_err()
    );
    let c = ChatConfig {
        default_history: 50,
        max_message_bytes: 4000,
        participant_update_limit: 10,
        max_file_size_kb: 100,
    };
    store.set_chat_config(&c).await.unwrap();
    assert_eq!(store.chat_directory().await.unwrap().config, c);
    assert!(
        store
            .set_chat_config(&ChatConfig {
                default_history: 501,
                ..c
            })
            .await
            .is_err()
    );
    assert_eq!(store.chat_directory().await.unwrap().config, c);
}

/// Several Persistent Chat pools on one store: a room name is unique per pool, a
/// room lives in its category's pool, `POOL\\NAME` names a room of another pool.
async fn names_are_unique_per_pool(store: Store) {
    let p2 = "pchat2.example.com";
    store
        .add_chat_category("example.com", &cat("General"))
        .await
        .unwrap();
    let mut general2 = cat("General");
    general2.pool = "PChat2.example.com".into();
    store
        .add_chat_category("example.com", &general2)
        .await
        .unwrap();
    let default_id = store
        .add_chat_room("example.com", &room("Lobby", "General"))
        .await
        .unwrap();
    let mut lobby2 = room("Lobby", "General");
    lobby2.pool = p2.into();
    let id2 = store.add_chat_room("example.com", &lobby2).await.unwrap();
    assert_ne!(default_id, id2);
    let err = store
        .add_chat_room("example.com", &lobby2)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already exists in pool pchat2.example.com"),
        "{err}"
    );
    // A category of another pool does not take the room.
    let mut wrong = room("Elsewhere", &format!("{p2}\\General"));
    wrong.pool = String::new();
    let err = store
        .add_chat_room("example.com", &wrong)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is in pool"), "{err}");
    let err = store
        .add_chat_room("example.com", &room("Bad\\Name", "General"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("backslash"), "{err}");

    let dir = store.chat_directory().await.unwrap();
    let pools: Vec<(&str, &str)> = dir
        .rooms
        .iter()
        .map(|r| (r.name.as_str(), r.pool.as_str()))
        .collect();
    assert_eq!(pools, vec![("Lobby", ""), ("Lobby", p2)]);
    assert!(dir.categories.iter().any(|c| c.pool == p2));
    // Renaming keeps the pool; `POOL\\NAME` addresses the other pool's room.
    store
        .update_chat_room(
            &format!("{p2}\\lobby"),
            &ChatRoomUpdate {
                rename: Some("Hall".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dir = store.chat_directory().await.unwrap();
    let hall = dir.rooms.iter().find(|r| r.name == "Hall").unwrap();
    assert_eq!((hall.id.as_str(), hall.pool.as_str()), (id2.as_str(), p2));
    store
        .update_chat_room(
            &format!("{p2}\\Hall"),
            &ChatRoomUpdate {
                rename: Some("Lobby".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .remove_chat_room(&format!("{p2}\\Lobby"))
        .await
        .unwrap();
    let dir = store.chat_directory().await.unwrap();
    assert_eq!(dir.rooms.len(), 1);
    assert_eq!(dir.rooms[0].id, default_id);
}
