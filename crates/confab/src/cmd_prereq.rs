//! `confab prereq check`: this machine against the requirements of its roles
//! (docs/system-requirements.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use confab_prereq::{Plan, SystemHost, host_fqdn};
use confab_topology::local::LocalReplica;
use confab_topology::{Role, Topology};

#[derive(Args)]
pub struct PrereqArgs {
    #[command(subcommand)]
    pub command: PrereqCommand,
}

#[derive(Subcommand)]
pub enum PrereqCommand {
    /// Check this machine: pass, warn or fail for each requirement, why, and how to fix it
    Check(CheckArgs),
    /// Check a reverse proxy: listen where the proxy forwards the web port, and
    /// check the headers of the first WebSocket request that comes through it
    Proxy(ProxyArgs),
}

#[derive(Args)]
pub struct ProxyArgs {
    /// Address to listen on: the web port the proxy forwards to (before confab runs there)
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub listen: std::net::SocketAddr,
    /// Give up after this many seconds without a request
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Check for this role (repeat for several): front-end, director, edge,
    /// persistent-chat, mediation [default: this machine's roles in the topology, else
    /// a Standard Edition front end]
    #[arg(long = "role", value_name = "ROLE", value_parser = parse_role)]
    pub roles: Vec<Role>,
    /// Take this machine's roles, stores and ports from a topology file [default: the
    /// topology this data directory was bootstrapped from]
    #[arg(long, value_name = "FILE")]
    pub topology: Option<PathBuf>,
    /// This machine's FQDN in the topology [default: the host name]
    #[arg(long, value_name = "FQDN")]
    pub fqdn: Option<String>,
    /// The edge's internal address (with --role edge and no topology)
    #[arg(long, value_name = "ADDRESS")]
    pub internal_address: Option<std::net::IpAddr>,
    /// The edge's external address (with --role edge and no topology)
    #[arg(long, value_name = "ADDRESS")]
    pub external_address: Option<std::net::IpAddr>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// The plan for this machine: from `--topology`, else `--role`, else the
/// data directory's replicated topology, else the Standard Edition default.
pub fn plan_for(
    data_dir: &Path,
    topology: Option<&Path>,
    roles: &[Role],
    fqdn: Option<&str>,
) -> anyhow::Result<Plan> {
    let from_file = match topology {
        Some(file) => Some(crate::cmd_topology::load_valid(file)?.1),
        None => None,
    };
    let replica = if from_file.is_none() && roles.is_empty() {
        LocalReplica::load(data_dir)?
    } else {
        None
    };
    let (topology, recorded_fqdn): (Option<Topology>, Option<String>) = match (from_file, replica) {
        (Some(t), _) => (Some(t), None),
        (None, Some(r)) => (r.topology()?, r.pointer.fqdn.clone()),
        (None, None) => (None, None),
    };
    let fqdn = fqdn
        .map(str::to_string)
        .or(recorded_fqdn)
        .unwrap_or_else(host_fqdn)
        .to_ascii_lowercase();
    let mut plan = match &topology {
        Some(t) => Plan::from_topology(t, &fqdn, data_dir)?,
        None if roles.is_empty() => Plan::standard_default(&fqdn, data_dir),
        None => Plan::for_roles(roles, &fqdn, data_dir),
    };
    if topology.is_some() && !roles.is_empty() {
        let missing: Vec<&str> = roles
            .iter()
            .filter(|r| !plan.roles.contains(r))
            .map(|r| r.as_str())
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} does not run {} in the topology (it runs {})",
                plan.fqdn,
                missing.join(", "),
                plan.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        plan.restrict_roles(roles);
    }
    Ok(plan)
}

/// Largest request head read from the proxy.
const MAX_HEAD: usize = 16 * 1024;

async fn proxy(a: ProxyArgs) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listening on {}", a.listen))?;
    println!(
        "Waiting up to {} s on {} for a WebSocket request through the reverse proxy, e.g.:\n  curl -i -N -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Protocol: sip' https://EXTERNAL-WEB-NAME/",
        a.timeout,
        listener.local_addr().unwrap_or(a.listen)
    );
    let (mut conn, peer) =
        tokio::time::timeout(std::time::Duration::from_secs(a.timeout), listener.accept())
            .await
            .context("no request came through the proxy in time")??;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .context("the request head did not arrive within 10 seconds")??;
    head.truncate(MAX_HEAD);
    let check = confab_prereq::proxy_headers(&String::from_utf8_lossy(&head));
    let text = format!(
        "{}  {}  {} (request from {peer})\n{}",
        check.status,
        check.id,
        check.detail,
        check
            .fix
            .as_ref()
            .map(|f| format!("      fix: {f}\n"))
            .unwrap_or_default()
    );
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
    print!("{text}");
    if check.status == confab_prereq::Status::Fail {
        bail!("the reverse proxy does not pass what confab needs");
    }
    Ok(())
}

pub async fn run(args: PrereqArgs, data_dir: &Path) -> anyhow::Result<()> {
    let a = match args.command {
        PrereqCommand::Check(a) => a,
        PrereqCommand::Proxy(p) => return proxy(p).await,
    };
    let data_dir = std::path::absolute(data_dir).context("resolving the data directory")?;
    let mut plan = plan_for(
        &data_dir,
        a.topology.as_deref(),
        &a.roles,
        a.fqdn.as_deref(),
    )?;
    if a.internal_address.is_some() || a.external_address.is_some() {
        if !plan.roles.contains(&Role::Edge) {
            bail!("--internal-address and --external-address are for an edge (--role edge)");
        }
        plan.set_edge_addresses(a.internal_address, a.external_address);
    }
    let outcome = confab_prereq::run(&SystemHost, &plan).await;
    if a.json {
        let v = serde_json::json!({
            "fqdn": outcome.fqdn,
            "pool": outcome.pool,
            "edition": outcome.edition,
            "roles": outcome.roles,
            "checks": outcome.checks,
            "summary": {
                "pass": outcome.count(confab_prereq::Status::Pass),
                "warn": outcome.count(confab_prereq::Status::Warn),
                "fail": outcome.count(confab_prereq::Status::Fail),
            },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", outcome.render());
    }
    let failed = outcome.count(confab_prereq::Status::Fail);
    if failed > 0 {
        bail!("{failed} prerequisite check(s) failed");
    }
    Ok(())
}
