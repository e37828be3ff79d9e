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
//!
//! Each queue is a chain of blocks of at most [`BLOCK`] timers. One buffer that
//! doubled as it filled copied all its timers at each doubling, on the core
//! thread: tens of megabytes, and as many of new pages to fault in, once the
//! queue of 32 s timers held a million entries (a pause of tens of milliseconds
//! that every request queued behind). A new block costs one small allocation, and
//! an emptied one is kept for the next.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A timer: when it is due, its scheduling order (ties fire in this order), and
/// what it is for.
pub(crate) struct Due<E> {
    pub at: Instant,
    pub seq: u64,
    pub item: E,
}

/// Timers in one block at most (about 200 kB of 48-byte timers): past it, a new
/// block. A block grows to it by doubling like any `VecDeque`, so that a queue with
/// few timers stays small.
const BLOCK: usize = 4096;

/// The timers of one delay, due in order: blocks oldest first, none empty. A
/// block holds at most [`BLOCK`] timers except after an out-of-order insert
/// (rare, see [`TimerQueues::push`]).
struct Queue<E> {
    delay: Duration,
    blocks: VecDeque<VecDeque<Due<E>>>,
    /// An emptied block, kept for the next one needed.
    spare: Option<VecDeque<Due<E>>>,
}

impl<E> Queue<E> {
    fn new(delay: Duration) -> Queue<E> {
        Queue {
            delay,
            blocks: VecDeque::new(),
            spare: None,
        }
    }

    fn front(&self) -> Option<&Due<E>> {
        self.blocks.front().and_then(VecDeque::front)
    }

    fn back(&self) -> Option<&Due<E>> {
        self.blocks.back().and_then(VecDeque::back)
    }

    fn push_back(&mut self, due: Due<E>) {
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK => block.push_back(due),
            _ => {
                let mut block = self.spare.take().unwrap_or_default();
                block.push_back(due);
                self.blocks.push_back(block);
            }
        }
    }

    /// Inserts `due` after every timer due no later than it.
    fn insert_sorted(&mut self, due: Due<E>) {
        // Blocks before the first whose last timer is due later hold only timers
        // due no later than `due`.
        let k = self
            .blocks
            .partition_point(|b| b.back().is_some_and(|d| d.at <= due.at));
        match self.blocks.get_mut(k) {
            Some(block) => {
                let i = block.partition_point(|d| d.at <= due.at);
                block.insert(i, due);
            }
            None => self.push_back(due),
        }
    }

    fn pop_front(&mut self) -> Option<Due<E>> {
        let block = self.blocks.front_mut()?;
        let due = block.pop_front();
        if block.is_empty()
            && let Some(empty) = self.blocks.pop_front()
            && self.spare.is_none()
        {
            self.spare = Some(empty);
        }
        due
    }
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
                self.queues.push(Queue::new(delay));
                let last = self.queues.len() - 1;
                &mut self.queues[last]
            }
        };
        match q.back() {
            // A clock read earlier than the last one (callers' instants are not
            // strictly ordered): keep the queue sorted.
            Some(back) if back.at > due.at => q.insert_sorted(due),
            _ => q.push_back(due),
        }
        self.len += 1;
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.front().map(|d| d.at))
            .min()
    }

    /// Moves every timer due at `now` into `out`, earliest first (ties in the
    /// order they were scheduled).
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<Due<E>>) {
        let start = out.len();
        for q in &mut self.queues {
            while q.front().is_some_and(|d| d.at <= now) {
                if let Some(d) = q.pop_front() {
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

    /// Gives memory back after a burst: emptied blocks go back as they empty,
    /// what stays is each queue's spare block and its list of blocks.
    pub fn shrink(&mut self) {
        for q in &mut self.queues {
            q.spare = None;
            q.blocks.shrink_to_fit();
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

    /// Many blocks, out-of-order inserts landing in every block, pops across
    /// block ends: the timers come out as one sorted queue would give them.
    #[test]
    fn timers_in_many_blocks_fire_as_one_sorted_queue() {
        let t0 = Instant::now();
        let mut q = TimerQueues::default();
        let mut reference: Vec<(Instant, u64, u32)> = Vec::new();
        let mut seq = 0;
        let n = (3 * BLOCK + 100) as u32;
        for i in 0..n {
            // every 97th reading is 5 ms behind the previous ones
            let now = if i % 97 == 0 && i > 0 {
                t0 + ms(u64::from(i) / 2) - ms(5)
            } else {
                t0 + ms(u64::from(i) / 2)
            };
            q.push(now, ms(32_000), i);
            seq += 1;
            reference.push((now + ms(32_000), seq, i));
        }
        assert!(q.queues[0].blocks.len() >= 3);
        reference.sort_by_key(|&(at, seq, _)| (at, seq));
        let mut fired = Vec::new();
        let mut t = t0;
        while q.len() > 0 {
            t += ms(700);
            fired.extend(take(&mut q, t + ms(32_000)));
        }
        // Equal due times fire in the order they were scheduled.
        let expected: Vec<u32> = reference.iter().map(|r| r.2).collect();
        assert_eq!(fired, expected);
        assert_eq!(q.next_deadline(), None);
        q.shrink();
        assert!(q.queues[0].blocks.is_empty() && q.queues[0].spare.is_none());
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
