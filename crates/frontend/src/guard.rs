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
//! - **Trusted peers.** Addresses configured as trusted (an application server on
//!   loopback, later an Edge) may send from other domains, are not challenged and
//!   may send in-dialog requests without a signed route. A port of 0 trusts every
//!   port of the address (a peer that connects over TCP from ephemeral ports).

use std::net::SocketAddr;

use confab_auth::tokens::TokenKey;
use confab_sip::header::NameAddr;
use confab_sip::{HeaderName, Message, Uri};

/// The Record-Route URI parameter that carries the dialog token.
pub(crate) const RR_TOKEN_PARAM: &str = "cfd";

pub(crate) struct Guard {
    rr: TokenKey,
    trusted: Vec<SocketAddr>,
}

impl Guard {
    pub(crate) fn new(secret: &[u8; 32], trusted: Vec<SocketAddr>) -> Guard {
        Guard {
            rr: TokenKey::derive(secret, "record-route"),
            trusted,
        }
    }

    /// Whether `addr` is a configured trusted peer.
    pub(crate) fn is_trusted(&self, addr: SocketAddr) -> bool {
        self.trusted.iter().any(|t| {
            canonical(t.ip()) == canonical(addr.ip()) && (t.port() == 0 || t.port() == addr.port())
        })
    }

    /// `;cfd=TOKEN` for the Record-Route of a dialog-creating request.
    pub(crate) fn rr_param(&self, msg: &Message) -> String {
        let tag = msg.from_tag().unwrap_or("");
        let token = self.rr.issue(&[msg.call_id().as_bytes(), tag.as_bytes()]);
        format!(";{RR_TOKEN_PARAM}={token}")
    }

    /// Whether one of the first `ours` Route entries (those naming this server)
    /// carries a valid token for this request's dialog.
    pub(crate) fn has_signed_route(&self, msg: &Message, ours: usize) -> bool {
        let call_id = msg.call_id().as_bytes();
        let tags = [msg.from_tag().unwrap_or(""), msg.to_tag().unwrap_or("")];
        msg.header_values(HeaderName::Route).take(ours).any(|r| {
            let Ok(na) = NameAddr::parse(r) else {
                return false;
            };
            let Ok(uri) = Uri::parse(na.uri) else {
                return false;
            };
            let Some(Some(token)) = uri.param(RR_TOKEN_PARAM) else {
                return false;
            };
            tags.iter()
                .filter(|t| !t.is_empty())
                .any(|t| self.rr.check(token, &[call_id, t.as_bytes()]))
        })
    }
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
