//! Users provisioned through the CLI are durable: they survive `kill -9` of the server
//! and restarts (digest REGISTER still works, `user list` still shows them).

use confab_acceptance::sip::{Ua, UdpLink};
use confab_acceptance::{ConfabServer, Result, ServerOptions, ensure};

const DOMAIN: &str = "example.com";

/// REGISTER over UDP with digest; requires 200.
fn register(server: &ConfabServer, user: &str, password: &str) -> Result<()> {
    let mut ua = Ua::new(UdpLink::new(server.sip_addr())?, user, password, DOMAIN);
    server.with_log(ua.register_ok(300).map(|_| ()))
}

/// A user added while the server runs signs in once the server has picked the change
/// up from the store (it polls every 200 ms): retry for a bounded time, like a user
/// whose client retries.
fn register_within(
    server: &ConfabServer,
    user: &str,
    password: &str,
    within: std::time::Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match register(server, user, password) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    }
}

fn listed(server: &ConfabServer, addresses: &[&str]) -> Result<()> {
    let list = server.list_users()?;
    for a in addresses {
        ensure!(list.contains(a), "`user list` does not show {a}:\n{list}");
    }
    Ok(())
}

#[test]
fn users_survive_kill9_and_restart() -> Result<()> {
    let mut server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )?;
    if server.skip_if_external("users_survive_kill9_and_restart") {
        return Ok(());
    }
    register(&server, "alice", "alicepw")?;

    server.kill9()?;
    listed(&server, &["alice@example.com", "bob@example.com"])?;
    server.start_again()?;
    register(&server, "alice", "alicepw")?;
    register(&server, "bob", "bobpw")?;

    // A graceful restart keeps them too.
    server.restart()?;
    register(&server, "bob", "bobpw")?;
    listed(&server, &["alice@example.com", "bob@example.com"])?;

    // And the credentials are really checked after all that.
    let mut bad = Ua::new(UdpLink::new(server.sip_addr())?, "alice", "wrong", DOMAIN);
    let r = server.with_log(bad.register(300))?;
    ensure!(
        r.status() != Some(200),
        "REGISTER with a wrong password was accepted after restart: {}\n{}",
        r.first_line,
        bad.transcript()
    );
    Ok(())
}

#[test]
fn user_added_while_running_survives_kill9() -> Result<()> {
    let mut server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw"),
    )?;
    if server.skip_if_external("user_added_while_running_survives_kill9") {
        return Ok(());
    }
    // Provisioning while the server runs (the admin's normal case) ...
    server.add_user("carol@example.com", "carolpw")?;
    // ... takes effect without a restart, within a second ...
    register_within(
        &server,
        "carol",
        "carolpw",
        std::time::Duration::from_secs(1),
    )?;
    // ... and is on disk: kill -9 right away, then start again.
    server.kill9()?;
    server.start_again()?;
    register(&server, "carol", "carolpw")?;
    register(&server, "alice", "alicepw")?;
    listed(&server, &["alice@example.com", "carol@example.com"])?;
    Ok(())
}

#[test]
fn sigterm_shuts_down_cleanly_and_restarts() -> Result<()> {
    let mut server = ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw"),
    )?;
    if server.skip_if_external("sigterm_shuts_down_cleanly_and_restarts") {
        return Ok(());
    }
    register(&server, "alice", "alicepw")?;
    server.stop()?;
    let log = server.log_text();
    ensure!(
        log.contains("shutting down") && log.contains("confab::serve: stopped"),
        "no clean shutdown after SIGTERM:\n{}",
        server.log_tail(20)
    );
    ensure!(
        log.contains("stopped: exit status: 0"),
        "confab did not exit with status 0 after SIGTERM:\n{}",
        server.log_tail(20)
    );
    ensure!(
        !log.contains("SIGKILL"),
        "confab ignored SIGTERM:\n{}",
        server.log_tail(20)
    );
    server.start_again()?;
    register(&server, "alice", "alicepw")?;
    Ok(())
}
