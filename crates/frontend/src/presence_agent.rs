//! Presence agent (RFC 3856 with RFC 3903 PUBLISH and RFC 6665 subscriptions):
//! this server is the notifier for every user of its domain.

use std::time::{Duration, Instant};

use confab_presence::{
    Compositor, CompositorLimits, Policy, PresenceState, PublishRequest, WatcherLimits, Watchers,
    parse_pidf, render_pidf,
};
use confab_sip::header::NameAddr;
use confab_sip::transaction::{ClientKey, ServerKey};
use confab_sip::{HeaderName, Message, Method, RequestBuilder};
use rustc_hash::FxHashMap;
use tracing::debug;

use crate::core::{Core, event_is};
use crate::metrics::Metrics;
use crate::types::Dest;

/// One presence subscription (a dialog this server owns as notifier).
struct Sub {
    target: String,
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
    compositor: Compositor,
    watchers: Watchers<u64>,
    subs: FxHashMap<u64, Sub>,
    by_dialog: FxHashMap<(String, String), u64>,
    own: FxHashMap<ClientKey, u64>,
    policy: Policy,
    next_id: u64,
}

impl PresenceAgent {
    pub(crate) fn new(same_domain_visible: bool, etag_seed: u64) -> Self {
        PresenceAgent {
            compositor: Compositor::new(
                CompositorLimits {
                    max_entities: 1_000_000,
                    max_publications: 1_000_000,
                    ..Default::default()
                },
                etag_seed,
            ),
            watchers: Watchers::new(WatcherLimits {
                max_subscriptions_per_watcher: 1000,
                max_subscriptions: 2_000_000,
            }),
            subs: FxHashMap::default(),
            by_dialog: FxHashMap::default(),
            own: FxHashMap::default(),
            policy: Policy {
                same_domain_visible,
            },
            next_id: 1,
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
        [self.compositor.next_expiry(), self.watchers.next_expiry()]
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
            self.pa.compositor.clear_endpoint(aor, endpoint)
        };
        if changed {
            self.notify_watchers(aor);
        }
    }

    fn notify_watchers(&mut self, aor: &str) {
        let ids: Vec<u64> = self
            .pa
            .watchers
            .watchers_of(aor)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send_notify(id, None);
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
        let expires = msg
            .expires()
            .unwrap_or(3600)
            .min(self.cfg.max_subscription_expires);
        let our_tag = self.new_tag();
        let our_contact = format!("<{}>", self.our_uri(src.transport));
        let id = self.pa.next_id;
        self.pa.next_id += 1;
        let sub = Sub {
            target: target.to_owned(),
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
            expires_at: self.now + Duration::from_secs(u64::from(expires)),
        };
        if expires > 0
            && let Err(e) = self.pa.watchers.add(id, watcher, target, sub.expires_at)
        {
            self.reply(key, msg, 503, |b| {
                b.reason(format!("Cannot subscribe: {e}"))
            });
            return;
        }
        self.pa
            .by_dialog
            .insert((sub.call_id.clone(), our_tag.clone()), id);
        self.pa.subs.insert(id, sub);
        self.reply_tagged(key, msg, 200, &our_tag, |b| {
            b.header("Expires", expires.to_string())
                .header("Contact", our_contact)
                .copy_record_route()
        });
        debug!(%watcher, %target, expires, "presence subscription");
        if expires == 0 {
            self.send_notify(id, Some("timeout"));
        } else {
            self.send_notify(id, None);
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
        let tag = self
            .pa
            .subs
            .get(&id)
            .map(|s| s.our_tag.clone())
            .unwrap_or_default();
        self.reply_tagged(key, msg, 200, &tag, |b| {
            b.header("Expires", expires.to_string())
        });
        if expires == 0 {
            self.send_notify(id, Some("timeout"));
        } else {
            let at = self.now + Duration::from_secs(u64::from(expires));
            if let Some(s) = self.pa.subs.get_mut(&id) {
                s.expires_at = at;
            }
            self.pa.watchers.refresh(&id, at);
            self.send_notify(id, None);
        }
    }

    /// Sends a NOTIFY with the current state; `terminated` ends the subscription.
    fn send_notify(&mut self, id: u64, terminated: Option<&str>) {
        let now = self.now;
        let branch = self.new_branch();
        let Some(flow) = self.pa.subs.get(&id).map(|s| s.flow) else {
            return;
        };
        let via = self.our_via(flow.transport, &branch);
        let Some(sub) = self.pa.subs.get_mut(&id) else {
            return;
        };
        sub.cseq += 1;
        let state = match terminated {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                sub.expires_at.saturating_duration_since(now).as_secs()
            ),
        };
        let entity = format!("sip:{}", sub.target);
        let mut b = RequestBuilder::new(Method::Notify, sub.remote_target.clone())
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", format!("<{}>;tag={}", sub.our_uri, sub.our_tag))
            .header("To", sub.their_from.clone())
            .header("Call-ID", sub.call_id.clone())
            .header("CSeq", format!("{} NOTIFY", sub.cseq))
            .header("Event", "presence")
            .header("Subscription-State", state);
        for r in &sub.route_set {
            b = b.header("Route", r.clone());
        }
        let target = sub.target.clone();
        let body = if terminated.is_none() {
            let st = self.pa.compositor.aggregate(&target);
            Some(render_pidf(&entity, &st))
        } else {
            None
        };
        let contact = format!("<{}>", self.our_uri(flow.transport));
        b = b.header("Contact", contact);
        if let Some(body) = body {
            b = b.body("application/pidf+xml", body);
        }
        let bytes = b.build();
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
        self.send(flow, bytes);
        Metrics::inc(&self.metrics.presence_notifies_sent_total);
        self.pa.own.insert(key, id);
        if terminated.is_some() {
            self.remove_sub(id);
        }
    }

    fn remove_sub(&mut self, id: u64) {
        if let Some(s) = self.pa.subs.remove(&id) {
            self.pa.by_dialog.remove(&(s.call_id, s.our_tag));
        }
        self.pa.watchers.remove(&id);
    }

    /// A response to one of our own requests (NOTIFY). Returns whether it was ours.
    pub(crate) fn own_response(&mut self, key: &ClientKey, resp: &Message) -> bool {
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            return self.pa.own.contains_key(key);
        }
        let Some(id) = self.pa.own.remove(key) else {
            return false;
        };
        if code >= 300 && code != 401 && code != 407 {
            debug!(code, "watcher refused NOTIFY: subscription ended");
            self.remove_sub(id);
        }
        true
    }

    pub(crate) fn own_timeout(&mut self, key: &ClientKey) -> bool {
        let Some(id) = self.pa.own.remove(key) else {
            return false;
        };
        self.remove_sub(id);
        true
    }

    pub(crate) fn presence_tick(&mut self) {
        let changed = self.pa.compositor.expire(self.now);
        for aor in changed {
            self.notify_watchers(&aor);
        }
        for id in self.pa.watchers.expire(self.now) {
            self.send_notify(id, Some("timeout"));
        }
    }
}
