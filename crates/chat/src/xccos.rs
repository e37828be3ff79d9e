//! XCCOS (MS-XCCOSIP) envelopes as pidgin-sipe sends and reads them: parsing of the
//! client's commands and posts, rendering of replies, notices and posts.
//!
//! Every body is `<xccos ver="1" envid="N" xmlns="urn:parlano:xml:ns:xccos">` with
//! children of one kind: `cmd` (client commands), `rpl` (replies), `ntc` (notices) or
//! one `grpchat` (a post).

use confab_presence::xmltree::{self, Limits, Node, push_escaped};

/// The XCCOS namespace.
pub const NS: &str = "urn:parlano:xml:ns:xccos";

/// aib key SIPE reads as "member" (its guess, used by real servers as the member list).
pub const AIB_MEMBER: &str = "3984";
/// aib key SIPE reads as "chanop" (managers).
pub const AIB_CHANOP: &str = "12276";

/// One client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A `<cmd id=...>` with the envelope's envid.
    Command { envid: String, cmd: Command },
    /// A post, with the envelope's envid (echoed in the `rpl:grpchat` of a refusal).
    Post {
        envid: String,
        chan_uri: String,
        text: String,
    },
}

/// The commands a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ReqUri,
    GetInv,
    GetServerInfo,
    /// Room search; `criteria` empty lists every visible room.
    ChanSrch {
        criteria: String,
    },
    /// `cmd:join` (batch = false) or `cmd:bjoin` (batch = true) of these room URIs.
    Join {
        batch: bool,
        rooms: Vec<String>,
    },
    /// Backfill: the newest `count` posts of a room.
    BcContext {
        room: String,
        count: u32,
    },
    Part {
        room: String,
    },
    /// Anything else (answered with an error reply of the same name).
    Other {
        id: String,
    },
}

impl Command {
    /// The reply id for this command (`cmd:x` → `rpl:x`).
    pub fn reply_id(&self) -> String {
        match self {
            Command::ReqUri => "rpl:requri".into(),
            Command::GetInv => "rpl:getinv".into(),
            Command::GetServerInfo => "rpl:getserverinfo".into(),
            Command::ChanSrch { .. } => "rpl:chansrch".into(),
            Command::Join { batch: false, .. } => "rpl:join".into(),
            Command::Join { batch: true, .. } => "rpl:bjoin".into(),
            Command::BcContext { .. } => "rpl:bccontext".into(),
            Command::Part { .. } => "rpl:part".into(),
            Command::Other { id } => match id.strip_prefix("cmd:") {
                Some(rest) => format!("rpl:{rest}"),
                None => "rpl:unknown".into(),
            },
        }
    }
}

/// Why a body is not a usable XCCOS message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XccosError {
    #[error("not XML: {0}")]
    Xml(#[from] xmltree::XmlError),
    #[error("not an xccos envelope")]
    NotXccos,
    #[error("empty xccos envelope")]
    Empty,
    #[error("{0}")]
    Invalid(&'static str),
}

/// Bounds on a client body: a post of the largest allowed size fits easily.
const LIMITS: Limits = Limits {
    max_bytes: 256 * 1024,
    max_depth: 8,
    max_elements: 2_000,
};

/// The most rooms one `cmd:bjoin` may name.
pub const MAX_BATCH_JOIN: usize = 500;

fn chanid_uri(c: &Node) -> Option<String> {
    let domain = c.attr("domain")?;
    let value = c.attr("value")?;
    if domain.is_empty() || value.is_empty() {
        return None;
    }
    Some(format!("ma-chan://{domain}/{value}"))
}

/// Parses a client INFO body.
pub fn parse(body: &[u8]) -> Result<Vec<Incoming>, XccosError> {
    let root = xmltree::parse_tree(body, &LIMITS)?;
    if root.name != "xccos" {
        return Err(XccosError::NotXccos);
    }
    let envid = root.attr("envid").unwrap_or("0").to_owned();
    let mut out = Vec::new();
    for child in &root.children {
        match child.name.as_str() {
            "grpchat" => {
                let chan_uri = child
                    .attr("chanUri")
                    .ok_or(XccosError::Invalid("grpchat without chanUri"))?
                    .to_owned();
                let text = child.text_of("chat").unwrap_or("").to_owned();
                out.push(Incoming::Post {
                    envid: envid.clone(),
                    chan_uri,
                    text,
                });
            }
            "cmd" => {
                let id = child.attr("id").unwrap_or("");
                let data = child.child("data");
                let cmd = match id {
                    "cmd:requri" => Command::ReqUri,
                    "cmd:getinv" => Command::GetInv,
                    "cmd:getserverinfo" => Command::GetServerInfo,
                    "cmd:chansrch" => Command::ChanSrch {
                        criteria: data
                            .and_then(|d| d.child("qib"))
                            .and_then(|q| q.attr("criteria"))
                            .unwrap_or("")
                            .to_owned(),
                    },
                    "cmd:join" | "cmd:bjoin" => {
                        let rooms: Vec<String> = data
                            .map(|d| d.children_named("chanid").filter_map(chanid_uri).collect())
                            .unwrap_or_default();
                        if rooms.len() > MAX_BATCH_JOIN {
                            return Err(XccosError::Invalid("too many rooms in one join"));
                        }
                        Command::Join {
                            batch: id == "cmd:bjoin",
                            rooms,
                        }
                    }
                    "cmd:bccontext" => {
                        let room = data
                            .and_then(|d| d.child("chanib"))
                            .and_then(|c| c.attr("uri"))
                            .unwrap_or("")
                            .to_owned();
                        let count = data
                            .and_then(|d| d.child("bcq"))
                            .and_then(|b| b.child("last"))
                            .and_then(|l| l.attr("cnt"))
                            .and_then(|c| c.trim().parse::<u32>().ok())
                            .unwrap_or(25);
                        Command::BcContext { room, count }
                    }
                    "cmd:part" => Command::Part {
                        room: data
                            .and_then(|d| d.child("chanib"))
                            .and_then(|c| c.attr("uri"))
                            .unwrap_or("")
                            .to_owned(),
                    },
                    other => Command::Other {
                        id: other.to_owned(),
                    },
                };
                out.push(Incoming::Command {
                    envid: envid.clone(),
                    cmd,
                });
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(XccosError::Empty);
    }
    Ok(out)
}

/// Appends `s` escaped for an attribute value.
pub fn attr(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

/// Appends `s` escaped for element text.
pub fn text(out: &mut String, s: &str) {
    push_escaped(out, s, false);
}

fn envelope(envid: u64, inner: &str) -> String {
    format!("<xccos ver=\"1\" envid=\"{envid}\" xmlns=\"{NS}\">{inner}</xccos>")
}

/// A reply: `<rpl id=.. seqid="1"><commandid seqid="1" envid=".."/><resp code=..>reason</resp><data>..</data></rpl>`.
/// `data` is already-rendered XML.
pub fn reply(envid: u64, id: &str, cmd_envid: &str, code: u16, reason: &str, data: &str) -> String {
    let mut s = String::with_capacity(160 + reason.len() + data.len());
    s.push_str("<rpl id=\"");
    attr(&mut s, id);
    s.push_str("\" seqid=\"1\"><commandid seqid=\"1\" envid=\"");
    attr(&mut s, cmd_envid);
    s.push_str(&format!("\"/><resp code=\"{code}\">"));
    text(&mut s, reason);
    s.push_str("</resp><data>");
    s.push_str(data);
    s.push_str("</data></rpl>");
    envelope(envid, &s)
}

/// A notice: `<ntc id=.. seqid="1"><data>..</data></ntc>`.
pub fn notice(envid: u64, id: &str, data: &str) -> String {
    envelope(
        envid,
        &format!("<ntc id=\"{id}\" seqid=\"1\"><data>{data}</data></ntc>"),
    )
}

/// The attributes and `<chat>` element shared by a fanned-out post and a backfill message.
pub fn post_inner(out: &mut String, chan_uri: &str, author_uri: &str, ts: &str, body: &str) {
    out.push_str(" chanUri=\"");
    attr(out, chan_uri);
    out.push_str("\" author=\"");
    attr(out, author_uri);
    out.push_str("\" ts=\"");
    attr(out, ts);
    out.push_str("\"><chat>");
    text(out, body);
    out.push_str("</chat>");
}

/// A post fanned out to a room's participants.
pub fn grpchat(envid: u64, chan_uri: &str, author_uri: &str, ts: &str, body: &str) -> String {
    let mut s = String::with_capacity(128 + body.len());
    s.push_str("<grpchat id=\"grpchat\" seqid=\"1\"");
    post_inner(&mut s, chan_uri, author_uri, ts, body);
    s.push_str("</grpchat>");
    envelope(envid, &s)
}

/// The UTC time of epoch milliseconds (the epoch itself when out of range).
fn utc(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Epoch milliseconds as XCCOS `ts` (ISO 8601 UTC, seconds).
pub fn format_ts(ms: i64) -> String {
    utc(ms)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// Parses `YYYY-MM-DD` (midnight UTC) or RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`,
/// `t` or a space for the `T`) into epoch milliseconds.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let ms = |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    if s.len() == 10 {
        let d =
            time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
        return ms(d.midnight().assume_utc());
    }
    // RFC 3339 allows a lower-case `t`/`z` and (section 5.6, note) a space.
    let mut norm = s.to_string();
    if let Some(sep) = norm.get(10..11)
        && (sep == " " || sep == "t")
    {
        norm.replace_range(10..11, "T");
    }
    if norm.ends_with('z') {
        norm.pop();
        norm.push('Z');
    }
    time::OffsetDateTime::parse(&norm, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(ms)
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    utc(ms)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sipe_commands() {
        let body = br#"<xccos ver="1" envid="2120219438" xmlns="urn:parlano:xml:ns:xccos"><cmd id="cmd:bjoin" seqid="1"><data><chanid key="0" domain="example.com" value="abc"/><chanid key="1" domain="example.com" value="def"/></data></cmd></xccos>"#;
        let msgs = parse(body).unwrap();
        assert_eq!(
            msgs,
            vec![Incoming::Command {
                envid: "2120219438".into(),
                cmd: Command::Join {
                    batch: true,
                    rooms: vec![
                        "ma-chan://example.com/abc".into(),
                        "ma-chan://example.com/def".into()
                    ]
                }
            }]
        );
        let post = "<xccos ver=\"1\" envid=\"5\" xmlns=\"urn:parlano:xml:ns:xccos\"><grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://d/x\" author=\"sip:a@d\" ts=\"2024-01-01T00:00:00Z\"><chat>hello &lt;b&gt;&amp;amp; é</chat></grpchat></xccos>";
        assert_eq!(
            parse(post.as_bytes()).unwrap(),
            vec![Incoming::Post {
                envid: "5".into(),
                chan_uri: "ma-chan://d/x".into(),
                text: "hello <b>&amp; é".into()
            }]
        );
        assert!(parse(b"<foo/>").is_err());
        assert!(parse(b"<xccos").is_err());
        assert!(parse(b"<xccos ver=\"1\"/>").is_err());
    }

    #[test]
    fn renders_escaped_once() {
        let s = grpchat(
            7,
            "ma-chan://d/x",
            "sip:a@d",
            "2024-01-01T00:00:00Z",
            "a<b>&amp;\"é",
        );
        assert!(s.contains("<chat>a&lt;b&gt;&amp;amp;&quot;é</chat>"), "{s}");
        let back = confab_presence::xmltree::parse_tree(s.as_bytes(), &LIMITS).unwrap();
        assert_eq!(
            back.child("grpchat").unwrap().text_of("chat"),
            Some("a<b>&amp;\"é")
        );
        let r = reply(1, "rpl:join", "99", 403, "no <way>", "");
        assert!(
            r.contains(
                "<commandid seqid=\"1\" envid=\"99\"/><resp code=\"403\">no &lt;way&gt;</resp>"
            ),
            "{r}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(parse_date("2024-01-01"), Some(1_704_067_200_000));
        assert_eq!(
            parse_date("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_date("2024-01-01T00:00:00.5Z"),
            Some(1_704_067_200_500)
        );
        assert_eq!(parse_date("2024-02-30"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(rfc3339(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
    }
}
