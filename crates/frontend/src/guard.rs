//! Who may make this server send what (relaying policy).
//!
//! - **Signed Record-Route.** Every Record-Route entry the proxy inserts carries a
//!   token (`cfd=`), an HMAC under a key derived from the server secret over the
//!   dialog's Call-ID and the From tag of the request that created it. An in-dialog
//!   request (one with a To tag) is forwarded when one of the Route entries naming
//!   this server carries a valid token for the request's Call-ID and one of its two
//!   tags (either direction of the dialog), so a stranger cannot make the server
//!   send a forged BYE, INVITE or MESSAGE to an address of its choice. The token is
//!   stateless: dialogs survive a restart because the secret is kept in the store.
//! - **Flow token (RFC 5626 §5.3 style).** When the request that creates the
//!   dialog came over a connection, the token also names that connection (the
//!   caller's flow): `cfd=TOKEN.FLOW`, the MAC covering the flow too. A later
//!   request of the other side of the dialog (its To tag is the caller's From tag)
//!   is sent back over that flow, whatever its Request-URI says: a Lync client's
//!   Contact (`sip:user@domain:port;maddr=ip;transport=tcp`) names no registered
//!   binding and no reachable address, and only that connection carries the
//!   client's security association (MS-SIPAE signing).
//! - **Trusted peers.** Addresses configured as trusted (an application server on
//!   loopback, later an Edge) may send from other domains, are not challenged and
//!   may send in-dialog requests without a signed route. A port of 0 trusts every
//!   port of the address (a peer that connects over TCP from ephemeral ports).

use std::net::SocketAddr;

use confab_auth::tokens::TokenKey;
use confab_sip::header::NameAddr;
use confab_sip::{HeaderName, Message, Uri};

use crate::types::{ConnId, Dest, Transport};

/// The Record-Route URI parameter that carries the dialog token.
pub(crate) const RR_TOKEN_PARAM: &str = "cfd";

pub(crate) struct Guard {
    rr: TokenKey,
    trusted: Vec<SocketAddr>,
    /// The pool's other front ends are trusted too (see `crate::home`).
    pool: Option<crate::home::SharedHomeRouter>,
}

impl Guard {
    pub(crate) fn new(secret: &[u8; 32], trusted: Vec<SocketAddr>) -> Guard {
        Guard {
            rr: TokenKey::derive(secret, "record-route"),
            trusted,
            pool: None,
        }
    }

    pub(crate) fn set_pool(&mut self, router: crate::home::SharedHomeRouter) {
        self.pool = Some(router);
    }

    /// Whether `addr` is a configured trusted peer.
    pub(crate) fn is_trusted(&self, addr: SocketAddr) -> bool {
        self.trusted.iter().any(|t| {
            canonical(t.ip()) == canonical(addr.ip()) && (t.port() == 0 || t.port() == addr.port())
        }) || self.pool.as_ref().is_some_and(|p| p.is_peer(addr))
    }

    /// `;cfd=TOKEN` (`;cfd=TOKEN.FLOW` when the request came over a connection,
    /// `upstream`) for the Record-Route of a dialog-creating request.
    pub(crate) fn rr_param(&self, msg: &Message, upstream: Dest) -> String {
        let tag = msg.from_tag().unwrap_or("");
        let call_id = msg.call_id().as_bytes();
        match encode_flow(upstream) {
            Some(flow) => {
                let token = self.rr.issue(&[call_id, tag.as_bytes(), flow.as_bytes()]);
                format!(";{RR_TOKEN_PARAM}={token}.{flow}")
            }
            None => {
                let token = self.rr.issue(&[call_id, tag.as_bytes()]);
                format!(";{RR_TOKEN_PARAM}={token}")
            }
        }
    }

    /// The valid `(token, flow)` values of the first `ours` Route entries with the
    /// dialog tag each one is valid for.
    fn signed_routes<'m>(&self, msg: &'m Message, ours: usize) -> Vec<(&'m str, Option<String>)> {
        let call_id = msg.call_id().as_bytes();
        let tags = [msg.from_tag().unwrap_or(""), msg.to_tag().unwrap_or("")];
        let rr = &self.rr;
        let mut found: Vec<(&'m str, Option<String>)> = Vec::new();
        for r in msg.header_values(HeaderName::Route).take(ours) {
            let Some(value) = NameAddr::parse(r)
                .ok()
                .and_then(|na| Uri::parse(na.uri).ok())
                .and_then(|uri| uri.param(RR_TOKEN_PARAM).flatten().map(str::to_owned))
            else {
                continue;
            };
            let (token, flow) = match value.split_once('.') {
                Some((t, f)) => (t, Some(f)),
                None => (value.as_str(), None),
            };
            for t in tags.iter().filter(|t| !t.is_empty()) {
                let ok = match flow {
                    Some(f) => rr.check(token, &[call_id, t.as_bytes(), f.as_bytes()]),
                    None => rr.check(token, &[call_id, t.as_bytes()]),
                };
                if ok {
                    found.push((*t, flow.map(str::to_owned)));
                }
            }
        }
        found
    }

    /// Whether one of the first `ours` Route entries (those naming this server)
    /// carries a valid token for this request's dialog.
    pub(crate) fn has_signed_route(&self, msg: &Message, ours: usize) -> bool {
        !self.signed_routes(msg, ours).is_empty()
    }

    /// The caller's flow of this dialog when the request goes towards the caller
    /// (its To tag is the tag the token was issued for) and one of the first `ours`
    /// Route entries carries a valid token naming a flow.
    pub(crate) fn flow_towards_caller(&self, msg: &Message, ours: usize) -> Option<Dest> {
        let to_tag = msg.to_tag()?;
        self.signed_routes(msg, ours)
            .into_iter()
            .find(|(tag, flow)| *tag == to_tag && flow.is_some())
            .and_then(|(_, flow)| flow.as_deref().and_then(decode_flow))
    }
}

/// `tcp.17.7f0000011f90`: transport, connection id, then the peer's IP octets and
/// port in hex. `None` without a connection (UDP).
fn encode_flow(d: Dest) -> Option<String> {
    let conn = d.conn?;
    let mut raw: Vec<u8> = match d.addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    raw.extend_from_slice(&d.addr.port().to_be_bytes());
    Some(format!(
        "{}.{}.{}",
        d.transport.uri_param(),
        conn.0,
        hex::encode(raw)
    ))
}

fn decode_flow(s: &str) -> Option<Dest> {
    let mut it = s.splitn(3, '.');
    let transport = Transport::parse(it.next()?)?;
    let conn = ConnId(it.next()?.parse().ok()?);
    let raw = hex::decode(it.next()?).ok()?;
    let (ip, port) = raw.split_at_checked(raw.len().checked_sub(2)?)?;
    let port = u16::from_be_bytes([*port.first()?, *port.get(1)?]);
    let ip: std::net::IpAddr = match ip.len() {
        4 => <[u8; 4]>::try_from(ip).ok()?.into(),
        16 => <[u8; 16]>::try_from(ip).ok()?.into(),
        _ => return None,
    };
    Some(Dest {
        transport,
        addr: SocketAddr::new(ip, port),
        conn: Some(conn),
    })
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_round_trip() {
        for addr in ["127.0.0.1:40000", "[2001:db8::1]:5061"] {
            let d = Dest {
                transport: Transport::Tls,
                addr: addr.parse().unwrap_or_else(|_| unreachable!()),
                conn: Some(ConnId(42)),
            };
            let enc = encode_flow(d).unwrap_or_default();
            assert_eq!(decode_flow(&enc), Some(d), "{enc}");
        }
        let udp = Dest {
            transport: Transport::Udp,
            addr: "192.0.2.1:5060".parse().unwrap_or_else(|_| unreachable!()),
            conn: None,
        };
        assert_eq!(encode_flow(udp), None);
        assert_eq!(decode_flow("tcp.x.7f000001"), None);
        assert_eq!(decode_flow("tcp.1.7f"), None);
        assert_eq!(decode_flow("zz.1.7f0000011f90"), None);
    }
}
