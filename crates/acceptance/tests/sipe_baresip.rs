//! One world for both client families: alice on pidgin-sipe (bitlbee, NTLM over
//! TCP) and carol on baresip (digest, over UDP and over TCP):
//! * alice adds carol in the client (SOAP setContact accepted) and sees her Online
//!   (baresip PUBLISHes PIDF `open` once registered);
//! * carol's baresip subscribes to alice's presence (presence module, contact
//!   `;presence=p2p`) and shows her Online; after alice's /away it shows her as
//!   not Online (baresip 1.0 knows Online/Offline/Busy only: PIDF `<rpid:away/>` or
//!   basic `closed` -> Offline, `<rpid:busy/>` -> Busy), and Online again after
//!   she is back;
//! * alice's IM reaches baresip, baresip's MESSAGE reaches alice.
//!
//! Driven by tests/clients/sipe/run_sipe.py `--baresip carol:PW --baresip-presence
//! --contacts add`.

use std::time::Duration;

use confab_acceptance::sipe::{SIPE_TOOLS, SipeCmd};
use confab_acceptance::{ConfabServer, Result, ServerOptions, tools_required};

const ALICE: (&str, &str) = ("alice@example.com", "alice-secret");

fn sipe_and_baresip(baresip_transport: &str) -> Result<()> {
    if !tools_required(SIPE_TOOLS) || !tools_required(&["baresip"]) {
        return Ok(());
    }
    let server = ConfabServer::start(
        ServerOptions::new()
            .domain("example.com")
            .user(ALICE.0, ALICE.1)
            .user("carol@example.com", "carolpw"),
    )?;
    let work = server
        .work_dir()
        .join(format!("sipe-baresip-{baresip_transport}"));
    let out = SipeCmd::new(&work, "alice-carol", server.sip_port(), "tcp", ALICE)
        .baresip("carol:carolpw", baresip_transport)
        .args(&["--baresip-presence", "--contacts", "add"])
        .args(&["--presence-wait", "15", "--im-wait", "15"])
        .start()?
        .finish(Duration::from_secs(300))?;
    out.require(
        &[
            "sign-in alice@example.com",
            "baresip sip:carol@example.com registers",
            "alice@example.com adds sip:carol@example.com in the client",
            "server accepts alice@example.com's setContact sip:carol@example.com",
            "alice@example.com sees baresip sip:carol@example.com Online",
            "baresip sip:carol@example.com sees alice@example.com Online",
            "baresip sip:carol@example.com sees alice@example.com away after /away",
            "baresip sip:carol@example.com sees alice@example.com Online again",
            "IM alice@example.com -> baresip sip:carol@example.com",
            "IM baresip sip:carol@example.com -> alice@example.com",
        ],
        &server,
    )?;
    out.require_signed()
}

#[test]
fn sipe_baresip_presence_and_im_udp() -> Result<()> {
    sipe_and_baresip("udp")
}

#[test]
fn sipe_baresip_presence_and_im_tcp() -> Result<()> {
    sipe_and_baresip("tcp")
}
