//! Connection limits that are not about bytes: how long a connection may stay
//! silent or keep a message half-sent ([`Liveness`]), which connections carry a
//! registration ([`FlowState`]), why a connection was refused ([`Refused`]),
//! back-off of a failing `accept` ([`AcceptBackoff`]) and rate-limited log lines
//! ([`LogLimiter`]).
//!
//! Everything here is plain state fed a clock, so it is tested without sockets;
//! the reading tasks (here and in `confab-web`) own the timers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Why [`crate::Connections::register`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections` connections are open.
    Total,
    /// The address has `max_connections_per_ip` connections open.
    PerAddress,
}

/// Why [`Liveness::check`] ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete SIP message for `idle_timeout`, and no registration.
    Idle,
    /// A message was started and not finished within `header_timeout`.
    Slow,
}

/// Whether a connection carries a registration, and until when. Set by the
/// delivery path when a `200` answer to a REGISTER leaves over the connection
/// (the registrar only answers 200 after authentication), read by the
/// connection's reader.
#[derive(Debug)]
pub struct FlowState {
    epoch: Instant,
    /// Milliseconds after `epoch` the registration ends; 0 for none.
    until_ms: AtomicU64,
}

impl FlowState {
    pub fn new(epoch: Instant) -> FlowState {
        FlowState {
            epoch,
            until_ms: AtomicU64::new(0),
        }
    }

    /// A registration of `lasts` was granted at `now` (0 ends it).
    pub fn registered_for(&self, lasts: Duration, now: Instant) {
        let ms = if lasts.is_zero() {
            0
        } else {
            (now + lasts).duration_since(self.epoch).as_millis() as u64
        };
        self.until_ms.store(ms, Ordering::Relaxed);
    }

    /// When the registration carried by the connection ends, if it has one.
    pub fn registered_until(&self) -> Option<Instant> {
        match self.until_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms)),
        }
    }
}

/// The idle and header clocks of one connection.
///
/// - A connection that is not a registered flow is closed `idle` after its last
///   complete SIP message (or after it opened): CRLF keep-alives do not count, so
///   an unauthenticated party cannot hold a connection with pings alone.
/// - A registered flow stays open until its registration ends (then the idle
///   clock applies again, counted from its last message): RFC 5626 keep-alives
///   and re-registrations keep it.
/// - A message whose first byte arrived must be complete within `header`.
#[derive(Debug)]
pub struct Liveness {
    idle: Duration,
    header: Duration,
    flow: std::sync::Arc<FlowState>,
    last_message: Instant,
    partial_since: Option<Instant>,
}

impl Liveness {
    pub fn new(
        idle: Duration,
        header: Duration,
        flow: std::sync::Arc<FlowState>,
        now: Instant,
    ) -> Liveness {
        Liveness {
            idle,
            header,
            flow,
            last_message: now,
            partial_since: None,
        }
    }

    /// A complete message arrived.
    pub fn on_message(&mut self, now: Instant) {
        self.last_message = now;
        self.partial_since = None;
    }

    /// After the complete messages of a read were taken: whether part of a
    /// message is left. Returns true when a message just started (its header
    /// deadline may come before the timer).
    pub fn set_partial(&mut self, partial: bool, now: Instant) -> bool {
        match (partial, self.partial_since) {
            (true, None) => {
                self.partial_since = Some(now);
                true
            }
            (false, Some(_)) => {
                self.partial_since = None;
                false
            }
            _ => false,
        }
    }

    /// When the connection is to be closed unless something happens first.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_message + self.idle;
        let keep = match self.flow.registered_until() {
            Some(until) => idle.max(until),
            None => idle,
        };
        match self.partial_since {
            Some(since) => keep.min(since + self.header),
            None => keep,
        }
    }

    /// At `now` (the timer fired): `Ok(next deadline)` to keep the connection,
    /// or why it must close.
    pub fn check(&self, now: Instant) -> Result<Instant, Expired> {
        if let Some(since) = self.partial_since
            && now >= since + self.header
        {
            return Err(Expired::Slow);
        }
        let deadline = self.deadline();
        if now >= deadline {
            return Err(Expired::Idle);
        }
        Ok(deadline)
    }
}

/// How long the answer to a REGISTER in `data` registers for, when `data` is a
/// `2xx` to a REGISTER (its `Expires` header; 0 without one). Cheap: the start
/// line is checked first, and only the header section is scanned.
pub fn register_ok_expires(data: &[u8]) -> Option<u64> {
    if !data.starts_with(b"SIP/2.0 2") {
        return None;
    }
    let end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
    let mut register = false;
    let mut expires = 0;
    for line in data[..end].split(|b| *b == b'\n').skip(1) {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"CSeq") {
            register = value
                .split(|b| b.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
                .nth(1)
                .is_some_and(|m| m == b"REGISTER");
        } else if name.eq_ignore_ascii_case(b"Expires") {
            expires = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    register.then_some(expires)
}

/// Allows a log line at most once per interval; counts what it held back.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            interval,
            last: Mutex::new(None),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written now.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut last = self.last.lock();
        match *last {
            Some(t) if now < t + self.interval => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// Back-off of a listener whose `accept` fails (typically EMFILE: out of file
/// descriptors): 50 ms, doubling to 1 s while it keeps failing, and a log line at
/// most every 10 s.
#[derive(Debug)]
pub struct AcceptBackoff {
    delay: Duration,
    log: LogLimiter,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(50);
    pub const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> AcceptBackoff {
        AcceptBackoff {
            delay: Duration::ZERO,
            log: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// An accept failed at `now`: how long to wait, and whether to log (with the
    /// failures held back since the last line).
    pub fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.delay = if self.delay.is_zero() {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        (self.delay, self.log.allow(now))
    }

    /// An accept succeeded: the next failure starts from the shortest delay.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Raises the soft open-file limit to the hard one (a server that holds one
/// descriptor per client needs it; systemd's default soft limit is 1,024) and
/// returns the limit now in force, `None` when it cannot be read or is unlimited.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current != l.maximum {
        let raised = rustix::process::Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            l = getrlimit(Resource::Nofile);
        }
    }
    l.current
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const IDLE: Duration = Duration::from_secs(120);
    const HEADER: Duration = Duration::from_secs(10);

    fn live(t0: Instant) -> (Liveness, Arc<FlowState>) {
        let flow = Arc::new(FlowState::new(t0));
        (Liveness::new(IDLE, HEADER, flow.clone(), t0), flow)
    }

    #[test]
    fn silent_connection_expires_after_the_idle_timeout() {
        let t0 = Instant::now();
        let (l, _) = live(t0);
        assert_eq!(l.deadline(), t0 + IDLE);
        assert_eq!(l.check(t0 + IDLE / 2), Ok(t0 + IDLE));
        assert_eq!(l.check(t0 + IDLE), Err(Expired::Idle));
    }

    #[test]
    fn messages_move_the_idle_deadline() {
        let t0 = Instant::now();
        let (mut l, _) = live(t0);
        l.on_message(t0 + Duration::from_secs(100));
        assert_eq!(l.check(t0 + IDLE), Ok(t0 + Duration::from_secs(100) + IDLE));
    }

    #[test]
    fn a_started_message_must_finish_within_the_header_timeout() {
        let t0 = Instant::now();
        let (mut l, _) = live(t0);
        let t1 = t0 + Duration::from_secs(5);
        assert!(l.set_partial(true, t1));
        // More bytes of the same message do not move the deadline.
        assert!(!l.set_partial(true, t1 + Duration::from_secs(3)));
        assert_eq!(l.deadline(), t1 + HEADER);
        assert_eq!(l.check(t1 + HEADER), Err(Expired::Slow));
        // Finished in time: back to the idle clock.
        l.on_message(t1 + Duration::from_secs(9));
        assert_eq!(l.deadline(), t1 + Duration::from_secs(9) + IDLE);
    }

    #[test]
    fn a_registered_flow_stays_while_its_registration_lasts() {
        let t0 = Instant::now();
        let (l, flow) = live(t0);
        flow.registered_for(Duration::from_secs(3600), t0);
        assert_eq!(l.check(t0 + IDLE * 2), Ok(t0 + Duration::from_secs(3600)));
        assert_eq!(l.check(t0 + Duration::from_secs(3600)), Err(Expired::Idle));
        // Unregistered (Expires: 0): the idle clock applies again.
        flow.registered_for(Duration::ZERO, t0);
        assert_eq!(l.check(t0 + IDLE), Err(Expired::Idle));
        // A registered flow still may not keep a message half-sent.
        let (mut l, flow) = live(t0);
        flow.registered_for(Duration::from_secs(3600), t0);
        l.set_partial(true, t0);
        assert_eq!(l.check(t0 + HEADER), Err(Expired::Slow));
    }

    #[test]
    fn recognises_a_register_200() {
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bK1\r\nCSeq: 7 REGISTER\r\nContact: <sip:a@1.2.3.4>;expires=300\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(register_ok_expires(ok), Some(300));
        let unreg = b"SIP/2.0 200 OK\r\ncseq:  8   REGISTER\r\nexpires:0\r\n\r\n";
        assert_eq!(register_ok_expires(unreg), Some(0));
        let message = b"SIP/2.0 200 OK\r\nCSeq: 7 MESSAGE\r\nExpires: 300\r\n\r\n";
        assert_eq!(register_ok_expires(message), None);
        let challenge = b"SIP/2.0 401 Unauthorized\r\nCSeq: 7 REGISTER\r\nExpires: 300\r\n\r\n";
        assert_eq!(register_ok_expires(challenge), None);
        let request = b"REGISTER sip:x SIP/2.0\r\nCSeq: 7 REGISTER\r\nExpires: 300\r\n\r\n";
        assert_eq!(register_ok_expires(request), None);
        // The body is not looked at.
        let body = b"SIP/2.0 200 OK\r\nCSeq: 1 MESSAGE\r\n\r\nCSeq: 1 REGISTER\r\n";
        assert_eq!(register_ok_expires(body), None);
    }

    #[test]
    fn log_limiter_allows_one_line_per_interval() {
        let t0 = Instant::now();
        let l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.allow(t0), Some(0));
        for i in 1..=500 {
            assert_eq!(l.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(500));
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_logs_rarely() {
        let t0 = Instant::now();
        let mut b = AcceptBackoff::new();
        let mut t = t0;
        let mut delays = Vec::new();
        let mut lines = 0;
        // 20 s of failures at the pace the back-off sets.
        while t < t0 + Duration::from_secs(20) {
            let (d, log) = b.failed(t);
            delays.push(d.as_millis());
            lines += usize::from(log.is_some());
            t += d;
        }
        assert_eq!(&delays[..6], [50, 100, 200, 400, 800, 1000]);
        assert!(delays.iter().all(|d| *d <= 1000));
        // One line per 10 s, not one per 50 ms (400 over 20 s before).
        assert!(lines <= 3, "{lines} lines in 20 s");
        b.succeeded();
        assert_eq!(b.failed(t).0, AcceptBackoff::FIRST);
    }
}
