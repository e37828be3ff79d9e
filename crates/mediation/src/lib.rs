//! The Mediation role (Lync Server 2013's Mediation Server): a back-to-back user
//! agent between the pool and the PSTN gateways of the voice configuration's
//! trunks, with an optional RTP relay.
//!
//! - [`b2bua`]: the sans-IO core. A call to the PSTN arrives from the pool (the
//!   front end sends it after authenticating the caller); the core normalizes and
//!   routes the number with `confab_voice`, then places its own call to the first
//!   trunk's gateway (its own Call-ID, tags and CSeq), failing over to the next
//!   trunk on 503, 408 or silence. A call from a gateway is accepted only from a
//!   trunk's address, normalized, and placed to the user owning the number
//!   through the front end (404 when nobody owns it). Provisional answers (180,
//!   183 with early media), CANCEL, BYE from either side and in-dialog requests
//!   (re-INVITE for hold, UPDATE, INFO) pass from one dialog to the other.
//! - [`sdp`] and [`relay`]: media bypass by default (SDP untouched); for trunks
//!   configured to relay, the SDP's `c=`/`m=` point at relay ports and a plain
//!   packet forwarder latches on each side's first packet.
//! - [`streams`]: trunks over TCP and TLS (Via and Contact per transport; a
//!   connection that cannot be opened counts as a `503` from the gateway).
//! - [`server`]: the thin tokio layer (`confab-transport`'s UDP socket and
//!   TCP/TLS connections, timers, records channel).

pub mod b2bua;
pub mod relay;
pub mod sdp;
pub mod server;
pub mod streams;

pub use b2bua::{Action, CallRecord, Config, Direction, Mediation, NoRelays, Relays, Side};
pub use relay::{RelayStats, UdpRelays};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_trunks;
