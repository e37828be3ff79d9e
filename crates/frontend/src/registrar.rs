//! The location service: contacts registered per address-of-record (RFC 3261 §10.3,
//! with RFC 5626 instance/reg-id), kept in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::types::{ConnId, Dest, Transport};

/// One registered contact.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Contact URI as registered (used as Request-URI when forwarding).
    pub uri: String,
    /// `+sip.instance` value, if any.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    pub expires_at: Instant,
    /// The flow the REGISTER arrived on: requests for this contact go back over it.
    pub flow: Dest,
    /// Extra contact parameters to echo (e.g. `methods`, `+sip.instance`).
    pub params: String,
}

impl Binding {
    /// Stable id of this endpoint for presence aggregation: its `+sip.instance`,
    /// else its contact URI.
    pub fn endpoint_id(&self) -> &str {
        self.instance.as_deref().unwrap_or(&self.uri)
    }
}

/// Why a registration update was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Same Call-ID, CSeq not higher than the stored one (§10.3 step 7).
    OutOfOrder,
    /// Too many contacts for one address-of-record.
    TooManyContacts(usize),
}

/// A requested change for one contact.
#[derive(Debug, Clone)]
pub struct ContactUpdate {
    pub uri: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub expires: u32,
    pub params: String,
}

/// What changed for presence: endpoints that came and went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BindingEvents {
    pub added: Vec<(String, String)>,
    pub removed: Vec<(String, String)>,
}

/// The bindings of one address-of-record.
#[derive(Debug, Default)]
struct Aor {
    bindings: Vec<Binding>,
    /// The time of this address's live entry in `Registrar::expiry`; heap entries
    /// at another time are stale and skipped.
    scheduled: Option<Instant>,
}

/// All bindings. The address-of-record is one shared string per address (the maps
/// and the expiry queue hold it): at a few bytes per registered user this is most
/// of what the registrar keeps besides the bindings themselves.
#[derive(Debug)]
pub struct Registrar {
    by_aor: FxHashMap<Arc<str>, Aor>,
    /// Per connection: the addresses with bindings on it, and how many.
    by_conn: FxHashMap<ConnId, FxHashMap<Arc<str>, u32>>,
    by_contact: FxHashMap<String, Arc<str>>,
    /// Expiry checks, at most one live entry per address-of-record (a refresh does
    /// not add one; see `Aor::scheduled`).
    expiry: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    max_per_aor: usize,
    count: usize,
}

fn same_binding(b: &Binding, u: &ContactUpdate) -> bool {
    match (&b.instance, &u.instance) {
        (Some(a), Some(c)) => a == c && b.reg_id == u.reg_id,
        _ => b.uri == u.uri,
    }
}

impl Registrar {
    pub fn new(max_per_aor: usize) -> Self {
        Registrar {
            by_aor: FxHashMap::default(),
            by_conn: FxHashMap::default(),
            by_contact: FxHashMap::default(),
            expiry: BinaryHeap::new(),
            max_per_aor,
            count: 0,
        }
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of addresses with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.by_aor.len()
    }

    /// Live bindings of an address-of-record.
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<&Binding> {
        self.by_aor
            .get(aor)
            .map(|a| a.bindings.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default()
    }

    /// The binding registered with exactly this contact URI, if any (requests
    /// addressed to a contact go back over its flow).
    pub fn by_contact_uri(&self, uri: &str, now: Instant) -> Option<&Binding> {
        let aor = self.by_contact.get(uri)?;
        self.by_aor
            .get(&**aor)?
            .bindings
            .iter()
            .find(|b| b.uri == uri && b.expires_at > now)
    }

    /// Applies a REGISTER's contacts atomically.
    pub fn update(
        &mut self,
        aor: &str,
        call_id: &str,
        cseq: u32,
        updates: &[ContactUpdate],
        flow: Dest,
        now: Instant,
    ) -> Result<BindingEvents, RegisterError> {
        let existing = self
            .by_aor
            .get(aor)
            .map(|a| a.bindings.as_slice())
            .unwrap_or(&[]);
        // Validate first so the update is all or nothing.
        let mut new_count = existing.iter().filter(|b| b.expires_at > now).count();
        for u in updates {
            match existing.iter().find(|b| same_binding(b, u)) {
                Some(b) => {
                    if b.call_id == call_id && cseq <= b.cseq {
                        return Err(RegisterError::OutOfOrder);
                    }
                    if u.expires == 0 {
                        new_count = new_count.saturating_sub(1);
                    }
                }
                None if u.expires > 0 => new_count += 1,
                None => {}
            }
        }
        if new_count > self.max_per_aor {
            return Err(RegisterError::TooManyContacts(self.max_per_aor));
        }
        let mut events = BindingEvents::default();
        let shared: Arc<str> = match self.by_aor.get_key_value(aor) {
            Some((k, _)) => k.clone(),
            None => Arc::from(aor),
        };
        let entry = self.by_aor.entry(shared.clone()).or_default();
        let list = &mut entry.bindings;
        for u in updates {
            let pos = list.iter().position(|b| same_binding(b, u));
            if u.expires == 0 {
                if let Some(p) = pos {
                    let b = list.remove(p);
                    events
                        .removed
                        .push((aor.to_owned(), b.endpoint_id().to_owned()));
                    self.count -= 1;
                    unindex(&mut self.by_conn, &mut self.by_contact, aor, &b);
                }
                continue;
            }
            let expires_at = now + Duration::from_secs(u64::from(u.expires));
            let b = Binding {
                uri: u.uri.clone(),
                instance: u.instance.clone(),
                reg_id: u.reg_id,
                call_id: call_id.to_owned(),
                cseq,
                expires_at,
                flow,
                params: u.params.clone(),
            };
            let endpoint_id = b.endpoint_id().to_owned();
            match pos {
                Some(p) => {
                    let old = std::mem::replace(&mut list[p], b);
                    unindex(&mut self.by_conn, &mut self.by_contact, aor, &old);
                }
                None => {
                    // Most addresses have one contact: an empty Vec would otherwise
                    // grow to room for four bindings on the first push.
                    if list.capacity() == 0 {
                        list.reserve_exact(1);
                    }
                    list.push(b);
                    self.count += 1;
                    events.added.push((aor.to_owned(), endpoint_id));
                }
            }
            if let Some(c) = flow.conn {
                *self
                    .by_conn
                    .entry(c)
                    .or_default()
                    .entry(shared.clone())
                    .or_insert(0) += 1;
            }
            self.by_contact.insert(u.uri.clone(), shared.clone());
            // An earlier check already scheduled covers this binding: it
            // reschedules for the earliest binding left when it fires.
            if entry.scheduled.is_none_or(|at| at > expires_at) {
                entry.scheduled = Some(expires_at);
                self.expiry.push(Reverse((expires_at, shared.clone())));
            }
        }
        if entry.bindings.is_empty() {
            self.by_aor.remove(aor);
        }
        Ok(events)
    }

    /// Removes every binding of an address-of-record (`Contact: *`, user disabled).
    pub fn remove_all(&mut self, aor: &str) -> BindingEvents {
        let mut events = BindingEvents::default();
        if let Some(a) = self.by_aor.remove(aor) {
            for b in a.bindings {
                self.count -= 1;
                unindex(&mut self.by_conn, &mut self.by_contact, aor, &b);
                events
                    .removed
                    .push((aor.to_owned(), b.endpoint_id().to_owned()));
            }
        }
        events
    }

    /// A connection closed. Bindings bound to that flow (RFC 5626 outbound with a
    /// `reg-id`, WebSocket contacts, Lync endpoints with `ms-opaque`) end, as their
    /// contact can't be reached any other way. Other bindings stay: requests for them
    /// open a new connection to the contact address, as RFC 3261 §18.1.1 allows.
    pub fn connection_closed(&mut self, conn: ConnId) -> BindingEvents {
        let mut events = BindingEvents::default();
        let Some(aors) = self.by_conn.remove(&conn) else {
            return events;
        };
        for aor in aors.into_keys() {
            let Some(list) = self.by_aor.get_mut(&aor).map(|a| &mut a.bindings) else {
                continue;
            };
            let mut i = 0;
            while i < list.len() {
                if list[i].flow.conn != Some(conn) {
                    i += 1;
                    continue;
                }
                match reconnect_dest(&list[i]) {
                    Some(dest) => {
                        list[i].flow = dest;
                        i += 1;
                    }
                    None => {
                        let b = list.remove(i);
                        self.count -= 1;
                        if self.by_contact.get(&b.uri) == Some(&aor) {
                            self.by_contact.remove(&b.uri);
                        }
                        events
                            .removed
                            .push((aor.to_string(), b.endpoint_id().to_owned()));
                    }
                }
            }
            if list.is_empty() {
                self.by_aor.remove(&aor);
            }
        }
        events
    }

    /// Drops expired bindings.
    pub fn expire(&mut self, now: Instant) -> BindingEvents {
        let mut events = BindingEvents::default();
        while let Some(Reverse((at, _))) = self.expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, aor))) = self.expiry.pop() else {
                break;
            };
            let Some(entry) = self.by_aor.get_mut(&aor) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue; // stale: a later check replaced it
            }
            entry.scheduled = None;
            let list = &mut entry.bindings;
            let mut i = 0;
            while i < list.len() {
                if list[i].expires_at <= now {
                    let b = list.remove(i);
                    self.count -= 1;
                    unindex(&mut self.by_conn, &mut self.by_contact, &aor, &b);
                    events
                        .removed
                        .push((aor.to_string(), b.endpoint_id().to_owned()));
                } else {
                    i += 1;
                }
            }
            match list.iter().map(|b| b.expires_at).min() {
                Some(next) => {
                    entry.scheduled = Some(next);
                    self.expiry.push(Reverse((next, aor)));
                }
                None => {
                    self.by_aor.remove(&aor);
                }
            }
        }
        events
    }

    /// Entries in the expiry queue (live and stale), for tests and gauges.
    pub fn expiry_queue_len(&self) -> usize {
        self.expiry.len()
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }
}

/// Where to reach a binding whose connection closed, if it can be reached at all.
fn reconnect_dest(b: &Binding) -> Option<Dest> {
    if b.reg_id.is_some() || matches!(b.flow.transport, Transport::Ws | Transport::Wss) {
        return None;
    }
    let uri = confab_sip::Uri::parse(&b.uri).ok()?;
    if uri.param("ms-opaque").is_some() {
        return None;
    }
    Dest::for_uri(&uri, b.flow.transport)
}

fn unindex(
    by_conn: &mut FxHashMap<ConnId, FxHashMap<Arc<str>, u32>>,
    by_contact: &mut FxHashMap<String, Arc<str>>,
    aor: &str,
    b: &Binding,
) {
    if let Some(c) = b.flow.conn
        && let Some(m) = by_conn.get_mut(&c)
    {
        if let Some(n) = m.get_mut(aor) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(aor);
            }
        }
        if m.is_empty() {
            by_conn.remove(&c);
        }
    }
    if by_contact.get(&b.uri).is_some_and(|a| **a == *aor) {
        by_contact.remove(&b.uri);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Transport;

    fn flow(conn: Option<u64>) -> Dest {
        Dest {
            transport: if conn.is_some() {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            addr: "127.0.0.1:5062".parse().unwrap(),
            conn: conn.map(ConnId),
        }
    }

    fn upd(uri: &str, expires: u32) -> ContactUpdate {
        ContactUpdate {
            uri: uri.into(),
            instance: None,
            reg_id: None,
            expires,
            params: String::new(),
        }
    }

    #[test]
    fn register_refresh_expire() {
        let t0 = Instant::now();
        let mut r = Registrar::new(4);
        let ev = r
            .update("a@x", "c1", 1, &[upd("sip:a@1.2.3.4", 60)], flow(None), t0)
            .unwrap();
        assert_eq!(ev.added.len(), 1);
        assert_eq!(r.lookup("a@x", t0).len(), 1);
        // Same Call-ID, same CSeq: out of order.
        assert_eq!(
            r.update("a@x", "c1", 1, &[upd("sip:a@1.2.3.4", 60)], flow(None), t0)
                .unwrap_err(),
            RegisterError::OutOfOrder
        );
        // Refresh extends.
        let ev = r
            .update(
                "a@x",
                "c1",
                2,
                &[upd("sip:a@1.2.3.4", 60)],
                flow(None),
                t0 + Duration::from_secs(50),
            )
            .unwrap();
        assert!(ev.added.is_empty());
        assert!(r.expire(t0 + Duration::from_secs(70)).removed.is_empty());
        let ev = r.expire(t0 + Duration::from_secs(111));
        assert_eq!(ev.removed.len(), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn several_contacts_and_limit() {
        let t0 = Instant::now();
        let mut r = Registrar::new(2);
        r.update(
            "a@x",
            "c1",
            1,
            &[upd("sip:a@1", 60), upd("sip:a@2", 60)],
            flow(None),
            t0,
        )
        .unwrap();
        assert_eq!(r.lookup("a@x", t0).len(), 2);
        assert!(matches!(
            r.update("a@x", "c9", 1, &[upd("sip:a@3", 60)], flow(None), t0),
            Err(RegisterError::TooManyContacts(2))
        ));
        r.update("a@x", "c1", 2, &[upd("sip:a@1", 0)], flow(None), t0)
            .unwrap();
        assert_eq!(r.lookup("a@x", t0).len(), 1);
        assert_eq!(r.remove_all("a@x").removed.len(), 1);
    }

    #[test]
    fn connection_close_ends_flow_bound_bindings_only() {
        let t0 = Instant::now();
        let mut r = Registrar::new(4);
        // Not reachable except over its flow: a Lync contact (ms-opaque), a host name.
        r.update(
            "a@x",
            "c1",
            1,
            &[upd("sip:127.0.0.1:4000;transport=tcp;ms-opaque=1f", 600)],
            flow(Some(7)),
            t0,
        )
        .unwrap();
        r.update(
            "c@x",
            "c3",
            1,
            &[upd("sip:c@host.invalid;transport=tcp", 600)],
            flow(Some(7)),
            t0,
        )
        .unwrap();
        // Reachable again at its contact address.
        r.update(
            "d@x",
            "c4",
            1,
            &[upd("sip:d@127.0.0.1:5090;transport=tcp", 600)],
            flow(Some(7)),
            t0,
        )
        .unwrap();
        r.update("b@x", "c2", 1, &[upd("sip:b@1", 600)], flow(None), t0)
            .unwrap();
        let ev = r.connection_closed(ConnId(7));
        assert_eq!(ev.removed.len(), 2);
        assert!(r.lookup("a@x", t0).is_empty());
        assert!(r.lookup("c@x", t0).is_empty());
        let d = r.lookup("d@x", t0);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].flow.conn, None);
        assert_eq!(d[0].flow.addr, "127.0.0.1:5090".parse().unwrap());
        assert_eq!(r.lookup("b@x", t0).len(), 1);
        assert!(
            r.by_contact_uri("sip:127.0.0.1:4000;transport=tcp;ms-opaque=1f", t0)
                .is_none()
        );
    }

    #[test]
    fn refreshes_do_not_grow_the_expiry_queue() {
        let t0 = Instant::now();
        let mut r = Registrar::new(4);
        let aor = "alice@example.com";
        for i in 0..1000u32 {
            let now = t0 + Duration::from_secs(u64::from(i));
            r.update(
                aor,
                "c1",
                i + 1,
                &[upd("sip:a@192.0.2.1", 600)],
                flow(Some(1)),
                now,
            )
            .unwrap();
        }
        assert!(
            r.expiry_queue_len() <= 2,
            "{} entries",
            r.expiry_queue_len()
        );
        // The binding lives until 600 s after the last refresh, not the first.
        let last = t0 + Duration::from_secs(999);
        let ev = r.expire(t0 + Duration::from_secs(601));
        assert!(ev.removed.is_empty());
        assert_eq!(r.next_expiry(), Some(last + Duration::from_secs(600)));
        assert!(r.expire(last + Duration::from_secs(599)).removed.is_empty());
        assert_eq!(r.expire(last + Duration::from_secs(600)).removed.len(), 1);
        assert!(r.is_empty());
        assert_eq!(r.next_expiry(), None);
        // A shorter expiry than the scheduled check moves the check earlier.
        r.update(aor, "c2", 1, &[upd("sip:a@192.0.2.1", 600)], flow(None), t0)
            .unwrap();
        r.update(aor, "c2", 2, &[upd("sip:a@192.0.2.1", 60)], flow(None), t0)
            .unwrap();
        assert_eq!(r.next_expiry(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(r.expire(t0 + Duration::from_secs(60)).removed.len(), 1);
    }

    #[test]
    fn many_bindings_on_one_connection_are_indexed_once_each() {
        let t0 = Instant::now();
        let mut r = Registrar::new(4);
        for i in 0..100 {
            let aor = format!("u{i}@example.com");
            r.update(
                &aor,
                "c",
                1,
                &[upd(&format!("sip:u{i}@192.0.2.1"), 600)],
                flow(Some(7)),
                t0,
            )
            .unwrap();
            r.update(
                &aor,
                "c",
                2,
                &[upd(&format!("sip:u{i}@192.0.2.1"), 600)],
                flow(Some(7)),
                t0,
            )
            .unwrap();
        }
        // The connection closes: every binding bound to it is considered once.
        let ev = r.connection_closed(ConnId(7));
        assert_eq!(ev.removed.len() + r.len(), 100);
    }
}
