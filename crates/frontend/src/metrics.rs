//! Counters and gauges of the front end, rendered in the Prometheus text format.
//! Kept as plain atomics owned by the server (no global registry).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Trunks counted at most (they come from the voice configuration).
const MAX_TRUNKS: usize = 1024;

#[derive(Debug, Default, Clone)]
struct TrunkCount {
    attempts: u64,
    answered: u64,
    failed: BTreeMap<u16, u64>,
}

/// Call attempts per PSTN trunk: attempts, answered, failed by final code.
#[derive(Debug, Default)]
pub struct TrunkCounters {
    inner: Mutex<BTreeMap<String, TrunkCount>>,
}

impl TrunkCounters {
    /// A call attempt on `trunk` ended with `code` (2xx: answered).
    pub fn attempt(&self, trunk: &str, code: u16) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        if !m.contains_key(trunk) && m.len() >= MAX_TRUNKS {
            return;
        }
        let c = m.entry(trunk.to_owned()).or_default();
        c.attempts += 1;
        if (200..300).contains(&code) {
            c.answered += 1;
        } else {
            *c.failed.entry(code).or_default() += 1;
        }
    }

    fn render(&self, out: &mut String) {
        let Ok(m) = self.inner.lock() else {
            return;
        };
        let esc = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "# HELP confab_trunk_attempts_total Call attempts on a PSTN trunk (Mediation role)."
        );
        let _ = writeln!(out, "# TYPE confab_trunk_attempts_total counter");
        for (t, c) in m.iter() {
            let _ = writeln!(
                out,
                "confab_trunk_attempts_total{{trunk=\"{}\"}} {}",
                esc(t),
                c.attempts
            );
        }
        let _ = writeln!(
            out,
            "# HELP confab_trunk_answered_total Call attempts a PSTN trunk answered."
        );
        let _ = writeln!(out, "# TYPE confab_trunk_answered_total counter");
        for (t, c) in m.iter() {
            let _ = writeln!(
                out,
                "confab_trunk_answered_total{{trunk=\"{}\"}} {}",
                esc(t),
                c.answered
            );
        }
        let _ = writeln!(
            out,
            "# HELP confab_trunk_failed_total Call attempts on a PSTN trunk that failed, by final SIP code (408: no answer)."
        );
        let _ = writeln!(out, "# TYPE confab_trunk_failed_total counter");
        for (t, c) in m.iter() {
            for (code, n) in &c.failed {
                let _ = writeln!(
                    out,
                    "confab_trunk_failed_total{{trunk=\"{}\",code=\"{code}\"}} {n}",
                    esc(t)
                );
            }
        }
    }
}

/// What the Monitoring role's record writers did: the front end's (internal
/// calls and IM sessions, from its activity queue) and the Mediation role's
/// (PSTN calls, from its call-record queue). An operator sees drops here.
#[derive(Debug, Default)]
pub struct RecordCounters {
    /// Call records written to the monitoring store.
    pub calls_written: AtomicU64,
    /// IM session rows written (an open session is written again when it changes).
    pub ims_written: AtomicU64,
    /// Call records dropped because the Mediation role's record queue was full
    /// (the writer behind). Shared with the Mediation server's loop.
    pub calls_queue_full: Arc<AtomicU64>,
    /// Call records / IM sessions lost because the store refused their batch.
    pub calls_write_failed: AtomicU64,
    pub ims_write_failed: AtomicU64,
    /// Calls / IM sessions not recorded because too many were open at once.
    pub calls_too_many_open: AtomicU64,
    pub ims_too_many_open: AtomicU64,
    /// Front-end activity (call steps, messages) dropped because the queue to the
    /// front end's writer was full: the records of those calls and sessions may
    /// be missing or incomplete.
    pub activity_dropped: AtomicU64,
    /// Call records waiting for the Mediation role's writer (shared with the
    /// Mediation server's loop, which adds; the writer subtracts).
    pub call_queue: Arc<AtomicU64>,
    /// Activity waiting for the front end's writer.
    pub activity_queue: AtomicU64,
}

impl RecordCounters {
    fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let name = "confab_monitoring_records_written_total";
        let _ = writeln!(
            out,
            "# HELP {name} Monitoring records written to the monitoring store, by kind (call; im_session: an open session is written again when it changes)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name}{{kind=\"call\"}} {}", get(&self.calls_written));
        let _ = writeln!(
            out,
            "{name}{{kind=\"im_session\"}} {}",
            get(&self.ims_written)
        );
        let name = "confab_monitoring_records_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Monitoring records lost, by kind and reason (queue_full: the writer fell behind; write_failed: the store refused the batch; too_many_open: more calls or sessions open than tracked)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (kind, reason, v) in [
            ("call", "queue_full", &*self.calls_queue_full),
            ("call", "write_failed", &self.calls_write_failed),
            ("call", "too_many_open", &self.calls_too_many_open),
            ("im_session", "write_failed", &self.ims_write_failed),
            ("im_session", "too_many_open", &self.ims_too_many_open),
        ] {
            let _ = writeln!(
                out,
                "{name}{{kind=\"{kind}\",reason=\"{reason}\"}} {}",
                get(v)
            );
        }
        let name = "confab_monitoring_activity_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Call steps and messages the front end could not queue for its monitoring writer (queue full): records of those calls and IM sessions may be missing or incomplete."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {}", get(&self.activity_dropped));
        let name = "confab_monitoring_queue_depth";
        let _ = writeln!(
            out,
            "# HELP {name} Items waiting for a monitoring writer (call_records: the Mediation role's call records; activity: the front end's call steps and messages)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(
            out,
            "{name}{{queue=\"call_records\"}} {}",
            get(&self.call_queue)
        );
        let _ = writeln!(
            out,
            "{name}{{queue=\"activity\"}} {}",
            get(&self.activity_queue)
        );
    }
}

/// Upper bounds (seconds) of the stage-latency histograms' buckets: from half a
/// millisecond (a request answered from memory) to SIP's T1 (a retransmission).
const STAGE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
];

/// A Prometheus histogram of durations with fixed buckets, kept as atomics (the
/// core thread records, the HTTP layer renders).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; STAGE_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = STAGE_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Renders the series of `name` with `labels` (e.g. `stage="queue"`); the
    /// caller writes HELP and TYPE once per name.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, n) in STAGE_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Where a SIP message spends its time inside the server (see docs/performance.md,
/// "Where a request waits"): each stage a histogram.
#[derive(Debug, Default)]
pub struct StageTimes {
    /// From the transport reading the message to the core task taking it.
    pub queue: Histogram,
    /// The core task's work on one batch of messages (all applications).
    pub core: Histogram,
    /// From the transport reading a request to its answer or forwarded copy
    /// being handed to the kernel (UDP) or the connection's queue (TCP/TLS).
    pub receive_to_send: Histogram,
}

impl StageTimes {
    fn render(&self, out: &mut String) {
        let name = "confab_sip_stage_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time SIP messages spend in each stage of the front end: queue (transport to core task), core (the core task's work per batch), receive_to_send (read to answer handed to the transport)."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.queue.render(out, name, "stage=\"queue\"");
        self.core.render(out, name, "stage=\"core\"");
        self.receive_to_send
            .render(out, name, "stage=\"receive_to_send\"");
    }
}

macro_rules! metrics_struct {
    ($( $field:ident : $kind:literal, $help:literal; )*) => {
        /// Front-end metrics. Shared between the core (writer) and the HTTP layer
        /// (reader).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( pub $field: AtomicU64, )*
            /// Calls per PSTN trunk (the Mediation role's records).
            pub trunks: TrunkCounters,
            /// The Monitoring role's record writers.
            pub records: RecordCounters,
            /// Time spent in each stage of the front end.
            pub stages: StageTimes,
        }

        impl Metrics {
            /// Prometheus exposition text.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(2048);
                $(
                    let name = concat!("confab_", stringify!($field));
                    let _ = writeln!(out, "# HELP {name} {}", $help);
                    let _ = writeln!(out, "# TYPE {name} {}", $kind);
                    let _ = writeln!(out, "{name} {}", self.$field.load(Ordering::Relaxed));
                )*
                self.trunks.render(&mut out);
                self.records.render(&mut out);
                self.stages.render(&mut out);
                out
            }
        }
    };
}

metrics_struct! {
    sip_requests_received_total: "counter", "SIP requests received (after parsing).";
    sip_responses_received_total: "counter", "SIP responses received.";
    sip_parse_errors_total: "counter", "Messages refused because they could not be parsed.";
    sip_retransmissions_absorbed_total: "counter", "Retransmitted requests answered from a transaction.";
    register_requests_total: "counter", "REGISTER requests accepted.";
    registrations: "gauge", "Registered contacts (bindings) currently held.";
    registered_users: "gauge", "Users with at least one registered contact.";
    auth_challenges_total: "counter", "Authentication challenges sent (401/407).";
    auth_failures_total: "counter", "Failed authentication attempts.";
    auth_rate_limited_total: "counter", "Requests refused because of too many authentication failures.";
    messages_relayed_total: "counter", "MESSAGE requests forwarded to a registered contact.";
    calls_forwarded_total: "counter", "Out-of-dialog INVITE requests forwarded.";
    requests_forwarded_total: "counter", "Requests forwarded by the proxy (all branches).";
    server_transactions: "gauge", "Live server transactions.";
    client_transactions: "gauge", "Live client transactions.";
    presence_publications_total: "counter", "PUBLISH requests accepted.";
    presence_subscriptions: "gauge", "Active presence subscriptions.";
    presence_notifies_sent_total: "counter", "NOTIFY requests sent to watchers.";
    chat_rooms: "gauge", "Persistent Chat rooms (disabled ones included).";
    chat_joined_users: "gauge", "Persistent Chat room memberships of connected users (a user in two rooms counts twice).";
    chat_posts_total: "counter", "Persistent Chat posts stored and fanned out (rate: posts/s).";
    chat_deliveries_total: "counter", "Persistent Chat posts delivered to room participants (rate: deliveries/s).";
    chat_remote_posts_total: "counter", "Persistent Chat posts stored by the pool's other chat servers and fanned out here.";
    chat_remote_joined_users: "gauge", "Persistent Chat room memberships of users joined through the pool's other chat servers.";
    chat_compliance_events_total: "counter", "Compliance events copied into the compliance database.";
    chat_compliance_backlog: "gauge", "Compliance events waiting in the chat store's outbox.";
    sip_event_queue_depth: "gauge", "Messages and events waiting for the core task (sampled after each batch).";
    sip_event_queue_depth_max: "gauge", "Highest sip_event_queue_depth seen since start.";
    sip_core_batch_max: "gauge", "Most messages the core task handled in one batch since start.";
    udp_send_queue_depth: "gauge", "Batches of datagrams waiting for the UDP sending task (sampled after each batch).";
    udp_socket_receive_queue_bytes: "gauge", "Bytes waiting in the SIP UDP socket's kernel receive buffer (sampled every second).";
    udp_socket_drops_total: "counter", "Datagrams the kernel dropped because the SIP UDP socket's receive buffer was full.";
    chat_compliance_export_lag_seconds: "gauge", "Seconds since the end of the last scheduled compliance export window (0 before the first).";
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, v: usize) {
        gauge.store(v as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_histogram_is_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.stages
            .queue
            .observe(std::time::Duration::from_micros(300));
        m.stages.queue.observe(std::time::Duration::from_millis(30));
        m.stages.queue.observe(std::time::Duration::from_secs(5));
        let text = m.render();
        let q =
            |le: &str| format!("confab_sip_stage_seconds_bucket{{stage=\"queue\",le=\"{le}\"}}");
        assert!(text.contains(&format!("{} 1\n", q("0.0005"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", q("0.02"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", q("0.05"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", q("2"))), "{text}");
        assert!(text.contains(&format!("{} 3\n", q("+Inf"))), "{text}");
        assert!(
            text.contains("confab_sip_stage_seconds_count{stage=\"queue\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("confab_sip_stage_seconds_sum{stage=\"queue\"} 5.0303\n"),
            "{text}"
        );
        assert!(
            text.contains("confab_sip_stage_seconds_count{stage=\"core\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn trunk_counters_render_per_trunk_and_code() {
        let m = Metrics::default();
        m.trunks.attempt("gw1", 503);
        m.trunks.attempt("gw2", 200);
        m.trunks.attempt("gw1", 503);
        let text = m.render();
        assert!(
            text.contains("confab_trunk_attempts_total{trunk=\"gw1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("confab_trunk_answered_total{trunk=\"gw2\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("confab_trunk_failed_total{trunk=\"gw1\",code=\"503\"} 2\n"),
            "{text}"
        );
        assert!(
            !text.contains("confab_trunk_failed_total{trunk=\"gw2\""),
            "{text}"
        );
    }

    #[test]
    fn record_counters_render_by_kind_and_reason() {
        let m = Metrics::default();
        m.records.calls_written.fetch_add(3, Ordering::Relaxed);
        m.records.ims_written.fetch_add(2, Ordering::Relaxed);
        m.records.calls_queue_full.fetch_add(5, Ordering::Relaxed);
        m.records.call_queue.fetch_add(7, Ordering::Relaxed);
        let text = m.render();
        for want in [
            "confab_monitoring_records_written_total{kind=\"call\"} 3\n",
            "confab_monitoring_records_written_total{kind=\"im_session\"} 2\n",
            "confab_monitoring_records_dropped_total{kind=\"call\",reason=\"queue_full\"} 5\n",
            "confab_monitoring_records_dropped_total{kind=\"im_session\",reason=\"write_failed\"} 0\n",
            "confab_monitoring_activity_dropped_total 0\n",
            "confab_monitoring_queue_depth{queue=\"call_records\"} 7\n",
            "confab_monitoring_queue_depth{queue=\"activity\"} 0\n",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }
}
