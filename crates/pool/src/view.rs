//! The pool as one front end sees it, in memory (sans-IO: fed events and the
//! wall clock in epoch milliseconds).

use std::net::SocketAddr;

use confab_store::{PoolEvent, PoolMember};
use rustc_hash::FxHashMap;

/// Where a user is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On this front end.
    Local,
    /// On another front end of the pool, reached at this SIP address.
    Peer { member: String, addr: SocketAddr },
    /// This front end cannot tell (it lost the pool's back end): refuse for now.
    Unavailable(&'static str),
}

/// A home assignment the back end must record (compare-and-set on `previous`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub address: String,
    pub member: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone)]
struct Member {
    sip: Option<SocketAddr>,
    heartbeat_ms: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PoolView {
    pool: String,
    me: String,
    lease_ms: i64,
    members: FxHashMap<String, Member>,
    homes: FxHashMap<String, String>,
    /// Users homed on each member.
    load: FxHashMap<String, usize>,
    /// When this front end last wrote its heartbeat successfully.
    own_ok_ms: Option<i64>,
    claims: Vec<Claim>,
}

impl PoolView {
    pub fn new(pool: &str, me: &str, lease_ms: u64) -> PoolView {
        PoolView {
            pool: pool.to_owned(),
            me: me.to_owned(),
            lease_ms: i64::try_from(lease_ms).unwrap_or(i64::MAX),
            members: FxHashMap::default(),
            homes: FxHashMap::default(),
            load: FxHashMap::default(),
            own_ok_ms: None,
            claims: Vec::new(),
        }
    }

    pub fn pool(&self) -> &str {
        &self.pool
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Replaces everything with a snapshot read from the back end.
    pub fn load_snapshot(&mut self, members: Vec<PoolMember>, homes: Vec<(String, String)>) {
        self.members.clear();
        self.homes.clear();
        self.load.clear();
        for m in members {
            self.apply(PoolEvent::Member(m));
        }
        for (address, member) in homes {
            self.set_home(address, member);
        }
    }

    /// Applies one change of the pool (a notification).
    pub fn apply(&mut self, ev: PoolEvent) {
        match ev {
            PoolEvent::Member(m) if m.pool == self.pool => {
                let sip = m.sip_addr.parse().ok();
                let e = self.members.entry(m.member).or_insert(Member {
                    sip,
                    heartbeat_ms: m.heartbeat_ms,
                });
                e.sip = sip;
                e.heartbeat_ms = e.heartbeat_ms.max(m.heartbeat_ms);
            }
            PoolEvent::Home {
                pool,
                address,
                member,
            } => {
                if pool == self.pool {
                    self.set_home(address, member);
                } else if let Some(old) = self.homes.remove(&address) {
                    // Moved to another pool.
                    self.dec(&old);
                }
            }
            PoolEvent::Member(_) => {}
        }
    }

    fn dec(&mut self, member: &str) {
        if let Some(n) = self.load.get_mut(member) {
            *n = n.saturating_sub(1);
        }
    }

    fn set_home(&mut self, address: String, member: String) {
        *self.load.entry(member.clone()).or_default() += 1;
        if let Some(old) = self.homes.insert(address, member) {
            self.dec(&old);
        }
    }

    /// This front end wrote its heartbeat at `now_ms`.
    pub fn heartbeat_ok(&mut self, now_ms: i64) {
        self.own_ok_ms = Some(now_ms);
        if let Some(m) = self.members.get_mut(&self.me) {
            m.heartbeat_ms = m.heartbeat_ms.max(now_ms);
        }
    }

    /// Whether this front end is in the pool: its heartbeat is younger than the lease.
    pub fn self_live(&self, now_ms: i64) -> bool {
        self.own_ok_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < self.lease_ms)
    }

    /// Whether `member` is live: its last heartbeat is younger than the lease.
    pub fn is_live(&self, member: &str, now_ms: i64) -> bool {
        if member == self.me {
            return self.self_live(now_ms);
        }
        self.members
            .get(member)
            .is_some_and(|m| now_ms.saturating_sub(m.heartbeat_ms) < self.lease_ms)
    }

    /// The user's home front end, if any.
    pub fn home_of(&self, address: &str) -> Option<&str> {
        self.homes.get(address).map(String::as_str)
    }

    /// Users homed on `member`.
    pub fn load_of(&self, member: &str) -> usize {
        self.load.get(member).copied().unwrap_or(0)
    }

    /// Whether `addr` is the SIP address of a front end of the pool (other than us).
    pub fn is_peer(&self, addr: SocketAddr) -> bool {
        self.members
            .iter()
            .any(|(name, m)| *name != self.me && m.sip == Some(addr))
    }

    /// Where `address` is served. With `assign` (a sign-in), a user without a live
    /// home is homed on the least-loaded live front end (this one on a tie) and a
    /// [`Claim`] is queued for the back end; without it, such a user is served
    /// here (that is: offline, until they sign in).
    pub fn route(&mut self, address: &str, assign: bool, now_ms: i64) -> Route {
        if !self.self_live(now_ms) {
            return Route::Unavailable("This front end lost the pool's back end");
        }
        let home = self.homes.get(address).cloned();
        if let Some(h) = &home {
            if *h == self.me {
                return Route::Local;
            }
            if self.is_live(h, now_ms) {
                return self.peer(h);
            }
        }
        if !assign {
            return Route::Local;
        }
        let chosen = self.least_loaded(now_ms);
        self.claims.push(Claim {
            address: address.to_owned(),
            member: chosen.clone(),
            previous: home,
        });
        self.set_home(address.to_owned(), chosen.clone());
        if chosen == self.me {
            Route::Local
        } else {
            self.peer(&chosen)
        }
    }

    fn peer(&self, member: &str) -> Route {
        match self.members.get(member).and_then(|m| m.sip) {
            Some(addr) => Route::Peer {
                member: member.to_owned(),
                addr,
            },
            None => Route::Unavailable("The user's home front end has no SIP address"),
        }
    }

    /// The live front end with the fewest homed users: this one on a tie, then
    /// by name.
    fn least_loaded(&self, now_ms: i64) -> String {
        let mut best = (self.load_of(&self.me), self.me.clone());
        let mut names: Vec<&String> = self.members.keys().collect();
        names.sort();
        for name in names {
            let reachable = self.members.get(name).is_some_and(|m| m.sip.is_some());
            if *name == self.me || !reachable || !self.is_live(name, now_ms) {
                continue;
            }
            let l = self.load_of(name);
            if l < best.0 {
                best = (l, name.clone());
            }
        }
        best.1
    }

    /// The home assignments made since the last call, for the back end.
    pub fn take_claims(&mut self) -> Vec<Claim> {
        std::mem::take(&mut self.claims)
    }

    /// The back end answered a claim: `address` is homed on `member`.
    pub fn claimed(&mut self, address: &str, member: &str) {
        if member.is_empty() {
            return;
        }
        if self.homes.get(address).map(String::as_str) != Some(member) {
            self.set_home(address.to_owned(), member.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, sip: &str, hb: i64) -> PoolEvent {
        PoolEvent::Member(PoolMember {
            pool: "p".into(),
            member: name.into(),
            sip_addr: sip.into(),
            heartbeat_ms: hb,
            started_ms: 0,
            registrations: 0,
        })
    }

    fn two_front_ends() -> PoolView {
        let mut v = PoolView::new("p", "fe01", 3_000);
        v.apply(member("fe01", "127.0.0.2:5060", 1_000));
        v.apply(member("fe02", "127.0.0.3:5060", 1_000));
        v.heartbeat_ok(1_000);
        v
    }

    fn fe02() -> Route {
        Route::Peer {
            member: "fe02".into(),
            addr: "127.0.0.3:5060".parse().unwrap(),
        }
    }

    #[test]
    fn sign_ins_go_to_the_least_loaded_live_front_end() {
        let mut v = two_front_ends();
        // A tie: here.
        assert_eq!(v.route("alice@x", true, 1_500), Route::Local);
        // fe01 has one user, fe02 none: fe02.
        assert_eq!(v.route("bob@x", true, 1_500), fe02());
        // Sticky.
        assert_eq!(v.route("bob@x", true, 1_600), fe02());
        assert_eq!(v.route("alice@x", false, 1_600), Route::Local);
        let claims = v.take_claims();
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[1].member, "fe02");
        assert_eq!(claims[1].previous, None);
        assert!(v.take_claims().is_empty());
        assert!(v.is_peer("127.0.0.3:5060".parse().unwrap()));
        assert!(!v.is_peer("127.0.0.2:5060".parse().unwrap()));
        assert!(!v.is_peer("127.0.0.1:5060".parse().unwrap()));
    }

    #[test]
    fn a_dead_front_ends_users_are_rehomed_at_sign_in() {
        let mut v = two_front_ends();
        v.apply(PoolEvent::Home {
            pool: "p".into(),
            address: "bob@x".into(),
            member: "fe02".into(),
        });
        assert_eq!(v.route("bob@x", false, 2_000), fe02());
        // fe02 stops heartbeating; we keep ours.
        v.heartbeat_ok(4_500);
        assert!(!v.is_live("fe02", 4_500));
        // A request for bob is served here (he is offline) without a new home...
        assert_eq!(v.route("bob@x", false, 4_500), Route::Local);
        assert!(v.take_claims().is_empty());
        // ...his sign-in homes him here, replacing fe02.
        assert_eq!(v.route("bob@x", true, 4_500), Route::Local);
        let claims = v.take_claims();
        assert_eq!(
            claims,
            vec![Claim {
                address: "bob@x".into(),
                member: "fe01".into(),
                previous: Some("fe02".into()),
            }]
        );
        assert_eq!(v.load_of("fe02"), 0);
        // fe02 comes back: it takes the next new user (fewest homed).
        v.apply(member("fe02", "127.0.0.3:5060", 5_000));
        assert_eq!(v.route("carol@x", true, 5_100), fe02());
        // bob stays where he is.
        assert_eq!(v.route("bob@x", true, 5_100), Route::Local);
    }

    #[test]
    fn without_its_own_heartbeat_a_front_end_refuses() {
        let mut v = two_front_ends();
        assert!(matches!(
            v.route("alice@x", true, 10_000),
            Route::Unavailable(_)
        ));
        v.heartbeat_ok(10_000);
        assert_eq!(v.route("alice@x", true, 10_001), Route::Local);
    }

    #[test]
    fn a_lost_claim_takes_the_winners_answer() {
        let mut v = two_front_ends();
        assert_eq!(v.route("dave@x", true, 1_100), Route::Local);
        v.take_claims();
        // Another front end homed dave first.
        v.claimed("dave@x", "fe02");
        assert_eq!(v.route("dave@x", true, 1_200), fe02());
        assert_eq!(v.load_of("fe01"), 0);
        assert_eq!(v.load_of("fe02"), 1);
    }

    #[test]
    fn other_pools_are_ignored() {
        let mut v = two_front_ends();
        v.apply(PoolEvent::Member(PoolMember {
            pool: "other".into(),
            member: "fe09".into(),
            sip_addr: "127.0.0.9:5060".into(),
            heartbeat_ms: 1_000,
            started_ms: 0,
            registrations: 0,
        }));
        assert!(!v.is_peer("127.0.0.9:5060".parse().unwrap()));
    }
}
