//! The local replica a bootstrapped (or publishing) machine keeps in its data
//! directory: where the central management store is, which topology version it
//! was prepared from and the text of that version.
//!
//! `<data>/topology/cms.toml` holds the location and version,
//! `<data>/topology/current.toml` the topology itself.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::TopologyError;
use crate::model::{MachineRef, Role, Topology};

pub const DIR: &str = "topology";
pub const POINTER_FILE: &str = "cms.toml";
pub const TOPOLOGY_FILE: &str = "current.toml";

/// Where the central management store is, as recorded in the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    /// sqlx URL of the central management store.
    pub url: String,
    /// Topology version this machine was last prepared from (0: none yet).
    #[serde(default)]
    pub version: i64,
    /// FQDN this machine has in the topology, when bootstrapped.
    #[serde(default)]
    pub fqdn: Option<String>,
}

/// The pointer plus the topology text of its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReplica {
    pub pointer: Pointer,
    /// The published topology text, when a version was replicated.
    pub source: Option<String>,
}

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TopologyError + '_ {
    move |source| TopologyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, TopologyError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes a file (mode 0600: the URL may carry a password) unless it already has
/// exactly this content. Returns whether it changed.
fn write_if_changed(path: &Path, content: &str) -> Result<bool, TopologyError> {
    if read_opt(path)?.as_deref() == Some(content) {
        return Ok(false);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(content.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    Ok(true)
}

impl LocalReplica {
    /// Reads the replica; `None` when this data directory has none.
    pub fn load(data_dir: &Path) -> Result<Option<LocalReplica>, TopologyError> {
        let d = dir(data_dir);
        let pointer_path = d.join(POINTER_FILE);
        let Some(text) = read_opt(&pointer_path)? else {
            return Ok(None);
        };
        let pointer: Pointer = toml::from_str(&text).map_err(|e| {
            TopologyError::Other(format!("{}: {}", pointer_path.display(), e.message()))
        })?;
        let source = read_opt(&d.join(TOPOLOGY_FILE))?;
        Ok(Some(LocalReplica { pointer, source }))
    }

    /// Writes the replica. Returns whether anything changed on disk.
    pub fn save(&self, data_dir: &Path) -> Result<bool, TopologyError> {
        let d = dir(data_dir);
        fs::create_dir_all(&d).map_err(io(&d))?;
        let text = toml::to_string(&self.pointer)
            .map_err(|e| TopologyError::Other(format!("serializing {POINTER_FILE}: {e}")))?;
        let mut changed = write_if_changed(&d.join(POINTER_FILE), &text)?;
        if let Some(source) = &self.source {
            changed |= write_if_changed(&d.join(TOPOLOGY_FILE), source)?;
        }
        Ok(changed)
    }

    /// The replicated topology, parsed.
    pub fn topology(&self) -> Result<Option<Topology>, TopologyError> {
        self.source.as_deref().map(Topology::parse).transpose()
    }
}

/// What `confab serve` needs to know: the roles the published topology gives
/// this machine. `Ok(None)` when the data directory has no replicated topology
/// (the zero-configuration Standard Edition default applies).
pub fn local_roles(data_dir: &Path, fqdn: &str) -> Result<Option<LocalRoles>, TopologyError> {
    let Some(replica) = LocalReplica::load(data_dir)? else {
        return Ok(None);
    };
    let Some(topology) = replica.topology()? else {
        return Ok(None);
    };
    let fqdn = replica
        .pointer
        .fqdn
        .clone()
        .unwrap_or_else(|| fqdn.to_string());
    let machine = topology.machine(&fqdn).ok_or_else(|| {
        TopologyError::Other(format!(
            "machine {fqdn} is not in topology version {}",
            replica.pointer.version
        ))
    })?;
    Ok(Some(LocalRoles::from_machine(
        machine,
        replica.pointer.version,
    )))
}

/// The roles and pool of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoles {
    pub fqdn: String,
    pub pool: String,
    pub edition: crate::Edition,
    pub roles: Vec<Role>,
    pub listeners: Vec<crate::Listener>,
    pub version: i64,
}

impl LocalRoles {
    pub fn from_machine(m: MachineRef<'_>, version: i64) -> Self {
        LocalRoles {
            fqdn: m.machine.fqdn().to_ascii_lowercase(),
            pool: m.pool.fqdn().to_ascii_lowercase(),
            edition: m.pool.edition(),
            roles: m.machine.roles(),
            listeners: m.machine.listeners(),
            version,
        }
    }
}
