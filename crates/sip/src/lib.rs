//! SIP for confab: a zero-copy message parser and serializer (RFC 3261 §7, §20, §25),
//! URI and header value views, a stream framer for TCP/TLS, and the transaction layer
//! (RFC 3261 §17) as sans-IO state machines.
//!
//! Why our own parser: no published crate is both correct on RFC 3261/4475 syntax
//! (compact forms, folding, comma-joined values, extension methods such as Lync's
//! `SERVICE`/`BENOTIFY`) and fast enough; see `docs/architecture.md`.
//!
//! A [`Message`] keeps the received bytes (`bytes::Bytes`) and indexes the start line
//! and headers as byte ranges. Typed views ([`NameAddr`], [`Via`], [`Uri`], ...) borrow
//! from it and are parsed on access; the core headers (Via, From, To, Call-ID, CSeq,
//! Max-Forwards, Content-Length) are validated when the message is parsed.

pub mod builder;
mod completed;
pub mod framing;
pub mod hashed_map;
pub mod header;
pub mod message;
pub mod method;
mod server_key;
mod timers;
pub mod transaction;
pub mod uri;

pub use builder::{RequestBuilder, ResponseBuilder, Rewriter};
pub use framing::{Frame, Framer, FramingError};
pub use header::{HeaderName, NameAddr, Via, params};
pub use message::{Limits, Message, ParseError, StartLine};
pub use method::Method;
pub use uri::Uri;

/// The RFC 3261 magic cookie that starts every branch parameter of a compliant client.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Standard reason phrase for a status code (RFC 3261 §21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        429 => "Too Many Requests",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}
