use super::*;

fn rule(name: &str, pattern: &str, translation: &str) -> Rule {
    Rule {
        name: name.into(),
        pattern: pattern.into(),
        translation: translation.into(),
    }
}

fn sample() -> VoiceData {
    VoiceData {
        dial_plans: vec![
            DialPlan {
                scope: Scope::Global,
                description: None,
                rules: vec![
                    rule("ext", r"(\d{4})", "+1425555$1"),
                    rule("local7", r"(\d{7})", "+1425$1"),
                    rule("intl", r"00(\d+)", "+$1"),
                    rule("national", r"1?(\d{10})", "+1$1"),
                ],
            },
            DialPlan {
                scope: Scope::User("london".into()),
                description: None,
                rules: vec![rule("uk-national", r"0(\d{10})", "+44$1")],
            },
        ],
        policies: vec![
            VoicePolicy {
                scope: Scope::Global,
                usages: vec!["local".into()],
            },
            VoicePolicy {
                scope: Scope::User("intl".into()),
                usages: vec!["local".into(), "international".into()],
            },
        ],
        usages: vec!["local".into(), "international".into()],
        routes: vec![
            Route {
                name: "us".into(),
                pattern: r"\+1\d{10}".into(),
                usages: vec!["local".into()],
                trunks: vec!["gw1".into(), "gw2".into()],
            },
            Route {
                name: "world".into(),
                pattern: r"\+[2-9]\d+".into(),
                usages: vec!["international".into()],
                trunks: vec!["gw2".into()],
            },
        ],
        trunks: vec![
            Trunk {
                from_topology: false,
                name: "gw1".into(),
                gateway: "127.0.0.1:5080".parse().unwrap(),
                transport: TrunkTransport::Udp,
                rules: vec![rule("strip-plus", r"\+(\d+)", "$1")],
            },
            Trunk {
                from_topology: false,
                name: "gw2".into(),
                gateway: "127.0.0.2:5060".parse().unwrap(),
                transport: TrunkTransport::Tcp,
                rules: vec![],
            },
        ],
        users: vec![
            UserVoice {
                address: "alice@example.com".into(),
                line_uri: Some("+14255550100".into()),
                dial_plan: None,
                voice_policy: None,
            },
            UserVoice {
                address: "bob@example.com".into(),
                line_uri: Some("+14255550101".into()),
                dial_plan: Some("london".into()),
                voice_policy: Some("intl".into()),
            },
            UserVoice {
                address: "carol@example.com".into(),
                line_uri: None,
                dial_plan: None,
                voice_policy: None,
            },
        ],
        ..VoiceData::default()
    }
}

fn cfg() -> VoiceConfig {
    VoiceConfig::build(sample(), Homes::default()).unwrap()
}

#[test]
fn extension_rule() {
    let n = cfg().normalize(Some("alice@example.com"), "0101").unwrap();
    assert_eq!(n.rule.as_deref(), Some("ext"));
    assert_eq!(n.number, "+14255550101");
    assert_eq!(n.dial_plan, Some(Scope::Global));
}

#[test]
fn local_seven_digit_rule() {
    let n = cfg()
        .normalize(Some("alice@example.com"), "555-0100")
        .unwrap();
    assert_eq!(n.rule.as_deref(), Some("local7"));
    assert_eq!(n.number, "+14255550100");
}

#[test]
fn international_prefix_rule() {
    let n = cfg()
        .normalize(Some("alice@example.com"), "0014255550100")
        .unwrap();
    assert_eq!(n.rule.as_deref(), Some("intl"));
    assert_eq!(n.number, "+14255550100");
}

#[test]
fn national_rule_with_optional_one() {
    let c = cfg();
    let a = c
        .normalize(Some("alice@example.com"), "(425) 555-0199")
        .unwrap();
    assert_eq!(
        (a.rule.as_deref(), a.number.as_str()),
        (Some("national"), "+14255550199")
    );
    let b = c
        .normalize(Some("alice@example.com"), "14255550199")
        .unwrap();
    assert_eq!(b.number, "+14255550199");
}

#[test]
fn first_matching_rule_wins_in_order() {
    let mut d = sample();
    d.dial_plans[0]
        .rules
        .insert(0, rule("first", r"(\d{7})", "+1999$1"));
    let c = VoiceConfig::build(d, Homes::default()).unwrap();
    let n = c.normalize(Some("alice@example.com"), "5550100").unwrap();
    assert_eq!(
        (n.rule.as_deref(), n.number.as_str()),
        (Some("first"), "+19995550100")
    );
}

#[test]
fn e164_is_kept_when_no_rule_matches() {
    let n = cfg()
        .normalize(Some("alice@example.com"), "+442071234567")
        .unwrap();
    assert_eq!(n.rule, None);
    assert_eq!(n.number, "+442071234567");
}

#[test]
fn unmatched_non_e164_is_refused() {
    let e = cfg()
        .normalize(Some("alice@example.com"), "12")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no normalization rule of dial plan global"),
        "{e}"
    );
}

#[test]
fn user_scope_dial_plan_beats_global() {
    let n = cfg()
        .normalize(Some("bob@example.com"), "02071234567")
        .unwrap();
    assert_eq!(n.dial_plan, Some(Scope::User("london".into())));
    assert_eq!(
        (n.rule.as_deref(), n.number.as_str()),
        (Some("uk-national"), "+442071234567")
    );
    // The global plan's rules do not apply to bob.
    assert!(cfg().normalize(Some("bob@example.com"), "5550100").is_err());
}

/// A deployment of two sites: pool1 in Redmond, pool2 in Redmond too, pool3 in
/// Dublin; alice is on pool1 (the default pool), carol on pool2, dave on pool3,
/// bob (with his own dial plan and policy) on pool3.
fn homes() -> Homes {
    let mut h = Homes::new(Some("Pool1.example.com"));
    h.set_pool_site("pool1.example.com", "Redmond");
    h.set_pool_site("pool2.example.com", "redmond");
    h.set_pool_site("pool3.example.com", "dublin");
    h.set_user_pool("carol@example.com", "pool2.example.com");
    h.set_user_pool("Dave@Example.com", "pool3.example.com");
    h.set_user_pool("bob@example.com", "pool3.example.com");
    h
}

fn scoped() -> VoiceData {
    let mut d = sample();
    d.dial_plans.push(DialPlan {
        scope: Scope::Site("redmond".into()),
        description: None,
        rules: vec![rule("site", r"(\d{7})", "+1206$1")],
    });
    d.dial_plans.push(DialPlan {
        scope: Scope::Pool("pool1.example.com".into()),
        description: None,
        rules: vec![rule("pool", r"(\d{7})", "+1360$1")],
    });
    d.policies.push(VoicePolicy {
        scope: Scope::Site("dublin".into()),
        usages: vec!["international".into()],
    });
    for user in ["carol@example.com", "dave@example.com"] {
        d.users.retain(|u| u.address != user);
        d.users.push(UserVoice {
            address: user.into(),
            line_uri: Some(if user.starts_with('c') {
                "+14255550102".into()
            } else {
                "+35315550103".into()
            }),
            dial_plan: None,
            voice_policy: None,
        });
    }
    d
}

#[test]
fn homes_resolve_pool_and_site() {
    let h = homes();
    assert_eq!(
        h.of("ALICE@example.com"),
        Home {
            pool: Some("pool1.example.com".into()),
            site: Some("redmond".into())
        },
        "no pool of their own: the default pool, and its site"
    );
    assert_eq!(h.of("dave@example.com").site.as_deref(), Some("dublin"));
    let mut unknown = Homes::new(None);
    unknown.set_user_pool("eve@example.com", "pool9.example.com");
    assert_eq!(
        unknown.of("eve@example.com"),
        Home {
            pool: Some("pool9.example.com".into()),
            site: None
        }
    );
    assert_eq!(unknown.of("zed@example.com"), Home::default());
    assert_eq!(
        unknown.of("zed@example.com").to_string(),
        "unknown (user and global scopes only)"
    );
}

#[test]
fn dial_plan_scopes_user_then_pool_then_site_then_global() {
    let c = VoiceConfig::build(scoped(), homes()).unwrap();
    let plan = |user: &str, dialed: &str| {
        let n = c.normalize(Some(user), dialed).unwrap();
        (n.dial_plan.map(|s| s.to_string()), n.number)
    };
    // alice: her pool's plan beats her site's.
    assert_eq!(
        plan("alice@example.com", "5550100"),
        (Some("pool:pool1.example.com".into()), "+13605550100".into())
    );
    // carol: another pool of the same site: the site's plan.
    assert_eq!(
        plan("carol@example.com", "5550100"),
        (Some("site:redmond".into()), "+12065550100".into())
    );
    // dave: a site with no plan of its own: the global plan.
    assert_eq!(
        plan("dave@example.com", "5550100"),
        (Some("global".into()), "+14255550100".into())
    );
    // bob: his own plan wins over every scope of his home.
    assert_eq!(
        plan("bob@example.com", "02071234567"),
        (Some("london".into()), "+442071234567".into())
    );
    // Calls from a gateway (no user): the global plan.
    assert_eq!(
        c.normalize(None, "5550100").unwrap().dial_plan,
        Some(Scope::Global)
    );
    // Without homes, only user and global scopes apply.
    let flat = VoiceConfig::build(scoped(), Homes::default()).unwrap();
    assert_eq!(
        flat.normalize(Some("alice@example.com"), "5550100")
            .unwrap()
            .dial_plan,
        Some(Scope::Global)
    );
}

#[test]
fn voice_policy_scopes_user_then_site_then_global() {
    let c = VoiceConfig::build(scoped(), homes()).unwrap();
    let policy = |user: &str| c.policy_of(user).map(|p| p.scope.to_string());
    assert_eq!(policy("alice@example.com").as_deref(), Some("global"));
    assert_eq!(policy("dave@example.com").as_deref(), Some("site:dublin"));
    assert_eq!(policy("bob@example.com").as_deref(), Some("intl"));
    // dave's site policy allows only international routes: a US number is
    // refused naming that policy, a UK one goes out through gw2.
    match c.route("dave@example.com", "+14255550199") {
        Err(Refusal::NoRoute { policy, .. }) => assert_eq!(policy, "site:dublin"),
        other => panic!("{other:?}"),
    }
    let uk = c.route("dave@example.com", "+442071234567").unwrap();
    assert_eq!(uk[0].trunk, "gw2");
    // alice (global policy: local only) cannot call the UK.
    assert!(c.route("alice@example.com", "+442071234567").is_err());
    // test-number says where the caller is homed and which scopes applied.
    let text = c
        .explain("dave@example.com", "0044 20 7123 4567")
        .to_string();
    for want in [
        "home:        pool pool3.example.com, site dublin",
        "dial plan:   global",
        "voice policy: site:dublin (usages: international)",
        "trunk 1:     gw2 via route world usage international",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

#[test]
fn pool_scoped_voice_policies_are_refused() {
    let mut d = sample();
    d.policies.push(VoicePolicy {
        scope: Scope::Pool("pool1.example.com".into()),
        usages: vec!["local".into()],
    });
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert!(e.to_string().contains("no pool-scoped voice policy"), "{e}");
}

#[test]
fn translation_dollar_and_groups() {
    let r = CompiledRule::new(&rule("x", r"(\d)(\d)", "$2$1$$")).unwrap();
    assert_eq!(r.apply("12").as_deref(), Some("21$"));
    assert_eq!(r.apply("123"), None, "patterns match the whole number");
}

#[test]
fn bad_regex_is_refused() {
    let mut d = sample();
    d.dial_plans[0]
        .rules
        .push(rule("broken", r"(\d{4}", "+1$1"));
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert!(matches!(e, VoiceError::BadPattern { .. }), "{e}");
    assert!(e.to_string().contains("broken"), "{e}");
}

#[test]
fn translation_naming_a_missing_group_is_refused() {
    let mut d = sample();
    d.dial_plans[0]
        .rules
        .push(rule("nogroup", r"\d{5}", "+1$1"));
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert!(
        matches!(
            e,
            VoiceError::BadTranslation {
                group: 1,
                groups: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_usage_is_refused() {
    let mut d = sample();
    d.routes[0].usages.push("nosuch".into());
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert_eq!(e.to_string(), "unknown PSTN usage \"nosuch\"");
    let mut d = sample();
    d.policies[0].usages.push("nosuch".into());
    assert!(VoiceConfig::build(d, Homes::default()).is_err());
}

#[test]
fn unknown_trunk_is_refused() {
    let mut d = sample();
    d.routes[0].trunks.push("gw9".into());
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert_eq!(e.to_string(), "unknown trunk \"gw9\"");
}

#[test]
fn duplicate_number_is_refused() {
    let mut d = sample();
    d.users[2].line_uri = Some("+14255550100".into());
    let e = VoiceConfig::build(d, Homes::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "number +14255550100 is already the line URI of alice@example.com"
    );
}

#[test]
fn line_uris() {
    assert_eq!(parse_line_uri("tel:+14255550100").unwrap(), "+14255550100");
    assert_eq!(parse_line_uri("TEL:+14255550100").unwrap(), "+14255550100");
    assert!(parse_line_uri("tel:14255550100").is_err());
    assert!(parse_line_uri("tel:+0425").is_err());
    assert!(parse_line_uri("tel:+1234567890123456").is_err());
    assert!(parse_line_uri("sip:alice@example.com").is_err());
}

#[test]
fn dial_strings() {
    assert!(is_dial_string("5550100"));
    assert!(is_dial_string("+1 (425) 555-0100"));
    assert!(is_dial_string("*67#"));
    assert!(!is_dial_string("alice"));
    assert!(!is_dial_string("1+2"));
    assert!(!is_dial_string("+"));
}

#[test]
fn route_in_usage_then_trunk_order_with_translation() {
    let t = cfg().route("alice@example.com", "+14255550199").unwrap();
    let names: Vec<&str> = t.iter().map(|c| c.trunk.as_str()).collect();
    assert_eq!(names, ["gw1", "gw2"]);
    assert_eq!(t[0].number, "14255550199", "gw1 strips the plus");
    assert_eq!(t[0].translation_rule.as_deref(), Some("strip-plus"));
    assert_eq!(t[1].number, "+14255550199", "gw2 has no translation");
    assert_eq!(t[0].route, "us");
    assert_eq!(t[0].usage, "local");
}

#[test]
fn route_refused_when_no_usage_allows() {
    let e = cfg()
        .route("alice@example.com", "+442071234567")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no route of the usages of voice policy global (local) matches +442071234567"
    );
    // bob's policy has the international usage.
    let t = cfg().route("bob@example.com", "+442071234567").unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].trunk, "gw2");
}

#[test]
fn route_refused_without_line_uri_or_policy() {
    let e = cfg()
        .route("carol@example.com", "+14255550199")
        .unwrap_err();
    assert!(matches!(e, Refusal::NotVoiceEnabled(_)));
    let mut d = sample();
    d.policies.retain(|p| p.scope != Scope::Global);
    let c = VoiceConfig::build(d, Homes::default()).unwrap();
    assert!(matches!(
        c.route("alice@example.com", "+14255550199"),
        Err(Refusal::NoPolicy(_))
    ));
}

#[test]
fn numbers_find_users_and_trunks_find_gateways() {
    let c = cfg();
    assert_eq!(c.user_by_number("+14255550101"), Some("bob@example.com"));
    assert_eq!(c.user_by_number("+14255550199"), None);
    assert_eq!(c.trunk_at("127.0.0.1:5080".parse().unwrap()), Some("gw1"));
    assert_eq!(c.trunk_at("127.0.0.1:5081".parse().unwrap()), None);
    // Over TCP/TLS the source port is the connection's: the IP and the
    // transport decide.
    let tcp = TrunkTransport::Tcp;
    assert_eq!(
        c.trunk_from("127.0.0.2:40312".parse().unwrap(), tcp),
        Some("gw2")
    );
    assert_eq!(
        c.trunk_from("127.0.0.2:40312".parse().unwrap(), TrunkTransport::Tls),
        None
    );
    assert_eq!(c.trunk_from("127.0.0.1:40312".parse().unwrap(), tcp), None);
    assert_eq!(
        c.trunk_from("127.0.0.1:5080".parse().unwrap(), TrunkTransport::Udp),
        Some("gw1")
    );
}

#[test]
fn explain_each_case() {
    let c = cfg();
    let internal = c.explain("alice@example.com", "0101");
    assert_eq!(
        internal.outcome,
        Some(Outcome::User("bob@example.com".into()))
    );
    let text = internal.to_string();
    assert!(text.contains("rule:        ext"), "{text}");
    assert!(text.contains("destination: user bob@example.com"), "{text}");

    let pstn = c.explain("alice@example.com", "5550199").to_string();
    assert!(
        pstn.contains("trunk 1:     gw1 via route us usage local: 14255550199"),
        "{pstn}"
    );
    assert!(pstn.contains("trunk 2:     gw2"), "{pstn}");

    let refused = c.explain("alice@example.com", "00442071234567").to_string();
    assert!(refused.contains("refused:     no route"), "{refused}");

    let bad = c.explain("alice@example.com", "12").to_string();
    assert!(bad.contains("refused:") && bad.contains("\"12\""), "{bad}");
}

#[test]
fn scopes_parse_and_print() {
    assert_eq!(Scope::parse("Global").unwrap(), Scope::Global);
    assert_eq!(
        Scope::parse("site:Redmond").unwrap(),
        Scope::Site("redmond".into())
    );
    assert_eq!(
        Scope::parse("pool:fe.example.com").unwrap().to_string(),
        "pool:fe.example.com"
    );
    assert_eq!(
        Scope::parse("london").unwrap(),
        Scope::User("london".into())
    );
    assert!(Scope::parse("tag:x").is_err());
    assert!(Scope::parse("a b").is_err());
}
