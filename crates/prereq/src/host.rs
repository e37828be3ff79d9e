//! Facts about the machine, behind [`Host`] so that the checks can be tested
//! against fakes. [`SystemHost`] reads the real ones: `/proc`, `uname`,
//! `getrlimit`, `statvfs`, `/etc/os-release`, the C library, the preload list,
//! the clock synchronization status and the stores.

use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use confab_tls::CertInfo;
use confab_topology::Protocol;

/// CPU architecture facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchFacts {
    /// `uname -m`, e.g. `x86_64`, `aarch64`.
    pub machine: String,
    /// Pointer width of this build of confab.
    pub pointer_width: u32,
}

/// `/etc/os-release`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    /// Parses os-release text (`KEY=value`, optionally quoted).
    pub fn parse(text: &str) -> OsRelease {
        let mut out = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => out.id = v.to_ascii_lowercase(),
                "ID_LIKE" => {
                    out.id_like = v.split_whitespace().map(str::to_ascii_lowercase).collect()
                }
                "VERSION_ID" => out.version_id = v,
                "PRETTY_NAME" => out.pretty_name = v,
                _ => {}
            }
        }
        out
    }
}

/// The C library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libc {
    /// `glibc` or `musl`.
    pub name: String,
    pub version: String,
}

/// Operating system facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsFacts {
    /// `uname -s`, e.g. `Linux`.
    pub kernel_name: String,
    /// `uname -r`, e.g. `6.1.0-18-amd64`.
    pub kernel_release: String,
    pub os_release: Option<OsRelease>,
    pub libc: Option<Libc>,
}

/// Processor and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardwareFacts {
    pub cpus: usize,
    /// Total memory in bytes, when known.
    pub memory_bytes: Option<u64>,
}

/// The open-file limit (`None` stands for unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Whether a port can be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    Free,
    InUse,
    /// Binding is not permitted (e.g. a port below 1024 without
    /// CAP_NET_BIND_SERVICE).
    Denied(String),
    /// The address is not configured on this machine.
    AddressMissing,
    Unknown(String),
}

/// Clock synchronization.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockFacts {
    /// Synchronized; `offset` is the estimated offset in seconds when known.
    Synced {
        source: String,
        offset: Option<f64>,
    },
    NotSynced {
        source: String,
    },
    Unknown(String),
}

/// The certificate in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFacts {
    Missing,
    Unreadable(String),
    Present(CertInfo),
}

/// A SQLite file (or directory) store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathFacts {
    /// The path exists and is writable.
    Writable,
    /// The path does not exist; the nearest existing ancestor is writable, so it
    /// can be created.
    Creatable,
    NotWritable(String),
}

/// A PostgreSQL server.
#[derive(Debug, Clone, PartialEq)]
pub enum PostgresFacts {
    Reachable {
        /// `server_version_num`, e.g. 150004.
        version_num: u32,
        /// Whether the database the URL names exists already.
        database_exists: bool,
        /// Server clock minus local clock, in seconds.
        clock_offset: Option<f64>,
    },
    Unreachable(String),
}

/// Pending operating-system updates, from the distribution's package manager
/// (its local package lists: no network needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateFacts {
    Known {
        /// How they were found, e.g. `apt-get -s upgrade`.
        tool: String,
        /// Packages with a pending security update.
        security: Vec<String>,
        /// Other pending updates.
        other: usize,
        /// The command that applies them.
        apply: String,
    },
    /// The package manager could not tell; `how` says how to look by hand.
    Unknown { why: String, how: String },
}

/// The environment of the confab service: of a running `confab serve`
/// (`/proc/PID/environ`) or of its systemd unit (`Environment=`,
/// `EnvironmentFile=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEnv {
    /// Where it was read, e.g. `confab serve (pid 812)` or a unit file.
    pub source: String,
    /// Its `LD_PRELOAD`, or why it could not be read.
    pub ld_preload: Result<Option<String>, String>,
}

/// The filesystem a path is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsFacts {
    Missing,
    /// A local filesystem (ext4, xfs, tmpfs, overlay, …): its name.
    Local(String),
    /// A network or cluster filesystem (NFS, SMB, CephFS, GlusterFS, …).
    Shared(String),
}

/// The facts the checks need.
pub trait Host {
    fn arch(&self) -> ArchFacts;
    fn os(&self) -> OsFacts;
    fn hardware(&self) -> HardwareFacts;
    fn file_limit(&self) -> Option<FileLimit>;
    /// Bytes available to unprivileged users on the filesystem holding `path`
    /// (or its nearest existing ancestor).
    fn disk_available(&self, path: &Path) -> Option<u64>;
    fn port(&self, protocol: Protocol, addr: SocketAddr) -> PortState;
    fn clock(&self) -> ClockFacts;
    /// The `LD_PRELOAD` of this process (the command line's own environment):
    /// consulted only when no confab service is found, as a hint, since a
    /// service started from this shell would inherit it.
    fn ld_preload_env(&self) -> Option<String>;
    /// The contents of `/etc/ld.so.preload`.
    fn ld_so_preload(&self) -> Option<String>;
    fn certificate(&self, path: &Path) -> CertFacts;
    /// Whether a file (SQLite) or directory (file store) can be written.
    fn path_writable(&self, path: &Path, directory: bool) -> PathFacts;
    fn postgres(&self, url: &str) -> impl Future<Output = PostgresFacts> + Send;
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
    /// Pending updates of the operating system.
    fn updates(&self) -> UpdateFacts;
    /// The environments of the confab service found on this machine (none when
    /// neither a running `confab serve` nor a systemd unit was found).
    fn service_environments(&self) -> Vec<ServiceEnv>;
    /// The filesystem `path` is on.
    fn filesystem(&self, path: &Path) -> FsFacts;
    /// Where the shared library `soname` (e.g. `libopus.so.0`) is installed.
    fn shared_library(&self, soname: &str) -> Option<PathBuf>;
    /// Permission bits of a file (`None` when it does not exist).
    fn file_mode(&self, path: &Path) -> Option<u32>;
}

/// The real machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemHost;

fn cstr(s: &std::ffi::CStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Runs a command with a deadline; `None` when it cannot run, times out or
/// fails. Returns stdout followed by stderr.
pub fn run_command(program: &str, args: &[&str], timeout: Duration) -> Option<(bool, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .ok()?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut out);
    }
    Some((status.success(), out))
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Finds a `N.N[.N]` version after `marker` (or anywhere when `marker` is empty).
fn version_after(text: &str, marker: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = if marker.is_empty() {
        0
    } else {
        lower.find(&marker.to_ascii_lowercase())? + marker.len()
    };
    let rest = text.get(start..)?;
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches('.').to_string())
}

/// Detects the C library from `getconf GNU_LIBC_VERSION` or `ldd --version`.
pub fn parse_libc(getconf: Option<&str>, ldd: Option<&str>) -> Option<Libc> {
    if let Some(g) = getconf
        && let Some(v) = version_after(g, "glibc")
    {
        return Some(Libc {
            name: "glibc".into(),
            version: v,
        });
    }
    let ldd = ldd?;
    let lower = ldd.to_ascii_lowercase();
    if lower.contains("musl") {
        return version_after(ldd, "version").map(|version| Libc {
            name: "musl".into(),
            version,
        });
    }
    if lower.contains("glibc") || lower.contains("gnu libc") || lower.contains("gnu c library") {
        let first = ldd.lines().next().unwrap_or("");
        // "ldd (Debian GLIBC 2.36-9+deb12u4) 2.36": the last number on the line.
        let v = first
            .split_whitespace()
            .rev()
            .find_map(|w| version_after(w, ""))?;
        return Some(Libc {
            name: "glibc".into(),
            version: v,
        });
    }
    None
}

/// Parses `chronyc tracking` output.
pub fn parse_chrony(text: &str) -> Option<ClockFacts> {
    let mut leap = None;
    let mut offset = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "Leap status" => leap = Some(v.trim().to_string()),
            "System time" => {
                // "0.000012345 seconds slow of NTP time"
                let mut words = v.split_whitespace();
                let n = words.next().and_then(|w| f64::from_str(w).ok());
                let dir = v.contains("fast");
                offset = n.map(|n| if dir { n } else { -n });
            }
            _ => {}
        }
    }
    let leap = leap?;
    let source = "chronyc tracking".to_string();
    Some(if leap.eq_ignore_ascii_case("Not synchronised") {
        ClockFacts::NotSynced { source }
    } else {
        ClockFacts::Synced { source, offset }
    })
}

impl SystemHost {
    fn nearest_existing(path: &Path) -> Option<PathBuf> {
        let mut p = path.to_path_buf();
        loop {
            if p.exists() {
                return Some(p);
            }
            if !p.pop() {
                return None;
            }
            if p.as_os_str().is_empty() {
                return Some(PathBuf::from("."));
            }
        }
    }

    fn dir_writable(dir: &Path) -> Result<(), String> {
        let probe = dir.join(format!(".confab-write-test-{}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(f) => {
                drop(f);
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Err(e) => Err(format!("{}: {e}", dir.display())),
        }
    }
}

async fn probe_postgres(url: &str) -> PostgresFacts {
    use sqlx::{ConnectOptions, Connection, Row};
    let opts = match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => return PostgresFacts::Unreachable(format!("bad URL: {e}")),
    };
    let timeout = Duration::from_secs(10);
    let mut database_exists = true;
    let mut conn = match tokio::time::timeout(timeout, opts.connect()).await {
        Err(_) => return PostgresFacts::Unreachable("no answer within 10 seconds".into()),
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let missing_db = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "3D000");
            if !missing_db {
                return PostgresFacts::Unreachable(e.to_string());
            }
            database_exists = false;
            let maint = opts.clone().database("postgres");
            match tokio::time::timeout(timeout, maint.connect()).await {
                Err(_) => return PostgresFacts::Unreachable("no answer within 10 seconds".into()),
                Ok(Err(e)) => return PostgresFacts::Unreachable(e.to_string()),
                Ok(Ok(c)) => c,
            }
        }
    };
    let before = now_f64();
    let row = sqlx::query(
        "SELECT current_setting('server_version_num'), EXTRACT(EPOCH FROM clock_timestamp())::float8",
    )
    .fetch_one(&mut conn)
    .await;
    let after = now_f64();
    let _ = conn.close().await;
    let row = match row {
        Ok(r) => r,
        Err(e) => return PostgresFacts::Unreachable(e.to_string()),
    };
    let version: String = match row.try_get(0) {
        Ok(v) => v,
        Err(e) => return PostgresFacts::Unreachable(e.to_string()),
    };
    let server_time: Option<f64> = row.try_get(1).ok();
    let version_num = version.trim().parse::<u32>().unwrap_or(0);
    PostgresFacts::Reachable {
        version_num,
        database_exists,
        clock_offset: server_time.map(|t| t - (before + after) / 2.0),
    }
}

fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Host for SystemHost {
    fn arch(&self) -> ArchFacts {
        let u = rustix::system::uname();
        ArchFacts {
            machine: cstr(u.machine()),
            pointer_width: usize::BITS,
        }
    }

    fn os(&self) -> OsFacts {
        let u = rustix::system::uname();
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .ok()
            .map(|t| OsRelease::parse(&t));
        let getconf = run_command("getconf", &["GNU_LIBC_VERSION"], COMMAND_TIMEOUT)
            .filter(|(ok, _)| *ok)
            .map(|(_, out)| out);
        let libc = match parse_libc(getconf.as_deref(), None) {
            Some(l) => Some(l),
            None => {
                let ldd = run_command("ldd", &["--version"], COMMAND_TIMEOUT).map(|(_, o)| o);
                parse_libc(None, ldd.as_deref())
            }
        };
        OsFacts {
            kernel_name: cstr(u.sysname()),
            kernel_release: cstr(u.release()),
            os_release,
            libc,
        }
    }

    fn hardware(&self) -> HardwareFacts {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        HardwareFacts { cpus, memory_bytes }
    }

    fn file_limit(&self) -> Option<FileLimit> {
        let r = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        Some(FileLimit {
            soft: r.current,
            hard: r.maximum,
        })
    }

    fn disk_available(&self, path: &Path) -> Option<u64> {
        let p = Self::nearest_existing(path)?;
        let s = rustix::fs::statvfs(&p).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }

    fn port(&self, protocol: Protocol, addr: SocketAddr) -> PortState {
        // Bind with SO_REUSEADDR and without listening: this fails against a
        // listening server but not against another probe of the same port.
        let (ty, proto) = match protocol {
            Protocol::Tcp => (socket2::Type::STREAM, socket2::Protocol::TCP),
            Protocol::Udp => (socket2::Type::DGRAM, socket2::Protocol::UDP),
        };
        let result = socket2::Socket::new(socket2::Domain::for_address(addr), ty, Some(proto))
            .and_then(|s| {
                s.set_reuse_address(true)?;
                s.bind(&addr.into())
            });
        match result {
            Ok(()) => PortState::Free,
            Err(e) => match e.kind() {
                std::io::ErrorKind::AddrInUse => PortState::InUse,
                std::io::ErrorKind::PermissionDenied => PortState::Denied(e.to_string()),
                std::io::ErrorKind::AddrNotAvailable => PortState::AddressMissing,
                _ => PortState::Unknown(e.to_string()),
            },
        }
    }

    fn clock(&self) -> ClockFacts {
        let mut tried = Vec::new();
        match run_command(
            "timedatectl",
            &["show", "-p", "NTPSynchronized", "--value"],
            COMMAND_TIMEOUT,
        ) {
            Some((true, out)) if out.trim() == "yes" => {
                return ClockFacts::Synced {
                    source: "timedatectl".into(),
                    offset: None,
                };
            }
            Some((true, out)) if out.trim() == "no" => {
                return ClockFacts::NotSynced {
                    source: "timedatectl".into(),
                };
            }
            Some((_, out)) => tried.push(format!(
                "timedatectl: {}",
                out.lines().next().unwrap_or("no answer").trim()
            )),
            None => tried.push("timedatectl: not available".into()),
        }
        match run_command("chronyc", &["-n", "tracking"], COMMAND_TIMEOUT) {
            Some((true, out)) => {
                if let Some(f) = parse_chrony(&out) {
                    return f;
                }
                tried.push("chronyc: unrecognized output".into());
            }
            Some((false, out)) => tried.push(format!(
                "chronyc: {}",
                out.lines().next().unwrap_or("failed").trim()
            )),
            None => tried.push("chronyc: not available".into()),
        }
        match run_command("ntpstat", &[], COMMAND_TIMEOUT) {
            Some((true, _)) => {
                return ClockFacts::Synced {
                    source: "ntpstat".into(),
                    offset: None,
                };
            }
            Some((false, out)) if out.contains("unsynchronised") => {
                return ClockFacts::NotSynced {
                    source: "ntpstat".into(),
                };
            }
            Some(_) => tried.push("ntpstat: no answer".into()),
            None => tried.push("ntpstat: not available".into()),
        }
        if Path::new("/run/systemd/timesync/synchronized").exists() {
            return ClockFacts::Synced {
                source: "systemd-timesyncd".into(),
                offset: None,
            };
        }
        ClockFacts::Unknown(tried.join("; "))
    }

    fn ld_preload_env(&self) -> Option<String> {
        std::env::var("LD_PRELOAD")
            .ok()
            .filter(|v| !v.trim().is_empty())
    }

    fn ld_so_preload(&self) -> Option<String> {
        std::fs::read_to_string("/etc/ld.so.preload")
            .ok()
            .filter(|v| {
                v.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
            })
    }

    fn certificate(&self, path: &Path) -> CertFacts {
        if !path.exists() {
            return CertFacts::Missing;
        }
        match confab_tls::cert_info(path) {
            Ok(info) => CertFacts::Present(info),
            Err(e) => CertFacts::Unreadable(e.to_string()),
        }
    }

    fn path_writable(&self, path: &Path, directory: bool) -> PathFacts {
        if path.exists() {
            if directory {
                return match Self::dir_writable(path) {
                    Ok(()) => PathFacts::Writable,
                    Err(e) => PathFacts::NotWritable(e),
                };
            }
            return match std::fs::OpenOptions::new().append(true).open(path) {
                Ok(_) => PathFacts::Writable,
                Err(e) => PathFacts::NotWritable(format!("{}: {e}", path.display())),
            };
        }
        let Some(parent) = path.parent().and_then(Self::nearest_existing) else {
            return PathFacts::NotWritable(format!("{}: no existing parent", path.display()));
        };
        if !parent.is_dir() {
            return PathFacts::NotWritable(format!("{} is not a directory", parent.display()));
        }
        match Self::dir_writable(&parent) {
            Ok(()) => PathFacts::Creatable,
            Err(e) => PathFacts::NotWritable(e),
        }
    }

    fn postgres(&self, url: &str) -> impl Future<Output = PostgresFacts> + Send {
        let url = url.to_string();
        async move { probe_postgres(&url).await }
    }

    fn now(&self) -> i64 {
        confab_tls::unix_now()
    }

    fn updates(&self) -> UpdateFacts {
        system_updates()
    }

    fn service_environments(&self) -> Vec<ServiceEnv> {
        let mut out = running_services(Path::new("/proc"), "confab");
        out.extend(unit_environments(SYSTEMD_UNIT_DIRS, "confab.service"));
        out
    }

    fn filesystem(&self, path: &Path) -> FsFacts {
        if !path.exists() {
            return FsFacts::Missing;
        }
        match rustix::fs::statfs(path) {
            // f_type's width differs between architectures.
            #[allow(clippy::unnecessary_cast)]
            Ok(s) => classify_fs(s.f_type as i64),
            Err(e) => FsFacts::Local(format!("unknown ({e})")),
        }
    }

    fn shared_library(&self, soname: &str) -> Option<PathBuf> {
        let machine = cstr(rustix::system::uname().machine());
        let multiarch = format!("{machine}-linux-gnu");
        let dirs = [
            format!("/usr/lib/{multiarch}"),
            format!("/lib/{multiarch}"),
            "/usr/lib64".to_string(),
            "/lib64".to_string(),
            "/usr/lib".to_string(),
            "/lib".to_string(),
            "/usr/local/lib".to_string(),
        ];
        dirs.iter()
            .map(|d| Path::new(d).join(soname))
            .find(|p| p.exists())
    }

    fn file_mode(&self, path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
}

/// Where systemd looks for unit files, most specific first.
pub const SYSTEMD_UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Network and cluster filesystems (`statfs` `f_type`): one store every
/// machine mounting it sees.
const SHARED_FILESYSTEMS: &[(i64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x00C3_6400, "ceph"),
    (0x6573_5546, "fuse (e.g. glusterfs)"),
    (0x0102_1997, "9p"),
    (0x5346_414F, "afs"),
    (0x7461_636F, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0x0BD0_0BD0, "lustre"),
];

const LOCAL_FILESYSTEMS: &[(i64, &str)] = &[
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x0102_1994, "tmpfs"),
    (0x794C_7630, "overlay"),
    (0x2FC1_2FC1, "zfs"),
    (0xF2F5_2010, "f2fs"),
];

/// Names a filesystem type and says whether it is shared between machines.
pub fn classify_fs(f_type: i64) -> FsFacts {
    let f_type = f_type & 0xFFFF_FFFF;
    if let Some((_, n)) = SHARED_FILESYSTEMS.iter().find(|(t, _)| *t == f_type) {
        return FsFacts::Shared((*n).to_string());
    }
    match LOCAL_FILESYSTEMS.iter().find(|(t, _)| *t == f_type) {
        Some((_, n)) => FsFacts::Local((*n).to_string()),
        None => FsFacts::Local(format!("type {f_type:#x}")),
    }
}

/// `LD_PRELOAD` in a `NUL`-separated environment block (`/proc/PID/environ`).
pub fn preload_in_environ(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("LD_PRELOAD="))
        .map(str::to_string)
        .filter(|v| !v.trim().is_empty())
}

/// Processes under `proc_root` whose command is `name` running `serve`, with
/// their `LD_PRELOAD` (this process excluded).
pub fn running_services(proc_root: &Path, name: &str) -> Vec<ServiceEnv> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = e.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let serves = cmdline.split(|b| *b == 0).any(|a| a == b"serve");
        if !serves {
            continue;
        }
        let ld_preload = match std::fs::read(dir.join("environ")) {
            Ok(env) => Ok(preload_in_environ(&env)),
            Err(err) => Err(format!(
                "cannot read its environment ({err}); run the check as root or as the service's user"
            )),
        };
        out.push(ServiceEnv {
            source: format!("{name} serve (pid {pid})"),
            ld_preload,
        });
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    out
}

/// A `KEY=value` assignment.
pub type EnvVar = (String, String);
/// An `EnvironmentFile=` path and whether it is optional (`-` prefix).
pub type EnvFile = (String, bool);

/// The `KEY=value` assignments of a unit's `Environment=` lines (quoted or
/// not) and the files its `EnvironmentFile=` lines name (`-` prefix: optional).
pub fn parse_unit_environment(unit: &str) -> (Vec<EnvVar>, Vec<EnvFile>) {
    let mut vars = Vec::new();
    let mut files = Vec::new();
    for line in unit.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Environment=") {
            for word in split_quoted(v) {
                if let Some((k, val)) = word.split_once('=') {
                    vars.push((k.to_string(), val.to_string()));
                }
            }
        } else if let Some(f) = line.strip_prefix("EnvironmentFile=") {
            let f = f.trim();
            match f.strip_prefix('-') {
                Some(opt) => files.push((opt.to_string(), true)),
                None => files.push((f.to_string(), false)),
            }
        }
    }
    (vars, files)
}

/// Splits on whitespace, keeping double- or single-quoted words together.
fn split_quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `KEY=value` lines of an environment file (`#` comments, optional quotes).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            Some((
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            ))
        })
        .collect()
}

/// The environment the systemd unit `unit` (with its drop-ins) gives the
/// service: the first unit directory holding it wins, as in systemd.
pub fn unit_environments(dirs: &[&str], unit: &str) -> Vec<ServiceEnv> {
    let Some(main) = dirs
        .iter()
        .map(|d| Path::new(d).join(unit))
        .find(|p| p.is_file())
    else {
        return Vec::new();
    };
    let mut parts = vec![main.clone()];
    for d in dirs {
        let dropins = Path::new(d).join(format!("{unit}.d"));
        if let Ok(entries) = std::fs::read_dir(&dropins) {
            let mut confs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            confs.sort();
            parts.extend(confs);
        }
    }
    let mut preload: Option<String> = None;
    let mut problems = Vec::new();
    for part in &parts {
        let Ok(text) = std::fs::read_to_string(part) else {
            problems.push(format!("cannot read {}", part.display()));
            continue;
        };
        let (vars, files) = parse_unit_environment(&text);
        for (k, v) in vars {
            if k == "LD_PRELOAD" {
                preload = Some(v);
            }
        }
        for (f, optional) in files {
            match std::fs::read_to_string(&f) {
                Ok(t) => {
                    for (k, v) in parse_env_file(&t) {
                        if k == "LD_PRELOAD" {
                            preload = Some(v);
                        }
                    }
                }
                Err(_) if optional => {}
                Err(e) => problems.push(format!("cannot read EnvironmentFile {f}: {e}")),
            }
        }
    }
    let ld_preload = if problems.is_empty() {
        Ok(preload.filter(|v| !v.trim().is_empty()))
    } else {
        Err(problems.join("; "))
    };
    vec![ServiceEnv {
        source: format!("systemd unit {}", main.display()),
        ld_preload,
    }]
}

/// Timeout of the package manager's simulation.
const UPDATES_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses `apt-get -s upgrade`: each `Inst PACKAGE [OLD] (NEW ORIGINS [ARCH])`
/// line is a pending update, a security one when an origin is a security
/// pocket (`Debian-Security:…`, `…-security`).
pub fn parse_apt_simulation(text: &str) -> (Vec<String>, usize) {
    let mut security = Vec::new();
    let mut other = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap_or("").to_string();
        let origins = rest.split_once('(').map(|(_, o)| o).unwrap_or("");
        if origins.to_ascii_lowercase().contains("security") {
            security.push(name);
        } else {
            other += 1;
        }
    }
    (security, other)
}

/// Whether an APT suite is a security pocket (`bookworm-security`,
/// `noble-security`, the older `buster/updates`).
fn security_suite(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// The security sources of an APT configuration: one-line `.list` entries and
/// deb822 `.sources` stanzas reduced to their security suites. Returns the
/// deb822 text of those sources (one-line entries are converted), or `None`
/// when there is none.
pub fn apt_security_sources(lists: &[String], deb822: &[String]) -> Option<String> {
    let mut out = String::new();
    for text in lists {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"deb") {
                continue;
            }
            // `deb [options] URI SUITE COMPONENTS…`
            let mut options = String::new();
            if words.get(1).is_some_and(|w| w.starts_with('[')) {
                let end = words.iter().position(|w| w.ends_with(']')).unwrap_or(1);
                options = words[1..=end].join(" ");
                words.drain(1..=end);
            }
            let (Some(uri), Some(suite)) = (words.get(1), words.get(2)) else {
                continue;
            };
            if !security_suite(suite) {
                continue;
            }
            out.push_str(&format!(
                "Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: {}\n",
                words[3..].join(" ")
            ));
            let options = options.trim_start_matches('[').trim_end_matches(']');
            for opt in options.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    out.push_str(&format!("Signed-By: {v}\n"));
                }
                if let Some(v) = opt.strip_prefix("arch=") {
                    out.push_str(&format!("Architectures: {v}\n"));
                }
            }
            out.push('\n');
        }
    }
    for text in deb822 {
        for stanza in text.split("\n\n") {
            let lines: Vec<&str> = stanza
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect();
            let field = |name: &str| {
                lines.iter().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            if field("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
                continue;
            }
            if !field("Types").is_some_and(|t| t.split_whitespace().any(|w| w == "deb")) {
                continue;
            }
            let Some(suites) = field("Suites") else {
                continue;
            };
            let security: Vec<&str> = suites
                .split_whitespace()
                .filter(|s| security_suite(s))
                .collect();
            if security.is_empty() {
                continue;
            }
            for l in &lines {
                let key = l.split(':').next().unwrap_or("").trim();
                if key.eq_ignore_ascii_case("Suites") {
                    out.push_str(&format!("Suites: {}\n", security.join(" ")));
                } else if key.eq_ignore_ascii_case("Types") {
                    out.push_str("Types: deb\n");
                } else {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            out.push('\n');
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `apt-get -s upgrade` against the security sources only: quicker than the
/// whole simulation, and every pending update it lists is a security one.
/// `None` when the sources cannot be isolated (the caller falls back to the
/// whole simulation).
fn apt_security_only() -> Option<UpdateFacts> {
    let read_dir = |ext: &str| -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    };
    let mut lists = read_dir("list");
    if let Ok(main) = std::fs::read_to_string("/etc/apt/sources.list") {
        lists.push(main);
    }
    let sources = apt_security_sources(&lists, &read_dir("sources"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp =
        std::env::temp_dir().join(format!("confab-prereq-apt-{}-{nanos}", std::process::id()));
    let parts = tmp.join("sources.list.d");
    let empty = tmp.join("sources.list");
    let prepared = std::fs::create_dir_all(&parts)
        .and_then(|_| std::fs::write(parts.join("security.sources"), &sources))
        .and_then(|_| std::fs::write(&empty, ""));
    let result = prepared.ok().and_then(|_| {
        let list_opt = format!("Dir::Etc::SourceList={}", empty.display());
        let parts_opt = format!("Dir::Etc::SourceParts={}", parts.display());
        run_command(
            "apt-get",
            &["-s", "-q", "-o", &list_opt, "-o", &parts_opt, "upgrade"],
            UPDATES_TIMEOUT,
        )
    });
    let _ = std::fs::remove_dir_all(&tmp);
    match result {
        Some((true, out)) => {
            let (mut security, other) = parse_apt_simulation(&out);
            // Only security sources were given: every update is one.
            let names: Vec<String> = out
                .lines()
                .filter_map(|l| l.strip_prefix("Inst "))
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect();
            if other > 0 {
                security = names;
            }
            Some(UpdateFacts::Known {
                tool: "apt-get -s upgrade against the security sources (the local package lists)"
                    .into(),
                security,
                other: 0,
                apply: "apt-get update && apt-get upgrade (as root), or enable unattended-upgrades"
                    .into(),
            })
        }
        _ => None,
    }
}

/// Parses `dnf updateinfo list --security` (`ADVISORY SEVERITY/sec PACKAGE` lines).
pub fn parse_dnf_security(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[1].to_ascii_lowercase().contains("sec")).then(|| w[2].to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn system_updates() -> UpdateFacts {
    let has = |p: &str| {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(p).exists())
    };
    if has("apt-get") {
        if let Some(facts) = apt_security_only() {
            return facts;
        }
        return match run_command("apt-get", &["-s", "-q", "upgrade"], UPDATES_TIMEOUT) {
            Some((true, out)) => {
                let (security, other) = parse_apt_simulation(&out);
                UpdateFacts::Known {
                    tool: "apt-get -s upgrade (the local package lists)".into(),
                    security,
                    other,
                    apply:
                        "apt-get update && apt-get upgrade (as root), or enable unattended-upgrades"
                            .into(),
                }
            }
            Some((false, out)) => UpdateFacts::Unknown {
                why: format!(
                    "apt-get -s upgrade failed: {}",
                    out.lines().last().unwrap_or("").trim()
                ),
                how: "run `apt-get update && apt-get -s upgrade` as root".into(),
            },
            None => UpdateFacts::Unknown {
                why: format!(
                    "apt-get -s upgrade did not answer within {} seconds",
                    UPDATES_TIMEOUT.as_secs()
                ),
                how: "run `apt-get -s upgrade` and look for -security origins".into(),
            },
        };
    }
    if has("dnf") {
        return match run_command(
            "dnf",
            &["-q", "-C", "updateinfo", "list", "--security"],
            UPDATES_TIMEOUT,
        ) {
            Some((true, out)) => UpdateFacts::Known {
                tool: "dnf -C updateinfo list --security (the local metadata cache)".into(),
                security: parse_dnf_security(&out),
                other: 0,
                apply: "dnf upgrade --security (as root)".into(),
            },
            _ => UpdateFacts::Unknown {
                why: "dnf has no cached update metadata".into(),
                how: "run `dnf updateinfo list --security` as root".into(),
            },
        };
    }
    if has("zypper") {
        return UpdateFacts::Unknown {
            why: "zypper needs the repositories to list patches".into(),
            how: "run `zypper list-patches --category security` and apply them with `zypper patch --category security`".into(),
        };
    }
    UpdateFacts::Unknown {
        why: "no known package manager (apt-get, dnf, zypper)".into(),
        how: "apply the distribution's security updates with its own tools".into(),
    }
}

/// This machine's fully qualified name: the kernel host name when it has a dot,
/// else `hostname -f`, else host name plus NIS domain, else the host name.
pub fn host_fqdn() -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty() && s != "(none)")
    };
    let short = read("/proc/sys/kernel/hostname")
        .unwrap_or_else(|| cstr(rustix::system::uname().nodename()).to_ascii_lowercase());
    if short.contains('.') {
        return short;
    }
    if let Some((true, out)) = run_command("hostname", &["-f"], COMMAND_TIMEOUT) {
        let f = out.lines().next().unwrap_or("").trim().to_ascii_lowercase();
        if f.contains('.') && !f.contains(' ') {
            return f;
        }
    }
    if let Some(domain) = read("/proc/sys/kernel/domainname") {
        return format!("{short}.{domain}");
    }
    short
}

/// The address a listener binds: the given one, or every IPv4 address.
pub fn bind_addr(ip: Option<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_detection() {
        let g = parse_libc(Some("glibc 2.36\n"), None).unwrap();
        assert_eq!((g.name.as_str(), g.version.as_str()), ("glibc", "2.36"));
        let l = parse_libc(
            None,
            Some("ldd (Debian GLIBC 2.36-9+deb12u4) 2.36\nCopyright (C) 2022"),
        )
        .unwrap();
        assert_eq!(l.version, "2.36");
        let l = parse_libc(None, Some("ldd (GNU libc) 2.34\n")).unwrap();
        assert_eq!(l.version, "2.34");
        let m = parse_libc(
            None,
            Some("musl libc (x86_64)\nVersion 1.2.4\nDynamic Program Loader\n"),
        )
        .unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("musl", "1.2.4"));
        assert!(parse_libc(None, Some("something else")).is_none());
        assert!(parse_libc(None, None).is_none());
    }

    #[test]
    fn os_release_parsing() {
        let o = OsRelease::parse(
            "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nbad line\n",
        );
        assert_eq!(o.id, "ubuntu");
        assert_eq!(o.id_like, vec!["debian"]);
        assert_eq!(o.version_id, "24.04");
        assert_eq!(o.pretty_name, "Ubuntu 24.04 LTS");
    }

    #[test]
    fn chrony_parsing() {
        let synced = "Reference ID    : C0A80001 (ntp)\nStratum         : 3\nSystem time     : 0.000120 seconds slow of NTP time\nLeap status     : Normal\n";
        match parse_chrony(synced).unwrap() {
            ClockFacts::Synced { offset, .. } => assert_eq!(offset, Some(-0.00012)),
            other => panic!("{other:?}"),
        }
        let not =
            "System time     : 0.0 seconds fast of NTP time\nLeap status     : Not synchronised\n";
        assert!(matches!(
            parse_chrony(not).unwrap(),
            ClockFacts::NotSynced { .. }
        ));
        assert!(parse_chrony("506 Cannot talk to daemon").is_none());
    }

    #[test]
    fn real_host_answers_without_panicking() {
        let h = SystemHost;
        assert_eq!(h.arch().pointer_width, 64);
        assert!(!h.os().kernel_release.is_empty());
        assert!(h.hardware().cpus >= 1);
        let dir = tempfile::tempdir().unwrap();
        assert!(h.disk_available(&dir.path().join("a/b/c")).is_some());
        assert_eq!(
            h.path_writable(&dir.path().join("x.db"), false),
            PathFacts::Creatable
        );
        assert_eq!(h.path_writable(dir.path(), true), PathFacts::Writable);
        assert_eq!(
            h.certificate(&dir.path().join("none.pem")),
            CertFacts::Missing
        );
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(h.port(Protocol::Tcp, addr), PortState::InUse);
        drop(l);
        let _ = h.clock();
        assert!(!host_fqdn().is_empty());
    }
}
