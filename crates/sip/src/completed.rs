//! Completed non-INVITE server transactions over an unreliable transport, kept for
//! Timer J (RFC 3261 §17.2.2) so that a retransmitted request gets the same final
//! response again.
//!
//! Every entry lives exactly `64 * T1` after its final response, so entries expire
//! in the order they were completed: they sit in a FIFO (`VecDeque`) instead of the
//! timer heap, and the oldest one is the next to go. Each entry is one allocation
//! holding the transaction key (encoded as bytes) followed by the response bytes; a
//! hash table of sequence numbers finds an entry by key. Compared with keeping the
//! whole `ServerTx` (an `Arc` key with two boxed strings, the shared response buffer,
//! a table slot and a heap timer) this saves three allocations and the timer per
//! completed transaction.
//!
//! The response is stored encoded: header lines the caller declared common (its
//! `Server` and `Allow` lines, `Content-Length: 0`, the usual status lines; see
//! [`Completed::set_common_lines`]) become a two-byte reference. At a 20 s
//! registration refresh an endpoint has about 1.6 such responses alive, so the few
//! hundred bytes every response repeats are most of what is left per entry.
//!
//! The total size is bounded: past `max_bytes`, the oldest entries end early (a
//! retransmission of such a request is then handled as a new request).

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::server_key::ServerKey;

/// Default bound of [`Completed`]: key and response bytes plus per-entry overhead.
pub const DEFAULT_MAX_BYTES: usize = 512 << 20;

struct Entry<T> {
    expires: Instant,
    target: T,
    key_len: u32,
    /// The encoded key, then the response.
    data: Box<[u8]>,
}

impl<T> Entry<T> {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }
    fn response(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }
    fn cost(&self) -> usize {
        self.data.len() + std::mem::size_of::<Self>() + std::mem::size_of::<u64>()
    }
}

pub(crate) struct Completed<T> {
    /// Oldest first; `fifo[i]` has sequence number `head + i`.
    fifo: VecDeque<Entry<T>>,
    head: u64,
    /// Sequence numbers, hashed by their entry's encoded key.
    index: HashTable<u64>,
    hasher: RandomState,
    bytes: usize,
    max_bytes: usize,
    scratch: Vec<u8>,
    /// Common header lines (without CRLF), referenced by index from encoded responses.
    common: Vec<Box<[u8]>>,
}

/// Starts a reference to a common line (the next byte is its index) or, followed by
/// [`LITERAL_NUL`], stands for a NUL byte of the response.
const ESCAPE: u8 = 0;
const LITERAL_NUL: u8 = u8::MAX;
/// At most this many common lines (indexes below `LITERAL_NUL`).
pub const MAX_COMMON_LINES: usize = 64;

/// Appends `bytes` to `out`, escaping NUL.
fn push_literal(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while let Some(i) = memchr::memchr(ESCAPE, rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(&[ESCAPE, LITERAL_NUL]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Index of the next CRLF at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(i) = memchr::memchr(b'\r', buf.get(pos..)?) {
        if buf.get(pos + i + 1) == Some(&b'\n') {
            return Some(pos + i);
        }
        pos += i + 1;
    }
    None
}

/// Appends `response` to `out` with every header line found in `common` replaced by
/// a reference to it. Lines are only replaced before the blank line.
fn encode_response(common: &[Box<[u8]>], response: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while let Some(e) = find_crlf(response, pos) {
        let line = &response[pos..e];
        if line.is_empty() {
            // The blank line: the body follows.
            break;
        }
        match common.iter().position(|c| **c == *line) {
            Some(k) => out.extend_from_slice(&[ESCAPE, k as u8]),
            None => push_literal(out, &response[pos..e + 2]),
        }
        pos = e + 2;
    }
    push_literal(out, &response[pos..]);
}

/// The inverse of [`encode_response`].
fn decode_response(common: &[Box<[u8]>], encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 256);
    let mut rest = encoded;
    while let Some(i) = memchr::memchr(ESCAPE, rest) {
        out.extend_from_slice(&rest[..i]);
        match rest.get(i + 1) {
            Some(&LITERAL_NUL) => out.push(0),
            Some(&k) => {
                if let Some(line) = common.get(usize::from(k)) {
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                }
            }
            None => {}
        }
        rest = rest.get(i + 2..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

/// Appends an unambiguous byte encoding of `key` (variant, then length-prefixed
/// fields).
fn encode_key(key: &ServerKey, out: &mut Vec<u8>) {
    fn field(out: &mut Vec<u8>, s: &[u8]) {
        // Lengths are bounded by the message size limit; u32 is plenty.
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    }
    match key {
        ServerKey::Rfc3261 {
            branch,
            sent_by,
            method,
        } => {
            out.push(0);
            field(out, method.as_str().as_bytes());
            field(out, branch.as_bytes());
            field(out, sent_by.as_bytes());
        }
        ServerKey::Rfc2543 {
            call_id,
            cseq,
            method,
            from_tag,
            sent_by,
        } => {
            out.push(1);
            field(out, method.as_str().as_bytes());
            out.extend_from_slice(&cseq.to_le_bytes());
            field(out, call_id.as_bytes());
            field(out, from_tag.as_bytes());
            field(out, sent_by.as_bytes());
        }
    }
}

impl<T: Clone> Completed<T> {
    pub(crate) fn new() -> Self {
        Completed {
            fifo: VecDeque::new(),
            head: 0,
            index: HashTable::new(),
            hasher: RandomState::new(),
            bytes: 0,
            max_bytes: DEFAULT_MAX_BYTES,
            scratch: Vec::new(),
            common: Vec::new(),
        }
    }

    /// Sets the header lines (without CRLF) that responses often carry verbatim;
    /// entries stored from now on refer to them instead of copying them. Lines
    /// beyond [`MAX_COMMON_LINES`] and empty lines are ignored. Entries already
    /// stored are re-encoded, so the set may change at any time.
    pub(crate) fn set_common_lines(&mut self, lines: &[&[u8]]) {
        let new: Vec<Box<[u8]>> = lines
            .iter()
            .filter(|l| !l.is_empty())
            .take(MAX_COMMON_LINES)
            .map(|l| Box::from(*l))
            .collect();
        for e in self.fifo.iter_mut() {
            let response = decode_response(&self.common, e.response());
            let mut data = Vec::with_capacity(e.key_len as usize + response.len());
            data.extend_from_slice(e.key());
            encode_response(&new, &response, &mut data);
            self.bytes -= e.data.len();
            self.bytes += data.len();
            e.data = data.into_boxed_slice();
        }
        self.common = new;
    }

    pub(crate) fn len(&self) -> usize {
        self.fifo.len()
    }

    pub(crate) fn set_max_bytes(&mut self, max: usize) {
        self.max_bytes = max;
        self.evict_over_limit();
    }

    /// Encodes `key` into the scratch buffer and returns its hash.
    fn prepare(&mut self, key: &ServerKey) -> u64 {
        self.scratch.clear();
        encode_key(key, &mut self.scratch);
        self.hasher.hash_one(&self.scratch[..])
    }

    fn find_encoded(&self, hash: u64, encoded: &[u8]) -> Option<&Entry<T>> {
        let seq = self.index.find(hash, |&s| {
            self.fifo
                .get((s - self.head) as usize)
                .is_some_and(|e| e.key() == encoded)
        })?;
        self.fifo.get((*seq - self.head) as usize)
    }

    /// Where and what to send again for a retransmission of the request `key`.
    pub(crate) fn lookup(&mut self, key: &ServerKey) -> Option<(T, Bytes)> {
        if self.fifo.is_empty() {
            return None;
        }
        let hash = self.prepare(key);
        let e = self.find_encoded(hash, &self.scratch)?;
        Some((
            e.target.clone(),
            Bytes::from(decode_response(&self.common, e.response())),
        ))
    }

    pub(crate) fn contains(&self, key: &ServerKey) -> bool {
        if self.fifo.is_empty() {
            return false;
        }
        let mut encoded = Vec::new();
        encode_key(key, &mut encoded);
        self.find_encoded(self.hasher.hash_one(&encoded[..]), &encoded)
            .is_some()
    }

    /// Keeps `response` to `key` until `expires`. Callers insert in completion
    /// order; the key must not be stored already (its transaction was live).
    pub(crate) fn insert(&mut self, key: &ServerKey, response: &[u8], target: T, expires: Instant) {
        let hash = self.prepare(key);
        let key_len = self.scratch.len() as u32;
        let mut data = std::mem::take(&mut self.scratch);
        encode_response(&self.common, response, &mut data);
        // Exact size for the entry; the scratch buffer keeps its capacity.
        let boxed: Box<[u8]> = Box::from(&data[..]);
        self.scratch = data;
        let entry = Entry {
            expires,
            target,
            key_len,
            data: boxed,
        };
        self.bytes += entry.cost();
        let seq = self.head + self.fifo.len() as u64;
        self.fifo.push_back(entry);
        let Completed {
            fifo,
            head,
            index,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, seq, |&s| {
            fifo.get((s - *head) as usize)
                .map_or(0, |e| hasher.hash_one(e.key()))
        });
        self.evict_over_limit();
    }

    fn pop_oldest(&mut self) {
        let Some(front) = self.fifo.front() else {
            return;
        };
        let hash = self.hasher.hash_one(front.key());
        let head = self.head;
        if let Ok(slot) = self.index.find_entry(hash, |&s| s == head) {
            slot.remove();
        }
        if let Some(e) = self.fifo.pop_front() {
            self.bytes -= e.cost();
        }
        self.head += 1;
    }

    fn evict_over_limit(&mut self) {
        while self.bytes > self.max_bytes && !self.fifo.is_empty() {
            self.pop_oldest();
        }
    }

    /// Ends every entry whose time is up; `true` if any did.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while self.fifo.front().is_some_and(|e| e.expires <= now) {
            self.pop_oldest();
            any = true;
        }
        if any {
            let len = self.fifo.len();
            if self.fifo.capacity() > 4096 && self.fifo.capacity() > 4 * len {
                self.fifo.shrink_to(2 * len);
            }
            if self.index.capacity() > 4096 && self.index.capacity() > 4 * len {
                let Completed {
                    fifo,
                    head,
                    index,
                    hasher,
                    ..
                } = self;
                index.shrink_to(2 * len, |&s| {
                    fifo.get((s - *head) as usize)
                        .map_or(0, |e| hasher.hash_one(e.key()))
                });
            }
        }
        any
    }

    /// When the oldest entry ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.fifo.front().map(|e| e.expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Method;
    use std::time::Duration;

    fn key(branch: &str) -> ServerKey {
        ServerKey::Rfc3261 {
            branch: branch.into(),
            sent_by: "10.0.0.1:5060".into(),
            method: Method::Register,
        }
    }

    #[test]
    fn common_lines_round_trip_and_nul_is_escaped() {
        let common: Vec<Box<[u8]>> = [
            &b"Server: confab/0.1.0"[..],
            b"Content-Length: 0",
            b"SIP/2.0 200 OK",
        ]
        .iter()
        .map(|l| Box::from(*l))
        .collect();
        let responses: [&[u8]; 5] = [
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nServer: confab/0.1.0\r\nContent-Length: 0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nX: a\0b\r\nContent-Length: 4\r\n\r\n\0\0\r\n",
            // A common line in the body stays literal; so does a partial match.
            b"SIP/2.0 200 OK\r\nServer: confab/0.1.0x\r\nContent-Length: 16\r\n\r\nServer: confab/0.1.0\r\n",
            b"",
            b"no line end",
        ];
        for r in responses {
            let mut enc = Vec::new();
            encode_response(&common, r, &mut enc);
            assert_eq!(decode_response(&common, &enc), r);
        }
        let mut enc = Vec::new();
        encode_response(&common, responses[0], &mut enc);
        // Three lines of 16, 22 and 19 bytes became two bytes each.
        assert_eq!(enc.len(), responses[0].len() - (16 + 22 + 19 - 3 * 2));
    }

    #[test]
    fn finds_expires_in_order_and_keeps_its_bound() {
        let t0 = Instant::now();
        let mut c: Completed<u8> = Completed::new();
        for i in 0..100u8 {
            let k = key(&format!("z9hG4bK{i}"));
            c.insert(
                &k,
                format!("SIP/2.0 200 OK {i}").as_bytes(),
                i,
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        assert_eq!(c.len(), 100);
        let (t, b) = c.lookup(&key("z9hG4bK42")).expect("stored");
        assert_eq!((t, &b[..]), (42, &b"SIP/2.0 200 OK 42"[..]));
        // Same branch, other method or sent-by: another transaction.
        let other = ServerKey::Rfc3261 {
            branch: "z9hG4bK42".into(),
            sent_by: "10.0.0.1:5060".into(),
            method: Method::Message,
        };
        assert!(!c.contains(&other));
        assert!(c.expire(t0 + Duration::from_secs(49)));
        assert_eq!(c.len(), 50);
        assert!(!c.contains(&key("z9hG4bK42")));
        assert!(c.contains(&key("z9hG4bK50")));
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(50)));
        let per = c.bytes / c.len();
        c.set_max_bytes(per * 10);
        assert_eq!(c.len(), 10);
        assert!(c.contains(&key("z9hG4bK99")) && !c.contains(&key("z9hG4bK89")));
        assert!(c.expire(t0 + Duration::from_secs(1000)));
        assert_eq!((c.len(), c.bytes, c.index.len()), (0, 0, 0));
    }
}
