//! Trunks from the topology's PSTN gateways. In Lync, Topology Builder defines
//! each gateway and its root trunk, and publishing the topology makes the trunk
//! exist for voice routes; `confab topology publish` does the same: every
//! `[[gateway]]` becomes a voice trunk (named after it, marked `from_topology`)
//! in the voice configuration of the front-end pool its Mediation pool serves,
//! a changed gateway updates its trunk (its translation rules are kept), and a
//! gateway removed from the topology removes its trunk. Trunks made with
//! `confab voice trunk add` are left alone.
//!
//! [`plan`] is the whole decision, without I/O; [`prepare`] reads the voice
//! stores and checks every change before anything is published, [`commit`]
//! saves them (each with the voice revision it read) after the topology is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use confab_store::Store;
use confab_topology::{GatewayTransport, Topology};
use confab_voice::{Homes, Trunk, TrunkTransport, VoiceConfig, VoiceData};

/// One change publishing makes to a voice configuration's trunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkChange {
    Added {
        name: String,
        gateway: String,
    },
    Updated {
        name: String,
        from: String,
        to: String,
    },
    Removed {
        name: String,
        gateway: String,
    },
}

impl fmt::Display for TrunkChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrunkChange::Added { name, gateway } => write!(f, "+ trunk {name}: {gateway}"),
            TrunkChange::Updated { name, from, to } => {
                write!(f, "~ trunk {name}: {from} -> {to}")
            }
            TrunkChange::Removed { name, gateway } => write!(f, "- trunk {name}: {gateway}"),
        }
    }
}

fn endpoint(t: &Trunk) -> String {
    format!("{}/{}", t.gateway, t.transport.as_str())
}

fn transport(t: GatewayTransport) -> TrunkTransport {
    match t {
        GatewayTransport::Udp => TrunkTransport::Udp,
        GatewayTransport::Tcp => TrunkTransport::Tcp,
        GatewayTransport::Tls => TrunkTransport::Tls,
    }
}

/// The trunks the topology's gateways make, by the connection URL of the voice
/// store (the back end of the front-end pool each gateway's Mediation pool
/// serves; relative SQLite paths taken from `data_dir`). Gateways validation
/// refuses (no IP address, no such pool) are skipped: a valid topology has none.
pub fn wanted(t: &Topology, data_dir: &Path) -> BTreeMap<String, Vec<Trunk>> {
    let mut out: BTreeMap<String, Vec<Trunk>> = BTreeMap::new();
    for g in &t.gateways {
        let (Some(addr), Some(url)) = (
            g.socket_addr(),
            t.voice_pool_of(g)
                .and_then(|p| t.backend_of(p))
                .and_then(|s| s.connection_url(data_dir)),
        ) else {
            continue;
        };
        out.entry(url).or_default().push(Trunk {
            name: g.trunk_name(),
            gateway: addr,
            transport: transport(g.transport()),
            from_topology: true,
            rules: Vec::new(),
        });
    }
    out
}

/// Makes the topology trunks of `data` those of `wanted`: adds, updates (the
/// gateway's address and transport; translation rules stay) and removes; other
/// trunks are left alone. Refused, with the reason and the fix, when a gateway
/// has the name of a trunk made by hand, when a removed gateway's trunk is
/// still named by a route, or when the result is no valid configuration.
pub fn plan(data: &VoiceData, wanted: &[Trunk]) -> Result<(VoiceData, Vec<TrunkChange>), String> {
    let mut next = data.clone();
    let mut changes = Vec::new();
    for w in wanted {
        match next
            .trunks
            .iter_mut()
            .find(|t| t.name.eq_ignore_ascii_case(&w.name))
        {
            Some(t) if !t.from_topology => {
                return Err(format!(
                    "gateway {} would make trunk {}, but a trunk of that name was made with \
                     `confab voice trunk add`: remove that trunk (`confab voice trunk remove {}`, \
                     after taking it out of its routes) or give the gateway another `name`",
                    w.name, t.name, t.name
                ));
            }
            Some(t) => {
                if t.gateway != w.gateway || t.transport != w.transport {
                    let from = endpoint(t);
                    t.gateway = w.gateway;
                    t.transport = w.transport;
                    changes.push(TrunkChange::Updated {
                        name: t.name.clone(),
                        from,
                        to: endpoint(t),
                    });
                }
            }
            None => {
                next.trunks.push(w.clone());
                changes.push(TrunkChange::Added {
                    name: w.name.clone(),
                    gateway: endpoint(w),
                });
            }
        }
    }
    let gone: Vec<Trunk> = next
        .trunks
        .iter()
        .filter(|t| t.from_topology && !wanted.iter().any(|w| w.name.eq_ignore_ascii_case(&t.name)))
        .cloned()
        .collect();
    for t in gone {
        if let Some(r) = next
            .routes
            .iter()
            .find(|r| r.trunks.iter().any(|x| x.eq_ignore_ascii_case(&t.name)))
        {
            return Err(format!(
                "gateway {} is no longer in the topology, but voice route {} still sends calls \
                 to its trunk: take the trunk out of the route first (`confab voice route set {} \
                 --trunks ...` or `confab voice route remove {}`)",
                t.name, r.name, r.name, r.name
            ));
        }
        next.trunks.retain(|x| x.name != t.name);
        changes.push(TrunkChange::Removed {
            gateway: endpoint(&t),
            name: t.name,
        });
    }
    VoiceConfig::build(next.clone(), Homes::default()).map_err(|e| e.to_string())?;
    Ok((next, changes))
}

/// One voice store's changes, checked and ready to save.
pub struct Prepared {
    store: Store,
    shown: String,
    rev: i64,
    data: VoiceData,
    changes: Vec<TrunkChange>,
    by_hand: usize,
}

/// Reads every voice store the gateways of `new` (and those of `old`, the
/// version being replaced, so that removed gateways lose their trunks) go to
/// and plans its changes. Nothing is written. A topology without gateways,
/// replacing one without gateways, touches no voice store.
pub async fn prepare(
    new: &Topology,
    old: Option<&Topology>,
    data_dir: &Path,
) -> anyhow::Result<Vec<Prepared>> {
    let mut targets = wanted(new, data_dir);
    if let Some(old) = old {
        for url in wanted(old, data_dir).into_keys() {
            targets.entry(url).or_default();
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (url, trunks) in targets {
        let shown = confab_store::redact_url(&url);
        let store = Store::open(&url)
            .await
            .with_context(|| format!("opening the voice configuration in {shown}"))?;
        let (rev, data) = store.voice_data().await?;
        let (data, changes) = plan(&data, &trunks).map_err(|e| {
            anyhow::anyhow!("{e} (voice configuration in {shown}); nothing was published")
        })?;
        let by_hand = data.trunks.iter().filter(|t| !t.from_topology).count();
        out.push(Prepared {
            store,
            shown,
            rev,
            data,
            changes,
            by_hand,
        });
    }
    Ok(out)
}

/// Saves the prepared changes and says what changed.
pub async fn commit(prepared: Vec<Prepared>) -> anyhow::Result<()> {
    for p in prepared {
        let result = if p.changes.is_empty() {
            println!(
                "Trunks from the topology's PSTN gateways in {}: unchanged.",
                p.shown
            );
            Ok(())
        } else {
            p.store
                .save_voice_config(p.rev, &p.data)
                .await
                .map(|_| {
                    println!(
                        "Trunks from the topology's PSTN gateways in {}: {} change(s):",
                        p.shown,
                        p.changes.len()
                    );
                    for c in &p.changes {
                        println!("  {c}");
                    }
                })
                .with_context(|| {
                    format!(
                        "saving the trunks in {} (the topology is published: publish it again to retry)",
                        p.shown
                    )
                })
        };
        if result.is_ok() && p.by_hand > 0 {
            println!(
                "  {} trunk(s) made with `confab voice trunk add` left alone.",
                p.by_hand
            );
        }
        p.store.close().await;
        result?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_voice::{Route, Rule};

    fn trunk(name: &str, gw: &str, topo: bool) -> Trunk {
        Trunk {
            name: name.into(),
            gateway: gw.parse().unwrap(),
            transport: TrunkTransport::Udp,
            from_topology: topo,
            rules: Vec::new(),
        }
    }

    fn stored() -> VoiceData {
        let mut gw1 = trunk("gw1.contoso.com", "192.0.2.20:5060", true);
        gw1.rules.push(Rule {
            name: "strip-plus".into(),
            pattern: r"\+(\d+)".into(),
            translation: "$1".into(),
        });
        VoiceData {
            usages: vec!["local".into()],
            trunks: vec![
                trunk("byhand", "192.0.2.99:5060", false),
                gw1,
                trunk("gw-old", "192.0.2.21:5060", true),
            ],
            routes: vec![Route {
                name: "us".into(),
                pattern: r"\+1\d{10}".into(),
                usages: vec!["local".into()],
                trunks: vec!["gw1.contoso.com".into(), "byhand".into()],
            }],
            ..VoiceData::default()
        }
    }

    #[test]
    fn publishing_adds_updates_and_removes_topology_trunks_only() {
        let mut moved = trunk("GW1.contoso.com", "192.0.2.20:5067", true);
        moved.transport = TrunkTransport::Tcp;
        let wanted = [moved, trunk("carrier", "198.51.100.7:5060", true)];
        let (next, changes) = plan(&stored(), &wanted).unwrap();
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "~ trunk gw1.contoso.com: 192.0.2.20:5060/udp -> 192.0.2.20:5067/tcp",
                "+ trunk carrier: 198.51.100.7:5060/udp",
                "- trunk gw-old: 192.0.2.21:5060/udp",
            ]
        );
        let names: Vec<&str> = next.trunks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["byhand", "gw1.contoso.com", "carrier"]);
        assert_eq!(
            next.trunks[1].rules.len(),
            1,
            "an updated trunk keeps its translation rules"
        );
        assert_eq!(next.trunks[0], stored().trunks[0], "the hand-made trunk");
        // Publishing the same gateways again changes nothing.
        let (again, none) = plan(&next, &wanted).unwrap();
        assert!(none.is_empty());
        assert_eq!(again, next);
    }

    #[test]
    fn a_gateway_named_like_a_hand_made_trunk_is_refused() {
        let e = plan(&stored(), &[trunk("ByHand", "192.0.2.50:5060", true)]).unwrap_err();
        assert!(e.contains("made with `confab voice trunk add`"), "{e}");
    }

    #[test]
    fn a_removed_gateway_still_in_a_route_is_refused() {
        let e = plan(&stored(), &[]).unwrap_err();
        assert!(
            e.contains("gateway gw1.contoso.com is no longer in the topology")
                && e.contains("voice route us"),
            "{e}"
        );
    }
}
