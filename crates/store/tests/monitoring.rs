//! Monitoring records (call_records 0013, im_sessions 0016) on both back ends:
//! IM sessions are upserted while they last, filtered by user and date; internal
//! calls share call_records with the Mediation role's.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use confab_store::{CallDetail, ImSession, Store};

on_both_backends!(
    im_sessions_upsert_and_filters,
    internal_calls_listed,
    large_batches_written_whole
);

fn session(id: &str, from: &str, to: &str, started: i64, messages: i64, active: bool) -> ImSession {
    ImSession {
        id: id.into(),
        kind: "pager".into(),
        from_user: from.into(),
        to_user: to.into(),
        started,
        ended: started + 10,
        messages,
        code: 200,
        active,
    }
}

async fn im_sessions_upsert_and_filters(store: Store) {
    let a = "alice@example.com";
    let b = "bob@example.com";
    let c = "carol@example.com";
    store
        .record_im_sessions(&[
            session("s1", a, b, 1000, 1, true),
            session("s2", c, a, 2000, 3, true),
        ])
        .await
        .unwrap();
    // The same session again: updated, not duplicated.
    let mut s1 = session("s1", a, b, 1000, 4, false);
    s1.ended = 5000;
    store.record_im_sessions(&[s1.clone()]).await.unwrap();
    let all = store.im_sessions(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], s1);
    assert_eq!(store.im_sessions(Some(b), 0, 100).await.unwrap(), vec![s1]);
    let since = store.im_sessions(Some(a), 1500, 100).await.unwrap();
    assert_eq!(
        (since.len(), since[0].id.as_str(), since[0].active),
        (1, "s2", true)
    );
    assert!(
        store
            .im_sessions(Some("dave@example.com"), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.im_sessions(None, 0, 1).await.unwrap().len(), 1);
}

async fn internal_calls_listed(store: Store) {
    let call = CallDetail {
        direction: "internal".into(),
        caller: "alice@example.com".into(),
        callee: "bob@example.com".into(),
        number: String::new(),
        trunk: String::new(),
        started: 1000,
        answered: 2000,
        ended: 9000,
        code: 200,
        attempts: String::new(),
        relayed_packets: -1,
    };
    store
        .record_calls(std::slice::from_ref(&call))
        .await
        .unwrap();
    assert_eq!(
        store
            .call_details(Some("bob@example.com"), 0, 10)
            .await
            .unwrap(),
        vec![call]
    );
}

/// A batch of 1,000 calls (cut into multi-row INSERTs of several sizes) and one
/// of 150 IM sessions naming some twice: every call once with its own values,
/// each session once as its last copy.
async fn large_batches_written_whole(store: Store) {
    let calls: Vec<CallDetail> = (0..1000i64)
        .map(|i| CallDetail {
            direction: if i % 2 == 0 { "outbound" } else { "inbound" }.into(),
            caller: format!("user{i}@example.com"),
            callee: format!("+1425555{i:04}"),
            number: format!("555{i:04}"),
            trunk: format!("gw{}", i % 3),
            started: 10_000 + i,
            answered: if i % 5 == 0 { 0 } else { 10_100 + i },
            ended: 20_000 + i,
            code: if i % 5 == 0 { 486 } else { 200 },
            attempts: format!("gw{}:200", i % 3),
            relayed_packets: i - 1,
        })
        .collect();
    store.record_calls(&calls[..999]).await.unwrap();
    store.record_calls(&calls[999..]).await.unwrap();
    assert_eq!(store.call_details(None, 0, 5000).await.unwrap(), calls);

    let mut sessions: Vec<ImSession> = (0..100)
        .map(|i| {
            session(
                &format!("s{i}"),
                "alice@example.com",
                "bob@example.com",
                i,
                1,
                true,
            )
        })
        .collect();
    for i in 0..50 {
        sessions.push(session(
            &format!("s{i}"),
            "alice@example.com",
            "bob@example.com",
            i,
            7,
            false,
        ));
    }
    store.record_im_sessions(&sessions).await.unwrap();
    let got = store.im_sessions(None, 0, 1000).await.unwrap();
    assert_eq!(got.len(), 100);
    assert!(got[..50].iter().all(|s| s.messages == 7 && !s.active));
    assert!(got[50..].iter().all(|s| s.messages == 1 && s.active));
}
