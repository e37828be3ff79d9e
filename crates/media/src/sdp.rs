//! SDP offer/answer (RFC 3264) for the audio applications: parse a client's offer
//! with `webrtc-sdp` (Mozilla's parser), pick G.711 (PCMU or PCMA, in the offer's
//! order of preference) and RFC 4733 `telephone-event`, and write the answer.
//!
//! The answer has one media line per offered media line (RFC 3264 §6): the first
//! usable audio stream gets our port, every other one port 0 (refused). An offer
//! that cannot be parsed, or that has no audio stream offering PCMU or PCMA, is
//! refused ([`SdpError`]; the caller answers `488 Not Acceptable Here`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::{SdpAttribute, SdpAttributeType};
use webrtc_sdp::media_type::{SdpFormatList, SdpMediaValue};

/// Largest offer parsed (a SIP body is bounded by the parser's limits too).
pub const MAX_OFFER: usize = 16 * 1024;

/// The audio codecs the engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }
}

/// Which way media flows, from the offerer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction our answer states (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether we may send to the offerer (`self` is the offer's direction).
    pub fn we_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Why an offer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(String),
    #[error("SDP offer too large")]
    TooLarge,
    #[error("no audio stream offered")]
    NoAudio,
    #[error("no supported codec offered (PCMU or PCMA)")]
    NoCodec,
    #[error("audio connection address is not an IP address")]
    NotIp,
}

/// The outcome of an offer: what both sides will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where the offerer receives RTP.
    pub remote: SocketAddr,
    pub codec: Codec,
    /// The payload type of `telephone-event/8000`, when offered.
    pub event_pt: Option<u8>,
    /// The offer's direction.
    pub direction: Direction,
    /// Index of the audio media line used.
    media_index: usize,
    /// The offer's media lines as `(type, proto, formats)`, to answer each.
    lines: Vec<(String, String, String)>,
}

fn rtpmaps(media: &webrtc_sdp::media_type::SdpMedia) -> Vec<(u8, String, u32)> {
    media
        .get_attributes_of_type(SdpAttributeType::Rtpmap)
        .into_iter()
        .filter_map(|a| match a {
            SdpAttribute::Rtpmap(m) => Some((m.payload_type, m.codec_name.clone(), m.frequency)),
            _ => None,
        })
        .collect()
}

/// Parses `offer` and chooses what to answer.
pub fn negotiate(offer: &str) -> Result<Negotiated, SdpError> {
    if offer.len() > MAX_OFFER {
        return Err(SdpError::TooLarge);
    }
    let session =
        webrtc_sdp::parse_sdp(offer, false).map_err(|e| SdpError::Malformed(e.to_string()))?;
    let lines: Vec<(String, String, String)> = session
        .media
        .iter()
        .map(|m| {
            (
                m.get_type().to_string(),
                m.get_proto().to_string(),
                m.get_formats().to_string(),
            )
        })
        .collect();
    let mut saw_audio = false;
    for (index, media) in session.media.iter().enumerate() {
        if *media.get_type() != SdpMediaValue::Audio || media.get_port() == 0 {
            continue;
        }
        saw_audio = true;
        let SdpFormatList::Integers(formats) = media.get_formats() else {
            continue;
        };
        let maps = rtpmaps(media);
        let codec = formats.iter().find_map(|&pt| {
            let mapped = maps.iter().find(|(p, _, _)| u32::from(*p) == pt);
            match mapped {
                Some((_, name, 8000)) => Codec::from_name(name),
                Some(_) => None,
                None if pt == 0 => Some(Codec::Pcmu),
                None if pt == 8 => Some(Codec::Pcma),
                None => None,
            }
        });
        let Some(codec) = codec else {
            continue;
        };
        let event_pt = maps
            .iter()
            .find(|(p, name, rate)| {
                name.eq_ignore_ascii_case("telephone-event")
                    && *rate == 8000
                    && formats.contains(&u32::from(*p))
            })
            .map(|(p, _, _)| *p);
        let connection = media
            .get_connection()
            .as_ref()
            .or(session.get_connection().as_ref())
            .ok_or_else(|| SdpError::Malformed("no connection address".into()))?;
        let ip: IpAddr = match &connection.address {
            ExplicitlyTypedAddress::Ip(ip) => *ip,
            ExplicitlyTypedAddress::Fqdn { .. } => return Err(SdpError::NotIp),
        };
        let port = u16::try_from(media.get_port())
            .map_err(|_| SdpError::Malformed("port out of range".into()))?;
        let direction = [
            (SdpAttributeType::Sendonly, Direction::SendOnly),
            (SdpAttributeType::Recvonly, Direction::RecvOnly),
            (SdpAttributeType::Inactive, Direction::Inactive),
            (SdpAttributeType::Sendrecv, Direction::SendRecv),
        ]
        .into_iter()
        .find(|(t, _)| media.get_attribute(t.clone()).is_some())
        .or_else(|| {
            [
                (SdpAttributeType::Sendonly, Direction::SendOnly),
                (SdpAttributeType::Recvonly, Direction::RecvOnly),
                (SdpAttributeType::Inactive, Direction::Inactive),
            ]
            .into_iter()
            .find(|(t, _)| session.get_attribute(t.clone()).is_some())
        })
        .map_or(Direction::SendRecv, |(_, d)| d);
        // c=0.0.0.0 (RFC 2543 hold) means no media to send.
        let direction = if ip.is_unspecified() {
            Direction::Inactive
        } else {
            direction
        };
        return Ok(Negotiated {
            remote: SocketAddr::new(ip, port),
            codec,
            event_pt,
            direction,
            media_index: index,
            lines,
        });
    }
    Err(if saw_audio {
        SdpError::NoCodec
    } else {
        SdpError::NoAudio
    })
}

impl Negotiated {
    /// Our answer: RTP at `local`, `session_id` naming our session in `o=`.
    pub fn answer(&self, local: SocketAddr, session_id: u64) -> String {
        let family = if local.is_ipv6() { "IP6" } else { "IP4" };
        let ip = local.ip();
        let mut s = String::with_capacity(320);
        let _ = write!(
            s,
            "v=0\r\no=confab {session_id} {session_id} IN {family} {ip}\r\ns=confab\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
        );
        for (i, (kind, proto, formats)) in self.lines.iter().enumerate() {
            if i != self.media_index {
                let first = formats.split_whitespace().next().unwrap_or("0");
                let _ = write!(s, "m={kind} 0 {proto} {first}\r\n");
                continue;
            }
            let pt = self.codec.payload_type();
            let _ = write!(s, "m=audio {} RTP/AVP {pt}", local.port());
            if let Some(ev) = self.event_pt {
                let _ = write!(s, " {ev}");
            }
            let _ = write!(s, "\r\na=rtpmap:{pt} {}/8000\r\n", self.codec.name());
            if let Some(ev) = self.event_pt {
                let _ = write!(
                    s,
                    "a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-15\r\n"
                );
            }
            let _ = write!(s, "a=ptime:20\r\na={}\r\n", self.direction.answer().attr());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 6676 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn picks_the_first_g711_and_telephone_event() {
        let n = negotiate(BARESIP).unwrap();
        assert_eq!(n.remote, "127.0.0.1:6676".parse().unwrap());
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.event_pt, Some(101));
        assert_eq!(n.direction, Direction::SendRecv);
        let a = n.answer("127.0.0.1:40000".parse().unwrap(), 7);
        assert!(a.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000"), "{a}");
        // Our answer is itself valid SDP.
        let again = negotiate(&a).unwrap();
        assert_eq!(again.remote.port(), 40000);
    }

    #[test]
    fn offer_order_decides_and_static_types_need_no_rtpmap() {
        let offer = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 0");
        assert_eq!(negotiate(&offer).unwrap().codec, Codec::Pcma);
        let bare = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8\r\n";
        let n = negotiate(bare).unwrap();
        assert_eq!((n.codec, n.event_pt), (Codec::Pcma, None));
    }

    #[test]
    fn unsupported_codecs_only_are_refused() {
        let opus = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n";
        assert_eq!(negotiate(opus), Err(SdpError::NoCodec));
        // A dynamic type named PCMU at another rate is not G.711.
        let odd = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 5000 RTP/AVP 97\r\na=rtpmap:97 PCMU/16000\r\n";
        assert_eq!(negotiate(odd), Err(SdpError::NoCodec));
        let video = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(negotiate(video), Err(SdpError::NoAudio));
    }

    #[test]
    fn malformed_offers_are_refused() {
        for bad in [
            "",
            "hello",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
        ] {
            assert!(negotiate(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            negotiate(&"a".repeat(MAX_OFFER + 1)),
            Err(SdpError::TooLarge)
        );
    }

    #[test]
    fn other_media_lines_are_answered_with_port_zero() {
        let offer = format!("{BARESIP}m=video 6680 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
        let n = negotiate(&offer).unwrap();
        let a = n.answer("127.0.0.1:40000".parse().unwrap(), 1);
        assert!(a.contains("m=video 0 RTP/AVP 96\r\n"), "{a}");
        let hold = BARESIP.replace("a=sendrecv", "a=sendonly");
        let n = negotiate(&hold).unwrap();
        assert!(!n.direction.we_send());
        assert!(
            n.answer("127.0.0.1:1".parse().unwrap(), 1)
                .contains("a=recvonly")
        );
    }
}
