//! The transaction layer of RFC 3261 §17 as a sans-IO state machine.
//!
//! [`Transactions`] matches incoming requests to server transactions (absorbing
//! retransmissions and the ACK of a non-2xx final response) and incoming responses to
//! client transactions, and drives the retransmission and timeout timers. It never
//! touches a socket or a clock: callers pass `now` and send what it returns. `T` is the
//! caller's notion of where to send (a transport, connection and address).
//!
//! Requests without an RFC 3261 branch (RFC 2543 peers, and pidgin-sipe for INVITE,
//! ACK, MESSAGE and BYE) are matched on Call-ID, CSeq, From tag and the top Via's
//! sent-by (§17.2.3).

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::RequestBuilder;
use crate::completed::Completed;
use crate::hashed_map::HashedMap;
use crate::header::HeaderName;
use crate::message::{Limits, Message};
use crate::method::Method;
use crate::timers::{Due, TimerQueues};

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum duration a message remains in the network.
pub const T4: Duration = Duration::from_secs(5);

pub use crate::server_key::ServerKey;

/// Identifies a client transaction: our branch and the method (a CANCEL shares the
/// INVITE's branch).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ClientKey {
    pub branch: Box<str>,
    pub method: Method,
}

impl ClientKey {
    pub fn of_response(msg: &Message) -> Option<ClientKey> {
        let branch = msg.top_via().branch()?;
        Some(ClientKey {
            branch: branch.into(),
            method: msg.cseq().1.clone(),
        })
    }
}

/// What an incoming request is, as far as transactions go.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestMatch<T> {
    /// A new request: a server transaction now exists for it.
    New(ServerKey),
    /// A retransmission; resend this (the last response), if any.
    Retransmission(Option<(T, Bytes)>),
    /// The ACK for a non-2xx final response: absorbed.
    AckAbsorbed,
    /// An ACK that matches no transaction (the ACK for a 2xx): the core routes it.
    Ack,
}

/// What an incoming response is.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseMatch<T> {
    /// Matches no client transaction.
    Stray,
    /// A provisional response: every one in Proceeding goes up (§17.1.1.2).
    Provisional(ClientKey),
    /// The final response; the transaction is now completed. For a non-2xx answer
    /// to an INVITE, the ACK is returned to be sent.
    Final(ClientKey, Option<(T, Bytes)>),
    /// A retransmitted final response, absorbed (resend the ACK if one is given).
    Retransmission(Option<(T, Bytes)>),
}

/// Something the caller must do because time passed.
#[derive(Debug, PartialEq, Eq)]
pub enum TimerEvent<T> {
    /// Send these bytes again.
    Retransmit(T, Bytes),
    /// A client transaction got no final response (Timer B/F): act as if 408.
    ClientTimeout(ClientKey),
    /// An INVITE server transaction's final response was never acknowledged (Timer H).
    ServerNoAck(ServerKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SState {
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026 §7.1: an INVITE answered with a 2xx. Retransmitted INVITEs are
    /// absorbed, ACKs and further 2xx pass, until Timer L.
    Accepted,
}

struct ServerTx<T> {
    invite: bool,
    reliable: bool,
    state: SState,
    target: T,
    last: Option<Bytes>,
    retrans_interval: Duration,
    epoch: u32,
    /// Whether the source is known to be genuine (a connection, or a request the
    /// caller authenticated): only then is a final response to an INVITE kept and
    /// retransmitted over UDP. See [`Transactions::mark_verified`].
    verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CState {
    Trying,
    Proceeding,
    Completed,
}

struct ClientTx<T> {
    invite: bool,
    reliable: bool,
    state: CState,
    target: T,
    request: Bytes,
    ack: Option<Bytes>,
    interval: Duration,
    epoch: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    // server
    SRetransmit, // Timer G
    SNoAck,      // Timer H
    SKill,       // Timers I, J, L
    // client
    CRetransmit, // Timers A, E
    CTimeout,    // Timers B, F
    CKill,       // Timers D, K
}

/// Which transaction a timer belongs to. The key is shared with the transaction
/// table (`Arc`), so scheduling a timer allocates nothing.
enum TimerRef {
    Server(Arc<ServerKey>),
    Client(Arc<ClientKey>),
}

/// One pending timer (in [`TimerQueues`], which orders them). A timer whose
/// transaction has moved on (another epoch) or is gone is skipped when it fires.
struct Timer {
    kind: TimerKind,
    epoch: u32,
    r: TimerRef,
}

/// All transactions of one server.
pub struct Transactions<T> {
    /// Values boxed (as in `client`): a few hundred thousand transactions are
    /// live at a few thousand calls/s, and a table of ~110-byte entries moved tens
    /// of MB at each doubling, a stall of tens of ms on the core thread. Hashes
    /// kept beside the keys for the same reason ([`HashedMap`]).
    server: HashedMap<Arc<ServerKey>, Box<ServerTx<T>>>,
    /// Completed non-INVITE server transactions over UDP (Timer J), kept compactly.
    completed: Completed,
    client: HashedMap<Arc<ClientKey>, Box<ClientTx<T>>>,
    timers: TimerQueues<Timer>,
    /// Scratch space of [`Transactions::poll`] (kept to reuse its allocation).
    due: Vec<Due<Timer>>,
}

impl<T: Clone + Hash> Default for Transactions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Hash> Transactions<T> {
    pub fn new() -> Self {
        Transactions {
            server: HashedMap::new(),
            completed: Completed::new(),
            client: HashedMap::new(),
            timers: TimerQueues::default(),
            due: Vec::new(),
        }
    }

    /// Live server transactions, including completed ones kept for Timer J.
    pub fn server_count(&self) -> usize {
        self.server.len() + self.completed.len()
    }

    /// Completed non-INVITE server transactions kept for Timer J.
    pub fn completed_count(&self) -> usize {
        self.completed.len()
    }

    /// Bounds the memory of completed non-INVITE server transactions kept for
    /// Timer J (key and response bytes plus a fixed overhead per entry; 512 MiB by
    /// default). Past it the oldest end early: a late retransmission of their
    /// request is then handled as a new request.
    pub fn set_completed_limit(&mut self, bytes: usize) {
        self.completed.set_max_bytes(bytes);
    }

    /// Declares header lines (without CRLF, e.g. `Server: confab/0.1.0`) that the
    /// TU's responses often carry verbatim: completed non-INVITE transactions kept
    /// for Timer J store a two-byte reference instead of each copy. Retransmitted
    /// responses are byte for byte what was sent. At most 64 lines are used.
    pub fn set_common_lines(&mut self, lines: &[&[u8]]) {
        self.completed.set_common_lines(lines);
    }

    pub fn client_count(&self) -> usize {
        self.client.len()
    }

    /// Pending timers, including those of transactions that already ended (each
    /// completed non-INVITE transaction kept for Timer J counts as one).
    pub fn timer_count(&self) -> usize {
        self.timers.len() + self.completed.len()
    }

    fn schedule(
        &mut self,
        now: Instant,
        delay: Duration,
        kind: TimerKind,
        epoch: u32,
        r: TimerRef,
    ) {
        self.timers.push(now, delay, Timer { kind, epoch, r });
    }

    /// Gives memory back after a burst: the tables never shrink on their own, so a
    /// peak of transactions would otherwise stay allocated for good.
    fn shrink(&mut self) {
        fn shrink_map<K: Eq + Hash, V>(m: &mut HashedMap<K, V>) {
            if m.capacity() > 4096 && m.capacity() > 4 * m.len() {
                m.shrink_to(2 * m.len());
            }
        }
        shrink_map(&mut self.server);
        shrink_map(&mut self.client);
        self.timers.shrink();
    }

    /// Classifies an incoming request; creates a server transaction for a new one.
    pub fn on_request(
        &mut self,
        msg: &Message,
        target: T,
        reliable: bool,
        now: Instant,
    ) -> RequestMatch<T> {
        let Some(key) = ServerKey::of(msg) else {
            return RequestMatch::Ack;
        };
        let is_ack = msg.method() == Some(&Method::Ack);
        if let Some((shared, tx)) = self.server.get_key_value(&key) {
            if is_ack {
                if tx.invite && tx.state == SState::Completed {
                    let shared = shared.clone();
                    let Some(tx) = self.server.get_mut(&key) else {
                        return RequestMatch::AckAbsorbed;
                    };
                    tx.state = SState::Confirmed;
                    tx.epoch += 1;
                    let epoch = tx.epoch;
                    // Timer I: absorb further ACKs, then forget.
                    if tx.reliable {
                        self.server.remove(&key);
                    } else {
                        self.schedule(now, T4, TimerKind::SKill, epoch, TimerRef::Server(shared));
                    }
                    return RequestMatch::AckAbsorbed;
                }
                if tx.state == SState::Confirmed {
                    return RequestMatch::AckAbsorbed;
                }
                return RequestMatch::Ack;
            }
            if tx.state == SState::Accepted {
                // RFC 6026 §7.1: absorbed; the 2xx is retransmitted end to end.
                return RequestMatch::Retransmission(None);
            }
            return RequestMatch::Retransmission(tx.last.clone().map(|b| (tx.target.clone(), b)));
        }
        if is_ack {
            return RequestMatch::Ack;
        }
        // The stored response, rebuilt from this request, if it is a copy of a
        // completed one from the same source (otherwise it is new, see
        // `crate::completed`).
        if let Some(resend) = self.completed.lookup(&key, msg, &target) {
            return RequestMatch::Retransmission(Some((target, resend)));
        }
        self.server.insert(
            Arc::new(key.clone()),
            Box::new(ServerTx {
                invite: msg.method() == Some(&Method::Invite),
                reliable,
                state: SState::Proceeding,
                target,
                last: None,
                retrans_interval: T1,
                epoch: 0,
                verified: reliable,
            }),
        );
        RequestMatch::New(key)
    }

    /// Marks a server transaction's source as genuine (the request was
    /// authenticated, comes from a trusted peer or belongs to a known dialog).
    /// Over UDP, a final non-2xx response to an unverified INVITE is sent once and
    /// the transaction ends (RFC 3261 §17.2.1 allows a stateless answer): a spoofed
    /// source must not make the server retransmit it up to eleven times.
    pub fn mark_verified(&mut self, key: &ServerKey) {
        if let Some(tx) = self.server.get_mut(key) {
            tx.verified = true;
        }
    }

    /// Whether a server transaction exists (e.g. the INVITE a CANCEL targets).
    pub fn has_server(&self, key: &ServerKey) -> bool {
        self.server.contains_key(key) || self.completed.contains(key)
    }

    /// Records a response sent in a server transaction and returns where to send
    /// it. `None` when the transaction does not exist (any more).
    pub fn respond(
        &mut self,
        key: &ServerKey,
        code: u16,
        response: Bytes,
        now: Instant,
    ) -> Option<T> {
        self.respond_inner(key, None, code, response, now)
    }

    /// [`Transactions::respond`] for a response built from `request` (e.g. by
    /// [`crate::ResponseBuilder`]): a completed non-INVITE transaction kept for
    /// Timer J then stores only what the response does not copy from its request
    /// (RFC 3261 §8.2.6.2: Via, From, To without the tag, Call-ID, CSeq), and
    /// rebuilds the rest from the retransmitted request. A request with the key
    /// of a completed one that differs in those lines, or arrives from another
    /// address, is not a copy of it: it is handled as a new request rather than
    /// answered with a response never sent.
    pub fn respond_to(
        &mut self,
        key: &ServerKey,
        request: &Message,
        code: u16,
        response: Bytes,
        now: Instant,
    ) -> Option<T> {
        self.respond_inner(key, Some(request), code, response, now)
    }

    fn respond_inner(
        &mut self,
        key: &ServerKey,
        request: Option<&Message>,
        code: u16,
        response: Bytes,
        now: Instant,
    ) -> Option<T> {
        let (shared, tx) = self.server.get_key_value(key)?;
        if tx.state == SState::Accepted && (200..300).contains(&code) {
            // Another 2xx (forking): passed on (RFC 6026 §7.1).
            return Some(tx.target.clone());
        }
        if tx.state != SState::Proceeding {
            return None;
        }
        let shared = shared.clone();
        let tx = self.server.get_mut(key)?;
        let target = tx.target.clone();
        if code < 200 {
            tx.last = Some(response);
            return Some(target);
        }
        tx.epoch += 1;
        let epoch = tx.epoch;
        if tx.invite {
            if code < 300 {
                // 2xx: Accepted until Timer L (RFC 6026); the TU retransmits 2xx.
                tx.state = SState::Accepted;
                tx.last = None;
                self.schedule(
                    now,
                    64 * T1,
                    TimerKind::SKill,
                    epoch,
                    TimerRef::Server(shared),
                );
                return Some(target);
            }
            if !tx.verified {
                // Stateless answer to an unverified source (see `mark_verified`).
                self.server.remove(key);
                return Some(target);
            }
            tx.last = Some(response);
            tx.state = SState::Completed;
            let reliable = tx.reliable;
            let interval = tx.retrans_interval;
            if !reliable {
                self.schedule(
                    now,
                    interval,
                    TimerKind::SRetransmit,
                    epoch,
                    TimerRef::Server(shared.clone()),
                );
            }
            self.schedule(
                now,
                64 * T1,
                TimerKind::SNoAck,
                epoch,
                TimerRef::Server(shared),
            );
        } else {
            let reliable = tx.reliable;
            drop(shared);
            self.server.remove(key);
            if !reliable {
                // Timer J: keep only the response, to answer retransmissions.
                self.completed
                    .insert(key, request, &response, &target, now + 64 * T1);
            }
        }
        Some(target)
    }

    /// Sends a final response to a non-INVITE request statelessly (RFC 3261 §8.2.7):
    /// the transaction ends at once instead of keeping the response for Timer J, so a
    /// retransmitted request is handled as new. Meant for challenges (401/407), which
    /// are as good answered again with a fresh nonce, and which would otherwise hold a
    /// response for 32 s per request over UDP. An INVITE (which needs its ACK absorbed)
    /// or a provisional code gets the ordinary [`Transactions::respond`].
    pub fn respond_stateless(
        &mut self,
        key: &ServerKey,
        code: u16,
        response: Bytes,
        now: Instant,
    ) -> Option<T> {
        let tx = self.server.get(key)?;
        if tx.invite || code < 200 {
            return self.respond(key, code, response, now);
        }
        if tx.state != SState::Proceeding {
            return None;
        }
        self.server.remove(key).map(|tx| tx.target)
    }

    /// Starts a client transaction for a request confab sends (forwarded or its
    /// own). The caller sends `request` once now; retransmissions come from
    /// [`Transactions::poll`].
    pub fn start_client(
        &mut self,
        key: ClientKey,
        request: Bytes,
        target: T,
        reliable: bool,
        now: Instant,
    ) {
        let invite = key.method == Method::Invite;
        let key = Arc::new(key);
        if !reliable {
            self.schedule(
                now,
                T1,
                TimerKind::CRetransmit,
                0,
                TimerRef::Client(key.clone()),
            );
        }
        self.schedule(
            now,
            64 * T1,
            TimerKind::CTimeout,
            0,
            TimerRef::Client(key.clone()),
        );
        self.client.insert(
            key,
            Box::new(ClientTx {
                invite,
                reliable,
                state: CState::Trying,
                target,
                request,
                ack: None,
                interval: T1,
                epoch: 0,
            }),
        );
    }

    /// Drops a client transaction (e.g. its branch was cancelled and answered).
    pub fn forget_client(&mut self, key: &ClientKey) {
        self.client.remove(key);
    }

    /// Classifies an incoming response.
    pub fn on_response(&mut self, msg: &Message, now: Instant) -> ResponseMatch<T> {
        let Some(code) = msg.status() else {
            return ResponseMatch::Stray;
        };
        let Some(key) = ClientKey::of_response(msg) else {
            return ResponseMatch::Stray;
        };
        let Some((shared, _)) = self.client.get_key_value(&key) else {
            return ResponseMatch::Stray;
        };
        let shared = shared.clone();
        let Some(tx) = self.client.get_mut(&key) else {
            return ResponseMatch::Stray;
        };
        if tx.state == CState::Completed {
            return ResponseMatch::Retransmission(tx.ack.clone().map(|a| (tx.target.clone(), a)));
        }
        if code < 200 {
            // Every provisional response goes up (§17.1.1.2, §17.1.4.2): a 180 or
            // a 183 with early media after a 100 is news, not a retransmission.
            let first = tx.state == CState::Trying;
            tx.state = CState::Proceeding;
            if tx.invite && first {
                // Timer A stops once a provisional response arrives.
                tx.epoch += 1;
            }
            return ResponseMatch::Provisional(key);
        }
        tx.epoch += 1;
        let epoch = tx.epoch;
        if tx.invite && code < 300 {
            self.client.remove(&key);
            return ResponseMatch::Final(key, None);
        }
        tx.state = CState::Completed;
        // The request is only needed for retransmissions, which stop now.
        let request = std::mem::take(&mut tx.request);
        let mut ack_out = None;
        if tx.invite
            && let Ok(req) = Message::parse(
                request,
                &Limits {
                    max_message_bytes: usize::MAX,
                    max_headers: usize::MAX,
                },
            )
        {
            let ack = build_non2xx_ack(&req, msg);
            tx.ack = Some(ack.clone());
            ack_out = Some((tx.target.clone(), ack));
        }
        let wait = match (tx.reliable, tx.invite) {
            (true, _) => Duration::ZERO,
            (false, true) => Duration::from_secs(32), // Timer D
            (false, false) => T4,                     // Timer K
        };
        if wait.is_zero() {
            self.client.remove(&key);
        } else {
            self.schedule(now, wait, TimerKind::CKill, epoch, TimerRef::Client(shared));
        }
        ResponseMatch::Final(key, ack_out)
    }

    /// When the next timer fires, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.next_deadline();
        match (timer, self.completed.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<TimerEvent<T>> {
        let mut out = Vec::new();
        self.completed.expire(now);
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        let fired = !due.is_empty();
        for Due { item: t, .. } in due.drain(..) {
            match t.r {
                TimerRef::Server(key) => self.fire_server(t.kind, key, t.epoch, now, &mut out),
                TimerRef::Client(key) => self.fire_client(t.kind, key, t.epoch, now, &mut out),
            }
        }
        self.due = due;
        if fired {
            self.shrink();
        }
        out
    }

    fn fire_server(
        &mut self,
        kind: TimerKind,
        key: Arc<ServerKey>,
        epoch: u32,
        now: Instant,
        out: &mut Vec<TimerEvent<T>>,
    ) {
        let Some(tx) = self.server.get_mut(&key) else {
            return;
        };
        if tx.epoch != epoch {
            return;
        }
        match kind {
            TimerKind::SRetransmit if tx.state == SState::Completed => {
                if let Some(last) = &tx.last {
                    out.push(TimerEvent::Retransmit(tx.target.clone(), last.clone()));
                }
                tx.retrans_interval = (tx.retrans_interval * 2).min(T2);
                let delay = tx.retrans_interval;
                self.schedule(
                    now,
                    delay,
                    TimerKind::SRetransmit,
                    epoch,
                    TimerRef::Server(key),
                );
            }
            TimerKind::SNoAck if tx.state == SState::Completed => {
                self.server.remove(&key);
                out.push(TimerEvent::ServerNoAck(unshare(key)));
            }
            TimerKind::SKill => {
                self.server.remove(&key);
            }
            _ => {}
        }
    }

    fn fire_client(
        &mut self,
        kind: TimerKind,
        key: Arc<ClientKey>,
        epoch: u32,
        now: Instant,
        out: &mut Vec<TimerEvent<T>>,
    ) {
        let Some(tx) = self.client.get_mut(&key) else {
            return;
        };
        match kind {
            TimerKind::CRetransmit => {
                if tx.state == CState::Completed || tx.epoch != epoch {
                    return;
                }
                out.push(TimerEvent::Retransmit(
                    tx.target.clone(),
                    tx.request.clone(),
                ));
                tx.interval = if tx.invite {
                    tx.interval * 2
                } else if tx.state == CState::Proceeding {
                    T2
                } else {
                    (tx.interval * 2).min(T2)
                };
                let delay = tx.interval;
                self.schedule(
                    now,
                    delay,
                    TimerKind::CRetransmit,
                    epoch,
                    TimerRef::Client(key),
                );
            }
            // Timer B only runs in Calling: once a 1xx arrived, an INVITE waits for
            // its final response (the TU's Timer C); Timer F runs until then.
            TimerKind::CTimeout
                if tx.state == CState::Trying || (!tx.invite && tx.state == CState::Proceeding) =>
            {
                self.client.remove(&key);
                out.push(TimerEvent::ClientTimeout(unshare(key)));
            }
            TimerKind::CKill if tx.epoch == epoch => {
                self.client.remove(&key);
            }
            _ => {}
        }
    }
}

/// The key out of its `Arc` (cloned only if a timer still holds it).
fn unshare<K: Clone>(key: Arc<K>) -> K {
    Arc::try_unwrap(key).unwrap_or_else(|k| (*k).clone())
}

/// The ACK a client transaction sends for a non-2xx final response to an INVITE
/// (§17.1.1.3): same Request-URI, Call-ID, From, top Via and Route as the INVITE, the
/// To of the response, CSeq number of the INVITE with method ACK.
pub fn build_non2xx_ack(invite: &Message, response: &Message) -> Bytes {
    let mut b = RequestBuilder::new(Method::Ack, invite.request_uri().unwrap_or(""))
        .header("Via", invite.top_via_str())
        .header("Max-Forwards", "70")
        .header("From", invite.header(HeaderName::From).unwrap_or(""))
        .header("To", response.header(HeaderName::To).unwrap_or(""))
        .header("Call-ID", invite.call_id())
        .header("CSeq", format!("{} ACK", invite.cseq().0));
    for r in invite.headers_named(HeaderName::Route) {
        b = b.header("Route", r);
    }
    b.build()
}
