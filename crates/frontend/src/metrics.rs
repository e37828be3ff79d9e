//! Counters and gauges of the front end, rendered in the Prometheus text format.
//! Kept as plain atomics owned by the server (no global registry).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics_struct {
    ($( $field:ident : $kind:literal, $help:literal; )*) => {
        /// Front-end metrics. Shared between the core (writer) and the HTTP layer
        /// (reader).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( pub $field: AtomicU64, )*
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
