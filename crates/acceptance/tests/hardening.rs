//! Issue 15 (hardening) against a real `confab serve`: an attacker on loopback
//! tries to use the server as a relay (a trap address listens and must receive
//! nothing), to reach local users from another domain, to enumerate users, and to
//! amplify UDP traffic; malformed headers and unknown methods get an answer.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use confab_acceptance::sip::{Link, Message, TcpLink, Ua, UdpLink};
use confab_acceptance::{ConfabServer, Error, Result, ServerOptions, unique_token};

const DOMAIN: &str = "example.com";

fn server() -> Result<ConfabServer> {
    ConfabServer::start(
        ServerOptions::new()
            .domain(DOMAIN)
            .user("alice@example.com", "alicepw")
            .user("bob@example.com", "bobpw"),
    )
}

/// A UDP socket and a TCP listener on one loopback port that the attacker wants
/// the server to send to.
struct Trap {
    udp: UdpSocket,
    tcp: TcpListener,
    addr: SocketAddr,
}

impl Trap {
    fn new() -> Result<Trap> {
        for _ in 0..50 {
            let tcp = TcpListener::bind("127.0.0.1:0")?;
            let addr = tcp.local_addr()?;
            if let Ok(udp) = UdpSocket::bind(addr) {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok(Trap { udp, tcp, addr });
            }
        }
        Err(Error::new("no free port for the trap"))
    }

    /// Fails when anything arrived (UDP datagram or TCP connection) within `wait`.
    fn assert_silent(&self, wait: Duration, what: &str) -> Result<()> {
        let end = Instant::now() + wait;
        let mut buf = [0u8; 65536];
        while Instant::now() < end {
            if let Ok((n, from)) = self.udp.recv_from(&mut buf) {
                return Err(Error(format!(
                    "{what}: the trap got a UDP datagram from {from}:\n{}",
                    String::from_utf8_lossy(&buf[..n])
                )));
            }
            if let Ok((mut s, from)) = self.tcp.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let n = s.read(&mut buf).unwrap_or(0);
                return Err(Error(format!(
                    "{what}: the trap got a TCP connection from {from}:\n{}",
                    String::from_utf8_lossy(&buf[..n])
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Sends raw text and returns the responses that arrive within `wait`.
fn exchange<L: Link>(link: &mut L, text: &str, wait: Duration) -> Result<Vec<Message>> {
    link.send(text.as_bytes())?;
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        match link.recv(left)? {
            Some(raw) => out.push(Message::parse(&raw)?),
            None => return Ok(out),
        }
    }
}

fn forged(method: &str, via: &str, target: &str, from: &str, route: Option<&str>) -> String {
    let route = route.map(|r| format!("Route: {r}\r\n")).unwrap_or_default();
    let (body, ct) = if method == "INVITE" {
        (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
            "Content-Type: application/sdp\r\n",
        )
    } else if method == "MESSAGE" {
        ("toll fraud", "Content-Type: text/plain\r\n")
    } else {
        ("", "")
    };
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: {via};branch=z9hG4bK{}\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: <{target}>;tag=victim-tag\r\n\
         Call-ID: {}@attacker\r\n\
         CSeq: 1 {method}\r\n\
         {route}{ct}Content-Length: {}\r\n\r\n{body}",
        unique_token(),
        unique_token(),
        body.len()
    )
}

fn statuses(msgs: &[Message]) -> Vec<Option<u16>> {
    msgs.iter().map(Message::status).collect()
}

#[test]
fn forged_in_dialog_requests_are_not_relayed_to_a_trap() -> Result<()> {
    let server = server()?;
    let trap = Trap::new()?;
    let sip = server.sip_addr();
    let mut udp = UdpLink::new(sip)?;
    let mut tcp = TcpLink::connect(sip)?;
    let our_route = format!("<sip:{sip};lr>");
    let forged_token = format!("<sip:{sip};lr;cfd=00112233445566778899aabb>");
    for from in [
        "<sip:mallory@evil.example>;tag=m",
        "<sip:alice@example.com>;tag=m",
    ] {
        for route in [None, Some(our_route.as_str()), Some(forged_token.as_str())] {
            for method in ["INVITE", "BYE", "MESSAGE", "ACK"] {
                // UDP
                let via = udp.via();
                let target = format!("sip:victim@{}", trap.addr);
                let text = forged(method, &via, &target, from, route);
                let got = exchange(&mut udp, &text, Duration::from_millis(300))?;
                let expect_answer = method != "ACK";
                if expect_answer && statuses(&got) != vec![Some(403)] {
                    return Err(Error(format!(
                        "UDP {method} from {from} route {route:?}: got {:?}\n{}",
                        statuses(&got),
                        server.context()
                    )));
                }
                // TCP
                let via = tcp.via();
                let target = format!("sip:victim@{};transport=tcp", trap.addr);
                let text = forged(method, &via, &target, from, route);
                let got = exchange(&mut tcp, &text, Duration::from_millis(300))?;
                if expect_answer && statuses(&got) != vec![Some(403)] {
                    return Err(Error(format!(
                        "TCP {method} from {from} route {route:?}: got {:?}\n{}",
                        statuses(&got),
                        server.context()
                    )));
                }
            }
        }
    }
    trap.assert_silent(Duration::from_secs(2), "forged in-dialog requests")
}

#[test]
fn strangers_get_403_and_learn_nothing_about_users() -> Result<()> {
    let server = server()?;
    let mut bob = Ua::new(UdpLink::new(server.sip_addr())?, "bob", "bobpw", DOMAIN);
    bob.register_ok(300)?;
    let mut mallory = UdpLink::new(server.sip_addr())?;
    let mut answers = Vec::new();
    for user in ["bob", "alice", "nobody"] {
        let target = format!("sip:{user}@{DOMAIN}");
        let via = mallory.via();
        let text = forged(
            "MESSAGE",
            &via,
            &target,
            "<sip:mallory@evil.example>;tag=m",
            None,
        )
        .replace(";tag=victim-tag", "");
        let got = exchange(&mut mallory, &text, Duration::from_millis(500))?;
        let first = got
            .first()
            .map(|m| m.first_line.clone())
            .unwrap_or_default();
        answers.push(first);
    }
    if answers.iter().any(|a| !a.starts_with("SIP/2.0 403 "))
        || answers.windows(2).any(|w| w[0] != w[1])
    {
        return Err(Error(format!(
            "strangers must get the same 403 for every user, got {answers:?}\n{}",
            server.context()
        )));
    }
    // bob was never bothered.
    if let Ok(m) = bob.wait_request("MESSAGE", Duration::from_millis(500)) {
        return Err(Error(format!(
            "bob got a stranger's MESSAGE: {}",
            m.summary()
        )));
    }
    Ok(())
}

#[test]
fn spoofed_invite_over_udp_is_answered_once() -> Result<()> {
    let server = server()?;
    let mut victim = UdpLink::new(server.sip_addr())?;
    let via = victim.via();
    let text = forged(
        "INVITE",
        &via,
        &format!("sip:bob@{DOMAIN}"),
        "<sip:alice@example.com>;tag=v",
        None,
    )
    .replace(";tag=victim-tag", "");
    // The old server retransmitted the 407 at 0.5, 1.5, 3.5 s... until 32 s.
    let got = exchange(&mut victim, &text, Duration::from_secs(5))?;
    let bytes: usize = got.iter().map(|m| m.to_bytes().len()).sum();
    if got.len() != 1 || bytes > 2 * text.len() {
        return Err(Error(format!(
            "one answer at most twice the size expected, got {:?} ({bytes} bytes for {})\n{}",
            statuses(&got),
            text.len(),
            server.context()
        )));
    }
    Ok(())
}

#[test]
fn nul_in_a_header_and_unknown_methods_are_answered() -> Result<()> {
    let server = server()?;
    let mut udp = UdpLink::new(server.sip_addr())?;
    let via = udp.via();
    let text = forged(
        "OPTIONS",
        &via,
        &format!("sip:bob@{DOMAIN}"),
        "<sip:alice@example.com>;tag=n",
        None,
    )
    .replace("Max-Forwards: 70", "Subject: a\0b\r\nMax-Forwards: 70");
    let got = exchange(&mut udp, &text, Duration::from_secs(1))?;
    if statuses(&got) != vec![Some(400)] {
        return Err(Error(format!("NUL: got {:?}", statuses(&got))));
    }
    let mut tcp = TcpLink::connect(server.sip_addr())?;
    for link_is_tcp in [false, true] {
        let via = if link_is_tcp { tcp.via() } else { udp.via() };
        let text = format!(
            "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\r\n\
             Via: {via};branch=z9hG4bK-.!%66*_+`'~{}\r\n\
             To: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\r\n\
             From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"живой параметр\";tag=_token~1'+`*%!-.\r\n\
             Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}}{{\r\n\
             CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\r\n\
             Max-Forwards: 255\r\n\
             extensionHeader-!.%*+_`'~:\u{feff}大停電\r\n\
             Content-Length: 0\r\n\r\n",
            unique_token()
        );
        let got = if link_is_tcp {
            exchange(&mut tcp, &text, Duration::from_secs(1))?
        } else {
            exchange(&mut udp, &text, Duration::from_secs(1))?
        };
        if statuses(&got) != vec![Some(501)] {
            return Err(Error(format!(
                "RFC 4475 intmeth over {}: got {:?}\n{}",
                if link_is_tcp { "TCP" } else { "UDP" },
                statuses(&got),
                server.context()
            )));
        }
    }
    drop(TcpStream::connect(server.sip_addr()));
    Ok(())
}
