//! Neutral presence model, PIDF (RFC 3863) rendering and parsing.
//!
//! Both client families map onto one model ([`PresenceState`] with an
//! [`Availability`] class): SIMPLE clients through PIDF/RPID documents
//! ([`parse_pidf`], [`render_pidf`]) and Lync clients through MS-PRES
//! availability numbers ([`Availability::from_lync`], [`Availability::to_lync`]).
//!
//! The crate is sans-IO: time is passed in as [`std::time::Instant`] values
//! and nothing here reads clocks, sockets or OS randomness.
//!
//! * [`Compositor`] — RFC 3903 event state compositor plus registration
//!   derived endpoint state, with the aggregation rule documented in
//!   [`compositor`];
//! * [`Watchers`] — subscription index (entity → subscriptions, expiry);
//! * [`Policy`] — who may watch whom.

pub mod compositor;
mod error;
mod etag;
mod model;
pub mod mspres;
mod pidf;
mod policy;
mod watchers;
pub mod xmltree;

pub use compositor::{
    Compositor, CompositorLimits, EndpointError, PublishError, PublishOutcome, PublishRequest,
};
pub use error::PresenceError;
pub use model::{Availability, EndpointInfo, PresenceState, activity_availability};
pub use pidf::{
    DATA_MODEL_NS, MAX_PIDF_DEPTH, MAX_PIDF_ELEMENTS, MAX_PIDF_SIZE, PIDF_NS, RPID_NS, parse_pidf,
    render_pidf,
};
pub use policy::Policy;
pub use watchers::{Subscription, WatchError, WatcherLimits, Watchers};
