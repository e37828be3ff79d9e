//! The sans-IO back-to-back user agent. Each call has two dialogs: the leg facing
//! the pool (the front end) and the leg facing the trunk's gateway, each with its
//! own Call-ID, tags and CSeq numbers. Fed messages and a clock, it returns
//! [`Action`]s (datagrams to send, call records); [`Mediation::poll`] runs its
//! timers (INVITE and 2xx retransmission over UDP, failover after a silent
//! gateway).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_sip::transaction::build_non2xx_ack;
use confab_sip::uri::Scheme;
use confab_sip::{HeaderName, Limits, Message, Method, RequestBuilder, ResponseBuilder, Uri};
use confab_voice::{TrunkTransport, VoiceConfig};
use tracing::debug;

use crate::sdp;

mod transfer;

/// RFC 3261's T1: the first retransmission interval over UDP.
const T1: Duration = Duration::from_millis(500);
/// Retransmissions stop after this long (64 * T1, timer B/H).
const GIVE_UP: Duration = Duration::from_secs(32);

/// Which dialog of a call: facing the pool or facing the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Pool,
    Gateway,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Pool => Side::Gateway,
            Side::Gateway => Side::Pool,
        }
    }
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A user's call to the PSTN (the pool sent the INVITE).
    Outbound,
    /// A call from a gateway to a user's number.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// The configuration of a Mediation server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our SIP address (Via, Contact) over UDP and TCP; both legs use it.
    pub local: SocketAddr,
    /// Our TLS address (Via and Contact of dialogs with TLS trunks).
    pub tls_local: Option<SocketAddr>,
    /// The SIP domain (inbound calls go to `sip:user@domain`).
    pub domain: String,
    /// The front end inbound calls are sent to.
    pub front_end: SocketAddr,
    /// The pool's addresses: only these may send calls to the PSTN.
    pub pool: Vec<SocketAddr>,
    /// Trunks whose media goes through the RTP relay (media bypass otherwise).
    pub relay_trunks: Vec<String>,
    /// A gateway that answers nothing (not even 100) for this long is given up
    /// and the next trunk tried.
    pub failover_timeout: Duration,
    /// How long a call may ring before it is cancelled.
    pub ring_timeout: Duration,
    /// Calls in progress at most (more: 503).
    pub max_calls: usize,
    /// A string unique to this instance (Call-IDs, tags, branches).
    pub instance: String,
}

impl Config {
    pub fn new(local: SocketAddr, domain: &str, front_end: SocketAddr) -> Self {
        Config {
            local,
            tls_local: None,
            domain: domain.to_owned(),
            front_end,
            pool: vec![front_end],
            relay_trunks: Vec::new(),
            failover_timeout: Duration::from_secs(4),
            ring_timeout: Duration::from_secs(120),
            max_calls: 10_000,
            instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    /// The Via protocol and sent-by of our requests over `transport`: TCP shares
    /// the UDP port, TLS has its own (`Config::tls_local`).
    pub(crate) fn via_parts(&self, transport: TrunkTransport) -> (&'static str, SocketAddr) {
        match transport {
            TrunkTransport::Udp => ("UDP", self.local),
            TrunkTransport::Tcp => ("TCP", self.local),
            TrunkTransport::Tls => ("TLS", self.tls_local.unwrap_or(self.local)),
        }
    }

    /// Our Contact on a dialog over `transport`: in-dialog requests from the
    /// gateway come back over the same transport.
    pub(crate) fn contact(&self, transport: TrunkTransport) -> String {
        let (_, at) = self.via_parts(transport);
        match transport {
            TrunkTransport::Udp => format!("<sip:mediation@{at}>"),
            TrunkTransport::Tcp => format!("<sip:mediation@{at};transport=tcp>"),
            TrunkTransport::Tls => format!("<sip:mediation@{at};transport=tls>"),
        }
    }
}

/// What the I/O layer does for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a datagram.
    Send { to: SocketAddr, data: Bytes },
    /// A call ended: its detail record.
    Record(CallRecord),
}

/// A call detail record (Lync's Monitoring role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub direction: Direction,
    /// The caller: a user's address (outbound) or the calling number (inbound).
    pub caller: String,
    /// The callee: the dialed E.164 number (outbound) or the user (inbound).
    pub callee: String,
    /// The number as dialed / received.
    pub number: String,
    /// The trunk that carried the call (the last one tried).
    pub trunk: Option<String>,
    pub started: Instant,
    pub answered: Option<Instant>,
    pub ended: Instant,
    /// The final response code (200 when answered).
    pub code: u16,
    /// Trunks tried, in order, with the code each answered (408: no answer).
    pub attempts: Vec<(String, u16)>,
    /// RTP packets the relay forwarded (`None`: media bypass).
    pub relayed_packets: Option<u64>,
}

/// RTP relay ports for calls whose trunk needs the relay. The core tells it the
/// media address each side announced and gets back the relay's address to
/// announce to the other side.
pub trait Relays {
    /// The relay's address the party on `towards` should send media to, for call
    /// `call`, after the party on `from` announced `media` (allocates on first use).
    /// `None`: no relay port free (the call goes on with media bypass).
    fn announce(&mut self, call: u64, from: Side, media: SocketAddr) -> Option<SocketAddr>;
    /// The call ended: its ports are freed. Returns the packets relayed for it.
    fn close(&mut self, call: u64) -> u64;
}

/// No relay at all (every call uses media bypass).
pub struct NoRelays;

impl Relays for NoRelays {
    fn announce(&mut self, _: u64, _: Side, _: SocketAddr) -> Option<SocketAddr> {
        None
    }
    fn close(&mut self, _: u64) -> u64 {
        0
    }
}

/// One gateway the call may go to.
#[derive(Debug, Clone)]
struct Target {
    trunk: String,
    addr: SocketAddr,
    ruri: String,
    transport: TrunkTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The INVITE went to the callee's side; nothing final yet.
    Calling,
    /// Answered and confirmed.
    Confirmed,
    /// Cancelled by the caller; waiting for the callee's side to confirm.
    Cancelling,
    /// A BYE went to one side; waiting for its answer.
    Ending,
}

/// One dialog of a call.
#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our name-addr (From of our requests), without tag.
    local: String,
    /// The peer's name-addr, without tag.
    remote: String,
    /// Request-URI of in-dialog requests (the peer's Contact).
    target: String,
    route_set: Vec<String>,
    /// Where datagrams of this dialog go.
    peer: SocketAddr,
    /// How: requests are retransmitted over UDP only (RFC 3261 §17.1).
    transport: TrunkTransport,
    cseq: u32,
    /// The last request received on this dialog (CSeq) and our answer to it,
    /// for retransmissions.
    last_in: Option<(u32, Method)>,
    last_answer: Option<Bytes>,
}

/// A request we sent on one leg on behalf of a request received on the other.
#[derive(Debug, Clone)]
struct Pending {
    /// The request to answer, received on the other leg.
    origin: Message,
    /// What we sent (for the ACK of a non-2xx answer to an INVITE).
    sent: Message,
}

#[derive(Debug, Clone)]
struct Retrans {
    side: Side,
    cseq: u32,
    /// A 2xx answer (retransmitted until the ACK) rather than a request.
    answer: bool,
    data: Bytes,
    to: SocketAddr,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

struct Call {
    id: u64,
    relay: bool,
    state: State,
    /// The caller's leg (answered by us, UAS) and the callee's leg (UAC).
    caller_side: Side,
    legs: HashMap<Side, Dialog>,
    /// The INVITE that opened the call (answered on the caller's leg).
    invite: Message,
    /// The INVITE sent on the callee's leg, current attempt.
    out_invite: Option<Message>,
    targets: Vec<Target>,
    /// Index of the current target.
    attempt: usize,
    provisional: bool,
    deadline: Option<Instant>,
    pending: HashMap<(Side, u32), Pending>,
    /// ACK of a passed-through re-INVITE: (leg the ACK comes from, its CSeq) ->
    /// CSeq on the other leg.
    acks: HashMap<(Side, u32), u32>,
    retrans: Vec<Retrans>,
    record: CallRecord,
    /// A blind transfer the pool's side asked for (`transfer.rs`).
    transfer: Option<transfer::Transfer>,
}

impl Call {
    fn callee_side(&self) -> Side {
        self.caller_side.other()
    }

    /// When a timer of this call is due next (failover/ring deadline or a
    /// retransmission).
    fn next_due(&self) -> Option<Instant> {
        self.retrans
            .iter()
            .map(|r| r.next)
            .chain(self.deadline)
            .min()
    }

    /// Schedules retransmissions of a request over UDP and of a 2xx answer to
    /// an INVITE on any transport (RFC 3261 §13.3.1.4: the UAS core resends it
    /// until the ACK); a request over TCP or TLS is sent once (§17.1.1.2, §17.1.2.2).
    fn push_retrans(&mut self, r: Retrans) {
        let reliable = self
            .legs
            .get(&r.side)
            .is_some_and(|l| l.transport != TrunkTransport::Udp);
        if r.answer || !reliable {
            self.retrans.push(r);
        }
    }
}

/// The Mediation server's B2BUA.
pub struct Mediation {
    cfg: Config,
    voice: Arc<VoiceConfig>,
    /// Calls in progress. A call goes (back) in only through [`Mediation::keep`],
    /// which arms its next timer in `timers`.
    /// Boxed: a call is about 3.5 kB and is taken out and put back for every
    /// message of it, which then moves a pointer instead of the whole call.
    calls: HashMap<u64, Box<Call>>,
    /// (due, call): a call's next timer, pushed whenever the call is stored;
    /// entries whose call ended or whose timer moved are skipped when they come
    /// due, so finding the next deadline never walks every call.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    by_call_id: HashMap<String, (u64, Side)>,
    next_id: u64,
    limits: Limits,
    transfers: transfer::Transfers,
}

fn strip_tag(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    // The tag parameter is after the address (after '>' when bracketed).
    let from = lower.rfind('>').unwrap_or(0);
    match lower[from..].find(";tag=") {
        Some(i) => {
            let start = from + i;
            let rest = &value[start + 5..];
            let end = rest.find(';').map_or(value.len(), |e| start + 5 + e);
            format!("{}{}", &value[..start], &value[end..])
        }
        None => value.to_owned(),
    }
}

fn contact_uri(msg: &Message) -> Option<String> {
    let c = msg.header(HeaderName::Contact)?;
    let first = confab_sip::header::split_values(c).next()?;
    confab_sip::NameAddr::parse(first)
        .ok()
        .map(|n| n.uri.to_owned())
}

fn is_sdp(msg: &Message) -> bool {
    msg.content_type()
        .is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"))
        && !msg.body().is_empty()
}

impl Mediation {
    pub fn new(cfg: Config, voice: Arc<VoiceConfig>) -> Self {
        Mediation {
            cfg,
            voice,
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            by_call_id: HashMap::new(),
            next_id: 1,
            limits: Limits::default(),
            transfers: transfer::Transfers::default(),
        }
    }

    /// A new voice configuration (numbers, routes, trunks).
    pub fn set_voice_config(&mut self, voice: Arc<VoiceConfig>) {
        self.voice = voice;
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The voice configuration in force (trunks, routes, numbers).
    pub fn voice(&self) -> &VoiceConfig {
        &self.voice
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    fn token(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("{what}{}-{:x}", self.cfg.instance, self.next_id)
    }

    fn via(&mut self, transport: TrunkTransport) -> String {
        let branch = self.token("z9hG4bKm");
        let (proto, at) = self.cfg.via_parts(transport);
        format!("SIP/2.0/{proto} {at};branch={branch};rport")
    }

    fn contact(&self, transport: TrunkTransport) -> String {
        self.cfg.contact(transport)
    }

    /// A datagram arrived from `src`.
    pub fn on_datagram(
        &mut self,
        data: Bytes,
        src: SocketAddr,
        now: Instant,
        relays: &mut dyn Relays,
    ) -> Vec<Action> {
        match Message::parse(data, &self.limits) {
            Ok(msg) => self.on_message(&msg, src, now, relays),
            Err(e) => match e.response() {
                Some(r) => vec![Action::Send { to: src, data: r }],
                None => Vec::new(),
            },
        }
    }

    /// A parsed message arrived from `src` over UDP.
    pub fn on_message(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        now: Instant,
        relays: &mut dyn Relays,
    ) -> Vec<Action> {
        self.on_message_over(msg, src, TrunkTransport::Udp, now, relays)
    }

    /// A parsed message arrived from `src` over `transport` (a TCP or TLS
    /// connection: `src` is its peer).
    pub fn on_message_over(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        transport: TrunkTransport,
        now: Instant,
        relays: &mut dyn Relays,
    ) -> Vec<Action> {
        if let Some(out) = self.transfer_message(msg, src, now, relays) {
            return out;
        }
        let mut out = Vec::new();
        match self.by_call_id.get(msg.call_id()).copied() {
            Some((id, side)) => {
                if msg.is_request() {
                    self.in_call_request(id, side, msg, now, relays, &mut out);
                } else {
                    self.in_call_response(id, side, msg, now, relays, &mut out);
                }
            }
            None if msg.is_request() => {
                self.new_request(msg, src, transport, now, relays, &mut out)
            }
            None => {} // a response to nothing of ours (any longer)
        }
        out
    }

    fn reply(msg: &Message, to: SocketAddr, code: u16, reason: &str, out: &mut Vec<Action>) {
        if msg.method() == Some(&Method::Ack) {
            return;
        }
        let data = ResponseBuilder::new(msg, code).reason(reason).build();
        out.push(Action::Send { to, data });
    }

    /// An out-of-dialog request: a new call (INVITE) from the pool or a gateway.
    #[allow(clippy::too_many_arguments)]
    fn new_request(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        transport: TrunkTransport,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        match msg.method() {
            Some(Method::Invite) => {}
            Some(Method::Ack) => return,
            Some(Method::Options) => {
                let data = ResponseBuilder::new(msg, 200)
                    .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO")
                    .build();
                out.push(Action::Send { to: src, data });
                return;
            }
            Some(Method::Cancel) => {
                return Self::reply(msg, src, 481, "Call/Transaction Does Not Exist", out);
            }
            _ => return Self::reply(msg, src, 481, "Call/Transaction Does Not Exist", out),
        }
        if msg.to_tag().is_some() {
            return Self::reply(msg, src, 481, "Call/Transaction Does Not Exist", out);
        }
        if self.calls.len() >= self.cfg.max_calls {
            return Self::reply(msg, src, 503, "Too many calls", out);
        }
        let Some(ruri) = msg.request_uri() else {
            return;
        };
        let Ok(uri) = Uri::parse(ruri) else {
            return Self::reply(msg, src, 416, "Unsupported URI Scheme", out);
        };
        let dialed = uri
            .user_unescaped()
            .map(|u| u.split(';').next().unwrap_or("").to_owned())
            .unwrap_or_default();
        let from_pool = transport == TrunkTransport::Udp && self.cfg.pool.contains(&src);
        if let Some(trunk) = self.voice.trunk_from(src, transport).map(str::to_owned)
            && !from_pool
        {
            self.inbound(msg, src, (trunk, transport), &dialed, now, relays, out);
        } else if from_pool {
            self.outbound(msg, src, &dialed, now, relays, out);
        } else {
            debug!(%src, "mediation: call from an address that is no trunk refused");
            Self::reply(msg, src, 403, "Not a trunk of this deployment", out);
        }
    }

    fn outbound(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        dialed: &str,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let caller = msg
            .from()
            .parsed_uri()
            .ok()
            .filter(|u| u.scheme != Scheme::Tel)
            .map(|u| u.aor())
            .unwrap_or_default();
        let number = match self.voice.normalize(Some(&caller), dialed) {
            Ok(n) => n.number,
            Err(e) => return Self::reply(msg, src, 404, &e.to_string(), out),
        };
        let trunks = match self.voice.route(&caller, &number) {
            Ok(t) => t,
            Err(e) => return Self::reply(msg, src, 403, &e.to_string(), out),
        };
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
            return Self::reply(msg, src, 503, "No trunk for this number", out);
        }
        // The caller ID towards the PSTN: the front end's P-Asserted-Identity.
        let from = msg
            .header(HeaderName::PAssertedIdentity)
            .map(str::to_owned)
            .unwrap_or_else(|| strip_tag(msg.header(HeaderName::From).unwrap_or("")));
        let record = CallRecord {
            direction: Direction::Outbound,
            caller: caller.clone(),
            callee: number,
            number: dialed.to_owned(),
            trunk: None,
            started: now,
            answered: None,
            ended: now,
            code: 0,
            attempts: Vec::new(),
            relayed_packets: None,
        };
        self.open_call(
            msg,
            (src, TrunkTransport::Udp),
            Side::Pool,
            from,
            targets,
            record,
            now,
            relays,
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn inbound(
        &mut self,
        msg: &Message,
        src: SocketAddr,
        (trunk, transport): (String, TrunkTransport),
        dialed: &str,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let number = match self.voice.normalize(None, dialed) {
            Ok(n) => n.number,
            Err(_) => return Self::reply(msg, src, 404, "No user has this number", out),
        };
        let Some(user) = self.voice.user_by_number(&number).map(str::to_owned) else {
            return Self::reply(msg, src, 404, "No user has this number", out);
        };
        let calling = msg
            .from()
            .parsed_uri()
            .ok()
            .and_then(|u| u.user_unescaped().map(|s| s.into_owned()))
            .map(|u| u.split(';').next().unwrap_or("").to_owned())
            .filter(|u| confab_voice::is_dial_string(u))
            .unwrap_or_else(|| "anonymous".to_owned());
        let display = msg.from().display.map(str::to_owned);
        let from = match display {
            Some(d) if !d.contains('"') => {
                format!("\"{d}\" <sip:{calling}@{};user=phone>", self.cfg.domain)
            }
            _ => format!("<sip:{calling}@{};user=phone>", self.cfg.domain),
        };
        let targets = vec![Target {
            trunk: trunk.clone(),
            addr: self.cfg.front_end,
            ruri: format!("sip:{user}"),
            transport: TrunkTransport::Udp,
        }];
        let record = CallRecord {
            direction: Direction::Inbound,
            caller: calling,
            callee: user,
            number,
            trunk: Some(trunk),
            started: now,
            answered: None,
            ended: now,
            code: 0,
            attempts: Vec::new(),
            relayed_packets: None,
        };
        self.open_call(
            msg,
            (src, transport),
            Side::Gateway,
            from,
            targets,
            record,
            now,
            relays,
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn open_call(
        &mut self,
        msg: &Message,
        (src, transport): (SocketAddr, TrunkTransport),
        caller_side: Side,
        from: String,
        targets: Vec<Target>,
        record: CallRecord,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let relay_trunk = match caller_side {
            Side::Pool => targets.first().map(|t| t.trunk.as_str()),
            Side::Gateway => record.trunk.as_deref(),
        };
        let relay = relay_trunk.is_some_and(|t| self.cfg.relay_trunks.iter().any(|r| r == t));
        let local_tag = self.token("m");
        let caller_leg = Dialog {
            call_id: msg.call_id().to_owned(),
            local_tag,
            remote_tag: msg.from_tag().map(str::to_owned),
            local: msg.header(HeaderName::To).unwrap_or("").to_owned(),
            remote: strip_tag(msg.header(HeaderName::From).unwrap_or("")),
            target: contact_uri(msg).unwrap_or_else(|| msg.request_uri().unwrap_or("").to_owned()),
            route_set: msg
                .headers_named(HeaderName::RecordRoute)
                .flat_map(confab_sip::header::split_values)
                .map(str::to_owned)
                .collect(),
            peer: src,
            transport,
            cseq: 0,
            last_in: Some((msg.cseq().0, Method::Invite)),
            last_answer: None,
        };
        let trying = ResponseBuilder::new(msg, 100).build();
        out.push(Action::Send {
            to: src,
            data: trying.clone(),
        });
        let mut legs = HashMap::new();
        legs.insert(caller_side, caller_leg);
        // The callee's leg: Call-ID and tag are ours; To and target per attempt.
        let callee_leg = Dialog {
            call_id: String::new(),
            local_tag: self.token("m"),
            remote_tag: None,
            local: from,
            remote: String::new(),
            target: String::new(),
            route_set: Vec::new(),
            peer: src,
            transport: TrunkTransport::Udp,
            cseq: 0,
            last_in: None,
            last_answer: None,
        };
        legs.insert(caller_side.other(), callee_leg);
        let mut call = Box::new(Call {
            id,
            relay,
            state: State::Calling,
            caller_side,
            legs,
            invite: msg.clone(),
            out_invite: None,
            targets,
            attempt: 0,
            provisional: false,
            deadline: None,
            pending: HashMap::new(),
            acks: HashMap::new(),
            retrans: Vec::new(),
            record,
            transfer: None,
        });
        if let Some(leg) = call.legs.get_mut(&caller_side) {
            leg.last_answer = Some(trying);
        }
        self.by_call_id
            .insert(msg.call_id().to_owned(), (id, caller_side));
        self.send_attempt(&mut call, now, relays, out);
        self.keep(call);
    }

    /// Stores a call in progress and arms its next timer.
    fn keep(&mut self, call: Box<Call>) {
        if let Some(due) = call.next_due() {
            self.timers.push(Reverse((due, call.id)));
        }
        self.calls.insert(call.id, call);
    }

    /// Sends the INVITE of the current attempt on the callee's leg.
    fn send_attempt(
        &mut self,
        call: &mut Call,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let Some(target) = call.targets.get(call.attempt).cloned() else {
            return;
        };
        let side = call.callee_side();
        let call_id = self.token("cm");
        let via = self.via(target.transport);
        let contact = self.contact(target.transport);
        if let Some(leg) = call.legs.get_mut(&side) {
            if !leg.call_id.is_empty() {
                self.by_call_id.remove(&leg.call_id);
            }
            leg.call_id = call_id.clone();
            leg.remote = format!("<{}>", target.ruri);
            leg.target = target.ruri.clone();
            leg.peer = target.addr;
            leg.transport = target.transport;
            leg.remote_tag = None;
            leg.route_set.clear();
            leg.cseq = 1;
        }
        self.by_call_id.insert(call_id.clone(), (call.id, side));
        call.record.trunk = Some(target.trunk.clone());
        if call.caller_side == Side::Pool {
            // Relay or bypass is the trunk's: decided again for each attempt.
            let relay = self.cfg.relay_trunks.contains(&target.trunk);
            if call.relay && !relay {
                relays.close(call.id);
            }
            call.relay = relay;
        }
        let Some(leg) = call.legs.get(&side) else {
            return;
        };
        let mut b = RequestBuilder::new(Method::Invite, target.ruri.clone())
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", format!("{};tag={}", leg.local, leg.local_tag))
            .header("To", leg.remote.clone())
            .header("Call-ID", call_id)
            .header("CSeq", "1 INVITE")
            .header("Contact", contact)
            .header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO");
        if call.caller_side == Side::Pool
            && let Some(pai) = call.invite.header(HeaderName::PAssertedIdentity)
        {
            b = b.header("P-Asserted-Identity", pai);
        }
        let invite = call.invite.clone();
        if let Some((ct, body)) = self.body_for(call, call.caller_side, &invite, relays) {
            b = b.body(ct, body);
        }
        let data = b.build();
        if let Ok(m) = Message::parse(data.clone(), &self.limits) {
            call.out_invite = Some(m);
        }
        debug!(call = call.id, trunk = %target.trunk, to = %target.addr, "mediation: INVITE sent");
        call.provisional = false;
        call.deadline = Some(now + self.cfg.failover_timeout);
        call.retrans.retain(|r| r.side != side);
        call.push_retrans(Retrans {
            side,
            cseq: 1,
            answer: false,
            data: data.clone(),
            to: target.addr,
            next: now + T1,
            interval: T1,
            give_up: now + GIVE_UP,
        });
        out.push(Action::Send {
            to: target.addr,
            data,
        });
    }

    /// The body of `msg` (received on `from`) as the other side gets it: SDP
    /// rewritten to the relay's address when the call is relayed.
    fn body_for(
        &self,
        call: &Call,
        from: Side,
        msg: &Message,
        relays: &mut dyn Relays,
    ) -> Option<(String, Bytes)> {
        if msg.body().is_empty() {
            return None;
        }
        let ct = msg
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        if call.relay
            && is_sdp(msg)
            && let Some(media) = sdp::media_addr(msg.body())
            && let Some(relay) = relays.announce(call.id, from, media)
            && let Some(body) = sdp::rewrite(msg.body(), relay)
        {
            return Some((ct, Bytes::from(body)));
        }
        Some((ct, msg.body_bytes()))
    }

    /// A new request on `side`'s dialog, built from the dialog's state.
    fn dialog_request(
        &mut self,
        call: &mut Call,
        side: Side,
        method: Method,
        cseq: Option<u32>,
        body: Option<(String, Bytes)>,
    ) -> Option<(SocketAddr, Bytes, u32)> {
        let transport = call.legs.get(&side)?.transport;
        let via = self.via(transport);
        let contact = self.contact(transport);
        let leg = call.legs.get_mut(&side)?;
        let n = match cseq {
            Some(n) => n,
            None => {
                leg.cseq += 1;
                leg.cseq
            }
        };
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
        if matches!(method, Method::Invite | Method::Update) {
            b = b.header("Contact", contact);
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        Some((leg.peer, b.build(), n))
    }

    /// A response to `msg` received on the caller's or callee's leg as a UAS (our
    /// tag on To for dialog-creating responses).
    fn answer(
        &self,
        call: &Call,
        side: Side,
        msg: &Message,
        code: u16,
        reason: Option<&str>,
        body: Option<(String, Bytes)>,
    ) -> Option<(SocketAddr, Bytes)> {
        let leg = call.legs.get(&side)?;
        let mut b = ResponseBuilder::new(msg, code).to_tag(leg.local_tag.clone());
        if let Some(r) = reason {
            b = b.reason(r);
        }
        if msg.method() == Some(&Method::Invite) && (101..300).contains(&code) {
            b = b
                .copy_record_route()
                .header("Contact", self.contact(leg.transport));
        }
        if let Some((ct, body)) = body {
            b = b.body(ct, body);
        }
        Some((leg.peer, b.build()))
    }

    fn in_call_request(
        &mut self,
        id: u64,
        side: Side,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        let keep = self.call_request(&mut call, side, msg, now, relays, out);
        self.keep_or_end(call, keep, now, relays, out);
    }

    fn keep_or_end(
        &mut self,
        call: Box<Call>,
        keep: bool,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        if keep {
            self.keep(call);
        } else {
            self.end(call, now, relays, out);
        }
    }

    fn end(
        &mut self,
        mut call: Box<Call>,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        self.transfer_ended(&mut call, out);
        for leg in call.legs.values() {
            self.by_call_id.remove(&leg.call_id);
        }
        if call.relay {
            call.record.relayed_packets = Some(relays.close(call.id));
        }
        call.record.ended = now;
        debug!(
            call = call.id,
            code = call.record.code,
            "mediation: call ended"
        );
        out.push(Action::Record(call.record));
    }

    /// `false`: the call is over.
    fn call_request(
        &mut self,
        call: &mut Call,
        side: Side,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> bool {
        let method = msg.method().cloned().unwrap_or(Method::Options);
        let cseq = msg.cseq().0;
        let src_peer = call.legs.get(&side).map(|l| l.peer);
        // Retransmission of the last request: the same answer again.
        if method != Method::Ack
            && let Some(leg) = call.legs.get(&side)
            && leg.last_in.as_ref() == Some(&(cseq, method.clone()))
        {
            if let Some(a) = &leg.last_answer {
                out.push(Action::Send {
                    to: leg.peer,
                    data: a.clone(),
                });
            }
            return true;
        }
        if let Some(keep) = self.transfer_request(call, side, msg, now, out) {
            return keep;
        }
        match method {
            Method::Ack => {
                // The ACK of our 2xx: retransmissions stop; a passed-through
                // re-INVITE's ACK goes on.
                call.retrans
                    .retain(|r| !(r.answer && r.side == side && r.cseq == cseq));
                if let Some(other_cseq) = call.acks.remove(&(side, cseq)) {
                    let body = self.body_for(call, side, msg, relays);
                    if let Some((to, data, _)) =
                        self.dialog_request(call, side.other(), Method::Ack, Some(other_cseq), body)
                    {
                        out.push(Action::Send { to, data });
                    }
                }
                true
            }
            Method::Cancel => {
                if let Some(to) = src_peer {
                    let data = ResponseBuilder::new(msg, 200).build();
                    out.push(Action::Send { to, data });
                }
                if side == call.caller_side && call.state == State::Calling {
                    self.cancel(call, out);
                    call.record.code = 487;
                    let invite = call.invite.clone();
                    if let Some((to, data)) = self.answer(call, side, &invite, 487, None, None) {
                        out.push(Action::Send { to, data });
                    }
                    call.state = State::Cancelling;
                }
                true
            }
            Method::Bye => {
                if let Some(leg) = call.legs.get_mut(&side) {
                    leg.last_in = Some((cseq, method.clone()));
                }
                let ok = ResponseBuilder::new(msg, 200).build();
                if let Some(to) = src_peer {
                    out.push(Action::Send {
                        to,
                        data: ok.clone(),
                    });
                }
                if let Some(leg) = call.legs.get_mut(&side) {
                    leg.last_answer = Some(ok);
                }
                if call.state == State::Confirmed {
                    if let Some((to, data, n)) =
                        self.dialog_request(call, side.other(), Method::Bye, None, None)
                    {
                        call.retrans.clear();
                        call.push_retrans(Retrans {
                            side: side.other(),
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
                } else {
                    // A BYE in any other state: the other side is told too and
                    // the call ends here.
                    call.state != State::Ending
                }
            }
            _ => {
                // re-INVITE (hold), UPDATE, INFO...: passed through to the other leg.
                if call.state != State::Confirmed {
                    Self::reply(
                        msg,
                        src_peer.unwrap_or(call.invite_src()),
                        491,
                        "Request Pending",
                        out,
                    );
                    return true;
                }
                if let Some(leg) = call.legs.get_mut(&side) {
                    leg.last_in = Some((cseq, method.clone()));
                    leg.last_answer = None;
                }
                if method == Method::Invite
                    && let Some(to) = src_peer
                {
                    let data = ResponseBuilder::new(msg, 100).build();
                    out.push(Action::Send { to, data });
                }
                let body = self.body_for(call, side, msg, relays);
                if let Some((to, data, n)) =
                    self.dialog_request(call, side.other(), method, None, body)
                    && let Ok(sent) = Message::parse(data.clone(), &self.limits)
                {
                    call.pending.insert(
                        (side.other(), n),
                        Pending {
                            origin: msg.clone(),
                            sent,
                        },
                    );
                    out.push(Action::Send { to, data });
                }
                true
            }
        }
    }

    /// Cancels the INVITE on the callee's leg.
    fn cancel(&mut self, call: &mut Call, out: &mut Vec<Action>) {
        let side = call.callee_side();
        call.retrans.retain(|r| r.side != side);
        let (Some(inv), Some(leg)) = (&call.out_invite, call.legs.get(&side)) else {
            return;
        };
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
        out.push(Action::Send {
            to: leg.peer,
            data: b.build(),
        });
    }

    fn in_call_response(
        &mut self,
        id: u64,
        side: Side,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        let keep = self.call_response(&mut call, side, msg, now, relays, out);
        self.keep_or_end(call, keep, now, relays, out);
    }

    /// `false`: the call is over.
    fn call_response(
        &mut self,
        call: &mut Call,
        side: Side,
        msg: &Message,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> bool {
        let code = msg.status().unwrap_or(500);
        let (cseq, method) = msg.cseq();
        let method = method.clone();
        call.retrans
            .retain(|r| !(r.side == side && r.cseq == cseq && !r.answer));
        if let Some(keep) = self.transfer_response(call, side, msg, now, relays, out) {
            return keep;
        }
        // Answers to requests we passed through.
        if let Some(p) = call.pending.get(&(side, cseq)).cloned() {
            if code < 200 {
                return true;
            }
            call.pending.remove(&(side, cseq));
            if method == Method::Invite {
                if code < 300 {
                    call.acks.insert((side.other(), p.origin.cseq().0), cseq);
                } else {
                    let ack = build_non2xx_ack(&p.sent, msg);
                    if let Some(leg) = call.legs.get(&side) {
                        out.push(Action::Send {
                            to: leg.peer,
                            data: ack,
                        });
                    }
                }
            }
            let body = self.body_for(call, side, msg, relays);
            if let Some((to, data)) =
                self.answer(call, side.other(), &p.origin, code, msg.reason(), body)
            {
                if method == Method::Invite && code < 300 {
                    call.push_retrans(Retrans {
                        side: side.other(),
                        cseq: p.origin.cseq().0,
                        answer: true,
                        data: data.clone(),
                        to,
                        next: now + T1,
                        interval: T1,
                        give_up: now + GIVE_UP,
                    });
                }
                if let Some(leg) = call.legs.get_mut(&side.other()) {
                    leg.last_answer = Some(data.clone());
                }
                out.push(Action::Send { to, data });
            }
            return true;
        }
        match method {
            Method::Bye => code < 200 || call.state != State::Ending,
            Method::Invite if side == call.callee_side() && cseq == 1 => {
                self.initial_response(call, side, msg, code, now, relays, out)
            }
            _ => true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn initial_response(
        &mut self,
        call: &mut Call,
        side: Side,
        msg: &Message,
        code: u16,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> bool {
        let invite = call.invite.clone();
        if code < 200 {
            if code > 100 {
                if !call.provisional {
                    call.deadline = Some(now + self.cfg.ring_timeout);
                }
                call.provisional = true;
                if call.state == State::Calling {
                    let body = self.body_for(call, side, msg, relays);
                    if let Some((to, data)) =
                        self.answer(call, call.caller_side, &invite, code, msg.reason(), body)
                    {
                        out.push(Action::Send { to, data });
                    }
                }
            } else if !call.provisional {
                call.deadline = Some(now + self.cfg.ring_timeout);
            }
            return true;
        }
        if code < 300 {
            // Answered: the dialog on the callee's leg is confirmed with an ACK.
            let first = call.state == State::Calling || call.state == State::Cancelling;
            if let Some(leg) = call.legs.get_mut(&side) {
                let known = leg.remote_tag.is_some();
                leg.remote_tag = msg.to_tag().map(str::to_owned);
                if !known {
                    if let Some(c) = contact_uri(msg) {
                        leg.target = c;
                    }
                    leg.route_set = msg
                        .headers_named(HeaderName::RecordRoute)
                        .flat_map(confab_sip::header::split_values)
                        .map(str::to_owned)
                        .collect();
                    leg.route_set.reverse();
                }
            }
            if let Some((to, data, _)) = self.dialog_request(call, side, Method::Ack, Some(1), None)
            {
                out.push(Action::Send { to, data });
            }
            if !first {
                return true; // a retransmitted 2xx: ACKed again
            }
            if let Some(t) = &call.record.trunk {
                call.record.attempts.push((t.clone(), code));
            }
            if call.state == State::Cancelling {
                // Answered while being cancelled: hung up at once.
                if let Some((to, data, _)) =
                    self.dialog_request(call, side, Method::Bye, None, None)
                {
                    out.push(Action::Send { to, data });
                }
                return false;
            }
            call.state = State::Confirmed;
            call.deadline = None;
            call.record.answered = Some(now);
            call.record.code = code;
            let body = self.body_for(call, side, msg, relays);
            let caller_side = call.caller_side;
            if let Some((to, data)) =
                self.answer(call, caller_side, &invite, code, msg.reason(), body)
            {
                call.push_retrans(Retrans {
                    side: caller_side,
                    cseq: invite.cseq().0,
                    answer: true,
                    data: data.clone(),
                    to,
                    next: now + T1,
                    interval: T1,
                    give_up: now + GIVE_UP,
                });
                if let Some(leg) = call.legs.get_mut(&caller_side) {
                    leg.last_answer = Some(data.clone());
                }
                out.push(Action::Send { to, data });
            }
            return true;
        }
        // A failure: ACKed; the next trunk on 503/408 while calling, else told to the caller.
        if let Some(inv) = &call.out_invite
            && inv.call_id() == msg.call_id()
            && let Some(leg) = call.legs.get(&side)
        {
            out.push(Action::Send {
                to: leg.peer,
                data: build_non2xx_ack(inv, msg),
            });
        } else {
            return true;
        }
        if let Some(t) = &call.record.trunk {
            call.record.attempts.push((t.clone(), code));
        }
        if call.state == State::Cancelling {
            return false;
        }
        if call.state != State::Calling {
            return true;
        }
        self.fail(
            call,
            code,
            msg.reason().map(str::to_owned),
            now,
            relays,
            out,
        )
    }

    /// The current attempt failed with `code`: the next trunk, or the caller told.
    /// `false`: the call is over.
    fn fail(
        &mut self,
        call: &mut Call,
        code: u16,
        reason: Option<String>,
        now: Instant,
        relays: &mut dyn Relays,
        out: &mut Vec<Action>,
    ) -> bool {
        if matches!(code, 408 | 503) && call.attempt + 1 < call.targets.len() {
            call.attempt += 1;
            debug!(
                call = call.id,
                code, "mediation: failing over to the next trunk"
            );
            self.send_attempt(call, now, relays, out);
            return true;
        }
        call.record.code = code;
        let invite = call.invite.clone();
        if let Some((to, data)) = self.answer(
            call,
            call.caller_side,
            &invite,
            code,
            reason.as_deref(),
            None,
        ) {
            out.push(Action::Send { to, data });
        }
        false
    }

    /// The next instant [`Mediation::poll`] has work.
    /// (The earliest armed timer: it may belong to a call that ended or whose
    /// timer moved; `poll` then finds nothing to do.)
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((due, _))| *due)
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant, relays: &mut dyn Relays) -> Vec<Action> {
        let mut out = Vec::new();
        let mut due: Vec<u64> = Vec::new();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self
                .calls
                .get(&id)
                .and_then(|c| c.next_due())
                .is_some_and(|d| d <= now)
            {
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        for id in due {
            let Some(mut call) = self.calls.remove(&id) else {
                continue;
            };
            // RFC 3261 13.3.1.4: a 2xx never acknowledged within 64*T1 ends the
            // session with a BYE (both legs); kept, such calls would count
            // against `max_calls` for good (bench/mediation.sh overload steps).
            let unacked = call.state == State::Confirmed
                && call.retrans.iter().any(|r| r.answer && r.give_up <= now);
            call.retrans.retain(|r| r.give_up > now);
            if unacked {
                for side in [Side::Pool, Side::Gateway] {
                    if let Some((to, data, _)) =
                        self.dialog_request(&mut call, side, Method::Bye, None, None)
                    {
                        out.push(Action::Send { to, data });
                    }
                }
                self.end(call, now, relays, &mut out);
                continue;
            }
            for r in &mut call.retrans {
                if r.next <= now {
                    out.push(Action::Send {
                        to: r.to,
                        data: r.data.clone(),
                    });
                    r.interval = (r.interval * 2).min(Duration::from_secs(4));
                    r.next = now + r.interval;
                }
            }
            let mut keep = true;
            if call.deadline.is_some_and(|d| d <= now) {
                call.deadline = None;
                keep = match call.state {
                    State::Calling => {
                        // No answer in time: cancelled there if it rang, next trunk.
                        if call.provisional {
                            self.cancel(&mut call, &mut out);
                        }
                        let side = call.callee_side();
                        call.retrans.retain(|r| r.side != side);
                        if let Some(t) = &call.record.trunk {
                            call.record.attempts.push((t.clone(), 408));
                        }
                        let code = if call.provisional { 480 } else { 408 };
                        self.fail(&mut call, code, None, now, relays, &mut out)
                    }
                    State::Confirmed => self.transfer_timeout(&mut call, now, &mut out),
                    State::Cancelling | State::Ending => false,
                };
            }
            self.keep_or_end(call, keep, now, relays, &mut out);
        }
        out
    }
}

impl Call {
    fn invite_src(&self) -> SocketAddr {
        self.legs
            .get(&self.caller_side)
            .map(|l| l.peer)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

#[cfg(test)]
mod tests {
    use super::strip_tag;

    #[test]
    fn strips_the_tag_parameter_only() {
        assert_eq!(strip_tag("<sip:a@b>;tag=12;x=1"), "<sip:a@b>;x=1");
        assert_eq!(
            strip_tag("\"A\" <sip:a@b;tag=no>"),
            "\"A\" <sip:a@b;tag=no>"
        );
        assert_eq!(strip_tag("<sip:a@b>;TAG=1"), "<sip:a@b>");
        assert_eq!(strip_tag("sip:a@b"), "sip:a@b");
    }
}
