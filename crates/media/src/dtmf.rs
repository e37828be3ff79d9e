//! RFC 4733 telephone events (DTMF): detection from received event packets and
//! the payloads to send one.
//!
//! An event is sent as several packets with the same RTP timestamp (its start),
//! growing durations and an end bit, the end packet three times. The detector
//! reports a digit once per timestamp, on the first packet seen: retransmitted,
//! duplicated and reordered packets of the same event are ignored, and a packet
//! of an event older than the last one reported (reordering across events) too.

/// The digit of an event code (0-9, `*`, `#`, A-D), `None` for other events.
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a digit.
pub fn event_of(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        c @ '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        c @ 'A'..='D' => Some(c as u8 - b'A' + 12),
        _ => None,
    }
}

/// Detects digits in one stream's telephone-event packets.
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    last: Option<u32>,
}

impl DtmfDetector {
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// A received event packet (its RTP timestamp and payload): the digit when it
    /// starts a new event.
    pub fn on_event(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        if payload.len() < 4 {
            return None;
        }
        if let Some(last) = self.last {
            // Same event, or an older one (serial number arithmetic).
            if timestamp == last || (timestamp.wrapping_sub(last) as i32) < 0 {
                return None;
            }
        }
        let digit = digit_of(payload[0])?;
        self.last = Some(timestamp);
        Some(digit)
    }
}

/// The payloads of one event of `duration` samples, sent every 20 ms (160
/// samples): updates with growing durations, then the end packet three times.
pub fn event_payloads(event: u8, duration: u16) -> impl Iterator<Item = [u8; 4]> {
    const VOLUME: u8 = 10;
    let steps = (duration / 160).max(1);
    let updates = (1..steps).map(move |i| {
        let d = (i * 160).to_be_bytes();
        [event, VOLUME, d[0], d[1]]
    });
    let d = duration.to_be_bytes();
    let end = [event, 0x80 | VOLUME, d[0], d[1]];
    updates.chain(std::iter::repeat_n(end, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for (i, c) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_of(i as u8), Some(c));
            assert_eq!(event_of(c), Some(i as u8));
        }
        assert_eq!(digit_of(16), None);
        assert_eq!(event_of('x'), None);
    }

    #[test]
    fn one_digit_per_event_despite_duplicates_and_reordering() {
        let mut d = DtmfDetector::new();
        let two: Vec<[u8; 4]> = event_payloads(2, 800).collect();
        let five: Vec<[u8; 4]> = event_payloads(5, 800).collect();
        assert_eq!(two.len(), 4 + 3);
        assert!(two.last().is_some_and(|p| p[1] & 0x80 != 0));
        let mut seen = String::new();
        // Event "2" at ts 1000; its packets duplicated and out of order.
        for p in [two[1], two[0], two[1], two[3], two[2], two[6], two[5]] {
            seen.extend(d.on_event(1000, &p));
        }
        // Event "5" at ts 3000, then a late duplicate of "2".
        for p in &five {
            seen.extend(d.on_event(3000, p));
        }
        seen.extend(d.on_event(1000, &two[4]));
        // A short or unknown payload is ignored.
        seen.extend(d.on_event(5000, &[1, 2]));
        seen.extend(d.on_event(5000, &[16, 0x8A, 0, 160]));
        // Timestamps wrap.
        seen.extend(d.on_event(u32::MAX - 10, &two[0]));
        let mut d2 = DtmfDetector::new();
        seen.extend(d2.on_event(u32::MAX - 10, &two[0]));
        seen.extend(d2.on_event(150, &five[0]));
        // d ignores the wrapped timestamp (older than 3000); d2 sees it wrap forward.
        assert_eq!(seen, "2525");
    }
}
