//! Presence across the front ends of a pool (issue 12; docs/decisions.md, "One
//! pool: presence across front ends").
//!
//! A user's presence is aggregated on their home front end, but a Lync client
//! subscribes to all of its contacts in one batched SUBSCRIBE to its own address,
//! which its own home serves, and the contacts may be homed on other front ends.
//! So every front end of a pool shares the aggregated state of the users it
//! serves (queued here as [`SharedPresence`], carried to the pool's back end by
//! the tokio layer) and applies the states the other front ends share: a remote
//! user's state is one endpoint ([`REMOTE_ENDPOINT`]) of that user in the local
//! compositor, so the watchers here are notified (and their NOTIFYs signed by
//! this front end, which holds their security associations) exactly as for a
//! local change. A local change of a user drops the remote endpoint: the user is
//! now served here (signed in again after their home failed).

use confab_presence::compositor::Compositor;
use confab_presence::{Availability, PresenceState};
use rustc_hash::FxHashMap;

/// The compositor endpoint that holds a remote user's shared state.
pub const REMOTE_ENDPOINT: &str = "pool";

/// The aggregated presence of a user served by this front end, to share with
/// the pool ([`Availability::Offline`] once the user signed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPresence {
    pub user: String,
    pub state: PresenceState,
}

impl SharedPresence {
    /// A state as the pool's back end carries it: a Lync availability number
    /// (MS-PRES ranges, 18000 and above offline), an activity token and a note.
    pub fn from_lync(
        user: &str,
        availability: u32,
        activity: Option<String>,
        note: Option<String>,
    ) -> SharedPresence {
        SharedPresence {
            user: user.to_owned(),
            state: PresenceState {
                availability: Availability::from_lync(availability),
                activity,
                note,
                endpoint: None,
            },
        }
    }

    /// The Lync availability number of the state (see [`Self::from_lync`]).
    pub fn lync_availability(&self) -> u32 {
        self.state.availability.to_lync()
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct PresenceShare {
    enabled: bool,
    /// Users whose state here came from another front end, with that front end.
    remote: FxHashMap<String, String>,
    /// Set while a remote state is applied (its notifications are not shared back).
    applying: bool,
    out: Vec<SharedPresence>,
}

impl PresenceShare {
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
    }

    /// The aggregate of `user` changed here (called before the watchers are told).
    pub(crate) fn local_change(&mut self, compositor: &mut Compositor, user: &str) {
        if !self.enabled || self.applying {
            return;
        }
        if self.remote.remove(user).is_some() {
            compositor.clear_endpoint(user, REMOTE_ENDPOINT);
        }
        self.out.push(SharedPresence {
            user: user.to_owned(),
            state: compositor.aggregate(user),
        });
    }

    /// Front end `member` shares `state` for `user`. Returns whether the
    /// aggregate here changed (the caller then notifies, see [`Self::applying`]).
    pub(crate) fn apply(
        &mut self,
        compositor: &mut Compositor,
        member: &str,
        user: &str,
        state: PresenceState,
    ) -> bool {
        if state.availability == Availability::Offline {
            self.remote.remove(user);
            compositor.clear_endpoint(user, REMOTE_ENDPOINT)
        } else {
            self.remote.insert(user.to_owned(), member.to_owned());
            compositor
                .set_endpoint_state(user, REMOTE_ENDPOINT, state)
                .unwrap_or(false)
        }
    }

    /// Front end `member` left the pool (its lease ended): its users' shared
    /// states are dropped. Returns the users whose aggregate changed.
    pub(crate) fn forget_member(
        &mut self,
        compositor: &mut Compositor,
        member: &str,
    ) -> Vec<String> {
        let users: Vec<String> = self
            .remote
            .iter()
            .filter(|(_, m)| m.as_str() == member)
            .map(|(u, _)| u.clone())
            .collect();
        users
            .into_iter()
            .filter(|u| {
                self.remote.remove(u);
                compositor.clear_endpoint(u, REMOTE_ENDPOINT)
            })
            .collect()
    }

    pub(crate) fn set_applying(&mut self, on: bool) {
        self.applying = on;
    }

    pub(crate) fn drain(&mut self, out: &mut Vec<SharedPresence>) {
        out.append(&mut self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_presence::compositor::CompositorLimits;

    fn compositor() -> Compositor {
        Compositor::new(CompositorLimits::default(), 7)
    }

    #[test]
    fn disabled_shares_nothing() {
        let mut c = compositor();
        let mut s = PresenceShare::default();
        c.set_endpoint_state("a@x", "ep", PresenceState::online())
            .unwrap();
        s.local_change(&mut c, "a@x");
        let mut out = Vec::new();
        s.drain(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn local_changes_are_shared_remote_ones_applied() {
        let mut c = compositor();
        let mut s = PresenceShare::default();
        s.enable();
        c.set_endpoint_state("a@x", "ep", PresenceState::online())
            .unwrap();
        s.local_change(&mut c, "a@x");
        let away = PresenceState::new(Availability::Away).with_note("lunch");
        assert!(s.apply(&mut c, "fe02", "b@x", away.clone()));
        assert_eq!(c.aggregate("b@x").availability, Availability::Away);
        assert_eq!(c.aggregate("b@x").note.as_deref(), Some("lunch"));
        // The same state again changes nothing.
        assert!(!s.apply(&mut c, "fe02", "b@x", away));
        // While applying, the notification path does not share it back.
        s.set_applying(true);
        s.local_change(&mut c, "b@x");
        s.set_applying(false);
        let mut out = Vec::new();
        s.drain(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].user, "a@x");
        assert_eq!(out[0].state.availability, Availability::Online);
        // Signed out there: offline here.
        assert!(s.apply(&mut c, "fe02", "b@x", PresenceState::offline()));
        assert_eq!(c.aggregate("b@x").availability, Availability::Offline);
    }

    #[test]
    fn a_local_change_replaces_the_remote_state() {
        let mut c = compositor();
        let mut s = PresenceShare::default();
        s.enable();
        s.apply(
            &mut c,
            "fe02",
            "b@x",
            PresenceState::new(Availability::Busy),
        );
        // b signs in here (their home failed) and goes offline later: the
        // remote state must not keep b busy.
        c.set_endpoint_state("b@x", "ep", PresenceState::online())
            .unwrap();
        s.local_change(&mut c, "b@x");
        assert_eq!(c.aggregate("b@x").availability, Availability::Online);
        c.clear_endpoint("b@x", "ep");
        assert_eq!(c.aggregate("b@x").availability, Availability::Offline);
    }

    #[test]
    fn a_dead_front_end_s_users_go_offline() {
        let mut c = compositor();
        let mut s = PresenceShare::default();
        s.enable();
        s.apply(&mut c, "fe02", "b@x", PresenceState::online());
        s.apply(&mut c, "fe03", "c@x", PresenceState::online());
        assert_eq!(s.forget_member(&mut c, "fe02"), vec!["b@x".to_owned()]);
        assert_eq!(c.aggregate("b@x").availability, Availability::Offline);
        assert_eq!(c.aggregate("c@x").availability, Availability::Online);
    }
}
