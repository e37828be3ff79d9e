//! Where users are homed, for the site and pool scopes of dial plans and voice
//! policies (`confab_voice::Homes`): each user's pool from the store
//! (`user_pools`, `confab user add --pool`, `confab user move`), the pool of
//! users without one, and each pool's site from the topology.
//!
//! The topology is this machine's replica (`DATA/topology/current.toml`, written
//! by `confab bootstrap`), else the latest version in the central store the data
//! directory names (after a `confab topology publish` without bootstrap). With
//! neither, no site or pool is known and only user and global scopes apply, as
//! on a server without a topology.

use std::path::{Path, PathBuf};

use confab_store::Store;
use confab_topology::cms::CentralStore;
use confab_topology::local::LocalReplica;
use confab_topology::{Role, Topology};
use confab_voice::Homes;
use tracing::warn;

use crate::config::ServeConfig;

/// Where to find homes: the data directory (its topology) and the pool this
/// server belongs to, if configured.
#[derive(Debug, Clone, Default)]
pub struct HomeSource {
    data_dir: PathBuf,
    pool: Option<String>,
}

impl HomeSource {
    /// For `confab serve` and the command line: the data directory and `[pool]
    /// name` of the configuration.
    pub fn for_config(cfg: &ServeConfig) -> HomeSource {
        HomeSource {
            data_dir: cfg.data_dir.clone(),
            pool: cfg.pool.name.clone(),
        }
    }

    /// For the Control Panel, which knows its data directory.
    pub fn for_data_dir(data_dir: &Path) -> HomeSource {
        HomeSource {
            data_dir: data_dir.to_path_buf(),
            pool: None,
        }
    }

    /// The homes now. Nothing here stops voice routing: a topology or a table
    /// that cannot be read is logged, and the scopes it would give are left out.
    pub async fn load(&self, store: &Store) -> Homes {
        let (topology, fqdn) = match self.topology().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "reading the topology for site and pool scopes failed: user and global scopes only");
                (None, None)
            }
        };
        let default_pool = self
            .pool
            .clone()
            .or_else(|| default_pool(topology.as_ref()?, fqdn.as_deref()));
        let mut homes = Homes::new(default_pool.as_deref());
        if let Some(t) = &topology {
            for p in &t.pools {
                homes.set_pool_site(p.fqdn(), p.site.get_ref());
            }
        }
        match store.user_pools().await {
            Ok(pools) => {
                for (user, pool) in pools {
                    homes.set_user_pool(&user, &pool);
                }
            }
            Err(e) => warn!(error = %e, "reading users' pools failed: their default pool applies"),
        }
        homes
    }

    /// The topology and this machine's FQDN in it (when bootstrapped).
    async fn topology(&self) -> anyhow::Result<(Option<Topology>, Option<String>)> {
        let Some(replica) = LocalReplica::load(&self.data_dir)? else {
            return Ok((None, None));
        };
        if let Some(t) = replica.topology()? {
            return Ok((Some(t), replica.pointer.fqdn));
        }
        // Published from here but not bootstrapped: the central store's latest.
        let cms = CentralStore::open_existing(&replica.pointer.url).await?;
        let latest = cms.latest().await;
        cms.close().await;
        let t = latest?.map(|p| Topology::parse(&p.source)).transpose()?;
        Ok((t, replica.pointer.fqdn))
    }
}

/// The pool of users with none of their own: this machine's front-end pool
/// (for a Mediation-only machine, its next hop), else the topology's only
/// front-end pool.
pub fn default_pool(t: &Topology, fqdn: Option<&str>) -> Option<String> {
    if let Some(m) = fqdn.and_then(|f| t.machine(f)) {
        if m.pool.has_role(Role::FrontEnd) {
            return Some(m.pool.fqdn().to_owned());
        }
        if let Some(hop) = m.pool.next_hop.as_ref().and_then(|h| t.pool(h.get_ref()))
            && hop.has_role(Role::FrontEnd)
        {
            return Some(hop.fqdn().to_owned());
        }
    }
    let mut front_ends = t.pools.iter().filter(|p| p.has_role(Role::FrontEnd));
    match (front_ends.next(), front_ends.next()) {
        (Some(only), None) => Some(only.fqdn().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPOLOGY: &str = r#"sip_domains = ["example.com"]
[[site]]
name = "Main"
[[site]]
name = "branch"
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab@db.example.com/confab"
[[pool]]
fqdn = "pool1.example.com"
site = "Main"
edition = "enterprise"
backend = "backend"
[[pool.machine]]
fqdn = "fe01.example.com"
roles = ["front-end"]
[[pool]]
fqdn = "pool2.example.com"
site = "branch"
edition = "enterprise"
backend = "backend"
[[pool.machine]]
fqdn = "fe02.example.com"
roles = ["front-end"]
[[pool]]
fqdn = "med.example.com"
site = "branch"
next_hop = "pool2.example.com"
[[pool.machine]]
fqdn = "med01.example.com"
roles = ["mediation"]
"#;

    #[test]
    fn the_default_pool_is_this_machines_or_the_only_one() {
        let t = Topology::parse(TOPOLOGY).unwrap();
        assert_eq!(
            default_pool(&t, Some("FE01.example.com")).as_deref(),
            Some("pool1.example.com")
        );
        assert_eq!(
            default_pool(&t, Some("med01.example.com")).as_deref(),
            Some("pool2.example.com"),
            "a Mediation machine's users are its next hop's"
        );
        assert_eq!(default_pool(&t, None), None, "two front-end pools");
        let one = TOPOLOGY.split("[[pool]]\nfqdn = \"pool2").next().unwrap();
        let t = Topology::parse(one).unwrap();
        assert_eq!(default_pool(&t, None).as_deref(), Some("pool1.example.com"));
    }

    #[tokio::test]
    async fn homes_come_from_the_replica_and_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("h.db")).await.unwrap();
        LocalReplica {
            pointer: confab_topology::local::Pointer {
                url: "sqlite://nowhere.db".into(),
                version: 1,
                fqdn: Some("fe01.example.com".into()),
            },
            source: Some(TOPOLOGY.into()),
        }
        .save(dir.path())
        .unwrap();
        store
            .set_user_pool("bob@example.com", Some("pool2.example.com"), 1)
            .await
            .unwrap();
        let homes = HomeSource::for_data_dir(dir.path()).load(&store).await;
        let alice = homes.of("alice@example.com");
        assert_eq!(
            (alice.pool.as_deref(), alice.site.as_deref()),
            (Some("pool1.example.com"), Some("main"))
        );
        assert_eq!(homes.of("bob@example.com").site.as_deref(), Some("branch"));
        // No topology: nobody has a site.
        let empty = tempfile::tempdir().unwrap();
        let homes = HomeSource::for_data_dir(empty.path()).load(&store).await;
        assert_eq!(homes.of("alice@example.com").site, None);
        assert_eq!(
            homes.of("bob@example.com").pool.as_deref(),
            Some("pool2.example.com")
        );
    }
}
