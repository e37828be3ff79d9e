//! RTP packets (RFC 3550) of one outgoing stream, built with `rtp-rs` into a
//! caller's buffer (no allocation per packet), the receive filter (RTP from any
//! address but the negotiated one is ignored), and the RTCP sender report.

use std::net::SocketAddr;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// Room for one 20 ms G.711 packet (12-byte header, 160 bytes) and more.
pub const MAX_PACKET: usize = 256;

/// Samples per 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;

/// The state of one outgoing RTP stream: SSRC, sequence number, timestamp.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    payload_type: u8,
    /// The next packet starts a talkspurt (marker bit).
    marker: bool,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// A stream with random-looking initial values chosen by the caller.
    pub fn new(ssrc: u32, seq: u16, timestamp: u32, payload_type: u8) -> RtpSender {
        RtpSender {
            ssrc,
            seq,
            timestamp,
            payload_type,
            marker: true,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// (packets, payload octets) sent so far, for RTCP.
    pub fn counts(&self) -> (u32, u32) {
        (self.packets, self.octets)
    }

    /// Writes a packet carrying `payload` (`samples` long) into `out`; its length,
    /// or 0 when `out` is too small.
    pub fn write(&mut self, payload: &[u8], samples: u32, out: &mut [u8]) -> usize {
        let n = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(self.marker)
            .payload(payload)
            .build_into(out)
            .unwrap_or(0);
        if n > 0 {
            self.marker = false;
            self.seq = self.seq.wrapping_add(1);
            self.timestamp = self.timestamp.wrapping_add(samples);
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(payload.len() as u32);
        }
        n
    }

    /// Advances the timestamp without sending (`samples` skipped: silence
    /// suppressed or a late tick caught up).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.marker = true;
    }

    /// Writes an RFC 4733 event packet (`payload_type` of telephone-event) with
    /// the given event payload; `first` sets the marker; the timestamp is the
    /// event's start and is not advanced (the caller calls [`RtpSender::skip`]
    /// with the event's duration when it ends).
    pub fn write_event(
        &mut self,
        payload_type: u8,
        event: [u8; 4],
        first: bool,
        out: &mut [u8],
    ) -> usize {
        let n = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .marked(first)
            .payload(&event)
            .build_into(out)
            .unwrap_or(0);
        if n > 0 {
            self.seq = self.seq.wrapping_add(1);
            self.packets = self.packets.wrapping_add(1);
            self.octets = self.octets.wrapping_add(4);
        }
        n
    }

    /// An RTCP compound packet (RFC 3550 §6.4.1 sender report, then SDES with a
    /// CNAME) into `out`; its length (0 when `out` is too small).
    /// `ntp` is the wall clock as NTP 32.32 fixed point.
    pub fn sender_report(&self, ntp: u64, cname: &str, out: &mut [u8]) -> usize {
        let cname = &cname.as_bytes()[..cname.len().min(255)];
        // SDES: header 4, SSRC 4, item type 1, length 1, text, end 1, pad to 4.
        let sdes_len = (4 + 4 + 2 + cname.len() + 1).div_ceil(4) * 4;
        let total = 28 + sdes_len;
        if out.len() < total {
            return 0;
        }
        out[..total].fill(0);
        out[0] = 0x80;
        out[1] = 200;
        out[2..4].copy_from_slice(&6u16.to_be_bytes());
        out[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        out[8..16].copy_from_slice(&ntp.to_be_bytes());
        out[16..20].copy_from_slice(&self.timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&self.packets.to_be_bytes());
        out[24..28].copy_from_slice(&self.octets.to_be_bytes());
        let s = &mut out[28..total];
        s[0] = 0x81;
        s[1] = 202;
        s[2..4].copy_from_slice(&((sdes_len / 4 - 1) as u16).to_be_bytes());
        s[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        s[8] = 1; // CNAME
        s[9] = cname.len() as u8;
        s[10..10 + cname.len()].copy_from_slice(cname);
        total
    }
}

/// One received RTP packet that passed the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Why a received datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Not from the address the SDP named.
    WrongSource,
    /// Not an RTP packet (RTCP on the RTP port, garbage, wrong version).
    NotRtp,
}

/// Accepts RTP only from the negotiated remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFilter {
    remote: SocketAddr,
}

impl RtpFilter {
    pub fn new(remote: SocketAddr) -> RtpFilter {
        RtpFilter { remote }
    }

    /// The packet, or why it was dropped.
    pub fn accept<'a>(&self, src: SocketAddr, data: &'a [u8]) -> Result<Received<'a>, Dropped> {
        if src != self.remote {
            return Err(Dropped::WrongSource);
        }
        let r = RtpReader::new(data).map_err(|_| Dropped::NotRtp)?;
        // RTCP multiplexed on the RTP port has payload types 72..=76 (RFC 5761).
        if r.version() != 2 || (72..=76).contains(&r.payload_type()) {
            return Err(Dropped::NotRtp);
        }
        Ok(Received {
            payload_type: r.payload_type(),
            seq: u16::from(r.sequence_number()),
            timestamp: r.timestamp(),
            ssrc: r.ssrc(),
            marker: r.mark(),
            payload: r.payload(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_advance_sequence_and_timestamp() {
        let mut s = RtpSender::new(0x1234_5678, 65535, 1000, 0);
        let mut buf = [0u8; MAX_PACKET];
        let payload = [0xFFu8; 160];
        let n = s.write(&payload, 160, &mut buf);
        assert_eq!(n, 172);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let f = RtpFilter::new(from);
        let p = f.accept(from, &buf[..n]).unwrap();
        assert_eq!(
            (p.seq, p.timestamp, p.ssrc, p.marker),
            (65535, 1000, 0x1234_5678, true)
        );
        assert_eq!(p.payload.len(), 160);
        let n = s.write(&payload, 160, &mut buf);
        let p = f.accept(from, &buf[..n]).unwrap();
        assert_eq!((p.seq, p.timestamp, p.marker), (0, 1160, false));
        assert_eq!(s.counts(), (2, 320));
        // Too small a buffer: nothing written, nothing advanced.
        assert_eq!(s.write(&payload, 160, &mut [0u8; 10]), 0);
        assert_eq!(s.counts(), (2, 320));
    }

    #[test]
    fn wrong_source_and_garbage_are_dropped() {
        let mut s = RtpSender::new(1, 1, 1, 8);
        let mut buf = [0u8; MAX_PACKET];
        let n = s.write(&[0xD5; 160], 160, &mut buf);
        let remote: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let f = RtpFilter::new(remote);
        let other: SocketAddr = "127.0.0.1:5002".parse().unwrap();
        assert_eq!(f.accept(other, &buf[..n]), Err(Dropped::WrongSource));
        assert_eq!(f.accept(remote, &[1, 2, 3]), Err(Dropped::NotRtp));
        let mut sr = [0u8; 128];
        let len = s.sender_report(0, "confab", &mut sr);
        assert_eq!(len % 4, 0);
        assert_eq!(f.accept(remote, &sr[..len]), Err(Dropped::NotRtp));
    }

    #[test]
    fn sender_report_layout() {
        let mut s = RtpSender::new(7, 0, 0, 0);
        let mut buf = [0u8; MAX_PACKET];
        s.write(&[0; 160], 160, &mut buf);
        let mut sr = [0u8; 128];
        let len = s.sender_report(0x0102_0304_0506_0708, "confab", &mut sr);
        assert_eq!(len, 28 + 20);
        assert_eq!(&sr[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&sr[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&sr[20..24], &1u32.to_be_bytes());
        assert_eq!(&sr[28..32], &[0x81, 202, 0, 4]);
        assert_eq!(&sr[38..44], b"confab");
        assert_eq!(s.sender_report(0, "confab", &mut [0u8; 20]), 0);
    }
}
