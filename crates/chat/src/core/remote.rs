//! The chat pool side of the core: posts, joins and leaves of the pool's other
//! active servers (all on one store) fed in as events, and this server's joins and
//! leaves handed out for them ([`ChatCore::drain_pool_events`]).
//!
//! A post stored by another server reaches this one as [`ChatCore::on_remote_post`]
//! (the tokio layer hears of it by LISTEN/NOTIFY and reads it from the store once
//! per server, not once per delivery): it joins the backfill cache and goes to every
//! dialog joined to the room here. Users joined through another server count as
//! participants here (join replies, participant counts, `ntc:join`/`ntc:part`);
//! when that server dies ([`ChatCore::on_server_gone`]) they are parted.

use bytes::Bytes;
use confab_store::{ChatPoolEvent, ChatPost};

use super::{ChatCore, xccos};

impl ChatCore {
    /// Moves the pool notifications produced (this server's joins and leaves) into `out`.
    pub fn drain_pool_events(&mut self, out: &mut Vec<ChatPoolEvent>) {
        out.append(&mut self.pool_out);
    }

    /// Records that `user` joined (or left) a room here, for the pool's other servers.
    pub(super) fn pool_member_event(&mut self, room_id: &str, user: &str, joined: bool) {
        if let Some(server) = &self.cfg.pool_server {
            self.pool_out.push(ChatPoolEvent::Member {
                server: server.clone(),
                room_id: room_id.to_owned(),
                user: user.to_owned(),
                joined,
            });
        }
    }

    /// Whether `user` is joined to a room through another server of the pool.
    pub(super) fn is_remote_participant(&self, room_id: &str, user: &str) -> bool {
        self.remote
            .get(room_id)
            .is_some_and(|m| m.contains_key(user))
    }

    /// Users joined through the pool's other servers, over all rooms (a metric).
    pub fn remote_memberships(&self) -> usize {
        self.remote.values().map(|m| m.len()).sum()
    }

    /// A post another server of the pool stored: into the backfill cache, then to
    /// every dialog joined to its room here.
    pub fn on_remote_post(&mut self, post: ChatPost) {
        let Some(room_uri) = self.dir.room(&post.room_id).map(|r| r.uri.clone()) else {
            return;
        };
        let keep = self.history_len();
        let h = self.history.entry(post.room_id.clone()).or_default();
        if h.iter().any(|p| p.id == post.id) {
            return;
        }
        // Posts of several servers may be heard out of id order: keep the cache sorted.
        let at = h.iter().rposition(|p| p.id < post.id).map_or(0, |i| i + 1);
        h.insert(at, post.clone());
        while h.len() > keep {
            h.pop_front();
        }
        self.stats.remote_posts += 1;
        let envid = self.envid();
        let body = Bytes::from(xccos::grpchat(
            envid,
            &room_uri,
            &format!("sip:{}", post.author),
            &xccos::format_ts(post.ts_ms),
            &post.text,
        ));
        let targets: Vec<String> = self
            .live
            .get(&post.room_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for cid in targets {
            self.send_info(&cid, body.clone());
            self.stats.deliveries += 1;
        }
    }

    /// `user` joined (`joined`) or left a room through `server`, another server of
    /// the pool: the room's participants here hear of it when that changes whether
    /// the user is in the room at all.
    pub fn on_remote_member(&mut self, server: &str, room_id: &str, user: &str, joined: bool) {
        if self.dir.room(room_id).is_none() {
            return;
        }
        let before =
            self.is_participant(room_id, user) || self.is_remote_participant(room_id, user);
        let users = self.remote.entry(room_id.to_owned()).or_default();
        if joined {
            users
                .entry(user.to_owned())
                .or_default()
                .insert(server.to_owned());
        } else if let Some(servers) = users.get_mut(user) {
            servers.remove(server);
            if servers.is_empty() {
                users.remove(user);
            }
        }
        if users.is_empty() {
            self.remote.remove(room_id);
        }
        let after = self.is_participant(room_id, user) || self.is_remote_participant(room_id, user);
        if before != after {
            self.notify_room(room_id, "", user, after);
        }
    }

    /// Another server of the pool is gone (its lease ended): its users leave the
    /// rooms they joined through it.
    pub fn on_server_gone(&mut self, server: &str) {
        let mut parted: Vec<(String, String)> = Vec::new();
        for (room_id, users) in &self.remote {
            for (user, servers) in users {
                if servers.contains(server) {
                    parted.push((room_id.clone(), user.clone()));
                }
            }
        }
        for (room_id, user) in parted {
            self.on_remote_member(server, &room_id, &user, false);
        }
    }

    /// The servers users are joined through, other than this one.
    pub fn remote_servers(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .remote
            .values()
            .flat_map(|m| m.values().flatten().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}
