//! What the core exchanges with the transport layer.

use std::net::SocketAddr;

use bytes::Bytes;

/// A SIP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Connection-oriented transports deliver reliably: no retransmission timers.
    pub fn reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The token used in Via headers.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The `transport=` URI parameter value.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// Parses a Via transport token or `transport=` parameter.
    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            "ws" => Transport::Ws,
            "wss" => Transport::Wss,
            _ => return None,
        })
    }
}

/// Identifies one connection of a connection-oriented transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Where a message goes: over an existing connection when `conn` is set and still
/// open, otherwise to `addr` (the transport layer opens a TCP/TLS connection if
/// needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dest {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
}

impl Dest {
    /// Where to reach a URI with no connection: its host must be an IP literal; the
    /// transport is its `transport` parameter, else `default`. WebSocket URIs can't
    /// be reached this way (the client connects to us).
    pub fn for_uri(uri: &confab_sip::Uri<'_>, default: Transport) -> Option<Dest> {
        let transport = uri
            .transport()
            .and_then(Transport::parse)
            .unwrap_or(default);
        if matches!(transport, Transport::Ws | Transport::Wss) {
            return None;
        }
        let host = uri.host.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = host.parse().ok()?;
        let port = uri.port.unwrap_or(if transport == Transport::Tls {
            5061
        } else {
            5060
        });
        Some(Dest {
            transport,
            addr: SocketAddr::new(ip, port),
            conn: None,
        })
    }
}

/// Work for the transport layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes.
    Send { dest: Dest, data: Bytes },
    /// Close a connection (e.g. after a security violation).
    Close { conn: ConnId },
}
