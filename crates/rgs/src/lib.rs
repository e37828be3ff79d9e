//! Response Groups (Lync's Response Group application; see `docs/audio.md`):
//! workflows reached at a SIP URI or a number, with business hours and
//! holidays, a welcome prompt, an optional one- or two-level voice menu answered
//! with RFC 4733 digits, queues with music, timeout and overflow actions, and
//! agent groups with Lync's routing methods (serial, parallel, round robin,
//! longest idle, attendant); formal agents sign in and out.
//!
//! Sans-IO: [`model`] (the configuration and its checks), [`routing`] (who is
//! offered a call), [`ua`] (the SIP agent and the per-call workflow machine).
//! The tokio layer: [`service`] (SIP socket, RTP ports, prompts on the shared
//! media node, RTP relay between caller and agent).

pub mod model;
pub mod routing;
pub mod service;
pub mod ua;

pub use model::{
    Action, AgentGroup, Menu, MenuOption, OpenRange, PromptSpec, Queue, RgsConfig, RgsData,
    RgsError, RoutingMethod, SignIn, Workflow,
};
