//! Helpers shared by the store's integration tests: a store on SQLite in a temp dir,
//! or on a fresh PostgreSQL database when `CONFAB_TEST_POSTGRES_URL` names a server,
//! and a macro declaring each suite function as a test on both.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::future::Future;

use confab_auth::credentials::derive;
use confab_store::{Backend, NewUser, Store};
use sqlx::Connection;

pub const PG_ENV: &str = "CONFAB_TEST_POSTGRES_URL";

pub fn new_user(address: &str, password: &str) -> NewUser {
    let (user, domain) = address.split_once('@').unwrap();
    NewUser {
        address: address.to_owned(),
        display_name: None,
        creds: derive(&user.to_lowercase(), &domain.to_lowercase(), password),
    }
}

pub async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("confab.db"))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    body(store.clone()).await;
    store.close().await;
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs `body` on a store in a freshly created PostgreSQL database, dropped afterwards
/// (also when `body` panics). Skips (with a message) when `CONFAB_TEST_POSTGRES_URL` is
/// not set.
pub async fn with_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        println!("skipped {test} on PostgreSQL: {PG_ENV} is not set");
        return;
    };
    let db = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();

    let url = with_database(&admin_url, &db);
    let outcome = match Store::open(&url).await {
        Ok(store) => {
            assert_eq!(store.backend(), Backend::Postgres);
            let run = tokio::spawn(body(store.clone())).await;
            store.close().await;
            run
        }
        Err(e) => panic!("opening the test database: {e}"),
    };

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares one test per backend for a suite function `async fn NAME(store: Store)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::common::with_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::common::with_postgres(stringify!($name), super::$name).await;
                }
            )*
        }
    };
}

/// Like [`with_postgres`], also handing `body` the database's URL (for LISTEN).
pub async fn with_postgres_url<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        println!("skipped {test} on PostgreSQL: {PG_ENV} is not set");
        return;
    };
    let db = format!("confab_test_{}", uuid::Uuid::new_v4().simple());
    let url = with_database(&admin_url, &db);
    let for_body = url.clone();
    with_named_postgres(&admin_url, &db, move |store| body(store, for_body)).await;
}

async fn with_named_postgres<F, Fut>(admin_url: &str, db: &str, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(admin_url, db);
    let outcome = match Store::open(&url).await {
        Ok(store) => {
            let run = tokio::spawn(body(store.clone())).await;
            store.close().await;
            run
        }
        Err(e) => panic!("opening the test database: {e}"),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
