//! Call Park (issue 14; Lync Server 2013's Call Park application): orbit
//! ranges (`confab voice park orbit ...`, stored with the voice
//! configuration), parked calls hearing music on hold, retrieval from any phone
//! by dialing the orbit, ring back of the parker after the range's timeout,
//! then its fallback destination. See `docs/audio.md`.
//!
//! - [`ua`]: the SIP user agent, sans-IO (fed datagrams and a clock);
//! - [`service`]: its tokio layer (SIP socket, RTP ports, music on hold on the
//!   shared `confab_media` node);
//! - [`bridge`]: the RTP relay between a parked caller and whoever took it.

pub mod bridge;
pub mod service;
pub mod ua;

pub use ua::{LegId, Out, ParkConfig, ParkUa};

#[cfg(test)]
mod tests;
