//! Starts the Call Park service in the server (crates/park, see `docs/audio.md`):
//! its own follower of the voice configuration (orbit ranges), the media node
//! its music on hold is paced by, and its SIP listener on loopback, which the
//! front end sends calls to orbit numbers to and trusts; ring backs and the
//! parker's MESSAGE go to the front end's UDP address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use confab_media::MediaNode;
use confab_park::service::{Running, ServiceConfig};
use confab_store::Store;
use tokio::sync::watch;

use crate::config::ServeConfig;

/// How long a ring back (to the parker, then the fallback) rings.
const RING: Duration = Duration::from_secs(20);

/// Starts the service; RTP ports open on `rtp_ip`; `front_end` is the front
/// end's SIP UDP address.
pub async fn start(
    cfg: &ServeConfig,
    store: &Store,
    url: &str,
    rtp_ip: IpAddr,
    front_end: SocketAddr,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    let (voice, updates, _feed) = crate::voice_feed::start(
        store.clone(),
        url,
        crate::voice_homes::HomeSource::for_config(cfg),
        stop.clone(),
    )
    .await?;
    let (node, _node_task) = MediaNode::spawn();
    let front_end = match front_end.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), front_end.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), front_end.port())
        }
        _ => front_end,
    };
    let svc = ServiceConfig {
        domain: cfg.domain.clone(),
        sip_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        front_end,
        rtp_ip,
        ring: RING,
    };
    Ok(confab_park::service::start(svc, voice, updates, node, stop).await?)
}
