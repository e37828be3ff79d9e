//! Wakes a reader of the store's change feeds (users, contact lists, voice) when
//! something changed: on PostgreSQL the store announces every write that takes a
//! revision with `pg_notify` on [`confab_store::CHANGES_CHANNEL`] at commit, and
//! the waker LISTENs on a connection of its own, so the servers sharing a back
//! end (an Enterprise pool's front ends, the command line beside them) see each
//! other's changes at once and never poll. On SQLite (Standard Edition, one
//! server) nobody can notify: the waker ticks every 200 ms instead.
//!
//! A wake-up only says "read the feed": the reader then asks the store for what
//! changed since the revision it saw last, so a notification lost while the
//! listening connection was down costs nothing (the waker wakes once after it
//! reconnects).

use std::time::Duration;

use confab_store::{Backend, CHANGES_CHANNEL, Store};
use sqlx::postgres::PgListener;
use tracing::{debug, warn};

/// How often a SQLite server reads its change feeds.
pub const SQLITE_POLL: Duration = Duration::from_millis(200);

/// See the module documentation.
pub struct ChangeWaker {
    counters: &'static [&'static str],
    /// The first wait returns at once: a change made between the reader's
    /// snapshot and the LISTEN is read then.
    first: bool,
    inner: Inner,
}

enum Inner {
    Poll(tokio::time::Interval),
    Listen(Box<PgListener>),
}

impl ChangeWaker {
    /// A waker for writes to `counters` (`rev`: users and contact lists;
    /// `voice_rev`; `chat_rev`). `url` is the store's URL (for the LISTEN
    /// connection on PostgreSQL).
    pub async fn new(store: &Store, url: &str, counters: &'static [&'static str]) -> Self {
        let inner = if store.backend() == Backend::Postgres {
            match listen(url).await {
                Ok(l) => Inner::Listen(Box::new(l)),
                Err(e) => {
                    warn!(error = %e, "cannot LISTEN for store changes: reading the change feeds every 200 ms");
                    Inner::Poll(tokio::time::interval(SQLITE_POLL))
                }
            }
        } else {
            Inner::Poll(tokio::time::interval(SQLITE_POLL))
        };
        ChangeWaker {
            counters,
            first: true,
            inner,
        }
    }

    /// Whether changes arrive by notification (PostgreSQL) rather than by polling.
    pub fn listens(&self) -> bool {
        matches!(self.inner, Inner::Listen(_))
    }

    /// Returns when the feeds may have changed (cancel-safe).
    pub async fn wait(&mut self) {
        if std::mem::take(&mut self.first) {
            return;
        }
        match &mut self.inner {
            Inner::Poll(tick) => {
                tick.tick().await;
            }
            Inner::Listen(listener) => loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if self.counters.contains(&n.payload()) => return,
                    Ok(Some(_)) => continue,
                    // The connection was lost and is re-established by the next
                    // call: read the feeds, something may have been missed.
                    Ok(None) => {
                        debug!("store change feed lost its connection; reconnecting");
                        return;
                    }
                    Err(e) => {
                        debug!(error = %e, "store change feed: reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return;
                    }
                }
            },
        }
    }
}

async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.listen(CHANGES_CHANNEL).await?;
    Ok(l)
}
