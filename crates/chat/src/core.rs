//! The sans-IO Persistent Chat server: SIP dialogs with each client, XCCOS commands,
//! live room membership, fan-out, and the backfill cache.
//!
//! Fed parsed SIP messages (with the address they came from), the clock, the stored
//! directory and the results of store requests; produces SIP messages to send and store
//! requests. The authenticated user is the `P-Asserted-Identity` the front end put on
//! the dialog-creating INVITE (requests without one are refused).
//!
//! A post is handed to the store first ([`StoreRequest::SavePost`]); only when the
//! store reports it saved ([`ChatCore::on_post_saved`]) is the author's INFO answered
//! 200 and the post fanned out to the room.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_frontend::{Dest, Output, Transport};
use confab_sip::{HeaderName, Message, Method, NameAddr, RequestBuilder, ResponseBuilder};
use confab_store::{ChatDirectory, ChatPost, ChatRoom};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::compliance::{ComplianceEvent, ComplianceKind};
use crate::rules::Directory;
use crate::xccos::{self, Command, Incoming};

mod remote;

/// Static settings of the service.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// SIP domain (`example.com`).
    pub domain: String,
    /// Lookup URI clients INVITE first (`sip:ocschat@DOMAIN`).
    pub lookup_uri: String,
    /// Chat-server URI returned by `rpl:requri` (`sip:chatsrv@DOMAIN`).
    pub server_uri: String,
    /// Session-Expires of our 200s (seconds).
    pub session_expires: u32,
    /// `host:port` of this service (Via, Contact).
    pub host_port: String,
    /// Transport this service is reached by (Via, Contact `transport=`).
    pub transport: Transport,
    /// Report joins, leaves and history reads ([`ChatCore::drain_compliance`]).
    pub compliance: bool,
    /// This server's name in a chat pool of several servers: joins and leaves are
    /// reported for the others ([`ChatCore::drain_pool_events`]), and their posts,
    /// joins and leaves are fed in (see the `remote` module).
    pub pool_server: Option<String>,
    /// The rooms this server serves when the topology has several Persistent Chat
    /// pools on one store (`None`: every room of the store).
    pub pool_scope: Option<PoolScope>,
}

/// Which pool's rooms a chat server serves: its own pool's (rooms whose `pool` is
/// its FQDN), and, on the topology's default chat pool, those with no pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolScope {
    /// This server's pool (its FQDN).
    pub pool: String,
    /// Whether it is the default chat pool (the rooms with no pool are its own).
    pub default: bool,
}

impl PoolScope {
    /// Whether a room or category of `pool` (empty: the default pool) is served here.
    pub fn serves(&self, pool: &str) -> bool {
        if pool.is_empty() {
            self.default
        } else {
            pool.eq_ignore_ascii_case(&self.pool)
        }
    }
}

impl CoreConfig {
    pub fn new(domain: &str, host_port: &str) -> CoreConfig {
        CoreConfig {
            domain: domain.to_ascii_lowercase(),
            lookup_uri: format!("sip:ocschat@{}", domain.to_ascii_lowercase()),
            server_uri: format!("sip:chatsrv@{}", domain.to_ascii_lowercase()),
            session_expires: 300,
            host_port: host_port.to_owned(),
            transport: Transport::Tcp,
            compliance: false,
            pool_server: None,
            pool_scope: None,
        }
    }
}

/// Work for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRequest {
    /// Persist a post; report with [`ChatCore::on_post_saved`].
    SavePost {
        op: u64,
        room_id: String,
        author: String,
        ts_ms: i64,
        text: String,
    },
}

/// What kind of dialog a client has with us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialogKind {
    Lookup,
    Server,
}

#[derive(Debug)]
struct Dialog {
    kind: DialogKind,
    /// Normalized address (`alice@example.com`).
    user: String,
    /// The dialog's Call-ID (the map key adds our tag: see [`dialog_key`]).
    call_id: String,
    /// The client's From tag.
    remote_tag: String,
    /// Our URI in the dialog (the INVITE's To URI).
    local_uri: String,
    local_tag: String,
    /// The client's From header value (with its tag): our To.
    remote: String,
    /// The client's Contact URI: Request-URI of our requests.
    target: String,
    /// Record-Route of the INVITE, in order: our Route set.
    route: Vec<String>,
    /// Where the INVITE came from (the front end, or the client itself).
    peer: Dest,
    cseq: u32,
    rooms: BTreeSet<String>,
    last_seen: Instant,
}

/// A post waiting for the store.
#[derive(Debug)]
struct PendingPost {
    call_id: String,
    envid: String,
    request: Message,
    src: Dest,
    room_id: String,
    author: String,
    ts_ms: i64,
    text: String,
}

/// Counters for metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub posts: u64,
    pub deliveries: u64,
    pub refused_posts: u64,
    pub joins: u64,
    /// Posts stored by the pool's other servers and fanned out here.
    pub remote_posts: u64,
}

/// The key of a dialog: its Call-ID and our tag. The Call-ID alone does not
/// identify a client's dialog: SIPE draws Call-IDs and tags from `rand()`, so
/// clients started in the same second send the same ones.
fn dialog_key(call_id: &str, local_tag: &str) -> String {
    format!("{call_id}\n{local_tag}")
}

/// The dialog a client's request belongs to (its To tag is ours).
fn key_of_request(msg: &Message) -> String {
    dialog_key(msg.call_id(), msg.to_tag().unwrap_or(""))
}

/// Where an in-dialog request of ours goes: the first hop of the route set (the
/// front end's Record-Route), else where the dialog's INVITE came from.
///
/// When the INVITE came over a connection from the host the first hop names, the
/// request goes over that same connection (falling back to the hop's address if it
/// closed), whatever transport the hop's URI names. Our responses travel on that
/// connection, so the front end gets a reply INFO after the 200 of the command that
/// caused it and relays them in that order. Over a second connection of our own
/// (the front end connects from an ephemeral port, so the hop's address never equals
/// the peer's) the reply INFO could overtake the 200, and a hop URI naming UDP would
/// put it where nothing retransmits it.
fn next_hop(d: &Dialog) -> Dest {
    let hop = d
        .route
        .first()
        .and_then(|r| NameAddr::parse(r).ok())
        .and_then(|na| confab_sip::Uri::parse(na.uri).ok())
        .and_then(|u| Dest::for_uri(&u, Transport::Udp));
    match hop {
        None => d.peer,
        Some(hop) if hop.addr == d.peer.addr => d.peer,
        Some(hop)
            if d.peer.conn.is_some()
                && d.peer.transport.reliable()
                && hop.addr.ip() == d.peer.addr.ip() =>
        {
            Dest {
                transport: d.peer.transport,
                addr: hop.addr,
                conn: d.peer.conn,
            }
        }
        Some(hop) => hop,
    }
}

/// The Persistent Chat server core.
pub struct ChatCore {
    cfg: CoreConfig,
    dir: Directory,
    /// Dialogs by [`dialog_key`].
    dialogs: FxHashMap<String, Dialog>,
    /// Room id → keys of the dialogs joined to it (in join order).
    live: FxHashMap<String, Vec<String>>,
    /// Room id → newest visible posts, oldest first.
    history: FxHashMap<String, VecDeque<ChatPost>>,
    pending: FxHashMap<u64, PendingPost>,
    next_op: u64,
    next_envid: u64,
    branch: u64,
    tag_seed: u64,
    out: Vec<Output>,
    store_out: Vec<StoreRequest>,
    compliance_out: Vec<ComplianceEvent>,
    /// Room id → user → the other pool servers the user is joined through.
    remote: FxHashMap<String, FxHashMap<String, BTreeSet<String>>>,
    pool_out: Vec<confab_store::ChatPoolEvent>,
    /// Rooms of the store that another pool serves: URI → that pool.
    elsewhere: FxHashMap<String, String>,
    pub stats: Stats,
}

/// The most posts kept per room for backfill (Lync's DefaultChatHistory maximum).
const MAX_HISTORY: usize = 500;

fn normalize_aor(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    let uri = na.parsed_uri().ok()?;
    uri.user?;
    Some(uri.aor())
}

impl ChatCore {
    /// A core with an empty directory; `seed` varies tags and branches per process.
    pub fn new(cfg: CoreConfig, seed: u64) -> ChatCore {
        ChatCore {
            cfg,
            dir: Directory::default(),
            dialogs: FxHashMap::default(),
            live: FxHashMap::default(),
            history: FxHashMap::default(),
            pending: FxHashMap::default(),
            next_op: 1,
            next_envid: 1,
            branch: seed,
            tag_seed: seed.rotate_left(17) ^ 0x5bd1_e995,
            out: Vec::new(),
            store_out: Vec::new(),
            compliance_out: Vec::new(),
            remote: FxHashMap::default(),
            pool_out: Vec::new(),
            elsewhere: FxHashMap::default(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    /// Number of client dialogs.
    pub fn dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Room memberships of connected dialogs, over all rooms (a metric).
    pub fn memberships(&self) -> usize {
        self.live.values().map(Vec::len).sum()
    }

    /// Users (addresses) currently joined to a room, in join order.
    /// Linear in the room's size (a user joined from several dialogs counts once):
    /// a 16,000-member room is joined 16,000 times, so nothing here may be quadratic.
    pub fn participants(&self, room_id: &str) -> Vec<String> {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        let mut users: Vec<String> = Vec::new();
        for cid in self.live.get(room_id).into_iter().flatten() {
            if let Some(d) = self.dialogs.get(cid)
                && seen.insert(d.user.as_str())
            {
                users.push(d.user.clone());
            }
        }
        // Joined through the pool's other servers.
        for u in self.remote.get(room_id).into_iter().flat_map(|m| m.keys()) {
            if seen.insert(u.as_str()) {
                users.push(u.clone());
            }
        }
        users
    }

    /// The room's participants when there are at most `limit` of them, else `None`
    /// (stops counting at `limit + 1`).
    fn participants_up_to(&self, room_id: &str, limit: usize) -> Option<Vec<String>> {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for cid in self.live.get(room_id).into_iter().flatten() {
            if let Some(d) = self.dialogs.get(cid) {
                seen.insert(d.user.as_str());
                if seen.len() > limit {
                    return None;
                }
            }
        }
        for u in self.remote.get(room_id).into_iter().flat_map(|m| m.keys()) {
            seen.insert(u.as_str());
            if seen.len() > limit {
                return None;
            }
        }
        Some(self.participants(room_id))
    }

    /// How many users are joined to a room (each counted once).
    fn participant_count(&self, room_id: &str) -> usize {
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for cid in self.live.get(room_id).into_iter().flatten() {
            if let Some(d) = self.dialogs.get(cid) {
                seen.insert(d.user.as_str());
            }
        }
        for u in self.remote.get(room_id).into_iter().flat_map(|m| m.keys()) {
            seen.insert(u.as_str());
        }
        seen.len()
    }

    /// Whether `user` is joined to a room from any of their dialogs (here; see
    /// `is_remote_participant` for the pool's other servers).
    fn is_participant(&self, room_id: &str, user: &str) -> bool {
        self.live
            .get(room_id)
            .into_iter()
            .flatten()
            .any(|cid| self.dialogs.get(cid).is_some_and(|d| d.user == user))
    }

    /// Moves produced SIP messages into `out`.
    pub fn drain_output(&mut self, out: &mut Vec<Output>) {
        out.append(&mut self.out);
    }

    /// Moves produced store requests into `out`.
    pub fn drain_store_requests(&mut self, out: &mut Vec<StoreRequest>) {
        out.append(&mut self.store_out);
    }

    /// Moves the compliance events produced (only with `CoreConfig::compliance`) into
    /// `out`; they must be recorded before the output produced with them is sent.
    pub fn drain_compliance(&mut self, out: &mut Vec<ComplianceEvent>) {
        out.append(&mut self.compliance_out);
    }

    fn record(&mut self, kind: ComplianceKind, room_id: &str, user: &str, content: String) {
        if self.cfg.compliance {
            self.compliance_out.push(ComplianceEvent {
                kind,
                room_id: room_id.to_owned(),
                user: user.to_owned(),
                content,
            });
        }
    }

    /// Replaces the directory (categories, rooms, policy, config) and the backfill
    /// cache with what the store holds now, then drops the participants who may no
    /// longer be in their rooms (room disabled or removed, role or category changed).
    /// With a [`PoolScope`], only the rooms (and categories) of this server's pool
    /// are kept; a join of another pool's room is refused with the pool's name.
    pub fn apply_directory(&mut self, mut data: ChatDirectory, mut recent: Vec<ChatPost>) {
        self.elsewhere.clear();
        if let Some(scope) = &self.cfg.pool_scope {
            let (mine, others): (Vec<_>, Vec<_>) =
                data.rooms.into_iter().partition(|r| scope.serves(&r.pool));
            for r in others {
                let pool = if r.pool.is_empty() {
                    "the default Persistent Chat pool".to_owned()
                } else {
                    format!("Persistent Chat pool {}", r.pool)
                };
                self.elsewhere.insert(r.uri, pool);
            }
            data.rooms = mine;
            data.categories.retain(|c| scope.serves(&c.pool));
            let ids: std::collections::HashSet<&str> =
                data.rooms.iter().map(|r| r.id.as_str()).collect();
            recent.retain(|p| ids.contains(p.room_id.as_str()));
        }
        self.dir = Directory::new(data);
        let keep = self.history_len();
        self.history.clear();
        for p in recent {
            let h = self.history.entry(p.room_id.clone()).or_default();
            h.push_back(p);
            while h.len() > keep {
                h.pop_front();
            }
        }
        let room_ids: Vec<String> = self.live.keys().cloned().collect();
        for room_id in room_ids {
            let members = self.live.get(&room_id).cloned().unwrap_or_default();
            let mut dropped: Vec<(String, String)> = Vec::new();
            for cid in members {
                let Some(user) = self.dialogs.get(&cid).map(|d| d.user.clone()) else {
                    continue;
                };
                let allowed = self
                    .dir
                    .room(&room_id)
                    .is_some_and(|r| self.dir.may_read(r, &user));
                if !allowed {
                    tracing::info!(%user, room = %room_id, "participant dropped from the room");
                    dropped.push((cid, user));
                }
            }
            // Everyone still in the room (dropped ones included) first sees each
            // dropped user leave; then each gets its own rpl:part. Otherwise the
            // first one dropped of a disabled room would see nothing at all.
            let mut told: Vec<&str> = Vec::new();
            for (cid, user) in &dropped {
                if !told.contains(&user.as_str()) {
                    told.push(user);
                    self.notify_room(&room_id, cid, user, false);
                }
            }
            for (cid, _) in &dropped {
                self.leave_notified(cid, &room_id, true, false);
            }
        }
    }

    fn history_len(&self) -> usize {
        (self.dir.data.config.default_history as usize).clamp(1, MAX_HISTORY)
    }

    /// The earliest instant at which [`ChatCore::on_tick`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.dialogs
            .values()
            .map(|d| d.last_seen + self.idle_limit())
            .min()
    }

    fn idle_limit(&self) -> Duration {
        // A client refreshes every Session-Expires − 10 s; allow two missed refreshes.
        Duration::from_secs(u64::from(self.cfg.session_expires) * 2 + 32)
    }

    /// Ends dialogs whose client stopped refreshing (as if it had sent BYE).
    pub fn on_tick(&mut self, now: Instant) {
        let limit = self.idle_limit();
        let stale: Vec<String> = self
            .dialogs
            .iter()
            .filter(|(_, d)| now.saturating_duration_since(d.last_seen) >= limit)
            .map(|(k, _)| k.clone())
            .collect();
        for cid in stale {
            tracing::info!(call_id = %cid, "chat dialog expired");
            self.end_dialog(&cid);
        }
    }

    fn tag(&mut self) -> String {
        self.tag_seed = self
            .tag_seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        format!("{:016x}", self.tag_seed)
    }

    fn envid(&mut self) -> u64 {
        self.next_envid += 1;
        self.next_envid
    }

    fn reply_to(&mut self, req: &Message, src: Dest, resp: Bytes) {
        let _ = req;
        self.out.push(Output::Send {
            dest: src,
            data: resp,
        });
    }

    fn respond(&mut self, req: &Message, src: Dest, code: u16, reason: Option<&str>) {
        let mut b = ResponseBuilder::new(req, code);
        if let Some(r) = reason {
            b = b.reason(r);
        }
        if req.to_tag().is_none() && code > 100 {
            b = b.to_tag(self.tag());
        }
        let data = b.build();
        self.reply_to(req, src, data);
    }

    /// Answers an unparsable message when it can be answered (400 with the reason).
    pub fn on_parse_error(&mut self, e: &confab_sip::ParseError, src: Dest) {
        if let Some(data) = e.response() {
            self.out.push(Output::Send { dest: src, data });
        }
    }

    /// Handles one message from the network. `wall_ms` is the wall clock (post times).
    pub fn on_message(&mut self, msg: Message, src: Dest, now: Instant, wall_ms: i64) {
        if !msg.is_request() {
            self.on_response(&msg);
            return;
        }
        let Some(method) = msg.method().cloned() else {
            return;
        };
        match method {
            Method::Invite => self.on_invite(&msg, src, now),
            Method::Ack => {}
            Method::Info => self.on_info(msg, src, now, wall_ms),
            Method::Update => {
                let known = self.touch(&key_of_request(&msg), now);
                if known {
                    let data = ResponseBuilder::new(&msg, 200)
                        .header("Session-Expires", self.session_expires_value())
                        .build();
                    self.reply_to(&msg, src, data);
                } else {
                    self.respond(&msg, src, 481, None);
                }
            }
            Method::Bye => {
                let cid = key_of_request(&msg);
                if self.dialogs.contains_key(&cid) {
                    self.respond(&msg, src, 200, None);
                    self.end_dialog(&cid);
                } else {
                    self.respond(&msg, src, 481, None);
                }
            }
            Method::Cancel => self.respond(&msg, src, 481, None),
            Method::Options => {
                let data = ResponseBuilder::new(&msg, 200)
                    .header("Allow", "INVITE, ACK, BYE, CANCEL, INFO, UPDATE, OPTIONS")
                    .to_tag(self.tag())
                    .build();
                self.reply_to(&msg, src, data);
            }
            _ => {
                let data = ResponseBuilder::new(&msg, 405)
                    .header("Allow", "INVITE, ACK, BYE, CANCEL, INFO, UPDATE, OPTIONS")
                    .to_tag(self.tag())
                    .build();
                self.reply_to(&msg, src, data);
            }
        }
    }

    fn session_expires_value(&self) -> String {
        self.cfg.session_expires.to_string()
    }

    fn on_response(&mut self, msg: &Message) {
        // Answers to our INFOs. A client that no longer knows the dialog (481, 487 on
        // a stale Call-ID) has left: end the dialog and take it out of its rooms.
        if matches!(msg.status(), Some(481 | 487)) {
            let cid = dialog_key(msg.call_id(), msg.from_tag().unwrap_or(""));
            if self.dialogs.contains_key(&cid) {
                tracing::info!(call_id = %cid, "client no longer knows the chat dialog");
                self.end_dialog(&cid);
            }
        }
    }

    fn touch(&mut self, call_id: &str, now: Instant) -> bool {
        match self.dialogs.get_mut(call_id) {
            Some(d) => {
                d.last_seen = now;
                true
            }
            None => false,
        }
    }

    fn asserted_user(msg: &Message) -> Option<String> {
        msg.header(HeaderName::PAssertedIdentity)
            .and_then(normalize_aor)
    }

    fn on_invite(&mut self, msg: &Message, src: Dest, now: Instant) {
        let call_id = msg.call_id().to_owned();
        if msg.to_tag().is_some() {
            // Re-INVITE: refresh a known dialog.
            if self.touch(&key_of_request(msg), now) {
                let contact = self.contact();
                let data = ResponseBuilder::new(msg, 200)
                    .header("Contact", contact)
                    .header("Session-Expires", self.session_expires_value())
                    .body("application/sdp", self.sdp())
                    .build();
                self.reply_to(msg, src, data);
            } else {
                self.respond(msg, src, 481, None);
            }
            return;
        }
        let Some(user) = Self::asserted_user(msg) else {
            self.respond(msg, src, 403, Some("No asserted identity"));
            return;
        };
        let ruri = msg
            .request_uri()
            .and_then(|u| confab_sip::Uri::parse(u).ok())
            .map(|u| u.aor());
        let lookup = normalize_aor(&self.cfg.lookup_uri);
        let server = normalize_aor(&self.cfg.server_uri);
        let to_uri = normalize_aor(msg.header(HeaderName::To).unwrap_or(""));
        let kind = if ruri.is_some() && ruri == server || to_uri.is_some() && to_uri == server {
            DialogKind::Server
        } else if ruri.is_some() && ruri == lookup || to_uri.is_some() && to_uri == lookup {
            DialogKind::Lookup
        } else {
            self.respond(msg, src, 404, Some("Not a Persistent Chat URI"));
            return;
        };
        if !self.dir.enabled_for(&user) {
            self.respond(
                msg,
                src,
                403,
                Some("Persistent Chat is not enabled for this user"),
            );
            return;
        }
        let Some(contact) = msg
            .header(HeaderName::Contact)
            .and_then(|c| NameAddr::parse(c).ok())
            .map(|na| na.uri.to_owned())
        else {
            self.respond(msg, src, 400, Some("Missing Contact"));
            return;
        };
        let Some(remote) = msg.header(HeaderName::From).map(str::to_owned) else {
            return;
        };
        // A retransmitted INVITE of a dialog we already answered (same Call-ID, From
        // tag and user): answer again. Another client's INVITE may carry the same
        // Call-ID and From tag (SIPE draws both from rand(); clients started in the
        // same second draw the same ones): that is a new dialog with our own tag.
        let remote_tag = msg.from_tag().unwrap_or("").to_owned();
        let existing = self
            .dialogs
            .iter()
            .find(|(_, d)| d.call_id == call_id && d.remote_tag == remote_tag && d.user == user)
            .map(|(k, d)| (k.clone(), d.local_tag.clone()));
        let tag = match &existing {
            Some((key, tag)) => {
                let (key, tag) = (key.clone(), tag.clone());
                self.touch(&key, now);
                tag
            }
            None => self.tag(),
        };
        let key = dialog_key(&call_id, &tag);
        let local_uri = msg
            .header(HeaderName::To)
            .and_then(|t| NameAddr::parse(t).ok())
            .map(|na| na.uri.to_owned())
            .unwrap_or_else(|| match kind {
                DialogKind::Lookup => self.cfg.lookup_uri.clone(),
                DialogKind::Server => self.cfg.server_uri.clone(),
            });
        let route: Vec<String> = msg
            .header_values(HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        self.dialogs.entry(key).or_insert(Dialog {
            call_id: call_id.clone(),
            remote_tag,
            kind,
            user: user.clone(),
            local_uri,
            local_tag: tag.clone(),
            remote,
            target: contact,
            route,
            peer: src,
            cseq: 0,
            rooms: BTreeSet::new(),
            last_seen: now,
        });
        tracing::debug!(%user, ?kind, %call_id, "chat dialog established");
        let data = ResponseBuilder::new(msg, 200)
            .to_tag(tag)
            .copy_record_route()
            .header("Contact", self.contact())
            .header("Session-Expires", self.session_expires_value())
            .header("Supported", "ms-sender")
            .body("application/sdp", self.sdp())
            .build();
        self.reply_to(msg, src, data);
    }

    fn contact(&self) -> String {
        format!(
            "<sip:chatsrv@{};transport={}>",
            self.cfg.host_port,
            self.cfg.transport.uri_param()
        )
    }

    fn sdp(&self) -> Bytes {
        let host = self
            .cfg
            .host_port
            .rsplit_once(':')
            .map_or(self.cfg.host_port.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip4 = if host.contains(':') { "IP6" } else { "IP4" };
        Bytes::from(format!(
            "v=0\r\no=- 0 0 IN {ip4} {host}\r\ns=session\r\nc=IN {ip4} {host}\r\nt=0 0\r\n\
             m=message 5060 sip null\r\na=accept-types:text/plain\r\n"
        ))
    }

    fn on_info(&mut self, msg: Message, src: Dest, now: Instant, wall_ms: i64) {
        let call_id = key_of_request(&msg);
        if !self.touch(&call_id, now) {
            self.respond(&msg, src, 481, None);
            return;
        }
        let parsed = xccos::parse(msg.body());
        let items = match parsed {
            Ok(items) => items,
            Err(e) => {
                // Not something we can reply to inside XCCOS: accept and log (a SIP
                // error here could make a client storm UPDATEs).
                tracing::debug!(error = %e, %call_id, "unusable xccos body");
                self.respond(&msg, src, 200, None);
                return;
            }
        };
        let mut answered = false;
        for item in items {
            match item {
                Incoming::Post {
                    envid,
                    chan_uri,
                    text,
                } => {
                    if !answered {
                        answered = true;
                        self.on_post(&msg, src, &call_id, &envid, &chan_uri, text, wall_ms);
                    }
                }
                Incoming::Command { envid, cmd } => {
                    if !answered {
                        answered = true;
                        self.respond(&msg, src, 200, None);
                    }
                    self.on_command(&call_id, &envid, cmd, wall_ms);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_post(
        &mut self,
        msg: &Message,
        src: Dest,
        call_id: &str,
        envid: &str,
        chan_uri: &str,
        text: String,
        wall_ms: i64,
    ) {
        let Some(d) = self.dialogs.get(call_id) else {
            return;
        };
        let user = d.user.clone();
        let refusal: Option<String> = match self.dir.room_by_uri(chan_uri) {
            None => Some("ERR_NO_SUCH_CHANNEL: no such room".into()),
            Some(room) if room.disabled => self.dir.post_refusal(room, &user).map(str::to_owned),
            Some(room) if !d.rooms.contains(&room.id) => {
                Some("ERR_USER_NOT_JOINED: you have not joined this room".into())
            }
            Some(room) => self.dir.post_refusal(room, &user).map(str::to_owned),
        };
        let max = self.dir.data.config.max_message_bytes as usize;
        let refusal = refusal.or_else(|| {
            if text.trim().is_empty() {
                Some("ERR_BAD_REQUEST: the message is empty".to_owned())
            } else if text.len() > max {
                Some(format!(
                    "ERR_LIMIT_EXCEEDED: the message is larger than {max} bytes"
                ))
            } else {
                None
            }
        });
        if let Some(reason) = refusal {
            tracing::info!(%user, room = %chan_uri, %reason, "post refused");
            self.stats.refused_posts += 1;
            self.refuse_post(msg, src, call_id, envid, chan_uri, 403, &reason);
            return;
        }
        let Some(room_id) = self.dir.room_by_uri(chan_uri).map(|r| r.id.clone()) else {
            return;
        };
        let op = self.next_op;
        self.next_op += 1;
        self.store_out.push(StoreRequest::SavePost {
            op,
            room_id: room_id.clone(),
            author: user.clone(),
            ts_ms: wall_ms,
            text: text.clone(),
        });
        self.pending.insert(
            op,
            PendingPost {
                call_id: call_id.to_owned(),
                envid: envid.to_owned(),
                request: msg.clone(),
                src,
                room_id,
                author: user,
                ts_ms: wall_ms,
                text,
            },
        );
    }

    /// Refuses a post: the reason inside XCCOS (`rpl:grpchat` echoing the post's
    /// envid, `<resp code>` with the reason, `<data>` naming the room) and as the
    /// reason phrase of the INFO's SIP error, which is what pidgin-sipe turns into
    /// "This message was not delivered to chat room" (it ignores a `rpl:grpchat`).
    #[allow(clippy::too_many_arguments)]
    fn refuse_post(
        &mut self,
        msg: &Message,
        src: Dest,
        call_id: &str,
        envid: &str,
        chan_uri: &str,
        code: u16,
        reason: &str,
    ) {
        self.respond(msg, src, code, Some(reason));
        let mut data = String::from("<chanib uri=\"");
        xccos::attr(&mut data, chan_uri);
        data.push_str("\"/>");
        self.send_reply(call_id, "rpl:grpchat", envid, code, reason, &data);
    }

    /// The store saved (or failed to save) a post: answer its author, fan it out.
    pub fn on_post_saved(&mut self, op: u64, result: Result<i64, String>) {
        let Some(p) = self.pending.remove(&op) else {
            return;
        };
        let id = match result {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "saving a chat post failed");
                let uri = self
                    .dir
                    .room(&p.room_id)
                    .map_or_else(String::new, |r| r.uri.clone());
                self.refuse_post(
                    &p.request,
                    p.src,
                    &p.call_id,
                    &p.envid,
                    &uri,
                    503,
                    "ERR_SERVER: the message could not be stored, try again",
                );
                return;
            }
        };
        self.respond(&p.request, p.src, 200, None);
        self.stats.posts += 1;
        let keep = self.history_len();
        let h = self.history.entry(p.room_id.clone()).or_default();
        h.push_back(ChatPost {
            id,
            room_id: p.room_id.clone(),
            author: p.author.clone(),
            ts_ms: p.ts_ms,
            text: p.text.clone(),
            original: p.text.clone(),
            state: confab_store::PostState::Active,
        });
        while h.len() > keep {
            h.pop_front();
        }
        let Some(room_uri) = self.dir.room(&p.room_id).map(|r| r.uri.clone()) else {
            return;
        };
        let envid = self.envid();
        let body = Bytes::from(xccos::grpchat(
            envid,
            &room_uri,
            &format!("sip:{}", p.author),
            &xccos::format_ts(p.ts_ms),
            &p.text,
        ));
        let targets: Vec<String> = self
            .live
            .get(&p.room_id)
            .into_iter()
            .flatten()
            .filter(|cid| **cid != p.call_id)
            .cloned()
            .collect();
        for cid in targets {
            self.send_info(&cid, body.clone());
            self.stats.deliveries += 1;
        }
    }

    /// A post stored outside this core (a file post of the web service, already
    /// in the store): kept for backfill and sent to every participant of its room.
    /// The one entry point for posts made elsewhere (issue 11).
    pub fn deliver_stored_post(&mut self, post: ChatPost) {
        let Some(room_uri) = self.dir.room(&post.room_id).map(|r| r.uri.clone()) else {
            return;
        };
        let envid = self.envid();
        let body = Bytes::from(xccos::grpchat(
            envid,
            &room_uri,
            &format!("sip:{}", post.author),
            &xccos::format_ts(post.ts_ms),
            &post.text,
        ));
        let targets: Vec<String> = self
            .live
            .get(&post.room_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let keep = self.history_len();
        let h = self.history.entry(post.room_id.clone()).or_default();
        h.push_back(post);
        while h.len() > keep {
            h.pop_front();
        }
        self.stats.posts += 1;
        for cid in targets {
            self.send_info(&cid, body.clone());
            self.stats.deliveries += 1;
        }
    }

    /// Sends an in-dialog INFO with an XCCOS body to the client of dialog `cid`.
    fn send_info(&mut self, cid: &str, body: Bytes) {
        let branch = {
            self.branch = self.branch.wrapping_add(0x9e37_79b9_7f4a_7c15);
            format!("z9hG4bKchat{:016x}", self.branch)
        };
        let Some(d) = self.dialogs.get_mut(cid) else {
            return;
        };
        d.cseq += 1;
        let mut b = RequestBuilder::new(Method::Info, d.target.clone()).header(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={branch}",
                self.cfg.transport.via_name(),
                self.cfg.host_port
            ),
        );
        for r in &d.route {
            b = b.header("Route", r.clone());
        }
        let data = b
            .header("Max-Forwards", "70")
            .header("From", format!("<{}>;tag={}", d.local_uri, d.local_tag))
            .header("To", d.remote.clone())
            .header("Call-ID", d.call_id.clone())
            .header("CSeq", format!("{} INFO", d.cseq))
            .body("text/plain", body)
            .build();
        let dest = next_hop(d);
        self.out.push(Output::Send { dest, data });
    }

    fn send_reply(
        &mut self,
        cid: &str,
        id: &str,
        envid: &str,
        code: u16,
        reason: &str,
        data: &str,
    ) {
        let e = self.envid();
        let body = xccos::reply(e, id, envid, code, reason, data);
        self.send_info(cid, Bytes::from(body));
    }

    fn on_command(&mut self, cid: &str, envid: &str, cmd: Command, wall_ms: i64) {
        let Some(d) = self.dialogs.get(cid) else {
            return;
        };
        let user = d.user.clone();
        let kind = d.kind;
        let rid = cmd.reply_id();
        match cmd {
            Command::ReqUri => {
                let mut data = String::from("<uib uri=\"");
                xccos::attr(&mut data, &self.cfg.server_uri);
                data.push_str("\"/>");
                self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", &data);
            }
            _ if kind == DialogKind::Lookup => {
                self.send_reply(
                    cid,
                    &rid,
                    envid,
                    400,
                    "ERR_BAD_REQUEST: send this command to the chat server URI",
                    "",
                );
            }
            Command::GetInv => self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", ""),
            Command::GetServerInfo => {
                let c = self.dir.data.config;
                let data = format!(
                    "<sib infoType=\"123\" serverTime=\"{}\" searchLimit=\"999\" \
                     messageSizeLimit=\"{}\" storySizeLimit=\"{}\" \
                     rootUri=\"ma-cat://{}/00000000-0000-0000-0000-000000000000\" \
                     dbVersion=\"1\" displayName=\"confab\"/>",
                    xccos::format_ts(wall_ms),
                    c.max_message_bytes,
                    c.max_message_bytes,
                    self.cfg.domain,
                );
                self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", &data);
            }
            Command::ChanSrch { criteria } => {
                let data = self.render_room_list(&user, &criteria);
                self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", &data);
            }
            Command::Join { batch, rooms } => self.on_join(cid, envid, &rid, &user, batch, rooms),
            Command::BcContext { room, count } => {
                let data = match self.dir.room_by_uri(&room) {
                    Some(r) if self.dir.may_read(r, &user) => {
                        Some((r.id.clone(), self.render_backfill(r, count)))
                    }
                    _ => None,
                };
                let data = data.map(|(room_id, data)| {
                    let n = data.matches("<msg ").count();
                    self.record(ComplianceKind::BackChat, &room_id, &user, n.to_string());
                    data
                });
                match data {
                    Some(data) => self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", &data),
                    None => self.send_reply(
                        cid,
                        &rid,
                        envid,
                        403,
                        "ERR_NO_PERMISSION: you may not read this room",
                        "",
                    ),
                }
            }
            Command::Part { room } => {
                let room_id = self.dir.room_by_uri(&room).map(|r| r.id.clone());
                if let Some(room_id) = room_id {
                    self.leave(cid, &room_id, false);
                }
                let mut data = String::from("<chanib uri=\"");
                xccos::attr(&mut data, &room);
                data.push_str("\"/>");
                self.send_reply(cid, &rid, envid, 200, "SUCCESS_OK", &data);
            }
            Command::Other { id } => {
                tracing::debug!(command = %id, "unknown xccos command");
                self.send_reply(
                    cid,
                    &rid,
                    envid,
                    501,
                    "ERR_NOT_IMPLEMENTED: unknown command",
                    "",
                );
            }
        }
    }

    fn render_room_list(&self, user: &str, criteria: &str) -> String {
        let needle = criteria.trim().to_lowercase();
        let mut data = String::new();
        for room in &self.dir.data.rooms {
            if !self.dir.may_find(room, user) {
                continue;
            }
            if !needle.is_empty()
                && !room.name.to_lowercase().contains(&needle)
                && !room.description.to_lowercase().contains(&needle)
            {
                continue;
            }
            let cat = self.dir.category(&room.category_id);
            data.push_str("<chanib name=\"");
            xccos::attr(&mut data, &room.name);
            data.push_str("\" description=\"");
            xccos::attr(&mut data, &room.description);
            data.push_str("\" uri=\"");
            xccos::attr(&mut data, &room.uri);
            data.push_str("\"><info id=\"urn:parlano:ma:info:ucnt\">");
            data.push_str(&self.participant_count(&room.id).to_string());
            data.push_str("</info>");
            if room.privacy == confab_store::Privacy::Secret {
                data.push_str("<info id=\"urn:parlano:ma:info:visibilty\">private</info>");
            }
            data.push_str("<prop id=\"urn:parlano:ma:prop:invite\">false</prop>");
            data.push_str(&format!(
                "<prop id=\"urn:parlano:ma:prop:filepost\">{}</prop>",
                cat.is_some_and(|c| c.file_upload)
            ));
            data.push_str(&format!(
                "<prop id=\"urn:parlano:ma:prop:logged\">{}</prop>",
                cat.is_none_or(|c| c.chat_history)
            ));
            data.push_str("</chanib>");
        }
        data
    }

    fn render_backfill(&self, room: &ChatRoom, count: u32) -> String {
        let mut data = String::from("<chanib uri=\"");
        xccos::attr(&mut data, &room.uri);
        data.push_str("\">");
        let history_on = self
            .dir
            .category(&room.category_id)
            .is_none_or(|c| c.chat_history);
        if history_on && let Some(h) = self.history.get(&room.id) {
            let n = (count as usize).min(self.history_len()).min(h.len());
            for p in h.iter().skip(h.len() - n) {
                data.push_str("<msg id=\"grpchat\"");
                xccos::post_inner(
                    &mut data,
                    &room.uri,
                    &format!("sip:{}", p.author),
                    &xccos::format_ts(p.ts_ms),
                    &p.text,
                );
                data.push_str("</msg>");
            }
        }
        data.push_str("</chanib>");
        data
    }

    fn on_join(
        &mut self,
        cid: &str,
        envid: &str,
        rid: &str,
        user: &str,
        batch: bool,
        rooms: Vec<String>,
    ) {
        let mut joined: Vec<String> = Vec::new();
        let mut refusal: Option<String> = None;
        for uri in &rooms {
            let verdict = match self.dir.room_by_uri(uri) {
                None => Err(match self.elsewhere.get(uri) {
                    Some(pool) => format!(
                        "ERR_NO_SUCH_CHANNEL: the room belongs to {pool}; join it through that pool"
                    ),
                    None => "ERR_NO_SUCH_CHANNEL: no such room".to_owned(),
                }),
                Some(room) => match self.dir.join_refusal(room, user) {
                    Some(r) => Err(r.to_owned()),
                    None => Ok(room.id.clone()),
                },
            };
            match verdict {
                Ok(id) => joined.push(id),
                Err(r) => {
                    tracing::info!(%user, room = %uri, reason = %r, "join refused");
                    refusal.get_or_insert(r);
                }
            }
        }
        if joined.is_empty() {
            let reason = refusal.unwrap_or_else(|| "ERR_BAD_REQUEST: no room named".to_owned());
            self.send_reply(cid, rid, envid, 403, &reason, "");
            return;
        }
        let mut data = String::new();
        let mut ids: Vec<String> = Vec::new();
        let mut chanibs = String::new();
        for room_id in &joined {
            let fresh = self.enter(cid, room_id, user);
            let _ = fresh;
            let Some(room) = self.dir.room(room_id) else {
                continue;
            };
            let limit = self.dir.data.config.participant_update_limit as usize;
            // Above the limit live participant lists stop (Lync): only yourself.
            let users = self
                .participants_up_to(room_id, limit)
                .unwrap_or_else(|| vec![user.to_owned()]);
            let mut member_ids = Vec::new();
            let mut op_ids = Vec::new();
            for u in users {
                let pos = match ids.iter().position(|x| *x == u) {
                    Some(p) => p,
                    None => {
                        ids.push(u.clone());
                        ids.len() - 1
                    }
                };
                let n = (pos + 1).to_string();
                member_ids.push(n.clone());
                if crate::rules::names(&room.managers, &u) {
                    op_ids.push(n);
                }
            }
            chanibs.push_str("<chanib uri=\"");
            xccos::attr(&mut chanibs, &room.uri);
            chanibs.push_str("\" name=\"");
            xccos::attr(&mut chanibs, &room.name);
            chanibs.push_str("\" topic=\"");
            xccos::attr(&mut chanibs, &room.description);
            chanibs.push_str(&format!(
                "\"><aib key=\"{}\" value=\"{}\"/>",
                xccos::AIB_MEMBER,
                member_ids.join(",")
            ));
            if !op_ids.is_empty() {
                chanibs.push_str(&format!(
                    "<aib key=\"{}\" value=\"{}\"/>",
                    xccos::AIB_CHANOP,
                    op_ids.join(",")
                ));
            }
            chanibs.push_str("</chanib>");
        }
        for (i, u) in ids.iter().enumerate() {
            data.push_str(&format!("<uib id=\"{}\" uri=\"", i + 1));
            xccos::attr(&mut data, &format!("sip:{u}"));
            data.push_str("\"/>");
        }
        data.push_str(&chanibs);
        let code_reason = "SUCCESS_OK";
        let _ = batch;
        self.send_reply(cid, rid, envid, 200, code_reason, &data);
    }

    /// Adds dialog `cid` to a room; tells the others when the user was not there yet.
    fn enter(&mut self, cid: &str, room_id: &str, user: &str) -> bool {
        let already_dialog = self
            .dialogs
            .get(cid)
            .is_some_and(|d| d.rooms.contains(room_id));
        if already_dialog {
            return false;
        }
        let user_local = self.is_participant(room_id, user);
        let user_present = user_local || self.is_remote_participant(room_id, user);
        if !user_local {
            self.pool_member_event(room_id, user, true);
        }
        if let Some(d) = self.dialogs.get_mut(cid) {
            d.rooms.insert(room_id.to_owned());
        }
        self.live
            .entry(room_id.to_owned())
            .or_default()
            .push(cid.to_owned());
        self.stats.joins += 1;
        self.record(ComplianceKind::Join, room_id, user, String::new());
        if !user_present {
            self.notify_room(room_id, cid, user, true);
        }
        true
    }

    /// `ntc:join` / `ntc:part` about `user` to the other participants of a room.
    fn notify_room(&mut self, room_id: &str, except_cid: &str, user: &str, join: bool) {
        let Some(room) = self.dir.room(room_id) else {
            return;
        };
        let limit = self.dir.data.config.participant_update_limit as usize;
        let other_dialogs = || {
            self.live
                .get(room_id)
                .into_iter()
                .flatten()
                .filter(|c| *c != except_cid)
                .filter(|c| self.dialogs.get(*c).is_some_and(|d| d.user != user))
        };
        // Above the limit nobody is told; checked without walking the whole room.
        if limit == 0 || other_dialogs().nth(limit - 1).is_some() {
            return;
        }
        let others: Vec<String> = other_dialogs().cloned().collect();
        let uri = room.uri.clone();
        let mut data = String::new();
        if join {
            let value = uri
                .strip_prefix("ma-chan://")
                .and_then(|r| r.split_once('/'))
                .map_or(String::new(), |(_, v)| v.to_owned());
            let domain = uri
                .strip_prefix("ma-chan://")
                .and_then(|r| r.split_once('/'))
                .map_or(self.cfg.domain.clone(), |(d, _)| d.to_owned());
            data.push_str("<uib uri=\"");
            xccos::attr(&mut data, &format!("sip:{user}"));
            data.push_str(&format!("\"><aib key=\"{}\" domain=\"", xccos::AIB_MEMBER));
            xccos::attr(&mut data, &domain);
            data.push_str("\" value=\"");
            xccos::attr(&mut data, &value);
            data.push_str("\"/></uib>");
        } else {
            data.push_str("<chanib uri=\"");
            xccos::attr(&mut data, &uri);
            data.push_str("\"><uib uri=\"");
            xccos::attr(&mut data, &format!("sip:{user}"));
            data.push_str("\"/></chanib>");
        }
        let envid = self.envid();
        let body = Bytes::from(xccos::notice(
            envid,
            if join { "ntc:join" } else { "ntc:part" },
            &data,
        ));
        for c in others {
            self.send_info(&c, body.clone());
        }
    }

    /// Takes dialog `cid` out of a room; `tell_self` sends it an unsolicited `rpl:part`
    /// (the room was disabled or the user lost access).
    fn leave(&mut self, cid: &str, room_id: &str, tell_self: bool) {
        self.leave_notified(cid, room_id, tell_self, true);
    }

    /// [`ChatCore::leave`]; `notify` false when the others were already told.
    fn leave_notified(&mut self, cid: &str, room_id: &str, tell_self: bool, notify: bool) {
        let Some(d) = self.dialogs.get_mut(cid) else {
            return;
        };
        if !d.rooms.remove(room_id) {
            return;
        }
        let user = d.user.clone();
        self.record(ComplianceKind::Part, room_id, &user, String::new());
        if let Some(list) = self.live.get_mut(room_id) {
            list.retain(|c| c != cid);
            if list.is_empty() {
                self.live.remove(room_id);
            }
        }
        if tell_self
            && let Some(room) = self
                .dir
                .room(room_id)
                .map(|r| r.uri.clone())
                .or_else(|| Some(format!("ma-chan://{}/{room_id}", self.cfg.domain)))
        {
            let mut data = String::from("<chanib uri=\"");
            xccos::attr(&mut data, &room);
            data.push_str("\"/>");
            self.send_reply(cid, "rpl:part", "0", 200, "SUCCESS_OK", &data);
        }
        let still_local = self.is_participant(room_id, &user);
        if !still_local {
            self.pool_member_event(room_id, &user, false);
        }
        let still_there = still_local || self.is_remote_participant(room_id, &user);
        if notify && !still_there {
            self.notify_room(room_id, cid, &user, false);
        }
    }

    /// Ends a dialog: leaves every room it joined (others get `ntc:part`).
    fn end_dialog(&mut self, cid: &str) {
        let rooms: Vec<String> = self
            .dialogs
            .get(cid)
            .map(|d| d.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for r in rooms {
            self.leave(cid, &r, false);
        }
        self.dialogs.remove(cid);
    }
}
