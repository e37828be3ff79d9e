//! Trunks over TCP and TLS, the sans-IO part: the `503` a request gets when its
//! connection could not be opened (RFC 3261 §8.1.3.1), which makes the route's next trunk
//! be tried exactly as when a gateway answers `503`.

use bytes::Bytes;
use confab_sip::{Limits, Message, Method, ResponseBuilder};
/// The answers the B2BUA gets for messages it sent over a connection that
/// could not be opened: a `503` (reason: what failed) for each request among
/// them but ACK, which has no answer. Responses and unparsable data get none.
pub fn unreachable_answers(queued: &[Bytes], reason: &str) -> Vec<Message> {
    let limits = Limits::default();
    let reason = format!("Service Unavailable ({reason})");
    queued
        .iter()
        .filter_map(|data| Message::parse(data.clone(), &limits).ok())
        .filter(|m| m.is_request() && m.method() != Some(&Method::Ack))
        .filter_map(|req| {
            let data = ResponseBuilder::new(&req, 503).reason(&reason).build();
            Message::parse(data, &limits).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2bua::Config;
    use confab_voice::TrunkTransport;

    fn cfg() -> Config {
        let mut c = Config::new(
            "127.0.0.1:5070".parse().unwrap(),
            "example.com",
            "127.0.0.1:5060".parse().unwrap(),
        );
        c.tls_local = Some("127.0.0.1:5071".parse().unwrap());
        c
    }

    #[test]
    fn via_and_contact_name_the_transport_and_its_port() {
        let c = cfg();
        assert_eq!(
            c.via_parts(TrunkTransport::Tcp),
            ("TCP", "127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            c.via_parts(TrunkTransport::Tls),
            ("TLS", "127.0.0.1:5071".parse().unwrap())
        );
        assert_eq!(
            c.contact(TrunkTransport::Udp),
            "<sip:mediation@127.0.0.1:5070>"
        );
        assert_eq!(
            c.contact(TrunkTransport::Tls),
            "<sip:mediation@127.0.0.1:5071;transport=tls>"
        );
    }

    #[test]
    fn an_unreachable_request_is_answered_503_and_an_ack_is_not() {
        let invite = "INVITE sip:14255550199@127.0.0.2:5080;user=phone SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKa\r\n\
From: <sip:+14255550100@example.com;user=phone>;tag=1\r\n\
To: <sip:14255550199@127.0.0.2:5080;user=phone>\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let ack = invite
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK");
        let answers = unreachable_answers(
            &[
                Bytes::from(invite),
                Bytes::from(ack),
                Bytes::from_static(b"garbage"),
            ],
            "connection refused",
        );
        assert_eq!(answers.len(), 1);
        let a = &answers[0];
        assert_eq!(a.status(), Some(503));
        assert_eq!(a.call_id(), "c1");
        assert_eq!(a.cseq().0, 1);
        assert!(a.reason().is_some_and(|r| r.contains("connection refused")));
    }
}
