//! A contact-list edit from the command line and one from a client, within one
//! poll interval of the server (200 ms): neither may be lost silently (issue 15
//! item 18). The client edit is a SOAP `setContact` in a digest-authenticated
//! SERVICE, as Lync clients send it.

use std::time::Duration;

use confab_acceptance::sip::{Ua, UdpLink};
use confab_acceptance::{ConfabServer, Result, ServerOptions, ensure, unique_token};

const DOMAIN: &str = "example.com";

fn set_contact(uri: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:m=\"http://schemas.microsoft.com/winrtc/2002/11/sip\"><s:Body><m:setContact><m:displayName></m:displayName><m:groups></m:groups><m:subscribed>true</m:subscribed><m:URI>sip:{uri}</m:URI><m:deltaNum>1</m:deltaNum></m:setContact></s:Body></s:Envelope>"
    )
}

#[test]
fn cli_and_client_edits_of_one_list_within_a_poll_interval_lose_nothing() -> Result<()> {
    let mut opts = ServerOptions::new().domain(DOMAIN);
    for u in ["alice", "bob"] {
        opts = opts.user(&format!("{u}@example.com"), &format!("{u}pw"));
    }
    let server = ConfabServer::start(opts)?;
    server.cli(&["contact", "add", "alice@example.com", "bob@example.com"])?;
    let mut alice = Ua::new(UdpLink::new(server.sip_addr())?, "alice", "alicepw", DOMAIN);
    server.with_log(alice.register_ok(300))?;
    let me = "sip:alice@example.com";

    let mut refused = 0;
    for round in 0..3 {
        // The command line adds one contact; the client, right after and before
        // the server's next poll, adds another to the list it holds.
        let cli_contact = format!("cli{round}@example.com");
        let client_contact = format!("client{round}@example.com");
        server.cli(&["contact", "add", "alice@example.com", &cli_contact])?;
        let body = set_contact(&client_contact);
        let r = server.with_log(alice.request(
            "SERVICE",
            me,
            me,
            &unique_token(),
            &[],
            Some(("application/SOAP+xml", body.as_str())),
        ))?;
        let accepted = r.status() == Some(200);
        if !accepted {
            refused += 1;
        }
        // Let the server's change feed settle, then look at the stored list.
        std::thread::sleep(Duration::from_millis(600));
        let list = server.cli(&["contact", "list", "alice@example.com"])?;
        ensure!(
            list.contains(&cli_contact),
            "round {round}: the command-line edit ({cli_contact}) was lost (client answer: {}):\n{list}\n{}",
            r.first_line,
            server.context()
        );
        ensure!(
            list.contains("bob@example.com"),
            "round {round}: bob was lost:\n{list}"
        );
        ensure!(
            !accepted || list.contains(&client_contact),
            "round {round}: the client's edit ({client_contact}) was answered 200 but not stored:\n{list}\n{}",
            server.context()
        );
        // Every earlier edit is still there.
        for earlier in 0..round {
            ensure!(
                list.contains(&format!("cli{earlier}@example.com")),
                "round {round}: cli{earlier} lost:\n{list}"
            );
        }
    }
    eprintln!("client edits refused in a race: {refused} of 3");
    // A client that was refused can edit again once it has the current list.
    if refused > 0 {
        std::thread::sleep(Duration::from_millis(400));
        let body = set_contact("again@example.com");
        let r = server.with_log(alice.request(
            "SERVICE",
            me,
            me,
            &unique_token(),
            &[],
            Some(("application/SOAP+xml", body.as_str())),
        ))?;
        ensure!(
            r.status() == Some(200),
            "an edit after a refusal: {}\n{}",
            r.first_line,
            server.context()
        );
        let list = server.cli(&["contact", "list", "alice@example.com"])?;
        ensure!(list.contains("again@example.com"), "{list}");
    }
    Ok(())
}
