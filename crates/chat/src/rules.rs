//! Lync's Persistent Chat access rules over the stored directory: categories as
//! ethical walls, room privacy, roles, the policy.
//!
//! - A category allows a user when one of its allowed principals matches (the address
//!   or the user's whole domain) and no denied principal does; an empty allowed list
//!   allows nobody. Denied wins.
//! - A room is found by a user (listed, searched) when it is enabled, its category
//!   allows the user, and it is Open or Closed, or the user has a role in it (Secret).
//! - A room is joined (and its history read) when it is enabled, its category allows the
//!   user, and it is Open or the user is a member, manager or presenter.
//! - In an Auditorium only presenters post; in a Normal room everyone who joined posts.

use rustc_hash::FxHashMap;

use confab_store::{ChatCategory, ChatDirectory, ChatRoom, Privacy, RoomType};

/// Whether a principal list (addresses and `@domain`s) names `user` (normalized).
pub fn names(list: &[String], user: &str) -> bool {
    let domain = user.split_once('@').map(|(_, d)| d);
    list.iter().any(|p| match p.strip_prefix('@') {
        Some(d) => domain == Some(d),
        None => p == user,
    })
}

/// The stored directory with lookups by id and URI.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    pub data: ChatDirectory,
    rooms_by_id: FxHashMap<String, usize>,
    rooms_by_uri: FxHashMap<String, usize>,
    categories_by_id: FxHashMap<String, usize>,
}

impl Directory {
    pub fn new(data: ChatDirectory) -> Directory {
        let rooms_by_id = data
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let rooms_by_uri = data
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (r.uri.clone(), i))
            .collect();
        let categories_by_id = data
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        Directory {
            data,
            rooms_by_id,
            rooms_by_uri,
            categories_by_id,
        }
    }

    pub fn room(&self, id: &str) -> Option<&ChatRoom> {
        self.rooms_by_id.get(id).map(|&i| &self.data.rooms[i])
    }

    pub fn room_by_uri(&self, uri: &str) -> Option<&ChatRoom> {
        self.rooms_by_uri.get(uri).map(|&i| &self.data.rooms[i])
    }

    /// A room by name (case-insensitive) or URI.
    pub fn room_by_name_or_uri(&self, s: &str) -> Option<&ChatRoom> {
        self.room_by_uri(s).or_else(|| {
            // `NAME` (the default pool) or `POOL\\NAME`.
            let key = s.trim().to_lowercase();
            self.data
                .rooms
                .iter()
                .find(|r| r.qualified_name().to_lowercase() == key)
        })
    }

    pub fn category(&self, id: &str) -> Option<&ChatCategory> {
        self.categories_by_id
            .get(id)
            .map(|&i| &self.data.categories[i])
    }

    /// Whether the policy lets `user` use Persistent Chat at all.
    pub fn enabled_for(&self, user: &str) -> bool {
        self.data.policy.enabled_for(user)
    }

    fn category_allows(&self, room: &ChatRoom, user: &str) -> bool {
        self.category(&room.category_id)
            .is_some_and(|c| names(&c.allowed, user) && !names(&c.denied, user))
    }

    /// The user has a role (member, manager, presenter) in the room.
    pub fn has_role(room: &ChatRoom, user: &str) -> bool {
        names(&room.members, user) || names(&room.managers, user) || names(&room.presenters, user)
    }

    /// The room appears in the user's room list and search.
    pub fn may_find(&self, room: &ChatRoom, user: &str) -> bool {
        !room.disabled
            && self.category_allows(room, user)
            && (room.privacy != Privacy::Secret || Self::has_role(room, user))
    }

    /// Why the user may not join (and read) the room, or `None` when they may.
    pub fn join_refusal(&self, room: &ChatRoom, user: &str) -> Option<&'static str> {
        if room.disabled {
            return Some("ERR_NODE_DISABLED: this room is disabled");
        }
        if !self.category_allows(room, user) {
            return Some("ERR_NO_PERMISSION: the room's category does not allow you");
        }
        if room.privacy != Privacy::Open && !Self::has_role(room, user) {
            return Some(if room.privacy == Privacy::Secret {
                "ERR_NO_SUCH_CHANNEL: no such room"
            } else {
                "ERR_NO_PERMISSION: you are not a member of this closed room"
            });
        }
        None
    }

    pub fn may_read(&self, room: &ChatRoom, user: &str) -> bool {
        self.join_refusal(room, user).is_none()
    }

    /// Why the user may not post in a room they joined, or `None`.
    pub fn post_refusal(&self, room: &ChatRoom, user: &str) -> Option<&'static str> {
        if let Some(r) = self.join_refusal(room, user) {
            return Some(r);
        }
        if room.room_type == RoomType::Auditorium && !names(&room.presenters, user) {
            return Some("ERR_NO_PERMISSION: only presenters post in this auditorium");
        }
        None
    }

    /// Ids of the rooms the user may read (for history search).
    pub fn readable_rooms(&self, user: &str) -> Vec<String> {
        self.data
            .rooms
            .iter()
            .filter(|r| self.may_read(r, user))
            .map(|r| r.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_store::{ChatCategory, ChatRoom};

    fn dir() -> Directory {
        let cat = ChatCategory {
            id: "c".into(),
            uri: "ma-cat://d/c".into(),
            name: "C".into(),
            description: String::new(),
            allowed: vec!["@example.com".into()],
            denied: vec!["eve@example.com".into()],
            creators: vec![],
            file_upload: false,
            chat_history: true,
            pool: String::new(),
        };
        let room = |id: &str, privacy| ChatRoom {
            id: id.into(),
            uri: format!("ma-chan://example.com/{id}"),
            name: id.to_uppercase(),
            description: String::new(),
            category_id: "c".into(),
            privacy,
            room_type: RoomType::Auditorium,
            disabled: false,
            members: vec!["bob@example.com".into()],
            managers: vec![],
            presenters: vec!["carol@example.com".into()],
            pool: String::new(),
        };
        Directory::new(ChatDirectory {
            categories: vec![cat],
            rooms: vec![
                room("open", Privacy::Open),
                room("closed", Privacy::Closed),
                room("secret", Privacy::Secret),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn walls_privacy_roles() {
        let d = dir();
        let r = |id| d.room(id).unwrap();
        assert!(d.may_find(r("secret"), "bob@example.com"));
        assert!(!d.may_find(r("secret"), "alice@example.com"));
        assert!(d.may_find(r("closed"), "alice@example.com"));
        assert!(d.join_refusal(r("closed"), "alice@example.com").is_some());
        assert!(d.join_refusal(r("open"), "alice@example.com").is_none());
        assert!(!d.may_find(r("open"), "eve@example.com"), "denied wins");
        assert!(!d.may_find(r("open"), "mallory@other.org"));
        assert!(d.post_refusal(r("open"), "alice@example.com").is_some());
        assert!(d.post_refusal(r("open"), "carol@example.com").is_none());
        assert_eq!(d.room_by_name_or_uri("closed").unwrap().id, "closed");
        assert_eq!(d.readable_rooms("bob@example.com").len(), 3);
        assert_eq!(
            d.readable_rooms("alice@example.com"),
            vec!["open".to_owned()]
        );
    }
}
