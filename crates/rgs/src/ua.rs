//! The Response Group service's SIP agent and workflow machine (sans-IO).
//!
//! Each call the front end sends here (a workflow's SIP URI or number) is
//! answered (the caller leg: a UAS dialog, record-routed through the front end),
//! walked through its workflow (welcome prompt, business hours, a one- or
//! two-level menu answered with RFC 4733 digits, a queue with music), and offered
//! to agents per the agent group's routing method: every offer is a new INVITE
//! from this service to the agent through the front end (an agent leg, a UAC
//! dialog). The first agent to answer is connected: the runtime relays RTP
//! between the two legs (see docs/decisions.md, "Response Groups relay RTP").
//! Overflow and timeout actions hang up (after a prompt) or forward the caller
//! (a leg to the target, connected the same way).
//!
//! The runtime (`crate::service`) owns sockets: it opens RTP ports
//! ([`Out::OpenCaller`], [`Out::OpenLeg`], answered with
//! [`RgsUa::caller_ready`] / [`RgsUa::leg_ready`]), plays prompts ([`Out::Play`],
//! reporting the end of one that does not loop with [`RgsUa::played`]), reports
//! digits ([`RgsUa::digit`]) and bridges ([`Out::Bridge`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_media::sdp::{self, Negotiated};
use confab_sip::{
    HeaderName, Limits, Message, Method, NameAddr, RequestBuilder, ResponseBuilder, Uri,
};
use time::OffsetDateTime;
use tracing::debug;

use crate::model::{Action, Menu, PromptSpec, RgsConfig, Workflow};
use crate::routing::{AgentView, batches};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const GIVE_UP: Duration = Duration::from_secs(32);
/// With no agent free, the queue looks again after this.
const RETRY: Duration = Duration::from_secs(2);
/// A menu with no answer is played again after this.
const MENU_REPLAY: Duration = Duration::from_secs(6);
/// How long a forward target rings.
const FORWARD_RING: Duration = Duration::from_secs(30);
/// Calls at once.
pub const MAX_CALLS: usize = 2048;
/// Queue-to-queue actions followed for one call.
const MAX_HOPS: u8 = 4;

pub type CallId = u64;
pub type LegId = u64;

/// Where the agent is reached and what it calls itself.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Our SIP address (Via, Contact).
    pub sip: SocketAddr,
    /// The front end: agent legs are sent there.
    pub proxy: SocketAddr,
    pub domain: String,
}

/// Work for the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Send {
        to: SocketAddr,
        data: Bytes,
    },
    /// Open the caller's RTP port, then [`RgsUa::caller_ready`] (or `fail`).
    OpenCaller {
        call: CallId,
        negotiated: Negotiated,
    },
    /// Play to the caller (replacing what plays); `None`: silence. A prompt that
    /// does not loop is reported with [`RgsUa::played`].
    Play {
        call: CallId,
        prompt: Option<PromptSpec>,
        looped: bool,
    },
    /// Open an RTP port for an agent leg, then [`RgsUa::leg_ready`].
    OpenLeg {
        call: CallId,
        leg: LegId,
    },
    /// Connect the caller and the leg: stop playing, relay RTP both ways
    /// (`remote`: where the agent receives RTP).
    Bridge {
        call: CallId,
        leg: LegId,
        remote: SocketAddr,
    },
    /// The leg is over: close its port.
    CloseLeg {
        leg: LegId,
    },
    /// The call is over: stop playing, close its ports.
    Close {
        call: CallId,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Opening,
    Answered,
    Welcome,
    /// Waiting for a digit of `menu` (`level` 1 or 2).
    Menu {
        menu: Menu,
        replay_at: Option<Instant>,
    },
    Queued {
        queue: String,
        deadline: Option<Instant>,
        /// Offers still to make (each a set of agents offered at once).
        pending: VecDeque<Vec<String>>,
        retry_at: Option<Instant>,
    },
    Forwarding,
    Connected {
        leg: LegId,
    },
    /// A prompt before hanging up.
    Closing,
    Ending,
}

struct Call {
    key: String,
    phase: Phase,
    invite: Message,
    src: SocketAddr,
    tag: String,
    workflow: Workflow,
    target: String,
    routes: Vec<String>,
    cseq: u32,
    negotiated: Option<Negotiated>,
    refused: bool,
    hops: u8,
    /// Legs ringing for this call.
    legs: Vec<LegId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    Opening,
    Inviting,
    Ringing,
    Cancelling,
    Up,
    Ending,
}

struct Leg {
    call: CallId,
    /// `user@domain` of an agent, or the forward target URI.
    agent: String,
    ruri: String,
    call_id: String,
    tag: String,
    branch: String,
    cseq: u32,
    state: LegState,
    invite: Option<Bytes>,
    alert_until: Instant,
    to_header: String,
    remote_target: String,
    routes: Vec<String>,
    local: Option<SocketAddr>,
    is_agent: bool,
}

struct Retransmit {
    /// The call or the leg (leg ids are odd-tagged by `LEG_BIT`).
    owner: u64,
    cseq: u32,
    method: Method,
    to: SocketAddr,
    data: Bytes,
    next: Instant,
    interval: Duration,
    until: Instant,
    /// Our request (stopped by a response) or our answer to an INVITE
    /// (stopped by the ACK).
    ours: bool,
}

const LEG_BIT: u64 = 1 << 62;

#[derive(Debug, Clone, Default)]
struct AgentState {
    busy: bool,
    idle_since_ms: i64,
}

/// See the module documentation.
pub struct RgsUa {
    cfg: UaConfig,
    rgs: Arc<RgsConfig>,
    calls: HashMap<CallId, Call>,
    by_key: HashMap<String, CallId>,
    legs: HashMap<LegId, Leg>,
    leg_by_call_id: HashMap<String, LegId>,
    retransmits: Vec<Retransmit>,
    out: Vec<Out>,
    agents: HashMap<String, AgentState>,
    cursors: HashMap<String, usize>,
    next_id: u64,
    rng: u64,
    wall_ms: i64,
}

fn dialog_key(call_id: &str, tag: &str) -> String {
    format!("{call_id}\u{0}{tag}")
}

fn ruri_aor(ruri: &str) -> Option<String> {
    let uri = Uri::parse(ruri).ok()?;
    let user = uri.user_unescaped()?.into_owned();
    Some(format!(
        "{}@{}",
        user.to_ascii_lowercase(),
        uri.host.to_ascii_lowercase()
    ))
}

fn wall_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl RgsUa {
    pub fn new(cfg: UaConfig, rgs: Arc<RgsConfig>, seed: u64) -> RgsUa {
        RgsUa {
            cfg,
            rgs,
            calls: HashMap::new(),
            by_key: HashMap::new(),
            legs: HashMap::new(),
            leg_by_call_id: HashMap::new(),
            retransmits: Vec::new(),
            out: Vec::new(),
            agents: HashMap::new(),
            cursors: HashMap::new(),
            next_id: 1,
            rng: seed | 1,
            wall_ms: 0,
        }
    }

    /// New configuration (calls in progress keep their workflow).
    pub fn set_config(&mut self, rgs: Arc<RgsConfig>) {
        self.rgs = rgs;
    }

    /// The wall clock (Unix milliseconds): business hours, idle times.
    pub fn set_wall_clock(&mut self, unix_ms: i64) {
        self.wall_ms = unix_ms;
    }

    pub fn take_output(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// Calls in progress.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn send(&mut self, to: SocketAddr, data: Bytes) {
        self.out.push(Out::Send { to, data });
    }

    /// A datagram from the front end.
    pub fn on_datagram(&mut self, data: Bytes, src: SocketAddr, now: Instant) {
        let msg = match Message::parse(data, &Limits::default()) {
            Ok(m) => m,
            Err(e) => {
                debug!(%src, reason = %e.reason, "rgs: malformed SIP dropped");
                return;
            }
        };
        if let Some(&leg) = self.leg_by_call_id.get(msg.call_id()) {
            if msg.is_request() {
                self.on_leg_request(leg, &msg, src, now);
            } else {
                self.on_leg_response(leg, &msg, now);
            }
        } else if msg.is_request() {
            self.on_request(msg, src, now);
        } else {
            self.on_caller_response(&msg, now);
        }
    }

    fn reply(&mut self, req: &Message, src: SocketAddr, code: u16, reason: &str) {
        let data = ResponseBuilder::new(req, code)
            .reason(reason)
            .to_tag(format!("{:x}", self.random()))
            .build();
        self.send(src, data);
    }

    fn on_request(&mut self, msg: Message, src: SocketAddr, now: Instant) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        let key = dialog_key(msg.call_id(), msg.from_tag().unwrap_or(""));
        let existing = self.by_key.get(&key).copied();
        match (method, existing) {
            (Method::Invite, None) if msg.to_tag().is_none() => self.on_invite(msg, src, key),
            (Method::Invite, Some(id)) => {
                let same = self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.invite.cseq().0 == msg.cseq().0);
                if same && msg.to_tag().is_none() {
                    return;
                }
                self.reply(&msg, src, 488, "Not Acceptable Here (no re-negotiation)");
            }
            (Method::Ack, Some(id)) => self.on_ack(id, msg.cseq().0, now),
            (Method::Ack, None) => {}
            (Method::Bye, Some(id)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
                debug!(call = id, "rgs: caller hung up");
                self.end_call(id, now);
            }
            (Method::Cancel, Some(id)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.phase == Phase::Opening)
                {
                    self.refuse(id, 487, "Request Terminated", now);
                }
            }
            (Method::Options | Method::Info | Method::Notify | Method::Update, Some(_)) => {
                let data = ResponseBuilder::new(&msg, 200).build();
                self.send(src, data);
            }
            (_, None) => self.reply(&msg, src, 481, "Call/Transaction Does Not Exist"),
            (_, Some(_)) => self.reply(&msg, src, 405, "Method Not Allowed"),
        }
    }

    fn on_invite(&mut self, msg: Message, src: SocketAddr, key: String) {
        if self.calls.len() >= MAX_CALLS {
            self.reply(&msg, src, 503, "Response Group service busy");
            return;
        }
        let aor = msg.request_uri().and_then(ruri_aor);
        let Some(workflow) = aor
            .as_deref()
            .and_then(|a| self.rgs.workflow_for(a))
            .cloned()
        else {
            self.reply(&msg, src, 404, "No workflow at this address");
            return;
        };
        let offer = std::str::from_utf8(msg.body()).unwrap_or("");
        let negotiated = match sdp::negotiate(offer) {
            Ok(n) => n,
            Err(e) => {
                let reason = format!("Not Acceptable Here ({e})");
                self.reply(&msg, src, 488, &reason);
                return;
            }
        };
        let target = msg
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok().map(|n| n.uri.to_owned()));
        let Some(target) = target else {
            self.reply(&msg, src, 400, "Missing Contact");
            return;
        };
        let routes: Vec<String> = msg
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        let tag = format!("{:x}", self.random());
        debug!(call = id, workflow = %workflow.name, "rgs: answering");
        self.out.push(Out::OpenCaller {
            call: id,
            negotiated: negotiated.clone(),
        });
        self.by_key.insert(key.clone(), id);
        self.calls.insert(
            id,
            Call {
                key,
                phase: Phase::Opening,
                invite: msg,
                src,
                tag,
                workflow,
                target,
                routes,
                cseq: 0,
                negotiated: Some(negotiated),
                refused: false,
                hops: 0,
                legs: Vec::new(),
            },
        );
    }

    /// The caller's RTP port is open at `local`: answer.
    pub fn caller_ready(&mut self, call: CallId, local: SocketAddr, now: Instant) {
        let session = self.random() >> 16;
        let sip = self.cfg.sip;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Opening {
            return;
        }
        let Some(n) = &c.negotiated else {
            return;
        };
        c.phase = Phase::Answered;
        let body = n.answer(local, session);
        let data = ResponseBuilder::new(&c.invite, 200)
            .to_tag(c.tag.clone())
            .copy_record_route()
            .header("Contact", format!("<sip:rgs@{sip};transport=udp>"))
            .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY")
            .body("application/sdp", body)
            .build();
        let (to, cseq) = (c.src, c.invite.cseq().0);
        self.send(to, data.clone());
        self.retransmit(call, cseq, Method::Invite, to, data, now, false);
    }

    /// No RTP port for the caller: refuse.
    pub fn fail(&mut self, call: CallId, now: Instant) {
        self.refuse(call, 503, "Media unavailable", now);
    }

    fn refuse(&mut self, call: CallId, code: u16, reason: &str, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase != Phase::Opening {
            return;
        }
        c.phase = Phase::Answered;
        c.refused = true;
        let data = ResponseBuilder::new(&c.invite, code)
            .reason(reason)
            .to_tag(c.tag.clone())
            .build();
        let (to, cseq) = (c.src, c.invite.cseq().0);
        self.out.push(Out::Close { call });
        self.send(to, data.clone());
        self.retransmit(call, cseq, Method::Invite, to, data, now, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn retransmit(
        &mut self,
        owner: u64,
        cseq: u32,
        method: Method,
        to: SocketAddr,
        data: Bytes,
        now: Instant,
        ours: bool,
    ) {
        self.retransmits.push(Retransmit {
            owner,
            cseq,
            method,
            to,
            data,
            next: now + T1,
            interval: T1,
            until: now + GIVE_UP,
            ours,
        });
    }

    fn on_ack(&mut self, id: CallId, cseq: u32, now: Instant) {
        self.retransmits
            .retain(|r| !(r.owner == id && r.cseq == cseq && !r.ours));
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.refused {
            self.forget_call(id);
            return;
        }
        if c.phase != Phase::Answered {
            return;
        }
        let open = c.workflow.is_open(wall_time(self.wall_ms));
        if !open {
            debug!(call = id, "rgs: out of business hours");
            let action = c.workflow.out_of_hours.clone();
            self.apply(id, action, now);
            return;
        }
        match c.workflow.welcome.clone() {
            Some(p) => {
                c.phase = Phase::Welcome;
                self.out.push(Out::Play {
                    call: id,
                    prompt: Some(p),
                    looped: false,
                });
            }
            None => self.after_welcome(id, now),
        }
    }

    fn after_welcome(&mut self, id: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        match (c.workflow.menu.clone(), c.workflow.queue.clone()) {
            (Some(menu), _) => self.enter_menu(id, menu),
            (None, Some(q)) => self.enter_queue(id, &q, now),
            (None, None) => self.hang_up(id, now),
        }
    }

    fn enter_menu(&mut self, id: CallId, menu: Menu) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        self.out.push(Out::Play {
            call: id,
            prompt: Some(menu.prompt.clone()),
            looped: false,
        });
        c.phase = Phase::Menu {
            menu,
            replay_at: None,
        };
    }

    /// A prompt that does not loop ended.
    pub fn played(&mut self, call: CallId, now: Instant) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match &mut c.phase {
            Phase::Welcome => self.after_welcome(call, now),
            Phase::Menu { replay_at, .. } => {
                *replay_at = Some(now + MENU_REPLAY);
                self.out.push(Out::Play {
                    call,
                    prompt: None,
                    looped: true,
                });
            }
            Phase::Closing => self.hang_up(call, now),
            _ => {}
        }
    }

    /// The caller pressed a key (RFC 4733).
    pub fn digit(&mut self, call: CallId, digit: char, now: Instant) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        debug!(call, %digit, "rgs: digit");
        let menu = match &c.phase {
            // Callers may answer the menu during the welcome.
            Phase::Welcome => match c.workflow.menu.clone() {
                Some(m) => m,
                None => return,
            },
            Phase::Menu { menu, .. } => menu.clone(),
            _ => return,
        };
        match menu.options.iter().find(|o| o.digit == digit) {
            Some(o) => match (&o.queue, &o.submenu) {
                (Some(q), _) => {
                    let q = q.clone();
                    self.enter_queue(call, &q, now);
                }
                (None, Some(sub)) => {
                    let sub = sub.clone();
                    self.enter_menu(call, sub);
                }
                (None, None) => {}
            },
            None => self.enter_menu(call, menu),
        }
    }

    fn apply(&mut self, id: CallId, action: Action, now: Instant) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        match action {
            Action::Disconnect { prompt: Some(p) } => {
                c.phase = Phase::Closing;
                self.out.push(Out::Play {
                    call: id,
                    prompt: Some(p),
                    looped: false,
                });
            }
            Action::Disconnect { prompt: None } => self.hang_up(id, now),
            Action::Queue { queue } => {
                c.hops += 1;
                if c.hops > MAX_HOPS {
                    self.hang_up(id, now);
                } else {
                    self.enter_queue(id, &queue, now);
                }
            }
            Action::Forward { target } => {
                c.phase = Phase::Forwarding;
                let ruri = match target.strip_prefix("tel:") {
                    Some(n) => format!("sip:{n}@{};user=phone", self.cfg.domain),
                    None => target.clone(),
                };
                debug!(call = id, %ruri, "rgs: forwarding the caller");
                self.open_leg(id, target, ruri, false, now + FORWARD_RING);
            }
        }
    }

    fn enter_queue(&mut self, id: CallId, queue: &str, now: Instant) {
        let Some(q) = self.rgs.queue(queue).cloned() else {
            self.hang_up(id, now);
            return;
        };
        let waiting = self
            .calls
            .values()
            .filter(|c| matches!(&c.phase, Phase::Queued { queue: n, .. } if n == queue))
            .count();
        let any_agent = q.groups.iter().any(|g| {
            self.rgs
                .group(g)
                .is_some_and(|g| g.agents.iter().any(|a| self.rgs.signed_in(g, a).is_some()))
        });
        let over = q
            .overflow_threshold
            .is_some_and(|t| waiting >= usize::try_from(t).unwrap_or(usize::MAX));
        if over || !any_agent {
            debug!(call = id, %queue, waiting, any_agent, "rgs: queue overflows");
            self.apply(id, q.overflow_action.clone(), now);
            return;
        }
        let music = self.calls.get(&id).and_then(|c| c.workflow.music.clone());
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        debug!(call = id, %queue, "rgs: queued");
        c.phase = Phase::Queued {
            queue: queue.to_owned(),
            deadline: q
                .timeout_secs
                .map(|s| now + Duration::from_secs(u64::from(s))),
            pending: VecDeque::new(),
            retry_at: None,
        };
        self.out.push(Out::Play {
            call: id,
            prompt: music,
            looped: true,
        });
        self.offer_next(id, now);
    }

    fn agent_views(&self, agents: &[String], group: &crate::model::AgentGroup) -> Vec<AgentView> {
        agents
            .iter()
            .map(|a| {
                let st = self.agents.get(a);
                let signed = self.rgs.signed_in(group, a);
                AgentView {
                    agent: a.clone(),
                    signed_in: signed.is_some(),
                    busy: st.is_some_and(|s| s.busy),
                    idle_since_ms: signed.unwrap_or(0).max(st.map_or(0, |s| s.idle_since_ms)),
                }
            })
            .collect()
    }

    /// Offers a queued call to the next agents when nothing is ringing.
    fn offer_next(&mut self, id: CallId, now: Instant) {
        let Some(c) = self.calls.get(&id) else {
            return;
        };
        if !c.legs.is_empty() {
            return;
        }
        let Phase::Queued { queue, pending, .. } = &c.phase else {
            return;
        };
        let queue = queue.clone();
        let mut pending = pending.clone();
        if pending.is_empty() {
            let Some(q) = self.rgs.queue(&queue).cloned() else {
                return;
            };
            for g in &q.groups {
                let Some(group) = self.rgs.group(g).cloned() else {
                    continue;
                };
                let views = self.agent_views(&group.agents, &group);
                let cursor = self.cursors.entry(group.name.clone()).or_insert(usize::MAX);
                if *cursor == usize::MAX {
                    *cursor = group.agents.len().saturating_sub(1);
                }
                for b in batches(&group, &views, cursor) {
                    pending.push_back(b);
                }
            }
        }
        let alert = self
            .rgs
            .queue(&queue)
            .and_then(|q| q.groups.first().cloned())
            .and_then(|g| self.rgs.group(&g).map(|g| g.alert_secs))
            .unwrap_or(20);
        let batch = pending.pop_front();
        if let Some(Call {
            phase:
                Phase::Queued {
                    pending: p,
                    retry_at,
                    ..
                },
            ..
        }) = self.calls.get_mut(&id)
        {
            *p = pending;
            *retry_at = batch.is_none().then_some(now + RETRY);
        }
        let Some(batch) = batch else {
            return;
        };
        for agent in batch {
            debug!(call = id, %agent, "rgs: offering the call");
            let ruri = format!("sip:{agent}");
            self.agents.entry(agent.clone()).or_default().busy = true;
            self.open_leg(
                id,
                agent,
                ruri,
                true,
                now + Duration::from_secs(u64::from(alert)),
            );
        }
    }

    fn open_leg(
        &mut self,
        call: CallId,
        agent: String,
        ruri: String,
        is_agent: bool,
        until: Instant,
    ) {
        let leg = LEG_BIT | self.next_id;
        self.next_id += 1;
        let call_id = format!("rgs-{:x}-{:x}", self.random(), leg);
        let tag = format!("{:x}", self.random());
        self.leg_by_call_id.insert(call_id.clone(), leg);
        self.legs.insert(
            leg,
            Leg {
                call,
                agent,
                ruri,
                call_id,
                tag,
                branch: String::new(),
                cseq: 1,
                state: LegState::Opening,
                invite: None,
                alert_until: until,
                to_header: String::new(),
                remote_target: String::new(),
                routes: Vec::new(),
                local: None,
                is_agent,
            },
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.legs.push(leg);
        }
        self.out.push(Out::OpenLeg { call, leg });
    }

    /// The leg's RTP port is open at `local`: send the INVITE.
    pub fn leg_ready(&mut self, leg: LegId, local: SocketAddr, now: Instant) {
        let session = self.random() >> 16;
        let branch = format!("z9hG4bK{:x}", self.random());
        let (sip, proxy) = (self.cfg.sip, self.cfg.proxy);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Opening {
            return;
        }
        let Some(c) = self.calls.get(&l.call) else {
            return;
        };
        let Some(n) = &c.negotiated else {
            return;
        };
        // Offer the caller's codec (and telephone-event) only: the relay does not
        // transcode.
        let body = offer_sdp(n, local, session);
        let from_name = c.workflow.name.clone();
        let from = format!("\"{from_name}\" <sip:{}>;tag={}", c.workflow.uri, l.tag);
        let to = format!("<{}>", l.ruri);
        let data = RequestBuilder::new(Method::Invite, l.ruri.clone())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", format!("<sip:rgs@{sip};transport=udp>"))
            .header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY")
            .body("application/sdp", body)
            .build();
        l.branch = branch;
        l.state = LegState::Inviting;
        l.invite = Some(data.clone());
        l.local = Some(local);
        l.to_header = to;
        self.send(proxy, data.clone());
        self.retransmit(leg, 1, Method::Invite, proxy, data, now, true);
    }

    fn leg_ack_or_cancel(&self, leg: LegId, method: Method, to_header: &str) -> Bytes {
        let sip = self.cfg.sip;
        let Some(l) = self.legs.get(&leg) else {
            return Bytes::new();
        };
        let from = format!(
            "<sip:{}>;tag={}",
            self.calls
                .get(&l.call)
                .map_or("rgs", |c| c.workflow.uri.as_str()),
            l.tag
        );
        RequestBuilder::new(method.clone(), l.ruri.clone())
            .header(
                "Via",
                format!("SIP/2.0/UDP {sip};branch={};rport", l.branch),
            )
            .header("Max-Forwards", "70")
            .header("From", from)
            .header("To", to_header.to_owned())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", format!("1 {method}"))
            .build()
    }

    /// An in-dialog request on an established leg (ACK of a 2xx, BYE).
    fn leg_request(&mut self, leg: LegId, method: Method, cseq: u32, now: Instant) {
        let branch = format!("z9hG4bK{:x}", self.random());
        let (sip, proxy) = (self.cfg.sip, self.cfg.proxy);
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        let from = format!(
            "<sip:{}>;tag={}",
            self.calls
                .get(&l.call)
                .map_or("rgs", |c| c.workflow.uri.as_str()),
            l.tag
        );
        let mut b = RequestBuilder::new(method.clone(), l.remote_target.clone())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70");
        for r in &l.routes {
            b = b.header("Route", r.clone());
        }
        let data = b
            .header("From", from)
            .header("To", l.to_header.clone())
            .header("Call-ID", l.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"))
            .header("Contact", format!("<sip:rgs@{sip};transport=udp>"))
            .build();
        self.send(proxy, data.clone());
        if method != Method::Ack {
            self.retransmit(leg, cseq, method, proxy, data, now, true);
        }
    }

    fn on_leg_response(&mut self, leg: LegId, msg: &Message, now: Instant) {
        let (cseq, method) = msg.cseq();
        let method = method.clone();
        let status = msg.status().unwrap_or(0);
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if method == Method::Invite {
            self.retransmits
                .retain(|r| !(r.owner == leg && r.method == Method::Invite && r.ours));
            if status < 200 {
                if l.state == LegState::Inviting {
                    l.state = LegState::Ringing;
                }
                return;
            }
            let to_header = msg.header(HeaderName::To).unwrap_or("").to_owned();
            if status >= 300 {
                debug!(leg, status, agent = %l.agent, "rgs: offer refused");
                let ack = self.leg_ack_or_cancel(leg, Method::Ack, &to_header);
                self.send(self.cfg.proxy, ack);
                self.leg_failed(leg, now);
                return;
            }
            // 2xx: a dialog. A retransmitted 2xx gets the ACK again.
            let first = matches!(
                l.state,
                LegState::Inviting | LegState::Ringing | LegState::Cancelling
            );
            l.to_header = to_header;
            if first {
                l.remote_target = msg
                    .header(HeaderName::Contact)
                    .and_then(|c| NameAddr::parse(c).ok().map(|n| n.uri.to_owned()))
                    .unwrap_or_else(|| l.ruri.clone());
                l.routes = msg
                    .header_values(HeaderName::RecordRoute)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            }
            let was = l.state;
            l.state = LegState::Up;
            self.leg_request(leg, Method::Ack, cseq, now);
            if !first {
                return;
            }
            let answer = std::str::from_utf8(msg.body()).unwrap_or("");
            let remote = sdp::negotiate(answer).ok().map(|n| n.remote);
            let call = self.legs.get(&leg).map(|l| l.call).unwrap_or(0);
            let connectable = was != LegState::Cancelling
                && self
                    .calls
                    .get(&call)
                    .is_some_and(|c| matches!(c.phase, Phase::Queued { .. } | Phase::Forwarding));
            match (remote, connectable) {
                (Some(remote), true) => self.connect(call, leg, remote, now),
                _ => self.bye_leg(leg, now),
            }
            return;
        }
        self.retransmits
            .retain(|r| !(r.owner == leg && r.ours && r.cseq == cseq && r.method == method));
        if method == Method::Bye {
            self.forget_leg(leg);
        }
    }

    fn connect(&mut self, call: CallId, leg: LegId, remote: SocketAddr, now: Instant) {
        let others: Vec<LegId> = self
            .calls
            .get(&call)
            .map(|c| c.legs.iter().copied().filter(|&l| l != leg).collect())
            .unwrap_or_default();
        for o in others {
            self.cancel_leg(o, now);
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.phase = Phase::Connected { leg };
            c.legs = vec![leg];
        }
        let agent = self
            .legs
            .get(&leg)
            .map(|l| l.agent.clone())
            .unwrap_or_default();
        debug!(call, leg, %agent, "rgs: connected");
        self.out.push(Out::Bridge { call, leg, remote });
    }

    fn cancel_leg(&mut self, leg: LegId, now: Instant) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        match l.state {
            LegState::Inviting | LegState::Ringing => {
                l.state = LegState::Cancelling;
                let to = l.to_header.clone();
                let data = self.leg_ack_or_cancel(leg, Method::Cancel, &to);
                self.send(self.cfg.proxy, data);
                // The 487 ends it; give up on it after a while in any case.
                self.retransmits
                    .retain(|r| !(r.owner == leg && r.method == Method::Invite));
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.alert_until = now + GIVE_UP;
                }
                self.release_agent(leg, false);
                self.detach(leg);
            }
            LegState::Opening => {
                self.release_agent(leg, false);
                self.detach(leg);
                self.forget_leg(leg);
            }
            LegState::Up => self.bye_leg(leg, now),
            LegState::Cancelling | LegState::Ending => {}
        }
    }

    fn bye_leg(&mut self, leg: LegId, now: Instant) {
        let Some(l) = self.legs.get_mut(&leg) else {
            return;
        };
        if l.state != LegState::Up {
            return;
        }
        l.state = LegState::Ending;
        l.cseq += 1;
        let cseq = l.cseq;
        self.leg_request(leg, Method::Bye, cseq, now);
        self.release_agent(leg, true);
        self.detach(leg);
        self.out.push(Out::CloseLeg { leg });
    }

    /// Removes the leg from its call's ringing set (the leg itself lives on
    /// until its transaction ends).
    fn detach(&mut self, leg: LegId) {
        let Some(call) = self.legs.get(&leg).map(|l| l.call) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.legs.retain(|&l| l != leg);
        }
    }

    fn release_agent(&mut self, leg: LegId, talked: bool) {
        let Some(l) = self.legs.get(&leg) else {
            return;
        };
        if !l.is_agent {
            return;
        }
        let wall = self.wall_ms;
        let st = self.agents.entry(l.agent.clone()).or_default();
        st.busy = false;
        if talked {
            st.idle_since_ms = wall;
        }
    }

    /// An offer failed (refused, timed out): the next one.
    fn leg_failed(&mut self, leg: LegId, now: Instant) {
        let Some(call) = self.legs.get(&leg).map(|l| l.call) else {
            return;
        };
        self.release_agent(leg, false);
        self.detach(leg);
        self.forget_leg(leg);
        self.out.push(Out::CloseLeg { leg });
        let phase = self.calls.get(&call).map(|c| c.phase.clone());
        match phase {
            Some(Phase::Queued { .. }) => self.offer_next(call, now),
            Some(Phase::Forwarding) => self.hang_up(call, now),
            _ => {}
        }
    }

    fn on_leg_request(&mut self, leg: LegId, msg: &Message, src: SocketAddr, now: Instant) {
        match msg.method() {
            Some(Method::Bye) => {
                let data = ResponseBuilder::new(msg, 200).build();
                self.send(src, data);
                let call = self.legs.get(&leg).map(|l| l.call);
                self.release_agent(leg, true);
                if let Some(l) = self.legs.get_mut(&leg) {
                    l.state = LegState::Ending;
                }
                self.detach(leg);
                self.forget_leg(leg);
                self.out.push(Out::CloseLeg { leg });
                if let Some(call) = call {
                    debug!(call, leg, "rgs: agent hung up");
                    if matches!(
                        self.calls.get(&call).map(|c| &c.phase),
                        Some(Phase::Connected { .. })
                    ) {
                        self.hang_up(call, now);
                    }
                }
            }
            Some(Method::Ack) => {}
            Some(Method::Options | Method::Info | Method::Notify | Method::Update) => {
                let data = ResponseBuilder::new(msg, 200).build();
                self.send(src, data);
            }
            Some(Method::Invite) => {
                self.reply(msg, src, 488, "Not Acceptable Here (no re-negotiation)")
            }
            _ => self.reply(msg, src, 405, "Method Not Allowed"),
        }
    }

    fn hang_up(&mut self, call: CallId, now: Instant) {
        let legs: Vec<LegId> = self
            .calls
            .get(&call)
            .map(|c| c.legs.clone())
            .unwrap_or_default();
        for l in legs {
            self.cancel_leg(l, now);
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.phase == Phase::Ending {
            return;
        }
        c.phase = Phase::Ending;
        self.caller_request(call, Method::Bye, now);
        self.out.push(Out::Close { call });
    }

    fn caller_request(&mut self, call: CallId, method: Method, now: Instant) {
        let branch = format!("z9hG4bK{:x}", self.random());
        let sip = self.cfg.sip;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.cseq += 1;
        let inv = &c.invite;
        let to_header = inv.header(HeaderName::From).unwrap_or("").to_owned();
        let from_header = format!("{};tag={}", inv.header(HeaderName::To).unwrap_or(""), c.tag);
        let mut b = RequestBuilder::new(method.clone(), c.target.clone())
            .header("Via", format!("SIP/2.0/UDP {sip};branch={branch};rport"))
            .header("Max-Forwards", "70");
        for r in &c.routes {
            b = b.header("Route", r.clone());
        }
        let data = b
            .header("From", from_header)
            .header("To", to_header)
            .header("Call-ID", inv.call_id().to_owned())
            .header("CSeq", format!("{} {method}", c.cseq))
            .header("Contact", format!("<sip:rgs@{sip};transport=udp>"))
            .build();
        let (to, cseq) = (c.src, c.cseq);
        self.send(to, data.clone());
        self.retransmit(call, cseq, method, to, data, now, true);
    }

    fn on_caller_response(&mut self, msg: &Message, _now: Instant) {
        let key = dialog_key(msg.call_id(), msg.to_tag().unwrap_or(""));
        let Some(&id) = self.by_key.get(&key) else {
            return;
        };
        let (cseq, method) = msg.cseq();
        if msg.status().unwrap_or(0) < 200 {
            return;
        }
        let method = method.clone();
        self.retransmits
            .retain(|r| !(r.owner == id && r.ours && r.cseq == cseq && r.method == method));
        if method == Method::Bye {
            self.forget_call(id);
        }
    }

    /// The caller left (BYE) or the call failed: end every leg.
    fn end_call(&mut self, id: CallId, now: Instant) {
        let legs: Vec<LegId> = self
            .calls
            .get(&id)
            .map(|c| c.legs.clone())
            .unwrap_or_default();
        for l in legs {
            self.cancel_leg(l, now);
        }
        self.out.push(Out::Close { call: id });
        self.forget_call(id);
    }

    fn forget_call(&mut self, id: CallId) {
        if let Some(c) = self.calls.remove(&id) {
            self.by_key.remove(&c.key);
        }
        self.retransmits.retain(|r| r.owner != id);
    }

    fn forget_leg(&mut self, leg: LegId) {
        if let Some(l) = self.legs.remove(&leg) {
            self.leg_by_call_id.remove(&l.call_id);
        }
        self.retransmits.retain(|r| r.owner != leg);
    }

    /// When [`RgsUa::on_timer`] is next needed.
    pub fn next_timer(&self) -> Option<Instant> {
        let r = self.retransmits.iter().map(|r| r.next);
        let legs = self
            .legs
            .values()
            .filter(|l| {
                matches!(
                    l.state,
                    LegState::Inviting | LegState::Ringing | LegState::Cancelling
                )
            })
            .map(|l| l.alert_until);
        let calls = self.calls.values().filter_map(|c| match &c.phase {
            Phase::Queued {
                deadline, retry_at, ..
            } => [*deadline, *retry_at].into_iter().flatten().min(),
            Phase::Menu { replay_at, .. } => *replay_at,
            _ => None,
        });
        r.chain(legs).chain(calls).min()
    }

    /// Retransmissions, offers that rang too long, queue timeouts and retries,
    /// menus played again.
    pub fn on_timer(&mut self, now: Instant) {
        let mut expired = Vec::new();
        let mut resend = Vec::new();
        for r in &mut self.retransmits {
            if r.next > now {
                continue;
            }
            if now >= r.until {
                expired.push(r.owner);
                continue;
            }
            resend.push((r.to, r.data.clone()));
            r.interval = (r.interval * 2).min(T2);
            r.next = now + r.interval;
        }
        self.retransmits.retain(|r| now < r.until);
        for (to, data) in resend {
            self.send(to, data);
        }
        for owner in expired {
            if owner & LEG_BIT != 0 {
                let ringing = self
                    .legs
                    .get(&owner)
                    .is_some_and(|l| l.state != LegState::Ending);
                if ringing {
                    self.leg_failed(owner, now);
                } else {
                    self.forget_leg(owner);
                }
            } else {
                debug!(
                    call = owner,
                    "rgs: no answer from the caller's side, call dropped"
                );
                self.end_call(owner, now);
            }
        }
        let late: Vec<(LegId, LegState)> = self
            .legs
            .iter()
            .filter(|(_, l)| {
                matches!(
                    l.state,
                    LegState::Inviting | LegState::Ringing | LegState::Cancelling
                ) && l.alert_until <= now
            })
            .map(|(&id, l)| (id, l.state))
            .collect();
        for (leg, state) in late {
            if state == LegState::Cancelling {
                self.forget_leg(leg);
                self.out.push(Out::CloseLeg { leg });
                continue;
            }
            debug!(leg, "rgs: offer not answered in time");
            let call = self.legs.get(&leg).map(|l| l.call);
            self.cancel_leg(leg, now);
            if let Some(call) = call {
                let phase = self.calls.get(&call).map(|c| c.phase.clone());
                match phase {
                    Some(Phase::Queued { .. }) => self.offer_next(call, now),
                    Some(Phase::Forwarding) => self.hang_up(call, now),
                    _ => {}
                }
            }
        }
        let due: Vec<(CallId, Phase)> = self
            .calls
            .iter()
            .filter(|(_, c)| match &c.phase {
                Phase::Queued {
                    deadline, retry_at, ..
                } => deadline.is_some_and(|d| d <= now) || retry_at.is_some_and(|r| r <= now),
                Phase::Menu { replay_at, .. } => replay_at.is_some_and(|r| r <= now),
                _ => false,
            })
            .map(|(&id, c)| (id, c.phase.clone()))
            .collect();
        for (id, phase) in due {
            match phase {
                Phase::Queued {
                    queue, deadline, ..
                } if deadline.is_some_and(|d| d <= now) => {
                    debug!(call = id, %queue, "rgs: queue timeout");
                    let legs: Vec<LegId> = self
                        .calls
                        .get(&id)
                        .map(|c| c.legs.clone())
                        .unwrap_or_default();
                    for l in legs {
                        self.cancel_leg(l, now);
                    }
                    let action = self
                        .rgs
                        .queue(&queue)
                        .map(|q| q.timeout_action.clone())
                        .unwrap_or(Action::Disconnect { prompt: None });
                    self.apply(id, action, now);
                }
                Phase::Queued { .. } => {
                    if let Some(Phase::Queued { retry_at, .. }) =
                        self.calls.get_mut(&id).map(|c| &mut c.phase)
                    {
                        *retry_at = None;
                    }
                    self.offer_next(id, now);
                }
                Phase::Menu { menu, .. } => self.enter_menu(id, menu),
                _ => {}
            }
        }
    }
}

/// Our offer to an agent: the caller's codec and telephone-event, at `local`.
fn offer_sdp(n: &Negotiated, local: SocketAddr, session: u64) -> String {
    let family = if local.is_ipv6() { "IP6" } else { "IP4" };
    let ip = local.ip();
    let pt = n.codec.payload_type();
    let ev = n.event_pt.unwrap_or(101);
    format!(
        "v=0\r\no=confab {session} {session} IN {family} {ip}\r\ns=confab\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {pt} {ev}\r\na=rtpmap:{pt} {}/8000\r\na=rtpmap:{ev} telephone-event/8000\r\n\
         a=fmtp:{ev} 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        local.port(),
        n.codec.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentGroup, MenuOption, Queue, RgsData, RoutingMethod, SignIn};

    const FE: &str = "127.0.0.1:5060";
    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6676 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    fn data(signins: &[(&str, i64)]) -> RgsData {
        RgsData {
            workflows: vec![Workflow {
                name: "help".into(),
                uri: "help@example.com".into(),
                number: Some("+14255550300".into()),
                welcome: Some(PromptSpec::Tones("1000:500".into())),
                queue: None,
                menu: Some(Menu {
                    prompt: PromptSpec::Tones("800:300".into()),
                    options: vec![MenuOption {
                        digit: '2',
                        queue: Some("q".into()),
                        submenu: None,
                    }],
                }),
                music: Some(PromptSpec::Tones("600:400".into())),
                hours: vec![],
                holidays: vec![],
                utc_offset_min: 0,
                out_of_hours: Action::Disconnect { prompt: None },
            }],
            queues: vec![Queue {
                name: "q".into(),
                groups: vec!["g".into()],
                timeout_secs: Some(60),
                timeout_action: Action::Disconnect { prompt: None },
                overflow_threshold: None,
                overflow_action: Action::Forward {
                    target: "sip:carol@example.com".into(),
                },
            }],
            groups: vec![AgentGroup {
                name: "g".into(),
                routing: RoutingMethod::LongestIdle,
                formal: true,
                alert_secs: 10,
                agents: vec!["dave@example.com".into(), "bob@example.com".into()],
            }],
            signins: signins
                .iter()
                .map(|(a, at)| SignIn {
                    group: "g".into(),
                    agent: (*a).into(),
                    at_ms: *at,
                })
                .collect(),
        }
    }

    fn ua(signins: &[(&str, i64)]) -> RgsUa {
        let cfg = RgsConfig::build(data(signins)).unwrap();
        let mut ua = RgsUa::new(
            UaConfig {
                sip: "127.0.0.1:7100".parse().unwrap(),
                proxy: FE.parse().unwrap(),
                domain: "example.com".into(),
            },
            Arc::new(cfg),
            9,
        );
        ua.set_wall_clock(1_000_000);
        ua
    }

    fn invite(call_id: &str, ruri: &str) -> Bytes {
        invite_with(call_id, ruri, OFFER)
    }

    fn invite_with(call_id: &str, ruri: &str, sdp: &str) -> Bytes {
        Bytes::from(format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe1\r\n\
             Record-Route: <sip:127.0.0.1:5060;lr;cfd=abc>\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <{ruri}>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:20000>\r\n\
             Max-Forwards: 69\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ))
    }

    fn ack(call_id: &str, to_tag: &str) -> Bytes {
        Bytes::from(format!(
            "ACK sip:rgs@127.0.0.1:7100 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfe2\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:x@example.com>;tag={to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn sent(outs: &[Out]) -> Vec<Message> {
        outs.iter()
            .filter_map(|o| match o {
                Out::Send { data, .. } => Message::parse(data.clone(), &Limits::default()).ok(),
                _ => None,
            })
            .collect()
    }

    /// A response of `code` to `req` (as the front end relays it).
    fn respond(req: &Message, code: u16, to_tag: &str, sdp: Option<&str>) -> Bytes {
        let mut b = ResponseBuilder::new(req, code).to_tag(to_tag.to_owned());
        if code == 200 {
            b = b
                .header("Contact", "<sip:bob@127.0.0.1:30000>")
                .header("Record-Route", "<sip:127.0.0.1:5060;lr;cfd=xyz>");
        }
        if let Some(s) = sdp {
            b = b.body("application/sdp", s.to_owned());
        }
        b.build()
    }

    /// Caller answered, welcome played, menu answered with 2: returns the call
    /// and the outputs after the digit.
    fn to_queue(ua: &mut RgsUa, t: Instant) -> (CallId, Vec<Out>) {
        let fe: SocketAddr = FE.parse().unwrap();
        ua.on_datagram(
            invite("c1", "sip:+14255550300@example.com;user=phone"),
            fe,
            t,
        );
        let outs = ua.take_output();
        let Some(Out::OpenCaller { call, .. }) = outs.first().cloned() else {
            panic!("{outs:?}");
        };
        ua.caller_ready(call, "127.0.0.1:40000".parse().unwrap(), t);
        let ok = sent(&ua.take_output()).remove(0);
        assert_eq!(ok.status(), Some(200));
        let tag = ok.to_tag().unwrap().to_owned();
        ua.on_datagram(ack("c1", &tag), fe, t);
        assert_eq!(
            ua.take_output(),
            vec![Out::Play {
                call,
                prompt: Some(PromptSpec::Tones("1000:500".into())),
                looped: false
            }]
        );
        ua.played(call, t);
        assert_eq!(
            ua.take_output(),
            vec![Out::Play {
                call,
                prompt: Some(PromptSpec::Tones("800:300".into())),
                looped: false
            }]
        );
        // A wrong digit plays the menu again; 2 queues the call.
        ua.digit(call, '7', t);
        assert_eq!(ua.take_output().len(), 1);
        ua.digit(call, '2', t);
        (call, ua.take_output())
    }

    #[test]
    fn longest_idle_agent_answers_and_is_bridged() {
        let t = Instant::now();
        // bob signed in first: idle the longest, although dave is first in the group.
        let mut ua = ua(&[("bob@example.com", 100), ("dave@example.com", 200)]);
        let (call, outs) = to_queue(&mut ua, t);
        assert_eq!(
            outs[0],
            Out::Play {
                call,
                prompt: Some(PromptSpec::Tones("600:400".into())),
                looped: true
            }
        );
        let Some(Out::OpenLeg { leg, .. }) = outs.get(1).cloned() else {
            panic!("{outs:?}");
        };
        assert_eq!(outs.len(), 2);
        ua.leg_ready(leg, "127.0.0.1:41000".parse().unwrap(), t);
        let outs = ua.take_output();
        let inv = sent(&outs).remove(0);
        assert_eq!(inv.method(), Some(&Method::Invite));
        assert_eq!(inv.request_uri(), Some("sip:bob@example.com"));
        assert!(matches!(&outs[0], Out::Send { to, .. } if *to == FE.parse().unwrap()));
        assert!(
            std::str::from_utf8(inv.body())
                .unwrap()
                .contains("m=audio 41000 RTP/AVP 0 101")
        );
        // Ringing, then answered: ACK along the route set, and the bridge.
        ua.on_datagram(respond(&inv, 180, "b1", None), FE.parse().unwrap(), t);
        assert!(ua.take_output().is_empty());
        ua.on_datagram(
            respond(&inv, 200, "b1", Some(ANSWER)),
            FE.parse().unwrap(),
            t,
        );
        let outs = ua.take_output();
        let ack = sent(&outs).remove(0);
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.request_uri(), Some("sip:bob@127.0.0.1:30000"));
        assert_eq!(
            ack.header(HeaderName::Route),
            Some("<sip:127.0.0.1:5060;lr;cfd=xyz>")
        );
        assert!(outs.contains(&Out::Bridge {
            call,
            leg,
            remote: "127.0.0.1:7000".parse().unwrap()
        }));
        // The agent hangs up: the caller gets a BYE.
        let bye = format!(
            "BYE sip:rgs@127.0.0.1:7100 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb9\r\n\
             From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            ack.header(HeaderName::To).unwrap(),
            ack.header(HeaderName::From).unwrap(),
            ack.call_id()
        );
        ua.on_datagram(Bytes::from(bye), FE.parse().unwrap(), t);
        let outs = ua.take_output();
        let msgs = sent(&outs);
        assert_eq!(msgs[0].status(), Some(200));
        assert_eq!(msgs[1].method(), Some(&Method::Bye));
        assert_eq!(msgs[1].request_uri(), Some("sip:alice@127.0.0.1:20000"));
        assert!(outs.contains(&Out::Close { call }));
    }

    #[test]
    fn a_refusing_agent_passes_the_call_to_the_next() {
        let t = Instant::now();
        let mut ua = ua(&[("bob@example.com", 100), ("dave@example.com", 200)]);
        let (_, outs) = to_queue(&mut ua, t);
        let Some(Out::OpenLeg { leg, .. }) = outs.get(1).cloned() else {
            panic!("{outs:?}");
        };
        ua.leg_ready(leg, "127.0.0.1:41000".parse().unwrap(), t);
        let inv = sent(&ua.take_output()).remove(0);
        ua.on_datagram(respond(&inv, 486, "b1", None), FE.parse().unwrap(), t);
        let outs = ua.take_output();
        assert_eq!(sent(&outs)[0].method(), Some(&Method::Ack));
        assert!(outs.contains(&Out::CloseLeg { leg }));
        let Some(Out::OpenLeg { leg: next, .. }) = outs
            .iter()
            .find(|o| matches!(o, Out::OpenLeg { .. }))
            .cloned()
        else {
            panic!("{outs:?}");
        };
        ua.leg_ready(next, "127.0.0.1:41002".parse().unwrap(), t);
        let inv = sent(&ua.take_output()).remove(0);
        assert_eq!(inv.request_uri(), Some("sip:dave@example.com"));
        // Dave does not answer in time: CANCEL, and the round starts again later.
        ua.on_timer(t + Duration::from_secs(11));
        let outs = ua.take_output();
        assert!(
            sent(&outs)
                .iter()
                .any(|m| m.method() == Some(&Method::Cancel))
        );
    }

    #[test]
    fn no_agent_signed_in_overflows_to_the_forward_target() {
        let t = Instant::now();
        let mut ua = ua(&[]);
        let (call, outs) = to_queue(&mut ua, t);
        let Some(Out::OpenLeg { leg, .. }) = outs.first().cloned() else {
            panic!("{outs:?}");
        };
        ua.leg_ready(leg, "127.0.0.1:41000".parse().unwrap(), t);
        let inv = sent(&ua.take_output()).remove(0);
        assert_eq!(inv.request_uri(), Some("sip:carol@example.com"));
        ua.on_datagram(
            respond(&inv, 200, "c9", Some(ANSWER)),
            FE.parse().unwrap(),
            t,
        );
        let outs = ua.take_output();
        assert!(
            outs.iter()
                .any(|o| matches!(o, Out::Bridge { call: c, .. } if *c == call))
        );
    }

    #[test]
    fn bad_requests_are_refused_without_harm() {
        let t = Instant::now();
        let mut ua = ua(&[]);
        let fe: SocketAddr = FE.parse().unwrap();
        ua.on_datagram(invite("x1", "sip:nobody@example.com"), fe, t);
        assert_eq!(sent(&ua.take_output())[0].status(), Some(404));
        let opus = OFFER.replace("RTP/AVP 0 8 101", "RTP/AVP 96");
        ua.on_datagram(invite_with("x2", "sip:help@example.com", &opus), fe, t);
        assert_eq!(sent(&ua.take_output())[0].status(), Some(488));
        ua.on_datagram(Bytes::from_static(b"\x00garbage"), fe, t);
        assert!(ua.take_output().is_empty());
        assert_eq!(ua.calls(), 0);
    }
}
