//! Cutting a byte stream (TCP, TLS) into SIP messages by Content-Length
//! (RFC 3261 §18.3), and recognising RFC 5626 CRLF keep-alives.

use bytes::{Buf, Bytes, BytesMut};

use crate::header::HeaderName;
use crate::message::find_header_end;

/// One unit cut from a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message: headers, blank line and exactly Content-Length body bytes.
    Message(Bytes),
    /// A double-CRLF keep-alive ping; answer with a single CRLF pong (RFC 5626 §4.4.1).
    Ping,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("message exceeds {0} bytes")]
    TooLarge(usize),
    #[error("malformed Content-Length")]
    BadContentLength,
}

/// Incremental stream framer. Feed it with [`Framer::buffer`], pull frames with
/// [`Framer::next_frame`]. Its buffer never grows past the message limit.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    max_message: usize,
    /// How far the header-end search got without finding one, so that a message
    /// arriving in many small reads is not rescanned from its start each time.
    scanned: usize,
    /// Length of the message at the front once its header section is complete (0:
    /// not known yet), so a body arriving in small reads is not re-parsed each time.
    total: usize,
}

impl Framer {
    pub fn new(max_message: usize) -> Self {
        Framer {
            buf: BytesMut::with_capacity(4096),
            max_message,
            scanned: 0,
            total: 0,
        }
    }

    /// The read buffer (append received bytes here).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.total > 0 {
            return Ok(self.take_message());
        }
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                self.scanned = 0;
                return Ok(Some(Frame::Ping));
            }
            if self.buf.starts_with(b"\r\n") {
                if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf[..]) {
                    return Ok(None); // might become a ping
                }
                self.buf.advance(2); // a pong or stray CRLF
                self.scanned = 0;
                continue;
            }
            break;
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let from = self.scanned.min(self.buf.len()).saturating_sub(3);
        let Some(head_end) = find_header_end(&self.buf[from..]).map(|p| p + from) else {
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_message {
                return Err(FramingError::TooLarge(self.max_message));
            }
            return Ok(None);
        };
        if head_end + 4 > self.max_message {
            // Same verdict as when the header end arrives after the limit was hit.
            return Err(FramingError::TooLarge(self.max_message));
        }
        let cl = content_length(&self.buf[..head_end])?;
        let total = (head_end + 4).saturating_add(cl);
        if total > self.max_message {
            return Err(FramingError::TooLarge(self.max_message));
        }
        self.total = total;
        Ok(self.take_message())
    }

    /// The message at the front once `total` bytes of it are buffered.
    fn take_message(&mut self) -> Option<Frame> {
        if self.buf.len() < self.total {
            return None;
        }
        let msg = self.buf.split_to(self.total).freeze();
        self.scanned = 0;
        self.total = 0;
        Some(Frame::Message(msg))
    }
}

/// Content-Length from a header section (0 when absent, as a stream peer that
/// omits it sends no body).
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let mut value: Option<usize> = None;
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            continue; // continuation of another header ("Via: SIP/2.0/UDP\r\n l:5060")
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if HeaderName::from_bytes(name) != HeaderName::ContentLength {
            continue;
        }
        // The value may be folded onto continuation lines ("Content-Length:\r\n 42").
        let mut text = line[colon + 1..].trim_ascii();
        while let Some(next) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            let next = next.trim_ascii();
            if !next.is_empty() {
                if !text.is_empty() {
                    return Err(FramingError::BadContentLength);
                }
                text = next;
            }
        }
        let v = std::str::from_utf8(text)
            .ok()
            .filter(|v| !v.starts_with('+'))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or(FramingError::BadContentLength)?;
        if value.is_some_and(|old| old != v) {
            return Err(FramingError::BadContentLength);
        }
        value = Some(v);
    }
    Ok(value.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn frames_byte_by_byte() {
        let mut f = Framer::new(65535);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        let mut frames = Vec::new();
        for b in stream {
            f.push(&[b]);
            while let Some(fr) = f.next_frame().unwrap() {
                frames.push(fr);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], Frame::Ping);
        assert_eq!(frames[1], Frame::Message(Bytes::from_static(MSG)));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn too_large_is_refused() {
        let mut f = Framer::new(64);
        f.push(&[b'A'; 100]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge(64)));
        let mut f = Framer::new(64);
        f.push(b"MESSAGE sip:b@x SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLarge(64)));
    }

    #[test]
    fn bad_content_length() {
        let mut f = Framer::new(1000);
        f.push(b"MESSAGE sip:b@x SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::BadContentLength));
    }
}
