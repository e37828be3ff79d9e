//! The numbers behind the checks. docs/system-requirements.md presents the same
//! tables; keep them in step.

use confab_topology::{Edition, Role};

/// Architectures (`uname -m`) confab supports: 64-bit only.
pub const SUPPORTED_MACHINES: &[&str] = &[
    "x86_64",
    "amd64",
    "aarch64",
    "arm64",
    "riscv64",
    "ppc64le",
    "s390x",
    "loongarch64",
];

/// Kernel releases below this fail.
pub const KERNEL_MINIMUM: (u32, u32) = (4, 18);
/// Kernel releases below this (and at least the minimum) warn.
pub const KERNEL_RECOMMENDED: (u32, u32) = (5, 10);
/// glibc versions below this fail.
pub const GLIBC_MINIMUM: (u32, u32) = (2, 28);
/// glibc versions below this (and at least the minimum) warn.
pub const GLIBC_RECOMMENDED: (u32, u32) = (2, 31);
/// musl versions below this warn.
pub const MUSL_RECOMMENDED: (u32, u32) = (1, 2);
/// PostgreSQL versions below this (`server_version_num`) fail.
pub const POSTGRES_MINIMUM: u32 = 130_000;

/// A supported distribution: os-release `ID` (or an `ID_LIKE` entry) and the
/// supported `VERSION_ID` major versions.
pub struct Distribution {
    pub ids: &'static [&'static str],
    pub name: &'static str,
    pub versions: &'static [&'static str],
}

/// Distributions confab is tested on and supports.
pub const SUPPORTED_DISTRIBUTIONS: &[Distribution] = &[
    Distribution {
        ids: &["debian"],
        name: "Debian",
        versions: &["12", "13"],
    },
    Distribution {
        ids: &["ubuntu"],
        name: "Ubuntu LTS",
        versions: &["22.04", "24.04"],
    },
    Distribution {
        ids: &["rhel", "rocky", "almalinux", "centos"],
        name: "Red Hat Enterprise Linux, Rocky Linux, AlmaLinux",
        versions: &["9", "10"],
    },
    Distribution {
        ids: &["sles", "opensuse-leap"],
        name: "SUSE Linux Enterprise Server, openSUSE Leap",
        versions: &["15"],
    },
];

/// Clock skew that warns (seconds): well before NTLM's 15 minutes.
pub const CLOCK_SKEW_WARN: f64 = 60.0;
/// Clock skew that fails (seconds): NTLM and Kerberos reject more than 15 minutes.
pub const CLOCK_SKEW_FAIL: f64 = 15.0 * 60.0;

/// Certificates that expire sooner than this warn.
pub const CERT_EXPIRY_WARN_DAYS: i64 = 30;

/// Hardware of one role: below `min_*` fails, below `rec_*` warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardware {
    pub min_cpus: usize,
    pub min_memory_gib: u64,
    pub rec_cpus: usize,
    pub rec_memory_gib: u64,
}

pub fn hardware(role: Role, edition: Edition) -> Hardware {
    let (rec_cpus, rec_memory_gib) = match (role, edition) {
        (Role::FrontEnd, Edition::Standard) => (4, 8),
        (Role::FrontEnd, Edition::Enterprise) => (4, 8),
        (Role::Director, _) => (2, 4),
        (Role::Edge, _) => (4, 4),
        (Role::PersistentChat, _) => (4, 8),
        (Role::Mediation, _) => (2, 4),
    };
    Hardware {
        min_cpus: 1,
        min_memory_gib: 1,
        rec_cpus,
        rec_memory_gib,
    }
}

/// The planned load of one machine, from the topology or the role's design
/// capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Load {
    /// Users homed on this front end.
    pub homed_users: u64,
    /// Remote users through this edge or director.
    pub remote_users: u64,
    /// Active Persistent Chat users on this server.
    pub chat_users: u64,
}

/// File descriptors confab keeps for itself (logs, stores, listeners).
pub const BASE_FILES: u64 = 1024;
/// File descriptors a mediation server needs (gateway and media sockets).
pub const MEDIATION_FILES: u64 = 3072;

/// The open-file limit the roles need for their load: one connection per user
/// plus one spare per homed user (subscriptions, conferences), one and a half per
/// remote user through an edge (access plus media relay), one per remote user
/// through a director, and one per four active chat users (their traffic comes
/// multiplexed over the front ends' connections).
pub fn open_files(roles: &[Role], load: Load) -> u64 {
    let mut n = BASE_FILES;
    for r in roles {
        n += match r {
            Role::FrontEnd => load.homed_users.saturating_mul(2),
            Role::Director => load.remote_users,
            Role::Edge => load.remote_users.saturating_mul(3) / 2,
            Role::PersistentChat => load.chat_users / 4,
            Role::Mediation => MEDIATION_FILES,
        };
    }
    n
}

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Free disk space: below `minimum` fails, below `recommended` warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub minimum: u64,
    pub recommended: u64,
}

/// Disk space for the data directory: logs and state, plus a local SQLite back
/// end (about 1 MiB per homed user) and a local file store.
pub fn disk(local_sqlite_users: Option<u64>, local_file_store: bool) -> Disk {
    let mut recommended = 2 * GIB;
    if let Some(users) = local_sqlite_users {
        recommended += users.saturating_mul(MIB);
    }
    if local_file_store {
        recommended += 10 * GIB;
    }
    Disk {
        minimum: 512 * MIB,
        recommended,
    }
}

/// Parses the leading `major.minor` of a version string.
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}
