//! Limiting of authentication failures per key (source address, user name, ...).
//!
//! Fixed window with lockout: a key's window opens at its first failure. When
//! `max_failures` failures fall into one window the key is blocked for `window` from
//! the failure that reached the limit. A success ([`FailureLimiter::record_success`])
//! clears the key. Blocking does not extend itself: failures reported while blocked
//! are counted towards nothing (callers should not even try to authenticate then).
//!
//! Memory is bounded: at most `max_keys` keys are tracked; when a new key arrives at
//! capacity, expired keys are dropped first and then the least recently updated key.
//! An attacker flooding with new keys (spoofed user names) can thus push older keys
//! out; combine a per-source limiter with a per-user one.
//!
//! Sans-IO: time is passed in as [`Instant`] (monotonic; tests use an offset from a
//! fixed start, so they are deterministic).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    /// Position in `FailureLimiter::order`.
    stamp: u64,
}

impl Entry {
    /// When the entry stops mattering.
    fn expires(&self, window: Duration) -> Instant {
        let w = self.window_start + window;
        match self.blocked_until {
            Some(b) if b > w => b,
            _ => w,
        }
    }
}

/// Counts authentication failures per key and blocks keys that fail too often.
#[derive(Debug)]
pub struct FailureLimiter<K> {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    entries: HashMap<K, Entry>,
    /// Keys by last update (stamp), oldest first.
    order: BTreeMap<u64, K>,
    next_stamp: u64,
}

impl<K: Hash + Eq + Clone> FailureLimiter<K> {
    /// Blocks a key after `max_failures` (at least 1) failures within `window`, for
    /// `window`; tracks at most `max_keys` (at least 1) keys.
    pub fn new(max_failures: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
        }
    }

    /// Records one failed authentication for `key` at `now`.
    pub fn record_failure(&mut self, key: K, now: Instant) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(e) = self.entries.get_mut(&key) {
            self.order.remove(&e.stamp);
            e.stamp = stamp;
            self.order.insert(stamp, key.clone());
            if e.blocked_until.is_some_and(|b| now < b) {
                return;
            }
            if now >= e.window_start + self.window || e.blocked_until.is_some() {
                // Window over (or block served): start afresh.
                e.window_start = now;
                e.failures = 0;
                e.blocked_until = None;
            }
            e.failures = e.failures.saturating_add(1);
            if e.failures >= self.max_failures {
                e.blocked_until = Some(now + self.window);
            }
            return;
        }
        self.make_room(now);
        let blocked_until = (self.max_failures <= 1).then(|| now + self.window);
        self.entries.insert(
            key.clone(),
            Entry {
                window_start: now,
                failures: 1,
                blocked_until,
                stamp,
            },
        );
        self.order.insert(stamp, key);
    }

    /// `Some(retry_after)` while `key` is blocked at `now`.
    pub fn is_blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.entries.get(key)?.blocked_until?;
        (now < until).then(|| until - now)
    }

    /// Clears `key` after a successful authentication.
    pub fn record_success(&mut self, key: &K) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.stamp);
        }
    }

    /// Number of failures counted for `key` in its current window at `now`.
    pub fn failures(&self, key: &K, now: Instant) -> u32 {
        match self.entries.get(key) {
            Some(e) if now < e.expires(self.window) => e.failures,
            _ => 0,
        }
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every key whose window and block are over at `now`.
    pub fn purge(&mut self, now: Instant) {
        let window = self.window;
        let order = &mut self.order;
        self.entries.retain(|_, e| {
            let keep = now < e.expires(window);
            if !keep {
                order.remove(&e.stamp);
            }
            keep
        });
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.max_keys {
            return;
        }
        // Least recently updated first: drop the expired ones at the front, then evict
        // the oldest until there is room. O(log n) per removed key, no full scans.
        while let Some((&stamp, key)) = self.order.first_key_value() {
            let expired = self
                .entries
                .get(key)
                .is_none_or(|e| now >= e.expires(self.window));
            if !expired && self.entries.len() < self.max_keys {
                break;
            }
            if let Some(k) = self.order.remove(&stamp) {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const W: Duration = Duration::from_secs(60);

    struct Clock(Instant);
    impl Clock {
        fn at(&self, secs: u64) -> Instant {
            self.0 + Duration::from_secs(secs)
        }
    }

    fn clock() -> Clock {
        Clock(Instant::now())
    }

    #[test]
    fn blocks_after_max_failures_and_unblocks() {
        let c = clock();
        let mut l: FailureLimiter<String> = FailureLimiter::new(3, W, 100);
        let k = "alice".to_string();
        l.record_failure(k.clone(), c.at(0));
        l.record_failure(k.clone(), c.at(10));
        assert_eq!(l.is_blocked(&k, c.at(10)), None);
        assert_eq!(l.failures(&k, c.at(10)), 2);
        l.record_failure(k.clone(), c.at(20));
        assert_eq!(l.is_blocked(&k, c.at(20)), Some(W));
        assert_eq!(l.is_blocked(&k, c.at(50)), Some(Duration::from_secs(30)));
        // Failures while blocked do not extend the block.
        l.record_failure(k.clone(), c.at(50));
        assert_eq!(l.is_blocked(&k, c.at(79)), Some(Duration::from_secs(1)));
        assert_eq!(l.is_blocked(&k, c.at(80)), None);
        // After the block a fresh window starts.
        l.record_failure(k.clone(), c.at(81));
        assert_eq!(l.failures(&k, c.at(81)), 1);
        assert_eq!(l.is_blocked(&k, c.at(81)), None);
    }

    #[test]
    fn window_expiry_resets_count() {
        let c = clock();
        let mut l = FailureLimiter::new(3, W, 100);
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        l.record_failure(ip, c.at(0));
        l.record_failure(ip, c.at(59));
        l.record_failure(ip, c.at(60)); // new window
        assert_eq!(l.is_blocked(&ip, c.at(60)), None);
        assert_eq!(l.failures(&ip, c.at(60)), 1);
        assert_eq!(l.failures(&ip, c.at(200)), 0);
    }

    #[test]
    fn success_clears() {
        let c = clock();
        let mut l = FailureLimiter::new(2, W, 100);
        l.record_failure("bob".to_string(), c.at(0));
        l.record_success(&"bob".to_string());
        l.record_failure("bob".to_string(), c.at(1));
        assert_eq!(l.is_blocked(&"bob".to_string(), c.at(1)), None);
        l.record_failure("bob".to_string(), c.at(2));
        assert!(l.is_blocked(&"bob".to_string(), c.at(2)).is_some());
        l.record_success(&"bob".to_string());
        assert_eq!(l.is_blocked(&"bob".to_string(), c.at(2)), None);
        assert!(l.is_empty());
    }

    #[test]
    fn max_failures_one_blocks_immediately() {
        let c = clock();
        let mut l = FailureLimiter::new(0, W, 10);
        l.record_failure(1u32, c.at(0));
        assert_eq!(l.is_blocked(&1, c.at(0)), Some(W));
    }

    #[test]
    fn bounded_keys_evict_oldest() {
        let c = clock();
        let mut l = FailureLimiter::new(2, W, 3);
        for (i, k) in [1u32, 2, 3].into_iter().enumerate() {
            l.record_failure(k, c.at(i as u64));
        }
        // Touch 1 so that 2 is the least recently updated.
        l.record_failure(1, c.at(3));
        assert!(l.is_blocked(&1, c.at(3)).is_some());
        l.record_failure(4, c.at(4));
        assert_eq!(l.len(), 3);
        assert_eq!(l.failures(&2, c.at(4)), 0);
        assert_eq!(l.failures(&1, c.at(4)), 2);
        assert_eq!(l.failures(&3, c.at(4)), 1);
        assert_eq!(l.failures(&4, c.at(4)), 1);
        for k in 100..10_000u32 {
            l.record_failure(k, c.at(5));
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.order.len(), 3);
    }

    #[test]
    fn expired_keys_make_room_first() {
        let c = clock();
        let mut l = FailureLimiter::new(5, W, 2);
        l.record_failure(1u8, c.at(0));
        l.record_failure(2u8, c.at(100));
        // Key 1 expired at 60: it goes, key 2 stays.
        l.record_failure(3u8, c.at(101));
        assert_eq!(l.failures(&2, c.at(101)), 1);
        assert_eq!(l.failures(&3, c.at(101)), 1);
        assert_eq!(l.len(), 2);
        l.purge(c.at(1000));
        assert!(l.is_empty());
        assert!(l.order.is_empty());
    }
}
