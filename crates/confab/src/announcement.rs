//! Starts the Announcement service in the server (see `docs/audio.md`): the media
//! node (one task paces every stream), the service's own follower of the voice
//! configuration, and its SIP listener on loopback, which the front end sends
//! calls to unassigned numbers to and trusts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use confab_media::MediaNode;
use confab_media::service::{Running, ServiceConfig};
use confab_store::Store;
use tokio::sync::watch;

use crate::config::ServeConfig;

/// Starts the service; RTP ports open on `rtp_ip` (the address clients reach).
pub async fn start(
    cfg: &ServeConfig,
    store: &Store,
    url: &str,
    rtp_ip: IpAddr,
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
    let svc = ServiceConfig {
        domain: cfg.domain.clone(),
        sip_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        rtp_ip,
    };
    Ok(confab_media::service::start(svc, voice, updates, node, stop).await?)
}
