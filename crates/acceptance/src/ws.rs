//! A minimal RFC 6455 WebSocket client over `std::net::TcpStream`, enough for SIP over
//! WebSocket (RFC 7118): opening handshake with a subprotocol, masked text frames out,
//! text/binary (also fragmented) frames in, ping/pong, close.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::sip::Link;
use crate::{Context, Error, Result, ports::random_u64, unique_token};

/// The sample key of RFC 6455 §1.3 and its accept value; any 16-byte nonce is valid
/// and a fixed one lets us check `Sec-WebSocket-Accept` without SHA-1.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A connected WebSocket.
pub struct WsClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The handshake response head (status line and headers).
    pub handshake_response: String,
    closed: bool,
}

/// What [`WsClient::recv`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    Text(String),
    Binary(Vec<u8>),
    /// Close frame (status code if any).
    Close(Option<u16>),
}

impl WsClient {
    /// Opens `ws://addr{path}` offering `protocol` (e.g. `sip`); fails unless the
    /// server answers `101` with a correct `Sec-WebSocket-Accept` and selects the
    /// subprotocol.
    pub fn connect(
        addr: SocketAddr,
        path: &str,
        protocol: &str,
        timeout: Duration,
    ) -> Result<WsClient> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)
            .ctx(format!("WebSocket TCP connect {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\nOrigin: http://{addr}\r\nUser-Agent: confab-acceptance\r\n\r\n"
        );
        stream
            .write_all(req.as_bytes())
            .ctx("sending the WebSocket handshake")?;
        let end = Instant::now() + timeout;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let left = end.saturating_duration_since(Instant::now());
            crate::ensure!(
                !left.is_zero(),
                "WebSocket handshake: no complete response within {timeout:?} (got {:?})",
                String::from_utf8_lossy(&buf)
            );
            stream.set_read_timeout(Some(left))?;
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error(format!(
                        "WebSocket handshake: connection closed (got {:?})",
                        String::from_utf8_lossy(&buf)
                    )));
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(Error(format!("WebSocket handshake: {e}"))),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let rest = buf[head_end..].to_vec();
        let status = head.lines().next().unwrap_or("");
        crate::ensure!(
            status.split_whitespace().nth(1) == Some("101"),
            "WebSocket handshake refused: {head}"
        );
        let hv = |name: &str| -> Option<String> {
            head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        crate::ensure!(
            hv("Sec-WebSocket-Accept").as_deref() == Some(ACCEPT),
            "bad Sec-WebSocket-Accept (want {ACCEPT}): {head}"
        );
        crate::ensure!(
            hv("Sec-WebSocket-Protocol").is_some_and(|p| p.eq_ignore_ascii_case(protocol)),
            "server did not select subprotocol {protocol:?}: {head}"
        );
        Ok(WsClient {
            stream,
            buf: rest,
            handshake_response: head,
            closed: false,
        })
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<()> {
        self.send_raw_frame(true, opcode, payload)
    }

    /// Sends one frame as given: `fin` unset starts or continues a fragmented
    /// message (opcode 0 for a continuation), for tests of the server's limits.
    pub fn send_raw_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> Result<()> {
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(if fin { 0x80 } else { 0 } | opcode);
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xffff {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = (random_u64() as u32).to_be_bytes();
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).ctx("WebSocket send")
    }

    /// Sends a text frame.
    pub fn send_text(&mut self, text: &str) -> Result<()> {
        self.send_frame(0x1, text.as_bytes())
    }

    /// Sends a close frame (1000).
    pub fn close(&mut self) -> Result<()> {
        if !self.closed {
            self.closed = true;
            self.send_frame(0x8, &1000u16.to_be_bytes())?;
        }
        Ok(())
    }

    /// Parses one frame from the buffer: (fin, opcode, payload).
    fn take_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let mut len = u64::from(b[1] & 0x7f);
        let mut pos = 2;
        if len == 126 {
            if b.len() < 4 {
                return Ok(None);
            }
            len = u64::from(u16::from_be_bytes([b[2], b[3]]));
            pos = 4;
        } else if len == 127 {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[2..10]);
            len = u64::from_be_bytes(a);
            pos = 10;
        }
        crate::ensure!(len <= 16 * 1024 * 1024, "WebSocket frame too large: {len}");
        let mut mask = [0u8; 4];
        if masked {
            if b.len() < pos + 4 {
                return Ok(None);
            }
            mask.copy_from_slice(&b[pos..pos + 4]);
            pos += 4;
        }
        let len = len as usize;
        if b.len() < pos + len {
            return Ok(None);
        }
        let mut payload = b[pos..pos + len].to_vec();
        if masked {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= mask[i % 4];
            }
        }
        self.buf.drain(..pos + len);
        Ok(Some((fin, opcode, payload)))
    }

    /// Waits up to `timeout` for the server to end the connection (a close frame
    /// or the TCP connection closing); whether it did. Data messages are skipped.
    pub fn closed_by_server(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv(left) {
                Ok(Some(WsMessage::Close(_))) | Err(_) => return true,
                Ok(Some(_)) => {}
                Ok(None) => return false,
            }
        }
    }

    /// Receives the next data message (answering pings), `None` after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<WsMessage>> {
        let end = Instant::now() + timeout;
        let mut partial: Option<(u8, Vec<u8>)> = None;
        let mut chunk = [0u8; 16384];
        loop {
            while let Some((fin, opcode, payload)) = self.take_frame()? {
                match opcode {
                    0x9 => self.send_frame(0xA, &payload)?,
                    0xA => {}
                    0x8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        if !self.closed {
                            self.closed = true;
                            let _ = self.send_frame(0x8, &payload[..payload.len().min(2)]);
                        }
                        return Ok(Some(WsMessage::Close(code)));
                    }
                    0x0 => {
                        let Some((op, mut data)) = partial.take() else {
                            return Err(Error::new("WebSocket continuation frame without a start"));
                        };
                        data.extend_from_slice(&payload);
                        if fin {
                            return Ok(Some(to_message(op, data)));
                        }
                        partial = Some((op, data));
                    }
                    0x1 | 0x2 => {
                        if fin {
                            return Ok(Some(to_message(opcode, payload)));
                        }
                        partial = Some((opcode, payload));
                    }
                    other => return Err(Error(format!("unexpected WebSocket opcode {other:#x}"))),
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::new("WebSocket: TCP connection closed by the server")),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(Error(format!("WebSocket recv: {e}"))),
            }
        }
    }
}

fn to_message(opcode: u8, data: Vec<u8>) -> WsMessage {
    if opcode == 0x1 {
        WsMessage::Text(String::from_utf8_lossy(&data).into_owned())
    } else {
        WsMessage::Binary(data)
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// SIP over a WebSocket (RFC 7118): one SIP message per text frame, Via transport
/// `WS` and a `.invalid` host in Via and Contact.
pub struct WsLink {
    pub ws: WsClient,
    host: String,
}

impl WsLink {
    /// Connects to `ws://addr{path}` with subprotocol `sip`.
    pub fn connect(addr: SocketAddr, path: &str) -> Result<WsLink> {
        let ws = WsClient::connect(addr, path, "sip", Duration::from_secs(5))?;
        Ok(WsLink {
            ws,
            host: format!("{}.invalid", unique_token()),
        })
    }
}

impl Link for WsLink {
    fn send(&mut self, data: &[u8]) -> Result<()> {
        let text = String::from_utf8_lossy(data).into_owned();
        self.ws.send_text(&text)
    }
    fn recv(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.ws.recv(left)? {
                None => return Ok(None),
                Some(WsMessage::Text(t)) => {
                    if t.trim().is_empty() {
                        continue;
                    }
                    return Ok(Some(t.into_bytes()));
                }
                Some(WsMessage::Binary(b)) => return Ok(Some(b)),
                Some(WsMessage::Close(code)) => {
                    return Err(Error(format!("WebSocket closed by the server ({code:?})")));
                }
            }
        }
    }
    fn via(&self) -> String {
        format!("SIP/2.0/WS {}", self.host)
    }
    fn contact_hostport(&self) -> String {
        self.host.clone()
    }
    fn transport_param(&self) -> Option<&'static str> {
        Some("ws")
    }
    fn reliable(&self) -> bool {
        true
    }
}
