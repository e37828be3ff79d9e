//! Lync presence (MS-PRES): category publication by `SERVICE`, aggregation across
//! a user's endpoints, and the Lync subscriptions (batched presence, roaming
//! contacts, roaming-self, provisioning) a client makes to its own address.
//!
//! # Aggregation
//!
//! Per user this keeps the manual `userState` (what the user chose), the
//! `machineState` of each endpoint (what each device reports; it goes when the
//! endpoint's registration goes) and the personal note. The user's state is the
//! manual state if set, else the most available machine state by the
//! [`Availability`] precedence; it is handed to the presence compositor as the
//! user's manual state, so SIMPLE watchers (PIDF) and Lync watchers (categories)
//! see the same thing, and a user with no registered endpoint is offline.

use std::collections::BTreeMap;

use confab_presence::mspres::{self, CategoryBody, ExpireType, StateKind};
use confab_presence::{Availability, PresenceState};
use confab_sip::Message;
use confab_sip::transaction::ServerKey;
use tracing::debug;

use crate::core::{Core, event_is};
use crate::presence_agent::SubKind;
use crate::types::Dest;

/// What one user published through category publications.
#[derive(Debug, Default)]
pub(crate) struct UserCategories {
    user_state: Option<(u32, Option<String>)>,
    note: Option<String>,
    /// Endpoint id → (availability, activity).
    machine: BTreeMap<String, (u32, Option<String>)>,
}

impl UserCategories {
    fn is_empty(&self) -> bool {
        self.user_state.is_none() && self.note.is_none() && self.machine.is_empty()
    }

    /// The state to hand to the compositor, if any was published.
    fn aggregate(&self) -> Option<PresenceState> {
        let chosen = self.user_state.clone().or_else(|| {
            self.machine
                .values()
                .max_by_key(|(a, _)| Availability::from_lync(*a).precedence())
                .cloned()
        });
        let (availability, activity) = match chosen {
            Some((a, act)) => (Availability::from_lync(a), act),
            None if self.note.is_some() => (Availability::Online, None),
            None => return None,
        };
        Some(PresenceState {
            availability,
            note: self.note.clone(),
            activity,
            endpoint: None,
        })
    }
}

/// The in-band provisioning document (`vnd-microsoft-roaming-provisioning-v2`).
///
/// `chat_pool` is the Persistent Chat pool URI when the user's policy enables
/// Persistent Chat: Lync's `persistentChatConfiguration` group with
/// `EnablePersistentChat` and `DefaultPersistentChatPoolUri`, which pidgin-sipe
/// reads to find the chat service (the URI it INVITEs first); otherwise
/// `EnablePersistentChat` is false and the client does not look for one.
pub(crate) fn provisioning_document(chat_pool: Option<&str>) -> String {
    let mut s = String::from(concat!(
        "<provisionGroupList xmlns=\"http://schemas.microsoft.com/2006/09/sip/provisiongrouplist-notification\">",
        "<provisionGroup name=\"ServerConfiguration\"><propertyEntryList/></provisionGroup>",
        "<provisionGroup name=\"ucPolicy\"><propertyEntryList/></provisionGroup>",
        "<provisionGroup name=\"persistentChatConfiguration\"><propertyEntryList>",
    ));
    match chat_pool {
        Some(uri) => {
            s.push_str("<property name=\"EnablePersistentChat\">true</property>");
            s.push_str("<property name=\"DefaultPersistentChatPoolUri\">");
            confab_presence::xmltree::push_escaped(&mut s, uri, false);
            s.push_str("</property>");
        }
        None => s.push_str("<property name=\"EnablePersistentChat\">false</property>"),
    }
    s.push_str("</propertyEntryList></provisionGroup></provisionGroupList>");
    s
}

/// Whether a SUBSCRIBE is one of the Lync subscriptions a client makes to itself.
pub(crate) fn lync_subscription_kind(msg: &Message) -> Option<SubKind> {
    if event_is(msg, "vnd-microsoft-roaming-contacts") {
        Some(SubKind::Contacts)
    } else if event_is(msg, "vnd-microsoft-roaming-self") {
        Some(SubKind::RoamingSelf)
    } else if event_is(msg, "vnd-microsoft-provisioning-v2") {
        Some(SubKind::Provisioning)
    } else if event_is(msg, "presence")
        && msg.content_type().is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/msrtc-adrl-categorylist+xml")
        })
    {
        Some(SubKind::Categories)
    } else {
        None
    }
}

/// `user@domain` of a batch-subscription resource URI (`sip:` dropped, lower-case).
pub(crate) fn resource_aor(uri: &str) -> String {
    let t = uri.trim();
    let t = if t.len() > 4 && t[..4].eq_ignore_ascii_case("sip:") {
        &t[4..]
    } else {
        t
    };
    t.to_ascii_lowercase()
}

impl Core {
    /// A SUBSCRIBE of `owner` to their own address for a Lync event package.
    pub(crate) fn lync_subscribe(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        owner: &str,
        kind: SubKind,
    ) {
        let mut resources = Vec::new();
        if kind == SubKind::Contacts {
            self.lync_contact_list_mut(owner);
        }
        if kind == SubKind::Categories {
            let batch = match mspres::parse_batch_subscribe(msg.body()) {
                Ok(b) => b,
                Err(e) => {
                    self.reply(key, msg, 400, |b| {
                        b.reason(format!("Bad batch subscription: {e}"))
                    });
                    return;
                }
            };
            if batch.action.eq_ignore_ascii_case("unsubscribe") {
                self.reply(key, msg, 200, |b| b.header("Event", "presence"));
                return;
            }
            for r in batch.resources {
                let aor = resource_aor(&r);
                if aor.contains('@') && !resources.contains(&aor) {
                    resources.push(aor);
                }
            }
        }
        self.subscribe(key, msg, src, kind, owner, owner, resources);
    }

    /// A `SERVICE` request of `owner` to their own address.
    pub(crate) fn lync_service(&mut self, key: &ServerKey, msg: &Message, src: Dest, owner: &str) {
        if super::contacts::is_soap(msg) {
            self.lync_soap(key, msg, owner);
            return;
        }
        let ct = msg.content_type().unwrap_or("").to_ascii_lowercase();
        if ct.starts_with("application/msrtc-category-publish+xml") {
            self.lync_publish(key, msg, src, owner);
        } else if ct.starts_with("application/msrtc-setcontainermembers+xml")
            || ct.starts_with("application/msrtc-presence-setsubscribers+xml")
        {
            // Access control containers: every user of the domain may see every
            // other (the same-domain policy); nothing to store yet.
            self.reply(key, msg, 200, |b| b);
        } else {
            self.reply(key, msg, 415, |b| {
                b.reason("SERVICE body not supported").header(
                    "Accept",
                    "application/SOAP+xml, application/msrtc-category-publish+xml",
                )
            });
        }
    }

    fn lync_publish(&mut self, key: &ServerKey, msg: &Message, src: Dest, owner: &str) {
        let (_, pubs) = match mspres::parse_category_publish(msg.body()) {
            Ok(p) => p,
            Err(e) => {
                self.reply(key, msg, 400, |b| {
                    b.reason(format!("Bad category publication: {e}"))
                });
                return;
            }
        };
        // The endpoint is the registration on the connection the request came over.
        let endpoint = src
            .conn
            .and_then(|c| {
                self.registrar
                    .lookup(owner, self.now)
                    .into_iter()
                    .find(|b| b.flow.conn == Some(c))
                    .map(|b| b.endpoint_id().to_owned())
            })
            .unwrap_or_else(|| format!("{}", src.addr));
        let cats = self.lync.presence.entry(owner.to_owned()).or_default();
        for p in pubs {
            let removal = p.expires == Some(0);
            match p.body {
                CategoryBody::State {
                    kind,
                    availability,
                    activity,
                } => match (kind, p.expire_type) {
                    (StateKind::User, _) => {
                        cats.user_state = match availability {
                            Some(a) if !removal => Some((a, activity)),
                            _ => None,
                        };
                    }
                    (StateKind::Machine, _) | (_, ExpireType::Endpoint) => match availability {
                        Some(a) if !removal => {
                            cats.machine.insert(endpoint.clone(), (a, activity));
                        }
                        _ => {
                            cats.machine.remove(&endpoint);
                        }
                    },
                    _ => {}
                },
                CategoryBody::Note { text } => {
                    cats.note = (!removal && !text.trim().is_empty()).then_some(text);
                }
                _ => {}
            }
        }
        let state = cats.aggregate();
        if cats.is_empty() {
            self.lync.presence.remove(owner);
        }
        debug!(user = %owner, ?state, "category publication");
        self.reply(key, msg, 200, |b| b);
        self.lync_set_state(owner, state);
    }

    /// Hands a user's published state to the compositor and tells the watchers.
    fn lync_set_state(&mut self, owner: &str, state: Option<PresenceState>) {
        let changed = self
            .pa
            .compositor
            .set_manual_state(owner, state)
            .unwrap_or(false);
        if changed {
            self.notify_watchers(owner);
        }
    }

    /// An endpoint of `owner` went away: its machine state goes with it; with no
    /// endpoint left, the manual state and note go too (Lync clears them on sign-out).
    pub(crate) fn lync_endpoint_gone(&mut self, owner: &str, endpoint: &str) {
        let last = self.registrar.lookup(owner, self.now).is_empty();
        let Some(cats) = self.lync.presence.get_mut(owner) else {
            return;
        };
        cats.machine.remove(endpoint);
        if last {
            cats.user_state = None;
            cats.note = None;
            cats.machine.clear();
        }
        let state = cats.aggregate();
        if cats.is_empty() {
            self.lync.presence.remove(owner);
        }
        // The caller (presence_endpoint) notifies if the aggregate changed.
        let _ = self.pa.compositor.set_manual_state(owner, state);
    }
}
