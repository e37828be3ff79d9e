//! Persistent Chat room management on the web (issue 11): one confab server with
//! the web port on HTTPS, users and the category set up with `confab chat ...`.
//!
//! Always (a rustls client trusting the server's certificate): every page and API
//! refused without a session; a non-creator refused a room (403, the reason in
//! words, nothing created); a change without the CSRF token refused; the creator's
//! room created with them as manager, a duplicate name refused (409), an unknown
//! member refused (400); a non-manager refused changes; the manager's changes
//! (privacy, members, disable/enable) shown by `confab chat room show`; the last
//! manager cannot leave; a user whose Persistent Chat is off cannot sign in.
//!
//! In headless Chromium (tests/web/chat_rooms.mjs), when /usr/bin/chromium and
//! tests/web/node_modules exist: the category creator signs in, creates a Closed
//! room with two members and edits it, a non-creator is told they cannot create
//! rooms and the API refuses them; screenshots go to target/web-screenshots/
//! (chat-rooms.png, chat-rooms-phone.png, chat-rooms-not-creator.png).
//!
//! File posts (HTTPS API): a member uploads a file larger than one chunk (begin,
//! chunks, commit) and another member downloads identical bytes; the post with
//! the link is in the room's history; an oversized file, a non-member and a room
//! whose category allows no uploads are each refused in words; an upload that is
//! never committed leaves no post and no file.
//!
//! With pidgin-sipe (bitlbee): a member joins the room made on the page, and sees
//! a file post made on the web arrive live in another room.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confab_acceptance::server::run_bounded;
use confab_acceptance::sipe::SIPE_TOOLS;
use confab_acceptance::sipe_chat::ChatUser;
use confab_acceptance::web::{
    Answer, browser_skip_reason, chromium_path, https, https_bytes, screenshot_dir,
};
use confab_acceptance::{
    ConfabServer, Error, Result, ServerOptions, ensure, repo_root, tools_required,
};
use serde_json::{Value, json};

const CREATOR: &str = "ann@example.com";
const OTHER: &str = "dave@example.com";
const OFF: &str = "frank@example.com";
const PW: &str = "User-pw-123";
const CATEGORY: &str = "Projects";
/// The room the browser creates (and pidgin-sipe joins).
const ROOM: &str = "Design Review";
const MEMBERS: [&str; 2] = ["bob@example.com", "carol@example.com"];

fn chat(server: &ConfabServer, args: &[&str]) -> Result<String> {
    let mut all = vec!["chat"];
    all.extend_from_slice(args);
    server.cli(&all)
}

/// `confab chat room show NAME --json`, or `None` for an unknown room.
fn room(server: &ConfabServer, name: &str) -> Result<Option<Value>> {
    let list: Value = serde_json::from_str(chat(server, &["room", "list", "--json"])?.trim())
        .map_err(|e| Error(format!("`chat room list --json`: {e}")))?;
    Ok(list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .cloned())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Signs in; the cookie pair and the CSRF token.
fn sign_in(server: &ConfabServer, address: &str) -> Result<(String, String)> {
    let a = https(
        server,
        "POST",
        "/chat/api/signin",
        &[],
        Some(&json!({"address": address, "password": PW}).to_string()),
    )?;
    ensure!(
        a.status == 200,
        "sign-in of {address}: {} {}",
        a.status,
        a.body
    );
    let cookie = a
        .header("set-cookie")
        .ok_or_else(|| Error::new("no Set-Cookie"))?;
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/chat"] {
        ensure!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let v: Value =
        serde_json::from_str(&a.body).map_err(|e| Error(format!("sign-in JSON: {e}")))?;
    let csrf = v["csrf"].as_str().unwrap_or_default().to_owned();
    ensure!(csrf.len() >= 32, "no CSRF token in {}", a.body);
    Ok((pair, csrf))
}

struct Client<'a> {
    server: &'a ConfabServer,
    cookie: String,
    csrf: String,
}

impl Client<'_> {
    fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        https(
            self.server,
            "POST",
            path,
            &[
                ("Cookie", self.cookie.as_str()),
                ("X-CSRF-Token", self.csrf.as_str()),
            ],
            Some(&body.to_string()),
        )
    }

    fn get(&self, path: &str) -> Result<Answer> {
        https(
            self.server,
            "GET",
            path,
            &[("Cookie", self.cookie.as_str())],
            None,
        )
    }
}

const READ_APIS: [&str; 3] = ["/chat/api/session", "/chat/api/rooms", "/chat/api/nothing"];
const CHANGE_APIS: [&str; 6] = [
    "/chat/api/rooms",
    "/chat/api/rooms/update",
    "/chat/api/rooms/disable",
    "/chat/api/rooms/enable",
    "/chat/api/signout",
    "/chat/api/nothing",
];

fn check_api(server: &ConfabServer) -> Result<()> {
    // Nothing answers without a session.
    let page = https(server, "GET", "/chat/rooms", &[], None)?;
    ensure!(
        page.status == 303 && page.header("location") == Some("/chat/signin"),
        "unauthenticated GET /chat/rooms: {} {:?}",
        page.status,
        page.header("location")
    );
    let signin = https(server, "GET", "/chat/signin", &[], None)?;
    ensure!(
        signin.status == 200
            && signin.body.contains("<form id=\"signin\"")
            && signin
                .header("content-security-policy")
                .is_some_and(|c| c.contains("script-src 'self'")),
        "sign-in page: {}",
        signin.status
    );
    for p in READ_APIS {
        let a = https(server, "GET", p, &[], None)?;
        ensure!(
            a.status == 401,
            "unauthenticated GET {p}: {} {}",
            a.status,
            a.body
        );
    }
    let body = json!({"name": "X", "category": CATEGORY, "room": "X"}).to_string();
    for p in CHANGE_APIS {
        let a = https(server, "POST", p, &[], Some(&body))?;
        ensure!(
            a.status == 401,
            "unauthenticated POST {p}: {} {}",
            a.status,
            a.body
        );
    }
    let forged = https(
        server,
        "GET",
        "/chat/api/rooms",
        &[("Cookie", "confab_chat=0123456789abcdef0123456789abcdef")],
        None,
    )?;
    ensure!(
        forged.status == 401,
        "made-up session cookie: {}",
        forged.status
    );

    // Persistent Chat off for a user: no session.
    let off = https(
        server,
        "POST",
        "/chat/api/signin",
        &[],
        Some(&json!({"address": OFF, "password": PW}).to_string()),
    )?;
    ensure!(
        off.status == 403 && off.header("set-cookie").is_none() && off.body.contains("not enabled"),
        "sign-in of a user without Persistent Chat: {} {}",
        off.status,
        off.body
    );

    // A non-creator is refused, in words, and nothing is created.
    let (cookie, csrf) = sign_in(server, OTHER)?;
    let dave = Client {
        server,
        cookie,
        csrf,
    };
    let rooms = dave.get("/chat/api/rooms")?;
    ensure!(
        rooms.status == 200 && rooms.body.contains("\"categories\":[]"),
        "dave's rooms: {} {}",
        rooms.status,
        rooms.body
    );
    let a = dave.post(
        "/chat/api/rooms",
        &json!({"name": "Dave Room", "category": CATEGORY, "privacy": "open"}),
    )?;
    ensure!(
        a.status == 403 && a.body.contains("not a creator") && a.body.contains(CATEGORY),
        "a non-creator's room: {} {}",
        a.status,
        a.body
    );
    ensure!(
        room(server, "Dave Room")?.is_none(),
        "the refused room exists"
    );

    // The creator: CSRF first, then the rules.
    let (cookie, csrf) = sign_in(server, CREATOR)?;
    let ann = Client {
        server,
        cookie,
        csrf,
    };
    let no_csrf = https(
        server,
        "POST",
        "/chat/api/rooms",
        &[("Cookie", ann.cookie.as_str())],
        Some(&json!({"name": "Api Room", "category": CATEGORY}).to_string()),
    )?;
    ensure!(
        no_csrf.status == 403 && no_csrf.body.contains("CSRF"),
        "no CSRF token: {} {}",
        no_csrf.status,
        no_csrf.body
    );
    ensure!(
        room(server, "Api Room")?.is_none(),
        "created without a CSRF token"
    );
    let a = ann.post(
        "/chat/api/rooms",
        &json!({"name": "Api Room", "category": CATEGORY, "members": ["nobody@example.com"]}),
    )?;
    ensure!(
        a.status == 400 && a.body.contains("unknown user nobody@example.com"),
        "an unknown member: {} {}",
        a.status,
        a.body
    );
    let a = ann.post("/chat/api/rooms", &json!({"name": "Api Room"}))?;
    ensure!(
        a.status == 400 && a.body.contains("category"),
        "no category: {} {}",
        a.status,
        a.body
    );
    let a = ann.post(
        "/chat/api/rooms",
        &json!({"name": "Api Room", "category": "Nope"}),
    )?;
    ensure!(
        a.status == 404,
        "an unknown category: {} {}",
        a.status,
        a.body
    );
    let a = ann.post(
        "/chat/api/rooms",
        &json!({"name": "Api Room", "category": CATEGORY, "privacy": "closed", "members": "bob@example.com"}),
    )?;
    ensure!(
        a.status == 200,
        "the creator's room: {} {}",
        a.status,
        a.body
    );
    let r =
        room(server, "Api Room")?.ok_or_else(|| Error::new("Api Room not in the CLI's list"))?;
    ensure!(
        strings(&r["managers"]) == [CREATOR]
            && strings(&r["members"]) == ["bob@example.com"]
            && r["privacy"] == "closed"
            && r["category"] == CATEGORY,
        "the CLI's view of Api Room: {r}"
    );
    let a = ann.post(
        "/chat/api/rooms",
        &json!({"name": "API ROOM", "category": CATEGORY}),
    )?;
    ensure!(
        a.status == 409 && a.body.contains("already exists"),
        "a duplicate name: {} {}",
        a.status,
        a.body
    );

    // A non-manager changes nothing.
    for (path, body) in [
        (
            "/chat/api/rooms/update",
            json!({"room": "Api Room", "privacy": "open"}),
        ),
        ("/chat/api/rooms/disable", json!({"room": "Api Room"})),
    ] {
        let a = dave.post(path, &body)?;
        ensure!(
            a.status == 403 && a.body.contains("not a manager"),
            "a non-manager's {path}: {} {}",
            a.status,
            a.body
        );
    }

    // The manager's changes, seen by the CLI.
    let a = ann.post(
        "/chat/api/rooms/update",
        &json!({"room": "api room", "privacy": "secret", "description": "from the API",
                "add_members": ["carol@example.com"], "add_presenters": "bob@example.com"}),
    )?;
    ensure!(
        a.status == 200,
        "the manager's update: {} {}",
        a.status,
        a.body
    );
    let r = room(server, "Api Room")?.ok_or_else(|| Error::new("Api Room vanished"))?;
    ensure!(
        r["privacy"] == "secret"
            && r["description"] == "from the API"
            && strings(&r["members"]).len() == 2
            && strings(&r["presenters"]) == ["bob@example.com"],
        "the CLI's view after the update: {r}"
    );
    // A Secret room is unknown to a user without a role in it.
    let a = dave.post(
        "/chat/api/rooms/update",
        &json!({"room": "Api Room", "description": "x"}),
    )?;
    ensure!(
        a.status == 404,
        "a Secret room for a stranger: {} {}",
        a.status,
        a.body
    );
    let a = ann.post(
        "/chat/api/rooms/update",
        &json!({"room": "Api Room", "remove_managers": [CREATOR]}),
    )?;
    ensure!(
        a.status == 400 && a.body.contains("at least one manager"),
        "the last manager leaving: {} {}",
        a.status,
        a.body
    );
    let a = ann.post(
        "/chat/api/rooms/update",
        &json!({"room": "Api Room", "privacy": "public"}),
    )?;
    ensure!(
        a.status == 400 && a.body.contains("privacy"),
        "a bad privacy: {} {}",
        a.status,
        a.body
    );
    let a = ann.post("/chat/api/rooms/disable", &json!({"room": "Api Room"}))?;
    ensure!(a.status == 200, "disable: {} {}", a.status, a.body);
    ensure!(
        room(server, "Api Room")?.is_some_and(|r| r["disabled"] == true),
        "the CLI must show Api Room disabled"
    );
    let mine = ann.get("/chat/api/rooms")?;
    ensure!(
        mine.status == 200 && mine.body.contains("Api Room") && mine.body.contains(CATEGORY),
        "the manager still lists the disabled room: {} {}",
        mine.status,
        mine.body
    );
    let a = ann.post("/chat/api/rooms/enable", &json!({"room": "Api Room"}))?;
    ensure!(a.status == 200, "enable: {} {}", a.status, a.body);
    ensure!(
        room(server, "Api Room")?.is_some_and(|r| r["disabled"] == false),
        "the CLI must show Api Room enabled"
    );
    let a = ann.post("/chat/api/rooms", &json!("not an object"))?;
    ensure!(
        a.status == 400,
        "a body that is not an object: {}",
        a.status
    );
    // Sign-out ends the session.
    let a = ann.post("/chat/api/signout", &json!({}))?;
    ensure!(a.status == 200, "sign-out: {}", a.status);
    let a = ann.get("/chat/api/rooms")?;
    ensure!(a.status == 401, "after sign-out: {}", a.status);
    Ok(())
}

fn browser(server: &ConfabServer) -> Result<bool> {
    if let Some(why) = browser_skip_reason() {
        eprintln!("SKIPPED the browser part of chat_rooms_on_the_web: {why}");
        println!("SKIPPED: browser part: {why}");
        return Ok(false);
    }
    let web = repo_root().join("tests").join("web");
    let shots = screenshot_dir();
    let mut cmd = Command::new("node");
    cmd.arg(web.join("chat_rooms.mjs"))
        .current_dir(&web)
        .env("CONFAB_URL", format!("https://{}", server.http_addr()?))
        .env("CREATOR", CREATOR)
        .env("CREATOR_PW", PW)
        .env("OTHER", OTHER)
        .env("OTHER_PW", PW)
        .env("CATEGORY", CATEGORY)
        .env("ROOM", ROOM)
        .env("MEMBERS", MEMBERS.join(","))
        .env("MEMBER", MEMBERS[0])
        .env("MEMBER_PW", PW)
        .env("FILE_ROOM", "Shared")
        .env("SHOT_DIR", &shots)
        .env("CHROMIUM", chromium_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, Duration::from_secs(120))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- tests/web/chat_rooms.mjs ---\n{stdout}{stderr}");
    ensure!(
        out.status.success() && stdout.contains("RESULT: ok"),
        "the browser test failed ({}):\n{stdout}{stderr}",
        out.status
    );
    for f in [
        "chat-rooms.png",
        "chat-rooms-phone.png",
        "chat-rooms-not-creator.png",
        "chat-files.png",
    ] {
        let p = shots.join(f);
        ensure!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            p.display()
        );
    }
    eprintln!("screenshots in {}", shots.display());
    Ok(true)
}

/// The room as the browser made it, seen by the CLI.
fn check_browser_room(server: &ConfabServer) -> Result<String> {
    let r = room(server, ROOM)?.ok_or_else(|| Error(format!("{ROOM} not in the CLI's list")))?;
    let mut members = strings(&r["members"]);
    members.sort();
    ensure!(
        r["privacy"] == "closed"
            && members == MEMBERS
            && strings(&r["managers"]) == [CREATOR]
            && r["description"] == "Design reviews, Thursdays",
        "the CLI's view of the room made in the browser: {r}"
    );
    Ok(r["uri"].as_str().unwrap_or_default().to_owned())
}

/// Test content: `n` bytes that are not all alike.
fn content(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

impl Client<'_> {
    /// Uploads `data` as `name` into `room` in chunks of the size the server
    /// gives; the commit's answer.
    fn upload(&self, room: &str, name: &str, data: &[u8]) -> Result<Answer> {
        let a = self.post(
            "/chat/api/files",
            &json!({"room": room, "name": name, "size": data.len()}),
        )?;
        if a.status != 200 {
            return Ok(a);
        }
        let v: Value = serde_json::from_str(&a.body).map_err(|e| Error(format!("{e}")))?;
        let id = v["upload"].as_str().unwrap_or_default().to_owned();
        let chunk = v["chunk_size"].as_u64().unwrap_or(0) as usize;
        ensure!(chunk > 0, "no chunk size in {}", a.body);
        for (i, part) in data.chunks(chunk).enumerate() {
            let c = https_bytes(
                self.server,
                "PUT",
                &format!("/chat/api/files/{id}?offset={}", i * chunk),
                &[
                    ("Cookie", self.cookie.as_str()),
                    ("X-CSRF-Token", self.csrf.as_str()),
                    ("Content-Type", "application/octet-stream"),
                ],
                part,
            )?;
            ensure!(
                c.status == 200,
                "chunk {i} of {name}: {} {}",
                c.status,
                String::from_utf8_lossy(&c.body)
            );
        }
        self.post(&format!("/chat/api/files/{id}/commit"), &json!({}))
    }
}

fn file_store(server: &ConfabServer) -> Vec<String> {
    std::fs::read_dir(server.data_dir().join("files"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// File posts over the API; returns the signed-in uploader (bob) for the live
/// check.
fn check_files(server: &ConfabServer) -> Result<()> {
    chat(server, &["config", "set", "--max-file-size-kb", "3000"])?;
    let (cookie, csrf) = sign_in(server, MEMBERS[0])?;
    let bob = Client {
        server,
        cookie,
        csrf,
    };
    let (cookie, csrf) = sign_in(server, MEMBERS[1])?;
    let carol = Client {
        server,
        cookie,
        csrf,
    };
    let (cookie, csrf) = sign_in(server, OTHER)?;
    let dave = Client {
        server,
        cookie,
        csrf,
    };

    // Larger than one chunk (1 MiB), under MaxFileSizeKB.
    let data = content(2_500_000, 7);
    let a = bob.upload("Shared", "plan ü.bin", &data)?;
    ensure!(a.status == 200, "bob's upload: {} {}", a.status, a.body);
    let v: Value = serde_json::from_str(&a.body).map_err(|e| Error(format!("{e}")))?;
    let url = v["url"].as_str().unwrap_or_default().to_owned();
    let path = url
        .find("/chat/files/")
        .map(|i| url[i..].to_owned())
        .ok_or_else(|| Error(format!("no link in {}", a.body)))?;
    let got = https_bytes(
        server,
        "GET",
        &path,
        &[("Cookie", carol.cookie.as_str())],
        &[],
    )?;
    ensure!(got.status == 200, "carol's download: {}", got.status);
    ensure!(
        got.body.len() == data.len() && got.body == data,
        "carol downloaded {} bytes, not the {} bob uploaded (or other bytes)",
        got.body.len(),
        data.len()
    );
    ensure!(
        got.headers
            .get("content-disposition")
            .is_some_and(|d| d.contains("attachment") && d.contains("plan")),
        "content-disposition: {:?}",
        got.headers.get("content-disposition")
    );
    let posts = chat(server, &["message", "list", "Shared", "--json"])?;
    ensure!(
        posts.contains("plan ü.bin") && posts.contains(&path) && posts.contains(MEMBERS[0]),
        "the file post is not in the room's history:\n{posts}"
    );

    // Refusals, in words.
    let big = bob.post(
        "/chat/api/files",
        &json!({"room": "Shared", "name": "big.bin", "size": 3000 * 1024 + 1}),
    )?;
    ensure!(
        big.status == 413 && big.body.contains("MaxFileSizeKB"),
        "an oversized file: {} {}",
        big.status,
        big.body
    );
    let stranger = dave.upload("Shared", "x.txt", b"hello")?;
    ensure!(
        stranger.status == 403 && stranger.body.contains("not a member"),
        "a non-member's upload: {} {}",
        stranger.status,
        stranger.body
    );
    let no_upload = bob.upload("Plain", "x.txt", b"hello")?;
    ensure!(
        no_upload.status == 403 && no_upload.body.contains("does not allow file uploads"),
        "an upload where the category allows none: {} {}",
        no_upload.status,
        no_upload.body
    );
    let a = https_bytes(
        server,
        "GET",
        &path,
        &[("Cookie", dave.cookie.as_str())],
        &[],
    )?;
    ensure!(
        a.status == 403 && String::from_utf8_lossy(&a.body).contains("not a member"),
        "a non-member's download: {} {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    let a = https_bytes(server, "GET", &path, &[], &[])?;
    ensure!(
        a.status == 303 && a.body.len() < 100,
        "a download without a session: {}",
        a.status
    );

    // An upload cut short: no post, no file; only its .part until it is dropped.
    let before = file_store(server);
    let a = bob.post(
        "/chat/api/files",
        &json!({"room": "Shared", "name": "cut.bin", "size": 2_000_000}),
    )?;
    ensure!(a.status == 200, "begin: {} {}", a.status, a.body);
    let v: Value = serde_json::from_str(&a.body).map_err(|e| Error(format!("{e}")))?;
    let id = v["upload"].as_str().unwrap_or_default().to_owned();
    let c = https_bytes(
        server,
        "PUT",
        &format!("/chat/api/files/{id}?offset=0"),
        &[
            ("Cookie", bob.cookie.as_str()),
            ("X-CSRF-Token", bob.csrf.as_str()),
        ],
        &content(1024 * 1024, 9),
    )?;
    ensure!(c.status == 200, "first chunk: {}", c.status);
    let wrong = https_bytes(
        server,
        "PUT",
        &format!("/chat/api/files/{id}?offset=0"),
        &[
            ("Cookie", bob.cookie.as_str()),
            ("X-CSRF-Token", bob.csrf.as_str()),
        ],
        b"again",
    )?;
    ensure!(
        wrong.status == 409 && String::from_utf8_lossy(&wrong.body).contains("1048576"),
        "a chunk at the wrong offset: {} {}",
        wrong.status,
        String::from_utf8_lossy(&wrong.body)
    );
    let early = bob.post(&format!("/chat/api/files/{id}/commit"), &json!({}))?;
    ensure!(
        early.status == 400 && early.body.contains("of 2000000 bytes"),
        "a commit before the last chunk: {} {}",
        early.status,
        early.body
    );
    let posts = chat(server, &["message", "list", "Shared", "--json"])?;
    ensure!(
        !posts.contains("cut.bin"),
        "the cut upload was posted:\n{posts}"
    );
    let after = file_store(server);
    let new: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    ensure!(
        new.iter()
            .all(|f| f.starts_with(".upload-") && f.ends_with(".part")),
        "the cut upload left a visible file: {new:?}"
    );
    let no_csrf = https_bytes(
        server,
        "PUT",
        &format!("/chat/api/files/{id}?offset=1048576"),
        &[("Cookie", bob.cookie.as_str())],
        b"x",
    )?;
    ensure!(
        no_csrf.status == 403,
        "a chunk without the CSRF token: {}",
        no_csrf.status
    );
    Ok(())
}

/// A member joins the room made on the page from pidgin-sipe, and sees a file
/// post made on the web arrive live in another room.
fn sipe_join(server: &ConfabServer, uri: &str, shared_uri: &str) -> Result<()> {
    let mut bob = ChatUser::start(server, MEMBERS[0], PW, &[])?;
    bob.sign_in()?;
    bob.wait_group_chat()?;
    let (joined, lines) = bob.join_uri(ROOM, uri, "#design")?;
    ensure!(
        joined,
        "bob (a member) could not join {ROOM} from pidgin-sipe: {lines:?}\n{}",
        bob.logs()
    );
    let (joined, lines) = bob.join_uri("Shared", shared_uri, "#shared")?;
    ensure!(
        joined,
        "bob could not join Shared: {lines:?}\n{}",
        bob.logs()
    );
    let mark = bob.mark()?;
    let (cookie, csrf) = sign_in(server, MEMBERS[1])?;
    let carol = Client {
        server,
        cookie,
        csrf,
    };
    let a = carol.upload("Shared", "notes-live.txt", b"live file post")?;
    ensure!(a.status == 200, "carol's upload: {} {}", a.status, a.body);
    let got = bob.wait_messages(
        "#shared",
        "notes-live\\.txt.*/chat/files/",
        ".",
        mark,
        1,
        15,
    )?;
    ensure!(
        !got.is_empty(),
        "bob did not get carol's file post live in #shared\n{}",
        bob.logs()
    );
    bob.stop();
    Ok(())
}

#[test]
fn chat_rooms_on_the_web() -> Result<()> {
    let t0 = Instant::now();
    let mut opts = ServerOptions::new().https().domain("example.com");
    for u in [CREATOR, OTHER, OFF, MEMBERS[0], MEMBERS[1]] {
        opts = opts.user(u, PW);
    }
    let server = ConfabServer::start(opts)?;
    if server.skip_if_external("chat_rooms_on_the_web") {
        return Ok(());
    }
    chat(&server, &["policy", "set", "--global", "--enable"])?;
    chat(&server, &["policy", "set", OFF, "--disable"])?;
    chat(
        &server,
        &[
            "category",
            "add",
            CATEGORY,
            "--allowed-members",
            "@example.com",
            "--creators",
            CREATOR,
        ],
    )?;
    // File posts: a category with uploads, one without.
    for (cat, upload) in [("Files", "true"), ("NoFiles", "false")] {
        chat(
            &server,
            &[
                "category",
                "add",
                cat,
                "--allowed-members",
                "@example.com",
                "--file-upload",
                upload,
            ],
        )?;
    }
    chat(
        &server,
        &[
            "room",
            "add",
            "Shared",
            "--category",
            "Files",
            "--privacy",
            "closed",
            "--members",
            "bob@example.com,carol@example.com",
        ],
    )?;
    chat(
        &server,
        &[
            "room",
            "add",
            "Plain",
            "--category",
            "NoFiles",
            "--privacy",
            "open",
        ],
    )?;
    server.with_log(check_api(&server))?;
    let made_in_browser = server.with_log(browser(&server))?;
    if !made_in_browser {
        // Without a browser, the same room through the API (the page's code path).
        let (cookie, csrf) = sign_in(&server, CREATOR)?;
        let ann = Client {
            server: &server,
            cookie,
            csrf,
        };
        let a = ann.post(
            "/chat/api/rooms",
            &json!({"name": ROOM, "category": CATEGORY, "privacy": "closed",
                    "members": MEMBERS, "description": "Design reviews, Thursdays"}),
        )?;
        ensure!(a.status == 200, "{ROOM}: {} {}", a.status, a.body);
    }
    let uri = server.with_log(check_browser_room(&server))?;
    server.with_log(check_files(&server))?;
    if tools_required(SIPE_TOOLS) {
        let shared: Value =
            serde_json::from_str(chat(&server, &["room", "show", "Shared", "--json"])?.trim())
                .map_err(|e| Error(format!("room show Shared: {e}")))?;
        let shared_uri = shared["uri"].as_str().unwrap_or_default().to_owned();
        server.with_log(sipe_join(&server, &uri, &shared_uri))?;
    }
    // Removing a room deletes its stored files (only Shared's category takes files).
    let stored = |server: &ConfabServer| -> Vec<String> {
        file_store(server)
            .into_iter()
            .filter(|f| !f.starts_with('.'))
            .collect()
    };
    let before = stored(&server);
    ensure!(!before.is_empty(), "Shared has stored files");
    let out = chat(&server, &["room", "remove", "Shared"])?;
    ensure!(
        out.contains(&format!("({} stored file(s) deleted)", before.len())),
        "room remove: {out} (file store held {before:?})"
    );
    let after = stored(&server);
    ensure!(
        after.is_empty(),
        "files left after the room's removal: {after:?}"
    );
    eprintln!("chat_rooms_on_the_web took {:?}", t0.elapsed());
    Ok(())
}
