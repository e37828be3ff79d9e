//! Presence agent (RFC 3856 with RFC 3903 PUBLISH and RFC 6665 subscriptions):
//! this server is the notifier for every user of its domain.
//!
//! It owns every subscription dialog this server is the notifier of: RFC 3856
//! presence with PIDF bodies, and the Lync subscriptions (batched category
//! presence, the roaming contact list, roaming-self and in-band provisioning;
//! see [`SubKind`]). One presence state per user (the [`Compositor`]) feeds
//! both body formats, so SIMPLE and Lync clients see each other.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};

use confab_presence::{
    Compositor, CompositorLimits, Policy, PresenceState, PublishRequest, WatchError, WatcherLimits,
    Watchers, mspres, parse_pidf, render_pidf,
};
use confab_sip::header::NameAddr;
use confab_sip::transaction::{ClientKey, ServerKey};
use confab_sip::{HeaderName, Message, Method};
use rustc_hash::FxHashMap;
use tracing::debug;

use crate::core::{Core, event_is};
use crate::metrics::Metrics;
use crate::types::Dest;

/// What a subscription is for, and so which Event and body its NOTIFYs carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubKind {
    /// RFC 3856 presence of `target`, PIDF bodies.
    Pidf,
    /// Lync batched presence of `resources` (MS-PRES categories, one NOTIFY or
    /// BENOTIFY per resource).
    Categories,
    /// The contact list of `target` (`vnd-microsoft-roaming-contacts`).
    Contacts,
    /// `target`'s own categories, containers and subscribers (`vnd-microsoft-roaming-self`).
    RoamingSelf,
    /// In-band provisioning (`vnd-microsoft-provisioning-v2`): one NOTIFY, then over.
    Provisioning,
}

impl SubKind {
    fn event(self) -> &'static str {
        match self {
            SubKind::Pidf | SubKind::Categories => "presence",
            SubKind::Contacts => "vnd-microsoft-roaming-contacts",
            SubKind::RoamingSelf => "vnd-microsoft-roaming-self",
            SubKind::Provisioning => "vnd-microsoft-provisioning-v2",
        }
    }
}

/// Watch index key: (subscription, resource index).
pub(crate) type WatchId = (u64, u32);

/// One subscription (a dialog this server owns as notifier).
struct Sub {
    kind: SubKind,
    /// Pidf: the watched user; Lync kinds: the subscriber (owner) itself.
    target: String,
    /// Categories: the watched users (`user@domain`).
    resources: Vec<String>,
    /// Later NOTIFYs may go as BENOTIFY (no response expected; `Supported: ms-benotify`).
    benotify: bool,
    call_id: String,
    our_tag: String,
    /// The subscriber's From header value (with its tag): our To.
    their_from: String,
    /// The To URI of the SUBSCRIBE: our From.
    our_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    cseq: u32,
    flow: Dest,
    expires_at: Instant,
}

pub(crate) struct PresenceAgent {
    pub(crate) compositor: Compositor,
    /// Who watches whose presence (Pidf and Categories subscriptions).
    watchers: Watchers<WatchId>,
    /// Whose own data a subscription follows (Contacts, RoamingSelf).
    owners: Watchers<WatchId>,
    /// Boxed (272-byte values, 200,000+ live on a pool): docs/decisions.md,
    /// "Large values in big tables are boxed".
    subs: FxHashMap<u64, Box<Sub>>,
    by_dialog: FxHashMap<(String, String), u64>,
    own: FxHashMap<ClientKey, u64>,
    policy: Policy,
    next_id: u64,
    /// Version counter for category documents.
    version: u32,
    /// The PIDF document of the presentity whose watchers are being notified: set
    /// only while `notify_watchers` runs (the state cannot change meanwhile), so a
    /// change fanned out to N watchers is aggregated and rendered once, not N times.
    pidf_memo: Option<(String, String)>,
}

impl PresenceAgent {
    pub(crate) fn new(same_domain_visible: bool, per_user: usize, etag_seed: u64) -> Self {
        PresenceAgent {
            compositor: Compositor::new(
                CompositorLimits {
                    max_entities: 1_000_000,
                    max_publications: 1_000_000,
                    max_publications_per_entity: per_user.max(1),
                    ..Default::default()
                },
                etag_seed,
            ),
            watchers: Watchers::new(WatcherLimits {
                max_subscriptions_per_watcher: 1000,
                max_subscriptions: 4_000_000,
            }),
            owners: Watchers::new(WatcherLimits {
                max_subscriptions_per_watcher: 64,
                max_subscriptions: 1_000_000,
            }),
            subs: FxHashMap::default(),
            by_dialog: FxHashMap::default(),
            own: FxHashMap::default(),
            policy: Policy {
                same_domain_visible,
            },
            next_id: 1,
            version: 0,
            pidf_memo: None,
        }
    }

    pub(crate) fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    pub(crate) fn dialog(&self, call_id: &str, our_tag: &str) -> Option<u64> {
        self.by_dialog
            .get(&(call_id.to_owned(), our_tag.to_owned()))
            .copied()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.compositor.next_expiry(),
            self.watchers.next_expiry(),
            self.owners.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Aggregated state of a user (for other front-end parts and tests).
    pub(crate) fn state_of(&self, aor: &str) -> PresenceState {
        self.compositor.aggregate(aor)
    }
}

impl Core {
    /// Presence of a user as this server aggregates it.
    pub fn presence_of(&self, aor: &str) -> confab_presence::PresenceState {
        self.pa.state_of(aor)
    }

    pub(crate) fn presence_endpoint(&mut self, aor: &str, endpoint: &str, online: bool) {
        let changed = if online {
            self.pa
                .compositor
                .set_endpoint_state(aor, endpoint, PresenceState::online())
                .unwrap_or(false)
        } else {
            self.lync_endpoint_gone(aor, endpoint);
            self.pa.compositor.clear_endpoint(aor, endpoint)
        };
        if changed {
            self.notify_watchers(aor);
        }
    }

    /// Tells every watcher of `aor` its new presence.
    pub(crate) fn notify_watchers(&mut self, aor: &str) {
        // Pool hook: the pool's other front ends learn the new state.
        self.share.local_change(&mut self.pa.compositor, aor);
        self.pa.version = self.pa.version.wrapping_add(1);
        let ids: Vec<WatchId> = self
            .pa
            .watchers
            .watchers_of(aor)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let doc = render_pidf(&format!("sip:{aor}"), &self.pa.compositor.aggregate(aor));
        self.pa.pidf_memo = Some((aor.to_owned(), doc));
        for (id, res) in ids {
            self.send_notify(id, Some(res), None);
        }
        self.pa.pidf_memo = None;
    }

    /// Sends the current contact list / roaming-self data to every endpoint of `owner`
    /// subscribed to it.
    pub(crate) fn notify_owner(&mut self, owner: &str, kind: SubKind) {
        let ids: Vec<u64> = self
            .pa
            .owners
            .watchers_of(owner)
            .map(|(id, _)| id.0)
            .collect();
        for id in ids {
            if self.pa.subs.get(&id).is_some_and(|s| s.kind == kind) {
                self.send_notify(id, None, None);
            }
        }
    }

    pub(crate) fn handle_publish(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        identity: Option<&str>,
        target: &str,
    ) {
        if identity != Some(target) {
            self.reply(key, msg, 403, |b| {
                b.reason("Only the user may publish their own presence")
            });
            return;
        }
        if !event_is(msg, "presence") {
            self.reply(key, msg, 489, |b| b.header("Allow-Events", "presence"));
            return;
        }
        let body = if msg.body().is_empty() {
            None
        } else {
            let ct = msg.content_type().unwrap_or("");
            if !ct.to_ascii_lowercase().starts_with("application/pidf+xml") {
                self.reply(key, msg, 415, |b| {
                    b.header("Accept", "application/pidf+xml")
                });
                return;
            }
            match parse_pidf(msg.body()) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.reply(key, msg, 400, |b| {
                        b.reason(format!("Bad PIDF document: {e}"))
                    });
                    return;
                }
            }
        };
        let req = PublishRequest {
            etag: msg.header(HeaderName::SipIfMatch),
            body,
            expires: msg.expires().unwrap_or(3600),
        };
        match self.pa.compositor.publish(target, req, self.now) {
            Ok(out) => {
                Metrics::inc(&self.metrics.presence_publications_total);
                self.reply(key, msg, 200, |b| {
                    b.header("SIP-ETag", out.etag.clone())
                        .header("Expires", out.expires.to_string())
                });
                if out.changed {
                    self.notify_watchers(target);
                }
            }
            Err(e) => {
                let code = e.status_code();
                let reason = e.to_string();
                self.reply(key, msg, code, |mut b| {
                    if let confab_presence::PublishError::IntervalTooBrief { min_expires } = e {
                        b = b.header("Min-Expires", min_expires.to_string());
                    }
                    b.reason(reason)
                });
            }
        }
    }

    /// An RFC 3856 presence SUBSCRIBE of `watcher` to `target`.
    pub(crate) fn handle_subscribe(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        watcher: &str,
        target: &str,
    ) {
        if !self.pa.policy.may_watch(watcher, target) {
            self.reply(key, msg, 403, |b| {
                b.reason("Presence of this user is not visible to you")
            });
            return;
        }
        self.subscribe(
            key,
            msg,
            src,
            SubKind::Pidf,
            watcher,
            target,
            vec![target.to_owned()],
        );
    }

    /// Creates a subscription dialog of `kind`, answers 200 and sends the first
    /// NOTIFY(s). `resources` are the watched users (Pidf, Categories).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn subscribe(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        kind: SubKind,
        watcher: &str,
        target: &str,
        resources: Vec<String>,
    ) {
        let Some(contact) = msg
            .header_values(HeaderName::Contact)
            .next()
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|n| n.uri.to_owned())
        else {
            self.reply(key, msg, 400, |b| b.reason("SUBSCRIBE without Contact"));
            return;
        };
        if confab_sip::Uri::parse(&contact).is_err() {
            self.reply(key, msg, 400, |b| b.reason("Malformed Contact URI"));
            return;
        }
        let expires = if kind == SubKind::Provisioning {
            0
        } else {
            msg.expires()
                .unwrap_or(3600)
                .min(self.cfg.max_subscription_expires)
        };
        let our_tag = self.new_tag();
        let our_contact = format!("<{}>", self.our_uri(src.transport));
        let id = self.pa.next_id;
        self.pa.next_id += 1;
        let expires_at = self.now + Duration::from_secs(u64::from(expires));
        let sub = Sub {
            kind,
            target: target.to_owned(),
            resources,
            benotify: msg.has_option(HeaderName::Supported, "ms-benotify"),
            call_id: msg.call_id().to_owned(),
            our_tag: our_tag.clone(),
            their_from: msg.header(HeaderName::From).unwrap_or("").to_owned(),
            our_uri: msg.to().uri.to_owned(),
            remote_target: contact,
            route_set: msg
                .headers_named(HeaderName::RecordRoute)
                .map(str::to_owned)
                .collect(),
            cseq: 0,
            flow: src,
            expires_at,
        };
        if expires > 0
            && let Err(e) = self.index_sub(id, watcher, &sub)
        {
            self.reply(key, msg, 503, |b| {
                b.reason(format!("Cannot subscribe: {e}"))
            });
            return;
        }
        let n_resources = sub.resources.len();
        self.pa
            .by_dialog
            .insert((sub.call_id.clone(), our_tag.clone()), id);
        self.pa.subs.insert(id, Box::new(sub));
        self.reply_tagged(key, msg, 200, &our_tag, |b| {
            b.header("Expires", expires.to_string())
                .header("Contact", our_contact)
                .header("Event", kind.event())
                .copy_record_route()
        });
        debug!(%watcher, %target, ?kind, expires, "subscription");
        self.notify_all(id, n_resources, expires == 0);
    }

    /// Sends the full state of a subscription: one NOTIFY per resource for
    /// Categories (BENOTIFY after the first when the client supports it).
    fn notify_all(&mut self, id: u64, n_resources: usize, terminate: bool) {
        let Some(kind) = self.pa.subs.get(&id).map(|s| s.kind) else {
            return;
        };
        if kind == SubKind::Categories {
            for i in 0..n_resources {
                let last = i + 1 == n_resources;
                let end = (terminate && last).then_some("timeout");
                self.send_notify(id, Some(i as u32), end);
            }
            if n_resources == 0 {
                self.send_notify(id, None, terminate.then_some("timeout"));
            }
        } else if kind == SubKind::Provisioning || terminate {
            self.send_notify(id, Some(0), Some("timeout"));
        } else {
            self.send_notify(id, Some(0), None);
        }
    }

    fn index_sub(&mut self, id: u64, watcher: &str, sub: &Sub) -> Result<(), WatchError> {
        match sub.kind {
            SubKind::Pidf | SubKind::Categories => {
                for (i, r) in sub.resources.iter().enumerate() {
                    if let Err(e) = self
                        .pa
                        .watchers
                        .add((id, i as u32), watcher, r, sub.expires_at)
                    {
                        for j in 0..i {
                            self.pa.watchers.remove(&(id, j as u32));
                        }
                        return Err(e);
                    }
                }
                Ok(())
            }
            SubKind::Contacts | SubKind::RoamingSelf => {
                self.pa
                    .owners
                    .add((id, 0), watcher, &sub.target, sub.expires_at)
            }
            SubKind::Provisioning => Ok(()),
        }
    }

    /// A request inside one of our subscription dialogs.
    pub(crate) fn in_dialog_local(&mut self, key: &ServerKey, msg: &Message, id: u64) {
        if msg.method() != Some(&Method::Subscribe) {
            self.reply(key, msg, 405, |b| b.header("Allow", "SUBSCRIBE"));
            return;
        }
        let expires = msg
            .expires()
            .unwrap_or(3600)
            .min(self.cfg.max_subscription_expires);
        let Some((tag, kind, n)) = self
            .pa
            .subs
            .get(&id)
            .map(|s| (s.our_tag.clone(), s.kind, s.resources.len()))
        else {
            return;
        };
        self.reply_tagged(key, msg, 200, &tag, |b| {
            b.header("Expires", expires.to_string())
                .header("Event", kind.event())
        });
        if expires == 0 {
            self.notify_all(id, n, true);
            return;
        }
        let at = self.now + Duration::from_secs(u64::from(expires));
        if let Some(s) = self.pa.subs.get_mut(&id) {
            s.expires_at = at;
        }
        for i in 0..n.max(1) {
            self.pa.watchers.refresh(&(id, i as u32), at);
        }
        self.pa.owners.refresh(&(id, 0), at);
        // A Lync client adds contacts to its batched subscription with an
        // in-dialog SUBSCRIBE listing them: watch the new ones, and answer for
        // those listed.
        if kind == SubKind::Categories && !msg.body().is_empty() {
            let listed = match mspres::parse_batch_subscribe(msg.body()) {
                Ok(b) => b.resources,
                Err(e) => {
                    debug!(error = %e, "unreadable batch subscription refresh");
                    Vec::new()
                }
            };
            let mut indices = Vec::new();
            for r in listed {
                let aor = crate::lync::resource_aor(&r);
                if !aor.contains('@') {
                    continue;
                }
                let Some(sub) = self.pa.subs.get_mut(&id) else {
                    return;
                };
                let i = match sub.resources.iter().position(|x| *x == aor) {
                    Some(i) => i,
                    None => {
                        sub.resources.push(aor.clone());
                        let i = sub.resources.len() - 1;
                        let watcher = sub.target.clone();
                        if self
                            .pa
                            .watchers
                            .add((id, i as u32), &watcher, &aor, at)
                            .is_err()
                        {
                            continue;
                        }
                        i
                    }
                };
                indices.push(i as u32);
            }
            for i in indices {
                self.send_notify(id, Some(i), None);
            }
            return;
        }
        self.notify_all(id, n, false);
    }

    /// The body of a NOTIFY: (content type, document).
    fn notify_body(
        &self,
        sub: &Sub,
        resource: Option<u32>,
    ) -> Option<(&'static str, Cow<'_, str>)> {
        let watched = |i: Option<u32>| {
            i.and_then(|i| sub.resources.get(i as usize))
                .map(String::as_str)
        };
        match sub.kind {
            SubKind::Pidf => {
                let target = watched(Some(0)).unwrap_or(&sub.target);
                if let Some((memo_target, doc)) = &self.pa.pidf_memo
                    && memo_target == target
                {
                    return Some(("application/pidf+xml", Cow::Borrowed(doc.as_str())));
                }
                let st = self.pa.compositor.aggregate(target);
                Some((
                    "application/pidf+xml",
                    Cow::Owned(render_pidf(&format!("sip:{target}"), &st)),
                ))
            }
            SubKind::Categories => {
                let r = watched(resource)?;
                let st = if self.pa.policy.may_watch(&sub.target, r) {
                    self.pa.compositor.aggregate(r)
                } else {
                    PresenceState::offline()
                };
                let name = self
                    .directory
                    .get(r)
                    .and_then(|u| u.display_name.as_deref());
                Some((
                    "application/msrtc-event-categories+xml",
                    Cow::Owned(mspres::render_categories(
                        &format!("sip:{r}"),
                        &st,
                        name,
                        &rfc3339(self.wall_ms),
                        self.pa.version,
                    )),
                ))
            }
            SubKind::Contacts => Some((
                "application/vnd-microsoft-roaming-contacts+xml",
                Cow::Owned(self.lync_contact_list_document(&sub.target)),
            )),
            SubKind::RoamingSelf => {
                // The client's own categories are not echoed: SIPE would take a
                // server-made `state` instance for another endpoint's and re-publish.
                Some((
                    "application/vnd-microsoft-roaming-self+xml",
                    Cow::Owned(mspres::render_roaming_self(
                        &format!("sip:{}", sub.target),
                        None,
                        &rfc3339(self.wall_ms),
                        self.pa.version,
                        &[],
                    )),
                ))
            }
            SubKind::Provisioning => Some((
                "application/vnd-microsoft-roaming-provisioning-v2+xml",
                Cow::Owned(crate::lync::provisioning_document(
                    self.cfg
                        .chat_provisioning
                        .as_ref()
                        .and_then(|p| p.pool_uri(&sub.target))
                        .as_deref(),
                )),
            )),
        }
    }

    /// Sends a NOTIFY (or BENOTIFY) with the current state of `resource`;
    /// `terminated` ends the subscription.
    ///
    /// The request is written straight into one buffer (no header list of owned
    /// strings, the shared PIDF document of a fan-out copied once into it): a
    /// presentity's change is one of these per watcher, on the core thread.
    fn send_notify(&mut self, id: u64, resource: Option<u32>, terminated: Option<&str>) {
        let now = self.now;
        let branch = self.new_branch();
        let Some(sub) = self.pa.subs.get_mut(&id) else {
            return;
        };
        // BENOTIFY (no response) for updates once the dialog is confirmed.
        let method = if sub.benotify && sub.cseq > 0 && terminated.is_none() {
            Method::Benotify
        } else {
            Method::Notify
        };
        sub.cseq += 1;
        let Some(sub) = self.pa.subs.get(&id) else {
            return;
        };
        let flow = sub.flow;
        let with_body = terminated.is_none() || sub.kind == SubKind::Provisioning;
        let body = if with_body {
            self.notify_body(sub, resource)
        } else {
            None
        };
        let host = self.cfg.advertise.host.as_str();
        let port = self.port_for(flow.transport);
        let routes: usize = sub.route_set.iter().map(|r| r.len() + 9).sum();
        let mut out = BytesMut::with_capacity(
            420 + sub.remote_target.len()
                + sub.their_from.len()
                + sub.call_id.len()
                + sub.our_uri.len()
                + 2 * host.len()
                + routes
                + body.as_ref().map_or(0, |(ct, b)| ct.len() + b.len()),
        );
        // Writing into a BytesMut cannot fail.
        let _ = write!(
            out,
            "{m} {target} SIP/2.0\r\nVia: SIP/2.0/{t} {host}:{port};branch={branch}\r\n\
             Max-Forwards: 70\r\nFrom: <{from}>;tag={tag}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {m}\r\nEvent: {event}\r\n",
            m = method.as_str(),
            target = sub.remote_target,
            t = flow.transport.via_name(),
            from = sub.our_uri,
            tag = sub.our_tag,
            to = sub.their_from,
            call_id = sub.call_id,
            cseq = sub.cseq,
            event = sub.kind.event(),
        );
        let _ = match terminated {
            Some(reason) => write!(out, "Subscription-State: terminated;reason={reason}\r\n"),
            None => write!(
                out,
                "Subscription-State: active;expires={}\r\n",
                sub.expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        for r in &sub.route_set {
            let _ = write!(out, "Route: {r}\r\n");
        }
        let _ = write!(out, "Contact: <sip:{host}:{port}");
        if flow.transport != crate::types::Transport::Udp {
            let _ = write!(out, ";transport={}", flow.transport.uri_param());
        }
        out.put_slice(b">\r\n");
        match &body {
            Some((ct, doc)) => {
                let _ = write!(
                    out,
                    "Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    doc.len()
                );
                out.put_slice(doc.as_bytes());
            }
            None => out.put_slice(b"Content-Length: 0\r\n\r\n"),
        }
        drop(body);
        let bytes = out.freeze();
        if method == Method::Notify {
            let key = ClientKey {
                branch: branch.into(),
                method: Method::Notify,
            };
            self.tx.start_client(
                key.clone(),
                bytes.clone(),
                flow,
                flow.transport.reliable(),
                now,
            );
            self.pa.own.insert(key, id);
        }
        self.send(flow, bytes);
        Metrics::inc(&self.metrics.presence_notifies_sent_total);
        if terminated.is_some() {
            self.remove_sub(id);
        }
    }

    fn remove_sub(&mut self, id: u64) {
        if let Some(s) = self.pa.subs.remove(&id) {
            self.pa.by_dialog.remove(&(s.call_id, s.our_tag));
            for i in 0..s.resources.len().max(1) {
                self.pa.watchers.remove(&(id, i as u32));
            }
        }
        self.pa.owners.remove(&(id, 0));
    }

    /// A response to one of our own requests (NOTIFY). Returns whether it was ours.
    pub(crate) fn own_response(&mut self, key: &ClientKey, resp: &Message) -> bool {
        let code = resp.status().unwrap_or(0);
        if code < 200 && self.pa.own.contains_key(key) {
            return true;
        }
        let Some(id) = self.pa.own.remove(key) else {
            return self.lync_im_response(key, resp);
        };
        if code >= 300 && code != 401 && code != 407 {
            debug!(code, "watcher refused NOTIFY: subscription ended");
            self.remove_sub(id);
        }
        true
    }

    pub(crate) fn own_timeout(&mut self, key: &ClientKey) -> bool {
        let Some(id) = self.pa.own.remove(key) else {
            return self.lync_im_timeout(key);
        };
        self.remove_sub(id);
        true
    }

    pub(crate) fn presence_tick(&mut self) {
        let changed = self.pa.compositor.expire(self.now);
        for aor in changed {
            self.notify_watchers(&aor);
        }
        let mut ended: Vec<u64> = self
            .pa
            .watchers
            .expire(self.now)
            .into_iter()
            .chain(self.pa.owners.expire(self.now))
            .map(|(id, _)| id)
            .collect();
        ended.sort_unstable();
        ended.dedup();
        for id in ended {
            self.send_notify(id, None, Some("timeout"));
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a wall-clock time in milliseconds since the epoch.
pub(crate) fn rfc3339(wall_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(wall_ms / 1000).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
