//! The checks against faked host facts.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use confab_tls::CertInfo;
use confab_topology::{Protocol, Role, Topology};

use super::*;

#[derive(Clone)]
struct Fake {
    arch: ArchFacts,
    os: OsFacts,
    hw: HardwareFacts,
    limit: Option<FileLimit>,
    disk: Option<u64>,
    ports: HashMap<u16, PortState>,
    clock: ClockFacts,
    ld_env: Option<String>,
    ld_file: Option<String>,
    cert: CertFacts,
    paths: PathFacts,
    pg: PostgresFacts,
    now: i64,
    updates: UpdateFacts,
    services: Vec<ServiceEnv>,
    fs: FsFacts,
    opus: bool,
    key_mode: Option<u32>,
    ca: CertFacts,
}

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn good() -> Fake {
    Fake {
        arch: ArchFacts {
            machine: "x86_64".into(),
            pointer_width: 64,
        },
        os: OsFacts {
            kernel_name: "Linux".into(),
            kernel_release: "6.1.0-18-amd64".into(),
            os_release: Some(OsRelease {
                id: "debian".into(),
                id_like: vec![],
                version_id: "12".into(),
                pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            }),
            libc: Some(Libc {
                name: "glibc".into(),
                version: "2.36".into(),
            }),
        },
        hw: HardwareFacts {
            cpus: 8,
            memory_bytes: Some(32 * GIB),
        },
        limit: Some(FileLimit {
            soft: Some(65_536),
            hard: Some(65_536),
        }),
        disk: Some(500 * GIB),
        ports: HashMap::new(),
        clock: ClockFacts::Synced {
            source: "chronyc tracking".into(),
            offset: Some(0.001),
        },
        ld_env: None,
        ld_file: None,
        cert: CertFacts::Present(CertInfo {
            sans: vec!["pool01.contoso.com".into(), "fe01.contoso.com".into()],
            common_name: Some("pool01.contoso.com".into()),
            not_before: NOW - 10 * DAY,
            not_after: NOW + 365 * DAY,
            self_signed: false,
        }),
        paths: PathFacts::Writable,
        pg: PostgresFacts::Reachable {
            version_num: 150_004,
            database_exists: true,
            clock_offset: Some(0.2),
        },
        now: NOW,
        updates: UpdateFacts::Known {
            tool: "apt-get -s upgrade".into(),
            security: vec![],
            other: 0,
            apply: "apt-get upgrade".into(),
        },
        services: vec![],
        fs: FsFacts::Shared("nfs".into()),
        opus: true,
        key_mode: Some(0o600),
        ca: CertFacts::Present(CertInfo {
            sans: vec![],
            common_name: Some("Contoso Root CA".into()),
            not_before: NOW - 100 * DAY,
            not_after: NOW + 3650 * DAY,
            self_signed: true,
        }),
    }
}

impl Host for Fake {
    fn arch(&self) -> ArchFacts {
        self.arch.clone()
    }
    fn os(&self) -> OsFacts {
        self.os.clone()
    }
    fn hardware(&self) -> HardwareFacts {
        self.hw
    }
    fn file_limit(&self) -> Option<FileLimit> {
        self.limit
    }
    fn disk_available(&self, _: &Path) -> Option<u64> {
        self.disk
    }
    fn port(&self, _: Protocol, addr: SocketAddr) -> PortState {
        self.ports
            .get(&addr.port())
            .cloned()
            .unwrap_or(PortState::Free)
    }
    fn clock(&self) -> ClockFacts {
        self.clock.clone()
    }
    fn ld_preload_env(&self) -> Option<String> {
        self.ld_env.clone()
    }
    fn ld_so_preload(&self) -> Option<String> {
        self.ld_file.clone()
    }
    fn certificate(&self, p: &Path) -> CertFacts {
        if p.ends_with("ca.pem") {
            self.ca.clone()
        } else {
            self.cert.clone()
        }
    }
    fn path_writable(&self, _: &Path, _: bool) -> PathFacts {
        self.paths.clone()
    }
    fn postgres(&self, _: &str) -> impl Future<Output = PostgresFacts> + Send {
        let pg = self.pg.clone();
        async move { pg }
    }
    fn now(&self) -> i64 {
        self.now
    }
    fn updates(&self) -> UpdateFacts {
        self.updates.clone()
    }
    fn service_environments(&self) -> Vec<ServiceEnv> {
        self.services.clone()
    }
    fn filesystem(&self, _: &Path) -> FsFacts {
        self.fs.clone()
    }
    fn shared_library(&self, soname: &str) -> Option<PathBuf> {
        self.opus
            .then(|| PathBuf::from("/usr/lib/x86_64-linux-gnu").join(soname))
    }
    fn file_mode(&self, _: &Path) -> Option<u32> {
        self.key_mode
    }
}

const ENTERPRISE: &str = r#"
sip_domains = ["contoso.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab:pw@db.contoso.com/confab"
[[store]]
name = "files"
kind = "file"
path = "files"
[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
file_store = "files"
users = 12000
[[pool.machine]]
fqdn = "fe01.contoso.com"
roles = ["front-end"]
[[pool.machine]]
fqdn = "fe02.contoso.com"
roles = ["front-end"]
[[pool]]
fqdn = "edge.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"
[[pool.machine]]
fqdn = "edge01.contoso.com"
internal_address = "10.0.0.5"
external_address = "203.0.113.5"
roles = ["edge"]
"#;

fn plan(fqdn: &str) -> Plan {
    let t = Topology::parse(ENTERPRISE).unwrap();
    Plan::from_topology(&t, fqdn, Path::new("/var/lib/confab")).unwrap()
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn outcome(host: &Fake, plan: &Plan) -> Outcome {
    block_on(run(host, plan))
}

fn status(o: &Outcome, id: &str) -> Status {
    o.get(id)
        .unwrap_or_else(|| panic!("no check {id}:\n{}", o.render()))
        .status
}

#[test]
fn a_good_machine_passes_everything() {
    let o = outcome(&good(), &plan("fe01.contoso.com"));
    assert_eq!(o.count(Status::Fail), 0, "{}", o.render());
    assert_eq!(o.count(Status::Warn), 0, "{}", o.render());
    assert_eq!(o.pool, "pool01.contoso.com");
    assert!(o.get("store:backend").is_some());
    assert!(o.get("store:files").is_some());
    assert!(o.get("port:front-end.sip-tls").is_some());
    assert!(o.get("preload").is_some(), "front ends relay media");
    assert!(o.render().contains("summary: "));
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["checks"][0]["status"], "pass");
}

#[test]
fn unknown_machine_is_an_error() {
    let t = Topology::parse(ENTERPRISE).unwrap();
    let e = Plan::from_topology(&t, "nobody.contoso.com", Path::new("/x")).unwrap_err();
    assert!(e.to_string().contains("fe01.contoso.com"), "{e}");
}

#[test]
fn only_64_bit() {
    let mut h = good();
    h.arch.machine = "i686".into();
    let c = arch(&h.arch);
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("64-bit"));
    h.arch.machine = "aarch64".into();
    assert_eq!(arch(&h.arch).status, Status::Pass);
    h.arch.pointer_width = 32;
    assert_eq!(arch(&h.arch).status, Status::Fail);
}

#[test]
fn kernel_versions() {
    let mut os = good().os;
    for (rel, want) in [
        ("6.1.0-18-amd64", Status::Pass),
        ("5.10.0", Status::Pass),
        ("5.4.0-100-generic", Status::Warn),
        ("4.18.0-553.el8", Status::Warn),
        ("4.9.0", Status::Fail),
        ("3.10.0-1160.el7", Status::Fail),
        ("weird", Status::Warn),
    ] {
        os.kernel_release = rel.into();
        assert_eq!(kernel(&os).status, want, "{rel}");
    }
    os.kernel_name = "FreeBSD".into();
    os.kernel_release = "14.0".into();
    assert_eq!(kernel(&os).status, Status::Fail);
}

#[test]
fn libc_versions() {
    let mut os = good().os;
    for (name, v, want) in [
        ("glibc", "2.36", Status::Pass),
        ("glibc", "2.31", Status::Pass),
        ("glibc", "2.28", Status::Warn),
        ("glibc", "2.17", Status::Fail),
        ("musl", "1.2.4", Status::Pass),
        ("musl", "1.1.24", Status::Warn),
        ("glibc", "x", Status::Warn),
    ] {
        os.libc = Some(Libc {
            name: name.into(),
            version: v.into(),
        });
        assert_eq!(libc(&os).status, want, "{name} {v}");
    }
    os.libc = None;
    assert_eq!(libc(&os).status, Status::Warn);
}

#[test]
fn distributions() {
    let mut os = good().os;
    let set = |os: &mut OsFacts, id: &str, v: &str| {
        os.os_release = Some(OsRelease {
            id: id.into(),
            id_like: vec![],
            version_id: v.into(),
            pretty_name: String::new(),
        })
    };
    for (id, v, want) in [
        ("debian", "12", Status::Pass),
        ("debian", "10", Status::Warn),
        ("ubuntu", "24.04", Status::Pass),
        ("ubuntu", "23.10", Status::Warn),
        ("rocky", "9.3", Status::Pass),
        ("sles", "15.5", Status::Pass),
        ("arch", "", Status::Warn),
    ] {
        set(&mut os, id, v);
        assert_eq!(distribution(&os).status, want, "{id} {v}");
    }
    os.os_release = None;
    assert_eq!(distribution(&os).status, Status::Warn);
}

#[test]
fn hardware_minimum_and_recommended() {
    let p = plan("fe01.contoso.com");
    let mut h = good().hw;
    h.cpus = 2;
    let c = hardware(&h, &p);
    assert_eq!(c[0].status, Status::Warn, "{:?}", c[0]);
    h.cpus = 0;
    assert_eq!(hardware(&h, &p)[0].status, Status::Fail);
    h.memory_bytes = Some(512 * 1024 * 1024);
    assert_eq!(hardware(&h, &p)[1].status, Status::Fail);
    h.memory_bytes = Some(4 * GIB);
    assert_eq!(hardware(&h, &p)[1].status, Status::Warn);
    h.memory_bytes = None;
    assert_eq!(hardware(&h, &p)[1].status, Status::Warn);
}

#[test]
fn open_file_limit_follows_capacity() {
    let p = plan("fe01.contoso.com");
    // 12,000 users over 2 front ends: 6,000 each, 2 files per user + 1,024.
    let need = 1024 + 2 * 6000;
    let lim = |soft, hard| {
        Some(FileLimit {
            soft: Some(soft),
            hard: Some(hard),
        })
    };
    assert_eq!(open_files(lim(need, need), &p).status, Status::Pass);
    let w = open_files(lim(1024, need), &p);
    assert_eq!(w.status, Status::Warn);
    assert!(w.fix.unwrap().contains(&need.to_string()));
    assert_eq!(open_files(lim(1024, 4096), &p).status, Status::Fail);
    assert_eq!(
        open_files(
            Some(FileLimit {
                soft: None,
                hard: None
            }),
            &p
        )
        .status,
        Status::Pass
    );
    assert_eq!(open_files(None, &p).status, Status::Warn);
    // An edge at its design capacity of 12,000 remote users.
    let e = plan("edge01.contoso.com");
    assert_eq!(open_files(lim(16_384, 16_384), &e).status, Status::Fail);
    assert_eq!(open_files(lim(20_000, 20_000), &e).status, Status::Pass);
}

#[test]
fn disk_space() {
    let mut h = good();
    let p = Plan::standard_default("se01.contoso.com", Path::new("/var/lib/confab"));
    assert_eq!(disk(&h, &p).status, Status::Pass);
    h.disk = Some(3 * GIB);
    assert_eq!(disk(&h, &p).status, Status::Warn);
    h.disk = Some(100 * 1024 * 1024);
    assert_eq!(disk(&h, &p).status, Status::Fail);
    h.disk = None;
    assert_eq!(disk(&h, &p).status, Status::Warn);
}

#[test]
fn clock_sync_and_skew() {
    let synced = ClockFacts::Synced {
        source: "timedatectl".into(),
        offset: None,
    };
    assert_eq!(clock(&synced, &[]).status, Status::Pass);
    assert_eq!(
        clock(
            &ClockFacts::NotSynced {
                source: "timedatectl".into()
            },
            &[]
        )
        .status,
        Status::Warn
    );
    let unknown = clock(&ClockFacts::Unknown("no timedatectl".into()), &[]);
    assert_eq!(unknown.status, Status::Warn);
    assert!(unknown.detail.contains("unknown"));
    // Against a PostgreSQL server: warn well before NTLM's 15 minutes, fail at 15.
    let off = |s: f64| vec![("backend".to_string(), s)];
    assert_eq!(clock(&synced, &off(2.0)).status, Status::Pass);
    assert_eq!(clock(&synced, &off(-120.0)).status, Status::Warn);
    let f = clock(&synced, &off(16.0 * 60.0));
    assert_eq!(f.status, Status::Fail);
    assert!(f.detail.contains("15 minutes"));
    let big = ClockFacts::Synced {
        source: "chronyc tracking".into(),
        offset: Some(300.0),
    };
    assert_eq!(clock(&big, &[]).status, Status::Warn);
}

#[test]
fn certificate_names_the_pool() {
    let p = plan("fe02.contoso.com");
    let mut h = good();
    let info = |sans: &[&str], nb: i64, na: i64| {
        CertFacts::Present(CertInfo {
            sans: sans.iter().map(|s| s.to_string()).collect(),
            common_name: None,
            not_before: nb,
            not_after: na,
            self_signed: true,
        })
    };
    h.cert = info(
        &["pool01.contoso.com", "fe02.contoso.com"],
        NOW - DAY,
        NOW + 400 * DAY,
    );
    let c = certificate(&h, &p);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("self-signed"));
    h.cert = info(&["*.contoso.com"], NOW - DAY, NOW + 400 * DAY);
    assert_eq!(certificate(&h, &p).status, Status::Pass);
    h.cert = info(&["fe02.contoso.com"], NOW - DAY, NOW + 400 * DAY);
    let c = certificate(&h, &p);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("pool01.contoso.com"));
    assert!(c.fix.unwrap().contains("SAN"));
    h.cert = info(&["pool01.contoso.com"], NOW - DAY, NOW + 400 * DAY);
    assert_eq!(
        certificate(&h, &p).status,
        Status::Warn,
        "machine FQDN missing"
    );
    h.cert = info(
        &["pool01.contoso.com", "fe02.contoso.com"],
        NOW - 400 * DAY,
        NOW - DAY,
    );
    assert_eq!(certificate(&h, &p).status, Status::Fail, "expired");
    h.cert = info(
        &["pool01.contoso.com", "fe02.contoso.com"],
        NOW + DAY,
        NOW + 400 * DAY,
    );
    assert_eq!(certificate(&h, &p).status, Status::Fail, "not yet valid");
    h.cert = info(
        &["pool01.contoso.com", "fe02.contoso.com"],
        NOW - DAY,
        NOW + 5 * DAY,
    );
    assert_eq!(certificate(&h, &p).status, Status::Warn, "expiring");
    h.cert = CertFacts::Unreadable("garbage".into());
    assert_eq!(certificate(&h, &p).status, Status::Fail);
    h.cert = CertFacts::Missing;
    assert_eq!(certificate(&h, &p).status, Status::Warn);
    let mut b = p.clone();
    b.bootstrap = true;
    assert_eq!(certificate(&h, &b).status, Status::Pass);
}

#[test]
fn stores_reachable_at_supported_versions() {
    let p = plan("fe01.contoso.com");
    let backend = p
        .stores
        .iter()
        .find(|s| s.name == "backend")
        .unwrap()
        .clone();
    let mut h = good();
    let (c, off) = block_on(store(&h, &p, &backend));
    assert_eq!(c.status, Status::Pass);
    assert_eq!(off, Some(0.2));
    h.pg = PostgresFacts::Reachable {
        version_num: 120_017,
        database_exists: true,
        clock_offset: None,
    };
    let (c, _) = block_on(store(&h, &p, &backend));
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("12.17"), "{}", c.detail);
    h.pg = PostgresFacts::Reachable {
        version_num: 130_000,
        database_exists: false,
        clock_offset: None,
    };
    let (c, _) = block_on(store(&h, &p, &backend));
    assert_eq!(c.status, Status::Pass);
    assert!(c.detail.contains("does not exist yet"));
    h.pg = PostgresFacts::Unreachable("connection refused".into());
    let (c, _) = block_on(store(&h, &p, &backend));
    assert_eq!(c.status, Status::Fail);
    assert!(
        !c.detail.contains("pw@"),
        "password must not be shown: {}",
        c.detail
    );

    let se = Plan::standard_default("se01.contoso.com", Path::new("/var/lib/confab"));
    let sqlite = se.stores[0].clone();
    assert!(
        matches!(sqlite.target, Target::Sqlite(ref p) if p == &PathBuf::from("/var/lib/confab/confab.db"))
    );
    h.paths = PathFacts::Creatable;
    assert_eq!(block_on(store(&h, &se, &sqlite)).0.status, Status::Pass);
    h.paths = PathFacts::NotWritable("permission denied".into());
    assert_eq!(block_on(store(&h, &se, &sqlite)).0.status, Status::Fail);
}

#[test]
fn ports_free() {
    let p = plan("fe01.contoso.com");
    let mut h = good();
    h.ports.insert(5061, PortState::InUse);
    h.ports
        .insert(8080, PortState::Denied("permission denied".into()));
    let o = outcome(&h, &p);
    assert_eq!(status(&o, "port:front-end.sip-tls"), Status::Fail);
    let web = o.get("port:front-end.web").unwrap();
    assert_eq!(web.status, Status::Fail);
    assert!(web.fix.as_ref().unwrap().contains("CAP_NET_BIND_SERVICE"));
    assert_eq!(status(&o, "port:front-end.sip"), Status::Pass);
    assert!(o.has_failures());
    // The edge binds its internal and external addresses.
    let e = plan("edge01.contoso.com");
    assert!(
        e.binds
            .iter()
            .any(|b| b.address == Some("203.0.113.5".parse().unwrap()))
    );
    let mut h = good();
    h.ports.insert(444, PortState::AddressMissing);
    assert_eq!(status(&outcome(&h, &e), "port:edge.webconf"), Status::Fail);
}

fn svc(source: &str, ld: Option<&str>) -> ServiceEnv {
    ServiceEnv {
        source: source.into(),
        ld_preload: Ok(ld.map(str::to_string)),
    }
}

#[test]
fn media_roles_refuse_socket_interposers() {
    let unit = "systemd unit /etc/systemd/system/confab.service";
    assert_eq!(preload(&[svc(unit, None)], None, None).status, Status::Pass);
    let c = preload(&[svc(unit, Some("/usr/lib/libvma.so"))], None, None);
    assert_eq!(c.status, Status::Fail);
    assert!(
        c.detail.contains("LD_PRELOAD of systemd unit"),
        "{}",
        c.detail
    );
    let c = preload(
        &[],
        None,
        Some("# comment\n/usr/lib/x86_64-linux-gnu/libproxychains.so.4\n".into()),
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("/etc/ld.so.preload"));
    assert_eq!(
        preload(
            &[svc("confab serve (pid 7)", Some("libjemalloc.so.2"))],
            None,
            None
        )
        .status,
        Status::Warn
    );
    assert_eq!(
        preload(&[], None, Some("# nothing\n".into())).status,
        Status::Pass
    );
    // Directors relay no media: no preload check.
    let mut p = plan("fe01.contoso.com");
    p.roles = vec![Role::Director];
    p.binds.clear();
    let mut h = good();
    h.services = vec![svc(unit, Some("/usr/lib/libvma.so"))];
    assert!(outcome(&h, &p).get("preload").is_none());
}

#[test]
fn preload_reads_the_services_environment_not_the_shells() {
    let p = plan("fe01.contoso.com");
    // The shell running the check preloads a kernel-bypass stack; the service
    // (a running confab serve) does not: the service is what relays media.
    let mut h = good();
    h.ld_env = Some("/usr/lib/libvma.so".into());
    h.services = vec![svc("confab serve (pid 812)", None)];
    let c = outcome(&h, &p).get("preload").cloned().unwrap();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("confab serve (pid 812)"), "{}", c.detail);
    // The service's unit preloads it while the shell is clean: that fails.
    let mut h = good();
    h.services = vec![svc(
        "systemd unit /etc/systemd/system/confab.service",
        Some("/opt/onload/libonload.so"),
    )];
    assert_eq!(status(&outcome(&h, &p), "preload"), Status::Fail);
    // An environment that cannot be read is said so.
    let mut h = good();
    h.services = vec![ServiceEnv {
        source: "confab serve (pid 9)".into(),
        ld_preload: Err("permission denied".into()),
    }];
    let c = outcome(&h, &p).get("preload").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("permission denied"), "{}", c.detail);
    // No service at all: the shell's preload is only a warning about what a
    // service started from it would inherit.
    let mut h = good();
    h.ld_env = Some("/usr/lib/libvma.so".into());
    let c = outcome(&h, &p).get("preload").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("no confab service found"), "{}", c.detail);
}

#[test]
fn updates_pending_security_fixes_warn_with_the_command() {
    let mut h = good();
    let p = plan("fe01.contoso.com");
    assert_eq!(status(&outcome(&h, &p), "updates"), Status::Pass);
    h.updates = UpdateFacts::Known {
        tool: "apt-get -s upgrade".into(),
        security: vec!["openssl".into(), "libc6".into()],
        other: 3,
        apply: "apt-get update && apt-get upgrade (as root)".into(),
    };
    let c = outcome(&h, &p).get("updates").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.detail
            .contains("2 pending security update(s): openssl, libc6"),
        "{}",
        c.detail
    );
    assert!(c.fix.unwrap().contains("apt-get upgrade"));
    h.updates = UpdateFacts::Unknown {
        why: "no known package manager".into(),
        how: "apply them by hand".into(),
    };
    assert_eq!(status(&outcome(&h, &p), "updates"), Status::Warn);
}

#[test]
fn apt_and_dnf_output_parsing() {
    let apt = "NOTE: This is only a simulation!\n\
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n\
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.11/oldstable [all])\n\
Inst openssl [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Ubuntu:24.04/noble-security [amd64])\n\
Conf libssl3 (3.0.17-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n";
    let (sec, other) = crate::host::parse_apt_simulation(apt);
    assert_eq!(sec, vec!["libssl3", "openssl"]);
    assert_eq!(other, 1);
    assert_eq!(crate::host::parse_apt_simulation(""), (vec![], 0));
    let dnf = "RLSA-2024:1234 Important/Sec. openssl-libs-1:3.0.7-27.el9.x86_64\nRLBA-2024:1 bugfix glibc-2.34\n";
    assert_eq!(
        crate::host::parse_dnf_security(dnf),
        vec!["openssl-libs-1:3.0.7-27.el9.x86_64"]
    );
}

#[test]
fn unit_environment_parsing() {
    let (vars, files) = crate::host::parse_unit_environment(
        "[Service]\nEnvironment=\"LD_PRELOAD=/usr/lib/libvma.so\" A=b\nEnvironment=C='d e'\nEnvironmentFile=-/etc/default/confab\nEnvironmentFile=/etc/confab.env\n",
    );
    assert_eq!(
        vars,
        vec![
            ("LD_PRELOAD".to_string(), "/usr/lib/libvma.so".to_string()),
            ("A".into(), "b".into()),
            ("C".into(), "d e".into())
        ]
    );
    assert_eq!(
        files,
        vec![
            ("/etc/default/confab".to_string(), true),
            ("/etc/confab.env".to_string(), false)
        ]
    );
    assert_eq!(
        crate::host::parse_env_file("# x\nexport LD_PRELOAD=\"libx.so\"\nB=1\n"),
        vec![
            ("LD_PRELOAD".to_string(), "libx.so".to_string()),
            ("B".into(), "1".into())
        ]
    );
    assert_eq!(
        crate::host::preload_in_environ(b"PATH=/bin\0LD_PRELOAD=libvma.so\0"),
        Some("libvma.so".to_string())
    );
    assert_eq!(crate::host::preload_in_environ(b"PATH=/bin\0"), None);
}

#[test]
fn unit_files_and_drop_ins_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(etc.join("confab.service.d")).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(
        lib.join("confab.service"),
        "[Service]\nExecStart=/usr/bin/confab serve\n",
    )
    .unwrap();
    let envfile = dir.path().join("confab.env");
    std::fs::write(&envfile, "LD_PRELOAD=/usr/lib/libtorsocks.so\n").unwrap();
    std::fs::write(
        etc.join("confab.service.d/10-env.conf"),
        format!("[Service]\nEnvironmentFile={}\n", envfile.display()),
    )
    .unwrap();
    let dirs = [etc.to_str().unwrap(), lib.to_str().unwrap()];
    let envs = crate::host::unit_environments(&dirs, "confab.service");
    assert_eq!(envs.len(), 1);
    assert_eq!(
        envs[0].ld_preload,
        Ok(Some("/usr/lib/libtorsocks.so".to_string()))
    );
    assert_eq!(
        preload(&envs, None, None).status,
        Status::Fail,
        "the unit's EnvironmentFile preloads torsocks"
    );
    assert!(crate::host::unit_environments(&dirs, "other.service").is_empty());
}

#[test]
fn a_running_service_environment_is_read_from_proc() {
    // A real process with a marker in its environment, found by its command name.
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "sleep 30; :", "serve"])
        .env("LD_PRELOAD", "libjemalloc.so.2")
        .process_group(0)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let found = crate::host::running_services(Path::new("/proc"), "sh");
    // The shell and its sleep: the whole process group we started.
    if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
    let mine = found
        .iter()
        .find(|s| s.source.contains(&format!("pid {}", child.id())))
        .unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(mine.ld_preload, Ok(Some("libjemalloc.so.2".to_string())));
}

#[test]
fn edge_needs_two_addresses() {
    // `--role edge` without a topology: no address, so no wildcard port probed twice.
    let p = Plan::for_roles(&[Role::Edge], "edge01.contoso.com", Path::new("/d"));
    let o = outcome(&good(), &p);
    let c = o.get("edge-addresses").cloned().unwrap();
    assert_eq!(c.status, Status::Fail, "{}", o.render());
    assert!(c.detail.contains("both"), "{}", c.detail);
    let internal = o.get("port:edge.internal-sip-tls").unwrap();
    assert_eq!(internal.status, Status::Fail);
    assert!(
        internal.detail.contains("internal address"),
        "{}",
        internal.detail
    );
    assert_eq!(status(&o, "port:edge.access"), Status::Fail);
    // With both addresses given, the ports are probed on each.
    let mut p = p;
    p.set_edge_addresses(
        Some("10.0.0.5".parse().unwrap()),
        Some("203.0.113.5".parse().unwrap()),
    );
    let o = outcome(&good(), &p);
    assert_eq!(status(&o, "edge-addresses"), Status::Pass);
    assert_eq!(status(&o, "port:edge.internal-sip-tls"), Status::Pass);
    p.set_edge_addresses(
        Some("10.0.0.5".parse().unwrap()),
        Some("10.0.0.5".parse().unwrap()),
    );
    assert_eq!(
        status(&outcome(&good(), &p), "edge-addresses"),
        Status::Fail
    );
}

#[test]
fn enterprise_file_store_must_be_the_shared_store() {
    let p = plan("fe01.contoso.com");
    let mut h = good();
    assert_eq!(status(&outcome(&h, &p), "store:files"), Status::Pass);
    h.fs = FsFacts::Local("ext4".into());
    let c = outcome(&h, &p).get("store:files").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.detail.contains("local filesystem (ext4)"), "{}", c.detail);
    assert!(
        c.fix
            .unwrap()
            .contains("mount the pool's one shared file store")
    );
    h.fs = FsFacts::Missing;
    let c = outcome(&h, &p).get("store:files").cloned().unwrap();
    assert_eq!(
        c.status,
        Status::Fail,
        "bootstrap must not create a private folder"
    );
    // Standard Edition keeps a local folder.
    let se = Plan::standard_default("se01.contoso.com", Path::new("/var/lib/confab"));
    assert_eq!(status(&outcome(&h, &se), "store:files"), Status::Pass);
}

#[test]
fn servers_authenticate_each_other_with_the_deployment_ca() {
    let p = plan("fe01.contoso.com");
    assert!(
        p.peers.contains(&"fe02.contoso.com".to_string()),
        "{:?}",
        p.peers
    );
    let mut h = good();
    let c = outcome(&h, &p).get("server-auth").cloned().unwrap();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("Contoso Root CA"));
    h.ca = CertFacts::Missing;
    let c = outcome(&h, &p).get("server-auth").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.unwrap().contains("ca.pem"));
    h = good();
    h.cert = CertFacts::Present(CertInfo {
        sans: vec!["pool01.contoso.com".into(), "fe01.contoso.com".into()],
        common_name: None,
        not_before: NOW - DAY,
        not_after: NOW + 300 * DAY,
        self_signed: true,
    });
    assert_eq!(status(&outcome(&h, &p), "server-auth"), Status::Warn);
    h.ca = CertFacts::Unreadable("not PEM".into());
    assert_eq!(status(&outcome(&h, &p), "server-auth"), Status::Fail);
    // A lone Standard Edition server has nobody to authenticate.
    let se = Plan::standard_default("se01.contoso.com", Path::new("/d"));
    assert_eq!(status(&outcome(&good(), &se), "server-auth"), Status::Pass);
    // An edge always forwards to a next hop.
    let e = Plan::for_roles(&[Role::Edge], "edge01.contoso.com", Path::new("/d"));
    let mut h = good();
    h.ca = CertFacts::Missing;
    assert_eq!(status(&outcome(&h, &e), "server-auth"), Status::Warn);
}

#[test]
fn web_services_key_and_authentication_modes() {
    let p = plan("fe01.contoso.com");
    let mut h = good();
    let c = outcome(&h, &p).get("web").cloned().unwrap();
    assert_eq!(c.status, Status::Pass);
    assert!(
        c.detail.contains("tcp port 8080") && c.detail.contains("NTLM"),
        "{}",
        c.detail
    );
    h.key_mode = Some(0o644);
    let c = outcome(&h, &p).get("web").cloned().unwrap();
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("chmod 600"));
    // Edges and mediation servers have no web services.
    let e = plan("edge01.contoso.com");
    assert!(outcome(&good(), &e).get("web").is_none());
}

#[test]
fn media_runtime_for_the_audio_applications() {
    let p = plan("fe01.contoso.com");
    let mut h = good();
    assert_eq!(status(&outcome(&h, &p), "media-runtime"), Status::Pass);
    h.opus = false;
    let c = outcome(&h, &p).get("media-runtime").cloned().unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.fix.unwrap().contains("libopus0"));
    h.paths = PathFacts::NotWritable("read-only".into());
    assert_eq!(status(&outcome(&h, &p), "media-runtime"), Status::Fail);
    assert!(
        outcome(&good(), &plan("edge01.contoso.com"))
            .get("media-runtime")
            .is_none()
    );
}

const CHAT_POOL: &str = r#"
sip_domains = ["contoso.com"]
[[site]]
name = "main"
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab:pw@db.contoso.com/confab"
[[store]]
name = "pchat"
kind = "persistent-chat"
url = "postgres://confab:pw@chatdb.contoso.com/pchat"
[[store]]
name = "comp"
kind = "compliance"
url = "COMPLIANCE_URL"
[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
[[pool.machine]]
fqdn = "fe01.contoso.com"
roles = ["front-end"]
[[pool]]
fqdn = "pchat.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"
persistent_chat_store = "pchat"
compliance = true
compliance_store = "comp"
[[pool.machine]]
fqdn = "pchat01.contoso.com"
roles = ["persistent-chat"]
"#;

#[test]
fn chat_to_compliance_delivery() {
    let plan_with = |url: &str| {
        let src = CHAT_POOL.replace("COMPLIANCE_URL", url);
        let t = Topology::parse(&src).unwrap();
        Plan::from_topology(&t, "pchat01.contoso.com", Path::new("/d")).unwrap()
    };
    let p = plan_with("postgres://confab:pw@chatdb.contoso.com/compliance");
    assert!(p.compliance);
    assert!(p.peers.contains(&"fe01.contoso.com".to_string()));
    let c = outcome(&good(), &p).get("chat-delivery").cloned().unwrap();
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("outbox"));
    // The same database under another spelling is no separate store.
    let p = plan_with("postgresql://audit@ChatDB.contoso.com:5432/pchat");
    assert_eq!(status(&outcome(&good(), &p), "chat-delivery"), Status::Fail);
    // Compliance off: nothing to deliver, still a result.
    let mut p = p;
    p.compliance = false;
    assert_eq!(status(&outcome(&good(), &p), "chat-delivery"), Status::Pass);
}

#[test]
fn role_filter_and_defaults() {
    let mut p = plan("fe01.contoso.com");
    p.restrict_roles(&[Role::Mediation]);
    assert!(p.roles.is_empty());
    assert!(p.binds.is_empty());
    let p = Plan::for_roles(
        &[Role::Mediation, Role::FrontEnd, Role::FrontEnd],
        "a.b.c",
        Path::new("/d"),
    );
    assert_eq!(p.roles, vec![Role::FrontEnd, Role::Mediation]);
    assert!(p.binds.iter().any(|b| b.listener.port == 5070));
    let e = Plan::for_roles(&[Role::Edge], "a.b.c", Path::new("/d"));
    assert!(e.stores.is_empty());
}

/// Every machine of the examples gets a result for every Lync requirement
/// that applies to its roles and that a check stands for.
#[test]
fn every_example_machine_answers_every_applicable_requirement() {
    for src in [
        include_str!("../../../examples/topology-standard.toml"),
        include_str!("../../../examples/topology-enterprise.toml"),
    ] {
        let t = Topology::parse(src).unwrap();
        for m in t.machines() {
            let p =
                Plan::from_topology(&t, m.machine.fqdn(), Path::new("/var/lib/confab")).unwrap();
            let o = outcome(&good(), &p);
            let answered: Vec<&str> = o
                .checks
                .iter()
                .flat_map(|c| c.lync.iter().copied())
                .collect();
            for r in lync::REQUIREMENTS {
                if !lync::applies(r, &p.roles) || r.checks.is_empty() {
                    continue;
                }
                assert!(
                    answered.contains(&r.id),
                    "{} ({:?}) has no result for {}:\n{}",
                    p.fqdn,
                    p.roles,
                    r.id,
                    o.render()
                );
                for c in r.checks {
                    assert!(
                        o.checks.iter().any(|x| lync::matches(c, &x.id)),
                        "{}: no {c} check for {}",
                        p.fqdn,
                        r.id
                    );
                }
            }
            assert!(o.render().contains("[Lync: os-64bit"), "{}", o.render());
        }
    }
}

#[test]
fn reverse_proxy_headers() {
    let good = "GET / HTTP/1.1\r\nHost: webext.contoso.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Protocol: sip\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n\r\n";
    let c = proxy_headers(good);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert!(c.detail.contains("198.51.100.7"));
    // A proxy that drops the upgrade and the client's address.
    let bad = "GET / HTTP/1.1\r\nHost: pool01.contoso.com:8080\r\nConnection: close\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
    let c = proxy_headers(bad);
    assert_eq!(c.status, Status::Fail);
    for h in [
        "Upgrade: websocket",
        "Connection: upgrade",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
    ] {
        assert!(c.detail.contains(h), "{h}: {}", c.detail);
    }
    assert!(!c.detail.contains("`Host`"), "{}", c.detail);
    // RFC 7239 Forwarded does as well; plain http warns.
    let fwd = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Protocol: sip\r\nForwarded: for=192.0.2.1;proto=http\r\n\r\n";
    assert_eq!(proxy_headers(fwd).status, Status::Warn);
    assert_eq!(proxy_headers("").status, Status::Fail);
}

#[test]
fn apt_security_sources_are_isolated() {
    let deb822 = "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb deb-src\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://x/y\nSuites: z-security\nComponents: main\nEnabled: no\n";
    let lists = "deb [arch=amd64 signed-by=/k.gpg] http://security.ubuntu.com/ubuntu noble-security main universe\ndeb http://archive.ubuntu.com/ubuntu noble main\n# deb http://x noble-security main\n";
    let out =
        crate::host::apt_security_sources(&[lists.to_string()], &[deb822.to_string()]).unwrap();
    assert!(out.contains("URIs: http://security.ubuntu.com/ubuntu\nSuites: noble-security\nComponents: main universe\nArchitectures: amd64\nSigned-By: /k.gpg\n"), "{out}");
    assert!(out.contains("URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main contrib\n"), "{out}");
    assert!(
        out.contains("Types: deb\nURIs: http://deb.debian.org/debian-security"),
        "{out}"
    );
    assert!(
        !out.contains("archive.ubuntu.com") && !out.contains("bookworm-updates"),
        "{out}"
    );
    assert!(!out.contains("z-security"), "disabled stanza: {out}");
    assert!(crate::host::apt_security_sources(&["deb http://a b main".into()], &[]).is_none());
}
