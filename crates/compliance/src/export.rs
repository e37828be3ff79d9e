//! The export formats (sans-IO): Lync's compliance XML (`Conversations`, the
//! XmlAdapter's output) and CSV, their file names, and the export schedule.
//!
//! XML, one `Conversation` per room, events oldest first:
//!
//! ```xml
//! <Conversations>
//!   <Conversation>
//!     <Channel uri="ma-chan://example.com/..." name="Lobby" islogged="true"/>
//!     <FirstMessage type="JOIN" content="">
//!       <Sender UserName="alice@example.com" id="1" email="alice@example.com" internal="true" uri="sip:alice@example.com"/>
//!       <DateTimeUTC since1970="1796500000000" string="2026-12-06T19:00:00.0000000Z" long="639..."/>
//!     </FirstMessage>
//!     <Messages>
//!       <Message type="CHAT" content="hello" id="7" eventId="..."> Sender, DateTimeUTC </Message>
//!     </Messages>
//!     <StartTimeUTC .../> <EndTimeUTC .../>
//!   </Conversation>
//! </Conversations>
//! ```
//!
//! Extensions to Lync's format (all in `schema/compliance.xsd`): message types
//! `REMOVE` and `REPLACE` (an administrator's removal or replacement; `content` is the
//! new text, `original` the text as posted), and the `eventId` attribute (the event's
//! key in the compliance database).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One compliance event (as the chat store's outbox and the compliance database hold it).
pub type Event = confab_store::ComplianceRecord;

/// Export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "xml" => Some(Format::Xml),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Xml => "xml",
            Format::Csv => "csv",
        }
    }
}

/// .NET ticks (100 ns since 0001-01-01) of the Unix epoch.
const EPOCH_TICKS: i64 = 621_355_968_000_000_000;

/// The UTC time of epoch milliseconds (the epoch itself when out of range).
fn utc(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// `2026-12-06T19:00:00.1230000Z` (ISO 8601, seven decimals, as .NET's "o").
pub fn iso_utc(ms: i64) -> String {
    utc(ms)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]0000Z"
        ))
        .unwrap_or_default()
}

/// `20261206T190000Z`, for file names.
pub fn compact_utc(ms: i64) -> String {
    utc(ms)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default()
}

/// .NET ticks of an epoch-millisecond time.
pub fn ticks(ms: i64) -> i64 {
    ms.saturating_mul(10_000).saturating_add(EPOCH_TICKS)
}

/// Escapes text for an XML attribute value; characters XML 1.0 cannot carry become
/// U+FFFD, line breaks and tabs are kept as character references.
fn xml_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn time_element(out: &mut String, name: &str, ms: i64) {
    let _ = write!(
        out,
        "<{name} since1970=\"{ms}\" string=\"{}\" long=\"{}\"/>",
        iso_utc(ms),
        ticks(ms)
    );
}

/// Renders one message element (`FirstMessage` or `Message`).
fn message(out: &mut String, name: &str, e: &Event, sender_id: usize) {
    let _ = write!(out, "<{name} type=\"");
    xml_attr(out, &e.kind);
    out.push_str("\" content=\"");
    xml_attr(out, &e.content);
    out.push('"');
    if e.post_id != 0 {
        let _ = write!(out, " id=\"{}\"", e.post_id);
    }
    if e.kind == "REMOVE" || e.kind == "REPLACE" {
        out.push_str(" original=\"");
        xml_attr(out, &e.original);
        out.push('"');
    }
    out.push_str(" eventId=\"");
    xml_attr(out, &e.id);
    out.push_str("\"><Sender UserName=\"");
    xml_attr(out, &e.user);
    let _ = write!(out, "\" id=\"{sender_id}\" email=\"");
    xml_attr(out, &e.user);
    out.push_str("\" internal=\"true\" uri=\"sip:");
    xml_attr(out, &e.user);
    out.push_str("\"/>");
    time_element(out, "DateTimeUTC", e.ts_ms);
    let _ = write!(out, "</{name}>");
}

/// Events grouped by room (in order of each room's first event), each oldest first.
fn by_room(events: &[Event]) -> Vec<Vec<&Event>> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by(|a, b| (a.ts_ms, a.post_id, &a.id).cmp(&(b.ts_ms, b.post_id, &b.id)));
    let mut order: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in sorted {
        let g = groups.entry(e.room_id.as_str()).or_default();
        if g.is_empty() {
            order.push(e.room_id.as_str());
        }
        g.push(e);
    }
    order.into_iter().filter_map(|r| groups.remove(r)).collect()
}

fn conversation(out: &mut String, events: &[&Event], senders: &mut Vec<String>) {
    let Some(first) = events.first() else {
        return;
    };
    let mut sender_id = |u: &str| match senders.iter().position(|s| s == u) {
        Some(i) => i + 1,
        None => {
            senders.push(u.to_owned());
            senders.len()
        }
    };
    out.push_str("<Conversation><Channel uri=\"");
    xml_attr(out, &first.room_uri);
    out.push_str("\" name=\"");
    xml_attr(out, &first.room_name);
    out.push_str("\" islogged=\"true\"/>");
    let id = sender_id(&first.user);
    message(out, "FirstMessage", first, id);
    out.push_str("<Messages>");
    for e in events {
        let id = sender_id(&e.user);
        message(out, "Message", e, id);
    }
    out.push_str("</Messages>");
    let start = events.iter().map(|e| e.ts_ms).min().unwrap_or(first.ts_ms);
    let end = events.iter().map(|e| e.ts_ms).max().unwrap_or(first.ts_ms);
    time_element(out, "StartTimeUTC", start);
    time_element(out, "EndTimeUTC", end);
    out.push_str("</Conversation>");
}

/// The `Conversations` document of `events` (one `Conversation` per room).
pub fn render_xml(events: &[Event]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Conversations>");
    let mut senders = Vec::new();
    for group in by_room(events) {
        conversation(&mut out, &group, &mut senders);
    }
    out.push_str("</Conversations>\n");
    out
}

/// The CSV header.
pub const CSV_HEADER: &str =
    "event_id,type,room_uri,room_name,sender_uri,time_utc,since1970,message_id,content,original";

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// CSV (RFC 4180, CRLF line ends) of `events`, grouped by room, oldest first.
pub fn render_csv(events: &[Event]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for group in by_room(events) {
        for e in group {
            for (i, f) in [
                e.id.as_str(),
                &e.kind,
                &e.room_uri,
                &e.room_name,
                &format!("sip:{}", e.user),
                &iso_utc(e.ts_ms),
                &e.ts_ms.to_string(),
                &e.post_id.to_string(),
                &e.content,
                &e.original,
            ]
            .into_iter()
            .enumerate()
            {
                if i > 0 {
                    out.push(',');
                }
                csv_field(&mut out, f);
            }
            out.push_str("\r\n");
        }
    }
    out
}

/// The files of one export: `(file name, contents)`. One file for the window, or
/// one per room (`per_room`: Lync's OneChatRoomPerOutputFile). No events, no files.
pub fn render_files(
    events: &[Event],
    format: Format,
    since_ms: i64,
    until_ms: i64,
    per_room: bool,
) -> Vec<(String, String)> {
    if events.is_empty() {
        return Vec::new();
    }
    let stem = format!(
        "confab-compliance-{}-{}",
        compact_utc(since_ms),
        compact_utc(until_ms)
    );
    let render = |evs: &[Event]| match format {
        Format::Xml => render_xml(evs),
        Format::Csv => render_csv(evs),
    };
    if !per_room {
        return vec![(format!("{stem}.{}", format.extension()), render(events))];
    }
    by_room(events)
        .into_iter()
        .filter_map(|g| {
            let room = g.first()?.room_id.clone();
            let evs: Vec<Event> = g.into_iter().cloned().collect();
            let safe: String = room
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            Some((
                format!("{stem}-{safe}.{}", format.extension()),
                render(&evs),
            ))
        })
        .collect()
}

/// When the next scheduled export is due: every `interval_ms` after the watermark
/// (the end of the last exported window). Returns the window to export now, if any;
/// its end stays `grace_ms` behind `now_ms` so that a drain committing right now is
/// not missed.
pub fn due_window(
    watermark_ms: i64,
    now_ms: i64,
    interval_ms: i64,
    grace_ms: i64,
) -> Option<(i64, i64)> {
    let until = now_ms - grace_ms;
    (until - watermark_ms >= interval_ms.max(1)).then_some((watermark_ms, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, kind: &str, room: &str, user: &str, ts: i64, post: i64) -> Event {
        Event {
            id: id.to_owned(),
            kind: kind.to_owned(),
            room_id: room.to_owned(),
            room_uri: format!("ma-chan://example.com/{room}"),
            room_name: format!("Room {room}"),
            user: user.to_owned(),
            ts_ms: ts,
            post_id: post,
            content: if kind == "CHAT" {
                "a <b> & \"c\"\nd".to_owned()
            } else {
                String::new()
            },
            original: if kind == "REPLACE" {
                "secret".to_owned()
            } else {
                String::new()
            },
        }
    }

    #[test]
    fn times_in_three_forms() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(iso_utc(1_796_585_045_123), "2026-12-06T19:24:05.1230000Z");
        assert_eq!(compact_utc(1_796_585_045_123), "20261206T192405Z");
        assert_eq!(ticks(0), 621_355_968_000_000_000);
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.0000000Z");
        assert_eq!(compact_utc(-1000), "19691231T235959Z");
    }

    #[test]
    fn xml_groups_by_room_and_escapes() {
        let events = vec![
            ev("e3", "CHAT", "r1", "bob@example.com", 30, 2),
            ev("e1", "JOIN", "r1", "alice@example.com", 10, 0),
            ev("e2", "JOIN", "r2", "bob@example.com", 20, 0),
            ev("e4", "REPLACE", "r1", "bob@example.com", 40, 2),
        ];
        let x = render_xml(&events);
        assert_eq!(x.matches("<Conversation>").count(), 2);
        let r1 = x.find("name=\"Room r1\"").unwrap();
        let r2 = x.find("name=\"Room r2\"").unwrap();
        assert!(r1 < r2, "{x}");
        assert!(x.contains("<FirstMessage type=\"JOIN\" content=\"\" eventId=\"e1\"><Sender UserName=\"alice@example.com\" id=\"1\""), "{x}");
        assert!(
            x.contains("content=\"a &lt;b&gt; &amp; &quot;c&quot;&#10;d\" id=\"2\""),
            "{x}"
        );
        assert!(
            x.contains("type=\"REPLACE\" content=\"\" id=\"2\" original=\"secret\""),
            "{x}"
        );
        assert!(x.contains("<StartTimeUTC since1970=\"10\""), "{x}");
        assert!(x.contains("<EndTimeUTC since1970=\"40\""), "{x}");
    }

    /// The rendered XML validates against `schema/compliance.xsd` (needs xmllint,
    /// Debian's libxml2-utils, installed by `.ci/run`).
    #[test]
    fn xml_validates_against_the_schema() {
        let mut events = vec![
            ev("e1", "JOIN", "r1", "alice@example.com", 10, 0),
            ev("e2", "BACKCHAT", "r1", "alice@example.com", 11, 0),
            ev("e3", "CHAT", "r1", "bob@example.com", 30, 2),
            ev("e4", "REPLACE", "r1", "bob@example.com", 40, 2),
            ev("e5", "REMOVE", "r1", "bob@example.com", 41, 2),
            ev("e6", "PART", "r1", "alice@example.com", 50, 0),
        ];
        events[2].content = "ctl\u{1}chars \u{e9}\u{4e2d}".to_owned();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.xml");
        std::fs::write(&file, render_xml(&events)).unwrap();
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/compliance.xsd");
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", schema])
            .arg(&file)
            .output()
            .expect("xmllint (Debian package libxml2-utils) must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A document the schema must refuse: an unknown message type.
        std::fs::write(&file, render_xml(&events).replace("\"PART\"", "\"LEAVE\"")).unwrap();
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", schema])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    #[test]
    fn csv_quotes_fields() {
        let c = render_csv(&[ev("e3", "CHAT", "r1", "bob@example.com", 30, 2)]);
        let mut lines = c.split("\r\n");
        assert_eq!(lines.next(), Some(CSV_HEADER));
        assert_eq!(
            lines.next(),
            Some(
                "e3,CHAT,ma-chan://example.com/r1,Room r1,sip:bob@example.com,1970-01-01T00:00:00.0300000Z,30,2,\"a <b> & \"\"c\"\"\nd\","
            )
        );
    }

    #[test]
    fn files_per_window_or_room() {
        let events = vec![
            ev("e1", "JOIN", "r1", "alice@example.com", 10, 0),
            ev("e2", "JOIN", "r/2", "bob@example.com", 20, 0),
        ];
        let one = render_files(&events, Format::Xml, 0, 60_000, false);
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].0,
            "confab-compliance-19700101T000000Z-19700101T000100Z.xml"
        );
        let per = render_files(&events, Format::Csv, 0, 60_000, true);
        let names: Vec<&str> = per.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "confab-compliance-19700101T000000Z-19700101T000100Z-r1.csv",
                "confab-compliance-19700101T000000Z-19700101T000100Z-r_2.csv"
            ]
        );
        assert!(render_files(&[], Format::Xml, 0, 1, false).is_empty());
    }

    #[test]
    fn schedule() {
        assert_eq!(due_window(0, 1_000, 900_000, 2_000), None);
        assert_eq!(due_window(0, 902_000, 900_000, 2_000), Some((0, 900_000)));
        assert_eq!(due_window(900_000, 1_000_000, 900_000, 2_000), None);
    }
}
