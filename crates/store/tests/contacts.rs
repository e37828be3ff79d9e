//! Contact lists against real databases: SQLite in a temp dir always; PostgreSQL when
//! `CONFAB_TEST_POSTGRES_URL` names a server (each test in its own fresh database).

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use confab_store::{
    Contact, ContactGroup, ContactList, OTHER_CONTACTS_GROUP, Store, StoreError, UserChange,
};

use common::new_user;

on_both_backends!(
    empty_list,
    save_and_load_round_trip,
    save_refuses_bad_lists,
    delta_num_bumps,
    change_feed_reports_each_owner_once,
    add_contact_goes_to_other_contacts,
    add_contact_to_named_groups,
    add_contact_updates_existing,
    remove_contact,
    remove_user_removes_the_list,
    malformed_uris_are_refused,
    unknown_owner_is_refused,
    all_contact_lists,
    concurrent_adds_are_serialized,
    a_save_from_a_stale_copy_is_refused,
);

async fn add_users(store: &Store, addresses: &[&str]) {
    for a in addresses {
        store.add_user(new_user(a, "pw")).await.unwrap();
    }
}

fn group(id: u32, name: &str) -> ContactGroup {
    ContactGroup {
        id,
        name: name.into(),
    }
}

fn contact(uri: &str, name: &str, groups: &[u32], subscribed: bool) -> Contact {
    Contact {
        uri: uri.into(),
        name: name.into(),
        groups: groups.to_vec(),
        subscribed,
    }
}

fn uris(list: &ContactList) -> Vec<&str> {
    list.contacts.iter().map(|c| c.uri.as_str()).collect()
}

async fn empty_list(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let list = store.contact_list("sip:Alice@Example.com").await.unwrap();
    assert_eq!(list, ContactList::empty("alice@example.com"));
    assert_eq!(list.delta_num, 0);
    // Not an error for someone who is not a user either.
    let list = store.contact_list("nobody@example.com").await.unwrap();
    assert_eq!(list, ContactList::empty("nobody@example.com"));
    assert!(store.all_contact_lists().await.unwrap().is_empty());
    assert_eq!(store.contact_changes_since(0).await.unwrap(), (0, vec![]));
}

async fn save_and_load_round_trip(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let rev0 = store.current_rev().await.unwrap();
    let list = ContactList {
        owner: "SIP:Alice@example.com".into(),
        delta_num: 7,
        groups: vec![group(3, "Team"), group(1, "~"), group(2, "Empty group")],
        contacts: vec![
            contact("sip:Zed@Partner.example", "", &[3, 1, 3], true),
            contact("bob@example.com", "Bobby", &[1], false),
            contact("carol@example.com", "Carol ü", &[], true),
        ],
    };
    store.save_contact_list(&list).await.unwrap();
    assert_eq!(store.current_rev().await.unwrap(), rev0 + 1);

    let loaded = store.contact_list("alice@example.com").await.unwrap();
    let expected = ContactList {
        owner: "alice@example.com".into(),
        delta_num: 7,
        groups: vec![group(1, "~"), group(2, "Empty group"), group(3, "Team")],
        contacts: vec![
            contact("bob@example.com", "Bobby", &[1], false),
            contact("carol@example.com", "Carol ü", &[], true),
            contact("zed@partner.example", "", &[1, 3], true),
        ],
    };
    assert_eq!(loaded, expected);
    // Saving the loaded list again changes nothing but the revision.
    store.save_contact_list(&loaded).await.unwrap();
    assert_eq!(
        store.contact_list("alice@example.com").await.unwrap(),
        expected
    );

    // A save replaces the whole list.
    let smaller = ContactList {
        owner: "alice@example.com".into(),
        delta_num: 8,
        groups: vec![group(5, "Only")],
        contacts: vec![contact("dave@example.com", "", &[5], true)],
    };
    store.save_contact_list(&smaller).await.unwrap();
    assert_eq!(
        store.contact_list("alice@example.com").await.unwrap(),
        smaller
    );

    // An empty list is a list too: its delta_num is kept.
    let empty = ContactList {
        delta_num: 9,
        ..ContactList::empty("alice@example.com")
    };
    store.save_contact_list(&empty).await.unwrap();
    assert_eq!(
        store.contact_list("alice@example.com").await.unwrap(),
        empty
    );
    assert_eq!(store.all_contact_lists().await.unwrap(), [empty]);
}

async fn save_refuses_bad_lists(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let good = ContactList {
        owner: "alice@example.com".into(),
        delta_num: 1,
        groups: vec![group(1, "~")],
        contacts: vec![contact("bob@example.com", "", &[1], true)],
    };
    store.save_contact_list(&good).await.unwrap();
    let rev = store.current_rev().await.unwrap();

    let mut twice = good.clone();
    twice
        .contacts
        .push(contact("sip:BOB@example.com", "", &[1], true));
    let mut dup_group = good.clone();
    dup_group.groups.push(group(1, "Again"));
    let mut unknown_group = good.clone();
    unknown_group.contacts[0].groups = vec![1, 9];
    let mut huge = good.clone();
    huge.delta_num = u64::MAX;
    for bad in [twice, dup_group, unknown_group, huge] {
        let err = store.save_contact_list(&bad).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidContactList { owner, .. } if owner == "alice@example.com"),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid contact list of alice@example.com: ")
        );
    }
    let err = store
        .save_contact_list(&ContactList::empty("nobody@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UserNotFound(a) if a == "nobody@example.com"),
        "{err}"
    );

    // Nothing was written.
    assert_eq!(store.contact_list("alice@example.com").await.unwrap(), good);
    assert_eq!(store.current_rev().await.unwrap(), rev);
    assert!(
        store
            .contact_list("nobody@example.com")
            .await
            .unwrap()
            .contacts
            .is_empty()
    );
}

async fn delta_num_bumps(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let list = store
        .add_contact("alice@example.com", "bob@example.com", None, None)
        .await
        .unwrap();
    assert_eq!(list.delta_num, 1);
    let list = store
        .add_contact("alice@example.com", "carol@example.com", None, Some("Team"))
        .await
        .unwrap();
    assert_eq!(list.delta_num, 2);
    // An update is a change too.
    let list = store
        .add_contact("alice@example.com", "carol@example.com", Some("C"), None)
        .await
        .unwrap();
    assert_eq!(list.delta_num, 3);
    assert!(
        store
            .remove_contact("alice@example.com", "bob@example.com")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .contact_list("alice@example.com")
            .await
            .unwrap()
            .delta_num,
        4
    );

    // Removing what is not there changes nothing, not even the revision.
    let rev = store.current_rev().await.unwrap();
    assert!(
        !store
            .remove_contact("alice@example.com", "bob@example.com")
            .await
            .unwrap()
    );
    assert_eq!(store.current_rev().await.unwrap(), rev);
    assert_eq!(
        store
            .contact_list("alice@example.com")
            .await
            .unwrap()
            .delta_num,
        4
    );

    // A saved delta_num is kept as given, and the helpers count on from it.
    let mut list = store.contact_list("alice@example.com").await.unwrap();
    list.delta_num = 100;
    store.save_contact_list(&list).await.unwrap();
    let list = store
        .add_contact("alice@example.com", "dave@example.com", None, None)
        .await
        .unwrap();
    assert_eq!(list.delta_num, 101);
}

async fn change_feed_reports_each_owner_once(store: Store) {
    add_users(
        &store,
        &["alice@example.com", "bob@example.com", "carol@example.com"],
    )
    .await;
    let rev0 = store.current_rev().await.unwrap();
    assert_eq!(
        store.contact_changes_since(rev0).await.unwrap(),
        (rev0, vec![])
    );

    store
        .add_contact("alice@example.com", "x@example.com", None, None)
        .await
        .unwrap();
    store
        .add_contact("bob@example.com", "x@example.com", None, None)
        .await
        .unwrap();
    store
        .add_contact("alice@example.com", "y@example.com", None, None)
        .await
        .unwrap();
    let mut alice = store.contact_list("alice@example.com").await.unwrap();
    alice.contacts[0].subscribed = false;
    alice.delta_num += 1;
    store.save_contact_list(&alice).await.unwrap();

    let (rev1, owners) = store.contact_changes_since(rev0).await.unwrap();
    assert_eq!(rev1, store.current_rev().await.unwrap());
    assert_eq!(rev1, rev0 + 4);
    // Each owner once, ordered by their last change.
    assert_eq!(owners, ["bob@example.com", "alice@example.com"]);
    assert_eq!(
        store.contact_changes_since(rev1).await.unwrap(),
        (rev1, vec![])
    );
    // From the start too.
    assert_eq!(store.contact_changes_since(0).await.unwrap().1.len(), 2);

    // User changes are not contact-list changes, and the other way round.
    store.set_enabled("carol@example.com", false).await.unwrap();
    let rev2 = store.current_rev().await.unwrap();
    assert_eq!(
        store.contact_changes_since(rev1).await.unwrap(),
        (rev1, vec![])
    );
    let (_, user_changes) = store.user_changes_since(rev1).await.unwrap();
    assert!(
        matches!(&user_changes[..], [UserChange::Upsert(u)] if u.address == "carol@example.com")
    );

    store
        .remove_contact("bob@example.com", "x@example.com")
        .await
        .unwrap();
    let (rev3, owners) = store.contact_changes_since(rev2).await.unwrap();
    assert_eq!(rev3, rev2 + 1);
    assert_eq!(owners, ["bob@example.com"]);
}

async fn add_contact_goes_to_other_contacts(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let list = store
        .add_contact("alice@example.com", "sip:Bob@Example.com", None, None)
        .await
        .unwrap();
    assert_eq!(
        list,
        ContactList {
            owner: "alice@example.com".into(),
            delta_num: 1,
            groups: vec![group(1, OTHER_CONTACTS_GROUP)],
            contacts: vec![contact("bob@example.com", "", &[1], true)],
        }
    );
    assert_eq!(store.contact_list("alice@example.com").await.unwrap(), list);

    // The group is reused, not created twice.
    let list = store
        .add_contact(
            "alice@example.com",
            "carol@example.com",
            Some(" Carol "),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.groups, [group(1, "~")]);
    assert_eq!(
        list.contacts[1],
        contact("carol@example.com", "Carol", &[1], true)
    );

    // When id 1 is taken, "~" gets the next free id.
    add_users(&store, &["dave@example.com"]).await;
    store
        .add_contact("dave@example.com", "x@example.com", None, Some("Team"))
        .await
        .unwrap();
    let list = store
        .add_contact("dave@example.com", "y@example.com", None, None)
        .await
        .unwrap();
    assert_eq!(list.groups, [group(1, "Team"), group(2, "~")]);
    assert_eq!(list.contact("y@example.com").unwrap().groups, [2]);
}

async fn add_contact_to_named_groups(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    store
        .add_contact("alice@example.com", "bob@example.com", None, None)
        .await
        .unwrap();
    let list = store
        .add_contact(
            "alice@example.com",
            "carol@example.com",
            None,
            Some(" Team "),
        )
        .await
        .unwrap();
    assert_eq!(list.groups, [group(1, "~"), group(2, "Team")]);
    assert_eq!(list.contact("carol@example.com").unwrap().groups, [2]);

    // An existing group is found by name (exactly: group names are case-sensitive).
    let list = store
        .add_contact("alice@example.com", "dave@example.com", None, Some("Team"))
        .await
        .unwrap();
    assert_eq!(list.groups.len(), 2);
    assert_eq!(list.contact("dave@example.com").unwrap().groups, [2]);
    let list = store
        .add_contact("alice@example.com", "erin@example.com", None, Some("team"))
        .await
        .unwrap();
    assert_eq!(list.groups[2], group(3, "team"));

    // A blank group name is refused.
    let err = store
        .add_contact("alice@example.com", "bob@example.com", None, Some("  "))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidContactList { .. }),
        "{err}"
    );
}

async fn add_contact_updates_existing(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    store
        .add_contact("alice@example.com", "bob@example.com", Some("Bob"), None)
        .await
        .unwrap();
    // Into a named group: bob leaves "Other Contacts".
    let list = store
        .add_contact("alice@example.com", "BOB@example.com", None, Some("Team"))
        .await
        .unwrap();
    assert_eq!(
        list.contacts,
        [contact("bob@example.com", "Bob", &[2], true)]
    );
    // Into a second group: the first is kept.
    let list = store
        .add_contact(
            "alice@example.com",
            "bob@example.com",
            Some("Robert"),
            Some("Family"),
        )
        .await
        .unwrap();
    assert_eq!(
        list.contacts,
        [contact("bob@example.com", "Robert", &[2, 3], true)]
    );
    // Without a group, the groups stay; an empty name clears the alias.
    let list = store
        .add_contact("alice@example.com", "bob@example.com", Some(""), None)
        .await
        .unwrap();
    assert_eq!(
        list.contacts,
        [contact("bob@example.com", "", &[2, 3], true)]
    );
    // Back into "~" explicitly: added to it, other groups kept.
    let list = store
        .add_contact("alice@example.com", "bob@example.com", None, Some("~"))
        .await
        .unwrap();
    assert_eq!(
        list.contacts,
        [contact("bob@example.com", "", &[1, 2, 3], true)]
    );
    assert_eq!(list.delta_num, 5);
    // Subscribed stays as saved.
    let mut saved = list.clone();
    saved.contacts[0].subscribed = false;
    store.save_contact_list(&saved).await.unwrap();
    let list = store
        .add_contact("alice@example.com", "bob@example.com", Some("B"), None)
        .await
        .unwrap();
    assert!(!list.contacts[0].subscribed);
    assert_eq!(store.contact_list("alice@example.com").await.unwrap(), list);
}

async fn remove_contact(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    for uri in ["bob@example.com", "carol@example.com"] {
        store
            .add_contact("alice@example.com", uri, None, Some("Team"))
            .await
            .unwrap();
    }
    assert!(
        store
            .remove_contact("alice@example.com", "SIP:Bob@Example.COM")
            .await
            .unwrap()
    );
    let list = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(uris(&list), ["carol@example.com"]);
    assert_eq!(list.delta_num, 3);
    // Groups stay, even when empty.
    assert!(
        store
            .remove_contact("alice@example.com", "carol@example.com")
            .await
            .unwrap()
    );
    let list = store.contact_list("alice@example.com").await.unwrap();
    assert!(list.contacts.is_empty());
    assert_eq!(list.groups, [group(1, "Team")]);
    assert!(
        !store
            .remove_contact("alice@example.com", "carol@example.com")
            .await
            .unwrap()
    );
}

async fn remove_user_removes_the_list(store: Store) {
    add_users(&store, &["alice@example.com", "bob@example.com"]).await;
    store
        .add_contact("alice@example.com", "bob@example.com", None, None)
        .await
        .unwrap();
    store
        .add_contact(
            "bob@example.com",
            "alice@example.com",
            None,
            Some("Friends"),
        )
        .await
        .unwrap();
    let rev = store.current_rev().await.unwrap();

    store.remove_user("alice@example.com").await.unwrap();
    assert_eq!(
        store.contact_list("alice@example.com").await.unwrap(),
        ContactList::empty("alice@example.com")
    );
    // The feed reports the deleted list, in the user removal's revision.
    let (rev1, owners) = store.contact_changes_since(rev).await.unwrap();
    assert_eq!(
        (rev1, owners),
        (rev + 1, vec!["alice@example.com".to_owned()])
    );
    // Others' lists that name the removed user are theirs to keep.
    let lists = store.all_contact_lists().await.unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].owner, "bob@example.com");
    assert_eq!(uris(&lists[0]), ["alice@example.com"]);

    // Re-added, the user starts from an empty list; the feed reports the new one once.
    add_users(&store, &["alice@example.com"]).await;
    assert_eq!(
        store
            .contact_list("alice@example.com")
            .await
            .unwrap()
            .delta_num,
        0
    );
    store
        .add_contact("alice@example.com", "carol@example.com", None, None)
        .await
        .unwrap();
    let (_, owners) = store.contact_changes_since(0).await.unwrap();
    assert_eq!(owners, ["bob@example.com", "alice@example.com"]);
    let list = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(
        (list.delta_num, uris(&list)),
        (1, vec!["carol@example.com"])
    );

    // A user who never had a list leaves no tombstone.
    let rev = store.current_rev().await.unwrap();
    add_users(&store, &["zed@example.com"]).await;
    store.remove_user("zed@example.com").await.unwrap();
    assert_eq!(
        store.contact_changes_since(rev).await.unwrap().1,
        Vec::<String>::new()
    );
}

async fn malformed_uris_are_refused(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let rev = store.current_rev().await.unwrap();
    for bad in [
        "bob",
        "bob@",
        "@example.com",
        "sip:",
        "bob@bad_domain",
        "b b@example.com",
        "",
    ] {
        let err = store
            .add_contact("alice@example.com", bad, None, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().starts_with("invalid address "), "{err}");
        let err = store
            .remove_contact("alice@example.com", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
        let err = store.contact_list(bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
        let mut list = ContactList::empty("alice@example.com");
        list.contacts.push(contact(bad, "", &[], true));
        let err = store.save_contact_list(&list).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
        let err = store
            .save_contact_list(&ContactList::empty(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidAddress { .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(store.current_rev().await.unwrap(), rev);
    assert!(store.all_contact_lists().await.unwrap().is_empty());
}

async fn unknown_owner_is_refused(store: Store) {
    let err = store
        .add_contact("nobody@example.com", "bob@example.com", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UserNotFound(a) if a == "nobody@example.com"),
        "{err}"
    );
    let err = store
        .remove_contact("nobody@example.com", "bob@example.com")
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::UserNotFound(_)), "{err}");
    assert_eq!(store.current_rev().await.unwrap(), 0);
}

async fn all_contact_lists(store: Store) {
    let owners: Vec<String> = (0..40).map(|i| format!("user{i:02}@example.com")).collect();
    let refs: Vec<&str> = owners.iter().map(String::as_str).collect();
    add_users(&store, &refs).await;
    add_users(&store, &["nolist@example.com"]).await;
    // Lists of different sizes, written both ways; one list saved empty.
    for (i, owner) in owners.iter().enumerate() {
        if i % 2 == 0 {
            let list = ContactList {
                owner: owner.clone(),
                delta_num: i as u64,
                groups: vec![group(1, "~"), group(2, &format!("Group of {i}"))],
                contacts: (0..i)
                    .map(|j| {
                        contact(
                            &format!("c{j}@other{}.example", i % 3),
                            "",
                            &[1 + (j as u32 % 2)],
                            j % 5 != 0,
                        )
                    })
                    .collect(),
            };
            store.save_contact_list(&list).await.unwrap();
        } else {
            for j in 0..(i % 7) {
                store
                    .add_contact(
                        owner,
                        &format!("x{j}@example.com"),
                        Some(&format!("X {j}")),
                        None,
                    )
                    .await
                    .unwrap();
            }
        }
    }
    let all = store.all_contact_lists().await.unwrap();
    // Odd owners with i % 7 == 0 (7, 21, 35) added nothing: they have no list.
    let expected_owners: Vec<&str> = owners
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0 || i % 7 != 0)
        .map(|(_, o)| o.as_str())
        .collect();
    assert_eq!(
        all.iter().map(|l| l.owner.as_str()).collect::<Vec<_>>(),
        expected_owners
    );
    for list in &all {
        assert_eq!(list, &store.contact_list(&list.owner).await.unwrap());
        assert!(list.contacts.windows(2).all(|w| w[0].uri < w[1].uri));
    }
    let total: usize = all.iter().map(|l| l.contacts.len()).sum();
    let expected_total: usize = (0..40).map(|i| if i % 2 == 0 { i } else { i % 7 }).sum();
    assert_eq!(total, expected_total);
}

async fn concurrent_adds_are_serialized(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let group = (i % 2 == 0).then_some("Even");
            store
                .add_contact(
                    "alice@example.com",
                    &format!("c{i:02}@example.com"),
                    None,
                    group,
                )
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let list = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(list.contacts.len(), 20, "no add was lost");
    assert_eq!(list.delta_num, 20);
    assert_eq!(list.groups.len(), 2);
}

// ---- SQLite specifics ----

/// A database made before contact lists existed (schema version 1) is upgraded on open.
#[tokio::test]
async fn sqlite_upgrade_from_schema_1() {
    use sqlx::Connection;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("confab.db");
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(
        old.join("0001_users_settings.sql"),
        include_str!("../migrations/0001_users_settings.sql"),
    )
    .unwrap();
    {
        let mut conn = sqlx::SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'contacts'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(tables, 0, "schema 1 has no contacts table");
        conn.close().await.unwrap();
    }
    // Users written by the old schema survive; contact lists work.
    let store = Store::open_sqlite(&db).await.unwrap();
    store
        .add_user(new_user("alice@example.com", "pw"))
        .await
        .unwrap();
    let list = store
        .add_contact("alice@example.com", "bob@example.com", None, None)
        .await
        .unwrap();
    assert_eq!(list.delta_num, 1);
    store.close().await;
    let store = Store::open_sqlite(&db).await.unwrap();
    assert!(store.get_user("alice@example.com").await.unwrap().is_some());
    assert_eq!(store.contact_list("alice@example.com").await.unwrap(), list);
    store.close().await;
}

/// Start-up load at scale on SQLite:
/// `cargo test -p confab-store --release --test contacts -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn sqlite_all_contact_lists_80k_timing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("confab.db"))
        .await
        .unwrap();
    let owners = 80_000;
    let per_owner = 50;
    let creds = confab_auth::credentials::derive("u", "example.com", "pw");
    let users = (0..owners).map(|i| confab_store::NewUser {
        address: format!("user{i}@example.com"),
        display_name: None,
        creds: creds.clone(),
    });
    store.import_users(users, |_| {}).await.unwrap();
    let start = std::time::Instant::now();
    for i in 0..owners {
        let list = ContactList {
            owner: format!("user{i}@example.com"),
            delta_num: 1,
            groups: vec![group(1, "~"), group(2, "Team")],
            contacts: (0..per_owner)
                .map(|j| {
                    contact(
                        &format!("user{}@example.com", (i + j + 1) % owners),
                        "",
                        &[1 + j as u32 % 2],
                        true,
                    )
                })
                .collect(),
        };
        store.save_contact_list(&list).await.unwrap();
    }
    println!(
        "saved {owners} lists of {per_owner} in {:?}",
        start.elapsed()
    );
    let start = std::time::Instant::now();
    let all = store.all_contact_lists().await.unwrap();
    println!("loaded {} lists in {:?}", all.len(), start.elapsed());
    assert_eq!(all.len(), owners);
    assert_eq!(
        all.iter().map(|l| l.contacts.len()).sum::<usize>(),
        owners * per_owner
    );
    store.close().await;
}

/// The running server saves a client's edit made from its copy of the list; a
/// `confab contact add` committed in between must not be undone by that save.
async fn a_save_from_a_stale_copy_is_refused(store: Store) {
    add_users(&store, &["alice@example.com"]).await;
    store
        .add_contact("alice@example.com", "bob@example.com", None, None)
        .await
        .unwrap();
    // The server's copy: version 1, with bob.
    let copy = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(copy.delta_num, 1);
    // The CLI adds carol (version 2) before the server's next poll.
    store
        .add_contact("alice@example.com", "carol@example.com", None, None)
        .await
        .unwrap();
    // The client adds dave to the server's stale copy; saving it would drop carol.
    let mut edited = copy.clone();
    edited
        .contacts
        .push(contact("dave@example.com", "", &[1], true));
    edited.delta_num = 2;
    let err = store
        .save_contact_list_from(&edited, copy.delta_num)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::ContactListChanged {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("changed meanwhile"), "{err}");
    let now = store.contact_list("alice@example.com").await.unwrap();
    assert_eq!(uris(&now), ["bob@example.com", "carol@example.com"]);
    // Based on the current version, it is saved.
    let mut edited = now.clone();
    edited
        .contacts
        .push(contact("dave@example.com", "", &[1], true));
    edited.delta_num = now.delta_num + 1;
    store
        .save_contact_list_from(&edited, now.delta_num)
        .await
        .unwrap();
    assert_eq!(
        uris(&store.contact_list("alice@example.com").await.unwrap()),
        ["bob@example.com", "carol@example.com", "dave@example.com"]
    );
    // A first list (nothing stored yet) is based on version 0.
    add_users(&store, &["erin@example.com"]).await;
    let mut first = ContactList::empty("erin@example.com");
    first.groups.push(group(1, "~"));
    first.delta_num = 1;
    store.save_contact_list_from(&first, 0).await.unwrap();
    assert!(matches!(
        store.save_contact_list_from(&first, 0).await,
        Err(StoreError::ContactListChanged { found: 1, .. })
    ));
}
