//! Parser throughput: a typical REGISTER and INVITE, parsed and with the core typed
//! headers read (top Via branch, From tag, To, Call-ID, CSeq, Contact URI), as the
//! proxy does for every message. Criterion reports messages per second
//! (`Throughput::Elements(1)`). Run on one core:
//! `taskset -c 1 cargo bench -p confab-sip --bench parse`.

use std::hint::black_box;

use bytes::Bytes;
use confab_sip::{Frame, Framer, HeaderName, Limits, Message, NameAddr};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A Lync client's first REGISTER (pidgin-sipe capture, 835 bytes).
const REGISTER: &[u8] = include_bytes!("../tests/data/sipe/ntlm-1-REGISTER-no-auth.sip");

/// A plain SIP INVITE with SDP through one proxy (about 900 bytes).
const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/TLS proxy.atlanta.example.com:5061;branch=z9hG4bK74b43;received=192.0.2.101\r\n\
Via: SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bKnashds8;rport=5061\r\n\
Record-Route: <sip:proxy.atlanta.example.com:5061;transport=tls;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: \"Bob\" <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 31862 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com:5061;transport=tls;ob>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n\
Supported: replaces, gruu, timer, 100rel\r\n\
User-Agent: ExampleSoftphone/4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 243\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n";

/// Parse and read what routing needs; returns something derived from every value so
/// nothing is optimised away.
fn parse_and_touch(buf: &Bytes, limits: &Limits) -> usize {
    let Ok(m) = Message::parse(buf.clone(), limits) else {
        return 0;
    };
    let via = m.top_via();
    let mut n = via.branch().map_or(0, str::len) + via.host.len();
    n += m.from_tag().map_or(0, str::len);
    let to = m.to();
    n += to.uri.len() + to.tag().map_or(0, str::len);
    n += m.call_id().len();
    let (seq, method) = m.cseq();
    n += seq as usize + method.as_str().len();
    if let Some(c) = m.header(HeaderName::Contact)
        && let Ok(c) = NameAddr::parse(c)
        && let Ok(u) = c.parsed_uri()
    {
        n += u.host.len() + u.port.map_or(0, usize::from);
    }
    n + m.body().len()
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, raw) in [("register", REGISTER), ("invite", INVITE)] {
        let buf = Bytes::from_static(raw);
        assert!(parse_and_touch(&buf, &limits) > 0, "{name} must parse");
        g.bench_function(format!("{name}+typed"), |b| {
            b.iter(|| parse_and_touch(black_box(&buf), &limits))
        });
        g.bench_function(format!("{name}/parse-only"), |b| {
            b.iter(|| Message::parse(black_box(buf.clone()), &limits).is_ok())
        });
    }
    g.finish();

    // A TCP stream of both, framed then parsed.
    let mut stream = Vec::new();
    for _ in 0..8 {
        stream.extend_from_slice(REGISTER);
        stream.extend_from_slice(INVITE);
    }
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(16));
    g.bench_function("frame+parse+typed", |b| {
        b.iter(|| {
            let mut f = Framer::new(65_535);
            f.push(black_box(&stream));
            let mut n = 0;
            while let Ok(Some(Frame::Message(m))) = f.next_frame() {
                n += parse_and_touch(&m, &limits);
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
