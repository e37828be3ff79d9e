//! Differences between two topologies: what changed in the deployment (pools,
//! machines, roles, stores, gateways) and, for the curious, the text itself.

use std::collections::BTreeMap;

use crate::model::{StoreLocation, Topology};

/// One change of the deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Added {
        item: String,
        value: String,
    },
    Removed {
        item: String,
        value: String,
    },
    Changed {
        item: String,
        from: String,
        to: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { item, value } => write!(f, "+ {item}: {value}"),
            Change::Removed { item, value } => write!(f, "- {item}: {value}"),
            Change::Changed { item, from, to } => write!(f, "~ {item}: {from} -> {to}"),
        }
    }
}

fn opt<T: std::fmt::Display>(v: &Option<toml::Spanned<T>>) -> Option<String> {
    v.as_ref().map(|x| x.get_ref().to_string())
}

/// The facts of a topology as `item -> value` pairs, e.g.
/// `machine fe01.contoso.com roles -> front-end`.
pub fn facts(t: &Topology) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("sip domains".to_string(), t.sip_domains().join(", "));
    if let Some(cs) = opt(&t.central_store) {
        f.insert("central store".into(), cs);
    }
    for s in &t.sites {
        f.insert(
            format!("site {}", s.name.get_ref()),
            s.description.clone().unwrap_or_default(),
        );
    }
    for s in &t.stores {
        let loc = match s.location() {
            Some(StoreLocation::Sqlite(p)) => format!("sqlite {p}"),
            Some(StoreLocation::Postgres(u)) => format!("postgres {}", crate::db::redact(&u)),
            Some(StoreLocation::Directory(d)) => format!("directory {d}"),
            None => "no location".into(),
        };
        f.insert(
            format!("store {}", s.name()),
            format!("{} at {loc}", s.kind()),
        );
    }
    for p in &t.pools {
        let key = format!("pool {}", p.fqdn().to_ascii_lowercase());
        f.insert(
            key.clone(),
            format!("{} in site {}", p.edition(), p.site.get_ref()),
        );
        let fields = [
            ("backend", opt(&p.backend)),
            ("persistent_chat_store", opt(&p.persistent_chat_store)),
            ("compliance", opt(&p.compliance)),
            ("compliance_store", opt(&p.compliance_store)),
            ("archiving_store", opt(&p.archiving_store)),
            ("monitoring_store", opt(&p.monitoring_store)),
            ("file_store", opt(&p.file_store)),
            ("next_hop", opt(&p.next_hop)),
            ("edge_pool", opt(&p.edge_pool)),
            ("users", opt(&p.users)),
            ("remote_users", opt(&p.remote_users)),
            ("active_users", opt(&p.active_users)),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                f.insert(format!("{key} {name}"), value);
            }
        }
        for m in &p.machines {
            let mkey = format!("machine {}", m.fqdn().to_ascii_lowercase());
            f.insert(
                mkey.clone(),
                format!("in pool {}", p.fqdn().to_ascii_lowercase()),
            );
            let roles: Vec<&str> = m.roles().iter().map(|r| r.as_str()).collect();
            f.insert(format!("{mkey} roles"), roles.join(", "));
            let addrs: Vec<String> = m.addresses.iter().map(|a| a.get_ref().clone()).collect();
            if !addrs.is_empty() {
                f.insert(format!("{mkey} addresses"), addrs.join(", "));
            }
            if let Some(a) = opt(&m.internal_address) {
                f.insert(format!("{mkey} internal_address"), a);
            }
            if let Some(a) = opt(&m.external_address) {
                f.insert(format!("{mkey} external_address"), a);
            }
            if m.persistent_chat.is_some() {
                f.insert(
                    format!("{mkey} persistent_chat"),
                    format!("{:?}", m.chat_state()).to_ascii_lowercase(),
                );
            }
            for l in m.listeners() {
                f.insert(
                    format!("{mkey} port {}.{}", l.role, l.name),
                    format!("{}/{}", l.port, l.protocol),
                );
            }
        }
    }
    for g in &t.gateways {
        f.insert(
            format!("gateway {}", g.trunk_name()),
            format!(
                "{}:{}/{} via {}{}",
                g.address.get_ref().trim(),
                g.port(),
                g.transport(),
                g.mediation_pool.get_ref().to_ascii_lowercase(),
                g.site(t)
                    .map(|s| format!(" in site {s}"))
                    .unwrap_or_default()
            ),
        );
    }
    f
}

/// Changes from `old` to `new`. An added or removed pool, machine, store or site
/// is reported once, not once per attribute.
pub fn changes(old: &Topology, new: &Topology) -> Vec<Change> {
    let a = facts(old);
    let b = facts(new);
    let entity = |k: &str| -> Option<String> {
        let mut parts = k.splitn(3, ' ');
        let kind = parts.next()?;
        let name = parts.next()?;
        matches!(kind, "pool" | "machine" | "store" | "site" | "gateway")
            .then(|| format!("{kind} {name}"))
    };
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => {
                // Skip attributes of an entity that is itself removed.
                if let Some(e) = entity(k)
                    && e != *k
                    && !b.contains_key(&e)
                {
                    continue;
                }
                out.push(Change::Removed {
                    item: k.clone(),
                    value: v.clone(),
                });
            }
            Some(w) if w != v => out.push(Change::Changed {
                item: k.clone(),
                from: v.clone(),
                to: w.clone(),
            }),
            _ => {}
        }
    }
    for (k, v) in &b {
        if !a.contains_key(k) {
            if let Some(e) = entity(k)
                && e != *k
                && !a.contains_key(&e)
            {
                if k.ends_with(" roles") {
                    // Keep the roles of a new machine: they say what it is.
                    if let Some(Change::Added { value, .. }) = out
                        .iter_mut()
                        .rev()
                        .find(|c| matches!(c, Change::Added { item, .. } if *item == e))
                    {
                        value.push_str(&format!(", roles {v}"));
                    }
                }
                continue;
            }
            out.push(Change::Added {
                item: k.clone(),
                value: v.clone(),
            });
        }
    }
    out
}

/// A unified-style line diff (`-`, `+`, and two lines of context), or `None`
/// when the texts are too large to compare line by line.
pub fn text_diff(old: &str, new: &str) -> Option<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 25_000_000 {
        return None;
    }
    // lcs[i][j]: length of the LCS of a[i..] and b[j..]
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i + 1, a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', j + 1, b[j]));
            j += 1;
        } else {
            ops.push(('-', i + 1, a[i]));
            i += 1;
        }
    }
    let near_change = |k: usize| -> bool {
        let lo = k.saturating_sub(2);
        let hi = (k + 3).min(ops.len());
        ops[lo..hi].iter().any(|(c, _, _)| *c != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, line, text)) in ops.iter().enumerate() {
        if *c == ' ' && !near_change(k) {
            skipped = true;
            continue;
        }
        if skipped {
            out.push_str("...\n");
            skipped = false;
        }
        let marker = if *c == '+' { "new" } else { "old" };
        out.push_str(&format!("{c} {text}"));
        if *c != ' ' {
            out.push_str(&format!("    ({marker} line {line})"));
        }
        out.push('\n');
    }
    Some(out)
}
