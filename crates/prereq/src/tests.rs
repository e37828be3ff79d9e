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
    fn certificate(&self, _: &Path) -> CertFacts {
        self.cert.clone()
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

#[test]
fn media_roles_refuse_socket_interposers() {
    assert_eq!(preload(None, None).status, Status::Pass);
    let c = preload(Some("/usr/lib/libvma.so".into()), None);
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("LD_PRELOAD"));
    let c = preload(
        None,
        Some("# comment\n/usr/lib/x86_64-linux-gnu/libproxychains.so.4\n".into()),
    );
    assert_eq!(c.status, Status::Fail);
    assert!(c.detail.contains("/etc/ld.so.preload"));
    assert_eq!(
        preload(Some("libjemalloc.so.2".into()), None).status,
        Status::Warn
    );
    assert_eq!(
        preload(None, Some("# nothing\n".into())).status,
        Status::Pass
    );
    // Directors relay no media: no preload check.
    let mut p = plan("fe01.contoso.com");
    p.roles = vec![Role::Director];
    p.binds.clear();
    let mut h = good();
    h.ld_env = Some("/usr/lib/libvma.so".into());
    assert!(outcome(&h, &p).get("preload").is_none());
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
