//! SIP over WebSocket (RFC 7118) at `ws://HTTP/` with subprotocol `sip`: digest
//! REGISTER, and MESSAGEs between a WebSocket user and a UDP user in both directions.

use std::time::Duration;

use confab_acceptance::sip::{Link, Ua, UdpLink};
use confab_acceptance::ws::{WsClient, WsLink};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, ensure, unique_token};

const DOMAIN: &str = "example.com";

fn server() -> Result<ConfabServer> {
    ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )
}

#[test]
fn websocket_handshake_selects_sip_subprotocol() -> Result<()> {
    let server = server()?;
    let ws = WsClient::connect(server.http_addr()?, "/", "sip", Duration::from_secs(5));
    let ws = server.with_log(ws)?;
    ensure!(
        ws.handshake_response
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol: sip"),
        "handshake response: {}",
        ws.handshake_response
    );
    Ok(())
}

#[test]
fn websocket_register_with_digest() -> Result<()> {
    let server = server()?;
    let link = server.with_log(WsLink::connect(server.http_addr()?, "/"))?;
    let mut ua = Ua::new(link, "alice", "alicepw", DOMAIN);
    server.with_log(ua.register_ok(300))?;
    // Wrong password on the same transport must not register.
    let link = server.with_log(WsLink::connect(server.http_addr()?, "/"))?;
    let mut bad = Ua::new(link, "bob", "not-bobs-password", DOMAIN);
    let r = server.with_log(bad.register(300))?;
    ensure!(
        r.status() != Some(200),
        "REGISTER with a wrong password was accepted: {}\n{}",
        r.first_line,
        bad.transcript()
    );
    Ok(())
}

/// `from` sends a MESSAGE with a unique text to `to`, which must receive it while
/// `from` must get a 200.
fn deliver<A: Link + Send, B: Link + Send>(
    server: &ConfabServer,
    from: &mut Ua<A>,
    to: &mut Ua<B>,
    what: &str,
) -> Result<()> {
    let text = format!("confab {what} {}", unique_token());
    let to_aor = to.aor();
    let (sent, received) = std::thread::scope(|s| {
        let rx = s.spawn(|| to.wait_message_containing(&text, Duration::from_secs(15)));
        let sent = from.send_message(&to_aor, &text);
        let received = rx
            .join()
            .unwrap_or_else(|_| Err(Error::new("receiver thread panicked")));
        (sent, received)
    });
    let fail = |why: String| {
        Error(format!(
            "{what}: {why}\n--- sender transcript ---\n{}--- receiver transcript ---\n{}{}",
            from.transcript(),
            to.transcript(),
            server.context()
        ))
    };
    let resp = sent.map_err(|e| fail(format!("sending failed: {e}")))?;
    let msg = received.map_err(|e| fail(format!("not received: {e}")))?;
    if resp.status() != Some(200) {
        return Err(fail(format!(
            "final response `{}` (want 200)",
            resp.first_line
        )));
    }
    if !msg.body_text().contains(&text) {
        return Err(fail(format!("wrong body {:?}", msg.body_text())));
    }
    Ok(())
}

#[test]
fn websocket_and_udp_users_exchange_messages() -> Result<()> {
    let server = server()?;
    let link = server.with_log(WsLink::connect(server.http_addr()?, "/"))?;
    let mut alice_ws = Ua::new(link, "alice", "alicepw", DOMAIN);
    let mut bob_udp = Ua::new(UdpLink::new(server.sip_addr())?, "bob", "bobpw", DOMAIN);
    server.with_log(alice_ws.register_ok(300))?;
    server.with_log(bob_udp.register_ok(300))?;
    deliver(&server, &mut alice_ws, &mut bob_udp, "WS->UDP")?;
    deliver(&server, &mut bob_udp, &mut alice_ws, "UDP->WS")?;
    Ok(())
}
