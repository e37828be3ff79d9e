//! confab's system requirements, checked against this machine.
//!
//! [`run`] takes a [`Plan`] (this machine's roles, stores and listeners, from the
//! topology or the zero-configuration default) and a [`Host`] (facts about the
//! machine: [`SystemHost`] for real, fakes in tests) and returns one [`Check`]
//! per requirement: pass, warn or fail, why, and how to fix it.

#[cfg(not(target_pointer_width = "64"))]
compile_error!("confab supports 64-bit targets only");

pub mod host;
pub mod lync;
pub mod plan;
pub mod requirements;

use std::fmt;

use serde::Serialize;

use confab_topology::{Edition, Role, Scope, StoreKind};

pub use host::{
    ArchFacts, CertFacts, ClockFacts, FileLimit, FsFacts, HardwareFacts, Host, Libc, OsFacts,
    OsRelease, PathFacts, PortState, PostgresFacts, ServiceEnv, SystemHost, UpdateFacts, host_fqdn,
};
pub use plan::{Bind, Plan, PlanError, StoreTarget, Target};
use requirements as req;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// The result of one requirement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable identifier, e.g. `arch`, `port:front-end.sip`, `store:backend`.
    pub id: String,
    pub status: Status,
    /// What was found, and why it passes, warns or fails.
    pub detail: String,
    /// How to fix it (warnings and failures).
    pub fix: Option<String>,
    /// The Lync Server 2013 requirements this check stands for (identifiers of
    /// [`lync::REQUIREMENTS`], docs/system-requirements.md).
    pub lync: Vec<&'static str>,
}

impl Check {
    fn pass(id: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
            lync: Vec::new(),
        }
    }

    fn warn(id: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
            lync: Vec::new(),
        }
    }

    fn fail(id: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
            lync: Vec::new(),
        }
    }
}

/// All checks for one machine.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub fqdn: String,
    pub pool: String,
    pub edition: Edition,
    pub roles: Vec<Role>,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    pub fn has_failures(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    pub fn has_warnings(&self) -> bool {
        self.count(Status::Warn) > 0
    }

    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// One line per check, a `fix:` line under each warning and failure, and a
    /// summary.
    pub fn render(&self) -> String {
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        let mut out = format!(
            "prerequisites of {} (pool {}, {} edition) for {}\n",
            self.fqdn,
            self.pool,
            self.edition,
            if roles.is_empty() {
                "no roles".to_string()
            } else {
                roles.join(", ")
            }
        );
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        for c in &self.checks {
            let lync = if c.lync.is_empty() {
                String::new()
            } else {
                format!(" [Lync: {}]", c.lync.join(", "))
            };
            out.push_str(&format!(
                "{}  {:<width$}  {}{lync}\n",
                c.status, c.id, c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("      {:<width$}  fix: {fix}\n", ""));
            }
        }
        out.push_str(&format!(
            "summary: {} pass, {} warn, {} fail\n",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }
}

/// Runs every check of `plan` against `host`.
pub async fn run<H: Host>(host: &H, plan: &Plan) -> Outcome {
    let mut checks = Vec::new();
    checks.push(arch(&host.arch()));
    let os = host.os();
    checks.push(kernel(&os));
    checks.push(libc(&os));
    checks.push(distribution(&os));
    checks.push(updates(&host.updates()));
    checks.extend(hardware(&host.hardware(), plan));
    checks.push(open_files(host.file_limit(), plan));
    checks.push(disk(host, plan));
    let mut pg_offsets = Vec::new();
    for s in &plan.stores {
        let (check, offset) = store(host, plan, s).await;
        checks.push(check);
        if let Some(o) = offset {
            pg_offsets.push((s.name.clone(), o));
        }
    }
    checks.push(clock(&host.clock(), &pg_offsets));
    if plan.needs_certificate() {
        checks.push(certificate(host, plan));
        checks.push(server_auth(host, plan));
    }
    if plan.roles.contains(&Role::FrontEnd) || plan.roles.contains(&Role::Director) {
        checks.push(web(host, plan));
    }
    if plan.roles.contains(&Role::FrontEnd) {
        checks.push(media_runtime(host, plan));
    }
    if plan.roles.contains(&Role::PersistentChat) {
        checks.push(chat_delivery(plan));
    }
    if plan.roles.contains(&Role::Edge) {
        checks.push(edge_addresses(plan));
    }
    for b in &plan.binds {
        checks.push(port(host, b));
    }
    if plan.roles.iter().any(|r| r.handles_media()) {
        checks.push(preload(
            &host.service_environments(),
            host.ld_preload_env(),
            host.ld_so_preload(),
        ));
    }
    for c in &mut checks {
        c.lync = lync::covered_by(&c.id, &plan.roles);
    }
    Outcome {
        fqdn: plan.fqdn.clone(),
        pool: plan.pool.clone(),
        edition: plan.edition,
        roles: plan.roles.clone(),
        checks,
    }
}

/// 64-bit CPU and OS only.
pub fn arch(a: &ArchFacts) -> Check {
    let machine = a.machine.to_ascii_lowercase();
    if a.pointer_width != 64 {
        return Check::fail(
            "arch",
            format!(
                "this build of confab is {}-bit; confab runs 64-bit only",
                a.pointer_width
            ),
            "install the 64-bit build of confab",
        );
    }
    if req::SUPPORTED_MACHINES.contains(&machine.as_str()) {
        Check::pass("arch", format!("{} (64-bit)", a.machine))
    } else {
        Check::fail(
            "arch",
            format!("{} is not a supported 64-bit architecture", a.machine),
            format!(
                "run confab on a 64-bit CPU and kernel: {}",
                req::SUPPORTED_MACHINES.join(", ")
            ),
        )
    }
}

fn version_text(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

/// Linux, at a supported kernel release.
pub fn kernel(os: &OsFacts) -> Check {
    if !os.kernel_name.eq_ignore_ascii_case("linux") {
        return Check::fail(
            "kernel",
            format!("{} is not supported; confab runs on Linux", os.kernel_name),
            "run confab on one of the supported Linux distributions (docs/system-requirements.md)",
        );
    }
    let Some(v) = req::major_minor(&os.kernel_release) else {
        return Check::warn(
            "kernel",
            format!("cannot read the kernel release {:?}", os.kernel_release),
            "check `uname -r`; confab needs Linux 4.18 or later, 5.10 or later recommended",
        );
    };
    if v < req::KERNEL_MINIMUM {
        Check::fail(
            "kernel",
            format!(
                "Linux {} is older than the minimum {}",
                os.kernel_release,
                version_text(req::KERNEL_MINIMUM)
            ),
            "upgrade to a supported distribution (docs/system-requirements.md)",
        )
    } else if v < req::KERNEL_RECOMMENDED {
        Check::warn(
            "kernel",
            format!(
                "Linux {} is supported but older than the recommended {}",
                os.kernel_release,
                version_text(req::KERNEL_RECOMMENDED)
            ),
            "plan an upgrade to a kernel of 5.10 or later",
        )
    } else {
        Check::pass("kernel", format!("Linux {}", os.kernel_release))
    }
}

/// The C library.
pub fn libc(os: &OsFacts) -> Check {
    let Some(l) = &os.libc else {
        return Check::warn(
            "libc",
            "cannot tell the C library version (`getconf GNU_LIBC_VERSION` and `ldd --version` gave nothing)",
            "make sure glibc 2.31 or later (or musl 1.2 or later) is installed",
        );
    };
    let Some(v) = req::major_minor(&l.version) else {
        return Check::warn(
            "libc",
            format!("cannot read the {} version {:?}", l.name, l.version),
            "make sure glibc 2.31 or later (or musl 1.2 or later) is installed",
        );
    };
    match l.name.as_str() {
        "musl" if v < req::MUSL_RECOMMENDED => Check::warn(
            "libc",
            format!("musl {} is older than 1.2", l.version),
            "upgrade musl to 1.2 or later",
        ),
        "musl" => Check::pass("libc", format!("musl {}", l.version)),
        _ if v < req::GLIBC_MINIMUM => Check::fail(
            "libc",
            format!(
                "glibc {} is older than the minimum {}",
                l.version,
                version_text(req::GLIBC_MINIMUM)
            ),
            "upgrade to a supported distribution (docs/system-requirements.md)",
        ),
        _ if v < req::GLIBC_RECOMMENDED => Check::warn(
            "libc",
            format!(
                "glibc {} is supported but older than the recommended {}",
                l.version,
                version_text(req::GLIBC_RECOMMENDED)
            ),
            "plan an upgrade to a distribution with glibc 2.31 or later",
        ),
        _ => Check::pass("libc", format!("glibc {}", l.version)),
    }
}

/// The distribution, against the documented list.
pub fn distribution(os: &OsFacts) -> Check {
    let Some(r) = &os.os_release else {
        return Check::warn(
            "distribution",
            "no /etc/os-release: cannot tell the distribution",
            "use a supported distribution (docs/system-requirements.md)",
        );
    };
    let name = if r.pretty_name.is_empty() {
        format!("{} {}", r.id, r.version_id)
    } else {
        r.pretty_name.clone()
    };
    let major = r.version_id.split('.').next().unwrap_or("");
    for d in req::SUPPORTED_DISTRIBUTIONS {
        if !d.ids.contains(&r.id.as_str()) {
            continue;
        }
        let ok = d
            .versions
            .iter()
            .any(|v| *v == r.version_id || (!v.contains('.') && *v == major));
        return if ok {
            Check::pass("distribution", format!("{name} (supported)"))
        } else {
            Check::warn(
                "distribution",
                format!(
                    "{name}: this release is not on the supported list ({} {})",
                    d.name,
                    d.versions.join(", ")
                ),
                "use a supported release; confab may still work if the kernel and C library checks pass",
            )
        };
    }
    Check::warn(
        "distribution",
        format!("{name} is not a tested distribution"),
        "supported: Debian 12/13, Ubuntu 22.04/24.04, RHEL-compatible 9/10, SLES/openSUSE Leap 15; others work when the kernel and C library checks pass",
    )
}

const GIB: u64 = 1024 * 1024 * 1024;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / GIB as f64)
}

/// CPUs and memory for the roles (the largest requirement of collocated roles).
pub fn hardware(h: &HardwareFacts, plan: &Plan) -> Vec<Check> {
    let mut need = req::Hardware {
        min_cpus: 1,
        min_memory_gib: 1,
        rec_cpus: 1,
        rec_memory_gib: 1,
    };
    for r in &plan.roles {
        let x = req::hardware(*r, plan.edition);
        need.min_cpus = need.min_cpus.max(x.min_cpus);
        need.min_memory_gib = need.min_memory_gib.max(x.min_memory_gib);
        need.rec_cpus = need.rec_cpus.max(x.rec_cpus);
        need.rec_memory_gib = need.rec_memory_gib.max(x.rec_memory_gib);
    }
    let cpu = if h.cpus < need.min_cpus {
        Check::fail(
            "cpu",
            format!("{} CPU(s); at least {} needed", h.cpus, need.min_cpus),
            "give the machine more CPUs",
        )
    } else if h.cpus < need.rec_cpus {
        Check::warn(
            "cpu",
            format!(
                "{} CPU(s); {} recommended for {} at full capacity",
                h.cpus,
                need.rec_cpus,
                role_list(&plan.roles)
            ),
            format!(
                "give the machine {} CPUs, or plan for fewer users",
                need.rec_cpus
            ),
        )
    } else {
        Check::pass("cpu", format!("{} CPU(s)", h.cpus))
    };
    let mem = match h.memory_bytes {
        None => Check::warn(
            "memory",
            "cannot read the memory size from /proc/meminfo",
            format!(
                "make sure the machine has {} GiB of memory",
                need.rec_memory_gib
            ),
        ),
        Some(m) if m < need.min_memory_gib * GIB * 9 / 10 => Check::fail(
            "memory",
            format!("{}; at least {} GiB needed", gib(m), need.min_memory_gib),
            "give the machine more memory",
        ),
        Some(m) if m < need.rec_memory_gib * GIB * 9 / 10 => Check::warn(
            "memory",
            format!(
                "{}; {} GiB recommended for {} at full capacity",
                gib(m),
                need.rec_memory_gib,
                role_list(&plan.roles)
            ),
            format!(
                "give the machine {} GiB, or plan for fewer users",
                need.rec_memory_gib
            ),
        ),
        Some(m) => Check::pass("memory", gib(m)),
    };
    vec![cpu, mem]
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The open-file limit against the roles' capacity.
pub fn open_files(limit: Option<FileLimit>, plan: &Plan) -> Check {
    let need = req::open_files(&plan.roles, plan.load);
    let fix = format!(
        "raise it to {need} or more: `LimitNOFILE={need}` in the systemd unit, or `ulimit -n {need}` / a nofile line in /etc/security/limits.conf"
    );
    let Some(l) = limit else {
        return Check::warn("open-files", "cannot read the open-file limit", fix);
    };
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    let soft_ok = l.soft.is_none_or(|s| s >= need);
    let hard_ok = l.hard.is_none_or(|h| h >= need);
    let mut parts = Vec::new();
    for r in &plan.roles {
        let part = match r {
            Role::FrontEnd => format!("{} homed users", plan.load.homed_users),
            Role::Director | Role::Edge => format!("{} remote users", plan.load.remote_users),
            Role::PersistentChat => format!("{} active chat users", plan.load.chat_users),
            Role::Mediation => "mediation".to_string(),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    let load = if parts.is_empty() {
        "no roles".to_string()
    } else {
        parts.join(", ")
    };
    if soft_ok {
        Check::pass(
            "open-files",
            format!("limit {} (needs {need} for {load})", show(l.soft)),
        )
    } else if hard_ok {
        Check::warn(
            "open-files",
            format!(
                "soft limit {} is below the {need} needed for {load} (hard limit {})",
                show(l.soft),
                show(l.hard)
            ),
            fix,
        )
    } else {
        Check::fail(
            "open-files",
            format!(
                "hard limit {} is below the {need} needed for {load}",
                show(l.hard)
            ),
            fix,
        )
    }
}

/// Free disk space for the data directory and local stores.
pub fn disk<H: Host>(host: &H, plan: &Plan) -> Check {
    let mut sqlite_users = None;
    let mut file_store = false;
    for s in &plan.stores {
        match (&s.target, s.kind) {
            (Target::Sqlite(_), StoreKind::BackEnd) => {
                sqlite_users = Some(plan.load.homed_users);
            }
            (Target::Directory(_), _) => file_store = true,
            _ => {}
        }
    }
    let need = req::disk(sqlite_users, file_store);
    let Some(free) = host.disk_available(&plan.data_dir) else {
        return Check::warn(
            "disk",
            format!("cannot tell the free space at {}", plan.data_dir.display()),
            format!(
                "make sure {} are free for the data directory",
                gib(need.recommended)
            ),
        );
    };
    let at = plan.data_dir.display();
    if free < need.minimum {
        Check::fail(
            "disk",
            format!(
                "{} free at {at}; at least {} needed",
                gib(free),
                gib(need.minimum)
            ),
            "free space or move the data directory (--data) to a larger filesystem",
        )
    } else if free < need.recommended {
        Check::warn(
            "disk",
            format!(
                "{} free at {at}; {} recommended for the stores",
                gib(free),
                gib(need.recommended)
            ),
            "free space or move the data directory (--data) to a larger filesystem",
        )
    } else {
        Check::pass(
            "disk",
            format!(
                "{} free at {at} ({} recommended)",
                gib(free),
                gib(need.recommended)
            ),
        )
    }
}

/// One store: the SQLite file or file store writable, PostgreSQL reachable at a
/// supported version. Returns the PostgreSQL clock offset when measured.
pub async fn store<H: Host>(host: &H, plan: &Plan, s: &StoreTarget) -> (Check, Option<f64>) {
    let id = format!("store:{}", s.name);
    match &s.target {
        Target::Directory(path) if plan.edition == Edition::Enterprise => {
            (shared_file_store(host, plan, &id, path), None)
        }
        Target::Sqlite(path) | Target::Directory(path) => {
            let dir = matches!(s.target, Target::Directory(_));
            let what = if dir { "directory" } else { "SQLite file" };
            let check = match host.path_writable(path, dir) {
                PathFacts::Writable => Check::pass(
                    id,
                    format!("{} {what} {} is writable", s.kind, path.display()),
                ),
                PathFacts::Creatable => Check::pass(
                    id,
                    format!(
                        "{} {what} {} does not exist yet; it can be created{}",
                        s.kind,
                        path.display(),
                        if plan.bootstrap {
                            " and bootstrap will"
                        } else {
                            " (confab bootstrap does)"
                        }
                    ),
                ),
                PathFacts::NotWritable(why) => Check::fail(
                    id,
                    format!(
                        "{} {what} {} is not writable: {why}",
                        s.kind,
                        path.display()
                    ),
                    "run confab as a user that owns the data directory, or fix the permissions (chown/chmod)",
                ),
            };
            (check, None)
        }
        Target::Postgres(url) => {
            let shown = confab_topology::db::redact(url);
            match host.postgres(url).await {
                PostgresFacts::Unreachable(why) => (
                    Check::fail(
                        id,
                        format!("{} store at {shown} is unreachable: {why}", s.kind),
                        "check the URL, that PostgreSQL runs and listens there (listen_addresses, pg_hba.conf), and the password",
                    ),
                    None,
                ),
                PostgresFacts::Reachable {
                    version_num,
                    database_exists,
                    clock_offset,
                } => {
                    let version = format!("{}.{}", version_num / 10_000, version_num % 10_000);
                    let check = if version_num < req::POSTGRES_MINIMUM {
                        Check::fail(
                            id,
                            format!(
                                "{} store at {shown}: PostgreSQL {version} is older than the minimum 13",
                                s.kind
                            ),
                            "upgrade PostgreSQL to 13 or later",
                        )
                    } else if database_exists {
                        Check::pass(
                            id,
                            format!("{} store at {shown}: PostgreSQL {version}", s.kind),
                        )
                    } else {
                        Check::pass(
                            id,
                            format!(
                                "{} store at {shown}: PostgreSQL {version}; the database does not exist yet{}",
                                s.kind,
                                if plan.bootstrap {
                                    " and bootstrap will create it"
                                } else {
                                    " (confab bootstrap creates it)"
                                }
                            ),
                        )
                    };
                    (check, clock_offset)
                }
            }
        }
    }
}

/// An Enterprise pool's file store: one store shared by every front end, so a
/// network or cluster filesystem mounted at the same path on each.
fn shared_file_store<H: Host>(host: &H, plan: &Plan, id: &str, path: &std::path::Path) -> Check {
    let at = path.display();
    let mount = format!(
        "mount the pool's one shared file store (NFS, SMB, CephFS, GlusterFS) at {at} on every front end of pool {}",
        plan.pool
    );
    match host.filesystem(path) {
        FsFacts::Missing => Check::fail(
            id,
            format!(
                "the shared file store {at} is not there: bootstrap would create a folder of this front end's own"
            ),
            mount,
        ),
        FsFacts::Local(fs) => Check::warn(
            id,
            format!(
                "the file store {at} is on a local filesystem ({fs}): unless every front end of pool {} mounts this same store, each keeps its own files",
                plan.pool
            ),
            mount,
        ),
        FsFacts::Shared(fs) => match host.path_writable(path, true) {
            PathFacts::NotWritable(why) => Check::fail(
                id,
                format!("the shared file store {at} ({fs}) is not writable: {why}"),
                "give the confab service's user write access on the share",
            ),
            _ => Check::pass(id, format!("shared file store {at} ({fs}), writable")),
        },
    }
}

/// The clock: synchronized, and within NTLM's 15 minutes (warning well before)
/// of the PostgreSQL servers when they were reached.
pub fn clock(c: &ClockFacts, pg_offsets: &[(String, f64)]) -> Check {
    let worst = pg_offsets
        .iter()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
    let fix_sync = "run a time service (chrony or systemd-timesyncd) against the same NTP servers as the other machines";
    if let Some((store, off)) = worst {
        let a = off.abs();
        let text = format!("{a:.1} s from the PostgreSQL server of store {store}");
        if a >= req::CLOCK_SKEW_FAIL {
            return Check::fail(
                "clock",
                format!("clock is {text}: NTLM and Kerberos reject more than 15 minutes of skew"),
                fix_sync,
            );
        }
        if a >= req::CLOCK_SKEW_WARN {
            return Check::warn(
                "clock",
                format!("clock is {text}; sign-in fails at 15 minutes"),
                fix_sync,
            );
        }
    }
    match c {
        ClockFacts::Synced { source, offset } => {
            if let Some(o) = offset
                && o.abs() >= req::CLOCK_SKEW_WARN
            {
                return Check::warn(
                    "clock",
                    format!("synchronized ({source}) but {:.1} s off", o.abs()),
                    fix_sync,
                );
            }
            let off = offset
                .map(|o| format!(", offset {:.3} s", o))
                .unwrap_or_default();
            let pg = worst
                .map(|(s, o)| format!(", {:.1} s from store {s}", o.abs()))
                .unwrap_or_default();
            Check::pass("clock", format!("synchronized ({source}{off}{pg})"))
        }
        ClockFacts::NotSynced { source } => Check::warn(
            "clock",
            format!("not synchronized ({source}); NTLM sign-in fails beyond 15 minutes of skew"),
            fix_sync,
        ),
        ClockFacts::Unknown(why) => Check::warn(
            "clock",
            format!(
                "synchronization unknown ({why}){}",
                worst
                    .map(|(s, o)| format!("; {:.1} s from store {s}", o.abs()))
                    .unwrap_or_default()
            ),
            format!("{fix_sync}; NTLM sign-in fails beyond 15 minutes of skew"),
        ),
    }
}

/// The certificate: present (or to be created by bootstrap), valid now, and
/// naming the pool FQDN.
pub fn certificate<H: Host>(host: &H, plan: &Plan) -> Check {
    let path = plan.cert_path.display().to_string();
    let names = plan.certificate_names();
    let replace = format!(
        "put a PEM certificate (leaf first) in {path} and its key in {}, with SAN entries {}",
        confab_tls::key_path(&plan.data_dir).display(),
        names.join(", ")
    );
    match host.certificate(&plan.cert_path) {
        CertFacts::Missing if plan.bootstrap => Check::pass(
            "certificate",
            format!(
                "none at {path}; bootstrap creates a self-signed one for {}",
                names.join(", ")
            ),
        ),
        CertFacts::Missing => Check::warn(
            "certificate",
            format!("no certificate at {path}"),
            format!("run `confab bootstrap` to create a self-signed one, or {replace}"),
        ),
        CertFacts::Unreadable(why) => Check::fail("certificate", why, replace),
        CertFacts::Present(info) => {
            let now = host.now();
            let pool = names.first().cloned().unwrap_or_default();
            if info.not_after <= now {
                return Check::fail(
                    "certificate",
                    format!(
                        "{path} expired on {}",
                        confab_topology::cms::format_time(info.not_after)
                    ),
                    replace,
                );
            }
            if info.not_before > now {
                return Check::fail(
                    "certificate",
                    format!(
                        "{path} is not valid before {} (check the clock too)",
                        confab_topology::cms::format_time(info.not_before)
                    ),
                    replace,
                );
            }
            if !confab_tls::san_matches(&info.sans, &pool) {
                return Check::fail(
                    "certificate",
                    format!(
                        "{path} does not name the pool FQDN {pool} in its SAN (it has: {})",
                        if info.sans.is_empty() {
                            "none".to_string()
                        } else {
                            info.sans.join(", ")
                        }
                    ),
                    replace,
                );
            }
            let missing: Vec<&String> = names
                .iter()
                .skip(1)
                .filter(|n| !confab_tls::san_matches(&info.sans, n))
                .collect();
            if !missing.is_empty() {
                return Check::warn(
                    "certificate",
                    format!(
                        "{path} names the pool but not the machine FQDN {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    replace,
                );
            }
            let days = (info.not_after - now) / 86_400;
            if days < req::CERT_EXPIRY_WARN_DAYS {
                return Check::warn(
                    "certificate",
                    format!("{path} expires in {days} day(s)"),
                    replace,
                );
            }
            let issuer = if info.self_signed {
                "self-signed: clients must be told to trust it; replace it with a CA-issued certificate for production"
            } else {
                "CA-issued"
            };
            Check::pass(
                "certificate",
                format!(
                    "{path} names {} ({issuer}), valid {days} more days",
                    names.join(", ")
                ),
            )
        }
    }
}

/// One listener: the port can be bound.
pub fn port<H: Host>(host: &H, b: &Bind) -> Check {
    let l = &b.listener;
    let id = format!("port:{}.{}", l.role, l.name);
    if b.address.is_none() && l.scope != Scope::Machine {
        let side = if l.scope == Scope::Internal {
            "internal"
        } else {
            "external"
        };
        return Check::fail(
            id,
            format!(
                "{} {} port {} binds the edge's {side} address, and none is given",
                l.protocol, l.name, l.port
            ),
            format!(
                "give the edge its {side} address: {side}_address in the topology, or --{side}-address ADDRESS"
            ),
        );
    }
    let addr = host::bind_addr(b.address, l.port);
    let what = format!("{} {}", l.protocol, addr);
    let move_fix = format!(
        "stop what uses it, or move the listener in the topology: [pool.machine.ports] {}.{} = PORT",
        l.role, l.name
    );
    match host.port(l.protocol, addr) {
        PortState::Free => Check::pass(id, format!("{what} is free")),
        PortState::InUse => Check::fail(
            id,
            format!("{what} is in use (by confab itself if it is already running here)"),
            move_fix,
        ),
        PortState::Denied(why) => Check::fail(
            id,
            format!("{what} cannot be bound: {why}"),
            format!(
                "ports below 1024 need root or CAP_NET_BIND_SERVICE (`setcap cap_net_bind_service=+ep $(command -v confab)` or AmbientCapabilities= in the systemd unit); or {move_fix}"
            ),
        ),
        PortState::AddressMissing => Check::fail(
            id,
            format!("{what}: the address is not configured on this machine"),
            "configure the address on an interface, or correct internal_address/external_address in the topology",
        ),
        PortState::Unknown(why) => Check::warn(id, format!("{what}: {why}"), move_fix),
    }
}

/// Libraries known to interpose on sockets (kernel-bypass stacks, SOCKS
/// wrappers): they break media relaying.
pub const SOCKET_INTERPOSERS: &[&str] = &[
    "libvma",
    "libxlio",
    "libonload",
    "libproxychains",
    "proxychains",
    "libtsocks",
    "libtorsocks",
    "torsocks",
    "libdsocks",
    "libsocks",
    "socksify",
    "libsocket_wrapper",
    "libsdp",
    "libredirect",
];

/// Media roles: no socket-interposing library preloaded into the confab
/// service: its environment (a running `confab serve`, the systemd unit) and
/// `/etc/ld.so.preload`. The command line's own `LD_PRELOAD` (`shell`) only
/// matters when no service is found, as what a service started from this
/// shell would inherit.
pub fn preload(services: &[ServiceEnv], shell: Option<String>, file: Option<String>) -> Check {
    let mut libs: Vec<(String, String)> = Vec::new();
    let mut unread: Vec<String> = Vec::new();
    for svc in services {
        match &svc.ld_preload {
            Ok(Some(e)) => {
                for l in e.split([' ', ':']).filter(|s| !s.trim().is_empty()) {
                    libs.push((
                        l.trim().to_string(),
                        format!("LD_PRELOAD of {}", svc.source),
                    ));
                }
            }
            Ok(None) => {}
            Err(why) => unread.push(format!("{}: {why}", svc.source)),
        }
    }
    let mut shell_libs: Vec<(String, String)> = Vec::new();
    if services.is_empty()
        && let Some(e) = &shell
    {
        for l in e.split([' ', ':']).filter(|s| !s.trim().is_empty()) {
            shell_libs.push((
                l.trim().to_string(),
                "LD_PRELOAD of this shell; a service started from it inherits it".to_string(),
            ));
        }
    }
    if let Some(f) = &file {
        for line in f.lines() {
            let line = line.split('#').next().unwrap_or("");
            for l in line.split_whitespace() {
                libs.push((l.to_string(), "/etc/ld.so.preload".to_string()));
            }
        }
    }
    let where_read = if services.is_empty() {
        "no confab service found (no running `confab serve`, no confab.service unit): /etc/ld.so.preload checked; check again once the service is installed".to_string()
    } else {
        format!(
            "read {} and /etc/ld.so.preload",
            services
                .iter()
                .map(|s| s.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let is_interposer = |l: &str| {
        let base = l.rsplit('/').next().unwrap_or(l).to_ascii_lowercase();
        SOCKET_INTERPOSERS.iter().any(|s| base.starts_with(s))
    };
    let interposers: Vec<String> = libs
        .iter()
        .filter(|(l, _)| is_interposer(l))
        .map(|(l, src)| format!("{l} ({src})"))
        .collect();
    if !interposers.is_empty() {
        return Check::fail(
            "preload",
            format!(
                "socket-interposing library preloaded into the confab service: {}; media relaying breaks under it",
                interposers.join(", ")
            ),
            "remove it from the service's environment (Environment=/EnvironmentFile= of the systemd unit) and from /etc/ld.so.preload, then restart confab",
        );
    }
    let mut notes: Vec<String> = Vec::new();
    if !libs.is_empty() {
        notes.push(format!(
            "preloaded: {}; confab cannot tell whether it interposes on sockets",
            libs.iter()
                .map(|(l, s)| format!("{l} ({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !shell_libs.is_empty() {
        notes.push(format!(
            "preloaded in this shell: {}",
            shell_libs
                .iter()
                .map(|(l, s)| format!("{l} ({s})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !unread.is_empty() {
        notes.push(format!("could not read: {}", unread.join("; ")));
    }
    if notes.is_empty() {
        return Check::pass("preload", format!("no library preloaded ({where_read})"));
    }
    let shell_interposer = shell_libs.iter().any(|(l, _)| is_interposer(l));
    Check::warn(
        "preload",
        format!("{} ({where_read})", notes.join("; ")),
        if shell_interposer {
            "do not start confab from a shell with a socket-interposing LD_PRELOAD; run it as a systemd service with a clean environment"
        } else {
            "media roles must not run under a socket-interposing library: remove it for the confab service unless you know it leaves sockets alone (run the check as root to read the service's environment)"
        },
    )
}

/// Patch level: the distribution's pending security updates (Lync: apply
/// every update before installing).
pub fn updates(u: &UpdateFacts) -> Check {
    match u {
        UpdateFacts::Known {
            tool,
            security,
            other,
            apply,
        } if security.is_empty() => Check::pass(
            "updates",
            format!(
                "no pending security update ({tool}){}",
                if *other > 0 {
                    format!("; {other} other update(s) pending")
                } else {
                    String::new()
                }
            ),
        )
        .with_fix_if(*other > 0, apply),
        UpdateFacts::Known {
            tool,
            security,
            other,
            apply,
        } => {
            let shown: Vec<&str> = security.iter().take(8).map(String::as_str).collect();
            let more = security.len().saturating_sub(shown.len());
            Check::warn(
                "updates",
                format!(
                    "{} pending security update(s): {}{} ({tool}{})",
                    security.len(),
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    if *other > 0 {
                        format!("; {other} other update(s)")
                    } else {
                        String::new()
                    }
                ),
                format!("apply them before deploying: {apply}"),
            )
        }
        UpdateFacts::Unknown { why, how } => Check::warn(
            "updates",
            format!("cannot tell the pending security updates: {why}"),
            how.clone(),
        ),
    }
}

impl Check {
    /// Adds `fix` to a passing check as advice.
    fn with_fix_if(mut self, cond: bool, fix: &str) -> Check {
        if cond {
            self.fix = Some(fix.to_string());
        }
        self
    }
}

/// The deployment's trust anchors for server-to-server authentication.
pub fn ca_path(plan: &Plan) -> std::path::PathBuf {
    confab_tls::tls_dir(&plan.data_dir).join("ca.pem")
}

/// Server-to-server authentication (Lync: Windows Identity Foundation, OAuth
/// between servers): confab's servers authenticate each other with mutual TLS,
/// each presenting its certificate and verifying the peer's against the
/// deployment's CA in `DATA/tls/ca.pem`.
pub fn server_auth<H: Host>(host: &H, plan: &Plan) -> Check {
    if plan.peers.is_empty() {
        return Check::pass(
            "server-auth",
            "a single server: no other server to authenticate",
        );
    }
    let shown: Vec<&str> = plan.peers.iter().take(4).map(String::as_str).collect();
    let peers = format!(
        "{}{}",
        shown.join(", "),
        if plan.peers.len() > shown.len() {
            format!(" and {} more", plan.peers.len() - shown.len())
        } else {
            String::new()
        }
    );
    let ca = ca_path(plan);
    let ca_shown = ca.display();
    let fix_ca = format!(
        "put the certificate(s) of the CA that issues every server's certificate (PEM) in {ca_shown}, and give each server a certificate from it (see `certificate`)"
    );
    let ca_name = match host.certificate(&ca) {
        CertFacts::Missing => {
            return Check::warn(
                "server-auth",
                format!(
                    "servers authenticate each other with mutual TLS; {ca_shown} (the deployment CA, to verify {peers}) is missing"
                ),
                fix_ca,
            );
        }
        CertFacts::Unreadable(why) => {
            return Check::fail("server-auth", format!("{ca_shown}: {why}"), fix_ca);
        }
        CertFacts::Present(info) if info.not_after <= host.now() => {
            return Check::fail(
                "server-auth",
                format!("the deployment CA in {ca_shown} has expired"),
                fix_ca,
            );
        }
        CertFacts::Present(info) => info
            .common_name
            .clone()
            .unwrap_or_else(|| "the deployment CA".into()),
    };
    match host.certificate(&plan.cert_path) {
        CertFacts::Present(info) if !info.self_signed => Check::pass(
            "server-auth",
            format!(
                "mutual TLS with {peers}: a CA-issued certificate, peers verified against {ca_name} ({ca_shown})"
            ),
        ),
        CertFacts::Present(_) | CertFacts::Missing => Check::warn(
            "server-auth",
            format!(
                "this server's certificate is (or bootstrap makes it) self-signed: {peers} cannot verify it against {ca_name}"
            ),
            "give this server a certificate issued by the deployment CA (DATA/tls/cert.pem and key.pem)",
        ),
        CertFacts::Unreadable(why) => Check::fail(
            "server-auth",
            format!("this server's certificate cannot be read: {why}"),
            "see the `certificate` check",
        ),
    }
}

/// The web services (Lync: IIS and its modules) of front ends and directors:
/// the web listener, the TLS key's protection and the authentication modes.
pub fn web<H: Host>(host: &H, plan: &Plan) -> Check {
    let listener = plan
        .binds
        .iter()
        .find(|b| b.listener.name == "web")
        .map(|b| format!("tcp port {}", b.listener.port))
        .unwrap_or_else(|| "no web listener".into());
    let key = confab_tls::key_path(&plan.data_dir);
    let modes = "authentication: NTLM or digest inside SIP over WebSocket (Windows authentication), anonymous /health, /metrics for the monitoring system only (keep it off the reverse proxy)";
    match host.file_mode(&key) {
        None if plan.bootstrap => Check::pass(
            "web",
            format!(
                "web services on {listener}; bootstrap creates {} readable by the service only; {modes}",
                key.display()
            ),
        ),
        None => Check::warn(
            "web",
            format!(
                "web services on {listener}: no TLS key at {}",
                key.display()
            ),
            "run `confab bootstrap`, or install the certificate's key there (mode 0600)",
        ),
        Some(mode) if mode & 0o077 != 0 => Check::fail(
            "web",
            format!(
                "the TLS key {} is readable by others (mode {mode:04o})",
                key.display()
            ),
            format!("chmod 600 {}", key.display()),
        ),
        Some(_) => Check::pass(
            "web",
            format!(
                "web services on {listener}; TLS key {} readable by the service only; {modes}",
                key.display()
            ),
        ),
    }
}

/// The directory of the audio files the applications play (announcements,
/// music on hold).
pub fn audio_dir(plan: &Plan) -> std::path::PathBuf {
    plan.data_dir.join("audio")
}

/// The codec library the media engine decodes Opus audio files with.
pub const OPUS_LIBRARY: &str = "libopus.so.0";

/// The media runtime of the audio applications (Lync: Windows Media Format
/// Runtime for Call Park, Announcement, Response Group and conferencing): the
/// audio files folder and the Opus codec library.
pub fn media_runtime<H: Host>(host: &H, plan: &Plan) -> Check {
    let dir = audio_dir(plan);
    let folder = match host.path_writable(&dir, true) {
        PathFacts::Writable => format!("audio files folder {} writable", dir.display()),
        PathFacts::Creatable => format!("audio files folder {} can be created", dir.display()),
        PathFacts::NotWritable(why) => {
            return Check::fail(
                "media-runtime",
                format!(
                    "audio files folder {} is not writable: {why}",
                    dir.display()
                ),
                "let the confab service's user own the data directory",
            );
        }
    };
    match host.shared_library(OPUS_LIBRARY) {
        Some(p) => Check::pass(
            "media-runtime",
            format!("{folder}; Opus codec {}", p.display()),
        ),
        None => Check::warn(
            "media-runtime",
            format!("{folder}; the Opus codec library ({OPUS_LIBRARY}) is not installed"),
            "install it for announcements and music on hold: `apt-get install libopus0` (Debian, Ubuntu), `dnf install opus` (RHEL-compatible), `zypper install libopus0` (SUSE); WAV (PCM, G.711) files need nothing",
        ),
    }
}

/// Reliable delivery from the chat service to compliance (Lync: Message
/// Queuing on Persistent Chat servers): an outbox in the chat store, copied to
/// the separate compliance store and acknowledged.
pub fn chat_delivery(plan: &Plan) -> Check {
    if !plan.compliance {
        return Check::pass(
            "chat-delivery",
            "compliance is off for this pool: nothing to deliver",
        );
    }
    let chat = plan.stores.iter().find(|s| {
        s.kind == StoreKind::PersistentChat
            || (plan.edition == Edition::Standard && s.kind == StoreKind::BackEnd)
    });
    let compliance = plan.stores.iter().find(|s| s.kind == StoreKind::Compliance);
    let (Some(chat), Some(comp)) = (chat, compliance) else {
        return Check::fail(
            "chat-delivery",
            "compliance is on, but this server has no Persistent Chat store and compliance store to deliver between",
            "name persistent_chat_store and compliance_store on the Persistent Chat pool",
        );
    };
    let same = match (&chat.target, &comp.target) {
        (Target::Postgres(a), Target::Postgres(b)) => {
            confab_topology::model::postgres_database_id(a)
                == confab_topology::model::postgres_database_id(b)
        }
        (a, b) => a == b,
    };
    if same {
        return Check::fail(
            "chat-delivery",
            format!(
                "the compliance store {:?} is the same database as the chat store {:?}: a record could be lost with the message it records",
                comp.name, chat.name
            ),
            "give the compliance store a database of its own",
        );
    }
    Check::pass(
        "chat-delivery",
        format!(
            "messages reach compliance through an outbox in store {:?}, copied to store {:?} and acknowledged (at least once, idempotent); both are checked above",
            chat.name, comp.name
        ),
    )
}

/// The headers confab needs from a reverse proxy in front of its web port, on
/// the head of a WebSocket request that came through it.
pub fn proxy_headers(head: &str) -> Check {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines().skip(1) {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let has_token = |name: &str, token: &str| {
        get(name)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let forwarded = get("forwarded").to_ascii_lowercase();
    let mut missing: Vec<&str> = Vec::new();
    if !has_token("upgrade", "websocket") {
        missing.push("`Upgrade: websocket` (proxy_set_header Upgrade $http_upgrade)");
    }
    if !has_token("connection", "upgrade") {
        missing.push("`Connection: upgrade` (proxy_set_header Connection \"upgrade\")");
    }
    if !has_token("sec-websocket-protocol", "sip") {
        missing.push("`Sec-WebSocket-Protocol: sip` (pass the client's Sec-WebSocket-* headers)");
    }
    if get("host").is_empty() {
        missing.push("`Host` (proxy_set_header Host $host)");
    }
    if get("x-forwarded-for").is_empty() && !forwarded.contains("for=") {
        missing.push(
            "`X-Forwarded-For` (proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for)",
        );
    }
    let proto = get("x-forwarded-proto").to_ascii_lowercase();
    let proto_https =
        proto.split(',').any(|p| p.trim() == "https") || forwarded.contains("proto=https");
    if proto.is_empty() && !forwarded.contains("proto=") {
        missing.push("`X-Forwarded-Proto` (proxy_set_header X-Forwarded-Proto $scheme)");
    }
    if !missing.is_empty() {
        return Check::fail(
            "reverse-proxy",
            format!(
                "the request through the reverse proxy lacks {}",
                missing.join(", ")
            ),
            "add them to the proxy's configuration (docs/system-requirements.md, \"Reverse proxy for external web access\")",
        );
    }
    if !proto_https {
        return Check::warn(
            "reverse-proxy",
            format!(
                "the client reached the proxy over {} rather than https",
                if proto.is_empty() {
                    "another scheme"
                } else {
                    proto.as_str()
                }
            ),
            "publish the web services over https only, with the deployment's external certificate on the proxy",
        );
    }
    Check::pass(
        "reverse-proxy",
        format!(
            "WebSocket upgrade, SIP subprotocol, Host {}, client {} over https: all passed through",
            get("host"),
            if get("x-forwarded-for").is_empty() {
                forwarded
            } else {
                get("x-forwarded-for")
            }
        ),
    )
}

/// An edge has two addresses: internal (towards the pools) and external
/// (towards the Internet).
pub fn edge_addresses(plan: &Plan) -> Check {
    match plan.edge_addresses() {
        (Some(i), Some(e)) if i != e => {
            Check::pass("edge-addresses", format!("internal {i}, external {e}"))
        }
        (Some(i), Some(_)) => Check::fail(
            "edge-addresses",
            format!("the internal and external addresses are both {i}"),
            "give the edge separate internal and external addresses (two interfaces)",
        ),
        (i, e) => Check::fail(
            "edge-addresses",
            format!(
                "an edge needs an internal and an external address: {} missing",
                match (i.is_some(), e.is_some()) {
                    (false, false) => "both",
                    (false, true) => "the internal one",
                    _ => "the external one",
                }
            ),
            "set internal_address and external_address in the topology, or pass --internal-address and --external-address",
        ),
    }
}

#[cfg(test)]
mod tests;
