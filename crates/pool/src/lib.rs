//! Enterprise pools that act as one pool (issue 12; design in docs/decisions.md,
//! "One pool: users homed on front ends").
//!
//! - [`view::PoolView`] (sans-IO): the pool's front ends with their last
//!   heartbeat, and each user's home front end; answers "where is this user
//!   served" from memory and assigns a home (least-loaded live front end) at
//!   sign-in.
//! - [`runtime`] (tokio): writes this front end's heartbeat, follows the pool's
//!   changes with PostgreSQL LISTEN/NOTIFY (no polling for changes), and carries
//!   out the view's home claims (compare-and-set in the back end).

pub mod changes;
pub mod presence;
pub mod runtime;
pub mod view;

pub use changes::ChangeWaker;
pub use runtime::{PoolError, PoolHandle, PoolSettings, start};
pub use view::{Claim, PoolView, Route};
