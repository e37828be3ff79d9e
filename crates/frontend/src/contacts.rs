//! Server-side contact lists (Lync "roaming contacts"): the in-memory copy the
//! front end serves from, and the changes it asks the embedding layer to store.
//!
//! The store (`confab-store`) is the source of truth; the embedding layer loads
//! a user's list on the user's first request ([`crate::Core::load_contact_list`],
//! see `crates/confab/src/lazy_lists.rs`), follows the
//! store's change feed, and carries out [`crate::Output::SaveContacts`] requests,
//! answering each with [`crate::Core::on_contacts_saved`]. A client's edit is
//! acknowledged only after the store committed it.
//!
//! These types mirror `confab_store::ContactList` on purpose: the front end is
//! sans-IO and does not depend on the store crate (which brings sqlx); the
//! embedding layer (`crates/confab/src/serve.rs`) converts between the two.

/// A group of a contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactGroup {
    pub id: u32,
    pub name: String,
}

/// One contact of a contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Lower-case `user@domain`, without `sip:`.
    pub uri: String,
    /// Alias given by the owner; may be empty.
    pub name: String,
    /// Ids of the groups the contact is in.
    pub groups: Vec<u32>,
    /// Whether the owner subscribes to the contact's presence.
    pub subscribed: bool,
}

/// A user's contact list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactList {
    /// Owner address, `user@domain`.
    pub owner: String,
    /// Version of the list, bumped by every change (MS-SIP `deltaNum`).
    pub delta_num: u64,
    /// Sorted by id.
    pub groups: Vec<ContactGroup>,
    /// Sorted by uri.
    pub contacts: Vec<Contact>,
}

impl ContactList {
    /// An empty list for `owner`.
    pub fn empty(owner: &str) -> ContactList {
        ContactList {
            owner: owner.to_owned(),
            ..Default::default()
        }
    }

    pub fn contact(&self, uri: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.uri == uri)
    }

    pub fn group(&self, id: u32) -> Option<&ContactGroup> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The lowest free group id (ids start at 1; Lync's own start at 100 for
    /// user-made groups, but any positive id works for clients).
    pub fn free_group_id(&self) -> u32 {
        let mut id = 1;
        while self.groups.iter().any(|g| g.id == id) {
            id += 1;
        }
        id
    }

    /// Inserts or replaces a contact, keeping the list sorted.
    pub fn upsert_contact(&mut self, c: Contact) {
        match self.contacts.binary_search_by(|x| x.uri.cmp(&c.uri)) {
            Ok(i) => self.contacts[i] = c,
            Err(i) => self.contacts.insert(i, c),
        }
    }

    /// Removes a contact; returns whether it was there.
    pub fn remove_contact(&mut self, uri: &str) -> bool {
        let before = self.contacts.len();
        self.contacts.retain(|c| c.uri != uri);
        before != self.contacts.len()
    }

    /// Inserts or renames a group, keeping the list sorted.
    pub fn upsert_group(&mut self, g: ContactGroup) {
        match self.groups.binary_search_by(|x| x.id.cmp(&g.id)) {
            Ok(i) => self.groups[i] = g,
            Err(i) => self.groups.insert(i, g),
        }
    }

    /// Removes a group and takes it off every contact; returns whether it was there.
    pub fn remove_group(&mut self, id: u32) -> bool {
        let before = self.groups.len();
        self.groups.retain(|g| g.id != id);
        for c in &mut self.contacts {
            c.groups.retain(|g| *g != id);
        }
        before != self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uri: &str, groups: &[u32]) -> Contact {
        Contact {
            uri: uri.into(),
            name: String::new(),
            groups: groups.to_vec(),
            subscribed: true,
        }
    }

    #[test]
    fn upsert_keeps_sorted_and_replaces() {
        let mut l = ContactList::empty("alice@example.com");
        l.upsert_contact(contact("carol@example.com", &[1]));
        l.upsert_contact(contact("bob@example.com", &[1]));
        l.upsert_contact(contact("bob@example.com", &[2]));
        let uris: Vec<_> = l.contacts.iter().map(|c| c.uri.as_str()).collect();
        assert_eq!(uris, ["bob@example.com", "carol@example.com"]);
        assert_eq!(
            l.contact("bob@example.com").map(|c| c.groups.clone()),
            Some(vec![2])
        );
    }

    #[test]
    fn removing_a_group_takes_it_off_contacts() {
        let mut l = ContactList::empty("alice@example.com");
        l.upsert_group(ContactGroup {
            id: 1,
            name: "~".into(),
        });
        l.upsert_group(ContactGroup {
            id: 2,
            name: "Team".into(),
        });
        assert_eq!(l.free_group_id(), 3);
        l.upsert_contact(contact("bob@example.com", &[1, 2]));
        assert!(l.remove_group(2));
        assert!(!l.remove_group(2));
        assert_eq!(l.contacts[0].groups, vec![1]);
        assert_eq!(l.free_group_id(), 2);
        assert!(l.remove_contact("bob@example.com"));
        assert!(l.contacts.is_empty());
    }
}
