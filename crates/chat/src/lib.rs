//! The Persistent Chat server role (Lync's Persistent Chat, MS-XCCOSIP over SIP INFO).
//!
//! - [`xccos`]: the XCCOS envelopes pidgin-sipe and Lync clients exchange.
//! - [`rules`]: categories as ethical walls, privacy, roles, policy.
//! - [`core`]: the sans-IO server: dialogs, commands, membership, fan-out.
//! - [`compliance`]: joins, leaves and history reads for the compliance outbox.
//! - [`pool`]: several servers on one store (membership, routing, activation).
//! - [`service`]: the thin tokio layer (its own SIP listener, the store, change feed,
//!   full-text indexer).
//!
//! See `docs/persistent-chat.md`.

pub mod compliance;
pub mod core;
pub mod pool;
mod pool_link;
pub mod rules;
pub mod service;
pub mod xccos;

pub use crate::core::{ChatCore, CoreConfig, PoolScope, Stats, StoreRequest};
pub use rules::Directory;
