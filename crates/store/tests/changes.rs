//! On PostgreSQL every write that takes a revision is announced on
//! `CHANGES_CHANNEL` at commit (the servers sharing the back end follow the change
//! feeds without polling), and shared pool presence round-trips through its table
//! and `PRESENCE_CHANNEL`. Runs when `CONFAB_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(unused_macros)] // on_both_backends: these tests need the URL (LISTEN)
mod common;

use std::time::Duration;

use confab_store::{CHANGES_CHANNEL, PRESENCE_CHANNEL, SharedState, Store};
use sqlx::postgres::PgListener;

async fn next_payload(l: &mut PgListener) -> Option<String> {
    match tokio::time::timeout(Duration::from_secs(5), l.recv()).await {
        Ok(Ok(n)) => Some(n.payload().to_owned()),
        _ => None,
    }
}

async fn quiet(l: &mut PgListener) -> bool {
    tokio::time::timeout(Duration::from_millis(300), l.recv())
        .await
        .is_err()
}

#[tokio::test]
async fn writes_are_announced() {
    common::with_postgres_url("writes_are_announced", |store: Store, url| async move {
        let mut l = PgListener::connect(&url).await.unwrap();
        l.listen(CHANGES_CHANNEL).await.unwrap();
        assert!(quiet(&mut l).await, "nothing announced before a write");
        store
            .add_user(common::new_user("alice@example.com", "pw"))
            .await
            .unwrap();
        assert_eq!(next_payload(&mut l).await.as_deref(), Some("rev"));
        store
            .add_contact("alice@example.com", "bob@example.com", None, None)
            .await
            .unwrap();
        assert_eq!(next_payload(&mut l).await.as_deref(), Some("rev"));
        assert!(quiet(&mut l).await, "one announcement per write");
    })
    .await;
}

#[tokio::test]
async fn shared_presence_round_trips() {
    common::with_postgres_url(
        "shared_presence_round_trips",
        |store: Store, url| async move {
            let mut l = PgListener::connect(&url).await.unwrap();
            l.listen(PRESENCE_CHANNEL).await.unwrap();
            let bob = SharedState {
                pool: "pool01.example.com".into(),
                member: "fe02.example.com".into(),
                address: "bob@example.com".into(),
                availability: 15500,
                activity: Some("away".into()),
                note: Some("lunch".into()),
            };
            store
                .pool_presence_share(std::slice::from_ref(&bob), 1)
                .await
                .unwrap();
            let got = next_payload(&mut l).await.expect("a notification");
            assert_eq!(SharedState::decode(&got), Some(bob.clone()));
            assert_eq!(
                store.pool_presence("pool01.example.com").await.unwrap(),
                vec![bob.clone()]
            );
            assert!(store.pool_presence("other").await.unwrap().is_empty());
            // Signed out: the row goes, the others are told.
            let off = SharedState {
                availability: 18500,
                activity: None,
                note: None,
                ..bob.clone()
            };
            store.pool_presence_share(&[off], 2).await.unwrap();
            let got = SharedState::decode(&next_payload(&mut l).await.unwrap()).unwrap();
            assert!(got.offline());
            assert!(
                store
                    .pool_presence("pool01.example.com")
                    .await
                    .unwrap()
                    .is_empty()
            );
            // A restarted front end forgets what it shared.
            store.pool_presence_share(&[bob], 3).await.unwrap();
            store
                .pool_presence_forget("pool01.example.com", "fe02.example.com")
                .await
                .unwrap();
            assert!(
                store
                    .pool_presence("pool01.example.com")
                    .await
                    .unwrap()
                    .is_empty()
            );
        },
    )
    .await;
}

/// A file post is announced to the chat pool in its transaction, as a post of no
/// chat server, so the pool's servers deliver it live (issue 11).
#[tokio::test]
async fn file_posts_are_announced_to_the_chat_pool() {
    common::with_postgres_url(
        "file_posts_are_announced_to_the_chat_pool",
        |store: Store, url| async move {
            store
                .add_chat_category(
                    "example.com",
                    &confab_store::NewChatCategory {
                        name: "Files".into(),
                        allowed: vec!["@example.com".into()],
                        file_upload: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let room = store
                .add_chat_room(
                    "example.com",
                    &confab_store::NewChatRoom {
                        name: "Shared".into(),
                        pool: String::new(),
                        category: "Files".into(),
                        description: String::new(),
                        privacy: confab_store::Privacy::Open,
                        room_type: confab_store::RoomType::Normal,
                        disabled: false,
                        members: vec![],
                        managers: vec![],
                        presenters: vec![],
                    },
                )
                .await
                .unwrap();
            let mut l = PgListener::connect(&url).await.unwrap();
            l.listen(confab_store::CHAT_CHANNEL).await.unwrap();
            let id = store
                .insert_chat_file_post(
                    &confab_store::NewChatFile {
                        id: "0123456789abcdef0123456789abcdef".into(),
                        room_id: room.clone(),
                        author: "bob@example.com".into(),
                        name: "a.txt".into(),
                        size: 1,
                        sha256: "00".into(),
                    },
                    1_000,
                    "a.txt",
                )
                .await
                .unwrap();
            let payload = next_payload(&mut l).await.expect("a notification");
            assert_eq!(
                confab_store::ChatPoolEvent::decode(&payload),
                Some(confab_store::ChatPoolEvent::Post {
                    server: confab_store::FILE_POST_SERVER.into(),
                    id,
                    room_id: room,
                })
            );
        },
    )
    .await;
}
