//! Two pidgin-sipe users (bitlbee, NTLM) signed in at the same time, over TCP and
//! over TLS: each adds the other as a contact in the client (SOAP setContact, which
//! the server must accept and keep in the contact list it pushes back), each sees
//! the other Online, bob's /away reaches alice as Away and his return as Online,
//! IMs go both ways and typing is relayed both ways (bitlbee `typing_notice`: the
//! sender's IRC client sends CTCP TYPING, SIPE sends INFO KeyboardActivity in the
//! IM dialog, the receiver's IRC client gets CTCP TYPING). Driven by
//! tests/clients/sipe/run_sipe.py `--user2 ... --contacts add --typing`.
//! Lync's Monitoring: `confab report ims` lists the INVITE-based IM session(s)
//! between the two, with the IMs of both ways counted.

use std::time::Duration;

use confab_acceptance::monitoring::{Row, wait_report};
use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Result, ServerOptions, tools_required};

const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");
const BOB: (&str, &str) = ("bob@example.com", "bob-secret");

fn contacts_presence_im_typing(transport: &str) -> Result<()> {
    if !tools_required(SIPE_TOOLS) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user(ALICE.0, ALICE.1)
            .user(BOB.0, BOB.1),
    )?;
    let work = server.work_dir().join(format!("sipe-im-{transport}"));
    let port = SipeCmd::server_port(&server, transport);
    let out = SipeCmd::new(&work, "alice-bob", port, transport, ALICE)
        .args(&["--user2", BOB.0, "--password2", BOB.1])
        .args(&["--contacts", "add", "--typing"])
        .args(&[
            "--presence-wait",
            "15",
            "--im-wait",
            "15",
            "--typing-wait",
            "12",
        ])
        .start()?
        .finish(Duration::from_secs(300))?;
    out.require(
        &[
            "sign-in alice@example.com",
            "sign-in bob@example.com",
            "alice@example.com adds sip:bob@example.com in the client",
            "server accepts alice@example.com's setContact sip:bob@example.com",
            "alice@example.com still has sip:bob@example.com",
            "bob@example.com adds sip:alice@example.com in the client",
            "server accepts bob@example.com's setContact sip:alice@example.com",
            "alice@example.com sees bob@example.com Online",
            "bob@example.com sees alice@example.com Online",
            "alice@example.com sees bob@example.com Away after /away",
            "alice@example.com sees bob@example.com Online again",
            "IM alice@example.com -> bob@example.com",
            "IM bob@example.com -> alice@example.com",
            "typing alice@example.com -> bob@example.com",
            "typing bob@example.com -> alice@example.com",
        ],
        &server,
    )?;
    out.require_signed()?;
    // Monitoring: the IMs went through INVITE-based sessions (SIPE), listed with
    // both ways' messages.
    let pair = |r: &Row| {
        (r["from"] == ALICE.0 && r["to"] == BOB.0) || (r["from"] == BOB.0 && r["to"] == ALICE.0)
    };
    wait_report(
        &server,
        "ims",
        &["--user", BOB.0],
        Duration::from_secs(10),
        "an IM session of alice and bob with both IMs",
        |rows| {
            let messages: u32 = rows
                .iter()
                .filter(|r| pair(r))
                .filter_map(|r| r["messages"].parse::<u32>().ok())
                .sum();
            rows.iter().any(|r| pair(r) && r["kind"] == "session") && messages >= 2
        },
    )?;
    Ok(())
}

#[test]
fn sipe_contacts_presence_im_typing_tcp() -> Result<()> {
    contacts_presence_im_typing("tcp")
}

#[test]
fn sipe_contacts_presence_im_typing_tls() -> Result<()> {
    contacts_presence_im_typing("tls")
}
