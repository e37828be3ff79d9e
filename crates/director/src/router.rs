//! The `HomeRouter` of a server in a topology of several pools.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use confab_frontend::{Dest, HomeRoute, HomeRouter, Transport};
use confab_sip::{HeaderName, Message};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::debug;

use crate::map::{HomeClaim, PoolMap};
use crate::policy::SignInPolicy;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What this server is.
pub enum Role {
    /// A front end of `pool`, with the pool's own router (home front ends).
    FrontEnd {
        pool: String,
        inner: Arc<dyn HomeRouter>,
    },
    /// A Director: holds no users, sends each to their pool.
    Director { policy: SignInPolicy },
}

/// See the crate documentation.
pub struct PoolsRouter {
    map: Arc<Mutex<PoolMap>>,
    role: Role,
    claims: mpsc::UnboundedSender<HomeClaim>,
}

impl PoolsRouter {
    pub fn new(
        map: Arc<Mutex<PoolMap>>,
        role: Role,
        claims: mpsc::UnboundedSender<HomeClaim>,
    ) -> PoolsRouter {
        PoolsRouter { map, role, claims }
    }

    /// Where `user`, homed on `pool` (another pool than this server's), is served.
    fn to_pool(&self, user: &str, pool: &str, assign: bool) -> HomeRoute {
        let mut map = self.map.lock();
        let server = map.server_for(user, pool, assign, now_ms());
        for c in map.take_claims() {
            let _ = self.claims.send(c);
        }
        drop(map);
        match server {
            Some(addr) => {
                debug!(%user, %pool, server = %addr, "user served by another pool");
                HomeRoute::Peer(Dest {
                    transport: Transport::Udp,
                    addr,
                    conn: None,
                })
            }
            None => HomeRoute::Unavailable(format!("No front end of pool {pool} is available")),
        }
    }
}

impl HomeRouter for PoolsRouter {
    fn route(&self, user: &str, sign_in: bool) -> HomeRoute {
        let pool = self.map.lock().pool_of(user).map(str::to_owned);
        match &self.role {
            // Another pool's user: a live server of that pool; this pool's (or
            // the default pool's) users: the pool's own router.
            FrontEnd { pool: mine, inner } => match pool {
                Some(p) if p != *mine => self.to_pool(user, &p, false),
                _ => inner.route(user, sign_in),
            },
            // A Director homes no one: the user's pool (the only pool by default)
            // serves them; a sign-in through a Director gets a home there.
            Director { .. } => {
                let default = || self.map.lock().default_pool().map(str::to_owned);
                match pool.or_else(default) {
                    Some(p) => self.to_pool(user, &p, sign_in),
                    None => HomeRoute::Unavailable(
                        "The user has no home pool (give one with `confab user move`)".to_owned(),
                    ),
                }
            }
        }
    }

    fn is_peer(&self, addr: SocketAddr) -> bool {
        if let FrontEnd { inner, .. } = &self.role
            && inner.is_peer(addr)
        {
            return true;
        }
        self.map.lock().is_server(addr)
    }

    fn redirect_sign_in(&self, msg: &Message) -> bool {
        match &self.role {
            FrontEnd { .. } => true,
            Director { policy } => policy.redirects(msg.header(HeaderName::UserAgent)),
        }
    }
}

use Role::{Director, FrontEnd};
