//! `confab topology new`: a commented starter topology.

use crate::TopologyError;
use crate::model::Edition;
use crate::validate::valid_fqdn;

/// Options for [`starter`].
#[derive(Debug, Clone)]
pub struct StarterOptions {
    pub edition: Edition,
    /// Machines: the Standard Edition server, or the Enterprise front ends.
    pub machines: Vec<String>,
    /// Enterprise pool FQDN (default `pool01.<domain of the first machine>`).
    pub pool: Option<String>,
    /// SIP domain (default: the domain of the first machine).
    pub sip_domain: Option<String>,
}

fn domain_of(fqdn: &str) -> Option<&str> {
    fqdn.split_once('.')
        .map(|(_, d)| d)
        .filter(|d| d.contains('.'))
}

/// The text of a starter topology. It validates without errors.
pub fn starter(opts: &StarterOptions) -> Result<String, TopologyError> {
    let machines: Vec<String> = opts
        .machines
        .iter()
        .map(|m| m.trim().trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let Some(first) = machines.first() else {
        return Err(TopologyError::Other(
            "name at least one machine with --fqdn".into(),
        ));
    };
    for m in &machines {
        if !valid_fqdn(m) {
            return Err(TopologyError::Other(format!(
                "{m:?} is not a fully qualified domain name (e.g. fe01.contoso.com)"
            )));
        }
    }
    let domain = match &opts.sip_domain {
        Some(d) => d.trim().to_ascii_lowercase(),
        None => domain_of(first)
            .map(str::to_string)
            .unwrap_or_else(|| first.clone()),
    };
    if !valid_fqdn(&domain) {
        return Err(TopologyError::Other(format!(
            "{domain:?} is not a valid SIP domain; pass --sip-domain"
        )));
    }
    match opts.edition {
        Edition::Standard => {
            if machines.len() > 1 {
                return Err(TopologyError::Other(
                    "a Standard Edition server is a single machine: pass one --fqdn, or use --edition enterprise".into(),
                ));
            }
            Ok(standard(first, &domain))
        }
        Edition::Enterprise => {
            if machines.len() > crate::validate::capacity::FRONT_ENDS_PER_POOL {
                return Err(TopologyError::Other(
                    "an Enterprise pool has at most 12 front ends".into(),
                ));
            }
            let pool = match &opts.pool {
                Some(p) => p.trim().to_ascii_lowercase(),
                None => format!("pool01.{}", domain_of(first).unwrap_or(&domain)),
            };
            if !valid_fqdn(&pool) {
                return Err(TopologyError::Other(format!(
                    "{pool:?} is not a valid pool FQDN"
                )));
            }
            Ok(enterprise(&pool, &machines, &domain))
        }
    }
}

const HEADER: &str = "\
# confab topology
#
# A topology names the SIP domains, sites, stores and pools of a deployment; each
# pool has machines, each machine its roles (front-end, director, edge,
# persistent-chat, mediation). See docs/topology.md for every key and rule.
#
#   confab topology validate FILE   checks every rule and names the line of each problem
#   confab topology publish FILE    stores it as the next version in the central store
#   confab bootstrap                prepares each machine for its roles
";

const OPTIONAL_POOLS: &str = r#"
# ---------------------------------------------------------------------------
# More pools, commented out. Uncomment and adapt as the deployment grows.
#
# A director authenticates remote users and routes them to their home pool.
# It homes no users (no `users` key) and runs alone on its machines.
#
# [[pool]]
# fqdn = "dir01.DOMAIN"
# site = "main"
# next_hop = "POOL"
# remote_users = 10000          # at most 12,000 per director
#
# [[pool.machine]]
# fqdn = "dir01.DOMAIN"
# roles = ["director"]
#
# An edge sits in the perimeter network with an internal and an external address.
#
# [[pool]]
# fqdn = "edge.DOMAIN"
# site = "main"
# next_hop = "POOL"
# remote_users = 10000          # at most 12,000 per edge server
#
# [[pool.machine]]
# fqdn = "edge01.DOMAIN"
# internal_address = "10.0.1.10"
# external_address = "203.0.113.10"
# roles = ["edge"]
#
# A mediation pool connects to the PSTN gateways.
#
# [[pool]]
# fqdn = "med01.DOMAIN"
# site = "main"
# next_hop = "POOL"
#
# [[pool.machine]]
# fqdn = "med01.DOMAIN"
# roles = ["mediation"]
"#;

fn standard(fqdn: &str, domain: &str) -> String {
    let optional = OPTIONAL_POOLS
        .replace("DOMAIN", domain_of(fqdn).unwrap_or(domain))
        .replace("POOL", fqdn);
    format!(
        r#"{HEADER}#
# Edition: Standard. One server runs every front-end service and keeps its back
# end in a local SQLite file. It is sized for 5,000 users and has no high
# availability; use an Enterprise pool for more.

# SIP domains this deployment serves; the first is the default.
sip_domains = ["{domain}"]

[[site]]
name = "main"
description = "Main site"

# The back end: users, contacts, conferences and the central management store.
# Standard Edition keeps it in a SQLite file, relative to the data directory.
[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"

# Files uploaded to chat rooms and conferences (a directory).
[[store]]
name = "files"
kind = "file"
path = "files"

[[pool]]
fqdn = "{fqdn}"
site = "main"
edition = "standard"
backend = "backend"
file_store = "files"
users = 1000                    # homed users; Standard Edition is sized for 5,000

[[pool.machine]]
fqdn = "{fqdn}"                 # a Standard Edition server shares its pool's FQDN
addresses = []                  # e.g. ["192.0.2.10"]
roles = ["front-end"]
# Persistent Chat can run on the Standard Edition server itself (it then uses the
# local store and has no high availability):
# roles = ["front-end", "persistent-chat"]
#
# Ports can be moved per role and listener (defaults shown):
# [pool.machine.ports]
# front-end.sip = 5060          # SIP over TCP (and sip-udp over UDP)
# front-end.sip-tls = 5061
# front-end.web = 8080
{optional}"#
    )
}

fn enterprise(pool: &str, machines: &[String], domain: &str) -> String {
    let sub = domain_of(pool).unwrap_or(domain);
    let optional = OPTIONAL_POOLS.replace("DOMAIN", sub).replace("POOL", pool);
    let mut machine_tables = String::new();
    for (i, m) in machines.iter().enumerate() {
        machine_tables.push_str(&format!(
            "\n[[pool.machine]]\nfqdn = \"{m}\"\naddresses = []                  # e.g. [\"10.0.0.{}\"]\nroles = [\"front-end\"]\n",
            11 + i
        ));
    }
    let users = 5_000 * machines.len();
    format!(
        r#"{HEADER}#
# Edition: Enterprise. Up to 12 front ends share a PostgreSQL back end (13 or
# later); about 6,660 users per front end, 80,000 per pool.

# SIP domains this deployment serves; the first is the default.
sip_domains = ["{domain}"]

[[site]]
name = "main"
description = "Main site"

# The back end shared by the pool's front ends; it also holds the central
# management store. Replace the password and host.
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab:CHANGE-ME@db.{sub}:5432/confab"

# Files uploaded to chat rooms and conferences: ONE store the whole pool
# shares, mounted at the same absolute path on every front end (NFS, SMB,
# CephFS, GlusterFS). A relative path would give each front end its own folder.
[[store]]
name = "files"
kind = "file"
path = "/srv/confab-files"

[[pool]]
fqdn = "{pool}"
site = "main"
edition = "enterprise"
backend = "backend"
file_store = "files"
users = {users}                   # homed users
# edge_pool = "edge.{sub}"
{machine_tables}
# ---------------------------------------------------------------------------
# Persistent Chat runs in a pool of its own on Enterprise Edition: at most 4
# active servers, plus passive ones for high availability, with its own store.
# Compliance records go to a separate compliance store.
#
# [[store]]
# name = "pchat"
# kind = "persistent-chat"
# url = "postgres://confab:CHANGE-ME@db.{sub}:5432/confab_pchat"
#
# [[store]]
# name = "compliance"
# kind = "compliance"
# url = "postgres://confab:CHANGE-ME@db.{sub}:5432/confab_compliance"
#
# [[pool]]
# fqdn = "pchat.{sub}"
# site = "main"
# next_hop = "{pool}"
# persistent_chat_store = "pchat"
# compliance = true
# compliance_store = "compliance"
# active_users = 20000          # at most 20,000 per active server
#
# [[pool.machine]]
# fqdn = "pchat01.{sub}"
# roles = ["persistent-chat"]
# persistent_chat = "active"
#
# [[pool.machine]]
# fqdn = "pchat02.{sub}"
# roles = ["persistent-chat"]
# persistent_chat = "passive"   # stands by; `confab chat pool activate pchat02.{sub}`
#                               # makes it serve (`confab chat status` lists the servers)
{optional}"#
    )
}
