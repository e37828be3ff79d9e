//! Pending transaction timers in first-in-first-out queues, one per delay.
//!
//! RFC 3261's transaction timers come in a handful of fixed delays (T1 and its
//! doublings up to T2 for retransmissions, 64×T1 for B, F and H, T4 for I and K,
//! 64×T1 for J and L). Timers of one delay, scheduled as the clock advances, fall
//! due in the order they were scheduled, so a queue per delay is already sorted:
//! scheduling is a push at the back and firing a pop at the front, with no heap
//! to rebalance. Under presence fan-out this matters: every NOTIFY over UDP leaves
//! timers E, F and K behind (a transaction's timers are not cancelled when it
//! ends; they are skipped when they fire), about 1.5 million entries at 40,000
//! NOTIFY/s, where a binary heap's pops were a tenth of the core thread's time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A timer: when it is due, its scheduling order (ties fire in this order), and
/// what it is for.
pub(crate) struct Due<E> {
    pub at: Instant,
    pub seq: u64,
    pub item: E,
}

struct Queue<E> {
    delay: Duration,
    items: VecDeque<Due<E>>,
}

/// Timers in one queue per delay (module documentation).
pub(crate) struct TimerQueues<E> {
    queues: Vec<Queue<E>>,
    seq: u64,
    len: usize,
}

impl<E> Default for TimerQueues<E> {
    fn default() -> Self {
        TimerQueues {
            queues: Vec::new(),
            seq: 0,
            len: 0,
        }
    }
}

impl<E> TimerQueues<E> {
    /// Schedules `item` at `now + delay`.
    pub fn push(&mut self, now: Instant, delay: Duration, item: E) {
        self.seq += 1;
        let due = Due {
            at: now + delay,
            seq: self.seq,
            item,
        };
        let q = match self.queues.iter().position(|q| q.delay == delay) {
            Some(i) => &mut self.queues[i],
            None => {
                self.queues.push(Queue {
                    delay,
                    items: VecDeque::new(),
                });
                let last = self.queues.len() - 1;
                &mut self.queues[last]
            }
        };
        match q.items.back() {
            // A clock read earlier than the last one (callers' instants are not
            // strictly ordered): keep the queue sorted.
            Some(back) if back.at > due.at => {
                let i = q.items.partition_point(|d| d.at <= due.at);
                q.items.insert(i, due);
            }
            _ => q.items.push_back(due),
        }
        self.len += 1;
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.items.front().map(|d| d.at))
            .min()
    }

    /// Moves every timer due at `now` into `out`, earliest first (ties in the
    /// order they were scheduled).
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<Due<E>>) {
        let start = out.len();
        for q in &mut self.queues {
            while q.items.front().is_some_and(|d| d.at <= now) {
                if let Some(d) = q.items.pop_front() {
                    out.push(d);
                }
            }
        }
        self.len -= out.len() - start;
        if self.queues.len() > 1 {
            out[start..].sort_unstable_by_key(|d| (d.at, d.seq));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Gives memory back after a burst (queues never shrink on their own).
    pub fn shrink(&mut self) {
        for q in &mut self.queues {
            if q.items.capacity() > 4096 && q.items.capacity() > 4 * q.items.len() {
                q.items.shrink_to(2 * q.items.len());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn take(q: &mut TimerQueues<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        q.take_due(now, &mut out);
        out.into_iter().map(|d| d.item).collect()
    }

    #[test]
    fn timers_fire_in_deadline_order_across_delays() {
        let t0 = Instant::now();
        let mut q = TimerQueues::default();
        q.push(t0, ms(500), 1); // due 500
        q.push(t0, ms(32_000), 2); // due 32,000
        q.push(t0 + ms(100), ms(500), 3); // due 600
        q.push(t0 + ms(200), ms(5_000), 4); // due 5,200
        q.push(t0 + ms(300), ms(200), 5); // due 500, scheduled after 1
        assert_eq!(q.len(), 5);
        assert_eq!(q.next_deadline(), Some(t0 + ms(500)));
        assert_eq!(take(&mut q, t0 + ms(499)), Vec::<u32>::new());
        assert_eq!(take(&mut q, t0 + ms(500)), vec![1, 5]);
        assert_eq!(q.next_deadline(), Some(t0 + ms(600)));
        assert_eq!(take(&mut q, t0 + ms(10_000)), vec![3, 4]);
        assert_eq!(q.len(), 1);
        assert_eq!(take(&mut q, t0 + ms(32_000)), vec![2]);
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn an_earlier_clock_reading_keeps_the_queue_sorted() {
        let t0 = Instant::now();
        let mut q = TimerQueues::default();
        q.push(t0 + ms(50), ms(500), 1); // due 550
        q.push(t0, ms(500), 2); // due 500: the clock read earlier
        q.push(t0 + ms(60), ms(500), 3); // due 560
        assert_eq!(q.next_deadline(), Some(t0 + ms(500)));
        assert_eq!(take(&mut q, t0 + ms(555)), vec![2, 1]);
        assert_eq!(take(&mut q, t0 + ms(560)), vec![3]);
    }
}
