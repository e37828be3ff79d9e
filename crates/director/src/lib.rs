//! Several pools in one topology, and the Director role (issue 12; design in
//! docs/decisions.md, "Users homed on pools, and the Director").
//!
//! - [`map::PoolMap`] (sans-IO): every pool's servers with their last
//!   heartbeat, each pool's kind, each user's home pool and home front end;
//!   answers "which server of the user's pool serves them" from memory.
//! - [`policy::SignInPolicy`] (sans-IO): whether a Director redirects a sign-in
//!   (`301`, Lync clients) or proxies it (clients that do not follow redirects).
//! - [`router::PoolsRouter`]: the front end's `HomeRouter` over both: a user of
//!   this pool goes to the pool's own router, a user of another pool to a live
//!   server of that pool; on a Director every user is of another pool.
//! - [`runtime`] (tokio): follows the topology's changes with PostgreSQL
//!   LISTEN/NOTIFY and records a Director's home claims.

pub mod map;
pub mod policy;
pub mod router;
pub mod runtime;

pub use map::{HomeClaim, PoolMap};
pub use policy::SignInPolicy;
pub use router::PoolsRouter;
pub use runtime::{DirectoryError, PoolsHandle, start};
