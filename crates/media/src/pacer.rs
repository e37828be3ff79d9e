//! The pacer (sans-IO): every outgoing stream of a node, one 20 ms packet each
//! when it is due. The caller owns the clock and the sockets: it asks
//! [`Pacer::next_due`] when to wake up, calls [`Pacer::tick`] with the time, and
//! sends what it is handed. One timer per node drives every stream.
//!
//! Streams sit in a timing wheel of 20 one-millisecond slots: a stream added at
//! millisecond `m` is due at `m`, `m + 20`, `m + 40`..., so a tick looks only at
//! the slots whose millisecond has come, and the work per tick is the packets
//! due. Packets are built into one buffer owned by the pacer: no allocation per
//! packet. A tick that comes late sends one packet per stream and skips the
//! missed ones (timestamps still follow the clock, so the receiver's jitter
//! buffer sees a gap, not a burst). Lateness (how long after its due time each
//! packet went out) is kept in a histogram for the pacing-jitter figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::prompt::Prompt;
use crate::rtp::{MAX_PACKET, RtpSender, SAMPLES_PER_PACKET};
use crate::sdp::Codec;

const SLOTS: usize = 20;
const PERIOD_MS: u64 = 20;
/// RTCP sender report every 250 packets (5 s).
const RTCP_EVERY: u32 = 250;

/// A stream's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    index: u32,
    generation: u32,
}

/// What happens at the end of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    /// The stream ends (and is reported by [`Pacer::tick`]).
    Stop,
    /// The prompt starts again (music on hold).
    Loop,
}

/// A stream to start.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub prompt: Prompt,
    pub codec: Codec,
    pub remote: SocketAddr,
    /// RTCP goes to the RTP port + 1.
    pub rtcp: bool,
    /// Whether packets are sent (a `recvonly`/`inactive` peer gets none, the
    /// prompt still plays out in time).
    pub send: bool,
    pub at_end: AtEnd,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
}

struct Entry<T> {
    generation: u32,
    token: Option<T>,
    audio: Arc<[u8]>,
    pos: usize,
    rtp: RtpSender,
    remote: SocketAddr,
    rtcp: bool,
    send: bool,
    at_end: AtEnd,
    due_ms: u64,
    slot: u8,
}

/// A packet to send, handed to the caller's closure.
#[derive(Debug)]
pub struct Packet<'a, T> {
    pub stream: StreamId,
    pub token: &'a T,
    pub to: SocketAddr,
    pub data: &'a [u8],
    /// An RTCP packet (to the RTCP port).
    pub rtcp: bool,
}

/// Lateness histogram: 0.1 ms buckets up to 100 ms.
#[derive(Debug, Clone)]
pub struct Lateness {
    buckets: Vec<u64>,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            buckets: vec![0; 1001],
        }
    }
}

impl Lateness {
    fn record(&mut self, late: Duration) {
        let b = ((late.as_micros() / 100) as usize).min(self.buckets.len() - 1);
        self.buckets[b] += 1;
    }

    /// Packets recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0..=1) of lateness, to 0.1 ms.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Duration::from_micros(i as u64 * 100 + 100);
            }
        }
        Duration::from_millis(100)
    }

    pub fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
    }
}

/// See the module documentation. `T` is the caller's token per stream (its
/// socket, say), handed back with each packet and when the stream ends.
pub struct Pacer<T> {
    epoch: Instant,
    /// Last millisecond ticked (slots up to it are done).
    done_ms: Option<u64>,
    entries: Vec<Option<Entry<T>>>,
    free: Vec<u32>,
    generations: Vec<u32>,
    slots: [Vec<u32>; SLOTS],
    buf: [u8; MAX_PACKET],
    live: usize,
    /// NTP time (32.32) at `epoch`, for RTCP.
    ntp_epoch: u64,
    pub lateness: Lateness,
}

impl<T> Pacer<T> {
    /// `ntp_epoch`: the wall clock at `epoch` as NTP 32.32 fixed point.
    pub fn new(epoch: Instant, ntp_epoch: u64) -> Pacer<T> {
        Pacer {
            epoch,
            done_ms: None,
            entries: Vec::new(),
            free: Vec::new(),
            generations: Vec::new(),
            slots: Default::default(),
            buf: [0; MAX_PACKET],
            live: 0,
            ntp_epoch,
            lateness: Lateness::default(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Streams running.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Starts a stream whose first packet is due at `now` (next millisecond).
    pub fn add(&mut self, now: Instant, spec: StreamSpec, token: T) -> StreamId {
        // The first millisecond not ticked yet, at or after now.
        let mut due_ms = self.ms(now);
        if let Some(done) = self.done_ms
            && due_ms <= done
        {
            due_ms = done + 1;
        }
        let slot = (due_ms % SLOTS as u64) as u8;
        let entry = Entry {
            generation: 0,
            token: Some(token),
            audio: spec.prompt.encoded(spec.codec).clone(),
            pos: 0,
            rtp: RtpSender::new(
                spec.ssrc,
                spec.seq,
                spec.timestamp,
                spec.codec.payload_type(),
            ),
            remote: spec.remote,
            rtcp: spec.rtcp,
            send: spec.send,
            at_end: spec.at_end,
            due_ms,
            slot,
        };
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(None);
                self.generations.push(0);
                (self.entries.len() - 1) as u32
            }
        };
        let generation = self.generations[index as usize];
        self.entries[index as usize] = Some(Entry {
            generation,
            ..entry
        });
        self.slots[slot as usize].push(index);
        self.live += 1;
        StreamId { index, generation }
    }

    /// Stops a stream; its token, if it was running.
    pub fn remove(&mut self, id: StreamId) -> Option<T> {
        let i = id.index as usize;
        let e = self.entries.get_mut(i)?;
        if e.as_ref().map(|e| e.generation) != Some(id.generation) {
            return None;
        }
        let mut entry = e.take()?;
        let slot = &mut self.slots[entry.slot as usize];
        if let Some(p) = slot.iter().position(|&x| x == id.index) {
            slot.swap_remove(p);
        }
        self.generations[i] = self.generations[i].wrapping_add(1);
        self.free.push(id.index);
        self.live -= 1;
        entry.token.take()
    }

    /// When the next packet is due (`None`: no stream).
    pub fn next_due(&self) -> Option<Instant> {
        if self.live == 0 {
            return None;
        }
        let from = self.done_ms.map_or(0, |d| d + 1);
        let due_of = |i: &u32| self.entries[*i as usize].as_ref().map(|e| e.due_ms);
        // Usually a slot of the next period holds a stream due at that
        // millisecond (or lagging behind it).
        for ms in from..from + SLOTS as u64 {
            let slot = &self.slots[(ms % SLOTS as u64) as usize];
            if let Some(due) = slot.iter().filter_map(due_of).filter(|&d| d <= ms).min() {
                return Some(self.epoch + Duration::from_millis(due.max(from)));
            }
        }
        // Streams added ahead of the ticks: the earliest.
        self.slots
            .iter()
            .flatten()
            .filter_map(due_of)
            .min()
            .map(|due| self.epoch + Duration::from_millis(due.max(from)))
    }

    /// Sends every packet due by `now` through `send`; streams that ended are
    /// removed and their tokens pushed to `ended`.
    pub fn tick(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(Packet<'_, T>),
        ended: &mut Vec<(StreamId, T)>,
    ) {
        let now_ms = self.ms(now);
        let first = self.done_ms.map_or(0, |d| d + 1);
        if now_ms < first {
            return;
        }
        // More than a period late: every slot once.
        let start = first.max(now_ms.saturating_sub(SLOTS as u64 - 1));
        for ms in start..=now_ms {
            let slot = (ms % SLOTS as u64) as usize;
            let mut k = 0;
            while k < self.slots[slot].len() {
                let index = self.slots[slot][k];
                k += 1;
                if self.run(index, now, now_ms, send) {
                    // Ended: take it out (swap_remove moved the last one to k-1).
                    let generation = self.generations[index as usize];
                    let id = StreamId { index, generation };
                    if let Some(token) = self.remove(id) {
                        ended.push((id, token));
                    }
                    k -= 1;
                }
            }
        }
        self.done_ms = Some(now_ms);
    }

    /// One stream's turn; `true` when it ended.
    fn run(
        &mut self,
        index: u32,
        now: Instant,
        now_ms: u64,
        send: &mut dyn FnMut(Packet<'_, T>),
    ) -> bool {
        let Some(Some(e)) = self.entries.get_mut(index as usize) else {
            return false;
        };
        if e.due_ms > now_ms {
            return false;
        }
        let late = now.saturating_duration_since(self.epoch + Duration::from_millis(e.due_ms));
        self.lateness.record(late);
        // Skip packets missed by a late tick (keep the timestamp on the clock).
        let missed = (now_ms - e.due_ms) / PERIOD_MS;
        for _ in 0..missed {
            e.pos += SAMPLES_PER_PACKET;
            e.rtp.skip(SAMPLES_PER_PACKET as u32);
        }
        e.due_ms += (missed + 1) * PERIOD_MS;
        let len = e.audio.len();
        if e.pos >= len {
            match e.at_end {
                AtEnd::Stop => return true,
                AtEnd::Loop if len > 0 => e.pos %= len,
                AtEnd::Loop => return true,
            }
        }
        let end = (e.pos + SAMPLES_PER_PACKET).min(len);
        let id = StreamId {
            index,
            generation: e.generation,
        };
        if e.send {
            let n = e.rtp.write(
                &e.audio[e.pos..end],
                SAMPLES_PER_PACKET as u32,
                &mut self.buf,
            );
            if let Some(token) = e.token.as_ref()
                && n > 0
            {
                send(Packet {
                    stream: id,
                    token,
                    to: e.remote,
                    data: &self.buf[..n],
                    rtcp: false,
                });
            }
            let (packets, _) = e.rtp.counts();
            if e.rtcp && packets % RTCP_EVERY == 1 {
                let ntp = self
                    .ntp_epoch
                    .wrapping_add(((u128::from(now_ms) << 32) / 1000) as u64);
                let n = e.rtp.sender_report(ntp, "confab", &mut self.buf);
                if let Some(token) = e.token.as_ref()
                    && n > 0
                {
                    let to = SocketAddr::new(e.remote.ip(), e.remote.port().wrapping_add(1));
                    send(Packet {
                        stream: id,
                        token,
                        to,
                        data: &self.buf[..n],
                        rtcp: true,
                    });
                }
            }
        } else {
            e.rtp.skip(SAMPLES_PER_PACKET as u32);
        }
        e.pos = end;
        // A prompt that ends mid-packet ends with that packet.
        e.at_end == AtEnd::Stop && e.pos >= len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpFilter;

    fn spec(ms: u32, at_end: AtEnd, remote: &str) -> StreamSpec {
        StreamSpec {
            prompt: Prompt::tones(&format!("1000:{ms}")).unwrap(),
            codec: Codec::Pcmu,
            remote: remote.parse().unwrap(),
            rtcp: false,
            send: true,
            at_end,
            ssrc: 9,
            seq: 100,
            timestamp: 5000,
        }
    }

    #[test]
    fn one_packet_every_20_ms_then_the_end() {
        let t0 = Instant::now();
        let mut p: Pacer<&'static str> = Pacer::new(t0, 0);
        let id = p.add(t0, spec(100, AtEnd::Stop, "127.0.0.1:4000"), "a");
        let mut sent: Vec<(u64, u16, u32)> = Vec::new();
        let mut ended = Vec::new();
        let filter = RtpFilter::new("127.0.0.1:4000".parse().unwrap());
        let mut now = t0;
        for _ in 0..300 {
            let Some(due) = p.next_due() else { break };
            assert!(due >= now);
            now = due;
            p.tick(
                now,
                &mut |pkt| {
                    let r = filter.accept(pkt.to, pkt.data).unwrap();
                    assert_eq!(r.payload.len(), 160);
                    sent.push((
                        now.duration_since(t0).as_millis() as u64,
                        r.seq,
                        r.timestamp,
                    ));
                },
                &mut ended,
            );
        }
        assert_eq!(
            sent,
            vec![
                (0, 100, 5000),
                (20, 101, 5160),
                (40, 102, 5320),
                (60, 103, 5480),
                (80, 104, 5640)
            ]
        );
        assert_eq!(ended, vec![(id, "a")]);
        assert!(p.is_empty());
        assert_eq!(p.lateness.quantile(0.99), Duration::from_micros(100));
    }

    #[test]
    fn many_streams_share_slots_and_a_late_tick_skips() {
        let t0 = Instant::now();
        let mut p: Pacer<u32> = Pacer::new(t0, 0);
        for i in 0..100u32 {
            let at = t0 + Duration::from_micros(u64::from(i) * 300);
            p.add(at, spec(1000, AtEnd::Loop, "127.0.0.1:4000"), i);
        }
        let mut count = vec![0u32; 100];
        let mut ended = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_millis(200) {
            now = p.next_due().unwrap();
            p.tick(now, &mut |pkt| count[*pkt.token as usize] += 1, &mut ended);
        }
        // Stream i starts at millisecond floor(0.3 i): one packet every 20 ms
        // up to the last tick, none lost, none doubled.
        let last = now.duration_since(t0).as_millis() as u64;
        for (i, &c) in count.iter().enumerate() {
            let start = i as u64 * 300 / 1000;
            assert_eq!(
                u64::from(c),
                (last - start) / 20 + 1,
                "stream {i}: {count:?}"
            );
        }
        // A tick 100 ms late: one packet per stream, not a burst.
        let before: u32 = count.iter().sum();
        now += Duration::from_millis(100);
        p.tick(now, &mut |pkt| count[*pkt.token as usize] += 1, &mut ended);
        assert_eq!(count.iter().sum::<u32>() - before, 100);
        assert!(p.lateness.quantile(1.0) >= Duration::from_millis(80));
        assert!(ended.is_empty());
        assert_eq!(p.len(), 100);
    }

    #[test]
    fn removed_streams_stop_and_ids_are_not_reused() {
        let t0 = Instant::now();
        let mut p: Pacer<u8> = Pacer::new(t0, 0);
        let a = p.add(t0, spec(1000, AtEnd::Loop, "127.0.0.1:4000"), 1);
        assert_eq!(p.remove(a), Some(1));
        assert_eq!(p.remove(a), None);
        let b = p.add(t0, spec(1000, AtEnd::Loop, "127.0.0.1:4000"), 2);
        assert_ne!(a, b);
        assert_eq!(p.remove(a), None);
        let mut n = 0;
        p.tick(
            t0 + Duration::from_millis(1),
            &mut |_| n += 1,
            &mut Vec::new(),
        );
        assert_eq!(n, 1);
        assert_eq!(p.remove(b), Some(2));
        assert!(p.next_due().is_none());
    }

    #[test]
    fn rtcp_and_silent_streams() {
        let t0 = Instant::now();
        let mut p: Pacer<u8> = Pacer::new(t0, 0);
        let mut s = spec(100, AtEnd::Stop, "127.0.0.1:4000");
        s.rtcp = true;
        p.add(t0, s, 1);
        let mut quiet = spec(100, AtEnd::Stop, "127.0.0.1:4002");
        quiet.send = false;
        p.add(t0, quiet, 2);
        let mut got: Vec<(u8, u16, bool)> = Vec::new();
        let mut ended = Vec::new();
        for ms in 0..200 {
            p.tick(
                t0 + Duration::from_millis(ms),
                &mut |pkt| got.push((*pkt.token, pkt.to.port(), pkt.rtcp)),
                &mut ended,
            );
        }
        assert_eq!(got.iter().filter(|g| g.2).count(), 1);
        assert!(got.contains(&(1, 4001, true)));
        assert!(got.iter().all(|g| g.0 == 1));
        // The silent stream still ends on time.
        assert_eq!(ended.len(), 2);
    }
}
