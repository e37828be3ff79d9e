//! Starts the Response Group service in the server (see `docs/audio.md`): its
//! follower of the configuration in the store (`rgs_rev`, woken like the voice
//! feed), the workflows' addresses the front end asks about
//! ([`confab_frontend::WorkflowRouter`]), and the service's SIP listener on
//! loopback, which the front end sends workflow calls to and trusts.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use confab_media::MediaNode;
use confab_rgs::service::{Running, ServiceConfig};
use confab_rgs::{RgsConfig, RgsData};
use confab_store::Store;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::ServeConfig;

/// The workflows' SIP URIs and numbers, replaced whole on every change.
#[derive(Debug, Default)]
pub struct Workflows {
    uris: RwLock<(HashSet<String>, HashSet<String>)>,
}

impl Workflows {
    fn set(&self, cfg: &RgsConfig) {
        let (uris, numbers) = cfg.addresses();
        if let Ok(mut g) = self.uris.write() {
            *g = (uris.into_iter().collect(), numbers.into_iter().collect());
        }
    }
}

impl confab_frontend::WorkflowRouter for Workflows {
    fn serves(&self, aor: &str) -> bool {
        let Ok(g) = self.uris.read() else {
            return false;
        };
        let user = aor.split('@').next().unwrap_or("");
        let user = user.split(';').next().unwrap_or("");
        g.0.contains(aor) || g.1.contains(user)
    }
}

async fn load(store: &Store) -> Result<(i64, RgsConfig), String> {
    let (rev, objects, signins) = store.rgs_rows().await.map_err(|e| e.to_string())?;
    let data = RgsData::from_rows(&objects, &signins).map_err(|e| e.to_string())?;
    let cfg = RgsConfig::build(data).map_err(|e| e.to_string())?;
    Ok((rev, cfg))
}

/// Starts the service; `proxy` is the front end's UDP SIP address, RTP ports
/// open on `rtp_ip`. Returns the running service and the front end's route.
pub async fn start(
    cfg: &ServeConfig,
    store: &Store,
    url: &str,
    proxy: SocketAddr,
    rtp_ip: IpAddr,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(Running, Arc<Workflows>)> {
    let (mut rev, initial) = match load(store).await {
        Ok(x) => x,
        Err(e) => {
            warn!(error = %e, "the stored Response Group configuration is not valid: no workflows");
            (store.rgs_rev().await?, RgsConfig::default())
        }
    };
    let workflows = Arc::new(Workflows::default());
    workflows.set(&initial);
    let (tx, rx) = mpsc::channel(4);
    let mut waker = confab_pool::ChangeWaker::new(store, url, &["rgs_rev"]).await;
    let feed_store = store.clone();
    let feed_workflows = workflows.clone();
    let mut feed_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = waker.wait() => {}
                _ = feed_stop.changed() => return,
            }
            match feed_store.rgs_rev().await {
                Ok(r) if r == rev => continue,
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "reading the Response Group revision failed");
                    continue;
                }
            }
            match load(&feed_store).await {
                Ok((r, cfg)) => {
                    rev = r;
                    info!(
                        rev,
                        "applied Response Group configuration changes from the store"
                    );
                    feed_workflows.set(&cfg);
                    if tx.send(Arc::new(cfg)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "the stored Response Group configuration is not valid: kept the previous one");
                    if let Ok(r) = feed_store.rgs_rev().await {
                        rev = r;
                    }
                }
            }
        }
    });
    let (node, _node_task) = MediaNode::spawn();
    let svc = ServiceConfig {
        domain: cfg.domain.clone(),
        sip_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        proxy,
        rtp_ip,
    };
    // `stop` is also watched by the service itself.
    let running =
        confab_rgs::service::start(svc, Arc::new(initial), rx, node, stop.clone()).await?;
    let _ = stop.borrow_and_update();
    Ok((running, workflows))
}
