//! The two SDP lines the RTP relay rewrites: the connection address (`c=`) and the
//! first media line's port (`m=`). Anything else is copied byte for byte.

use std::net::{IpAddr, SocketAddr};

/// The media address of an SDP body: the session- or first media-level `c=`
/// address with the first `m=` line's port. `None` when either is missing or bad.
pub fn media_addr(sdp: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(sdp).ok()?;
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(c) = line.strip_prefix("c=") {
            // c=IN IP4 192.0.2.1 ; the first c= wins (session level or first media).
            if ip.is_none() {
                ip = c
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next().and_then(|a| a.parse().ok()));
            }
        } else if let Some(m) = line.strip_prefix("m=") {
            if port.is_some() {
                break; // only the first media line
            }
            port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// `sdp` with every `c=` address set to `addr`'s and the first `m=` line's port set
/// to `addr`'s port. `None` when the body is not UTF-8 or has no media line.
pub fn rewrite(sdp: &[u8], addr: SocketAddr) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sdp).ok()?;
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 16);
    let mut media_seen = false;
    let mut rewrote_media = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        if body.starts_with("c=") {
            out.push_str(&format!("c=IN {family} {}", addr.ip()));
        } else if let Some(m) = body.strip_prefix("m=") {
            if media_seen {
                out.push_str(body);
            } else {
                media_seen = true;
                let mut parts: Vec<&str> = m.split(' ').collect();
                if parts.len() < 2 {
                    return None;
                }
                let port = addr.port().to_string();
                parts[1] = &port;
                out.push_str("m=");
                out.push_str(&parts.join(" "));
                rewrote_media = true;
            }
        } else {
            out.push_str(body);
        }
        out.push_str(eol);
    }
    rewrote_media.then(|| out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\nm=video 5000 RTP/AVP 96\r\n";

    #[test]
    fn reads_the_first_media_address() {
        assert_eq!(
            media_addr(OFFER.as_bytes()),
            Some("10.0.0.5:4000".parse().unwrap())
        );
        assert_eq!(media_addr(b"v=0\r\n"), None);
        assert_eq!(media_addr(&[0xff, 0xfe]), None);
    }

    #[test]
    fn rewrites_connection_and_first_media_port_only() {
        let out = rewrite(OFFER.as_bytes(), "127.0.0.1:30000".parse().unwrap()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("c=IN IP4 127.0.0.1\r\n"), "{out}");
        assert!(out.contains("m=audio 30000 RTP/AVP 0 8\r\n"), "{out}");
        assert!(out.contains("m=video 5000 RTP/AVP 96\r\n"), "{out}");
        assert!(out.contains("o=- 1 1 IN IP4 10.0.0.5\r\n"), "{out}");
        assert_eq!(
            media_addr(out.as_bytes()),
            Some("127.0.0.1:30000".parse().unwrap())
        );
        assert_eq!(rewrite(b"v=0\r\n", "127.0.0.1:1".parse().unwrap()), None);
    }
}
