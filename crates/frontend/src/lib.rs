//! The Front End role as a sans-IO core: registrar, authentication, stateful proxy
//! (forking, CANCEL, Record-Route), instant messaging and the presence agent.
//!
//! [`Core`] is fed parsed messages with their source ([`Core::on_message`]), time
//! ([`Core::on_tick`]) and directory changes, and produces [`Output`]s for the
//! transport layer to carry out. It owns no socket, task or clock, so every
//! behaviour is testable deterministically (see `tests/`).

pub mod apps;
pub mod contacts;
mod core;
pub mod directory;
mod guard;
pub mod home;
mod lync;
pub mod metrics;
pub mod monitor;
mod pool_presence;
mod presence_agent;
mod proxy;
pub mod registrar;
pub mod rgs_app;
pub mod types;
mod verdict;
mod voice_app;

pub use crate::apps::{AppRoute, AppRouter, ChatProvisioning};
pub use crate::core::{Advertise, Core, CoreConfig};
pub use crate::rgs_app::{RgsRoute, WorkflowRouter};
pub use directory::{Directory, DirectoryChange, UserEntry};
pub use home::{HomeRoute, HomeRouter, SharedHomeRouter};
pub use lync::StoreRequest;
pub use metrics::Metrics;
pub use monitor::{Activity, MonitorSink};
pub use pool_presence::SharedPresence;
pub use types::{ConnId, Dest, Output, Transport};
