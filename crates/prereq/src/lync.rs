//! Every requirement of the four Lync Server 2013 pages confab is built from,
//! with confab's analog. docs/system-requirements.md presents the same table in
//! words (one row per identifier; a test keeps the two in step), and
//! `confab prereq check` labels each check with the requirements it stands for.

use confab_topology::Role;

/// The Lync Server 2013 pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// "System requirements for servers running Lync Server 2013".
    Servers,
    /// "Additional software requirements for Lync Server 2013".
    Software,
    /// "Install operating systems and prerequisite software on servers".
    Install,
    /// "Set up system platforms" (Persistent Chat Server).
    Chat,
}

impl Page {
    /// The short name the documentation's table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Page::Servers => "servers",
            Page::Software => "software",
            Page::Install => "install",
            Page::Chat => "pchat",
        }
    }
}

/// How confab meets a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `confab prereq check` checks it (`checks`).
    Check,
    /// `confab topology validate` enforces it (`rules`).
    Rule,
    /// `confab bootstrap` does it.
    Bootstrap,
    /// confab has it built in: nothing to install.
    BuiltIn,
    /// It does not apply to a Rust server on Linux (the documentation says why).
    NotApplicable,
}

/// One requirement of the Lync pages.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// Stable identifier (the first column of the documentation's table).
    pub id: &'static str,
    pub pages: &'static [Page],
    /// Roles it concerns; empty: every role.
    pub roles: &'static [Role],
    pub answer: Answer,
    /// `confab prereq check` identifiers; a trailing `:` matches a family
    /// (`store:`, `port:`).
    pub checks: &'static [&'static str],
    /// `confab topology validate` rules.
    pub rules: &'static [&'static str],
}

use Answer::*;
use Page::*;
use Role::*;

const ALL: &[Role] = &[];
const FE: &[Role] = &[FrontEnd];
const FE_DIR: &[Role] = &[FrontEnd, Director];
const CHAT: &[Role] = &[PersistentChat];
const EDGE: &[Role] = &[Edge];

const fn r(
    id: &'static str,
    pages: &'static [Page],
    roles: &'static [Role],
    answer: Answer,
    checks: &'static [&'static str],
    rules: &'static [&'static str],
) -> Requirement {
    Requirement {
        id,
        pages,
        roles,
        answer,
        checks,
        rules,
    }
}

/// The requirements, in the order of docs/system-requirements.md.
pub const REQUIREMENTS: &[Requirement] = &[
    // System requirements for servers.
    r("os-64bit", &[Servers], ALL, Check, &["arch"], &[]),
    r(
        "os-supported",
        &[Servers, Install, Chat],
        ALL,
        Check,
        &["kernel", "libc", "distribution"],
        &[],
    ),
    r(
        "os-updates",
        &[Servers, Install, Chat],
        ALL,
        Check,
        &["updates"],
        &[],
    ),
    r(
        "hardware",
        &[Servers, Chat],
        ALL,
        Check,
        &["cpu", "memory", "disk"],
        &[],
    ),
    r(
        "same-software-both-editions",
        &[Servers],
        ALL,
        BuiltIn,
        &[],
        &[],
    ),
    r(
        "capacity-standard-edition",
        &[Servers],
        FE,
        Rule,
        &["open-files"],
        &["capacity", "standard-edition"],
    ),
    r(
        "capacity-enterprise-pool",
        &[Servers],
        FE,
        Rule,
        &["open-files"],
        &["capacity", "front-end-limit"],
    ),
    r(
        "registry-2012r2-certificates",
        &[Servers],
        ALL,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "powershell",
        &[Servers, Software],
        ALL,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "powershell-after-dotnet",
        &[Servers],
        ALL,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "dotnet-45",
        &[Servers, Software, Install],
        ALL,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "admin-tools-runtime",
        &[Servers, Software],
        ALL,
        BuiltIn,
        &[],
        &[],
    ),
    r(
        "http-activation",
        &[Servers, Software],
        FE,
        BuiltIn,
        &[],
        &[],
    ),
    // Additional software, per role.
    r(
        "server-to-server-auth",
        &[Software, Install],
        ALL,
        Check,
        &["server-auth"],
        &[],
    ),
    r(
        "web-server",
        &[Software],
        FE,
        Check,
        &["web", "port:front-end.web"],
        &[],
    ),
    r(
        "web-content-modules",
        &[Software],
        FE_DIR,
        BuiltIn,
        &[],
        &[],
    ),
    r(
        "web-aspnet-isapi",
        &[Software],
        FE_DIR,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "web-logging-tracing",
        &[Software],
        FE_DIR,
        BuiltIn,
        &[],
        &[],
    ),
    r(
        "web-authentication",
        &[Software],
        FE_DIR,
        Check,
        &["web"],
        &[],
    ),
    r(
        "web-request-filtering",
        &[Software],
        FE_DIR,
        BuiltIn,
        &[],
        &[],
    ),
    r(
        "web-compression",
        &[Software],
        FE_DIR,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "web-management-tools",
        &[Software],
        FE_DIR,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "director-web-server",
        &[Software],
        &[Director],
        Check,
        &["web", "port:director.web"],
        &[],
    ),
    r(
        "media-format-runtime",
        &[Software, Install],
        FE,
        Check,
        &["media-runtime"],
        &[],
    ),
    r(
        "desktop-experience",
        &[Software, Install],
        FE,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "media-foundation",
        &[Software, Install],
        FE,
        NotApplicable,
        &[],
        &[],
    ),
    r("dotnet-35", &[Software], FE, NotApplicable, &[], &[]),
    r(
        "feature-install-command",
        &[Software],
        FE,
        Bootstrap,
        &[],
        &[],
    ),
    r("ad-admin-tools", &[Software], FE, NotApplicable, &[], &[]),
    r("telnet-client", &[Software], FE, NotApplicable, &[], &[]),
    r("bits", &[Software], FE, NotApplicable, &[], &[]),
    r(
        "message-queuing",
        &[Software],
        CHAT,
        Check,
        &["chat-delivery"],
        &[],
    ),
    r(
        "edge-software",
        &[Software],
        EDGE,
        Check,
        &["server-auth", "arch", "libc"],
        &[],
    ),
    r(
        "no-layered-socket-providers",
        &[Software],
        &[FrontEnd, Mediation],
        Check,
        &["preload"],
        &[],
    ),
    // Install operating systems and prerequisite software.
    r("kb2646886-iis-fix", &[Install], FE, NotApplicable, &[], &[]),
    r(
        "registry-2012r2-events",
        &[Install],
        FE,
        NotApplicable,
        &[],
        &[],
    ),
    r(
        "database-server-software",
        &[Install],
        &[FrontEnd, PersistentChat],
        Check,
        &["store:"],
        &["store-location"],
    ),
    r(
        "database-server-updates",
        &[Install],
        ALL,
        NotApplicable,
        &[],
        &[],
    ),
    r("per-role-prerequisites", &[Install], ALL, BuiltIn, &[], &[]),
    r(
        "local-sql-express",
        &[Install],
        FE,
        Bootstrap,
        &["store:"],
        &["store-location"],
    ),
    r(
        "perimeter-servers",
        &[Install],
        EDGE,
        Check,
        &["edge-addresses", "port:"],
        &["edge-addresses", "collocation"],
    ),
    r("reverse-proxy", &[Install], FE_DIR, Check, &["web"], &[]),
    // Persistent Chat platforms.
    r(
        "pchat-stand-alone",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["pchat-collocation"],
    ),
    r("pchat-bootstrapper", &[Chat], CHAT, Bootstrap, &[], &[]),
    r(
        "pchat-web-services",
        &[Chat],
        FE,
        Rule,
        &["port:front-end.web"],
        &["pchat-web"],
    ),
    r(
        "pchat-server-capacity",
        &[Chat],
        CHAT,
        Rule,
        &["open-files"],
        &["capacity"],
    ),
    r(
        "pchat-active-servers",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["pchat-active-limit"],
    ),
    r(
        "pchat-store",
        &[Chat],
        CHAT,
        Rule,
        &["store:"],
        &["pchat-store", "store-location"],
    ),
    r(
        "pchat-store-dedicated-server",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["pchat-store-dedicated"],
    ),
    r(
        "pchat-compliance-collocated",
        &[Chat],
        CHAT,
        Check,
        &["chat-delivery"],
        &[],
    ),
    r(
        "pchat-compliance-database",
        &[Chat],
        CHAT,
        Rule,
        &["chat-delivery"],
        &["compliance-store"],
    ),
    r(
        "minimum-topology",
        &[Chat],
        ALL,
        Rule,
        &[],
        &["front-end-required", "back-end-required"],
    ),
    r(
        "pchat-multiple-pools",
        &[Chat],
        CHAT,
        BuiltIn,
        &[],
        &["compliance-store"],
    ),
    r(
        "pchat-standard-edition",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["pchat-standard-edition"],
    ),
    r(
        "pchat-standard-edition-no-ha",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["pchat-standard-edition"],
    ),
    r(
        "pchat-standard-edition-scale",
        &[Chat],
        CHAT,
        Rule,
        &[],
        &["capacity"],
    ),
    r(
        "pchat-no-group-chat-upgrade",
        &[Chat],
        CHAT,
        NotApplicable,
        &[],
        &[],
    ),
];

/// Whether the requirement concerns a machine running `roles`.
pub fn applies(req: &Requirement, roles: &[Role]) -> bool {
    req.roles.is_empty() || req.roles.iter().any(|r| roles.contains(r))
}

/// Whether `pattern` (an identifier, or a family ending in `:`) names check `id`.
pub fn matches(pattern: &str, id: &str) -> bool {
    if pattern.ends_with(':') {
        id.starts_with(pattern)
    } else {
        id == pattern
    }
}

/// The requirements check `id` stands for on a machine running `roles`.
pub fn covered_by(id: &str, roles: &[Role]) -> Vec<&'static str> {
    REQUIREMENTS
        .iter()
        .filter(|r| applies(r, roles) && r.checks.iter().any(|p| matches(p, id)))
        .map(|r| r.id)
        .collect()
}
