//! Persistent Chat pools (issue 11): the chat servers sharing one persistent-chat
//! store (`chat_servers`, written every heartbeat), an administrator's
//! activation of a passive server (`chat_server_state`), and the change feed that
//! carries posts, joins and leaves between the pool's active servers.
//!
//! On PostgreSQL every write here also sends a `pg_notify` on [`CHAT_CHANNEL`] in
//! the same transaction, its payload a [`ChatPoolEvent`] (delivered at commit, so
//! a listener never hears of a post it cannot read yet). On SQLite the tables
//! work but nobody listens (a pool of one server).

use sqlx::Row;

use crate::chat::Tx;
use crate::{Backend, Result, Store};

/// The PostgreSQL LISTEN/NOTIFY channel of the chat pool.
pub const CHAT_CHANNEL: &str = "confab_chat";

/// What a chat server serves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatServerState {
    /// Front ends route users to it.
    Active,
    /// Standing by: runs, heartbeats, serves nobody until activated.
    Passive,
}

impl ChatServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatServerState::Active => "active",
            ChatServerState::Passive => "passive",
        }
    }

    pub fn parse(s: &str) -> Option<ChatServerState> {
        match s {
            "active" => Some(ChatServerState::Active),
            "passive" => Some(ChatServerState::Passive),
            _ => None,
        }
    }
}

/// One chat server as stored (its last heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatServer {
    /// The server's name (its FQDN in a topology).
    pub server: String,
    /// Its pool's name.
    pub pool: String,
    /// Where front ends send it SIP (`ip:port`, TCP).
    pub sip_addr: String,
    pub state: ChatServerState,
    /// Its last heartbeat, epoch milliseconds (its own clock).
    pub heartbeat_ms: i64,
    /// When it started, epoch milliseconds.
    pub started_ms: i64,
    /// Room memberships of its connected users.
    pub joined: i64,
    /// Rooms it knows.
    pub rooms: i64,
    /// Posts it stored since it started.
    pub posts: i64,
    /// Posts it delivered to its users since it started.
    pub deliveries: i64,
    /// Posts per second over its last heartbeat interval, in thousandths.
    pub post_rate_milli: i64,
    /// Deliveries per second over its last heartbeat interval, in thousandths.
    pub delivery_rate_milli: i64,
}

/// A change in the pool, as carried by a notification (tab-separated fields;
/// user addresses and room ids hold no tab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPoolEvent {
    /// `server` stored post `id` in `room_id`.
    Post {
        server: String,
        id: i64,
        room_id: String,
    },
    /// `user` joined (`joined`) or left a room through `server`.
    Member {
        server: String,
        room_id: String,
        user: String,
        joined: bool,
    },
    /// A server's heartbeat.
    Server(ChatServer),
    /// An administrator set `server`'s state.
    SetState {
        server: String,
        state: ChatServerState,
    },
}

impl ChatPoolEvent {
    /// The notification payload.
    pub fn encode(&self) -> String {
        match self {
            ChatPoolEvent::Post {
                server,
                id,
                room_id,
            } => format!("p\t{server}\t{id}\t{room_id}"),
            ChatPoolEvent::Member {
                server,
                room_id,
                user,
                joined,
            } => format!(
                "{}\t{server}\t{room_id}\t{user}",
                if *joined { "j" } else { "l" }
            ),
            ChatPoolEvent::Server(s) => format!(
                "s\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                s.server,
                s.pool,
                s.sip_addr,
                s.state.as_str(),
                s.heartbeat_ms,
                s.started_ms,
                s.joined,
                s.rooms,
                s.posts,
                s.deliveries,
                s.post_rate_milli,
                s.delivery_rate_milli
            ),
            ChatPoolEvent::SetState { server, state } => {
                format!("a\t{server}\t{}", state.as_str())
            }
        }
    }

    /// Parses a payload made by [`ChatPoolEvent::encode`]; `None` for anything else.
    pub fn decode(payload: &str) -> Option<ChatPoolEvent> {
        let f: Vec<&str> = payload.split('\t').collect();
        match f.as_slice() {
            ["p", server, id, room] => Some(ChatPoolEvent::Post {
                server: (*server).to_owned(),
                id: id.parse().ok()?,
                room_id: (*room).to_owned(),
            }),
            [kind @ ("j" | "l"), server, room, user] => Some(ChatPoolEvent::Member {
                server: (*server).to_owned(),
                room_id: (*room).to_owned(),
                user: (*user).to_owned(),
                joined: *kind == "j",
            }),
            [
                "s",
                server,
                pool,
                sip,
                state,
                hb,
                started,
                joined,
                rooms,
                posts,
                deliveries,
                post_rate,
                delivery_rate,
            ] => Some(ChatPoolEvent::Server(ChatServer {
                server: (*server).to_owned(),
                pool: (*pool).to_owned(),
                sip_addr: (*sip).to_owned(),
                state: ChatServerState::parse(state)?,
                heartbeat_ms: hb.parse().ok()?,
                started_ms: started.parse().ok()?,
                joined: joined.parse().ok()?,
                rooms: rooms.parse().ok()?,
                posts: posts.parse().ok()?,
                deliveries: deliveries.parse().ok()?,
                post_rate_milli: post_rate.parse().ok()?,
                delivery_rate_milli: delivery_rate.parse().ok()?,
            })),
            ["a", server, state] => Some(ChatPoolEvent::SetState {
                server: (*server).to_owned(),
                state: ChatServerState::parse(state)?,
            }),
            _ => None,
        }
    }
}

fn server_from_row(r: &sqlx::any::AnyRow) -> Result<ChatServer> {
    let state: String = r.try_get(3)?;
    Ok(ChatServer {
        server: r.try_get(0)?,
        pool: r.try_get(1)?,
        sip_addr: r.try_get(2)?,
        state: ChatServerState::parse(&state).unwrap_or(ChatServerState::Passive),
        heartbeat_ms: r.try_get(4)?,
        started_ms: r.try_get(5)?,
        joined: r.try_get(6)?,
        rooms: r.try_get(7)?,
        posts: r.try_get(8)?,
        deliveries: r.try_get(9)?,
        post_rate_milli: r.try_get(10)?,
        delivery_rate_milli: r.try_get(11)?,
    })
}

impl Store {
    pub(crate) async fn chat_notify(&self, tx: &mut Tx, ev: &ChatPoolEvent) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHAT_CHANNEL)
                .bind(ev.encode())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Stores a post like [`Store::insert_chat_post`] and tells the pool's other
    /// servers (`server` is the one that stored it) in the same transaction.
    pub async fn insert_chat_post_notify(
        &self,
        server: &str,
        room_id: &str,
        author: &str,
        ts_ms: i64,
        text: &str,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id = crate::chat::insert_chat_post_tx(&mut tx, room_id, author, ts_ms, text).await?;
        let ev = ChatPoolEvent::Post {
            server: server.to_owned(),
            id,
            room_id: room_id.to_owned(),
        };
        self.chat_notify(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Tells the pool's servers about joins and leaves (nothing is stored).
    pub async fn notify_chat_pool(&self, events: &[ChatPoolEvent]) -> Result<()> {
        if self.backend != Backend::Postgres || events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for ev in events {
            self.chat_notify(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes a chat server's heartbeat (inserting its row the first time) and
    /// tells the pool.
    pub async fn chat_server_heartbeat(&self, s: &ChatServer) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO chat_servers (server, pool, sip_addr, state, heartbeat_ms, started_ms, \
             joined, rooms, posts, deliveries, post_rate_milli, delivery_rate_milli) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (server) DO UPDATE SET pool = excluded.pool, sip_addr = excluded.sip_addr, \
             state = excluded.state, heartbeat_ms = excluded.heartbeat_ms, \
             started_ms = excluded.started_ms, joined = excluded.joined, rooms = excluded.rooms, \
             posts = excluded.posts, deliveries = excluded.deliveries, \
             post_rate_milli = excluded.post_rate_milli, \
             delivery_rate_milli = excluded.delivery_rate_milli",
        )
        .bind(&s.server)
        .bind(&s.pool)
        .bind(&s.sip_addr)
        .bind(s.state.as_str())
        .bind(s.heartbeat_ms)
        .bind(s.started_ms)
        .bind(s.joined)
        .bind(s.rooms)
        .bind(s.posts)
        .bind(s.deliveries)
        .bind(s.post_rate_milli)
        .bind(s.delivery_rate_milli)
        .execute(&mut *tx)
        .await?;
        self.chat_notify(&mut tx, &ChatPoolEvent::Server(s.clone()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every chat server that ever ran on this store, by pool and name.
    pub async fn chat_servers(&self) -> Result<Vec<ChatServer>> {
        let rows = sqlx::query(
            "SELECT server, pool, sip_addr, state, heartbeat_ms, started_ms, joined, rooms, \
             posts, deliveries, post_rate_milli, delivery_rate_milli FROM chat_servers \
             ORDER BY pool, server",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(server_from_row).collect()
    }

    /// The state an administrator set for `server`, if any.
    pub async fn chat_server_state(&self, server: &str) -> Result<Option<ChatServerState>> {
        let s: Option<String> =
            sqlx::query_scalar("SELECT state FROM chat_server_state WHERE server = $1")
                .bind(server)
                .fetch_optional(&self.pool)
                .await?;
        Ok(s.as_deref().and_then(ChatServerState::parse))
    }

    /// Sets `server`'s state (`confab chat pool activate|deactivate`) and tells it.
    pub async fn set_chat_server_state(
        &self,
        server: &str,
        state: ChatServerState,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO chat_server_state (server, state, changed_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (server) DO UPDATE SET state = excluded.state, \
             changed_ms = excluded.changed_ms",
        )
        .bind(server)
        .bind(state.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let ev = ChatPoolEvent::SetState {
            server: server.to_owned(),
            state,
        };
        self.chat_notify(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let evs = [
            ChatPoolEvent::Post {
                server: "pchat01.example.com".into(),
                id: 42,
                room_id: "r1".into(),
            },
            ChatPoolEvent::Member {
                server: "a".into(),
                room_id: "r1".into(),
                user: "bob@example.com".into(),
                joined: false,
            },
            ChatPoolEvent::Server(ChatServer {
                server: "a".into(),
                pool: "p".into(),
                sip_addr: "127.0.0.2:5041".into(),
                state: ChatServerState::Passive,
                heartbeat_ms: 5,
                started_ms: 1,
                joined: 2,
                rooms: 3,
                posts: 4,
                deliveries: 9,
                post_rate_milli: 1500,
                delivery_rate_milli: 0,
            }),
            ChatPoolEvent::SetState {
                server: "a".into(),
                state: ChatServerState::Active,
            },
        ];
        for ev in evs {
            assert_eq!(ChatPoolEvent::decode(&ev.encode()), Some(ev));
        }
        assert_eq!(ChatPoolEvent::decode("p\ta\tnot-a-number\tr"), None);
        assert_eq!(ChatPoolEvent::decode("x"), None);
    }

    #[tokio::test]
    async fn servers_and_states_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let store = Store::open(&url).await.unwrap();
        let mut s = ChatServer {
            server: "pchat01.example.com".into(),
            pool: "pchat.example.com".into(),
            sip_addr: "127.0.0.2:5041".into(),
            state: ChatServerState::Active,
            heartbeat_ms: 10,
            started_ms: 1,
            joined: 0,
            rooms: 1,
            posts: 0,
            deliveries: 0,
            post_rate_milli: 0,
            delivery_rate_milli: 0,
        };
        store.chat_server_heartbeat(&s).await.unwrap();
        s.heartbeat_ms = 20;
        s.posts = 7;
        store.chat_server_heartbeat(&s).await.unwrap();
        assert_eq!(store.chat_servers().await.unwrap(), vec![s.clone()]);
        assert_eq!(store.chat_server_state(&s.server).await.unwrap(), None);
        store
            .set_chat_server_state(&s.server, ChatServerState::Passive, 30)
            .await
            .unwrap();
        assert_eq!(
            store.chat_server_state(&s.server).await.unwrap(),
            Some(ChatServerState::Passive)
        );
        let id = store
            .insert_chat_post_notify(&s.server, "r1", "alice@example.com", 5, "hi")
            .await
            .unwrap();
        assert_eq!(store.chat_post(id).await.unwrap().unwrap().text, "hi");
    }
}
