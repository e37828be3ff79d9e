//! Every pool of the topology as one server sees it, in memory (sans-IO: fed
//! events and the wall clock in epoch milliseconds).

use std::net::SocketAddr;

use confab_store::{HomeEvent, KIND_FRONT_END, PoolEvent, PoolMember};
use rustc_hash::FxHashMap;

/// A home front end a Director assigns in another pool (compare-and-set on
/// `previous` in the back end, as a pool's own front ends do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeClaim {
    pub pool: String,
    pub address: String,
    pub member: String,
    pub previous: Option<String>,
}

#[derive(Debug, Clone)]
struct Server {
    sip: Option<SocketAddr>,
    heartbeat_ms: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PoolMap {
    lease_ms: i64,
    /// (pool, member) -> server.
    servers: FxHashMap<(String, String), Server>,
    kinds: FxHashMap<String, String>,
    /// Users with an explicit home pool.
    user_pools: FxHashMap<String, String>,
    /// A user's home front end: (pool, member).
    homes: FxHashMap<String, (String, String)>,
    claims: Vec<HomeClaim>,
}

impl PoolMap {
    pub fn new(lease_ms: u64) -> PoolMap {
        PoolMap {
            lease_ms: i64::try_from(lease_ms).unwrap_or(i64::MAX),
            servers: FxHashMap::default(),
            kinds: FxHashMap::default(),
            user_pools: FxHashMap::default(),
            homes: FxHashMap::default(),
            claims: Vec::new(),
        }
    }

    /// Replaces everything with a snapshot read from the back end: servers,
    /// pool kinds, `(address, pool)` of users, `(pool, address, member)` homes.
    pub fn load_snapshot(
        &mut self,
        members: Vec<PoolMember>,
        kinds: Vec<(String, String)>,
        user_pools: Vec<(String, String)>,
        homes: Vec<(String, String, String)>,
    ) {
        self.servers.clear();
        self.kinds = kinds.into_iter().collect();
        self.user_pools = user_pools.into_iter().collect();
        self.homes = homes
            .into_iter()
            .map(|(pool, address, member)| (address, (pool, member)))
            .collect();
        for m in members {
            self.apply_pool(PoolEvent::Member(m));
        }
    }

    /// Applies a pool's change (a heartbeat or a home front end).
    pub fn apply_pool(&mut self, ev: PoolEvent) {
        match ev {
            PoolEvent::Member(m) => {
                let sip = m.sip_addr.parse().ok();
                let e = self.servers.entry((m.pool, m.member)).or_insert(Server {
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
                self.homes.insert(address, (pool, member));
            }
        }
    }

    /// Applies a change of users' pools or of a pool's kind.
    pub fn apply_home(&mut self, ev: HomeEvent) {
        match ev {
            HomeEvent::UserPool {
                address,
                pool: Some(pool),
            } => {
                self.user_pools.insert(address, pool);
            }
            HomeEvent::UserPool {
                address,
                pool: None,
            } => {
                self.user_pools.remove(&address);
            }
            HomeEvent::PoolKind { pool, kind } => {
                self.kinds.insert(pool, kind);
            }
        }
    }

    /// The pool `user` is homed on; `None`: the default pool.
    pub fn pool_of(&self, user: &str) -> Option<&str> {
        self.user_pools.get(user).map(String::as_str)
    }

    /// The front-end pools (users can be homed on them), by name.
    pub fn front_end_pools(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .kinds
            .iter()
            .filter(|(_, k)| k.as_str() == KIND_FRONT_END)
            .map(|(p, _)| p.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// The pool a user without an explicit pool belongs to: the only front-end
    /// pool, if there is exactly one.
    pub fn default_pool(&self) -> Option<&str> {
        match self.front_end_pools().as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Whether `addr` is the SIP address of a server of any pool (a pool's front
    /// end or a Director): such a server is trusted like a pool's own peer.
    pub fn is_server(&self, addr: SocketAddr) -> bool {
        self.servers.values().any(|s| s.sip == Some(addr))
    }

    fn live(&self, pool: &str, member: &str, now_ms: i64) -> Option<SocketAddr> {
        let s = self.servers.get(&(pool.to_owned(), member.to_owned()))?;
        (now_ms.saturating_sub(s.heartbeat_ms) < self.lease_ms)
            .then_some(s.sip)
            .flatten()
    }

    fn load_of(&self, pool: &str, member: &str) -> usize {
        self.homes
            .values()
            .filter(|(p, m)| p == pool && m == member)
            .count()
    }

    /// The server of `pool` that serves `user`: their home front end there if
    /// it is live; else the least-loaded live front end of the pool (first by
    /// name on a tie), which, with `assign`, becomes their home (a
    /// [`HomeClaim`] is queued). `None` when no front end of the pool is live.
    pub fn server_for(
        &mut self,
        user: &str,
        pool: &str,
        assign: bool,
        now_ms: i64,
    ) -> Option<SocketAddr> {
        let previous = match self.homes.get(user) {
            Some((p, m)) if p == pool => {
                if let Some(addr) = self.live(pool, m, now_ms) {
                    return Some(addr);
                }
                Some(m.clone())
            }
            _ => None,
        };
        let mut live: Vec<(&str, SocketAddr)> = self
            .servers
            .iter()
            .filter(|((p, _), _)| p == pool)
            .filter_map(|((_, m), _)| Some((m.as_str(), self.live(pool, m, now_ms)?)))
            .collect();
        live.sort_unstable_by(|a, b| {
            (self.load_of(pool, a.0), a.0).cmp(&(self.load_of(pool, b.0), b.0))
        });
        let (member, addr) = live.first().map(|(m, a)| ((*m).to_owned(), *a))?;
        if assign {
            self.claims.push(HomeClaim {
                pool: pool.to_owned(),
                address: user.to_owned(),
                member: member.clone(),
                previous: previous.filter(|p| !p.is_empty()),
            });
            self.homes
                .insert(user.to_owned(), (pool.to_owned(), member));
        }
        Some(addr)
    }

    /// Home assignments made since the last call, for the back end.
    pub fn take_claims(&mut self) -> Vec<HomeClaim> {
        std::mem::take(&mut self.claims)
    }

    /// The back end's answer to a claim: `member` won.
    pub fn claimed(&mut self, pool: &str, address: &str, member: &str) {
        if !member.is_empty() {
            self.homes
                .insert(address.to_owned(), (pool.to_owned(), member.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(pool: &str, name: &str, sip: &str, hb: i64) -> PoolMember {
        PoolMember {
            pool: pool.into(),
            member: name.into(),
            sip_addr: sip.into(),
            heartbeat_ms: hb,
            started_ms: 0,
            registrations: 0,
        }
    }

    fn map() -> PoolMap {
        let mut m = PoolMap::new(2_000);
        m.load_snapshot(
            vec![
                member("a.example.com", "fe01", "127.0.0.2:5060", 1_000),
                member("b.example.com", "fe03", "127.0.0.4:5060", 1_000),
                member("b.example.com", "fe04", "127.0.0.5:5060", 1_000),
                member("dir.example.com", "dir01", "127.0.0.1:5060", 1_000),
            ],
            vec![
                ("a.example.com".into(), "front-end".into()),
                ("b.example.com".into(), "front-end".into()),
                ("dir.example.com".into(), "director".into()),
            ],
            vec![("bob@example.com".into(), "b.example.com".into())],
            vec![(
                "b.example.com".into(),
                "bob@example.com".into(),
                "fe04".into(),
            )],
        );
        m
    }

    #[test]
    fn a_user_goes_to_their_live_home_front_end() {
        let mut m = map();
        assert_eq!(m.pool_of("bob@example.com"), Some("b.example.com"));
        assert_eq!(m.pool_of("alice@example.com"), None);
        assert_eq!(
            m.server_for("bob@example.com", "b.example.com", true, 1_500),
            Some("127.0.0.5:5060".parse().unwrap())
        );
        assert!(
            m.take_claims().is_empty(),
            "a live home is not claimed again"
        );
    }

    #[test]
    fn without_a_live_home_the_least_loaded_is_chosen_and_claimed() {
        let mut m = map();
        // carol has no home: fe03 (0 users) beats fe04 (bob).
        assert_eq!(
            m.server_for("carol@example.com", "b.example.com", true, 1_500),
            Some("127.0.0.4:5060".parse().unwrap())
        );
        assert_eq!(
            m.take_claims(),
            vec![HomeClaim {
                pool: "b.example.com".into(),
                address: "carol@example.com".into(),
                member: "fe03".into(),
                previous: None,
            }]
        );
        // Without assign nothing is claimed.
        assert!(
            m.server_for("dave@example.com", "b.example.com", false, 1_500)
                .is_some()
        );
        assert!(m.take_claims().is_empty());
        // fe04 dies: bob is rehomed from it.
        m.apply_pool(PoolEvent::Member(member(
            "b.example.com",
            "fe03",
            "127.0.0.4:5060",
            5_000,
        )));
        assert_eq!(
            m.server_for("bob@example.com", "b.example.com", true, 5_500),
            Some("127.0.0.4:5060".parse().unwrap())
        );
        assert_eq!(m.take_claims()[0].previous.as_deref(), Some("fe04"));
        // Nobody live: no server.
        assert_eq!(
            m.server_for("bob@example.com", "b.example.com", true, 60_000),
            None
        );
    }

    #[test]
    fn users_move_and_pools_are_known_by_kind() {
        let mut m = map();
        assert_eq!(m.front_end_pools(), vec!["a.example.com", "b.example.com"]);
        assert_eq!(m.default_pool(), None);
        m.apply_home(HomeEvent::UserPool {
            address: "bob@example.com".into(),
            pool: Some("a.example.com".into()),
        });
        assert_eq!(m.pool_of("bob@example.com"), Some("a.example.com"));
        m.apply_home(HomeEvent::UserPool {
            address: "bob@example.com".into(),
            pool: None,
        });
        assert_eq!(m.pool_of("bob@example.com"), None);
        assert!(m.is_server("127.0.0.1:5060".parse().unwrap()));
        assert!(!m.is_server("127.0.0.9:5060".parse().unwrap()));
        let mut one = PoolMap::new(1_000);
        one.apply_home(HomeEvent::PoolKind {
            pool: "a.example.com".into(),
            kind: "front-end".into(),
        });
        assert_eq!(one.default_pool(), Some("a.example.com"));
    }

    #[test]
    fn a_moved_users_old_home_is_not_used_in_the_new_pool() {
        let mut m = map();
        // Moved to pool a: the notification names the new pool with no member.
        m.apply_pool(PoolEvent::Home {
            pool: "a.example.com".into(),
            address: "bob@example.com".into(),
            member: String::new(),
        });
        assert_eq!(
            m.server_for("bob@example.com", "a.example.com", true, 1_500),
            Some("127.0.0.2:5060".parse().unwrap())
        );
        assert_eq!(m.take_claims()[0].previous, None);
    }
}
