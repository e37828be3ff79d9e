//! Completed non-INVITE server transactions over an unreliable transport, kept for
//! Timer J (RFC 3261 §17.2.2) so that a retransmitted request gets the same final
//! response again.
//!
//! Every entry lives exactly `64 * T1` after its final response, so entries expire
//! in the order they were completed: they sit in a FIFO (`VecDeque`) instead of the
//! timer heap, and the oldest one is the next to go. Each entry is one allocation: a
//! 64-bit keyed hash of the transaction key, the expiry, a fingerprint, then the
//! response, encoded. A hash table finds an entry by key hash: each of its slots
//! holds the entry's sequence number and the high half of its key hash, so that
//! growing the table rehashes without reading the entries (see [`Slot`]).
//!
//! The response is stored encoded, without what the retransmitted request itself
//! carries:
//!
//! * header lines the caller declared common (its `Server` and `Allow` lines,
//!   `Content-Length: 0`, the usual status lines; see
//!   [`Completed::set_common_lines`]) become a two-byte reference;
//! * a header line that starts with a line of the request, as written by a
//!   response builder (`Via`, `From`, `To` before the tag, `Call-ID`, `CSeq`, a
//!   registrar's `Contact` before `;expires=`: RFC 3261 §8.2.6.2 has the response
//!   copy them), becomes a three-byte reference to that request line; only what
//!   follows it (the To tag, `;expires=…`) is stored.
//!
//! A retransmission matches the transaction (§17.2.3), so its lines are taken from
//! the retransmitted request when the response is sent again. The fingerprint (a
//! keyed hash of the request lines referred to and of where the first response
//! went) makes sure that this gives the first response byte for byte: a request that
//! matches the key but differs in those lines, or comes from elsewhere, is not a
//! copy of the first one and is handled as a new request instead of getting a
//! response that was never sent.
//!
//! The total size is bounded: past `max_bytes`, the oldest entries end early (a
//! retransmission of such a request is then handled as a new request).

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashTable;

use crate::header::HeaderName;
use crate::message::Message;
use crate::server_key::ServerKey;

/// Default bound of [`Completed`]: entry bytes plus per-entry overhead.
pub const DEFAULT_MAX_BYTES: usize = 512 << 20;

/// Key hash, expiry (nanoseconds after the store's base instant), fingerprint.
const HEADER: usize = 24;

/// One completed transaction: [`HEADER`], then the encoded response.
struct Entry(Box<[u8]>);

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl Entry {
    fn key_hash(&self) -> u64 {
        read_u64(&self.0, 0)
    }
    fn expires_ns(&self) -> u64 {
        read_u64(&self.0, 8)
    }
    fn fingerprint(&self) -> u64 {
        read_u64(&self.0, 16)
    }
    fn response(&self) -> &[u8] {
        self.0.get(HEADER..).unwrap_or_default()
    }
    fn cost(&self) -> usize {
        self.0.len() + std::mem::size_of::<Self>() + std::mem::size_of::<u64>()
    }
}

pub(crate) struct Completed {
    /// Oldest first; `fifo[i]` has sequence number `head + i`.
    fifo: VecDeque<Entry>,
    head: u64,
    /// One [`Slot`] per entry.
    index: HashTable<Slot>,
    hasher: RandomState,
    /// Expiries are stored relative to this (the first entry's expiry).
    base: Option<Instant>,
    bytes: usize,
    max_bytes: usize,
    scratch: Vec<u8>,
    /// Common header lines (without CRLF), referenced by index from encoded responses.
    common: Vec<Box<[u8]>>,
}

/// An index slot: the high half of the entry's key hash, then the low half of its
/// sequence number (the FIFO holds far fewer than 2^32 entries, so the low half
/// and `head` give the position). The table hashes a slot by its tag alone, so a
/// doubling of the index moves 8-byte slots without touching the entries: reading
/// each entry's key hash from its own allocation made the doubling at a few
/// hundred thousand entries a cache miss per entry, a pause of 30-50 ms on the
/// core thread (docs/performance.md, "Pauses in the core thread, session 13").
#[derive(Clone, Copy)]
struct Slot(u64);

impl Slot {
    fn new(key_hash: u64, seq: u64) -> Slot {
        Slot((key_hash & 0xffff_ffff_0000_0000) | (seq & 0xffff_ffff))
    }
    /// The hash the table files this slot under, from the key hash's high half
    /// (repeated in the low half, which picks the bucket).
    fn table_hash(self) -> u64 {
        let tag = self.0 >> 32;
        (tag << 32) | tag
    }
    fn of_key_hash(key_hash: u64) -> u64 {
        Slot::new(key_hash, 0).table_hash()
    }
    fn tag_matches(self, key_hash: u64) -> bool {
        (self.0 ^ key_hash) >> 32 == 0
    }
    /// Position in the FIFO whose first entry has sequence number `head`.
    fn position(self, head: u64) -> usize {
        (self.0 as u32).wrapping_sub(head as u32) as usize
    }
}

/// Starts a reference (a common line's index, [`REF_LINE`], [`REF_PREFIX`]) or,
/// followed by [`LITERAL_NUL`], stands for a NUL byte of the response.
const ESCAPE: u8 = 0;
const LITERAL_NUL: u8 = u8::MAX;
/// Followed by an index byte: that header line of the request, then CRLF.
const REF_LINE: u8 = u8::MAX - 1;
/// Followed by an index byte: that header line of the request; the rest of the
/// response's line follows as literal bytes.
const REF_PREFIX: u8 = u8::MAX - 2;
/// At most this many common lines (indexes below [`REF_PREFIX`]).
pub const MAX_COMMON_LINES: usize = 64;
/// Request header lines past this index are not referred to (one index byte).
const MAX_REF_INDEX: usize = u8::MAX as usize;

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

/// Adds a referenced request line to a fingerprint.
fn hash_ref(fp: &mut impl Hasher, index: usize, name: &[u8], value: &[u8]) {
    fp.write_usize(index);
    fp.write_usize(name.len());
    fp.write(name);
    fp.write_usize(value.len());
    fp.write(value);
}

/// The request header line that `line` starts with, written `Name: value` (the
/// name as [`Message::header_line`] gives it), as `(index, length)`: the longest
/// one of the same header name.
fn copied_prefix(req: &Message, line: &[u8]) -> Option<(usize, usize)> {
    let colon = memchr::memchr(b':', line)?;
    let want = HeaderName::from_bytes(&line[..colon]);
    let mut best: Option<(usize, usize)> = None;
    for i in 0..req.header_count().min(MAX_REF_INDEX) {
        let Some((h, name, value)) = req.header_line(i) else {
            break;
        };
        if h != want {
            continue;
        }
        let n = name.len() + 2 + value.len();
        let matches = n <= line.len()
            && line.starts_with(name)
            && line[name.len()..].starts_with(b": ")
            && line[name.len() + 2..].starts_with(value);
        if matches && best.is_none_or(|(_, m)| n > m) {
            best = Some((i, n));
        }
    }
    best
}

/// Appends `response` to `out` with every header line found in `common` replaced by
/// a reference to it and, when the request is given, every line that starts with a
/// line of the request by a reference to that line (added to `fp`). Lines are only
/// replaced before the blank line.
fn encode_response(
    common: &[Box<[u8]>],
    response: &[u8],
    req: Option<&Message>,
    out: &mut Vec<u8>,
    fp: &mut impl Hasher,
) {
    let mut pos = 0;
    while let Some(e) = find_crlf(response, pos) {
        let line = &response[pos..e];
        if line.is_empty() {
            // The blank line: the body follows.
            break;
        }
        if let Some(k) = common.iter().position(|c| **c == *line) {
            out.extend_from_slice(&[ESCAPE, k as u8]);
        } else if let Some((r, (i, n))) =
            req.and_then(|r| copied_prefix(r, line).map(|found| (r, found)))
            && let Some((_, name, value)) = r.header_line(i)
        {
            hash_ref(fp, i, name, value);
            if n == line.len() {
                out.extend_from_slice(&[ESCAPE, REF_LINE, i as u8]);
            } else {
                out.extend_from_slice(&[ESCAPE, REF_PREFIX, i as u8]);
                push_literal(out, &response[pos + n..e + 2]);
            }
        } else {
            push_literal(out, &response[pos..e + 2]);
        }
        pos = e + 2;
    }
    push_literal(out, &response[pos..]);
}

/// The inverse of [`encode_response`], with the request lines taken from `req` (and
/// added to `fp`). `None` when a referenced line is not in `req`.
fn decode_response(
    common: &[Box<[u8]>],
    encoded: &[u8],
    req: Option<&Message>,
    fp: &mut impl Hasher,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(encoded.len() + 384);
    let mut rest = encoded;
    while let Some(i) = memchr::memchr(ESCAPE, rest) {
        out.extend_from_slice(&rest[..i]);
        let code = *rest.get(i + 1)?;
        let mut used = 2;
        match code {
            LITERAL_NUL => out.push(0),
            REF_LINE | REF_PREFIX => {
                let index = usize::from(*rest.get(i + 2)?);
                used = 3;
                let (_, name, value) = req?.header_line(index)?;
                hash_ref(fp, index, name, value);
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                if code == REF_LINE {
                    out.extend_from_slice(b"\r\n");
                }
            }
            k => {
                let line = common.get(usize::from(k))?;
                out.extend_from_slice(line);
                out.extend_from_slice(b"\r\n");
            }
        }
        rest = rest.get(i + used..)?;
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Re-encodes an encoded response for another set of common lines: references to
/// lines still common are renumbered, the others written out; request references
/// and literals stay as they are.
fn recode_common(old: &[Box<[u8]>], new: &[Box<[u8]>], encoded: &[u8], out: &mut Vec<u8>) {
    let mut rest = encoded;
    while let Some(i) = memchr::memchr(ESCAPE, rest) {
        out.extend_from_slice(&rest[..i]);
        let Some(&code) = rest.get(i + 1) else {
            return;
        };
        let used = match code {
            LITERAL_NUL => 2,
            REF_LINE | REF_PREFIX => 3,
            _ => 2,
        };
        match code {
            LITERAL_NUL | REF_LINE | REF_PREFIX => {
                out.extend_from_slice(rest.get(i..i + used).unwrap_or_default());
            }
            k => {
                if let Some(line) = old.get(usize::from(k)) {
                    match new.iter().position(|c| c == line) {
                        Some(n) => out.extend_from_slice(&[ESCAPE, n as u8]),
                        None => {
                            push_literal(out, line);
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                }
            }
        }
        rest = rest.get(i + used..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
}

impl Completed {
    pub(crate) fn new() -> Self {
        Completed {
            fifo: VecDeque::new(),
            head: 0,
            index: HashTable::new(),
            hasher: RandomState::new(),
            base: None,
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
            let mut data = Vec::with_capacity(e.0.len() + 64);
            data.extend_from_slice(e.0.get(..HEADER).unwrap_or_default());
            recode_common(&self.common, &new, e.response(), &mut data);
            self.bytes -= e.0.len();
            self.bytes += data.len();
            e.0 = data.into_boxed_slice();
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

    fn key_hash(&self, key: &ServerKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, hash: u64) -> Option<&Entry> {
        let slot = self.index.find(Slot::of_key_hash(hash), |&s| {
            s.tag_matches(hash)
                && self
                    .fifo
                    .get(s.position(self.head))
                    .is_some_and(|e| e.key_hash() == hash)
        })?;
        self.fifo.get(slot.position(self.head))
    }

    /// A retransmission of the request `key`, `req`, received from `target`: the
    /// response to send again, rebuilt from `req`. `None` when no completed
    /// transaction has that key, or none whose response `req` and `target` give
    /// back byte for byte (a request with the key of a completed one but other
    /// lines, or from elsewhere, is then handled as a new request).
    pub(crate) fn lookup<T: Hash>(
        &self,
        key: &ServerKey,
        req: &Message,
        target: &T,
    ) -> Option<Bytes> {
        if self.fifo.is_empty() {
            return None;
        }
        let hash = self.key_hash(key);
        self.index
            .iter_hash(Slot::of_key_hash(hash))
            .find_map(|&s| {
                if !s.tag_matches(hash) {
                    return None;
                }
                let e = self.fifo.get(s.position(self.head))?;
                if e.key_hash() != hash {
                    return None;
                }
                let mut fp = self.hasher.build_hasher();
                target.hash(&mut fp);
                let response = decode_response(&self.common, e.response(), Some(req), &mut fp)?;
                (fp.finish() == e.fingerprint()).then(|| Bytes::from(response))
            })
    }

    pub(crate) fn contains(&self, key: &ServerKey) -> bool {
        !self.fifo.is_empty() && self.find(self.key_hash(key)).is_some()
    }

    /// Keeps `response` to the request `key`, `req` (when given, the response's
    /// copies of its lines are not stored), sent to `target`, until `expires`.
    /// Callers insert in completion order. The key may be stored already (a request
    /// with that key that was not a copy of the first one); `lookup` tells them
    /// apart by their fingerprints.
    pub(crate) fn insert<T: Hash>(
        &mut self,
        key: &ServerKey,
        req: Option<&Message>,
        response: &[u8],
        target: &T,
        expires: Instant,
    ) {
        let hash = self.key_hash(key);
        let base = *self.base.get_or_insert(expires);
        let rel =
            u64::try_from(expires.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX);
        let mut fp = self.hasher.build_hasher();
        target.hash(&mut fp);
        let mut data = std::mem::take(&mut self.scratch);
        data.clear();
        data.extend_from_slice(&hash.to_le_bytes());
        data.extend_from_slice(&rel.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        encode_response(&self.common, response, req, &mut data, &mut fp);
        data[16..HEADER].copy_from_slice(&fp.finish().to_le_bytes());
        // Exact size for the entry; the scratch buffer keeps its capacity.
        let entry = Entry(Box::from(&data[..]));
        self.scratch = data;
        self.bytes += entry.cost();
        let seq = self.head + self.fifo.len() as u64;
        self.fifo.push_back(entry);
        let slot = Slot::new(hash, seq);
        self.index
            .insert_unique(slot.table_hash(), slot, |s| s.table_hash());
        self.evict_over_limit();
    }

    fn pop_oldest(&mut self) {
        let Some(front) = self.fifo.front() else {
            return;
        };
        let hash = front.key_hash();
        let oldest = Slot::new(hash, self.head);
        if let Ok(slot) = self
            .index
            .find_entry(oldest.table_hash(), |&s| s.0 == oldest.0)
        {
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

    fn expires_at(&self, e: &Entry) -> Option<Instant> {
        self.base.map(|b| b + Duration::from_nanos(e.expires_ns()))
    }

    /// Ends every entry whose time is up; `true` if any did.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        while self
            .fifo
            .front()
            .and_then(|e| self.expires_at(e))
            .is_some_and(|at| at <= now)
        {
            self.pop_oldest();
            any = true;
        }
        if any {
            let len = self.fifo.len();
            if self.fifo.capacity() > 4096 && self.fifo.capacity() > 4 * len {
                self.fifo.shrink_to(2 * len);
            }
            if self.index.capacity() > 4096 && self.index.capacity() > 4 * len {
                self.index.shrink_to(2 * len, |s| s.table_hash());
            }
        }
        any
    }

    /// When the oldest entry ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.fifo.front().and_then(|e| self.expires_at(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Method;
    use crate::{Limits, ResponseBuilder};
    use std::hash::DefaultHasher;

    fn key(branch: &str) -> ServerKey {
        ServerKey::Rfc3261 {
            branch: branch.into(),
            sent_by: "10.0.0.1:5060".into(),
            method: Method::Register,
        }
    }

    fn request(branch: &str, contact: &str) -> Message {
        let raw = format!(
            "REGISTER sip:example.com SIP/2.0\r\n\
             v: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
             Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKup\r\n\
             From: <sip:a@example.com>;tag=1\r\n\
             To: <sip:a@example.com>\r\n\
             Call-ID: c1@10.0.0.1\r\n\
             CSeq: 2 REGISTER\r\n\
             Contact: {contact}\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(raw), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn common() -> Vec<Box<[u8]>> {
        [
            &b"Server: confab/0.1.0"[..],
            b"Content-Length: 0",
            b"SIP/2.0 200 OK",
        ]
        .iter()
        .map(|l| Box::from(*l))
        .collect()
    }

    #[test]
    fn common_lines_round_trip_and_nul_is_escaped() {
        let common = common();
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
            encode_response(&common, r, None, &mut enc, &mut DefaultHasher::new());
            let dec = decode_response(&common, &enc, None, &mut DefaultHasher::new());
            assert_eq!(dec.as_deref(), Some(r));
        }
        let mut enc = Vec::new();
        encode_response(
            &common,
            responses[0],
            None,
            &mut enc,
            &mut DefaultHasher::new(),
        );
        // Three lines of 16, 22 and 19 bytes became two bytes each.
        assert_eq!(enc.len(), responses[0].len() - (16 + 22 + 19 - 3 * 2));
    }

    /// Lines copied from the request become references to it (the compact `v:` is
    /// written `Via:`), the To tag and a Contact's `;expires=` stay; the request
    /// gives them back byte for byte, and the fingerprint tells when it cannot.
    #[test]
    fn copied_request_lines_are_references() {
        let common = common();
        let req = request("z9hG4bK77", "<sip:a@10.0.0.1:5060>");
        let response = ResponseBuilder::new(&req, 200)
            .to_tag("0123456789ab")
            .header("Server", "confab/0.1.0")
            .header("Contact", "<sip:a@10.0.0.1:5060>;expires=40")
            .header("Expires", "40")
            .build();
        let mut enc = Vec::new();
        let mut fp = DefaultHasher::new();
        encode_response(&common, &response, Some(&req), &mut enc, &mut fp);
        let expect = b"\0\x02\0\xfe\0\0\xfe\x01\0\xfe\x02\0\xfd\x03;tag=0123456789ab\r\n\0\xfe\x04\0\xfe\x05\0\0\0\xfd\x06;expires=40\r\nExpires: 40\r\n\0\x01\r\n";
        assert_eq!(enc, expect);
        let mut again = DefaultHasher::new();
        let dec = decode_response(&common, &enc, Some(&req), &mut again);
        assert_eq!(dec.as_deref(), Some(&response[..]));
        assert_eq!(again.finish(), fp.finish());
        // Another request with the same lines but one (the Contact) gives another
        // fingerprint; without a request nothing can be rebuilt.
        let other = request("z9hG4bK77", "<sip:a@10.0.0.2:5060>");
        let mut third = DefaultHasher::new();
        let dec = decode_response(&common, &enc, Some(&other), &mut third);
        assert!(dec.is_some() && third.finish() != fp.finish());
        assert_eq!(
            decode_response(&common, &enc, None, &mut DefaultHasher::new()),
            None
        );
    }

    #[test]
    fn changing_the_common_lines_keeps_every_response() {
        let t0 = Instant::now();
        let mut c = Completed::new();
        c.set_common_lines(&[b"Server: confab/0.1.0", b"SIP/2.0 200 OK"]);
        let req = request("z9hG4bK5", "<sip:a@10.0.0.1:5060>");
        let response = ResponseBuilder::new(&req, 200)
            .to_tag("t")
            .header("Server", "confab/0.1.0")
            .build();
        c.insert(&key("z9hG4bK5"), Some(&req), &response, &1u8, t0);
        c.set_common_lines(&[b"SIP/2.0 200 OK", b"Content-Length: 0"]);
        assert_eq!(
            c.lookup(&key("z9hG4bK5"), &req, &1u8),
            Some(response.clone())
        );
        c.set_common_lines(&[]);
        assert_eq!(c.lookup(&key("z9hG4bK5"), &req, &1u8), Some(response));
    }

    #[test]
    fn finds_expires_in_order_and_keeps_its_bound() {
        let t0 = Instant::now();
        let mut c = Completed::new();
        let reqs: Vec<Message> = (0..100u8)
            .map(|i| request(&format!("z9hG4bK{i}"), "<sip:a@10.0.0.1>"))
            .collect();
        for (i, req) in reqs.iter().enumerate() {
            let k = key(&format!("z9hG4bK{i}"));
            c.insert(
                &k,
                Some(req),
                format!("SIP/2.0 200 OK {i}").as_bytes(),
                &i,
                t0 + Duration::from_secs(i as u64),
            );
        }
        assert_eq!(c.len(), 100);
        let b = c.lookup(&key("z9hG4bK42"), &reqs[42], &42usize);
        assert_eq!(b, Some(Bytes::from_static(b"SIP/2.0 200 OK 42")));
        // From elsewhere: not a copy of it.
        assert_eq!(c.lookup(&key("z9hG4bK42"), &reqs[42], &43usize), None);
        // Both stored under one key: each answered with its own response.
        c.insert(
            &key("z9hG4bK42"),
            Some(&reqs[42]),
            b"SIP/2.0 200 OK other",
            &43usize,
            t0 + Duration::from_secs(100),
        );
        assert_eq!(
            c.lookup(&key("z9hG4bK42"), &reqs[42], &43usize),
            Some(Bytes::from_static(b"SIP/2.0 200 OK other"))
        );
        assert_eq!(c.lookup(&key("z9hG4bK42"), &reqs[42], &42usize), b);
        assert_eq!(c.len(), 101);
        // Same branch, other method or sent-by: another transaction.
        let other = ServerKey::Rfc3261 {
            branch: "z9hG4bK42".into(),
            sent_by: "10.0.0.1:5060".into(),
            method: Method::Message,
        };
        assert!(!c.contains(&other));
        assert!(c.expire(t0 + Duration::from_secs(49)));
        // 50 to 99, and the second entry with key 42.
        assert_eq!(c.len(), 51);
        assert!(!c.contains(&key("z9hG4bK41")) && c.contains(&key("z9hG4bK42")));
        assert!(c.contains(&key("z9hG4bK50")));
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(50)));
        let per = c.bytes / c.len();
        c.set_max_bytes(per * 10);
        // Entries differ by a few bytes: about ten of the newest are left.
        assert!((8..=11).contains(&c.len()), "{}", c.len());
        assert!(c.contains(&key("z9hG4bK99")) && !c.contains(&key("z9hG4bK89")));
        assert!(c.expire(t0 + Duration::from_secs(1000)));
        assert_eq!((c.len(), c.bytes, c.index.len()), (0, 0, 0));
    }

    #[test]
    fn sequence_numbers_past_32_bits_and_many_doublings_keep_every_entry() {
        let t0 = Instant::now();
        let mut c = Completed::new();
        // The slots keep the low 32 bits of a sequence number: start just below
        // the wrap so that it happens among the entries.
        c.head = (1 << 32) - 100;
        let n = 20_000u32;
        for i in 0..n {
            let k = key(&format!("z9hG4bKw{i}"));
            let response = format!("SIP/2.0 200 OK {i}");
            c.insert(
                &k,
                None,
                response.as_bytes(),
                &i,
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!((c.len(), c.index.len()), (20_000, 20_000));
        let req = request("z9hG4bKw0", "<sip:a@10.0.0.1>");
        for i in [0u32, 99, 100, 101, 12_345, n - 1] {
            let got = c.lookup(&key(&format!("z9hG4bKw{i}")), &req, &i);
            assert_eq!(got, Some(Bytes::from(format!("SIP/2.0 200 OK {i}"))), "{i}");
        }
        assert!(!c.contains(&key("z9hG4bKw20000")));
        // The first 15,000 end (the wrap among them); the index shrinks with them.
        assert!(c.expire(t0 + Duration::from_millis(14_999)));
        assert_eq!((c.len(), c.index.len()), (5_000, 5_000));
        assert!(!c.contains(&key("z9hG4bKw14999")));
        assert!((15_000..n).all(|i| c.contains(&key(&format!("z9hG4bKw{i}")))));
        assert!(c.expire(t0 + Duration::from_secs(60)));
        assert_eq!((c.len(), c.bytes, c.index.len()), (0, 0, 0));
    }
}
