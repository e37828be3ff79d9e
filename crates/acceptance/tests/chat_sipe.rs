//! Persistent Chat with the real Lync-protocol client: pidgin-sipe 1.25 inside
//! bitlbee 3.6 (NTLM over TCP), several SIPE users against one shared `confab
//! serve` (SQLite), rooms and categories set up with `confab chat ...`.
//!
//! One test, in phases, so that the SIPE start-ups are shared and the scenarios
//! run side by side (CI's time budget):
//!
//! * phase 1, in parallel:
//!   - alice + bob: discovery (INVITE ocschat -> `rpl:requri` -> INVITE of the
//!     chat-server URI, Session-Expires on the lookup 200); room lists (an Open
//!     and a Closed room with their descriptions; a Secret room only for its
//!     member bob; a room of a category that denies alice never for her); join
//!     by name (alice) and by `ma-chan://` URI without listing (bob); each sees
//!     the other join; posts both ways with markup-like characters and
//!     non-ASCII intact; bob leaves (alice sees the PART) and rejoins in the same
//!     session (alice sees him again and gets his next post); alice's
//!     auto_join + account off/on rejoins with `cmd:bjoin` and backfill; bob signs
//!     out and alice sees him leave; neither idle session stormed UPDATEs;
//!   - carol + dave: carol (not a member) is refused the Closed room with the
//!     reason in `&bitlbee` and no JOIN; in an auditorium only the presenter
//!     (dave) gets a post through, carol's post reaches nobody; a room disabled
//!     with `confab chat room disable` drops dave and refuses his rejoin;
//! * restart of the server;
//! * phase 2: a fresh client (erin, nothing cached) joins the lobby and gets
//!   bob's earlier posts as backfill, oldest first, each with the time it was
//!   posted (`[HH:MM:SS]`, bitlbee shows times of messages older than a minute).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confab_acceptance::sipe::SIPE_TOOLS;
use confab_acceptance::sipe_chat::{ChatLine, ChatUser};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tools_required};
use serde_json::Value;

const DOMAIN: &str = "example.com";
const USERS: &[(&str, &str)] = &[
    ("alice@example.com", "alice-secret"),
    ("bob@example.com", "bob-secret"),
    ("carol@example.com", "carol-secret"),
    ("dave@example.com", "dave-secret"),
    ("erin@example.com", "erin-secret"),
];

/// Text with markup-like characters and non-ASCII that must arrive unchanged.
const TRICKY: &str = "x <b>bold?</b> &amp; a<b & \"q\" 'a' ünïcödé ✓ 漢字";

fn pw(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or("")
}

fn chat(server: &ConfabServer, args: &[&str]) -> Result<String> {
    let mut all = vec!["chat"];
    all.extend_from_slice(args);
    server.cli(&all)
}

/// `confab chat room show NAME --json` -> its `uri`.
fn room_uri(server: &ConfabServer, name: &str) -> Result<String> {
    let out = chat(server, &["room", "show", name, "--json"])?;
    let v: Value = serde_json::from_str(out.trim())
        .map_err(|e| Error(format!("`chat room show {name} --json`: {e}: {out}")))?;
    let uri = v["uri"].as_str().unwrap_or("").to_string();
    confab_acceptance::ensure!(
        uri.starts_with(&format!("ma-chan://{DOMAIN}/")),
        "room {name}: uri {uri:?} is not ma-chan://{DOMAIN}/..."
    );
    Ok(uri)
}

struct Rooms {
    lobby: String,
    team: String,
}

fn set_up(server: &ConfabServer) -> Result<Rooms> {
    chat(server, &["policy", "set", "--global", "--enable"])?;
    chat(
        server,
        &[
            "category",
            "add",
            "General",
            "--description",
            "everyone",
            "--allowed-members",
            "@example.com",
        ],
    )?;
    chat(
        server,
        &[
            "category",
            "add",
            "Restricted",
            "--allowed-members",
            "@example.com",
            "--denied-members",
            "alice@example.com",
        ],
    )?;
    let rooms: &[&[&str]] = &[
        &[
            "Lobby",
            "--category",
            "General",
            "--privacy",
            "open",
            "--description",
            "Open lobby ✓",
        ],
        &[
            "Team",
            "--category",
            "General",
            "--privacy",
            "closed",
            "--description",
            "Closed team room",
            "--members",
            "dave@example.com,alice@example.com",
        ],
        &[
            "Hidden",
            "--category",
            "General",
            "--privacy",
            "secret",
            "--description",
            "Secret room",
            "--members",
            "bob@example.com",
        ],
        &[
            "Vault",
            "--category",
            "Restricted",
            "--privacy",
            "open",
            "--description",
            "Behind the wall",
        ],
        &[
            "Stage",
            "--category",
            "General",
            "--privacy",
            "open",
            "--type",
            "auditorium",
            "--presenters",
            "dave@example.com",
            "--members",
            "carol@example.com,dave@example.com",
        ],
        &[
            "Doomed",
            "--category",
            "General",
            "--privacy",
            "closed",
            "--members",
            "dave@example.com,carol@example.com",
        ],
    ];
    for r in rooms {
        let mut args = vec!["room", "add"];
        args.extend_from_slice(r);
        chat(server, &args)?;
    }
    Ok(Rooms {
        lobby: room_uri(server, "Lobby")?,
        team: room_uri(server, "Team")?,
    })
}

fn user(server: &ConfabServer, name: &str) -> Result<ChatUser> {
    let addr = format!("{name}@{DOMAIN}");
    // bitlbee prints delayed messages' times in UTC
    let mut u = ChatUser::start(server, &addr, pw(&addr), &[])?;
    u.root("set timezone utc", 0.3)?;
    u.sign_in()?;
    u.wait_group_chat()?;
    Ok(u)
}

fn titles(rows: &[(u64, String, String)]) -> Vec<String> {
    rows.iter().map(|r| r.1.clone()).collect()
}

fn utc_hms(t: SystemTime) -> String {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn hms_secs(s: &str) -> Option<i64> {
    let hms = s.rsplit(' ').next()?;
    let mut it = hms.split(':').map(|x| x.parse::<i64>().ok());
    Some(it.next()?? * 3600 + it.next()?? * 60 + it.next()??)
}

/// Problems of one scenario, collected so that one failure does not hide the rest.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
    fn result(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.0.push(e.0);
        }
    }
}

/// Posts bob makes first so that they are more than a minute old at the end.
struct Earlier {
    texts: Vec<String>,
    times: Vec<SystemTime>,
}

/// `from` posts TRICKY + a token in #lobby; `to` must get exactly that text from
/// `from`'s room nick.
fn exchange(from: &mut ChatUser, to: &mut ChatUser, p: &mut Problems) -> Result<()> {
    let token = confab_acceptance::unique_token();
    let text = format!("{TRICKY} {token}");
    let mk = to.mark()?;
    from.post("#lobby", &text)?;
    let got = to.wait_messages("#lobby", &token, ".", mk, 1, 15)?;
    p.check(
        got.iter()
            .any(|m| m.text == text && m.nick == from.room_nick),
        || {
            format!(
                "{} -> {}: want {:?} from {}, got {got:?}",
                from.user, to.user, text, from.room_nick
            )
        },
    );
    Ok(())
}

fn lobby_scenario(
    server: &ConfabServer,
    rooms: &Rooms,
    p: &mut Problems,
) -> Result<Option<Earlier>> {
    let mut alice = user(server, "alice")?;
    let mut bob = user(server, "bob")?;

    // Discovery as SIPE performed it.
    let invites = alice.sip_sent("INVITE", Some(r"(?m)^INVITE sip:ocschat@example\.com"))?;
    p.check(invites.iter().any(|(_, st)| *st == Some(200)), || {
        format!("alice: no 200 to INVITE sip:ocschat@{DOMAIN}: {invites:?}")
    });
    let log = alice.client_log();
    p.check(
        log.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("session-expires:")),
        || "alice: the server's answers carried no Session-Expires".into(),
    );
    let requri = alice.sip_sent("INFO", Some("cmd:requri"))?;
    p.check(requri.iter().any(|(_, st)| *st == Some(200)), || {
        format!("alice: cmd:requri not answered 200: {requri:?}")
    });
    let chatsrv = alice.sip_sent("INVITE", Some(r"(?m)^INVITE sip:chatsrv@example\.com"))?;
    p.check(chatsrv.iter().any(|(_, st)| *st == Some(200)), || {
        format!(
            "alice: SIPE did not INVITE the chat-server URI from rpl:requri with a 200: {chatsrv:?}"
        )
    });

    // Room lists.
    let la = alice.chat_list()?;
    let lb = bob.chat_list()?;
    let ta = titles(&la);
    let tb = titles(&lb);
    for want in ["Lobby", "Team", "Stage"] {
        p.check(ta.iter().any(|t| t == want), || {
            format!("alice's room list lacks {want}: {la:?}")
        });
    }
    p.check(
        la.iter()
            .any(|r| r.1 == "Lobby" && r.2.contains("Open lobby ✓")),
        || format!("alice's list does not show Lobby's description: {la:?}"),
    );
    p.check(!ta.iter().any(|t| t == "Hidden"), || {
        format!("alice (not a member) sees the Secret room: {la:?}")
    });
    p.check(!ta.iter().any(|t| t == "Vault"), || {
        format!("alice sees a room of a category that denies her: {la:?}")
    });
    p.check(tb.iter().any(|t| t == "Hidden"), || {
        format!("bob does not see the Secret room he is a member of: {lb:?}")
    });
    p.check(tb.iter().any(|t| t == "Vault"), || {
        format!("bob does not see Vault (category allows him): {lb:?}")
    });

    // Join by name (alice) and by URI without listing (bob).
    let mk = alice.mark()?;
    alice.join_ok("Lobby", "#lobby")?;
    let (ok, lines) = bob.join_uri("Lobby", &rooms.lobby, "#lobby")?;
    confab_acceptance::ensure!(
        ok,
        "bob could not join Lobby by its URI: {lines:?}\n{}",
        bob.logs()
    );
    let seen = alice.wait_event("#lobby", "JOIN", &format!("^{}$", bob.room_nick), mk, 15)?;
    p.check(seen.is_some(), || {
        format!(
            "alice did not see {} join #lobby: {:?}",
            bob.room_nick,
            alice.events("#lobby", mk).unwrap_or_default()
        )
    });
    let names = bob.names("#lobby")?;
    p.check(names.contains(&alice.room_nick), || {
        format!("bob's #lobby members lack {}: {names:?}", alice.room_nick)
    });

    // Bob's earlier posts (backfill for later joiners, checked in phase 2).
    let mut earlier = Earlier {
        texts: Vec::new(),
        times: Vec::new(),
    };
    for i in 1..=3 {
        let t = format!("earlier-{i}-{}", confab_acceptance::unique_token());
        earlier.times.push(SystemTime::now());
        bob.post("#lobby", &t)?;
        earlier.texts.push(t);
        std::thread::sleep(Duration::from_millis(1100));
    }

    // Posts both ways with the text intact.
    exchange(&mut bob, &mut alice, p)?;
    exchange(&mut alice, &mut bob, p)?;
    let got = alice.wait_messages("#lobby", "^earlier-", ".", 0, 3, 5)?;
    p.check(got.len() == 3, || {
        format!("alice did not get bob's 3 live posts: {got:?}")
    });

    // Leave and rejoin in one session.
    let mk = alice.mark()?;
    p.check(bob.part("#lobby")?, || "bob's /part got no PART".into());
    let left = alice.wait_event(
        "#lobby",
        "PART|QUIT",
        &format!("^{}$", bob.room_nick),
        mk,
        15,
    )?;
    p.check(left.is_some(), || {
        "alice did not see bob leave #lobby".into()
    });
    let parts = bob.sip_sent("INFO", Some("cmd:part"))?;
    p.check(!parts.is_empty(), || "bob's SIPE sent no cmd:part".into());
    let mk = alice.mark()?;
    let (again, lines) = bob.rejoin("#lobby")?;
    p.check(again, || {
        format!("bob could not rejoin #lobby in the same session: {lines:?}")
    });
    if again {
        let seen = alice.wait_event("#lobby", "JOIN", &format!("^{}$", bob.room_nick), mk, 15)?;
        p.check(seen.is_some(), || "alice did not see bob rejoin".into());
        let token = confab_acceptance::unique_token();
        bob.post("#lobby", &format!("back again {token}"))?;
        let got = alice.wait_messages("#lobby", &token, ".", mk, 1, 15)?;
        p.check(!got.is_empty(), || {
            "alice did not get bob's post after his rejoin".into()
        });
    }

    // auto_join: account off/on rejoins with cmd:bjoin (and backfill).
    alice.set_channel("#lobby", "auto_join", "true")?;
    alice.sign_out()?;
    let mk = alice.mark()?;
    alice.sign_in()?;
    let back = alice.call(
        serde_json::json!({"op": "wait", "since": mk, "timeout": 20,
            "pattern": format!(r"^:{}!\S+ JOIN :?#lobby", alice.nick)}),
        Duration::from_secs(25),
    )?;
    p.check(back["line"].is_string(), || {
        "alice not back in #lobby after account off/on with auto_join".into()
    });
    let bjoins = alice.sip_sent("INFO", Some("cmd:bjoin"))?;
    p.check(bjoins.iter().any(|(_, st)| *st == Some(200)), || {
        format!("alice's SIPE sent no cmd:bjoin answered 200 at sign-in: {bjoins:?}")
    });
    let got = alice.wait_messages("#lobby", "^earlier-", ".", mk, 3, 15)?;
    p.check(
        got.iter().map(|m| m.text.clone()).collect::<Vec<_>>() == earlier.texts,
        || {
            format!(
                "alice's backfill after bjoin: want {:?}, got {got:?}",
                earlier.texts
            )
        },
    );

    // Signing out makes the others see the user leave.
    let mk = alice.mark()?;
    bob.sign_out()?;
    let left = alice.wait_event(
        "#lobby",
        "PART|QUIT|KICK",
        &format!("^{}$", bob.room_nick),
        mk,
        15,
    )?;
    p.check(left.is_some(), || {
        format!(
            "alice did not see bob leave #lobby when he signed out: {:?}",
            alice.events("#lobby", mk).unwrap_or_default()
        )
    });

    // No UPDATE storm: SIPE refreshes only every Session-Expires - 10 s.
    for u in [&mut alice, &mut bob] {
        let updates = u.sip_sent("UPDATE", None)?;
        p.check(updates.len() <= 3, || {
            format!(
                "{} sent {} UPDATEs in one short session",
                u.user,
                updates.len()
            )
        });
    }
    alice.stop();
    bob.stop();
    Ok(Some(earlier))
}

fn closed_scenario(server: &ConfabServer, rooms: &Rooms, p: &mut Problems) -> Result<()> {
    let mut carol = user(server, "carol")?;
    let mut dave = user(server, "dave")?;

    // A non-member is refused the Closed room with a reason; no JOIN.
    let mk = carol.mark()?;
    let (joined, _) = carol.join_uri("Team", &rooms.team, "#team")?;
    p.check(!joined, || {
        "carol (not a member) joined the Closed room".into()
    });
    let err = carol.wait_root("(?i)error joining chat room", mk, 15)?;
    p.check(
        err.as_ref().is_some_and(|l| {
            let after = l.to_ascii_lowercase();
            let i = after.find("error joining chat room").unwrap_or(0);
            after[i + "error joining chat room".len()..]
                .trim_start_matches([' ', '-'])
                .len()
                > 2
        }),
        || {
            format!(
                "carol got no `Error joining chat room - <reason>` in &bitlbee: {err:?} {:?}",
                carol.root_lines(mk).unwrap_or_default()
            )
        },
    );

    // Auditorium: only presenters post.
    let _ = carol.chat_list()?;
    let _ = dave.chat_list()?;
    carol.join_ok("Stage", "#stage")?;
    dave.join_ok("Stage", "#stage")?;
    std::thread::sleep(Duration::from_millis(500));
    let mk_d = dave.mark()?;
    let mk_c = carol.mark()?;
    let updates_before = carol.sip_sent("UPDATE", None)?.len();
    let t1 = confab_acceptance::unique_token();
    carol.post("#stage", &format!("not a presenter {t1}"))?;
    let t2 = confab_acceptance::unique_token();
    dave.post("#stage", &format!("presenter speaks {t2}"))?;
    let got = carol.wait_messages("#stage", &t2, ".", mk_c, 1, 15)?;
    p.check(!got.is_empty(), || {
        "carol did not get the presenter's post in the auditorium".into()
    });
    let leaked = dave.wait_messages("#stage", &t1, ".", mk_d, 1, 3)?;
    p.check(leaked.is_empty(), || {
        format!("a non-presenter's post reached dave in the auditorium: {leaked:?}")
    });
    let refused = carol.sip_sent("INFO", Some(&t1))?;
    p.check(refused.iter().all(|(_, st)| st.is_some()), || {
        format!("carol's refused post got no answer: {refused:?}")
    });
    std::thread::sleep(Duration::from_secs(3));
    let updates_after = carol.sip_sent("UPDATE", None)?.len();
    p.check(updates_after <= updates_before + 1, || {
        format!("carol's refused post set off an UPDATE burst: {updates_before} -> {updates_after}")
    });

    // A disabled room drops its members and refuses joins.
    let _ = carol.chat_list()?;
    carol.join_ok("Doomed", "#doomed")?;
    dave.join_ok("Doomed", "#doomed")?;
    let mk_c = carol.mark()?;
    let mk_d = dave.mark()?;
    chat(server, &["room", "disable", "Doomed"])?;
    for (u, mk) in [(&mut carol, mk_c), (&mut dave, mk_d)] {
        // the member is removed: SIPE shows its own sip: URI (or the other
        // member) leaving the channel
        let dropped = u.wait_event("#doomed", "PART|KICK|QUIT", ".", mk, 15)?;
        let events = u.events("#doomed", mk).unwrap_or_default();
        p.check(dropped.is_some(), || {
            format!("{}: nobody left the disabled room: {events:?}", u.user)
        });
    }
    let list = dave.chat_list()?;
    p.check(!titles(&list).iter().any(|t| t == "Doomed"), || {
        format!("the disabled room is still listed: {list:?}")
    });
    let _ = dave.part("#doomed");
    let (again, lines) = dave.rejoin("#doomed")?;
    p.check(!again, || {
        format!("dave rejoined the disabled room: {lines:?}")
    });
    carol.stop();
    dave.stop();
    Ok(())
}

#[test]
fn sipe_persistent_chat() -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let t0 = Instant::now();
    let mut opts = ServerOptions::new().domain(DOMAIN);
    for (u, p) in USERS {
        opts = opts.user(u, p);
    }
    let server = ConfabServer::start(opts)?;
    if server.skip_if_external("sipe_persistent_chat") {
        return Ok(());
    }
    let rooms = server.with_log(set_up(&server))?;

    // Phase 1: two scenarios side by side.
    let shared = Arc::new((server, rooms));
    let s1 = Arc::clone(&shared);
    let lobby = std::thread::spawn(move || {
        let mut p = Problems::default();
        let r = lobby_scenario(&s1.0, &s1.1, &mut p);
        (r, p)
    });
    let s2 = Arc::clone(&shared);
    let closed = std::thread::spawn(move || {
        let mut p = Problems::default();
        let r = closed_scenario(&s2.0, &s2.1, &mut p);
        p.result(r);
        p
    });
    let mut problems = Problems::default();
    let earlier = match lobby.join() {
        Ok((r, p)) => {
            problems.0.extend(p.0);
            match r {
                Ok(e) => e,
                Err(e) => {
                    problems.0.push(e.0);
                    None
                }
            }
        }
        Err(_) => {
            problems.0.push("lobby scenario panicked".into());
            None
        }
    };
    match closed.join() {
        Ok(p) => problems.0.extend(p.0),
        Err(_) => problems.0.push("closed-room scenario panicked".into()),
    }
    let Ok((mut server, rooms)) = Arc::try_unwrap(shared) else {
        return Err(Error::new("scenario threads still hold the server"));
    };

    // Restart; history must survive.
    if let Some(earlier) = earlier {
        server.restart()?;
        let oldest = earlier.times[0];
        let age = SystemTime::now().duration_since(oldest).unwrap_or_default();
        if age < Duration::from_secs(65) {
            std::thread::sleep(Duration::from_secs(65) - age);
        }
        let r = (|| -> Result<()> {
            let mut erin = user(&server, "erin")?;
            let mk = erin.mark()?;
            let (ok, lines) = erin.join_uri("Lobby", &rooms.lobby, "#lobby")?;
            confab_acceptance::ensure!(ok, "erin could not join Lobby by URI: {lines:?}");
            let got: Vec<ChatLine> = erin.wait_messages("#lobby", "^earlier-", ".", mk, 3, 20)?;
            let texts: Vec<String> = got.iter().map(|m| m.text.clone()).collect();
            problems.check(texts == earlier.texts, || {
                format!(
                    "erin's backfill after the restart: want {:?} oldest first, got {got:?}",
                    earlier.texts
                )
            });
            for (m, t) in got.iter().zip(&earlier.times) {
                let want = utc_hms(*t);
                let ok = m.nick == "sipbob"
                    && m.stamp
                        .as_deref()
                        .and_then(hms_secs)
                        .is_some_and(|s| hms_secs(&want).is_some_and(|w| (s - w).abs() <= 2));
                problems.check(ok, || {
                    format!(
                        "backfilled post {:?}: want author sipbob and time ~{want}, got {m:?}",
                        m.text
                    )
                });
            }
            erin.stop();
            Ok(())
        })();
        problems.result(r);
    }
    eprintln!("sipe_persistent_chat: {:?}", t0.elapsed());
    if problems.0.is_empty() {
        return Ok(());
    }
    Err(Error(format!(
        "{} problem(s):\n\n{}\n\n{}",
        problems.0.len(),
        problems.0.join("\n\n"),
        server.context()
    )))
}
