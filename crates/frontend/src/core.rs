//! The dispatcher: classifies every message and hands it to the registrar, the
//! proxy or the presence agent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_auth::digest::{DigestError, DigestServer, Ha1s};
use confab_auth::ratelimit::FailureLimiter;
use confab_sip::header::{NameAddr, unquote};
use confab_sip::transaction::{RequestMatch, ServerKey, TimerEvent, Transactions};
use confab_sip::uri::Scheme;
use confab_sip::{HeaderName, Message, Method, ParseError, ResponseBuilder, Uri};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use crate::directory::{Directory, DirectoryChange};
use crate::metrics::Metrics;
use crate::presence_agent::PresenceAgent;
use crate::proxy::ProxyState;
use crate::registrar::{BindingEvents, ContactUpdate, RegisterError, Registrar};
use crate::types::{ConnId, Dest, Output, Transport};
use crate::verdict::Verdict;
use crate::voice_app::VoiceCall;

/// How this server names itself in Via, Record-Route and Contact.
#[derive(Debug, Clone)]
pub struct Advertise {
    /// Host or IP address peers can reach.
    pub host: String,
    /// UDP and TCP port.
    pub sip_port: u16,
    pub tls_port: Option<u16>,
    /// WebSocket (HTTP) port.
    pub ws_port: Option<u16>,
}

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The SIP domain served (also the digest realm).
    pub domain: String,
    pub advertise: Advertise,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts_per_aor: usize,
    pub presence_same_domain_visible: bool,
    pub max_subscription_expires: u32,
    /// Most live PUBLISH documents per user (RFC 3903 publications).
    pub max_publications_per_user: usize,
    pub nonce_lifetime: Duration,
    pub max_failures_per_source: u32,
    pub max_failures_per_user: u32,
    pub failure_window: Duration,
    /// Development only: accept every request without authentication.
    pub allow_unauthenticated: bool,
    /// Also offer `algorithm=SHA-256` challenges (RFC 7616). Responses using
    /// SHA-256 are always verified; offering it breaks some deployed clients.
    pub digest_offer_sha256: bool,
    /// The FQDN Lync clients see as NTLM `targetname`; `None`: the advertised host.
    pub ntlm_target: Option<String>,
    /// Accept RFC 2069 digest answers (no `qop`, no nonce count), which can be
    /// replayed for the nonce's whole life. Off by default.
    pub digest_allow_rfc2069: bool,
    /// Peers trusted to send requests from other domains without authentication
    /// (application servers such as Persistent Chat on loopback; later an Edge).
    /// Port 0 trusts every port of the address. See `crate::guard`.
    pub trusted_peers: Vec<SocketAddr>,
    /// The Mediation server (UDP) calls to the PSTN are handed to; `None`: they
    /// are proxied straight to the trunks' gateways. See `crate::voice_app`.
    pub mediation: Option<SocketAddr>,
    /// URIs served by applications behind the front end (Persistent Chat), see
    /// `crate::apps`.
    pub app_routes: Vec<crate::apps::AppRoute>,
    /// Persistent Chat in provisioning-v2 (see [`crate::apps::ChatProvisioning`]).
    pub chat_provisioning: Option<std::sync::Arc<dyn crate::apps::ChatProvisioning>>,
    /// Picks among several servers of an application route (Persistent Chat pools).
    pub app_router: Option<std::sync::Arc<dyn crate::apps::AppRouter>>,
    /// Where the Announcement service listens: calls to unassigned numbers go
    /// there (see `crate::voice_app`); `None`: they are routed like any number.
    pub announcement_service: Option<Dest>,
    /// Where the Call Park service listens: calls to orbit numbers go there
    /// (see `crate::voice_app::to_park`); `None`: routed like any number.
    pub park_service: Option<Dest>,
    /// The Response Group service and its workflows' addresses (see
    /// `crate::rgs_app`); `None`: no workflows.
    pub rgs: Option<crate::rgs_app::RgsRoute>,
    /// Monitoring (call records, IM sessions): where calls and IM between users
    /// are reported, see `crate::monitor`; `None`: not recorded.
    pub monitor: Option<Arc<dyn crate::monitor::MonitorSink>>,
}

impl CoreConfig {
    /// Defaults for a domain and address (tests, embedded use).
    pub fn new(domain: &str, host: &str, sip_port: u16) -> CoreConfig {
        CoreConfig {
            domain: domain.to_ascii_lowercase(),
            advertise: Advertise {
                host: host.to_owned(),
                sip_port,
                tls_port: None,
                ws_port: None,
            },
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_contacts_per_aor: 32,
            presence_same_domain_visible: true,
            max_subscription_expires: 3600,
            max_publications_per_user: 16,
            nonce_lifetime: Duration::from_secs(300),
            max_failures_per_source: 20,
            max_failures_per_user: 10,
            failure_window: Duration::from_secs(60),
            allow_unauthenticated: false,
            digest_offer_sha256: false,
            ntlm_target: None,
            digest_allow_rfc2069: false,
            trusted_peers: Vec::new(),
            mediation: None,
            app_routes: Vec::new(),
            announcement_service: None,
            park_service: None,
            rgs: None,
            monitor: None,
            chat_provisioning: None,
            app_router: None,
        }
    }
}

/// Our branches start with this, after the magic cookie; used for loop detection.
pub(crate) const BRANCH_PREFIX: &str = "z9hG4bKcf";
pub(crate) const SERVER_HEADER: &str = concat!("confab/", env!("CARGO_PKG_VERSION"));
/// The transaction layer stores the final response of every completed non-INVITE
/// transaction over UDP for 32 s (Timer J); these lines, which nearly every such
/// response carries verbatim, are stored once instead (see
/// `Transactions::set_common_lines`).
fn common_response_lines(mut tx: Transactions<Dest>) -> Transactions<Dest> {
    let server = format!("Server: {SERVER_HEADER}");
    let allow = format!("Allow: {ALLOW}");
    tx.set_common_lines(&[
        b"SIP/2.0 200 OK",
        b"SIP/2.0 202 Accepted",
        server.as_bytes(),
        allow.as_bytes(),
        b"Content-Length: 0",
    ]);
    tx
}

pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INFO, UPDATE, PRACK, REFER";

/// The front end. See the crate documentation.
pub struct Core {
    pub(crate) cfg: CoreConfig,
    pub(crate) directory: Directory,
    pub(crate) registrar: Registrar,
    pub(crate) tx: Transactions<Dest>,
    digest: DigestServer,
    pub(crate) fail_src: FailureLimiter<IpAddr>, // pub(crate): also used by crate::lync
    /// Per user *and* source address, so that nobody can lock a user out from
    /// elsewhere (see docs/decisions.md, "Authentication failure limits").
    pub(crate) fail_user: FailureLimiter<(String, IpAddr)>,
    pub(crate) rng: StdRng,
    pub(crate) out: Vec<Output>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) proxy: ProxyState,
    pub(crate) pa: PresenceAgent,
    pub(crate) now: Instant,
    pub(crate) wall_ms: u64,
    /// MS-SIPAE (Lync NTLM) security associations, see `crate::lync`.
    pub(crate) lync: crate::lync::LyncState,
    /// Relaying policy: signed Record-Route, trusted peers.
    pub(crate) guard: crate::guard::Guard,
    /// Enterprise pool: where each user is homed (`None`: a server of its own).
    pub(crate) home: Option<crate::home::SharedHomeRouter>,
    /// Enterprise Voice configuration, see `crate::voice_app`.
    pub(crate) voice: Arc<confab_voice::VoiceConfig>,
    /// Enterprise pool: presence shared between front ends, see `crate::pool_presence`.
    pub(crate) share: crate::pool_presence::PresenceShare,
    /// Monitoring of calls and IM between users, see `crate::monitor`.
    monitor: Option<crate::monitor::Recorder>,
}

impl Core {
    /// `nonce_secret` keys digest nonces (keep it across restarts so clients'
    /// nonces stay valid); `seed` seeds tags, branches and entity-tags.
    pub fn new(
        cfg: CoreConfig,
        nonce_secret: [u8; 32],
        seed: [u8; 32],
        metrics: Arc<Metrics>,
        now: Instant,
    ) -> Core {
        let mut rng = StdRng::from_seed(seed);
        let etag_seed = rng.next_u64();
        let mut digest = DigestServer::new(nonce_secret, cfg.nonce_lifetime);
        digest.set_allow_no_qop(cfg.digest_allow_rfc2069);
        let guard = crate::guard::Guard::new(&nonce_secret, cfg.trusted_peers.clone());
        Core {
            directory: Directory::new(),
            registrar: Registrar::new(cfg.max_contacts_per_aor),
            tx: common_response_lines(Transactions::new()),
            digest,
            fail_src: FailureLimiter::new(cfg.max_failures_per_source, cfg.failure_window, 100_000),
            fail_user: FailureLimiter::new(cfg.max_failures_per_user, cfg.failure_window, 100_000),
            rng,
            out: Vec::new(),
            metrics,
            proxy: ProxyState::default(),
            pa: PresenceAgent::new(
                cfg.presence_same_domain_visible,
                cfg.max_publications_per_user,
                etag_seed,
            ),
            now,
            wall_ms: 0,
            lync: Default::default(),
            guard,
            home: None,
            share: Default::default(),
            voice: Arc::default(),
            monitor: cfg
                .monitor
                .clone()
                .map(|sink| crate::monitor::Recorder::new(sink, &cfg.domain)),
            cfg,
        }
    }

    /// Makes this front end one of a pool: requests for users homed on another
    /// front end go there, and the pool's front ends are trusted peers (see
    /// `crate::home`).
    pub fn set_home_router(&mut self, router: crate::home::SharedHomeRouter) {
        self.guard.set_pool(router.clone());
        self.home = Some(router);
    }

    /// Enterprise pool: shares the presence of the users served here with the
    /// pool's other front ends ([`Core::drain_presence_changes`]) and takes theirs
    /// ([`Core::apply_pool_presence`]); see `crate::pool_presence`.
    pub fn share_presence(&mut self) {
        self.share.enable();
    }

    /// Front end `member` of the pool shares the presence of a user it serves.
    pub fn apply_pool_presence(
        &mut self,
        member: &str,
        shared: crate::SharedPresence,
        now: Instant,
    ) {
        self.now = now;
        let user = shared.user;
        if self
            .share
            .apply(&mut self.pa.compositor, member, &user, shared.state)
        {
            self.share.set_applying(true);
            self.notify_watchers(&user);
            self.share.set_applying(false);
        }
    }

    /// Front end `member` left the pool: the presence it shared is dropped.
    pub fn forget_pool_member(&mut self, member: &str, now: Instant) {
        self.now = now;
        let users = self.share.forget_member(&mut self.pa.compositor, member);
        self.share.set_applying(true);
        for user in users {
            self.notify_watchers(&user);
        }
        self.share.set_applying(false);
    }

    /// The presence changes of the users served here, to share with the pool.
    pub fn drain_presence_changes(&mut self, out: &mut Vec<crate::SharedPresence>) {
        self.share.drain(out);
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Number of registered contacts.
    pub fn registrations(&self) -> usize {
        self.registrar.len()
    }

    /// Server transactions currently kept (answered or not).
    pub fn server_transactions(&self) -> usize {
        self.tx.server_count()
    }

    /// Applies a user change from the store. A disabled or removed user is signed
    /// out: its registrations end.
    pub fn apply_directory_change(&mut self, change: DirectoryChange, now: Instant) {
        self.now = now;
        if let Some(gone) = self.directory.apply(change) {
            // Lync hook: Lync endpoints are told they were signed out.
            self.lync_sign_out(&gone);
            let ev = self.registrar.remove_all(&gone);
            if !ev.removed.is_empty() {
                info!(user = %gone, "user disabled or removed: registrations ended");
            }
            self.binding_events(ev);
        }
        self.update_gauges();
    }

    /// Replaces the Enterprise Voice configuration (numbers, dial plans, routes,
    /// trunks); see `crate::voice_app`.
    pub fn set_voice_config(&mut self, voice: Arc<confab_voice::VoiceConfig>) {
        self.voice = voice;
    }

    /// Takes the work produced so far.
    pub fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Moves the work produced so far into `buf`.
    pub fn drain_output(&mut self, buf: &mut Vec<Output>) {
        buf.append(&mut self.out);
    }

    pub(crate) fn send(&mut self, dest: Dest, data: Bytes) {
        // Lync hook: sign everything sent on a connection with an MS-SIPAE SA.
        let data = self.lync_sign(&dest, data);
        self.out.push(Output::Send { dest, data });
    }

    pub(crate) fn random_hex(&mut self, bytes: usize) -> String {
        let mut b = [0u8; 16];
        let n = bytes.min(16);
        self.rng.fill_bytes(&mut b[..n]);
        hex::encode(&b[..n])
    }

    pub(crate) fn new_tag(&mut self) -> String {
        self.random_hex(6)
    }

    pub(crate) fn new_branch(&mut self) -> String {
        format!("{BRANCH_PREFIX}{}", self.random_hex(8))
    }

    pub(crate) fn port_for(&self, t: Transport) -> u16 {
        let a = &self.cfg.advertise;
        match t {
            Transport::Udp | Transport::Tcp => a.sip_port,
            Transport::Tls => a.tls_port.unwrap_or(a.sip_port),
            Transport::Ws | Transport::Wss => a.ws_port.unwrap_or(a.sip_port),
        }
    }

    pub(crate) fn our_via(&self, t: Transport, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {}:{};branch={branch}",
            t.via_name(),
            self.cfg.advertise.host,
            self.port_for(t)
        )
    }

    /// `sip:host:port;transport=x` for Contact and Record-Route.
    pub(crate) fn our_uri(&self, t: Transport) -> String {
        let base = format!("sip:{}:{}", self.cfg.advertise.host, self.port_for(t));
        match t {
            Transport::Udp => base,
            other => format!("{base};transport={}", other.uri_param()),
        }
    }

    /// Whether a host names this server or its domain.
    pub(crate) fn is_our_host(&self, host: &str) -> bool {
        host.eq_ignore_ascii_case(&self.cfg.domain)
            || host.eq_ignore_ascii_case(&self.cfg.advertise.host)
    }

    /// Whether a URI (e.g. a Route) points at this server.
    pub(crate) fn is_us(&self, uri: &Uri<'_>) -> bool {
        if uri.user.is_some() && !uri.host.eq_ignore_ascii_case(&self.cfg.advertise.host) {
            return false;
        }
        if uri.host.eq_ignore_ascii_case(&self.cfg.domain) {
            return true;
        }
        if !uri.host.eq_ignore_ascii_case(&self.cfg.advertise.host) {
            return false;
        }
        let a = &self.cfg.advertise;
        match uri.port {
            None => true,
            Some(p) => p == a.sip_port || Some(p) == a.tls_port || Some(p) == a.ws_port,
        }
    }

    /// Builds and sends a response in a server transaction.
    pub(crate) fn reply(
        &mut self,
        key: &ServerKey,
        req: &Message,
        code: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        let tag = self.new_tag();
        self.reply_tagged(key, req, code, &tag, f);
    }

    pub(crate) fn reply_tagged(
        &mut self,
        key: &ServerKey,
        req: &Message,
        code: u16,
        tag: &str,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        let b = ResponseBuilder::new(req, code)
            .to_tag(tag)
            .header("Server", SERVER_HEADER);
        let bytes = f(b).build();
        if let Some(dest) = self.tx.respond_to(key, req, code, bytes.clone(), self.now) {
            self.send(dest, bytes);
        }
    }

    /// Like [`Core::reply`], but a non-INVITE transaction ends with this final
    /// response instead of keeping it for retransmissions (RFC 3261 §8.2.7); used for
    /// digest challenges, see `Transactions::respond_stateless`.
    fn reply_stateless(
        &mut self,
        key: &ServerKey,
        req: &Message,
        code: u16,
        f: impl FnOnce(ResponseBuilder<'_>) -> ResponseBuilder<'_>,
    ) {
        let tag = self.new_tag();
        let b = ResponseBuilder::new(req, code)
            .to_tag(&tag)
            .header("Server", SERVER_HEADER);
        let bytes = f(b).build();
        if let Some(dest) = self
            .tx
            .respond_stateless(key, code, bytes.clone(), self.now)
        {
            self.send(dest, bytes);
        }
    }

    /// Carries out an application's [`Verdict`] (see `crate::verdict`); `true` when
    /// the request was handled, `false` for [`Verdict::Pass`].
    fn apply_verdict(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        verdict: Verdict,
        pop_routes: usize,
    ) -> bool {
        match verdict {
            Verdict::Pass => return false,
            Verdict::Reply {
                code,
                reason,
                headers,
            } => self.reply(key, msg, code, |b| {
                headers
                    .into_iter()
                    .fold(b.reason(reason), |b, (name, value)| b.header(name, value))
            }),
            Verdict::Forward(f) => {
                let parsed;
                let request = match f.rewritten {
                    None => msg,
                    Some(bytes) => match Message::parse(bytes, &confab_sip::Limits::default()) {
                        Ok(m) => {
                            parsed = m;
                            &parsed
                        }
                        Err(_) => {
                            self.reply(key, msg, 400, |b| {
                                b.reason("Request could not be forwarded")
                            });
                            return true;
                        }
                    },
                };
                self.forward_with(
                    key.clone(),
                    request,
                    src,
                    f.targets,
                    f.record_route,
                    pop_routes,
                    f.serial,
                );
            }
            Verdict::ToUser(user) => {
                if !self.directory.get(&user).is_some_and(|u| u.enabled) {
                    self.reply(key, msg, 404, |b| b.reason("User not found"));
                    return true;
                }
                let bindings: Vec<(String, Dest)> = self
                    .registrar
                    .lookup(&user, self.now)
                    .into_iter()
                    .map(|b| (b.uri.clone(), b.flow))
                    .collect();
                if bindings.is_empty() {
                    self.reply(key, msg, 480, |b| b.reason("User is offline"));
                    return true;
                }
                Metrics::inc(&self.metrics.calls_forwarded_total);
                self.forward(key.clone(), msg, src, bindings, true, pop_routes);
            }
        }
        true
    }

    /// Enterprise Voice (`crate::voice_app`): a call to a phone number or from a
    /// PSTN gateway. `true` when the request was Enterprise Voice's and is handled.
    fn voice_hook(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        ruri: &Uri<'_>,
        pop_routes: usize,
    ) -> bool {
        // Response Groups hook: a workflow's number is the service's (crate::rgs_app).
        if let Some(user) = ruri.user_unescaped() {
            let aor = format!("{}@{}", user.to_lowercase(), ruri.host.to_ascii_lowercase());
            if crate::rgs_app::claims(self.cfg.rgs.as_ref(), &aor) {
                return false;
            }
        }
        let from = msg.from().parsed_uri().ok();
        let req = crate::voice_app::Request {
            msg,
            src: src.addr,
            ruri,
            ruri_ours: self.is_our_host(ruri.host),
            from_local: from.as_ref().is_some_and(|u| self.is_our_host(u.host)),
        };
        let voice = self.voice.clone();
        let Some(call) =
            crate::voice_app::classify(&voice, &self.cfg.domain, &self.directory, &req)
        else {
            return false;
        };
        let mut caller_id = None;
        let verdict = match call {
            VoiceCall::Inbound { trunk, dialed } => {
                self.tx.mark_verified(key);
                crate::voice_app::inbound(
                    &voice,
                    &self.cfg.domain,
                    self.cfg.announcement_service,
                    &trunk,
                    &dialed,
                )
            }
            VoiceCall::Outbound { dialed } => {
                let from_aor = from.map(|u| u.aor());
                let identity = if self.guard.is_trusted(src.addr) || self.cfg.allow_unauthenticated
                {
                    from_aor.clone()
                } else {
                    self.authenticate(key, msg, src, true)
                };
                let Some(caller) = identity else {
                    return true; // challenged or refused
                };
                if from_aor.as_deref() != Some(caller.as_str()) {
                    self.reply(key, msg, 403, |b| {
                        b.reason("From does not match the authenticated user")
                    });
                    return true;
                }
                self.tx.mark_verified(key);
                let park = crate::voice_app::to_park(&voice, self.cfg.park_service, msg, &dialed);
                let v = park.unwrap_or_else(|| {
                    crate::voice_app::outbound(
                        &voice,
                        &self.cfg.domain,
                        self.cfg.mediation,
                        self.cfg.announcement_service,
                        msg,
                        &caller,
                        &dialed,
                    )
                });
                caller_id = Some(caller);
                v
            }
        };
        // Pool hook: a number's user homed on another front end is called there.
        let verdict = match (verdict, self.home.clone()) {
            (Verdict::ToUser(user), Some(router)) => {
                crate::home::call_to_user(&*router, msg, src, &user, caller_id.as_deref())
            }
            (v, _) => v,
        };
        if matches!(verdict, Verdict::Forward(_)) {
            Metrics::inc(&self.metrics.calls_forwarded_total);
        }
        self.apply_verdict(key, msg, src, verdict, pop_routes)
    }

    /// Answers a message that could not be parsed, when it can be answered.
    pub fn on_parse_error(&mut self, err: &ParseError, src: Dest) {
        Metrics::inc(&self.metrics.sip_parse_errors_total);
        debug!(peer = %src.addr, status = err.status, reason = %err.reason, "refused malformed message");
        if let Some(resp) = err.response() {
            self.send(src, resp);
        }
    }

    /// A connection closed: bindings that depended on it end.
    pub fn on_connection_closed(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        self.lync.connection_closed(conn); // Lync hook: the SA ends with its connection.
        let ev = self.registrar.connection_closed(conn);
        self.binding_events(ev);
        self.update_gauges();
    }

    /// Feeds one parsed message received from `src`.
    pub fn on_message(&mut self, msg: Message, src: Dest, now: Instant, wall_ms: u64) {
        self.now = now;
        self.wall_ms = wall_ms;
        // Lync hook: requests on a connection with an MS-SIPAE SA must be signed.
        if !self.lync_check_incoming(&msg, &src) {
            return;
        }
        // Monitoring hook: calls and IM between users (crate::monitor).
        let watched = self.monitor.as_ref().and_then(|m| {
            let cx = crate::monitor::Context {
                domain: &self.cfg.domain,
                host: &self.cfg.advertise.host,
                trusted: &|| self.guard.is_trusted(src.addr),
                is_user: &|u| self.directory.get(u).is_some_and(|e| e.enabled),
                is_im_offer: &crate::lync::im::is_im_offer,
                number_owner: &|caller, dialed| {
                    crate::voice_app::number_owner(&self.voice, caller, dialed)
                },
            };
            m.observe(&msg, src.addr, wall_ms, &cx)
        });
        let mark = self.out.len();
        if msg.is_request() {
            Metrics::inc(&self.metrics.sip_requests_received_total);
            self.on_request(msg, src);
        } else {
            Metrics::inc(&self.metrics.sip_responses_received_total);
            self.on_response(msg);
        }
        if let (Some(m), Some(w)) = (&self.monitor, watched) {
            m.finish(w, self.out.get(mark..).unwrap_or_default());
        }
        self.update_gauges();
    }

    /// When [`Core::on_tick`] must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.tx.next_deadline(),
            self.registrar.next_expiry(),
            self.pa.next_deadline(),
            self.proxy.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires timers: retransmissions, timeouts, registration and subscription expiry.
    pub fn on_tick(&mut self, now: Instant, wall_ms: u64) {
        self.now = now;
        self.wall_ms = wall_ms;
        for ev in self.tx.poll(now) {
            match ev {
                TimerEvent::Retransmit(dest, data) => self.send(dest, data),
                TimerEvent::ClientTimeout(key) => self.client_timeout(key),
                TimerEvent::ServerNoAck(key) => debug!(?key, "no ACK for final response"),
            }
        }
        let ev = self.registrar.expire(now);
        self.binding_events(ev);
        self.presence_tick();
        self.proxy_tick();
        self.fail_src.purge(now);
        self.fail_user.purge(now);
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let m = &self.metrics;
        Metrics::set(&m.registrations, self.registrar.len());
        Metrics::set(&m.registered_users, self.registrar.aor_count());
        Metrics::set(&m.server_transactions, self.tx.server_count());
        Metrics::set(&m.client_transactions, self.tx.client_count());
        Metrics::set(&m.presence_subscriptions, self.pa.subscription_count());
    }

    pub(crate) fn binding_events(&mut self, ev: BindingEvents) {
        for (aor, endpoint) in ev.added {
            self.presence_endpoint(&aor, &endpoint, true);
        }
        for (aor, endpoint) in ev.removed {
            self.presence_endpoint(&aor, &endpoint, false);
        }
    }

    fn on_request(&mut self, msg: Message, src: Dest) {
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let key = match self
            .tx
            .on_request(&msg, src, src.transport.reliable(), self.now)
        {
            RequestMatch::New(key) => key,
            RequestMatch::Retransmission(resend) => {
                Metrics::inc(&self.metrics.sip_retransmissions_absorbed_total);
                if let Some((dest, data)) = resend {
                    self.send(dest, data);
                }
                return;
            }
            RequestMatch::AckAbsorbed => return,
            RequestMatch::Ack => {
                // Lync hook: the ACK of an IM gateway session ends here.
                if !self.lync_im_is_session(&msg) {
                    self.route_ack(&msg, src);
                }
                return;
            }
        };

        if msg.max_forwards() == Some(0) {
            self.reply(&key, &msg, 483, |b| b);
            return;
        }
        if self.is_looped(&msg) {
            self.reply(&key, &msg, 482, |b| b);
            return;
        }
        // Methods this server does not know are not relayed (RFC 4475 §3.1.1.2
        // expects 501 or 405).
        if matches!(method, Method::Other(_)) {
            self.reply(&key, &msg, 501, |b| {
                b.reason("Not Implemented").header("Allow", ALLOW)
            });
            return;
        }
        // Loose routing (§16.4): drop the Route entries that name us.
        let mut our_routes = 0;
        let mut next_route: Option<String> = None;
        for r in msg.header_values(HeaderName::Route) {
            let us = NameAddr::parse(r)
                .ok()
                .and_then(|n| Uri::parse(n.uri).ok().map(|u| self.is_us(&u)))
                .unwrap_or(false);
            if us && next_route.is_none() {
                our_routes += 1;
            } else {
                if let Ok(n) = NameAddr::parse(r) {
                    next_route = Some(n.uri.to_owned());
                }
                break;
            }
        }

        if method == Method::Cancel {
            self.handle_cancel(&key, &msg);
            return;
        }

        // Requests inside a dialog this server owns (presence subscriptions).
        if msg.to_tag().is_some() {
            // Lync hook: a request inside an IM gateway session.
            if self.lync_im_in_dialog(&key, &msg) {
                return;
            }
            if let Some(id) = self.pa.dialog(msg.call_id(), msg.to_tag().unwrap_or("")) {
                self.in_dialog_local(&key, &msg, id);
                return;
            }
            // A dialog between two users: follow the route set or the Request-URI.
            let target = next_route
                .clone()
                .or_else(|| msg.request_uri().map(str::to_owned));
            let Some(target) = target else {
                self.reply(&key, &msg, 400, |b| b);
                return;
            };
            // Addressed to us but not one of our dialogs: it does not exist (any more).
            let to_us = Uri::parse(&target).is_ok_and(|u| self.is_us(&u));
            // Towards the caller of a dialog we record-routed: over the caller's
            // flow named in our signed Record-Route (see `crate::guard`).
            let flow = self.guard.flow_towards_caller(&msg, our_routes);
            let dest = flow.or_else(|| self.dest_for_uri(&target).filter(|_| !to_us));
            let Some(dest) = dest else {
                self.reply(&key, &msg, 481, |b| {
                    b.reason("No route for in-dialog request")
                });
                return;
            };
            // Relaying policy (see `crate::guard`): a dialog this server
            // record-routed, a trusted peer, or an authenticated sender reaching a
            // registered flow. Nothing else leaves the server.
            let ours =
                self.guard.has_signed_route(&msg, our_routes) || self.guard.is_trusted(src.addr);
            if !ours {
                if self.registered_dest_for_uri(&target).is_none() {
                    self.reply(&key, &msg, 403, |b| b.reason("Not a dialog of this server"));
                    return;
                }
                if self.authenticate(&key, &msg, src, true).is_none() {
                    return;
                }
            }
            self.tx.mark_verified(&key);
            let ruri = msg.request_uri().unwrap_or("").to_owned();
            self.forward(key, &msg, src, vec![(ruri, dest)], false, our_routes);
            return;
        }

        let Some(ruri_text) = msg.request_uri() else {
            return;
        };
        let ruri = match Uri::parse(ruri_text) {
            Ok(u) => u,
            Err(confab_sip::uri::UriError::Scheme) => {
                self.reply(&key, &msg, 416, |b| b);
                return;
            }
            Err(e) => {
                self.reply(&key, &msg, 400, |b| {
                    b.reason(format!("Bad Request-URI: {e}"))
                });
                return;
            }
        };
        // Enterprise Voice hook: calls to phone numbers, calls from PSTN gateways.
        if self.voice_hook(&key, &msg, src, &ruri, our_routes) {
            return;
        }
        if ruri.scheme == Scheme::Tel {
            self.reply(&key, &msg, 404, |b| {
                b.reason("No route to telephone numbers (no Mediation Server)")
            });
            return;
        }

        if method == Method::Register {
            if ruri.user.is_some() || !self.is_our_host(ruri.host) {
                self.reply(&key, &msg, 404, |b| b.reason("Domain not served here"));
                return;
            }
            self.handle_register(&key, &msg, src);
            return;
        }

        let for_us = self.is_our_host(ruri.host);
        let from_aor = msg.from().parsed_uri().ok().map(|u| u.aor());
        let from_local = msg
            .from()
            .parsed_uri()
            .ok()
            .is_some_and(|u| self.is_our_host(u.host));

        if ruri.user.is_none() && for_us {
            match method {
                Method::Options => {
                    self.reply(&key, &msg, 200, |b| {
                        b.header("Allow", ALLOW)
                            .header(
                                "Accept",
                                "application/sdp, application/pidf+xml, text/plain",
                            )
                            .header("Supported", "outbound, path")
                    });
                }
                _ => self.reply(&key, &msg, 404, |b| b.reason("No user in Request-URI")),
            }
            return;
        }

        // Until federation exists, other domains reach local users only through a
        // trusted peer; refused before the target is looked up, so that nothing
        // tells a stranger which users exist.
        let trusted = self.guard.is_trusted(src.addr);
        if !from_local && !trusted && !self.cfg.allow_unauthenticated {
            let reason = if for_us {
                "Requests from other domains are not accepted (federation is not enabled)"
            } else {
                "Relaying denied"
            };
            self.reply(&key, &msg, 403, |b| b.reason(reason));
            return;
        }
        // Authenticate requests from local users (§22.3: 407 from a proxy).
        let mut identity = None;
        if from_local && !trusted {
            match self.authenticate(&key, &msg, src, true) {
                Some(id) => identity = Some(id),
                None => return,
            }
            if from_aor.as_deref() != identity.as_deref() {
                self.reply(&key, &msg, 403, |b| {
                    b.reason("From does not match the authenticated user")
                });
                return;
            }
        }

        if identity.is_some() || trusted {
            self.tx.mark_verified(&key);
        }
        // Application routes (Persistent Chat): authenticated users only.
        if for_us && (identity.is_some() || trusted) && !self.cfg.app_routes.is_empty() {
            let app_target = format!(
                "{}@{}",
                ruri.user_unescaped().unwrap_or_default().to_lowercase(),
                self.cfg.domain
            );
            if crate::apps::serves(&self.cfg.app_routes, &app_target) {
                let verdict = crate::apps::decide(
                    &self.cfg.app_routes,
                    self.cfg.app_router.as_deref(),
                    &msg,
                    &app_target,
                    identity.as_deref(),
                );
                self.apply_verdict(&key, &msg, src, verdict, our_routes);
                return;
            }
        }
        // Response Groups hook: a workflow's SIP URI or number (crate::rgs_app).
        if let (true, true, Some(route)) =
            (for_us, identity.is_some() || trusted, self.cfg.rgs.clone())
        {
            let aor = format!(
                "{}@{}",
                ruri.user_unescaped().unwrap_or_default().to_lowercase(),
                self.cfg.domain
            );
            if route.router.serves(&aor) {
                let verdict = crate::rgs_app::decide(&route, &msg, identity.as_deref());
                self.apply_verdict(&key, &msg, src, verdict, our_routes);
                return;
            }
        }
        if !for_us {
            if !from_local {
                self.reply(&key, &msg, 403, |b| b.reason("Relaying denied"));
                return;
            }
            // A local user addressing a contact directly (an IP literal).
            match self.dest_for_uri(ruri_text) {
                Some(dest) if ruri.host.parse::<IpAddr>().is_ok() || ruri.host.starts_with('[') => {
                    let r = ruri_text.to_owned();
                    self.forward(
                        key,
                        &msg,
                        src,
                        vec![(r, dest)],
                        method == Method::Invite,
                        our_routes,
                    );
                }
                _ => self.reply(&key, &msg, 404, |b| {
                    b.reason("Domain not served here (federation is not enabled)")
                }),
            }
            return;
        }

        let target = format!(
            "{}@{}",
            ruri.user_unescaped().unwrap_or_default().to_lowercase(),
            self.cfg.domain
        );
        let known = self.directory.get(&target).is_some_and(|u| u.enabled);
        if !known {
            self.reply(&key, &msg, 404, |b| b.reason("User not found"));
            return;
        }
        // Pool hook: a user homed on another front end of the pool is served there.
        if let Some(router) = self.home.clone() {
            let verdict = crate::home::decide(
                &*router,
                &msg,
                src,
                &target,
                identity.as_deref(),
                self.cfg.advertise.tls_port,
            );
            if self.apply_verdict(&key, &msg, src, verdict, our_routes) {
                return;
            }
        }

        // Lync hook: what a Lync client asks of its own address (contact list,
        // category publication, roaming data, batched presence subscriptions).
        if identity.as_deref() == Some(target.as_str()) {
            match method {
                Method::Subscribe => {
                    if let Some(kind) = crate::lync::lync_subscription_kind(&msg) {
                        self.lync_subscribe(&key, &msg, src, &target, kind);
                        return;
                    }
                }
                Method::Service => {
                    self.lync_service(&key, &msg, src, &target);
                    return;
                }
                _ => {}
            }
        }

        match method {
            Method::Publish => {
                self.handle_publish(&key, &msg, identity.as_deref(), &target);
                return;
            }
            Method::Subscribe if event_is(&msg, "presence") => {
                let watcher = identity.or(from_aor).unwrap_or_default();
                self.handle_subscribe(&key, &msg, src, &watcher, &target);
                return;
            }
            _ => {}
        }

        let bindings: Vec<(String, Dest)> = self
            .registrar
            .lookup(&target, self.now)
            .into_iter()
            .map(|b| (b.uri.clone(), b.flow))
            .collect();
        if bindings.is_empty() {
            self.reply(&key, &msg, 480, |b| b.reason("User is offline"));
            return;
        }
        // Lync hook: IM from a Lync client to a user with no Lync endpoint.
        if method == Method::Invite
            && src.conn.is_some_and(|c| self.lync.is_signed(c))
            && crate::lync::im::is_im_offer(&msg)
            && self.lync_needs_im_gateway(&bindings)
        {
            let caller = identity.clone().unwrap_or_default();
            self.lync_im_invite(&key, &msg, src, &caller, &target, bindings);
            return;
        }
        match method {
            Method::Message => Metrics::inc(&self.metrics.messages_relayed_total),
            Method::Invite => Metrics::inc(&self.metrics.calls_forwarded_total),
            _ => {}
        }
        let rr = matches!(method, Method::Invite | Method::Subscribe | Method::Refer);
        self.forward(key, &msg, src, bindings, rr, our_routes);
    }

    /// A request that already passed through us with our own branch.
    fn is_looped(&self, msg: &Message) -> bool {
        let host = &self.cfg.advertise.host;
        msg.header_values(HeaderName::Via).skip(1).any(|v| {
            confab_sip::Via::parse(v).is_ok_and(|via| {
                via.host.eq_ignore_ascii_case(host)
                    && via.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                    && msg.top_via().branch() != via.branch()
            })
        }) && msg
            .header_values(HeaderName::Via)
            .filter(|v| v.contains(host.as_str()) && v.contains(BRANCH_PREFIX))
            .count()
            > 2
    }

    /// Where to send a request for a URI: over the flow of a registered contact,
    /// or to an IP literal.
    pub(crate) fn dest_for_uri(&self, uri: &str) -> Option<Dest> {
        if let Some(d) = self.registered_dest_for_uri(uri) {
            return Some(d);
        }
        let u = Uri::parse(uri).ok()?;
        let default = if u.scheme == Scheme::Sips {
            Transport::Tls
        } else {
            Transport::Udp
        };
        Dest::for_uri(&u, default)
    }

    /// The flow of a registered contact (or a GRUU we issued) a URI names.
    pub(crate) fn registered_dest_for_uri(&self, uri: &str) -> Option<Dest> {
        if let Some(b) = self.registrar.by_contact_uri(uri, self.now) {
            return Some(b.flow);
        }
        let u = Uri::parse(uri).ok()?;
        // A GRUU we issued (`sip:aor;opaque=user:epid:<id>;gruu`): the endpoint
        // whose `+sip.instance` carries that id.
        if let Some(Some(opaque)) = u.param("opaque")
            && let Some(epid) = opaque.strip_prefix("user:epid:")
            && u.param("gruu").is_some()
            && self.is_our_host(u.host)
        {
            let aor = u.aor();
            return self
                .registrar
                .lookup(&aor, self.now)
                .into_iter()
                .find(|b| b.instance.as_deref().is_some_and(|i| i.contains(epid)))
                .map(|b| b.flow);
        }
        None
    }

    /// Returns the authenticated address, or `None` after answering (challenge,
    /// refusal).
    pub(crate) fn authenticate(
        &mut self,
        key: &ServerKey,
        msg: &Message,
        src: Dest,
        proxy: bool,
    ) -> Option<String> {
        if self.cfg.allow_unauthenticated {
            let who = msg.from().parsed_uri().ok().map(|u| u.aor());
            if who.is_none() {
                self.reply(key, msg, 400, |b| b.reason("Malformed From URI"));
            }
            return who;
        }
        // Lync hook: NTLM (MS-SIPAE) for Lync clients and signed connections.
        if let Some(result) = self.lync_authenticate(key, msg, src) {
            return result;
        }
        let ip = src.addr.ip();
        if let Some(retry) = self.fail_src.is_blocked(&ip, self.now) {
            self.refuse_rate_limited(key, msg, retry);
            return None;
        }
        let header = if proxy {
            HeaderName::ProxyAuthorization
        } else {
            HeaderName::Authorization
        };
        // `get`, not slicing: the value may have a multi-byte character at byte 7.
        let is_digest = |v: &&str| {
            v.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("digest "))
        };
        // Prefer the credentials for our realm (others may be for other proxies),
        // else the first Digest ones. Each value is parsed once: the realm, the
        // user name and the Digest credentials are all read from that parse.
        let mut chosen = None;
        for v in msg.headers_named(header).filter(is_digest) {
            let parsed = confab_auth::params::parse(v);
            let ours = parsed.as_ref().is_ok_and(|p| {
                p.get("realm")
                    .is_some_and(|r| r.eq_ignore_ascii_case(&self.cfg.domain))
            });
            if ours {
                chosen = Some(parsed);
                break;
            }
            if chosen.is_none() {
                chosen = Some(parsed);
            }
        }
        let Some(parsed) = chosen else {
            self.challenge(key, msg, proxy, false);
            return None;
        };
        let username = parsed
            .as_ref()
            .ok()
            .and_then(|p| p.get("username").map(|u| u.to_lowercase()))
            .unwrap_or_default();
        let response = parsed
            .map_err(|e| DigestError::Malformed(e.to_string()))
            .and_then(|p| confab_auth::digest::DigestResponse::from_header(&p));
        // The digest `uri` must name the Request-URI (RFC 7616 §3.4.6), or an
        // answer made for one request could serve another. A URI naming this
        // server itself (no user part) is also accepted: some clients (SIPp among
        // them) put the server's address there.
        if let Ok(parsed) = &response
            && !digest_uri_matches(parsed.uri(), msg.request_uri().unwrap_or(""))
            && !Uri::parse(parsed.uri()).is_ok_and(|u| u.user.is_none() && self.is_us(&u))
        {
            self.reply(key, msg, 400, |b| {
                b.reason("Digest uri does not match the Request-URI")
            });
            return None;
        }
        let user_key = (format!("{username}@{}", self.cfg.domain), ip);
        if let Some(retry) = self.fail_user.is_blocked(&user_key, self.now) {
            self.refuse_rate_limited(key, msg, retry);
            return None;
        }
        let method = msg
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        let domain = self.cfg.domain.clone();
        let directory = &self.directory;
        let result = response.and_then(|response| {
            self.digest.verify_response(
                &method,
                &response,
                |u, r| {
                    if !r.eq_ignore_ascii_case(&domain) {
                        return None;
                    }
                    directory
                        .get(&format!("{}@{}", u.to_lowercase(), domain))
                        .filter(|e| e.enabled)
                        .map(|e| Ha1s::from_stored(&e.credentials))
                },
                self.wall_ms,
            )
        });
        match result {
            Ok(a) => {
                self.fail_src.record_success(&ip);
                self.fail_user.record_success(&user_key);
                Some(format!("{}@{}", a.username.to_lowercase(), self.cfg.domain))
            }
            Err(DigestError::StaleNonce) => {
                self.challenge(key, msg, proxy, true);
                None
            }
            Err(e) => {
                Metrics::inc(&self.metrics.auth_failures_total);
                warn!(peer = %src.addr, user = %user_key.0, reason = %e, "authentication failed");
                self.fail_src.record_failure(ip, self.now);
                self.fail_user.record_failure(user_key, self.now);
                self.challenge(key, msg, proxy, false);
                None
            }
        }
    }

    fn refuse_rate_limited(&mut self, key: &ServerKey, msg: &Message, retry: Duration) {
        Metrics::inc(&self.metrics.auth_rate_limited_total);
        let secs = retry.as_secs().max(1);
        self.reply(key, msg, 403, |b| {
            b.reason("Too many failed authentication attempts")
                .header("Retry-After", secs.to_string())
        });
    }

    fn challenge(&mut self, key: &ServerKey, msg: &Message, proxy: bool, stale: bool) {
        Metrics::inc(&self.metrics.auth_challenges_total);
        let domain = self.cfg.domain.clone();
        let mut values = self
            .digest
            .challenge(&domain, self.wall_ms, stale, &mut self.rng);
        // MD5 first: deployed clients answer the first challenge they understand.
        // SHA-256 is offered only when configured: libre (baresip 1.0) rejects a
        // 401 as soon as any challenge names an algorithm it lacks.
        values.reverse();
        if !self.cfg.digest_offer_sha256 {
            values.retain(|v| !v.contains("SHA-256"));
        }
        let (code, name) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        // A challenge is not worth 32 s of Timer J state per request over UDP: a
        // retransmitted request just gets a fresh challenge.
        self.reply_stateless(key, msg, code, |mut b| {
            for v in values {
                b = b.header(name, v);
            }
            b
        });
    }

    fn handle_register(&mut self, key: &ServerKey, msg: &Message, src: Dest) {
        let Ok(to) = msg.to().parsed_uri() else {
            self.reply(key, msg, 400, |b| b.reason("Malformed To URI"));
            return;
        };
        if !self.is_our_host(to.host) {
            self.reply(key, msg, 404, |b| b.reason("Domain not served here"));
            return;
        }
        let to_aor = format!(
            "{}@{}",
            to.user_unescaped().unwrap_or_default().to_lowercase(),
            self.cfg.domain
        );
        let Some(identity) = self.authenticate(key, msg, src, false) else {
            return;
        };
        if identity != to_aor {
            self.reply(key, msg, 403, |b| {
                b.reason("Authenticated user does not match the To address")
            });
            return;
        }
        // Pool hook: sign-in assigns a home front end; another one's users go there.
        if let Some(router) = self.home.clone() {
            let verdict = crate::home::decide(
                &*router,
                msg,
                src,
                &to_aor,
                Some(&identity),
                self.cfg.advertise.tls_port,
            );
            if self.apply_verdict(key, msg, src, verdict, 0) {
                return;
            }
        }
        let header_expires = msg.expires();
        let contacts: Vec<&str> = msg.header_values(HeaderName::Contact).collect();
        let mut updates = Vec::with_capacity(contacts.len());
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                self.reply(key, msg, 400, |b| {
                    b.reason("Wildcard Contact needs Expires: 0 and no other contact")
                });
                return;
            }
            let ev = self.registrar.remove_all(&to_aor);
            self.binding_events(ev);
        } else {
            for c in &contacts {
                let Ok(na) = NameAddr::parse(c) else {
                    self.reply(key, msg, 400, |b| b.reason("Malformed Contact header"));
                    return;
                };
                if Uri::parse(na.uri).is_err() {
                    self.reply(key, msg, 400, |b| b.reason("Malformed Contact URI"));
                    return;
                }
                let expires = na
                    .param("expires")
                    .flatten()
                    .and_then(|e| e.parse::<u64>().ok())
                    .map(|e| e.min(u64::from(u32::MAX)) as u32)
                    .or(header_expires)
                    .unwrap_or(self.cfg.default_expires);
                if expires != 0 && expires < self.cfg.min_expires {
                    let min = self.cfg.min_expires;
                    self.reply(key, msg, 423, |b| b.header("Min-Expires", min.to_string()));
                    return;
                }
                let instance = na
                    .param("+sip.instance")
                    .flatten()
                    .map(|v| unquote(v).to_owned());
                let reg_id = na.param("reg-id").flatten().and_then(|v| v.parse().ok());
                let mut params = String::new();
                if let Some(i) = &instance {
                    params.push_str(&format!(";+sip.instance=\"{i}\""));
                }
                if let Some(r) = reg_id {
                    params.push_str(&format!(";reg-id={r}"));
                }
                updates.push(ContactUpdate {
                    uri: na.uri.to_owned(),
                    instance,
                    reg_id,
                    expires: expires.min(self.cfg.max_expires),
                    params,
                });
            }
            if !updates.is_empty() {
                let (n, _) = msg.cseq();
                match self
                    .registrar
                    .update(&to_aor, msg.call_id(), n, &updates, src, self.now)
                {
                    Ok(ev) => self.binding_events(ev),
                    Err(RegisterError::OutOfOrder) => {
                        self.reply(key, msg, 500, |b| {
                            b.reason("Out of order REGISTER").header("Retry-After", "1")
                        });
                        return;
                    }
                    Err(RegisterError::TooManyContacts(max)) => {
                        self.reply(key, msg, 403, |b| {
                            b.reason(format!("Too many registered contacts (at most {max})"))
                        });
                        return;
                    }
                }
            }
        }
        Metrics::inc(&self.metrics.register_requests_total);
        let now = self.now;
        let current: Vec<String> = self
            .registrar
            .lookup(&to_aor, now)
            .into_iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                format!("<{}>;expires={left}{}", b.uri, b.params)
            })
            .collect();
        let expires = updates
            .first()
            .map(|u| u.expires)
            .unwrap_or(self.cfg.default_expires);
        let outbound = updates.iter().any(|u| u.reg_id.is_some());
        // Lync hook: GRUU contacts and the headers Lync clients need in the 200.
        let lync = crate::lync::is_lync_register(msg, &src);
        let current: Vec<String> = if lync {
            let aor = to_aor.clone();
            current
                .into_iter()
                .map(|c| crate::lync::with_gruu(c, &aor))
                .collect()
        } else {
            current
        };
        let lync_headers = if lync {
            self.lync_register_headers()
        } else {
            Vec::new()
        };
        debug!(aor = %to_aor, contacts = current.len(), "registered");
        self.reply(key, msg, 200, |mut b| {
            for c in current {
                b = b.header("Contact", c);
            }
            b = b
                .header("Expires", expires.to_string())
                .header("Allow", ALLOW);
            for (name, value) in lync_headers {
                b = b.header(name, value);
            }
            if outbound {
                b = b
                    .header("Require", "outbound")
                    .header("Supported", "outbound");
            }
            b
        });
    }
}

/// Whether a digest `uri` names the Request-URI: the same text, or the same
/// scheme, user, host and port (hosts and schemes compare case-insensitively).
fn digest_uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (Uri::parse(digest_uri), Uri::parse(request_uri)) {
        (Ok(a), Ok(b)) => {
            a.scheme == b.scheme
                && a.user == b.user
                && a.host.eq_ignore_ascii_case(b.host)
                && a.port == b.port
        }
        _ => false,
    }
}

/// Whether the request's Event header names this package.
pub(crate) fn event_is(msg: &Message, package: &str) -> bool {
    msg.header(HeaderName::Event)
        .map(|e| e.split(';').next().unwrap_or("").trim())
        .is_some_and(|e| e.eq_ignore_ascii_case(package))
}
