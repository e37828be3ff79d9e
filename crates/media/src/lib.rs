//! confab's media engine and the audio applications built on it (see
//! `docs/audio.md`).
//!
//! Sans-IO parts, tested without sockets or clocks:
//! - [`g711`]: μ-law and A-law;
//! - [`sdp`]: offer/answer (parsing with `webrtc-sdp`), codec choice, refusals;
//! - [`rtp`]: packets (with `rtp-rs`), the receive filter, RTCP sender reports;
//! - [`dtmf`]: RFC 4733 events, detection and payloads;
//! - [`prompt`]: WAV files (with `hound`) and tone sequences, encoded once;
//! - [`pacer`]: every stream of a node on one timing wheel, 20 ms packets;
//! - [`announce`]: the Announcement service's SIP user agent.
//!
//! The tokio layer: [`node`] (one task and one timer for all streams of the
//! server) and [`service`] (the Announcement service's sockets).

pub mod announce;
pub mod dtmf;
pub mod g711;
pub mod goertzel;
pub mod node;
pub mod pacer;
pub mod prompt;
pub mod rtp;
pub mod sdp;
pub mod service;

pub use node::{MediaNode, NodeStats};
pub use prompt::Prompt;
pub use sdp::{Codec, Negotiated, SdpError};
