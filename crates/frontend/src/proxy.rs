//! Stateful proxy (RFC 3261 §16): forking to every contact, response selection,
//! CANCEL, and stateless forwarding of the ACK for a 2xx.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use confab_sip::hashed_map::HashedMap;
use confab_sip::header::NameAddr;
use confab_sip::transaction::{ClientKey, ResponseMatch, ServerKey};
use confab_sip::{HeaderName, Limits, Message, Method, RequestBuilder, Rewriter, Uri};
use rustc_hash::FxHashMap;
use tracing::debug;

use crate::core::Core;
use crate::metrics::Metrics;
use crate::types::Dest;

/// How long a finished forwarding context stays to relay retransmitted 2xx.
const LINGER: Duration = Duration::from_secs(32);
/// Timer C (RFC 3261 §16.6 step 11, §16.8): an INVITE branch still without a
/// final response this long after it was forwarded is cancelled, and given up
/// (as if answered 408) when it stays unanswered [`GIVE_UP`] longer.
const TIMER_C: Duration = Duration::from_secs(180);
const GIVE_UP: Duration = Duration::from_secs(32);

struct Branch {
    key: ClientKey,
    dest: Dest,
    /// The request as forwarded on this branch (for CANCEL and local answers);
    /// dropped once the context's final response went upstream.
    forwarded: Option<Box<Message>>,
    done: bool,
    provisional: bool,
    cancelled: bool,
}

struct ProxyCtx {
    server_key: ServerKey,
    upstream: Dest,
    invite: bool,
    branches: Vec<Branch>,
    best: Option<Box<Message>>,
    final_sent: bool,
    cancelled: bool,
    /// Serial forwarding (voice trunk failover): targets not tried yet, with what
    /// starting one needs. Empty for parallel forking.
    serial: Option<Box<Serial>>,
}

/// The rest of a serial forwarding: the next target is tried when the current one
/// fails with 503, 408 or a timeout.
struct Serial {
    request: Message,
    pending: std::collections::VecDeque<(String, Dest)>,
    record_route: bool,
    pop_routes: usize,
}

#[derive(Default)]
pub(crate) struct ProxyState {
    /// Boxed: a context is about 1.6 kB and INVITE contexts linger 32 s, so at a
    /// few thousand calls/s the table holds 100,000+ of them; with the contexts
    /// inline, each doubling of the table moved hundreds of MB at once and stalled
    /// the core thread for hundreds of ms (docs/performance.md, "The stall").
    ctxs: FxHashMap<u64, Box<ProxyCtx>>,
    /// Keyed by strings (branches, sent-by; a client picks its own): kept with
    /// their hashes, so that a doubling does not read every key again, and
    /// hashed with a keyed hash, so that a client cannot make its keys collide.
    by_client: HashedMap<ClientKey, (u64, usize)>,
    by_server: HashedMap<ServerKey, u64>,
    cleanup: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_c: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
}

impl ProxyState {
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let c = self.timer_c.peek().map(|Reverse((at, _))| *at);
        self.cleanup
            .peek()
            .map(|Reverse((at, _))| *at)
            .into_iter()
            .chain(c)
            .min()
    }
}

/// Ranks final responses for §16.7 selection (lower is better).
fn rank(code: u16) -> u32 {
    match code {
        200..=299 => 0,
        600..=699 => 1,
        // Prefer answers that let the caller act: auth challenges, then redirects,
        // then specific client errors, then 408/480-style, then server errors.
        401 | 407 => 2,
        300..=399 => 3,
        486 => 4,
        400..=499 if code != 408 && code != 480 => 5,
        480 => 6,
        408 => 7,
        _ => 8,
    }
}

impl Core {
    /// Forwards a request statefully to every target (forking).
    pub(crate) fn forward(
        &mut self,
        server_key: ServerKey,
        msg: &Message,
        upstream: Dest,
        targets: Vec<(String, Dest)>,
        record_route: bool,
        pop_routes: usize,
    ) {
        self.forward_with(
            server_key,
            msg,
            upstream,
            targets,
            record_route,
            pop_routes,
            false,
        );
    }

    /// Forwards a request statefully: to every target at once (forking), or with
    /// `serial` to one target after the other, the next tried when the current one
    /// answers 503 or 408 or times out (voice trunk failover, see `crate::voice_app`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_with(
        &mut self,
        server_key: ServerKey,
        msg: &Message,
        upstream: Dest,
        targets: Vec<(String, Dest)>,
        record_route: bool,
        pop_routes: usize,
        serial: bool,
    ) {
        let invite = msg.method() == Some(&Method::Invite);
        if invite {
            self.reply(&server_key, msg, 100, |b| b);
        }
        let id = self.proxy.next_id;
        self.proxy.next_id += 1;
        let mut branches = Vec::with_capacity(targets.len());
        let mut pending: std::collections::VecDeque<(String, Dest)> = targets.into();
        while let Some((ruri, dest)) = pending.pop_front() {
            let idx = branches.len();
            if let Some(b) = self.start_branch(
                id,
                idx,
                msg,
                upstream,
                &ruri,
                dest,
                record_route,
                pop_routes,
            ) {
                branches.push(b);
                if serial {
                    break;
                }
            }
        }
        if branches.is_empty() {
            self.reply(&server_key, msg, 500, |b| {
                b.reason("Could not forward request")
            });
            return;
        }
        self.proxy.by_server.insert(server_key.clone(), id);
        if invite {
            self.proxy.timer_c.push(Reverse((self.now + TIMER_C, id)));
        }
        let serial = (serial && !pending.is_empty()).then(|| {
            Box::new(Serial {
                request: msg.clone(),
                pending,
                record_route,
                pop_routes,
            })
        });
        self.proxy.ctxs.insert(
            id,
            Box::new(ProxyCtx {
                server_key,
                upstream,
                invite,
                branches,
                best: None,
                final_sent: false,
                cancelled: false,
                serial,
            }),
        );
    }

    /// Sends the request on one new branch of context `id` (its index `idx`).
    #[allow(clippy::too_many_arguments)]
    fn start_branch(
        &mut self,
        id: u64,
        idx: usize,
        msg: &Message,
        upstream: Dest,
        ruri: &str,
        dest: Dest,
        record_route: bool,
        pop_routes: usize,
    ) -> Option<Branch> {
        let mf = msg
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        // Signed, so that in-dialog requests are relayed only within this dialog,
        // and naming the caller's flow (see `crate::guard`).
        let token = if record_route {
            self.guard.rr_param(msg, upstream)
        } else {
            String::new()
        };
        let branch = self.new_branch();
        let via = self.our_via(dest.transport, &branch);
        let mut rw = Rewriter::new(msg)
            .request_uri(ruri)
            .pop_values(HeaderName::Route, pop_routes)
            .max_forwards(mf)
            .prepend("Via", via);
        rw = self.strip_our_credentials(msg, rw);
        if record_route {
            let out_rr = format!("<{};lr{token}>", self.our_uri(dest.transport));
            rw = rw.prepend("Record-Route", out_rr);
            if dest.transport != upstream.transport {
                // Double Record-Route when changing transport (RFC 5658).
                let in_rr = format!("<{};lr{token}>", self.our_uri(upstream.transport));
                rw = rw.prepend("Record-Route", in_rr);
            }
        }
        let bytes = rw.build();
        let forwarded = Message::parse(bytes.clone(), &unbounded()).ok()?;
        let key = ClientKey {
            branch: branch.into(),
            method: msg.method().cloned().unwrap_or(Method::Ack),
        };
        self.tx.start_client(
            key.clone(),
            bytes.clone(),
            dest,
            dest.transport.reliable(),
            self.now,
        );
        self.send(dest, bytes);
        Metrics::inc(&self.metrics.requests_forwarded_total);
        self.proxy.by_client.insert(key.clone(), (id, idx));
        Some(Branch {
            key,
            dest,
            forwarded: Some(Box::new(forwarded)),
            done: false,
            provisional: false,
            cancelled: false,
        })
    }

    /// Serial forwarding: after a branch failed with `code`, tries the next
    /// target. Returns whether one was started.
    fn next_serial_target(&mut self, id: u64, code: u16) -> bool {
        if !matches!(code, 503 | 408) {
            return false;
        }
        loop {
            let Some(ctx) = self.proxy.ctxs.get_mut(&id) else {
                return false;
            };
            if ctx.cancelled || ctx.final_sent {
                return false;
            }
            let upstream = ctx.upstream;
            let idx = ctx.branches.len();
            let Some(serial) = ctx.serial.as_mut() else {
                return false;
            };
            let Some((ruri, dest)) = serial.pending.pop_front() else {
                return false;
            };
            let msg = serial.request.clone();
            let (rr, pop) = (serial.record_route, serial.pop_routes);
            debug!(%ruri, code, "serial forwarding: trying the next target");
            if let Some(b) = self.start_branch(id, idx, &msg, upstream, &ruri, dest, rr, pop) {
                if let Some(ctx) = self.proxy.ctxs.get_mut(&id) {
                    ctx.branches.push(b);
                }
                return true;
            }
        }
    }

    /// A response arrived.
    pub(crate) fn on_response(&mut self, resp: Message) {
        let m = self.tx.on_response(&resp, self.now);
        match m {
            ResponseMatch::Stray => {
                // A retransmitted 2xx after the client transaction ended: relay it.
                if let Some(key) = ClientKey::of_response(&resp)
                    && let Some(&(id, _)) = self.proxy.by_client.get(&key)
                    && resp.status().is_some_and(|c| (200..300).contains(&c))
                    && has_upstream_via(&resp)
                    && let Some(ctx) = self.proxy.ctxs.get(&id)
                {
                    let up = ctx.upstream;
                    let bytes = Rewriter::new(&resp)
                        .pop_first_value(HeaderName::Via)
                        .build();
                    self.send(up, bytes);
                    return;
                }
                debug!(status = ?resp.status(), "stray response dropped");
            }
            ResponseMatch::Retransmission(ack) => {
                if let Some((dest, data)) = ack {
                    self.send(dest, data);
                }
            }
            ResponseMatch::Provisional(key) => {
                if self.own_response(&key, &resp) {
                    return;
                }
                if !has_upstream_via(&resp) {
                    debug!("provisional response without a Via to relay to dropped");
                    return;
                }
                self.branch_provisional(&key, &resp);
            }
            ResponseMatch::Final(key, ack) => {
                if let Some((dest, data)) = ack {
                    self.send(dest, data);
                }
                if self.own_response(&key, &resp) {
                    return;
                }
                if !has_upstream_via(&resp) {
                    // Nothing left to relay it to (§16.7 step 3): the branch failed.
                    debug!("final response without a Via to relay to dropped");
                    if let Some(&(id, idx)) = self.proxy.by_client.get(&key) {
                        self.branch_final_code(id, idx, 502, None);
                    }
                    return;
                }
                self.branch_final(&key, resp);
            }
        }
    }

    fn branch_provisional(&mut self, key: &ClientKey, resp: &Message) {
        let Some(&(id, idx)) = self.proxy.by_client.get(key) else {
            return;
        };
        let Some(ctx) = self.proxy.ctxs.get_mut(&id) else {
            return;
        };
        if let Some(b) = ctx.branches.get_mut(idx) {
            b.provisional = true;
        }
        let late_cancel = ctx.cancelled;
        let server_key = ctx.server_key.clone();
        if late_cancel {
            self.cancel_branch(id, idx);
            return;
        }
        if resp.status() == Some(100) {
            return;
        }
        let bytes = Rewriter::new(resp).pop_first_value(HeaderName::Via).build();
        let code = resp.status().unwrap_or(180);
        if let Some(dest) = self.tx.respond(&server_key, code, bytes.clone(), self.now) {
            self.send(dest, bytes);
        }
    }

    fn branch_final(&mut self, key: &ClientKey, resp: Message) {
        let Some(&(id, idx)) = self.proxy.by_client.get(key) else {
            return;
        };
        let code = resp.status().unwrap_or(500);
        self.branch_final_code(id, idx, code, Some(resp));
    }

    /// A branch ended with `code` (`resp` is `None` for a local timeout).
    fn branch_final_code(&mut self, id: u64, idx: usize, code: u16, resp: Option<Message>) {
        let Some(ctx) = self.proxy.ctxs.get_mut(&id) else {
            return;
        };
        if let Some(b) = ctx.branches.get_mut(idx) {
            if b.done {
                return;
            }
            b.done = true;
        }
        let server_key = ctx.server_key.clone();
        let upstream = ctx.upstream;
        let invite = ctx.invite;
        if (200..300).contains(&code) {
            let Some(resp) = resp else { return };
            let bytes = Rewriter::new(&resp)
                .pop_first_value(HeaderName::Via)
                .build();
            let first = !ctx.final_sent;
            ctx.final_sent = true;
            if first {
                if let Some(dest) = self.tx.respond(&server_key, code, bytes.clone(), self.now) {
                    self.send(dest, bytes);
                }
            } else if invite {
                // Every 2xx to an INVITE goes upstream (§16.7 step 5).
                self.send(upstream, bytes);
            }
            if invite {
                self.cancel_pending(id);
            }
        } else {
            let better = match (&ctx.best, &resp) {
                (None, _) => true,
                (Some(b), Some(_)) => rank(code) < rank(b.status().unwrap_or(500)),
                (Some(_), None) => false,
            };
            if better && let Some(r) = resp {
                ctx.best = Some(Box::new(r));
            }
            if (600..700).contains(&code) && invite {
                self.cancel_pending(id);
            }
            if self.next_serial_target(id, code) {
                return;
            }
        }
        self.maybe_finish(id, code);
    }

    fn maybe_finish(&mut self, id: u64, last_code: u16) {
        let Some(ctx) = self.proxy.ctxs.get_mut(&id) else {
            return;
        };
        if ctx.branches.iter().any(|b| !b.done) {
            return;
        }
        if !ctx.final_sent {
            ctx.final_sent = true;
            let server_key = ctx.server_key.clone();
            let best = ctx.best.take();
            match best {
                Some(resp) => {
                    let code = resp.status().unwrap_or(500);
                    let bytes = Rewriter::new(&resp)
                        .pop_first_value(HeaderName::Via)
                        .build();
                    if let Some(dest) = self.tx.respond(&server_key, code, bytes.clone(), self.now)
                    {
                        self.send(dest, bytes);
                    }
                }
                None => {
                    // Every branch timed out: answer 408 ourselves.
                    let code = if last_code == 408 { 408 } else { 500 };
                    self.respond_local(&server_key, code);
                }
            }
        }
        // Only an INVITE context lingers, to relay retransmitted 2xx (which bypass
        // transactions). A non-INVITE one is done: its server transaction answers
        // retransmitted requests, its client transactions absorb retransmitted
        // responses. Keeping it (parsed request and best response) for 32 s held
        // ~2 kB per MESSAGE at the relay rate.
        let invite = self.proxy.ctxs.get(&id).is_some_and(|c| c.invite);
        if invite && let Some(ctx) = self.proxy.ctxs.get_mut(&id) {
            // Relaying a retransmitted 2xx needs only the upstream flow and the
            // branch keys: let the forwarded requests go now, not after LINGER.
            for b in &mut ctx.branches {
                b.forwarded = None;
            }
            ctx.serial = None;
        }
        let at = if invite { self.now + LINGER } else { self.now };
        self.proxy.cleanup.push(Reverse((at, id)));
    }

    /// Sends a locally generated final response in a forwarding context whose
    /// original request we no longer hold parsed: rebuild from a branch.
    fn respond_local(&mut self, server_key: &ServerKey, code: u16) {
        let Some(&id) = self.proxy.by_server.get(server_key) else {
            return;
        };
        let Some(ctx) = self.proxy.ctxs.get(&id) else {
            return;
        };
        let Some(b) = ctx.branches.first() else {
            return;
        };
        let Some(forwarded) = &b.forwarded else {
            return;
        };
        // The forwarded request carries our Via on top: strip it for the upstream copy.
        let upstream_req = Rewriter::new(forwarded)
            .pop_first_value(HeaderName::Via)
            .build();
        let Ok(req) = Message::parse(upstream_req, &unbounded()) else {
            return;
        };
        let key = server_key.clone();
        self.reply(&key, &req, code, |r| r);
    }

    fn cancel_pending(&mut self, id: u64) {
        let Some(ctx) = self.proxy.ctxs.get(&id) else {
            return;
        };
        let pending: Vec<usize> = ctx
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.done && !b.cancelled)
            .map(|(i, _)| i)
            .collect();
        for idx in pending {
            self.cancel_branch(id, idx);
        }
    }

    /// Sends CANCEL on one branch (§9.1: only once a provisional response came;
    /// otherwise it is sent when one arrives).
    fn cancel_branch(&mut self, id: u64, idx: usize) {
        let Some(ctx) = self.proxy.ctxs.get_mut(&id) else {
            return;
        };
        ctx.cancelled = true;
        let Some(b) = ctx.branches.get_mut(idx) else {
            return;
        };
        if b.done || b.cancelled || !b.provisional {
            return;
        }
        b.cancelled = true;
        let Some(f) = &b.forwarded else {
            return;
        };
        let mut cancel = RequestBuilder::new(Method::Cancel, f.request_uri().unwrap_or(""))
            .header("Via", f.top_via_str())
            .header("Max-Forwards", "70")
            .header("From", f.header(HeaderName::From).unwrap_or(""))
            .header("To", f.header(HeaderName::To).unwrap_or(""))
            .header("Call-ID", f.call_id())
            .header("CSeq", format!("{} CANCEL", f.cseq().0));
        for r in f.headers_named(HeaderName::Route) {
            cancel = cancel.header("Route", r);
        }
        let bytes = cancel.build();
        let dest = b.dest;
        let key = ClientKey {
            branch: b.key.branch.clone(),
            method: Method::Cancel,
        };
        self.tx.start_client(
            key,
            bytes.clone(),
            dest,
            dest.transport.reliable(),
            self.now,
        );
        self.send(dest, bytes);
    }

    /// CANCEL from upstream (§16.10).
    pub(crate) fn handle_cancel(&mut self, key: &ServerKey, msg: &Message) {
        let target = ServerKey::cancel_target(msg);
        let Some(&id) = self.proxy.by_server.get(&target) else {
            self.reply(key, msg, 481, |b| b);
            return;
        };
        self.reply(key, msg, 200, |b| b);
        if let Some(ctx) = self.proxy.ctxs.get_mut(&id) {
            ctx.cancelled = true;
        }
        self.cancel_pending(id);
    }

    /// A client transaction timed out (Timer B/F).
    pub(crate) fn client_timeout(&mut self, key: ClientKey) {
        if self.own_timeout(&key) {
            return;
        }
        if key.method == Method::Cancel {
            return;
        }
        if let Some(&(id, idx)) = self.proxy.by_client.get(&key) {
            self.branch_final_code(id, idx, 408, None);
        }
    }

    /// The ACK for a 2xx: forwarded statelessly along the route set.
    pub(crate) fn route_ack(&mut self, msg: &Message, src: Dest) {
        let mut ours = 0;
        let mut next: Option<String> = None;
        for r in msg.header_values(HeaderName::Route) {
            let Ok(n) = NameAddr::parse(r) else { break };
            let us = Uri::parse(n.uri).is_ok_and(|u| self.is_us(&u));
            if us && next.is_none() {
                ours += 1;
            } else {
                next = Some(n.uri.to_owned());
                break;
            }
        }
        // Only within a dialog this server record-routed, or from a trusted peer
        // (see `crate::guard`): an ACK cannot be challenged. This also drops the
        // ACK for a final response sent statelessly.
        if !self.guard.has_signed_route(msg, ours) && !self.guard.is_trusted(src.addr) {
            debug!("ACK outside a dialog of this server dropped");
            return;
        }
        let target = next.or_else(|| msg.request_uri().map(str::to_owned));
        let Some(target) = target else { return };
        if let Ok(u) = Uri::parse(&target)
            && self.is_us(&u)
        {
            return; // an ACK for a response we generated ourselves
        }
        let Some(dest) = self.dest_for_uri(&target) else {
            debug!(%target, "no route for ACK");
            return;
        };
        let branch = self.new_branch();
        let via = self.our_via(dest.transport, &branch);
        let mf = msg
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        let rw = Rewriter::new(msg)
            .pop_values(HeaderName::Route, ours)
            .max_forwards(mf)
            .prepend("Via", via);
        let bytes = self.strip_our_credentials(msg, rw).build();
        self.send(dest, bytes);
    }

    /// Proxy-Authorization values for our realm are consumed here and never
    /// forwarded (RFC 3261 §22.3): the next hop could otherwise attack the
    /// caller's password offline. Values for other realms pass unchanged.
    fn strip_our_credentials<'a>(&self, msg: &'a Message, rw: Rewriter<'a>) -> Rewriter<'a> {
        let mut ours = false;
        let mut keep = Vec::new();
        for v in msg.headers_named(HeaderName::ProxyAuthorization) {
            let ours_here = confab_auth::params::parse(v).is_ok_and(|p| {
                p.get("realm")
                    .is_some_and(|r| r.eq_ignore_ascii_case(&self.cfg.domain))
            });
            if ours_here {
                ours = true;
            } else {
                keep.push(v);
            }
        }
        if !ours {
            return rw;
        }
        let mut rw = rw.remove(HeaderName::ProxyAuthorization);
        for v in keep {
            rw = rw.append("Proxy-Authorization", v);
        }
        rw
    }

    /// Timer C fired for a forwarding context: cancel the branches still
    /// proceeding; give up on those already cancelled.
    fn timer_c(&mut self, id: u64) {
        let Some(ctx) = self.proxy.ctxs.get(&id) else {
            return;
        };
        let pending: Vec<(usize, bool, ClientKey)> = ctx
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.done)
            .map(|(i, b)| (i, b.cancelled || !b.provisional, b.key.clone()))
            .collect();
        let mut again = false;
        for (idx, give_up, key) in pending {
            if give_up {
                debug!(branch = %key.branch, "INVITE branch never answered: given up");
                self.tx.forget_client(&key);
                self.branch_final_code(id, idx, 408, None);
            } else {
                self.cancel_branch(id, idx);
                again = true;
            }
        }
        if again {
            self.proxy.timer_c.push(Reverse((self.now + GIVE_UP, id)));
        }
    }

    pub(crate) fn proxy_tick(&mut self) {
        while let Some(Reverse((at, id))) = self.proxy.timer_c.peek().copied() {
            if at > self.now {
                break;
            }
            self.proxy.timer_c.pop();
            self.timer_c(id);
        }
        while let Some(Reverse((at, id))) = self.proxy.cleanup.peek().copied() {
            if at > self.now {
                break;
            }
            self.proxy.cleanup.pop();
            if let Some(ctx) = self.proxy.ctxs.remove(&id) {
                // A request received again after its transaction ended has a newer
                // context under the same key: leave that one's entry alone.
                if self.proxy.by_server.get(&ctx.server_key) == Some(&id) {
                    self.proxy.by_server.remove(&ctx.server_key);
                }
                for b in ctx.branches {
                    self.proxy.by_client.remove(&b.key);
                }
            }
        }
    }
}

/// Whether a response still has a (well-formed) Via below ours, i.e.
/// somewhere to go upstream.
fn has_upstream_via(resp: &Message) -> bool {
    resp.header_values(HeaderName::Via)
        .nth(1)
        .is_some_and(|v| confab_sip::Via::parse(v).is_ok())
}

fn unbounded() -> Limits {
    Limits {
        max_message_bytes: usize::MAX,
        max_headers: usize::MAX,
    }
}
