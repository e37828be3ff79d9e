//! The Control Panel's voice and Persistent Chat pages (issue 17): the analog of
//! Lync Server Control Panel's "Voice Routing" and "Persistent Chat" tabs.
//!
//! One code path with the command line: a change is sent as the words of the
//! `confab voice ...` or `confab chat ...` command (`{"args": ["route", "add",
//! ...]}`), parsed by the CLI's own parser (clap, the same `VoiceCommand` /
//! `ChatCommand`) and run by the CLI's own function ([`crate::voice_cli::apply`],
//! [`crate::chat_cli::apply`]), so checks, results and error texts are the CLI's.
//! Only the commands that change settings are accepted (listing is the GET API's;
//! export, import, compliance, messages and file paths on the server are the
//! shell's). Every change needs CsAdministrator and the CSRF token, and is written
//! to the audit log (`voice.route.add`, target the route, detail the words).
//! Every role reads the settings (CsHelpDesk: read-only).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use clap::Parser;
use confab_chat::Directory;
use confab_store::{AuditEntry, Store};
use confab_web::http::PeerInfo;
use serde_json::{Value, json};
use tracing::warn;

use super::{Shared, api_refusal, op_error};
use crate::admin::Permission;
use crate::chat_cli::ChatCommand;
use crate::voice_cli::{UserVoiceArgs, VoiceCommand};
use crate::web_session::{api_error, body_json, field, json_response};

/// Words of one command at most, and bytes of one word.
const MAX_WORDS: usize = 40;
const MAX_WORD: usize = 2048;

#[derive(Parser)]
#[command(name = "confab voice", no_binary_name = true, disable_help_flag = true)]
struct VoiceWords {
    #[command(subcommand)]
    command: VoiceCommand,
}

#[derive(Parser)]
#[command(name = "confab chat", no_binary_name = true, disable_help_flag = true)]
struct ChatWords {
    #[command(subcommand)]
    command: ChatCommand,
}

/// The voice commands the page may run: (group, verbs).
const VOICE_CHANGES: &[(&str, &[&str])] = &[
    ("dialplan", &["add", "set", "remove"]),
    ("rule", &["add", "set", "remove"]),
    ("policy", &["add", "set", "remove"]),
    ("usage", &["add", "remove"]),
    ("route", &["add", "set", "remove"]),
    ("trunk", &["add", "set", "remove"]),
    ("announcement", &["add", "remove"]),
    ("unassigned", &["add", "remove"]),
];

/// The chat commands the page may run.
const CHAT_CHANGES: &[(&str, &[&str])] = &[
    ("category", &["add", "set", "remove"]),
    ("room", &["add", "set", "disable", "enable"]),
    ("policy", &["set"]),
    ("config", &["set"]),
];

/// The command's words from `{"args": [...]}`, checked against `allowed`; the
/// answer to send when they are refused.
fn words(body: &Bytes, allowed: &[(&str, &[&str])], what: &str) -> Result<Vec<String>, Response> {
    let m = body_json(body)?;
    let Some(Value::Array(items)) = m.get("args") else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "give the command's words as \"args\": [...]",
        ));
    };
    if items.len() > MAX_WORDS {
        return Err(api_error(StatusCode::BAD_REQUEST, "too many words"));
    }
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        match i.as_str() {
            Some(s) if s.len() <= MAX_WORD && !s.chars().any(|c| c.is_control()) => {
                out.push(s.to_owned());
            }
            _ => {
                return Err(api_error(
                    StatusCode::BAD_REQUEST,
                    "every word must be a string without control characters (at most 2048 bytes)",
                ));
            }
        }
    }
    let group = out
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let verb = out
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let ok = allowed
        .iter()
        .any(|(g, verbs)| *g == group && verbs.contains(&verb.as_str()));
    if !ok {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            format!(
                "`{what} {}` is not a change the Control Panel makes (allowed: {})",
                out.join(" "),
                allowed
                    .iter()
                    .map(|(g, v)| format!("{g} {}", v.join("|")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if out.iter().any(|w| w.starts_with("--audio-file")) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "audio files are files on the server: add them with `confab voice announcement add NAME --audio-file FILE` there (the Control Panel adds tone announcements)",
        ));
    }
    Ok(out)
}

/// A clap error's text without its `error: ` prefix and the usage lines.
fn parse_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let joined = words.join(" ");
    let msg = joined.strip_prefix("error: ").unwrap_or(&joined);
    if msg.is_empty() {
        "invalid command".to_owned()
    } else {
        msg.to_owned()
    }
}

async fn audit(store: &Store, who: &super::Authorized, area: &str, w: &[String]) {
    let action = format!(
        "{area}.{}.{}",
        w[0].to_ascii_lowercase(),
        w[1].to_ascii_lowercase()
    );
    let target = w.get(2).filter(|t| !t.starts_with("--")).cloned();
    let actor = who.actor();
    if let Err(e) = store
        .append_audit(&AuditEntry {
            seq: 0,
            at: 0,
            actor: actor.who,
            source: actor.from,
            action,
            target,
            detail: Some(format!("confab {area} {}", w.join(" "))),
        })
        .await
    {
        warn!(error = %e, "control panel: writing the audit log failed");
    }
}

/// The message of a change (what the CLI prints), or the refusal.
fn change_answer(r: anyhow::Result<()>, out: Vec<u8>) -> Response {
    match r {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({ "message": String::from_utf8_lossy(&out).trim() }),
        ),
        Err(e) => op_error(e),
    }
}

async fn authorize(
    p: &Shared,
    headers: &HeaderMap,
    peer: IpAddr,
    perm: Permission,
) -> Result<super::Authorized, Response> {
    let changing = perm == Permission::ChangeVoiceChat;
    p.authorize(headers, peer, Some(perm), changing)
        .await
        .map_err(api_refusal)
}

// ---- voice ----

fn opt(s: &Option<String>) -> Value {
    json!(s)
}

fn voice_json(d: &confab_voice::VoiceData) -> Value {
    let rules = |rs: &[confab_voice::Rule]| -> Vec<Value> {
        rs.iter()
            .map(|r| json!({ "name": r.name, "pattern": r.pattern, "translation": r.translation }))
            .collect()
    };
    json!({
        "dial_plans": d.dial_plans.iter().map(|p| json!({
            "scope": p.scope.to_string(), "description": opt(&p.description), "rules": rules(&p.rules),
        })).collect::<Vec<_>>(),
        "policies": d.policies.iter().map(|p| json!({
            "scope": p.scope.to_string(), "usages": p.usages,
        })).collect::<Vec<_>>(),
        "usages": d.usages,
        "routes": d.routes.iter().map(|r| json!({
            "name": r.name, "pattern": r.pattern, "usages": r.usages, "trunks": r.trunks,
        })).collect::<Vec<_>>(),
        "trunks": d.trunks.iter().map(|t| json!({
            "name": t.name, "gateway": t.gateway.to_string(), "transport": t.transport.as_str(), "rules": rules(&t.rules),
            "from_topology": t.from_topology,
        })).collect::<Vec<_>>(),
        "users": d.users.iter().map(|u| json!({
            "address": u.address, "line_uri": u.line_uri.as_ref().map(|n| format!("tel:{n}")),
            "dial_plan": opt(&u.dial_plan), "voice_policy": opt(&u.voice_policy),
        })).collect::<Vec<_>>(),
        "announcements": d.announcements.iter().map(|a| json!({
            "name": a.name, "audio_file": opt(&a.audio_file), "tones": opt(&a.tones), "target": opt(&a.target),
        })).collect::<Vec<_>>(),
        "unassigned": d.unassigned.iter().map(|r| json!({
            "name": r.name, "start": r.start, "end": r.end, "announcement": r.announcement, "priority": r.priority,
        })).collect::<Vec<_>>(),
    })
}

pub(super) async fn api_voice(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&p, &headers, peer.ip(), Permission::ViewVoiceChat).await {
        return r;
    }
    match p.store.voice_data().await {
        Ok((rev, d)) => {
            let mut v = voice_json(&d);
            v["revision"] = json!(rev);
            json_response(StatusCode::OK, v)
        }
        Err(e) => op_error(e.into()),
    }
}

/// `POST /admin/api/voice {"args": [...]}`: one `confab voice` change.
pub(super) async fn api_voice_change(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match authorize(&p, &headers, peer.ip(), Permission::ChangeVoiceChat).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let w = match words(&body, VOICE_CHANGES, "confab voice") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let cmd = match VoiceWords::try_parse_from(&w) {
        Ok(c) => c.command,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, parse_error(&e)),
    };
    let mut out = Vec::new();
    let r = crate::voice_cli::apply(
        &p.store,
        &crate::voice_homes::HomeSource::for_data_dir(&p.data_dir),
        cmd,
        &mut out,
    )
    .await;
    if r.is_ok() {
        audit(&p.store, &who, "voice", &w).await;
    }
    change_answer(r, out)
}

/// `GET /admin/api/voice/test?user=&dialed=`: `confab voice test-number`.
pub(super) async fn api_voice_test(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&p, &headers, peer.ip(), Permission::ViewVoiceChat).await {
        return r;
    }
    let (Some(user), Some(dialed)) = (q.get("user"), q.get("dialed")) else {
        return api_error(StatusCode::BAD_REQUEST, "give user and dialed");
    };
    if dialed.trim().is_empty() || dialed.len() > 64 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "the dialed number must have 1 to 64 characters",
        );
    }
    let cmd = VoiceCommand::TestNumber {
        user: user.clone(),
        dialed: dialed.trim().to_owned(),
    };
    let mut out = Vec::new();
    match crate::voice_cli::apply(
        &p.store,
        &crate::voice_homes::HomeSource::for_data_dir(&p.data_dir),
        cmd,
        &mut out,
    )
    .await
    {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({ "explanation": String::from_utf8_lossy(&out) }),
        ),
        Err(e) => op_error(e),
    }
}

/// `POST /admin/api/voice/user {"address", "line_uri"?, "dial_plan"?,
/// "voice_policy"?}`: `confab user set ADDRESS --line-uri ... --dial-plan ...
/// --voice-policy ...` (`none` or "" clears one; a missing key keeps it).
pub(super) async fn api_voice_user(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match authorize(&p, &headers, peer.ip(), Permission::ChangeVoiceChat).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let m = match body_json(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let address = match field(&m, "address") {
        Ok(a) => a.to_owned(),
        Err(r) => return r,
    };
    let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let args = UserVoiceArgs {
        line_uri: get("line_uri"),
        dial_plan: get("dial_plan"),
        voice_policy: get("voice_policy"),
    };
    if !args.any() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "give line_uri, dial_plan or voice_policy",
        );
    }
    match crate::voice_cli::user_set(&p.store, &address, &args).await {
        Ok(msg) => {
            let actor = who.actor();
            if let Err(e) = p
                .store
                .append_audit(&AuditEntry {
                    seq: 0,
                    at: 0,
                    actor: actor.who,
                    source: actor.from,
                    action: "user.set-voice".into(),
                    target: Some(address),
                    detail: Some(msg.clone()),
                })
                .await
            {
                warn!(error = %e, "control panel: writing the audit log failed");
            }
            json_response(StatusCode::OK, json!({ "message": msg }))
        }
        Err(e) => op_error(e),
    }
}

// ---- Persistent Chat ----

pub(super) async fn api_chat(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&p, &headers, peer.ip(), Permission::ViewVoiceChat).await {
        return r;
    }
    let chat = &p.store;
    let dir = match chat.chat_directory().await {
        Ok(d) => Directory::new(d),
        Err(e) => return op_error(e.into()),
    };
    let servers = match chat.chat_servers().await {
        Ok(s) => s,
        Err(e) => return op_error(e.into()),
    };
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX);
    let lease = i64::try_from(p.chat_lease_ms).unwrap_or(i64::MAX);
    let d = &dir.data;
    let mut users: Vec<(&String, &bool)> = d.policy.users.iter().collect();
    users.sort();
    json_response(
        StatusCode::OK,
        json!({
            "categories": d.categories.iter().map(|c| json!({
                "name": c.name, "uri": c.uri, "description": c.description,
                "allowed_members": c.allowed, "denied_members": c.denied, "creators": c.creators,
                "file_upload": c.file_upload, "chat_history": c.chat_history,
            })).collect::<Vec<_>>(),
            "rooms": d.rooms.iter().map(|r| json!({
                "name": r.name, "uri": r.uri,
                "category": dir.category(&r.category_id).map(|c| c.name.clone()),
                "privacy": r.privacy.as_str(), "type": r.room_type.as_str(), "disabled": r.disabled,
                "description": r.description, "members": r.members, "managers": r.managers,
                "presenters": r.presenters,
            })).collect::<Vec<_>>(),
            "policy": {
                "global": d.policy.global,
                "users": users.iter().map(|(u, e)| json!({ "user": u, "enabled": e })).collect::<Vec<_>>(),
            },
            "config": {
                "default_history": d.config.default_history,
                "max_message_bytes": d.config.max_message_bytes,
                "participant_update_limit": d.config.participant_update_limit,
                "max_file_size_kb": d.config.max_file_size_kb,
            },
            // `confab chat status --json`'s figures.
            "servers": servers.iter().map(|s| {
                let age = now.saturating_sub(s.heartbeat_ms);
                json!({
                    "server": s.server, "pool": s.pool, "sip": s.sip_addr, "state": s.state.as_str(),
                    "live": age <= lease, "heartbeat_age_ms": age, "joined": s.joined, "rooms": s.rooms,
                    "posts": s.posts, "deliveries": s.deliveries,
                    "posts_per_s": s.post_rate_milli as f64 / 1000.0,
                    "deliveries_per_s": s.delivery_rate_milli as f64 / 1000.0,
                })
            }).collect::<Vec<_>>(),
        }),
    )
}

/// `POST /admin/api/chat {"args": [...]}`: one `confab chat` change.
pub(super) async fn api_chat_change(
    State(p): State<Shared>,
    ConnectInfo(PeerInfo { peer, .. }): ConnectInfo<PeerInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let who = match authorize(&p, &headers, peer.ip(), Permission::ChangeVoiceChat).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let w = match words(&body, CHAT_CHANGES, "confab chat") {
        Ok(w) => w,
        Err(r) => return r,
    };
    let cmd = match ChatWords::try_parse_from(&w) {
        Ok(c) => c.command,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, parse_error(&e)),
    };
    let mut out = Vec::new();
    let r = crate::chat_cli::apply(&p.store, &p.domain, &p.chat_files, cmd, &mut out).await;
    if r.is_ok() {
        audit(&p.store, &who, "chat", &w).await;
    }
    change_answer(r, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    #[test]
    fn only_changes_are_accepted() {
        assert!(
            words(
                &body(json!({"args": ["route", "add", "r"]})),
                VOICE_CHANGES,
                "v"
            )
            .is_ok()
        );
        assert!(
            words(
                &body(json!({"args": ["route", "list"]})),
                VOICE_CHANGES,
                "v"
            )
            .is_err()
        );
        assert!(
            words(
                &body(json!({"args": ["test-number", "a", "1"]})),
                VOICE_CHANGES,
                "v"
            )
            .is_err()
        );
        assert!(
            words(
                &body(json!({"args": ["export", "--out", "/tmp/x"]})),
                CHAT_CHANGES,
                "c"
            )
            .is_err()
        );
        assert!(
            words(
                &body(json!({"args": ["announcement", "add", "a", "--audio-file=/etc/passwd"]})),
                VOICE_CHANGES,
                "v"
            )
            .is_err()
        );
        assert!(
            words(
                &body(json!({"args": ["room", "add", 3]})),
                CHAT_CHANGES,
                "c"
            )
            .is_err()
        );
        assert!(words(&body(json!({"args": "room add"})), CHAT_CHANGES, "c").is_err());
    }

    #[test]
    fn the_cli_parser_reads_the_words() {
        let w = [
            "rule",
            "add",
            "global",
            "four",
            "--pattern",
            "(\\d{4})",
            "--translation",
            "+1425555$1",
        ];
        assert!(VoiceWords::try_parse_from(w).is_ok());
        let e = VoiceWords::try_parse_from(["route", "add", "r"])
            .err()
            .map(|e| parse_error(&e))
            .unwrap_or_default();
        assert!(e.contains("--pattern"), "{e}");
    }
}
