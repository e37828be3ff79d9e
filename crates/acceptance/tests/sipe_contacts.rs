//! Server-side contact lists with the real Lync-protocol client (pidgin-sipe in
//! bitlbee, NTLM over TCP):
//! * a contact alice adds in the client (SOAP setContact) is stored: `confab
//!   contact list` shows it, and after a server restart alice's fresh client (new
//!   bitlbee, nothing cached) gets it from the server's contact list;
//! * a contact added with `confab contact add` before alice signs in shows up in
//!   her buddy list.
//!
//! In both, the buddy must come from the server (`--expect-buddy`: run_sipe.py
//! never `add`s it itself).

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, tail, tools_required};

const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");

fn server() -> Result<ConfabServer> {
    ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user(ALICE.0, ALICE.1)
            .user("bob@example.com", "bob-secret")
            .user("carol@example.com", "carol-secret"),
    )
}

/// `confab contact list alice@example.com` (a table) must mention `contact`.
fn cli_lists(server: &ConfabServer, contact: &str, when: &str) -> std::result::Result<(), String> {
    match server.cli(&["contact", "list", ALICE.0]) {
        Ok(out) if out.contains(contact) => Ok(()),
        Ok(out) => Err(format!(
            "{when}: `confab contact list {}` does not show {contact}:\n{}",
            ALICE.0,
            tail(&out, 20)
        )),
        Err(e) => Err(format!("{when}: {e}")),
    }
}

/// Collects the problems of several steps, so that one failing step does not hide
/// what the others showed.
fn report(problems: Vec<String>, server: &ConfabServer) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let text = problems.join("\n\n");
    // run_sipe.py failures already carry the server log tail.
    let context = if text.contains("--- confab log") {
        String::new()
    } else {
        server.context()
    };
    Err(Error(format!(
        "{} problem(s):\n\n{text}\n\n{context}",
        problems.len()
    )))
}

#[test]
fn sipe_contact_list_survives_restart() -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let mut server = server()?;
    if server.skip_if_external("sipe_contact_list_survives_restart") {
        return Ok(());
    }
    let work = server.work_dir().join("sipe-contacts-restart");
    let mut problems = Vec::new();

    // 1. alice adds bob in the client; the server must accept the setContact.
    let first = SipeCmd::new(&work, "alice-1", server.sip_port(), "tcp", ALICE)
        .args(&["--add-contact", "sip:bob@example.com", "--stay", "1"])
        .start()?
        .finish(Duration::from_secs(180))?;
    if let Err(e) = first.require(
        &[
            "sign-in alice@example.com",
            "alice@example.com adds sip:bob@example.com in the client",
            "server accepts alice@example.com's setContact sip:bob@example.com",
            "alice@example.com still has sip:bob@example.com",
        ],
        &server,
    ) {
        problems.push(format!("first sign-in (alice adds bob): {e}"));
    }
    if let Err(e) = cli_lists(&server, "bob@example.com", "after alice added bob") {
        problems.push(e);
    }

    // 2. Restart; a fresh client must get bob from the server's contact list.
    server.restart()?;
    if let Err(e) = cli_lists(&server, "bob@example.com", "after the restart") {
        problems.push(e);
    }
    let second = SipeCmd::new(&work, "alice-2", server.sip_port(), "tcp", ALICE)
        .args(&[
            "--expect-buddy",
            "sip:bob@example.com",
            "--contact-wait",
            "15",
        ])
        .start()?
        .finish(Duration::from_secs(180))?;
    if let Err(e) = second.require(
        &[
            "sign-in alice@example.com",
            "buddy list of alice@example.com has sip:bob@example.com",
        ],
        &server,
    ) {
        problems.push(format!("sign-in after the restart: {e}"));
    }
    if let Err(e) = second.require_signed() {
        problems.push(e.0);
    }
    report(problems, &server)
}

#[test]
fn sipe_contact_added_with_cli_shows_in_buddy_list() -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = server()?;
    if server.skip_if_external("sipe_contact_added_with_cli_shows_in_buddy_list") {
        return Ok(());
    }
    let work = server.work_dir().join("sipe-contacts-cli");
    // While the server runs, before alice signs in.
    server.cli(&["contact", "add", ALICE.0, "carol@example.com"])?;
    let mut problems = Vec::new();
    if let Err(e) = cli_lists(&server, "carol@example.com", "after `contact add`") {
        problems.push(e);
    }
    let out = SipeCmd::new(&work, "alice", server.sip_port(), "tcp", ALICE)
        .args(&[
            "--expect-buddy",
            "sip:carol@example.com",
            "--contact-wait",
            "15",
        ])
        .start()?
        .finish(Duration::from_secs(180))?;
    if let Err(e) = out.require(
        &[
            "sign-in alice@example.com",
            "buddy list of alice@example.com has sip:carol@example.com",
        ],
        &server,
    ) {
        problems.push(e.0);
    }
    if let Err(e) = out.require_signed() {
        problems.push(e.0);
    }
    report(problems, &server)
}
