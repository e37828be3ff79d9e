//! confab's deployment model, after Lync Server 2013's topology.
//!
//! A topology file (TOML) names the SIP domains, sites, stores and pools of a
//! deployment; each pool has an edition and machines, each machine its roles.
//! [`Topology::parse`] reads it keeping every value's position,
//! [`validate`] applies the Topology Builder's rules and names the line of each
//! failure, and [`cms::CentralStore`] keeps published versions in the central
//! management store (tables `cms_*` in the back-end database: SQLite for
//! Standard Edition, PostgreSQL for Enterprise). [`local::LocalReplica`] is the
//! copy a bootstrapped machine keeps in its data directory.

pub mod cms;
pub mod db;
pub mod diff;
pub mod local;
pub mod model;
pub mod starter;
pub mod validate;

pub use model::{
    ChatState, DatabaseId, Edition, Gateway, GatewayTransport, Listener, Machine, MachineRef, Pool,
    Protocol, Role, Scope, Site, Store, StoreKind, StoreLocation, Topology,
};
pub use validate::{Diagnostic, Report, Severity, validate};

use std::path::PathBuf;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{}{message}", location(*line, *column))]
    Parse {
        message: String,
        line: Option<usize>,
        column: Option<usize>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {url}: {source}")]
    Database {
        /// The URL with any password hidden.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the topology has {0} error(s); run `confab topology validate` to see them")]
    Invalid(usize),
    #[error("no topology has been published to the central management store yet")]
    NotPublished,
    #[error("topology version {0} does not exist in the central management store")]
    NoSuchVersion(i64),
    #[error("another topology was published at the same time; publish again")]
    Conflict,
    #[error("{0}")]
    Other(String),
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl TopologyError {
    pub(crate) fn db(url: &str, source: sqlx::Error) -> Self {
        TopologyError::Database {
            url: db::redact(url),
            source,
        }
    }

    /// The line of a parse error, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            TopologyError::Parse { line, .. } => *line,
            _ => None,
        }
    }

    /// The column of a parse error, if known.
    pub fn column(&self) -> Option<usize> {
        match self {
            TopologyError::Parse { column, .. } => *column,
            _ => None,
        }
    }
}

/// Parses and validates in one step, as `topology validate` does.
pub fn load(source: &str) -> Result<(Topology, Report), TopologyError> {
    let t = Topology::parse(source)?;
    let report = validate(&t, source);
    Ok((t, report))
}
