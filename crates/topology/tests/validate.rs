//! Every validation rule, each with a topology that breaks it. The offending line
//! of each topology ends with `# HERE`; the diagnostic must name that line.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_topology::starter::{StarterOptions, starter};
use confab_topology::{Diagnostic, Edition, Report, Severity, Topology, validate};

fn report(src: &str) -> Report {
    let t = Topology::parse(src).unwrap_or_else(|e| panic!("parse failed: {e}\n{src}"));
    validate(&t, src)
}

fn marked_line(src: &str) -> usize {
    src.lines()
        .position(|l| l.trim_end().ends_with("# HERE"))
        .map(|i| i + 1)
        .expect("the test topology marks its offending line with # HERE")
}

/// Asserts a diagnostic of `rule` and `severity` on the `# HERE` line.
fn expect(src: &str, rule: &str, severity: Severity) -> Diagnostic {
    let r = report(src);
    let line = marked_line(src);
    let found = r
        .diagnostics
        .iter()
        .find(|d| d.rule == rule && d.severity == severity && d.line == Some(line))
        .cloned();
    found.unwrap_or_else(|| {
        panic!(
            "expected {severity} [{rule}] on line {line}; got:\n{}",
            r.render("test.toml")
        )
    })
}

fn expect_error(src: &str, rule: &str) -> Diagnostic {
    expect(src, rule, Severity::Error)
}

fn expect_warning(src: &str, rule: &str) -> Diagnostic {
    expect(src, rule, Severity::Warning)
}

/// Asserts an error of `rule` about the whole file (no line to point at).
fn expect_whole_file(src: &str, rule: &str) -> Diagnostic {
    let r = report(src);
    let d = r
        .diagnostics
        .iter()
        .find(|d| d.rule == rule && d.severity == Severity::Error)
        .cloned()
        .unwrap_or_else(|| panic!("expected error [{rule}]; got:\n{}", r.render("test.toml")));
    assert!(d.is_whole_file(), "{d:?}");
    assert_eq!((d.line, d.column), (None, None));
    let text = r.render("test.toml");
    assert!(
        text.contains(&format!("test.toml: error[{rule}]: ")),
        "{text}"
    );
    assert!(text.contains("no single line to fix"), "{text}");
    assert!(!text.contains("test.toml:1:1:"), "{text}");
    d
}

fn assert_clean(src: &str) {
    let r = report(src);
    assert!(r.diagnostics.is_empty(), "{}", r.render("test.toml"));
}

const HEAD: &str = r#"sip_domains = ["contoso.com"]

[[site]]
name = "main"
"#;

const SE_STORE: &str = r#"
[[store]]
name = "backend"
kind = "back-end"
sqlite = "confab.db"
"#;

const EE_STORE: &str = r#"
[[store]]
name = "backend"
kind = "back-end"
url = "postgres://confab:pw@db.contoso.com:5432/confab"
"#;

fn se(extra_pool: &str, roles: &str) -> String {
    format!(
        r#"{HEAD}{SE_STORE}
[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"
{extra_pool}
[[pool.machine]]
fqdn = "se01.contoso.com"
roles = {roles}
"#
    )
}

fn ee_pool(n: usize, extra_pool: &str) -> String {
    let mut s = format!(
        r#"
[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
{extra_pool}
"#
    );
    for i in 1..=n {
        let mark = if i == 13 { " # HERE" } else { "" };
        s.push_str(&format!(
            "[[pool.machine]]\nfqdn = \"fe{i:02}.contoso.com\"{mark}\nroles = [\"front-end\"]\n\n"
        ));
    }
    s
}

#[test]
fn minimal_standard_edition_is_clean() {
    assert_clean(&se("", r#"["front-end"]"#));
}

#[test]
fn minimal_enterprise_pool_is_clean() {
    assert_clean(&format!("{HEAD}{EE_STORE}{}", ee_pool(2, "")));
}

#[test]
fn examples_and_starters_are_clean() {
    for (name, src) in [
        (
            "standard",
            include_str!("../../../examples/topology-standard.toml"),
        ),
        (
            "enterprise",
            include_str!("../../../examples/topology-enterprise.toml"),
        ),
    ] {
        let t = Topology::parse(src).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = validate(&t, src);
        assert!(!r.has_errors(), "{name}:\n{}", r.render(name));
    }
    let se = starter(&StarterOptions {
        edition: Edition::Standard,
        machines: vec!["se01.contoso.com".into()],
        pool: None,
        sip_domain: None,
    })
    .unwrap();
    assert_clean(&se);
    let ee = starter(&StarterOptions {
        edition: Edition::Enterprise,
        machines: vec!["fe01.fabrikam.com".into(), "fe02.fabrikam.com".into()],
        pool: None,
        sip_domain: Some("fabrikam.com".into()),
    })
    .unwrap();
    assert_clean(&ee);
    let t = Topology::parse(&ee).unwrap();
    assert_eq!(t.pools[0].fqdn(), "pool01.fabrikam.com");
    assert_eq!(t.pools[0].machines.len(), 2);
    assert!(
        starter(&StarterOptions {
            edition: Edition::Standard,
            machines: vec!["a.contoso.com".into(), "b.contoso.com".into()],
            pool: None,
            sip_domain: None,
        })
        .is_err()
    );
    assert!(
        starter(&StarterOptions {
            edition: Edition::Standard,
            machines: vec!["not a name".into()],
            pool: None,
            sip_domain: None,
        })
        .is_err()
    );
}

#[test]
fn syntax_and_type_errors_name_the_line() {
    let src = "sip_domains = [\"contoso.com\"]\n\n[[site]]\nname = \"main\"\ncolour = \"blue\"\n";
    let e = Topology::parse(src).unwrap_err();
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.to_string().contains("line 5"), "{e}");

    let src = se("", r#"["front-end", "tea-maker"]"#);
    let e = Topology::parse(&src).unwrap_err();
    let line = src.lines().position(|l| l.contains("tea-maker")).unwrap() + 1;
    assert_eq!(e.line(), Some(line), "{e}");

    let e = Topology::parse("sip_domains = [\"a.b\"\n[[pool]]").unwrap_err();
    assert!(e.line().is_some(), "{e}");

    let src = se("users = -5", r#"["front-end"]"#);
    let e = Topology::parse(&src).unwrap_err();
    let line = src.lines().position(|l| l.contains("users = -5")).unwrap() + 1;
    assert_eq!(e.line(), Some(line), "{e}");
}

#[test]
fn front_end_required() {
    let src = format!(
        r#"{HEAD}{EE_STORE}
[[pool]]
fqdn = "dir01.contoso.com"
site = "main"

[[pool.machine]]
fqdn = "dir01.contoso.com"
roles = ["director"]
"#
    );
    let d = expect_whole_file(&src, "front-end-required");
    assert!(
        d.message
            .contains("no Front End or Standard Edition server")
    );
    assert!(d.help.unwrap().contains("[[pool.machine]]"));
}

#[test]
fn back_end_required_on_the_pool() {
    let src = format!(
        r#"{HEAD}{SE_STORE}
[[pool]]
fqdn = "se01.contoso.com" # HERE
site = "main"
edition = "standard"

[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]
"#
    );
    expect_error(&src, "back-end-required");
}

#[test]
fn back_end_store_required() {
    let src = format!(
        r#"{HEAD}
[[store]]
name = "files"
kind = "file"
path = "files"

[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "files"

[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]
"#
    );
    expect_whole_file(&src, "back-end-required");
    let r = report(&src);
    assert!(
        r.by_rule("store-kind").next().is_some(),
        "{}",
        r.render("t")
    );
}

#[test]
fn persistent_chat_not_collocated_with_enterprise_front_end() {
    let src = format!(
        r#"{HEAD}{EE_STORE}
[[store]]
name = "pchat"
kind = "persistent-chat"
url = "postgres://confab:pw@db.contoso.com:5432/pchat"

[[pool]]
fqdn = "pool01.contoso.com"
site = "main"
edition = "enterprise"
backend = "backend"
persistent_chat_store = "pchat"

[[pool.machine]]
fqdn = "fe01.contoso.com"
roles = ["front-end", "persistent-chat"] # HERE
"#
    );
    let d = expect_error(&src, "pchat-collocation");
    assert!(d.help.unwrap().contains("pool of its own"));
}

fn pchat_pool(active: usize, passive: usize, extra: &str) -> String {
    let mut s = format!(
        r#"{HEAD}{EE_STORE}{}
[[store]]
name = "pchat"
kind = "persistent-chat"
url = "postgres://confab:pw@chatdb.contoso.com:5432/pchat"

[[store]]
name = "files"
kind = "file"
path = "/srv/confab-files"

[[pool]]
fqdn = "pchat.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"
persistent_chat_store = "pchat"
{extra}
"#,
        ee_pool(1, "file_store = \"files\"")
    );
    for i in 1..=active + passive {
        let state = if i <= active { "active" } else { "passive" };
        let mark = if i == 5 && state == "active" {
            " # HERE"
        } else {
            ""
        };
        s.push_str(&format!(
            "[[pool.machine]]\nfqdn = \"pchat{i:02}.contoso.com\"\nroles = [\"persistent-chat\"]\npersistent_chat = \"{state}\"{mark}\n\n"
        ));
    }
    s
}

#[test]
fn at_most_four_active_persistent_chat_servers() {
    assert_clean(&pchat_pool(4, 4, ""));
    let d = expect_error(&pchat_pool(5, 0, ""), "pchat-active-limit");
    assert!(d.message.contains("5 active"), "{}", d.message);
}

#[test]
fn enterprise_persistent_chat_needs_its_store() {
    let src = pchat_pool(1, 0, "").replace(
        "fqdn = \"pchat.contoso.com\"\n",
        "fqdn = \"pchat.contoso.com\" # HERE\n",
    );
    let src = src.replace("persistent_chat_store = \"pchat\"\n", "");
    expect_error(&src, "pchat-store");
}

#[test]
fn persistent_chat_on_standard_edition_warns() {
    let src = se("", r#"["front-end", "persistent-chat"]"#).replace(
        "fqdn = \"se01.contoso.com\"\nsite",
        "fqdn = \"se01.contoso.com\" # HERE\nsite",
    );
    let d = expect_warning(&src, "pchat-standard-edition");
    assert!(d.message.contains("no high availability"));
    assert!(!report(&src).has_errors());
}

#[test]
fn persistent_chat_on_standard_edition_has_no_passive_server() {
    let src =
        se("", r#"["front-end", "persistent-chat"]"#) + "persistent_chat = \"passive\" # HERE\n";
    expect_error(&src, "pchat-standard-edition");
}

#[test]
fn persistent_chat_on_standard_edition_uses_the_local_store() {
    let src = se(
        "persistent_chat_store = \"pchat\" # HERE\n",
        r#"["front-end", "persistent-chat"]"#,
    ) + "\n[[store]]\nname = \"pchat\"\nkind = \"persistent-chat\"\nurl = \"postgres://db.contoso.com/pchat\"\n";
    expect_error(&src, "pchat-standard-edition");
}

#[test]
fn persistent_chat_on_standard_edition_is_collocated() {
    let src = format!(
        r#"{HEAD}{SE_STORE}
[[pool]]
fqdn = "se01.contoso.com"
site = "main"
edition = "standard"
backend = "backend"

[[pool.machine]]
fqdn = "se01.contoso.com"
roles = ["front-end"]

[[pool]]
fqdn = "chat.contoso.com"
site = "main"
edition = "standard"

[[pool.machine]]
fqdn = "chat.contoso.com"
roles = ["persistent-chat"] # HERE
"#
    );
    expect_error(&src, "pchat-standard-edition");
}

#[test]
fn at_most_twelve_front_ends_per_enterprise_pool() {
    assert_clean(&format!("{HEAD}{EE_STORE}{}", ee_pool(12, "")));
    let d = expect_error(
        &format!("{HEAD}{EE_STORE}{}", ee_pool(13, "")),
        "front-end-limit",
    );
    assert!(d.message.contains("13 front ends"), "{}", d.message);
}

#[test]
fn standard_edition_is_one_server() {
    let src = se("", r#"["front-end"]"#)
        + "\n[[pool.machine]]\nfqdn = \"se02.contoso.com\" # HERE\nroles = [\"front-end\"]\n";
    expect_error(&src, "standard-edition");
}

#[test]
fn compliance_needs_a_store() {
    let src = pchat_pool(1, 0, "compliance = true # HERE");
    let d = expect_error(&src, "compliance-store");
    assert!(d.message.contains("its own compliance store"));
}

#[test]
fn compliance_needs_its_own_store() {
    let src = pchat_pool(
        1,
        0,
        "compliance = true\ncompliance_store = \"pchat\" # HERE",
    );
    let d = expect_error(&src, "compliance-store");
    assert!(d.message.contains("its own store"), "{}", d.message);
    let ok = pchat_pool(1, 0, "compliance = true\ncompliance_store = \"comp\"")
        + "[[store]]\nname = \"comp\"\nkind = \"compliance\"\nurl = \"postgres://db.contoso.com/comp\"\n";
    assert_clean(&ok);
}

fn edge(machine_lines: &str) -> String {
    format!(
        r#"{HEAD}{EE_STORE}{}
[[pool]]
fqdn = "edge.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"

[[pool.machine]]
fqdn = "edge01.contoso.com"
roles = ["edge"]
{machine_lines}
"#,
        ee_pool(1, "")
    )
}

#[test]
fn edge_needs_internal_and_external_addresses() {
    assert_clean(&edge(
        "internal_address = \"10.0.1.10\"\nexternal_address = \"203.0.113.10\"",
    ));
    let src = edge("internal_address = \"10.0.1.10\"").replace(
        "fqdn = \"edge01.contoso.com\"",
        "fqdn = \"edge01.contoso.com\" # HERE",
    );
    let d = expect_error(&src, "edge-addresses");
    assert!(
        d.message.contains("external_address missing"),
        "{}",
        d.message
    );
    let src = edge("internal_address = \"10.0.1.10\"\nexternal_address = \"10.0.1.10\" # HERE");
    expect_error(&src, "edge-addresses");
    let src = edge("internal_address = \"10.0.1.10\"\nexternal_address = \"not-an-ip\" # HERE");
    expect_error(&src, "address");
}

fn director(pool_lines: &str, roles: &str) -> String {
    format!(
        r#"{HEAD}{EE_STORE}{}
[[pool]]
fqdn = "dir.contoso.com"
site = "main"
next_hop = "pool01.contoso.com"
{pool_lines}

[[pool.machine]]
fqdn = "dir01.contoso.com"
roles = {roles}
"#,
        ee_pool(1, "")
    )
}

#[test]
fn director_homes_no_users() {
    assert_clean(&director("remote_users = 5000", r#"["director"]"#));
    let d = expect_error(
        &director("users = 100 # HERE", r#"["director"]"#),
        "director-users",
    );
    assert!(d.message.contains("homes no users"));
    let src = director("", r#"["director", "front-end"] # HERE"#);
    expect_error(&src, "director-users");
}

#[test]
fn machine_fqdns_are_unique() {
    let src = format!("{HEAD}{EE_STORE}{}", ee_pool(2, "")).replace(
        "fqdn = \"fe02.contoso.com\"",
        "fqdn = \"FE01.contoso.com\" # HERE",
    );
    let d = expect_error(&src, "duplicate-fqdn");
    assert!(d.message.contains("fe01.contoso.com"));
}

#[test]
fn pool_fqdn_is_not_another_machine() {
    let src = format!("{HEAD}{EE_STORE}{}", ee_pool(2, "")).replace(
        "fqdn = \"pool01.contoso.com\"",
        "fqdn = \"fe01.contoso.com\" # HERE",
    );
    expect_error(&src, "duplicate-fqdn");
}

#[test]
fn listening_ports_are_unique_per_machine() {
    let src = se("", r#"["front-end", "mediation"]"#)
        + "\n[pool.machine.ports]\nmediation.sip-tls = 5061 # HERE\n";
    let d = expect_error(&src, "duplicate-port");
    assert!(d.message.contains("5061"), "{}", d.message);
    // Moving the front end's SIP port out of the way fixes it.
    let ok = se("", r#"["front-end", "mediation"]"#)
        + "\n[pool.machine.ports]\nmediation.sip-tls = 5071\n";
    assert_clean(&ok);
    // An edge's internal and external listeners may share a port number.
    assert_clean(&edge(
        "internal_address = \"10.0.1.10\"\nexternal_address = \"203.0.113.10\"",
    ));
    let src =
        se("", r#"["front-end"]"#) + "\n[pool.machine.ports]\nfront-end.sip-tls = 8080 # HERE\n";
    expect_error(&src, "duplicate-port");
    let src = se("", r#"["front-end"]"#) + "\n[pool.machine.ports]\nfront-end.nope = 4000 # HERE\n";
    expect_error(&src, "ports");
}

#[test]
fn referenced_pools_and_stores_exist() {
    let src =
        se("", r#"["front-end"]"#).replace("site = \"main\"\n", "site = \"elsewhere\" # HERE\n");
    expect_error(&src, "unknown-reference");
    let src = se("", r#"["front-end"]"#)
        .replace("backend = \"backend\"\n", "backend = \"nope\" # HERE\n");
    expect_error(&src, "unknown-reference");
    let src = se("file_store = \"uploads\" # HERE", r#"["front-end"]"#);
    expect_error(&src, "unknown-reference");
    let src = se(
        "edge_pool = \"edge.contoso.com\" # HERE",
        r#"["front-end"]"#,
    );
    expect_error(&src, "unknown-reference");
    let src = director("", r#"["director"]"#).replace(
        "next_hop = \"pool01.contoso.com\"",
        "next_hop = \"pool99.contoso.com\" # HERE",
    );
    expect_error(&src, "unknown-reference");
    let src = format!(
        "central_store = \"cms\" # HERE\n{}",
        se("", r#"["front-end"]"#)
    );
    expect_error(&src, "unknown-reference");
}

#[test]
fn enterprise_back_end_is_postgres_and_standard_is_sqlite() {
    let src = format!("{HEAD}{SE_STORE}{}", ee_pool(2, ""))
        .replace("backend = \"backend\"", "backend = \"backend\" # HERE");
    expect_error(&src, "store-location");
    let src = se("", r#"["front-end"]"#)
        .replace(
            "sqlite = \"confab.db\"",
            "url = \"postgres://db.contoso.com/x\"",
        )
        .replace("backend = \"backend\"", "backend = \"backend\" # HERE");
    expect_error(&src, "store-location");
    let src = se("", r#"["front-end"]"#).replace(
        "sqlite = \"confab.db\"",
        "sqlite = \"confab.db\"\npath = \"x\" # HERE",
    );
    expect_error(&src, "store-location");
}

#[test]
fn front_end_pools_state_their_edition() {
    let src = se("", r#"["front-end"]"#)
        .replace("edition = \"standard\"\n", "")
        .replace(
            "fqdn = \"se01.contoso.com\"\nsite",
            "fqdn = \"se01.contoso.com\" # HERE\nsite",
        );
    expect_error(&src, "edition");
}

#[test]
fn sip_domains_are_valid() {
    let src = se("", r#"["front-end"]"#).replace(
        "sip_domains = [\"contoso.com\"]",
        "sip_domains = [\"contoso.com\", \"not a domain\"] # HERE",
    );
    expect_error(&src, "sip-domain");
    let src = se("", r#"["front-end"]"#).replace("sip_domains = [\"contoso.com\"]", "");
    let d = expect_whole_file(&src, "sip-domain");
    assert!(d.help.unwrap().contains("at the top of the file"));
}

#[test]
fn machines_of_a_pool_run_the_same_roles() {
    let src = format!("{HEAD}{EE_STORE}{}", ee_pool(2, "")).replace(
        "fqdn = \"fe02.contoso.com\"\nroles = [\"front-end\"]",
        "fqdn = \"fe02.contoso.com\"\nroles = [\"front-end\", \"mediation\"] # HERE",
    );
    expect_error(&src, "pool-roles");
}

#[test]
fn capacity_warnings() {
    let d = expect_warning(&se("users = 6000 # HERE", r#"["front-end"]"#), "capacity");
    assert!(d.message.contains("5000"), "{}", d.message);
    assert!(
        !report(&se("users = 5000", r#"["front-end"]"#))
            .diagnostics
            .iter()
            .any(|d| d.rule == "capacity")
    );

    let src = format!("{HEAD}{EE_STORE}{}", ee_pool(12, "users = 90000 # HERE"));
    let d = expect_warning(&src, "capacity");
    assert!(d.message.contains("80000"), "{}", d.message);

    let src = format!("{HEAD}{EE_STORE}{}", ee_pool(2, "users = 20000 # HERE"));
    let d = expect_warning(&src, "capacity");
    assert!(d.message.contains("per front end"), "{}", d.message);
    assert!(d.help.unwrap().contains("4 are needed"));

    let d = expect_warning(&pchat_pool(1, 0, "active_users = 25000 # HERE"), "capacity");
    assert!(d.message.contains("20000"), "{}", d.message);
    assert!(
        !report(&pchat_pool(2, 0, "active_users = 25000"))
            .diagnostics
            .iter()
            .any(|d| d.rule == "capacity")
    );

    let src = edge("internal_address = \"10.0.1.10\"\nexternal_address = \"203.0.113.10\"").replace(
        "next_hop = \"pool01.contoso.com\"\n\n[[pool.machine]]\nfqdn = \"edge01",
        "next_hop = \"pool01.contoso.com\"\nremote_users = 13000 # HERE\n\n[[pool.machine]]\nfqdn = \"edge01",
    );
    let d = expect_warning(&src, "capacity");
    assert!(d.message.contains("12000"), "{}", d.message);

    let d = expect_warning(
        &director("remote_users = 12001 # HERE", r#"["director"]"#),
        "capacity",
    );
    assert!(d.message.contains("per edge or director"));
}

#[test]
fn render_names_file_line_and_rule() {
    let src = director("users = 100 # HERE", r#"["director"]"#);
    let text = report(&src).render("topo.toml");
    let line = marked_line(&src);
    assert!(
        text.contains(&format!("topo.toml:{line}:")) && text.contains("error[director-users]:"),
        "{text}"
    );
    assert!(text.contains("    help: "), "{text}");
    assert!(text.contains("1 error, 0 warnings"), "{text}");
}

#[test]
fn garbage_does_not_panic() {
    for src in [
        "",
        "[[pool]]",
        "[[pool]]\nfqdn = 1",
        "pool = 3",
        "[[pool.machine]]\nfqdn = \"a.b\"\nroles = []",
        "[[pool]]\nfqdn = \"a.b\"\nsite = \"s\"\n[[pool.machine]]\nfqdn = \"a.b\"\nroles = []\n[pool.machine.ports]\nfront-end = 3",
        "\u{0}\u{ffff}",
    ] {
        if let Ok(t) = Topology::parse(src) {
            let _ = validate(&t, src).render("x");
        }
    }
}

// Issue 18: checks that tell the truth.

#[test]
fn compliance_store_is_compared_by_database_not_by_name() {
    // Another store name, another spelling of the URL, the chat store's database.
    let same_as_chat = pchat_pool(
        1,
        0,
        "compliance = true\ncompliance_store = \"comp\" # HERE",
    ) + "[[store]]\nname = \"comp\"\nkind = \"compliance\"\nurl = \"postgresql://auditor:x@ChatDB.contoso.com/pchat\"\n";
    let d = expect_error(&same_as_chat, "compliance-store");
    assert!(
        d.message.contains("same database \"pchat\""),
        "{}",
        d.message
    );
    assert!(d.message.contains("\"pchat\""), "{}", d.message);
    // The back end's database, by a loopback spelling of the same server.
    let src = pchat_pool(
        1,
        0,
        "compliance = true\ncompliance_store = \"comp\" # HERE",
    )
    .replace("db.contoso.com:5432/confab", "localhost:5432/confab")
        + "[[store]]\nname = \"comp\"\nkind = \"compliance\"\nurl = \"postgres://confab:pw@127.0.0.1/confab\"\n";
    let d = expect_error(&src, "compliance-store");
    assert!(
        d.message.contains("back-end store \"backend\""),
        "{}",
        d.message
    );
    // Another database on the same server is a separate database.
    let ok = pchat_pool(1, 0, "compliance = true\ncompliance_store = \"comp\"")
        + "[[store]]\nname = \"comp\"\nkind = \"compliance\"\nurl = \"postgres://confab:pw@db.contoso.com:5432/compliance\"\n";
    let r = report(&ok);
    assert!(
        r.by_rule("compliance-store").next().is_none(),
        "{}",
        r.render("t")
    );
}

#[test]
fn database_identity_follows_libpq_defaults() {
    use confab_topology::DatabaseId;
    use confab_topology::model::postgres_database_id;
    let id = |u: &str| postgres_database_id(u).unwrap();
    assert_eq!(
        id("postgres://a:b@DB.x.com/confab"),
        id("postgresql://c@db.x.com:5432/confab")
    );
    assert_ne!(id("postgres://db.x.com/a"), id("postgres://db.x.com/b"));
    assert_ne!(
        id("postgres://db.x.com:5433/a"),
        id("postgres://db.x.com/a")
    );
    assert_eq!(id("postgres://u@[::1]/u"), id("postgres://u@localhost"));
    assert_eq!(
        id("postgres:///confab?host=/run/postgresql"),
        id("postgres://localhost/confab")
    );
    assert_eq!(
        id("postgres://h/x?dbname=y&port=6000"),
        DatabaseId::Postgres {
            host: "h".into(),
            port: 6000,
            database: "y".into()
        }
    );
    assert!(postgres_database_id("mysql://h/x").is_none());
    assert!(postgres_database_id("postgres://h:notaport/x").is_none());
}

#[test]
fn persistent_chat_store_is_its_own_database_preferably_on_its_own_server() {
    let same_db = pchat_pool(1, 0, "").replace(
        "url = \"postgres://confab:pw@chatdb.contoso.com:5432/pchat\"",
        "url = \"postgres://chat:pw@db.contoso.com/confab\"",
    );
    let same_db = same_db.replacen(
        "persistent_chat_store = \"pchat\"\n",
        "persistent_chat_store = \"pchat\" # HERE\n",
        1,
    );
    expect_error(&same_db, "pchat-store");
    // Same server, own database: supported, with the advice to dedicate one.
    let shared = pchat_pool(1, 0, "")
        .replace("chatdb.contoso.com:5432/pchat", "db.contoso.com:5432/pchat")
        .replacen(
            "persistent_chat_store = \"pchat\"\n",
            "persistent_chat_store = \"pchat\" # HERE\n",
            1,
        );
    let d = expect_warning(&shared, "pchat-store-dedicated");
    assert!(d.message.contains("db.contoso.com:5432"), "{}", d.message);
    assert!(!report(&shared).has_errors());
    assert_clean(&pchat_pool(1, 0, ""));
}

#[test]
fn persistent_chat_pool_needs_an_active_server() {
    let src = pchat_pool(0, 2, "active_users = 1000").replacen(
        "persistent_chat = \"passive\"",
        "persistent_chat = \"passive\" # HERE",
        1,
    );
    let d = expect_error(&src, "pchat-active-limit");
    assert!(d.message.contains("no active server"), "{}", d.message);
    // The capacity check is not skipped for want of an active server.
    let r = report(&src);
    let cap = r
        .by_rule("capacity")
        .next()
        .unwrap_or_else(|| panic!("{}", r.render("t")));
    assert!(cap.message.contains("no active server"), "{}", cap.message);
}

#[test]
fn persistent_chat_pool_uses_at_most_four_passive_servers() {
    let mut src = pchat_pool(1, 5, "");
    // Mark the fifth passive server.
    let idx = src
        .match_indices("persistent_chat = \"passive\"")
        .nth(4)
        .unwrap()
        .0;
    src.insert_str(idx + "persistent_chat = \"passive\"".len(), " # HERE");
    let d = expect_error(&src, "pchat-active-limit");
    assert!(d.message.contains("5 passive"), "{}", d.message);
    assert_clean(&pchat_pool(4, 4, ""));
}

#[test]
fn standard_edition_persistent_chat_is_not_told_to_add_servers() {
    let src = se(
        "file_store = \"files\"\nactive_users = 25000 # HERE",
        r#"["front-end", "persistent-chat"]"#,
    ) + "[[store]]\nname = \"files\"\nkind = \"file\"\npath = \"files\"\n";
    let d = expect_warning(&src, "capacity");
    let help = d.help.unwrap();
    assert!(!help.contains("add active"), "{help}");
    assert!(help.contains("Enterprise Persistent Chat pool"), "{help}");
    // Limited scale: beyond the Standard Edition server's own users.
    let src = se(
        "file_store = \"files\"\nactive_users = 6000 # HERE",
        r#"["front-end", "persistent-chat"]"#,
    ) + "[[store]]\nname = \"files\"\nkind = \"file\"\npath = \"files\"\n";
    let d = expect_warning(&src, "capacity");
    assert!(d.message.contains("limited"), "{}", d.message);
}

#[test]
fn enterprise_file_store_is_one_shared_store() {
    let src = format!(
        "{HEAD}{EE_STORE}{}[[store]]\nname = \"files\"\nkind = \"file\"\npath = \"files\" # HERE\n",
        ee_pool(2, "file_store = \"files\"")
    );
    let d = expect_error(&src, "file-store-shared");
    assert!(d.message.contains("each front end"), "{}", d.message);
    assert!(d.help.unwrap().contains("mount"));
    let ok = src.replace("path = \"files\" # HERE", "path = \"/srv/confab-files\"");
    assert_clean(&ok);
    // Standard Edition keeps its folder in the data directory.
    let se_src = se("file_store = \"files\"", r#"["front-end"]"#)
        + "[[store]]\nname = \"files\"\nkind = \"file\"\npath = \"files\"\n";
    assert_clean(&se_src);
}

#[test]
fn persistent_chat_web_services_need_the_front_ends_file_store() {
    let src = pchat_pool(1, 0, "")
        .replace("file_store = \"files\"\n", "")
        .replace(
            "next_hop = \"pool01.contoso.com\"\npersistent_chat_store",
            "next_hop = \"pool01.contoso.com\" # HERE\npersistent_chat_store",
        );
    let d = expect_warning(&src, "pchat-web");
    assert!(d.message.contains("pool01.contoso.com"), "{}", d.message);
}

/// A Standard Edition server with collocated Mediation, a stand-alone Mediation
/// pool behind it, a second site, then `gateways`.
fn with_gateways(gateways: &str) -> String {
    format!(
        r#"{}
[[site]]
name = "branch"

[[pool]]
fqdn = "med.contoso.com"
site = "main"
next_hop = "se01.contoso.com"

[[pool.machine]]
fqdn = "med01.contoso.com"
addresses = ["192.0.2.30"]
roles = ["mediation"]

[[pool]]
fqdn = "lonely.contoso.com"
site = "main"

[[pool.machine]]
fqdn = "lonely01.contoso.com"
roles = ["mediation"]
{gateways}"#,
        se("", r#"["front-end", "mediation"]"#)
    )
}

const GW1: &str = r#"
[[gateway]]
fqdn = "gw1.contoso.com"
address = "192.0.2.20"
port = 5067
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#;

#[test]
fn gateways_are_clean_and_name_their_trunks() {
    let src = with_gateways(&format!(
        r#"{GW1}
[[gateway]]
name = "carrier"
address = "198.51.100.7"
transport = "tls"
mediation_pool = "med.contoso.com"
site = "main"

[[gateway]]
address = "192.0.2.21"
transport = "udp"
mediation_pool = "MED.contoso.com"
"#
    ));
    assert_clean(&src);
    let t = Topology::parse(&src).unwrap();
    let trunks: Vec<(String, String, &str)> = t
        .gateways
        .iter()
        .map(|g| {
            (
                g.trunk_name(),
                g.socket_addr().unwrap().to_string(),
                t.voice_pool_of(g).unwrap().fqdn(),
            )
        })
        .collect();
    assert_eq!(
        trunks,
        vec![
            (
                "gw1.contoso.com".to_string(),
                "192.0.2.20:5067".to_string(),
                "se01.contoso.com"
            ),
            (
                "carrier".to_string(),
                "198.51.100.7:5061".to_string(),
                "se01.contoso.com"
            ),
            (
                "192.0.2.21".to_string(),
                "192.0.2.21:5060".to_string(),
                "se01.contoso.com"
            ),
        ],
        "the default port follows the transport; a Mediation pool's trunks go to its next hop"
    );
    assert_eq!(t.gateways[2].site(&t), Some("main"));
}

#[test]
fn gateway_with_a_bad_address_is_refused() {
    let src = with_gateways(
        r#"
[[gateway]]
fqdn = "gw1.contoso.com"
address = "gw1.contoso.com" # HERE
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#,
    );
    let d = expect_error(&src, "address");
    assert!(d.message.contains("not an IP address"), "{}", d.message);
    let src = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
port = 0 # HERE
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#,
    );
    expect_error(&src, "ports");
    let src = with_gateways(
        r#"
[[gateway]]
fqdn = "gw 1" # HERE
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#,
    );
    expect_error(&src, "fqdn");
    // An IPv6 address cannot name a trunk: the gateway needs a name.
    let src = with_gateways(
        r#"
[[gateway]]
address = "2001:db8::20" # HERE
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#,
    );
    let d = expect_error(&src, "gateway-name");
    assert!(d.help.unwrap().contains("name ="));
    // A misspelt transport is a type error with its line.
    let src = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "sctp"
mediation_pool = "se01.contoso.com"
"#,
    );
    let e = Topology::parse(&src).unwrap_err();
    let line = src.lines().position(|l| l.contains("sctp")).unwrap() + 1;
    assert_eq!(e.line(), Some(line), "{e}");
}

#[test]
fn gateway_with_an_unknown_or_wrong_pool_or_site_is_refused() {
    let unknown = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "med2.contoso.com" # HERE
"#,
    );
    let d = expect_error(&unknown, "unknown-reference");
    assert!(d.message.contains("med2.contoso.com"), "{}", d.message);

    // A pool that runs no Mediation.
    let no_mediation = format!(
        "{}{}",
        se("", r#"["front-end"]"#),
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "se01.contoso.com" # HERE
"#
    );
    let d = expect_error(&no_mediation, "gateway-pool");
    assert!(d.message.contains("no Mediation"), "{}", d.message);

    // A Mediation pool that leads to no front ends.
    let nowhere = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "lonely.contoso.com" # HERE
"#,
    );
    let d = expect_error(&nowhere, "gateway-pool");
    assert!(d.help.unwrap().contains("next_hop"));

    let site = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "se01.contoso.com"
site = "paris" # HERE
"#,
    );
    let d = expect_error(&site, "unknown-reference");
    assert!(d.message.contains("paris"), "{}", d.message);

    let other_site = with_gateways(
        r#"
[[gateway]]
address = "192.0.2.20"
transport = "tcp"
mediation_pool = "se01.contoso.com"
site = "branch" # HERE
"#,
    );
    expect_warning(&other_site, "gateway-site");
    assert!(!report(&other_site).has_errors());
}

#[test]
fn duplicate_gateways_are_refused() {
    let same_endpoint = with_gateways(&format!(
        r#"{GW1}
[[gateway]]
name = "again"
address = "192.0.2.20" # HERE
port = 5067
transport = "udp"
mediation_pool = "med.contoso.com"
"#
    ));
    let d = expect_error(&same_endpoint, "duplicate-gateway");
    assert!(d.message.contains("192.0.2.20:5067"), "{}", d.message);

    let same_name = with_gateways(&format!(
        r#"{GW1}
[[gateway]]
name = "GW1.contoso.com" # HERE
address = "192.0.2.21"
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#
    ));
    expect_error(&same_name, "duplicate-gateway");

    let same_fqdn = with_gateways(&format!(
        r#"{GW1}
[[gateway]]
name = "gw1b"
fqdn = "gw1.contoso.com" # HERE
address = "192.0.2.21"
transport = "tcp"
mediation_pool = "se01.contoso.com"
"#
    ));
    expect_error(&same_fqdn, "duplicate-gateway");

    // Two trunks to one gateway on other ports are fine over UDP; over TCP the
    // gateway's own calls could not be told apart: a warning.
    let second_trunk = with_gateways(&format!(
        r#"{GW1}
[[gateway]]
name = "gw1-udp"
address = "192.0.2.20"
port = 5060
transport = "udp"
mediation_pool = "se01.contoso.com"

[[gateway]]
name = "gw1-tcp2"
address = "192.0.2.20"
port = 5068
transport = "tcp" # HERE
mediation_pool = "se01.contoso.com"
"#
    ));
    expect_warning(&second_trunk, "duplicate-gateway");
    assert!(!report(&second_trunk).has_errors());
}

#[test]
fn gateways_appear_in_the_diff() {
    let old = Topology::parse(&with_gateways(GW1)).unwrap();
    let new_src = with_gateways(&GW1.replace("5067", "5068"));
    let new = Topology::parse(&new_src).unwrap();
    let changes: Vec<String> = confab_topology::diff::changes(&old, &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        changes,
        vec![
            "~ gateway gw1.contoso.com: 192.0.2.20:5067/tcp via se01.contoso.com in site main -> 192.0.2.20:5068/tcp via se01.contoso.com in site main"
        ]
    );
    let none = Topology::parse(&with_gateways("")).unwrap();
    let removed = confab_topology::diff::changes(&old, &none);
    assert_eq!(removed.len(), 1);
    assert!(
        removed[0]
            .to_string()
            .starts_with("- gateway gw1.contoso.com")
    );
}
