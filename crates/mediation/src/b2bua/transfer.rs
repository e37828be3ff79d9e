//! REFER-less blind transfer, as Lync's Mediation Server does it for gateways
//! that do not support REFER: the user's side of a call (the leg facing the pool)
//! sends REFER; the Mediation server accepts it (`202`, NOTIFY `100 Trying`),
//! places its own call to the target without an offer — to the front end for a
//! user (or a number a user owns), to the transferor's route's trunks for any
//! other number — and, when the target answers with its offer, re-INVITEs the
//! gateway's leg with it. The gateway's answer goes to the target in the ACK;
//! the transferor gets NOTIFY `200 OK` (subscription terminated) and a BYE, and
//! the target's dialog becomes the call's pool-side leg. The gateway never sees
//! a REFER. A target that fails is told to the transferor in the NOTIFY
//! (`SIP/2.0 486 ...`) and the call goes on as before.

use confab_sip::NameAddr;

use super::*;

/// A blind transfer in progress in a call.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    /// Where the target may be reached (one entry for a user; the route's trunks
    /// for a number), and the current one.
    targets: Vec<Target>,
    attempt: usize,
    /// Our dialog with the target (our Call-ID and tags).
    leg: Dialog,
    /// The INVITE sent to the target (current attempt) and its bytes.
    invite: Option<Message>,
    invite_data: Bytes,
    /// The target rang (a provisional answer above 100).
    provisional: bool,
    /// The re-INVITE sent to the gateway with the target's offer.
    reinvite: Option<Message>,
    /// The transferor hung up meanwhile (no NOTIFY, no BYE to it).
    transferor_gone: bool,
}

/// Dialogs of transfers: targets being called, and transferors' dialogs that
/// left their call (a BYE crossing ours gets `200` for a while).
#[derive(Debug, Default)]
pub(super) struct Transfers {
    /// Call-ID of a target's dialog (before it joins the call) -> call.
    targets: HashMap<String, u64>,
    /// Call-ID of a transferor's former dialog -> when it left.
    gone: HashMap<String, Instant>,
}

/// A transfer cannot be placed: the answer to the REFER.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused(u16, String);

impl Mediation {
    /// A message on a transfer's dialog (a target's answers, a former
    /// transferor's BYE): handled here (`Some`), else `None`.
    pub(super) fn transfer_message(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        now: Instant,
        relays: &mut dyn Relays,
    ) -> Option<Vec<Action>> {
        let mut out = Vec::new();
        let call_id = msg.call_id();
        if let Some(id) = self.transfers.targets.get(call_id).copied() {
            if msg.is_request() {
                // The target speaks before it joined the call (a BYE right after
                // its 200, say): not a dialog of ours yet.
                Self::reply(msg, src, 481, "Call/Transaction Does Not Exist", &mut out);
                return Some(out);
            }
            let mut call = self.calls.remove(&id)?;
            let keep = self.target_response(&mut call, msg, now, relays, &mut out);
            self.keep_or_end(call, keep, now, relays, &mut out);
            return Some(out);
        }
        self.transfers
            .gone
            .retain(|_, left| now.saturating_duration_since(*left) < GIVE_UP);
        if self.transfers.gone.contains_key(call_id) {
            match msg.method() {
                Some(Method::Bye) => {
                    let data = ResponseBuilder::new(msg, 200).build();
                    out.push(Action::Send { to: src, data });
                }
                Some(Method::Ack) | None => {}
                Some(_) => Self::reply(msg, src, 481, "Call/Transaction Does Not Exist", &mut out),
            }
            return Some(out);
        }
        None
    }

    /// An in-dialog request that transfers handle: REFER from the pool's side,
    /// and while a transfer runs, the transferor's BYE and re-INVITEs.
    pub(super) fn transfer_request(
        &mut self,
        call: &mut Call,
        side: Side,
        msg: &Message,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> Option<bool> {
        let method = msg.method()?;
        let peer = call.legs.get(&side).map(|l| l.peer)?;
        if *method == Method::Refer && side == Side::Pool {
            self.on_refer(call, msg, peer, now, out);
            return Some(true);
        }
        let transfer = call.transfer.as_mut()?;
        match method {
            Method::Bye if side == Side::Pool => {
                // The transferor hangs up before the target answered: the
                // gateway's party stays for the target.
                transfer.transferor_gone = true;
                let ok = ResponseBuilder::new(msg, 200).build();
                if let Some(leg) = call.legs.get_mut(&side) {
                    leg.last_in = Some((msg.cseq().0, Method::Bye));
                    leg.last_answer = Some(ok.clone());
                }
                out.push(Action::Send { to: peer, data: ok });
                Some(true)
            }
            Method::Invite | Method::Update => {
                Self::reply(msg, peer, 491, "Request Pending", out);
                Some(true)
            }
            _ => None,
        }
    }

    fn on_refer(
        &mut self,
        call: &mut Call,
        msg: &Message,
        peer: SocketAddr,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if call.state != State::Confirmed || call.transfer.is_some() {
            return Self::reply(msg, peer, 491, "Request Pending", out);
        }
        let Some(pool) = call.legs.get(&Side::Pool) else {
            return;
        };
        let transferor = NameAddr::parse(&pool.remote)
            .ok()
            .and_then(|n| Uri::parse(n.uri).ok())
            .map(|u| u.aor())
            .unwrap_or_default();
        let targets = match msg.header(HeaderName::ReferTo) {
            None => Err(Refused(400, "Missing Refer-To".into())),
            Some(r) => self.refer_targets(&transferor, r),
        };
        let targets = match targets {
            Ok(t) => t,
            Err(Refused(code, reason)) => {
                debug!(call = call.id, code, %reason, "mediation: transfer refused");
                return Self::reply(msg, peer, code, &reason, out);
            }
        };
        // The target's dialog: the gateway's party calls, as the user saw it.
        let leg = Dialog {
            call_id: String::new(),
            local_tag: self.token("m"),
            remote_tag: None,
            local: pool.local.clone(),
            remote: String::new(),
            target: String::new(),
            route_set: Vec::new(),
            peer,
            cseq: 1,
            last_in: None,
            last_answer: None,
            transport: TrunkTransport::Udp,
        };
        if let Some((to, data)) = self.answer(call, Side::Pool, msg, 202, Some("Accepted"), None) {
            if let Some(pool) = call.legs.get_mut(&Side::Pool) {
                pool.last_in = Some((msg.cseq().0, Method::Refer));
                pool.last_answer = Some(data.clone());
            }
            out.push(Action::Send { to, data });
        }
        self.notify(call, 100, "Trying", false, out);
        debug!(call = call.id, %transferor, target = %targets.first().map_or("", |t| t.ruri.as_str()), "mediation: blind transfer");
        call.transfer = Some(Transfer {
            targets,
            attempt: 0,
            leg,
            invite: None,
            invite_data: Bytes::new(),
            provisional: false,
            reinvite: None,
            transferor_gone: false,
        });
        self.send_target_invite(call, now, out);
    }

    /// Where the REFER's target is called: a user of the domain through the front
    /// end; a number normalized with the transferor's dial plan, to the front end
    /// when a user owns it, else over the transferor's route's UDP trunks.
    fn refer_targets(&self, transferor: &str, refer_to: &str) -> Result<Vec<Target>, Refused> {
        let bad = || Refused(400, "Bad Refer-To".into());
        let name = NameAddr::parse(refer_to).map_err(|_| bad())?;
        let uri = Uri::parse(name.uri).map_err(|_| bad())?;
        if uri.headers.to_ascii_lowercase().contains("replaces") {
            return Err(Refused(
                501,
                "Attended transfer (Replaces) is not supported".into(),
            ));
        }
        let user = uri.user_unescaped().ok_or_else(bad)?;
        let dialed = user.split(';').next().unwrap_or("").to_owned();
        let phone = uri.scheme == Scheme::Tel
            || uri
                .param("user")
                .flatten()
                .is_some_and(|v| v.eq_ignore_ascii_case("phone"));
        let to_user = |user: &str| Target {
            trunk: String::new(),
            addr: self.cfg.front_end,
            ruri: format!("sip:{user}"),
            transport: TrunkTransport::Udp,
        };
        if !phone {
            if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
                return Err(Refused(416, "Unsupported URI Scheme".into()));
            }
            if !confab_voice::is_dial_string(&dialed) {
                if !uri.host.eq_ignore_ascii_case(&self.cfg.domain) {
                    return Err(Refused(
                        403,
                        "Transfer target outside this deployment".into(),
                    ));
                }
                let aor = format!(
                    "{}@{}",
                    user.to_lowercase(),
                    self.cfg.domain.to_ascii_lowercase()
                );
                return Ok(vec![to_user(&aor)]);
            }
        }
        let number = self
            .voice
            .normalize(Some(transferor), &dialed)
            .map_err(|e| Refused(404, e.to_string()))?
            .number;
        if let Some(owner) = self.voice.user_by_number(&number) {
            return Ok(vec![to_user(owner)]);
        }
        let trunks = self
            .voice
            .route(transferor, &number)
            .map_err(|e| Refused(403, e.to_string()))?;
        let targets: Vec<Target> = trunks
            .into_iter()
            .map(|t| Target {
                ruri: format!("sip:{}@{};user=phone", t.number, t.gateway),
                trunk: t.trunk,
                addr: t.gateway,
                transport: t.transport,
            })
            .collect();
        if targets.is_empty() {
            return Err(Refused(503, "No trunk for this number".into()));
        }
        Ok(targets)
    }

    /// The INVITE of the current attempt to the transfer's target, without an
    /// offer (the target's answer brings one).
    fn send_target_invite(&mut self, call: &mut Call, now: Instant, out: &mut Vec<Action>) {
        let call_id = self.token("ct");
        let id = call.id;
        let Some(target) = call
            .transfer
            .as_ref()
            .and_then(|t| t.targets.get(t.attempt).cloned())
        else {
            return;
        };
        let via = self.via(target.transport);
        let contact = self.contact(target.transport);
        let Some(t) = call.transfer.as_mut() else {
            return;
        };
        if !t.leg.call_id.is_empty() {
            self.transfers.targets.remove(&t.leg.call_id);
        }
        t.leg.call_id = call_id.clone();
        t.leg.remote = format!("<{}>", target.ruri);
        t.leg.target = target.ruri.clone();
        t.leg.peer = target.addr;
        t.leg.transport = target.transport;
        t.leg.remote_tag = None;
        t.leg.route_set.clear();
        t.provisional = false;
        let data = RequestBuilder::new(Method::Invite, target.ruri.clone())
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", format!("{};tag={}", t.leg.local, t.leg.local_tag))
            .header("To", t.leg.remote.clone())
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", contact)
            .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO")
            .build();
        t.invite = Message::parse(data.clone(), &self.limits).ok();
        t.invite_data = data.clone();
        self.transfers.targets.insert(call_id, id);
        debug!(call = id, to = %target.addr, trunk = %target.trunk, "mediation: transfer INVITE sent");
        call.deadline = Some(now + self.cfg.failover_timeout);
        // Over TCP/TLS the INVITE is sent once (RFC 3261 17.1.1.2).
        if target.transport == TrunkTransport::Udp {
            call.retrans.push(Retrans {
                side: Side::Pool,
                cseq: 1,
                answer: false,
                data: data.clone(),
                to: target.addr,
                next: now + T1,
                interval: T1,
                give_up: now + GIVE_UP,
            });
        }
        out.push(Action::Send {
            to: target.addr,
            data,
        });
    }

    /// An answer from the transfer's target. `false`: the call is over.
    fn target_response(
        &mut self,
        call: &mut Call,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> bool {
        let code = msg.status().unwrap_or(500);
        let Some(t) = call.transfer.as_mut() else {
            return true;
        };
        if msg.cseq().1 != &Method::Invite || t.leg.call_id != msg.call_id() {
            return true; // the answer to a CANCEL
        }
        let sent = t.invite_data.clone();
        call.retrans.retain(|r| r.data != sent);
        if code < 200 {
            if code > 100 && !t.provisional {
                t.provisional = true;
                call.deadline = Some(now + self.cfg.ring_timeout);
            }
            return true;
        }
        if code >= 300 {
            if let Some(inv) = &t.invite {
                out.push(Action::Send {
                    to: t.leg.peer,
                    data: build_non2xx_ack(inv, msg),
                });
            }
            if matches!(code, 408 | 503) && t.attempt + 1 < t.targets.len() {
                t.attempt += 1;
                self.send_target_invite(call, now, out);
                return true;
            }
            return self.transfer_failed(call, code, msg.reason().unwrap_or(""), now, out);
        }
        if t.reinvite.is_some() {
            return true; // a retransmitted 2xx: ACKed once the gateway answered
        }
        t.leg.remote_tag = msg.to_tag().map(str::to_owned);
        if let Some(c) = contact_uri(msg) {
            t.leg.target = c;
        }
        t.leg.route_set = msg
            .headers_named(HeaderName::RecordRoute)
            .flat_map(confab_sip::header::split_values)
            .map(str::to_owned)
            .collect();
        t.leg.route_set.reverse();
        call.deadline = None;
        if !is_sdp(msg) {
            // Without an offer the gateway has nothing to be re-INVITEd with.
            let mut leg = t.leg.clone();
            self.leg_request(&mut leg, Method::Ack, Some(1), &[], None, out);
            self.leg_request(&mut leg, Method::Bye, None, &[], None, out);
            return self.transfer_failed(call, 488, "No offer from the transfer target", now, out);
        }
        let body = self.body_for(call, Side::Pool, msg, relays);
        if let Some((to, data, n)) =
            self.dialog_request(call, Side::Gateway, Method::Invite, None, body)
        {
            if let Some(t) = call.transfer.as_mut() {
                t.reinvite = Message::parse(data.clone(), &self.limits).ok();
            }
            call.push_retrans(Retrans {
                side: Side::Gateway,
                cseq: n,
                answer: false,
                data: data.clone(),
                to,
                next: now + T1,
                interval: T1,
                give_up: now + GIVE_UP,
            });
            out.push(Action::Send { to, data });
        }
        true
    }

    /// The gateway's answer to the re-INVITE carrying the target's offer (`Some`),
    /// else `None`.
    pub(super) fn transfer_response(
        &mut self,
        call: &mut Call,
        side: Side,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> Option<bool> {
        let t = call.transfer.as_ref()?;
        let reinvite = t.reinvite.as_ref()?;
        let (cseq, method) = msg.cseq();
        if side != Side::Gateway || *method != Method::Invite || cseq != reinvite.cseq().0 {
            return None;
        }
        let code = msg.status().unwrap_or(500);
        if code < 200 {
            return Some(true);
        }
        let mut target = t.leg.clone();
        if code >= 300 {
            if let Some(gw) = call.legs.get(&Side::Gateway) {
                out.push(Action::Send {
                    to: gw.peer,
                    data: build_non2xx_ack(reinvite, msg),
                });
            }
            // The target answered an offer that cannot be taken: ended.
            self.leg_request(&mut target, Method::Ack, Some(1), &[], None, out);
            self.leg_request(&mut target, Method::Bye, None, &[], None, out);
            let reason = msg.reason().unwrap_or("").to_owned();
            return Some(self.transfer_failed(call, code, &reason, now, out));
        }
        if let Some((to, data, _)) =
            self.dialog_request(call, Side::Gateway, Method::Ack, Some(cseq), None)
        {
            out.push(Action::Send { to, data });
        }
        let Some(t) = call.transfer.take() else {
            return Some(true);
        };
        // The target's dialog becomes the call's pool-side leg; the transferor
        // is told and hung up.
        self.transfers.targets.remove(&t.leg.call_id);
        self.by_call_id
            .insert(t.leg.call_id.clone(), (call.id, Side::Pool));
        let answer = self.body_for(call, Side::Gateway, msg, relays);
        let old = call.legs.insert(Side::Pool, t.leg);
        if let Some((to, data, _)) =
            self.dialog_request(call, Side::Pool, Method::Ack, Some(1), answer)
        {
            out.push(Action::Send { to, data });
        }
        if let Some(mut old) = old {
            self.by_call_id.remove(&old.call_id);
            self.transfers.gone.insert(old.call_id.clone(), now);
            if !t.transferor_gone {
                let (ev, frag) = notify_parts(200, "OK", true);
                self.leg_request(&mut old, Method::Notify, None, &ev, Some(frag), out);
                self.leg_request(&mut old, Method::Bye, None, &[], None, out);
            }
        }
        call.pending.retain(|(s, _), _| *s != Side::Pool);
        call.acks.retain(|(s, _), _| *s != Side::Pool);
        call.retrans.retain(|r| r.side != Side::Pool);
        debug!(call = call.id, "mediation: transfer completed");
        Some(true)
    }

    /// The transfer failed with `code`: the transferor is told; the call goes on
    /// (or ends, when the transferor already hung up). `false`: the call is over.
    fn transfer_failed(
        &mut self,
        call: &mut Call,
        code: u16,
        reason: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(t) = call.transfer.take() else {
            return true;
        };
        debug!(call = call.id, code, "mediation: transfer failed");
        self.transfers.targets.remove(&t.leg.call_id);
        let sent = t.invite_data.clone();
        call.retrans.retain(|r| r.data != sent);
        call.deadline = None;
        if !t.transferor_gone {
            let reason = if reason.is_empty() { "Failed" } else { reason };
            self.notify(call, code, reason, true, out);
            return true;
        }
        // Nobody left on the pool's side: the gateway's party is hung up.
        if let Some((to, data, n)) =
            self.dialog_request(call, Side::Gateway, Method::Bye, None, None)
        {
            call.retrans.clear();
            call.push_retrans(Retrans {
                side: Side::Gateway,
                cseq: n,
                answer: false,
                data: data.clone(),
                to,
                next: now + T1,
                interval: T1,
                give_up: now + GIVE_UP,
            });
            out.push(Action::Send { to, data });
        }
        call.state = State::Ending;
        call.deadline = Some(now + GIVE_UP);
        true
    }

    /// The call's deadline passed while confirmed: a transfer target that did not
    /// answer in time. `false`: the call is over.
    pub(super) fn transfer_timeout(
        &mut self,
        call: &mut Call,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(t) = call.transfer.as_mut() else {
            return true;
        };
        if t.reinvite.is_some() {
            return true;
        }
        let sent = t.invite_data.clone();
        call.retrans.retain(|r| r.data != sent);
        let rang = t.provisional;
        if rang && let Some(inv) = &t.invite {
            out.push(Action::Send {
                to: t.leg.peer,
                data: cancel_of(inv),
            });
        }
        if !rang && t.attempt + 1 < t.targets.len() {
            t.attempt += 1;
            self.send_target_invite(call, now, out);
            return true;
        }
        let code = if rang { 480 } else { 408 };
        self.transfer_failed(call, code, "No answer from the transfer target", now, out)
    }

    /// The call ends: a transfer target still being called is cancelled.
    pub(super) fn transfer_ended(&mut self, call: &mut Call, out: &mut Vec<Action>) {
        let Some(t) = call.transfer.take() else {
            return;
        };
        self.transfers.targets.remove(&t.leg.call_id);
        if t.reinvite.is_none()
            && let Some(inv) = &t.invite
        {
            out.push(Action::Send {
                to: t.leg.peer,
                data: cancel_of(inv),
            });
        }
    }

    /// NOTIFY of the REFER's progress (`message/sipfrag`) on the pool's leg.
    fn notify(
        &mut self,
        call: &mut Call,
        code: u16,
        reason: &str,
        last: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(mut leg) = call.legs.get(&Side::Pool).cloned() else {
            return;
        };
        let (headers, body) = notify_parts(code, reason, last);
        self.leg_request(&mut leg, Method::Notify, None, &headers, Some(body), out);
        call.legs.insert(Side::Pool, leg);
    }

    /// A request on `leg`, built from its state (next CSeq unless `cseq`).
    fn leg_request(
        &mut self,
        leg: &mut Dialog,
        method: Method,
        cseq: Option<u32>,
        headers: &[(&str, String)],
        body: Option<(String, Bytes)>,
        out: &mut Vec<Action>,
    ) {
        let via = self.via(leg.transport);
        let n = cseq.unwrap_or_else(|| {
            leg.cseq += 1;
            leg.cseq
        });
        let to = match &leg.remote_tag {
            Some(t) => format!("{};tag={t}", leg.remote),
            None => leg.remote.clone(),
        };
        let mut b = RequestBuilder::new(method.clone(), leg.target.clone())
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", format!("{};tag={}", leg.local, leg.local_tag))
            .header("To", to)
            .header("Call-ID", leg.call_id.clone())
            .header("CSeq", format!("{n} {method}"));
        for r in &leg.route_set {
            b = b.header("Route", r.clone());
        }
        if method == Method::Notify {
            b = b.header("Contact", self.contact(leg.transport));
        }
        for (name, value) in headers {
            b = b.header(*name, value.clone());
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        out.push(Action::Send {
            to: leg.peer,
            data: b.build(),
        });
    }
}

/// The headers and body of a REFER progress NOTIFY (RFC 3515).
fn notify_parts(
    code: u16,
    reason: &str,
    last: bool,
) -> (Vec<(&'static str, String)>, (String, Bytes)) {
    let state = if last {
        "terminated;reason=noresource"
    } else {
        "active;expires=60"
    };
    (
        vec![
            ("Event", "refer".to_owned()),
            ("Subscription-State", state.to_owned()),
        ],
        (
            "message/sipfrag;version=2.0".to_owned(),
            Bytes::from(format!("SIP/2.0 {code} {reason}\r\n")),
        ),
    )
}

/// CANCEL of an INVITE we sent.
fn cancel_of(inv: &Message) -> Bytes {
    let mut b = RequestBuilder::new(Method::Cancel, inv.request_uri().unwrap_or(""))
        .header("Via", inv.top_via_str())
        .header("Max-Forwards", "70")
        .header("From", inv.header(HeaderName::From).unwrap_or(""))
        .header("To", inv.header(HeaderName::To).unwrap_or(""))
        .header("Call-ID", inv.call_id())
        .header("CSeq", format!("{} CANCEL", inv.cseq().0));
    for r in inv.headers_named(HeaderName::Route) {
        b = b.header("Route", r);
    }
    b.build()
}
