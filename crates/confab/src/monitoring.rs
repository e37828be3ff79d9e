//! Monitoring of calls and IM between users (Lync's Monitoring role, issue 13).
//!
//! The front end's core hands each step of a call or an IM conversation to a
//! [`ChannelSink`] (a bounded channel, never a database round trip on the
//! signalling path; see `confab_frontend::monitor`), which queues them as one
//! batch per turn of the core loop ([`ChannelSink::flush`]). A writer task groups them in
//! an [`Aggregator`] (sans-IO: fed activity and a clock) into call records
//! (`call_records`, direction `internal`) and IM sessions (`im_sessions`,
//! migration 0016), and writes what changed once a second in one transaction per
//! table, to the monitoring store (the topology's `monitoring_store`, else the
//! server's database). What it wrote and lost, and its queue's depth, are counted
//! in the front end's `Metrics::records` (`/metrics`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use confab_frontend::{Activity, Metrics, MonitorSink};
use confab_store::{CallDetail, ImSession, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// A call answered but never hung up (a BYE lost with its client) is closed
/// after this long.
const MAX_CALL_MS: u64 = 24 * 3600 * 1000;
/// A call with no final answer this long (the proxy's Timer C and its grace) is
/// recorded as not answered (408).
const NO_ANSWER_MS: u64 = 215_000;
/// A failed call whose caller never acknowledged the answer is closed after this.
const UNACKED_MS: u64 = 40_000;
/// Activity queued between the core and the writer at most (more is dropped).
const QUEUE: usize = 65_536;

/// Activity gathered before it is queued as one batch at most (the core loop
/// flushes after each turn; this bounds a turn that records a lot).
const BATCH: usize = 1024;

/// The core's side: activity is gathered, then queued as one batch per turn of
/// the core loop ([`ChannelSink::flush`]) on a bounded channel; what would take
/// the queue past [`QUEUE`] is dropped (counted in `/metrics`, with the queue's
/// depth). One channel send per message woke the writer's thread each time: a
/// fifteenth of the core thread's time at 10,000 MESSAGE/s (docs/performance.md,
/// "Pauses in the core thread, session 13").
#[derive(Debug)]
pub struct ChannelSink {
    tx: mpsc::Sender<Vec<Activity>>,
    pending: Mutex<Vec<Activity>>,
    metrics: Arc<Metrics>,
}

impl MonitorSink for ChannelSink {
    fn record(&self, activity: Activity) {
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push(activity);
            pending.len() >= BATCH
        };
        if full {
            self.flush();
        }
    }
}

impl ChannelSink {
    /// Queues what was recorded since the last flush, as one batch.
    pub fn flush(&self) {
        let batch = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.is_empty() {
                return;
            }
            std::mem::take(&mut *pending)
        };
        let m = &self.metrics.records;
        let n = batch.len() as u64;
        // Counted before it is queued, so the writer's subtraction never comes first.
        let before = m.activity_queue.fetch_add(n, Ordering::Relaxed);
        if before + n > QUEUE as u64 || self.tx.try_send(batch).is_err() {
            m.activity_queue.fetch_sub(n, Ordering::Relaxed);
            m.activity_dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

struct OpenCall {
    caller: String,
    callee: String,
    /// The callee's number when dialed by number (E.164), else empty.
    number: String,
    started: u64,
    answered: Option<u64>,
    /// The best failure so far (forked calls: several branches answer).
    best: Option<u16>,
    last: u64,
}

struct Im {
    id: String,
    kind: &'static str,
    from: String,
    to: String,
    started: u64,
    last: u64,
    messages: u64,
    /// 0 until the session's INVITE is answered.
    code: u16,
    best: Option<u16>,
    dirty: bool,
    /// Recently counted messages (hash of Call-ID, CSeq and sender), so that a
    /// retransmitted MESSAGE is counted once.
    recent: VecDeque<u64>,
}

impl Im {
    fn snapshot(&self, active: bool) -> ImSession {
        ImSession {
            id: self.id.clone(),
            kind: self.kind.to_owned(),
            from_user: self.from.clone(),
            to_user: self.to.clone(),
            started: ms(self.started),
            ended: ms(self.last),
            messages: i64::try_from(self.messages).unwrap_or(i64::MAX),
            code: i64::from(self.code),
            active,
        }
    }

    /// Counts a message once; `false` for a retransmission.
    fn count(&mut self, call_id: &str, cseq: u32, from: &str, at: u64) -> bool {
        let mut h = DefaultHasher::new();
        (call_id, cseq, from).hash(&mut h);
        let h = h.finish();
        if self.recent.contains(&h) {
            return false;
        }
        if self.recent.len() == 8 {
            self.recent.pop_front();
        }
        self.recent.push_back(h);
        self.messages += 1;
        self.last = self.last.max(at);
        self.dirty = true;
        true
    }
}

/// A session id: 128 random bits in hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The two users of a conversation, in a fixed order.
fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// Ranks failures like the proxy picks the answer it sends (lower is better).
fn rank(code: u16) -> u32 {
    match code {
        600..=699 => 1,
        401 | 407 => 2,
        300..=399 => 3,
        486 => 4,
        400..=499 if code != 408 && code != 480 => 5,
        480 => 6,
        408 => 7,
        _ => 8,
    }
}

fn better(best: Option<u16>, code: u16) -> Option<u16> {
    match best {
        Some(b) if rank(b) <= rank(code) => Some(b),
        _ => Some(code),
    }
}

/// Groups [`Activity`] into call records and IM sessions (sans-IO).
pub struct Aggregator {
    /// Pager messages of two users further apart than this start a new session.
    idle_ms: u64,
    /// Open calls and sessions at most (a flood of unanswered INVITEs cannot grow
    /// memory without bound).
    max_open: usize,
    calls: HashMap<String, OpenCall>,
    /// INVITE-based IM sessions by Call-ID.
    sessions: HashMap<String, Im>,
    /// The open INVITE-based session of two users (pager messages between them
    /// count there).
    session_of_pair: HashMap<(String, String), String>,
    pagers: HashMap<(String, String), Im>,
    done_calls: Vec<CallDetail>,
    closed: Vec<ImSession>,
    /// Calls refused because too much was open.
    pub overflow: u64,
    /// IM sessions' activity refused because too much was open.
    pub overflow_ims: u64,
}

impl Aggregator {
    pub fn new(idle: Duration, max_open: usize) -> Aggregator {
        Aggregator {
            idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
            max_open,
            calls: HashMap::new(),
            sessions: HashMap::new(),
            session_of_pair: HashMap::new(),
            pagers: HashMap::new(),
            done_calls: Vec::new(),
            closed: Vec::new(),
            overflow: 0,
            overflow_ims: 0,
        }
    }

    fn open(&self) -> usize {
        self.calls.len() + self.sessions.len() + self.pagers.len()
    }

    pub fn apply(&mut self, a: Activity) {
        match a {
            Activity::Offered {
                call_id,
                caller,
                callee,
                number,
                im,
                first_text,
                at,
            } => {
                if self.calls.contains_key(&call_id) || self.sessions.contains_key(&call_id) {
                    return;
                }
                if self.open() >= self.max_open {
                    if im {
                        self.overflow_ims += 1;
                    } else {
                        self.overflow += 1;
                    }
                    return;
                }
                if im {
                    self.session_of_pair
                        .insert(pair(&caller, &callee), call_id.clone());
                    self.sessions.insert(
                        call_id,
                        Im {
                            id: new_id(),
                            kind: "session",
                            from: caller,
                            to: callee,
                            started: at,
                            last: at,
                            messages: u64::from(first_text),
                            code: 0,
                            best: None,
                            dirty: true,
                            recent: VecDeque::new(),
                        },
                    );
                } else {
                    self.calls.insert(
                        call_id,
                        OpenCall {
                            caller,
                            callee,
                            number: number.unwrap_or_default(),
                            started: at,
                            answered: None,
                            best: None,
                            last: at,
                        },
                    );
                }
            }
            Activity::Final { call_id, code, at } => {
                if let Some(c) = self.calls.get_mut(&call_id) {
                    if (200..300).contains(&code) {
                        c.answered.get_or_insert(at);
                    } else if c.answered.is_none() {
                        c.best = better(c.best, code);
                        c.last = at;
                    }
                } else if let Some(s) = self.sessions.get_mut(&call_id)
                    && s.code == 0
                {
                    if (200..300).contains(&code) {
                        s.code = 200;
                        s.dirty = true;
                    } else {
                        s.best = better(s.best, code);
                    }
                }
            }
            Activity::Acked { call_id, at } => {
                if self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.answered.is_none() && c.best.is_some())
                {
                    self.finish_call(&call_id, at);
                } else if self
                    .sessions
                    .get(&call_id)
                    .is_some_and(|s| s.code == 0 && s.best.is_some())
                {
                    self.close_session(&call_id, at);
                }
            }
            Activity::Bye { call_id, at } => {
                if self
                    .calls
                    .get(&call_id)
                    .is_some_and(|c| c.answered.is_some())
                {
                    self.finish_call(&call_id, at);
                } else if self.sessions.contains_key(&call_id) {
                    self.close_session(&call_id, at);
                }
            }
            Activity::Message {
                call_id,
                cseq,
                from,
                to,
                in_dialog,
                at,
            } => {
                if let Some(s) = self.sessions.get_mut(&call_id) {
                    s.count(&call_id, cseq, &from, at);
                    return;
                }
                if in_dialog {
                    return; // a dialog recorded elsewhere (or not at all)
                }
                let key = pair(&from, &to);
                if let Some(id) = self.session_of_pair.get(&key)
                    && let Some(s) = self.sessions.get_mut(id)
                {
                    s.count(&call_id, cseq, &from, at);
                    return;
                }
                if let Some(p) = self.pagers.get(&key)
                    && at.saturating_sub(p.last) > self.idle_ms
                    && let Some(old) = self.pagers.remove(&key)
                {
                    self.closed.push(old.snapshot(false));
                }
                if !self.pagers.contains_key(&key) {
                    if self.open() >= self.max_open {
                        self.overflow_ims += 1;
                        return;
                    }
                    self.pagers.insert(
                        key.clone(),
                        Im {
                            id: new_id(),
                            kind: "pager",
                            from: from.clone(),
                            to,
                            started: at,
                            last: at,
                            messages: 0,
                            code: 200,
                            best: None,
                            dirty: true,
                            recent: VecDeque::new(),
                        },
                    );
                }
                if let Some(p) = self.pagers.get_mut(&key) {
                    p.count(&call_id, cseq, &from, at);
                }
            }
        }
    }

    fn finish_call(&mut self, call_id: &str, at: u64) {
        let Some(c) = self.calls.remove(call_id) else {
            return;
        };
        let code = match (c.answered, c.best) {
            (Some(_), _) => 200,
            (None, Some(b)) => b,
            (None, None) => 408,
        };
        self.done_calls.push(CallDetail {
            direction: "internal".to_owned(),
            caller: c.caller,
            callee: c.callee,
            number: c.number,
            trunk: String::new(),
            started: ms(c.started),
            answered: c.answered.map_or(0, ms),
            ended: ms(at.max(c.started)),
            code: i64::from(code),
            attempts: String::new(),
            relayed_packets: -1,
        });
    }

    fn close_session(&mut self, call_id: &str, at: u64) {
        let Some(mut s) = self.sessions.remove(call_id) else {
            return;
        };
        let key = pair(&s.from, &s.to);
        if self.session_of_pair.get(&key).map(String::as_str) == Some(call_id) {
            self.session_of_pair.remove(&key);
        }
        if s.code == 0 {
            // Refused: the text the INVITE carried was not delivered either.
            s.code = s.best.unwrap_or(408);
            s.messages = 0;
        }
        s.last = s.last.max(at);
        self.closed.push(s.snapshot(false));
    }

    /// Closes what timed out at `now` (epoch ms).
    pub fn tick(&mut self, now: u64) {
        let idle = self.idle_ms;
        let stale: Vec<(String, String)> = self
            .pagers
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last) > idle)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(p) = self.pagers.remove(&k) {
                self.closed.push(p.snapshot(false));
            }
        }
        let calls: Vec<(String, u64)> = self
            .calls
            .iter()
            .filter_map(|(id, c)| {
                let end = match (c.answered, c.best) {
                    (Some(a), _) if now.saturating_sub(a) > MAX_CALL_MS => now,
                    (None, Some(_)) if now.saturating_sub(c.last) > UNACKED_MS => c.last,
                    (None, None) if now.saturating_sub(c.started) > NO_ANSWER_MS => now,
                    _ => return None,
                };
                Some((id.clone(), end))
            })
            .collect();
        for (id, end) in calls {
            self.finish_call(&id, end);
        }
        let sessions: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| match s.code {
                0 if s.best.is_some() => now.saturating_sub(s.last) > UNACKED_MS,
                0 => now.saturating_sub(s.started) > NO_ANSWER_MS,
                _ => now.saturating_sub(s.last) > MAX_CALL_MS,
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in sessions {
            self.close_session(&id, now);
        }
    }

    /// What to write: the calls that ended, and the IM sessions that ended or
    /// changed since the last time.
    pub fn take(&mut self) -> (Vec<CallDetail>, Vec<ImSession>) {
        let calls = std::mem::take(&mut self.done_calls);
        let mut ims = std::mem::take(&mut self.closed);
        for s in self.sessions.values_mut().chain(self.pagers.values_mut()) {
            if s.dirty {
                s.dirty = false;
                ims.push(s.snapshot(true));
            }
        }
        (calls, ims)
    }

    /// Everything still open, as it stands (at shutdown).
    pub fn take_all_open(&mut self) -> Vec<ImSession> {
        self.sessions
            .values()
            .chain(self.pagers.values())
            .map(|s| s.snapshot(true))
            .collect()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes what the aggregator took; failures are logged and counted (records
/// are not kept for a retry: the store being down must not grow memory).
async fn write(store: &Store, metrics: &Metrics, calls: &[CallDetail], ims: &[ImSession]) {
    let m = &metrics.records;
    let (nc, ni) = (calls.len() as u64, ims.len() as u64);
    match store.record_calls(calls).await {
        Ok(()) => m.calls_written.fetch_add(nc, Ordering::Relaxed),
        Err(e) => {
            warn!(error = %e, calls = calls.len(), "writing internal call records failed");
            m.calls_write_failed.fetch_add(nc, Ordering::Relaxed)
        }
    };
    match store.record_im_sessions(ims).await {
        Ok(()) => m.ims_written.fetch_add(ni, Ordering::Relaxed),
        Err(e) => {
            warn!(error = %e, sessions = ims.len(), "writing IM sessions failed");
            m.ims_write_failed.fetch_add(ni, Ordering::Relaxed)
        }
    };
    if !calls.is_empty() || !ims.is_empty() {
        debug!(
            calls = calls.len(),
            im_sessions = ims.len(),
            "monitoring records written"
        );
    }
}

/// Starts the writer; returns the sink for the core and the task.
pub fn start(
    store: Store,
    idle: Duration,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> (Arc<ChannelSink>, JoinHandle<()>) {
    // Batches are counted against QUEUE activities in `flush`; the channel's own
    // bound (in batches) only has to be at least as loose.
    let (tx, mut rx) = mpsc::channel::<Vec<Activity>>(QUEUE);
    let sink = Arc::new(ChannelSink {
        tx,
        pending: Mutex::new(Vec::new()),
        metrics: metrics.clone(),
    });
    let own = Arc::downgrade(&sink);
    let task = tokio::spawn(async move {
        let mut agg = Aggregator::new(idle, 200_000);
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let m = &metrics.records;
        let (mut dropped, mut overflow) = (0, 0);
        let apply = |agg: &mut Aggregator, batch: Vec<Activity>| {
            m.activity_queue
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            for a in batch {
                agg.apply(a);
            }
        };
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(a) => {
                        apply(&mut agg, a);
                        while let Ok(a) = rx.try_recv() {
                            apply(&mut agg, a);
                        }
                    }
                    None => break,
                },
                _ = every.tick() => {
                    // Whatever a core loop left unflushed is written this second too.
                    if let Some(sink) = own.upgrade() {
                        sink.flush();
                    }
                    while let Ok(a) = rx.try_recv() {
                        apply(&mut agg, a);
                    }
                    agg.tick(now_ms());
                    let (calls, ims) = agg.take();
                    write(&store, &metrics, &calls, &ims).await;
                    m.calls_too_many_open.store(agg.overflow, Ordering::Relaxed);
                    m.ims_too_many_open.store(agg.overflow_ims, Ordering::Relaxed);
                    let d = m.activity_dropped.load(Ordering::Relaxed);
                    let o = agg.overflow + agg.overflow_ims;
                    if d > dropped || o > overflow {
                        warn!(
                            queue_full = d - dropped,
                            too_many_open = o - overflow,
                            "monitoring activity dropped"
                        );
                        (dropped, overflow) = (d, o);
                    }
                }
                _ = stop.changed() => break,
            }
        }
        if let Some(sink) = own.upgrade() {
            sink.flush();
        }
        while let Ok(a) = rx.try_recv() {
            apply(&mut agg, a);
        }
        let (calls, mut ims) = agg.take();
        // The open ones come again, all of them, from `take_all_open`.
        ims.retain(|s| !s.active);
        ims.extend(agg.take_all_open());
        write(&store, &metrics, &calls, &ims).await;
    });
    (sink, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_queues_one_batch_per_flush_and_drops_past_its_bound() {
        let metrics = Arc::new(Metrics::default());
        let (tx, mut rx) = mpsc::channel(4);
        let sink = ChannelSink {
            tx,
            pending: Mutex::new(Vec::new()),
            metrics: metrics.clone(),
        };
        let r = &metrics.records;
        for i in 0..3 {
            sink.record(fin(&format!("c{i}"), 200, i));
        }
        // Nothing is queued before the flush.
        assert!(rx.try_recv().is_err());
        sink.flush();
        let batch = rx.try_recv().unwrap_or_default();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.first(), Some(&fin("c0", 200, 0)));
        assert_eq!(r.activity_queue.load(Ordering::Relaxed), 3);
        // An empty flush queues nothing.
        sink.flush();
        assert!(rx.try_recv().is_err());
        // A turn that records a lot is cut into batches of BATCH.
        for i in 0..BATCH as u64 + 1 {
            sink.record(fin("big", 200, i));
        }
        assert_eq!(rx.try_recv().map(|b| b.len()).ok(), Some(BATCH));
        sink.flush();
        assert_eq!(rx.try_recv().map(|b| b.len()).ok(), Some(1));
        // Past QUEUE activities waiting, a batch is dropped and counted.
        r.activity_queue.store(QUEUE as u64, Ordering::Relaxed);
        sink.record(fin("late", 200, 9));
        sink.flush();
        assert!(rx.try_recv().is_err());
        assert_eq!(r.activity_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(r.activity_queue.load(Ordering::Relaxed), QUEUE as u64);
    }

    fn offered(id: &str, im: bool, at: u64) -> Activity {
        Activity::Offered {
            call_id: id.into(),
            caller: "alice@example.com".into(),
            callee: "bob@example.com".into(),
            number: None,
            im,
            first_text: im,
            at,
        }
    }

    fn fin(id: &str, code: u16, at: u64) -> Activity {
        Activity::Final {
            call_id: id.into(),
            code,
            at,
        }
    }

    fn message(id: &str, cseq: u32, from: &str, to: &str, in_dialog: bool, at: u64) -> Activity {
        Activity::Message {
            call_id: id.into(),
            cseq,
            from: from.into(),
            to: to.into(),
            in_dialog,
            at,
        }
    }

    const A: &str = "alice@example.com";
    const B: &str = "bob@example.com";

    #[test]
    fn calls_answered_failed_forked_and_unanswered() {
        let mut g = Aggregator::new(Duration::from_secs(60), 100);
        // Answered, hung up by BYE.
        g.apply(offered("c1", false, 1000));
        g.apply(fin("c1", 200, 3000));
        g.apply(fin("c1", 200, 3100)); // retransmitted 2xx
        g.apply(Activity::Acked {
            call_id: "c1".into(),
            at: 3200,
        });
        g.apply(Activity::Bye {
            call_id: "c1".into(),
            at: 9000,
        });
        // Forked: one branch busy, one declined: the proxy's choice (603) wins.
        g.apply(offered("c2", false, 1000));
        g.apply(fin("c2", 486, 2000));
        g.apply(fin("c2", 603, 2500));
        g.apply(Activity::Acked {
            call_id: "c2".into(),
            at: 2600,
        });
        // Never answered.
        g.apply(offered("c3", false, 1000));
        // Unknown calls (PSTN, chat) are ignored.
        g.apply(fin("zz", 200, 1000));
        g.apply(Activity::Bye {
            call_id: "zz".into(),
            at: 1000,
        });
        let (calls, _) = g.take();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].code, calls[0].answered, calls[0].ended),
            (200, 3000, 9000)
        );
        assert_eq!(calls[0].direction, "internal");
        assert_eq!((calls[1].code, calls[1].answered), (603, 0));
        g.tick(1000 + NO_ANSWER_MS + 1);
        let (calls, _) = g.take();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].code, 408);
        assert_eq!(g.open(), 0);
    }

    #[test]
    fn a_call_dialed_by_number_keeps_the_number() {
        let mut g = Aggregator::new(Duration::from_secs(60), 100);
        let mut o = offered("n1", false, 1000);
        if let Activity::Offered { number, .. } = &mut o {
            *number = Some("+14255550101".into());
        }
        g.apply(o);
        g.apply(fin("n1", 200, 2000));
        g.apply(Activity::Bye {
            call_id: "n1".into(),
            at: 4000,
        });
        let (calls, _) = g.take();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (
                calls[0].direction.as_str(),
                calls[0].callee.as_str(),
                calls[0].number.as_str(),
                calls[0].code
            ),
            ("internal", B, "+14255550101", 200)
        );
    }

    #[test]
    fn pager_sessions_group_by_pair_and_idle_time() {
        let mut g = Aggregator::new(Duration::from_secs(60), 100);
        g.apply(message("m1", 1, A, B, false, 1000));
        g.apply(message("m1", 1, A, B, false, 1100)); // retransmission
        g.apply(message("m2", 1, B, A, false, 5000)); // the reply: same session
        let (_, ims) = g.take();
        assert_eq!(ims.len(), 1);
        assert_eq!(
            (ims[0].kind.as_str(), ims[0].messages, ims[0].active),
            ("pager", 2, true)
        );
        assert_eq!((ims[0].from_user.as_str(), ims[0].ended), (A, 5000));
        let id = ims[0].id.clone();
        // Nothing changed: nothing to write.
        assert!(g.take().1.is_empty());
        // Idle longer than the idle time: closed; the next message starts another.
        g.tick(5000 + 60_001);
        let (_, ims) = g.take();
        assert_eq!(
            (ims.len(), ims[0].active, ims[0].id == id),
            (1, false, true)
        );
        g.apply(message("m3", 1, A, B, false, 70_000));
        let (_, ims) = g.take();
        assert_ne!(ims[0].id, id);
    }

    #[test]
    fn invite_sessions_count_their_messages_and_pager_replies() {
        let mut g = Aggregator::new(Duration::from_secs(60), 100);
        g.apply(offered("s1", true, 1000));
        g.apply(fin("s1", 200, 1500));
        g.apply(message("s1", 2, A, B, true, 2000));
        g.apply(message("s1", 3, A, B, true, 2500));
        // A SIP user answers a Lync user in pager mode (the IM gateway).
        g.apply(message("p9", 1, B, A, false, 3000));
        g.apply(message("zz", 1, B, A, true, 3000)); // someone else's dialog
        g.apply(Activity::Bye {
            call_id: "s1".into(),
            at: 4000,
        });
        let (_, ims) = g.take();
        assert_eq!(ims.len(), 1, "{ims:?}");
        let s = &ims[0];
        assert_eq!(
            (s.kind.as_str(), s.messages, s.code, s.active, s.ended),
            ("session", 4, 200, false, 4000)
        );
        // A refused session.
        g.apply(offered("s2", true, 5000));
        g.apply(fin("s2", 480, 5001));
        g.apply(Activity::Acked {
            call_id: "s2".into(),
            at: 5002,
        });
        let (_, ims) = g.take();
        assert_eq!(
            (ims[0].code, ims[0].messages, ims[0].active),
            (480, 0, false)
        );
    }

    #[test]
    fn bounded() {
        let mut g = Aggregator::new(Duration::from_secs(60), 2);
        for i in 0..5 {
            g.apply(offered(&format!("c{i}"), false, 1));
        }
        assert_eq!((g.open(), g.overflow), (2, 3));
        g.apply(message("m1", 1, A, B, false, 2));
        g.apply(offered("s1", true, 2));
        assert_eq!((g.open(), g.overflow, g.overflow_ims), (2, 3, 2));
    }
}
