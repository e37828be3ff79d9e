//! Roaming contacts (MS-SIP `vnd-microsoft-roaming-contacts`): the contact list a
//! Lync client keeps on the server, edited with SOAP `SERVICE` requests.
//!
//! An edit is applied to the in-memory list at once (so later edits build on it),
//! handed to the embedding layer as a [`StoreRequest`], and acknowledged only when
//! [`Core::on_contacts_saved`] reports the store committed it; then every
//! endpoint of the owner subscribed to its list gets the new list.

use confab_sip::transaction::ServerKey;
use confab_sip::{Message, Method};
use tracing::{debug, warn};

use super::soap::{self, SoapRequest};
use crate::contacts::{Contact, ContactGroup, ContactList};
use crate::core::Core;
use crate::presence_agent::SubKind;

/// Work for the store, produced by the core (see [`Core::drain_store_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRequest {
    /// Replace `list.owner`'s contact list with `list`, then call
    /// [`Core::on_contacts_saved`] with `op`.
    SaveContacts { op: u64, list: ContactList },
}

/// A client edit waiting for the store.
pub(crate) struct PendingSave {
    key: ServerKey,
    req: Message,
    /// Body of the 200 (addGroup returns the new group id).
    reply_body: Option<String>,
    owner: String,
}

/// Name of the group contacts without a group go to (Lync's "Other Contacts").
const DEFAULT_GROUP: &str = "~";

impl Core {
    /// Moves the store work produced so far into `buf`.
    pub fn drain_store_requests(&mut self, buf: &mut Vec<StoreRequest>) {
        buf.append(&mut self.lync.store_requests);
    }

    /// The contact list of `owner` as this front end serves it.
    pub fn contact_list(&self, owner: &str) -> Option<&ContactList> {
        self.lync.contacts.get(owner)
    }

    /// Installs a contact list read from the store (start-up, or the store's change
    /// feed). A list older than the one in memory (an edit of ours still being
    /// saved) is ignored; a different one replaces it and is sent to the owner's
    /// subscribed endpoints.
    pub fn load_contact_list(&mut self, list: ContactList) {
        let owner = list.owner.clone();
        let saving = self.lync.saves.values().any(|p| p.owner == owner);
        if let Some(cur) = self.lync.contacts.get(&owner) {
            if list.delta_num < cur.delta_num || (list.delta_num == cur.delta_num && saving) {
                return;
            }
            if *cur == list {
                return;
            }
        }
        debug!(%owner, contacts = list.contacts.len(), "contact list loaded");
        self.lync.contacts.insert(owner.clone(), list);
        self.notify_owner(&owner, SubKind::Contacts);
    }

    /// The store finished a [`StoreRequest::SaveContacts`].
    pub fn on_contacts_saved(&mut self, op: u64, result: Result<(), String>) {
        let Some(p) = self.lync.saves.remove(&op) else {
            return;
        };
        match result {
            Ok(()) => {
                self.reply(&p.key, &p.req, 200, |b| match p.reply_body {
                    Some(body) => b.body("application/SOAP+xml", body),
                    None => b,
                });
                self.notify_owner(&p.owner, SubKind::Contacts);
            }
            Err(e) => {
                warn!(owner = %p.owner, error = %e, "storing a contact list failed");
                self.reply(&p.key, &p.req, 500, |b| {
                    b.reason("The contact list could not be stored")
                });
            }
        }
    }

    /// `owner`'s list, created with the default group if missing: clients number
    /// their groups from what the server sent, so the group they see must exist
    /// here too (a group made up only in the document would get its id reused).
    pub(crate) fn lync_contact_list_mut(&mut self, owner: &str) -> &mut ContactList {
        let list = self
            .lync
            .contacts
            .entry(owner.to_owned())
            .or_insert_with(|| ContactList::empty(owner));
        if list.groups.is_empty() {
            default_group(list);
        }
        list
    }

    /// The contact-list document for `owner` (an empty list if there is none).
    pub(crate) fn lync_contact_list_document(&self, owner: &str) -> String {
        match self.lync.contacts.get(owner) {
            Some(l) => soap::render_contact_list(l),
            None => soap::render_contact_list(&ContactList::empty(owner)),
        }
    }

    /// A SOAP `SERVICE` from `owner` to their own address.
    pub(crate) fn lync_soap(&mut self, key: &ServerKey, msg: &Message, owner: &str) {
        let op = match soap::parse_soap(msg.body()) {
            Ok(op) => op,
            Err(e) => {
                self.reply(key, msg, 400, |b| {
                    b.reason(format!("Bad SOAP request: {e}"))
                });
                return;
            }
        };
        let mut list = self.lync_contact_list_mut(owner).clone();
        let mut reply_body = None;
        match op {
            SoapRequest::SetContact {
                uri,
                name,
                groups,
                subscribed,
                ..
            } => {
                if !valid_address(&uri) {
                    self.reply(key, msg, 400, |b| {
                        b.reason("Contact URI must be user@domain")
                    });
                    return;
                }
                let mut groups: Vec<u32> = groups
                    .into_iter()
                    .filter(|g| list.group(*g).is_some())
                    .collect();
                if groups.is_empty() {
                    groups.push(default_group(&mut list));
                }
                // As the store keeps them, so a reloaded list compares equal.
                groups.sort_unstable();
                groups.dedup();
                // SIPE sends the URI as display name when the user gave none.
                let name = if name.eq_ignore_ascii_case(&format!("sip:{uri}")) {
                    String::new()
                } else {
                    name
                };
                list.upsert_contact(Contact {
                    uri,
                    name,
                    groups,
                    subscribed,
                });
            }
            SoapRequest::DeleteContact { uri, .. } => {
                list.remove_contact(&uri);
            }
            SoapRequest::AddGroup { name, .. } => {
                let id = match list.groups.iter().find(|g| g.name == name) {
                    Some(g) => g.id,
                    None => {
                        let id = list.free_group_id();
                        list.upsert_group(ContactGroup { id, name });
                        id
                    }
                };
                reply_body = Some(soap::render_add_group_response(id));
            }
            SoapRequest::ModifyGroup { id, name, .. } => {
                if list.group(id).is_none() {
                    self.reply(key, msg, 404, |b| b.reason("No such group"));
                    return;
                }
                list.upsert_group(ContactGroup { id, name });
            }
            SoapRequest::DeleteGroup { id, .. } => {
                list.remove_group(id);
                // Contacts left without a group go to the default group.
                if list.contacts.iter().any(|c| c.groups.is_empty()) {
                    let d = default_group(&mut list);
                    for c in &mut list.contacts {
                        if c.groups.is_empty() {
                            c.groups.push(d);
                        }
                    }
                }
            }
            SoapRequest::Other(name) => {
                debug!(%owner, op = %name, "SOAP operation accepted without effect");
                self.reply(key, msg, 200, |b| b);
                return;
            }
        }
        list.delta_num += 1;
        self.lync.next_op += 1;
        let op = self.lync.next_op;
        self.lync.contacts.insert(owner.to_owned(), list.clone());
        self.lync.saves.insert(
            op,
            PendingSave {
                key: key.clone(),
                req: msg.clone(),
                reply_body,
                owner: owner.to_owned(),
            },
        );
        self.lync
            .store_requests
            .push(StoreRequest::SaveContacts { op, list });
    }
}

/// The id of the default group, created if missing.
fn default_group(list: &mut ContactList) -> u32 {
    if let Some(g) = list.groups.iter().find(|g| g.name == DEFAULT_GROUP) {
        return g.id;
    }
    let id = list.free_group_id();
    list.upsert_group(ContactGroup {
        id,
        name: DEFAULT_GROUP.to_owned(),
    });
    id
}

/// `user@domain` with non-empty parts and no spaces or angle brackets.
fn valid_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((u, d)) => {
            !u.is_empty()
                && !d.is_empty()
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || "<>\"@".contains(c) && c != '@')
                && !d.contains('@')
        }
        None => false,
    }
}

/// Whether a request is a SERVICE with a SOAP body.
pub(crate) fn is_soap(msg: &Message) -> bool {
    msg.method() == Some(&Method::Service)
        && msg
            .content_type()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/soap+xml"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses() {
        assert!(super::valid_address("bob@example.com"));
        assert!(!super::valid_address("bob"));
        assert!(!super::valid_address("@example.com"));
        assert!(!super::valid_address("bob@a@b"));
        assert!(!super::valid_address("bo b@example.com"));
    }
}
