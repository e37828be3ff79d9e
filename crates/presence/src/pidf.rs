//! PIDF (RFC 3863) with RPID (RFC 4480) extensions: parsing and rendering.
//!
//! Parsing is namespace-tolerant: elements are recognised by their local name
//! (`presence`, `tuple`, `basic`, `note`, `contact`, `activities`,
//! `user-input`), whatever prefix or default namespace the publisher used, and
//! unknown elements are skipped. Mapping onto [`Availability`]:
//!
//! * if any tuple is `open` (or there is no `basic` status but the document
//!   carries tuples or RPID data), the availability is derived from the RPID
//!   activities: the activity with the highest aggregation precedence wins
//!   (see [`activity_availability`]), no mapped activity means
//!   [`Availability::Online`]; `<rpid:user-input>idle</rpid:user-input>` turns
//!   Online into Idle and Busy into BusyIdle;
//! * if every `basic` status is `closed`, or the document says nothing at all,
//!   the result is [`Availability::Offline`].
//!
//! The note is the first non-empty `<note>` in document order; the activity is
//! the first RPID activity (element name, or the text of `<rpid:other>`).

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::error::PresenceError;
use crate::model::{Availability, EndpointInfo, PresenceState, activity_availability};

/// Largest PIDF document accepted by [`parse_pidf`], in bytes.
pub const MAX_PIDF_SIZE: usize = 64 * 1024;
/// Deepest element nesting accepted by [`parse_pidf`] (the root is depth 1).
pub const MAX_PIDF_DEPTH: usize = 32;
/// Most elements accepted in one document by [`parse_pidf`].
pub const MAX_PIDF_ELEMENTS: usize = 2048;
/// Most activities remembered from one document (further ones are ignored).
const MAX_ACTIVITIES: usize = 32;

/// PIDF namespace (RFC 3863).
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// PIDF data-model namespace (RFC 4479).
pub const DATA_MODEL_NS: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// RPID namespace (RFC 4480).
pub const RPID_NS: &str = "urn:ietf:params:xml:ns:pidf:rpid";

/// Activity elements defined by RFC 4480 (besides `unknown` and `other`).
const RPID_ACTIVITIES: [&str; 24] = [
    "appointment",
    "away",
    "breakfast",
    "busy",
    "dinner",
    "holiday",
    "in-transit",
    "looking-for-work",
    "meal",
    "meeting",
    "on-the-phone",
    "performance",
    "permanent-absence",
    "playing",
    "presentation",
    "shopping",
    "sleeping",
    "spectator",
    "steering",
    "travel",
    "tv",
    "vacation",
    "working",
    "worship",
];

/// What the text of the element being captured will be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Basic,
    Note,
    Contact,
    OtherActivity,
    UserInput,
}

#[derive(Debug, Default)]
struct Tuple {
    id: Option<String>,
    contact: Option<String>,
}

#[derive(Debug, Default)]
struct Collected {
    any_open: bool,
    any_closed: bool,
    saw_tuple_or_person: bool,
    first_tuple: Option<Tuple>,
    note: Option<String>,
    activities: Vec<String>,
    idle: bool,
}

/// Parses a PIDF document (RFC 3863, optionally with RFC 4480 RPID data) into
/// the neutral presence model.
///
/// Accepts any prefixes/namespaces and ignores unknown elements. Rejects
/// documents over [`MAX_PIDF_SIZE`] bytes, nested deeper than
/// [`MAX_PIDF_DEPTH`], with more than [`MAX_PIDF_ELEMENTS`] elements, that are
/// not UTF-8, not well-formed, carry a DOCTYPE, or whose root is not
/// `presence`. Never panics.
pub fn parse_pidf(body: &[u8]) -> Result<PresenceState, PresenceError> {
    if body.len() > MAX_PIDF_SIZE {
        return Err(PresenceError::TooLarge {
            size: body.len(),
            limit: MAX_PIDF_SIZE,
        });
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| PresenceError::NotUtf8)?;
    let collected = collect(text)?;
    Ok(interpret(collected))
}

fn malformed(e: impl std::fmt::Display) -> PresenceError {
    PresenceError::Malformed(e.to_string())
}

fn local_name<'a>(start: &'a BytesStart<'_>) -> &'a str {
    let name = start.name().into_inner();
    match name.rfind(':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn attribute(start: &BytesStart<'_>, wanted: &str) -> Option<String> {
    start
        .attributes()
        .with_checks(false)
        .filter_map(Result::ok)
        .find(|a| a.key.local_name().into_inner() == wanted)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
        .map(|v| v.into_owned())
}

/// Walks the document and gathers the raw facts.
fn collect(text: &str) -> Result<Collected, PresenceError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;

    let mut out = Collected::default();
    // Local names of the open elements, root first.
    let mut stack: Vec<String> = Vec::with_capacity(MAX_PIDF_DEPTH);
    let mut elements = 0usize;
    let mut root_done = false;
    // (depth of the capturing element, purpose, text so far)
    let mut capture: Option<(usize, Capture, String)> = None;
    let mut current_tuple: Option<Tuple> = None;

    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(start) => {
                if root_done {
                    return Err(malformed("content after the root element"));
                }
                elements += 1;
                if elements > MAX_PIDF_ELEMENTS {
                    return Err(PresenceError::TooManyElements(MAX_PIDF_ELEMENTS));
                }
                if stack.len() >= MAX_PIDF_DEPTH {
                    return Err(PresenceError::TooDeep(MAX_PIDF_DEPTH));
                }
                let name = local_name(&start).to_owned();
                let parent = stack.last().map(String::as_str);
                if stack.is_empty() && name != "presence" {
                    return Err(PresenceError::NotPidf(name));
                }
                let depth = stack.len() + 1;
                if capture.is_none() {
                    let in_tuple = current_tuple.is_some();
                    match name.as_str() {
                        "tuple" if depth == 2 => {
                            out.saw_tuple_or_person = true;
                            current_tuple = Some(Tuple {
                                id: attribute(&start, "id"),
                                contact: None,
                            });
                        }
                        "person" if depth == 2 => out.saw_tuple_or_person = true,
                        "basic" if in_tuple => {
                            capture = Some((depth, Capture::Basic, String::new()))
                        }
                        "contact" if in_tuple && parent == Some("tuple") => {
                            capture = Some((depth, Capture::Contact, String::new()));
                        }
                        "note" if out.note.is_none() => {
                            capture = Some((depth, Capture::Note, String::new()));
                        }
                        "user-input" => {
                            capture = Some((depth, Capture::UserInput, String::new()));
                        }
                        _ if parent == Some("activities") => match name.as_str() {
                            "other" => {
                                capture = Some((depth, Capture::OtherActivity, String::new()));
                            }
                            // `unknown` says nothing; a note inside activities is a note.
                            "unknown" | "note" => {}
                            activity => {
                                if out.activities.len() < MAX_ACTIVITIES {
                                    out.activities.push(activity.to_owned());
                                }
                            }
                        },
                        _ => {}
                    }
                }
                stack.push(name);
            }
            Event::End(_) => {
                let depth = stack.len();
                let Some(name) = stack.pop() else {
                    return Err(malformed("unmatched end tag"));
                };
                if let Some((cdepth, purpose, _)) = &capture
                    && *cdepth == depth
                {
                    let purpose = *purpose;
                    let captured = capture.take().map(|(_, _, t)| t).unwrap_or_default();
                    finish_capture(&mut out, current_tuple.as_mut(), purpose, &captured);
                }
                if name == "tuple"
                    && depth == 2
                    && let Some(tuple) = current_tuple.take()
                    && out.first_tuple.is_none()
                {
                    out.first_tuple = Some(tuple);
                }
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Empty(_) => {
                // expand_empty_elements is on; never produced.
                return Err(malformed("unexpected empty element event"));
            }
            Event::Text(t) => {
                if let Some((cdepth, _, buf)) = capture.as_mut()
                    && *cdepth == stack.len()
                {
                    buf.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if stack.is_empty() {
                    return Err(malformed("character data outside the root element"));
                }
                if let Some((cdepth, _, buf)) = capture.as_mut()
                    && *cdepth == stack.len()
                {
                    buf.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved: String = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => return Err(malformed(format!("unknown entity &{name};"))),
                        }
                    }
                };
                if let Some((cdepth, _, buf)) = capture.as_mut()
                    && *cdepth == stack.len()
                {
                    buf.push_str(&resolved);
                }
            }
            Event::DocType(_) => return Err(malformed("DOCTYPE is not allowed")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unexpected end of document"));
    }
    if !root_done {
        return Err(PresenceError::Empty);
    }
    Ok(out)
}

fn finish_capture(out: &mut Collected, tuple: Option<&mut Tuple>, purpose: Capture, text: &str) {
    let text = trim_xml(text);
    match purpose {
        Capture::Basic => {
            if text.eq_ignore_ascii_case("open") {
                out.any_open = true;
            } else if text.eq_ignore_ascii_case("closed") {
                out.any_closed = true;
            }
        }
        Capture::Note => {
            if !text.is_empty() {
                out.note = Some(text.to_owned());
            }
        }
        Capture::Contact => {
            if let Some(tuple) = tuple
                && tuple.contact.is_none()
                && !text.is_empty()
            {
                tuple.contact = Some(text.to_owned());
            }
        }
        Capture::OtherActivity => {
            if !text.is_empty() && out.activities.len() < MAX_ACTIVITIES {
                out.activities.push(text.to_owned());
            }
        }
        Capture::UserInput => {
            if text.eq_ignore_ascii_case("idle") {
                out.idle = true;
            }
        }
    }
}

/// Trims XML whitespace (space, tab, CR, LF) from both ends.
fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn interpret(c: Collected) -> PresenceState {
    let has_rpid = !c.activities.is_empty() || c.idle;
    let open = c.any_open || (!c.any_closed && (c.saw_tuple_or_person || has_rpid));
    let mut idle = c.idle;
    let mut best: Option<Availability> = None;
    for token in &c.activities {
        match activity_availability(token) {
            Some(Availability::Idle) => idle = true,
            Some(a) if best.is_none_or(|b| a.precedence() > b.precedence()) => best = Some(a),
            _ => {}
        }
    }
    let availability = if !open {
        Availability::Offline
    } else {
        let base = best.unwrap_or(Availability::Online);
        if idle { base.to_idle() } else { base }
    };
    let endpoint = c.first_tuple.and_then(|t| {
        if t.id.is_none() && t.contact.is_none() {
            None
        } else {
            Some(EndpointInfo {
                id: t.id,
                contact: t.contact,
            })
        }
    });
    PresenceState {
        availability,
        note: c.note,
        activity: c.activities.into_iter().next(),
        endpoint,
    }
}

/// Renders a PIDF document (RFC 3863) for `entity_uri` with RPID (RFC 4480)
/// activities where they carry meaning.
///
/// * one `<tuple>` whose `<basic>` is `closed` for [`Availability::Offline`]
///   and `open` otherwise, with `<contact>` and `<note>` when known;
/// * a `<dm:person>` with `<rpid:activities>` holding the state's activity (as
///   an RPID element when it is one, else `<rpid:other>`) followed by markers
///   for the availability (`busy` for Busy, `away` for Away, `other` +
///   `busy`/`away` for do-not-disturb/be-right-back) unless the activity
///   already implies it, and `<rpid:user-input>idle</rpid:user-input>` for the
///   idle classes.
///
/// All text is escaped; characters XML 1.0 cannot carry are dropped.
pub fn render_pidf(entity_uri: &str, state: &PresenceState) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<presence xmlns=\"");
    out.push_str(PIDF_NS);
    out.push_str("\" xmlns:dm=\"");
    out.push_str(DATA_MODEL_NS);
    out.push_str("\" xmlns:rpid=\"");
    out.push_str(RPID_NS);
    out.push_str("\" entity=\"");
    escape_into(&mut out, entity_uri, true);
    out.push_str("\">\n");

    let endpoint = state.endpoint.as_ref();
    let tuple_id = endpoint
        .and_then(|e| e.id.as_deref())
        .filter(|id| is_ncname(id))
        .map_or_else(|| format!("t{:016x}", fnv1a(entity_uri)), str::to_owned);
    out.push_str("<tuple id=\"");
    out.push_str(&tuple_id);
    out.push_str("\"><status><basic>");
    out.push_str(if state.availability.is_online() {
        "open"
    } else {
        "closed"
    });
    out.push_str("</basic></status>");
    if let Some(contact) = endpoint.and_then(|e| e.contact.as_deref()) {
        let contact = clean_text(contact);
        if !contact.is_empty() {
            out.push_str("<contact>");
            escape_into(&mut out, &contact, false);
            out.push_str("</contact>");
        }
    }
    if let Some(note) = state.note.as_deref() {
        let note = clean_text(note);
        if !note.is_empty() {
            out.push_str("<note>");
            escape_into(&mut out, &note, false);
            out.push_str("</note>");
        }
    }
    out.push_str("</tuple>\n");

    let activities = activity_elements(state);
    let idle = state.availability.is_idle();
    if !activities.is_empty() || idle {
        out.push_str("<dm:person id=\"p");
        out.push_str(&tuple_id);
        out.push_str("\">");
        if !activities.is_empty() {
            out.push_str("<rpid:activities>");
            for activity in &activities {
                match activity {
                    ActivityElement::Known(name) => {
                        out.push_str("<rpid:");
                        out.push_str(name);
                        out.push_str("/>");
                    }
                    ActivityElement::Other(text) => {
                        out.push_str("<rpid:other>");
                        escape_into(&mut out, text, false);
                        out.push_str("</rpid:other>");
                    }
                }
            }
            out.push_str("</rpid:activities>");
        }
        if idle {
            out.push_str("<rpid:user-input>idle</rpid:user-input>");
        }
        out.push_str("</dm:person>\n");
    }
    out.push_str("</presence>\n");
    out
}

enum ActivityElement {
    Known(&'static str),
    Other(String),
}

fn activity_elements(state: &PresenceState) -> Vec<ActivityElement> {
    let mut elements = Vec::new();
    let mut implied: Option<Availability> = None;
    if let Some(activity) = state.activity.as_deref() {
        let activity = clean_text(activity);
        if !activity.is_empty() {
            implied = activity_availability(&activity);
            match RPID_ACTIVITIES.iter().find(|known| **known == activity) {
                Some(known) => elements.push(ActivityElement::Known(known)),
                None => elements.push(ActivityElement::Other(activity)),
            }
        }
    }
    let target = state.availability.to_active();
    if implied.map(Availability::to_active) != Some(target) {
        match target {
            Availability::Busy => elements.push(ActivityElement::Known("busy")),
            Availability::DoNotDisturb => {
                elements.push(ActivityElement::Other("do-not-disturb".to_owned()));
                elements.push(ActivityElement::Known("busy"));
            }
            Availability::BeRightBack => {
                elements.push(ActivityElement::Other("be-right-back".to_owned()));
                elements.push(ActivityElement::Known("away"));
            }
            Availability::Away => elements.push(ActivityElement::Known("away")),
            _ => {}
        }
    }
    elements
}

/// Drops characters XML 1.0 cannot represent and trims XML whitespace.
fn clean_text(s: &str) -> String {
    let filtered: String = s.chars().filter(|c| is_xml_char(*c)).collect();
    trim_xml(&filtered).to_owned()
}

const fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends `s` escaped for XML text (or, with `attribute`, for a
/// double-quoted attribute value). Characters XML cannot carry are dropped;
/// CR (and in attributes TAB/LF) are written as character references so they
/// survive end-of-line normalisation.
fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// `true` if `s` is usable as an `xs:ID` (a conservative ASCII NCName).
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 64
        && (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// FNV-1a, used only to derive a stable tuple id from the entity.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BARESIP_AWAY: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    entity="sip:alice@example.com">
  <dm:person id="p4159"><rpid:activities><rpid:away/></rpid:activities></dm:person>
  <tuple id="t4109"><status><basic>open</basic></status>
    <contact>sip:alice@192.0.2.10:5060</contact></tuple>
</presence>"#;

    #[test]
    fn parses_baresip_style_away() {
        let s = parse_pidf(BARESIP_AWAY.as_bytes()).unwrap();
        assert_eq!(s.availability, Availability::Away);
        assert_eq!(s.activity.as_deref(), Some("away"));
        assert_eq!(s.note, None);
        let ep = s.endpoint.unwrap();
        assert_eq!(ep.id.as_deref(), Some("t4109"));
        assert_eq!(ep.contact.as_deref(), Some("sip:alice@192.0.2.10:5060"));
    }

    #[test]
    fn parses_simple_open_with_note() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@example.com">
  <tuple id="sipp"><status><basic>open</basic></status><note>Lunch &amp; more</note></tuple>
</presence>"#;
        let s = parse_pidf(body).unwrap();
        assert_eq!(s.availability, Availability::Online);
        assert_eq!(s.note.as_deref(), Some("Lunch & more"));
        assert_eq!(s.activity, None);
    }

    #[test]
    fn parses_closed_as_offline_even_with_activities() {
        let body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">
<tuple id="a"><status><basic>closed</basic></status></tuple>
<r:activities><r:busy/></r:activities></presence>"#;
        let s = parse_pidf(body).unwrap();
        assert_eq!(s.availability, Availability::Offline);
        assert_eq!(s.activity.as_deref(), Some("busy"));
    }

    #[test]
    fn any_open_tuple_wins_over_closed() {
        let body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
<tuple id="a"><status><basic>closed</basic></status></tuple>
<tuple id="b"><status><basic>open</basic></status></tuple></presence>"#;
        let s = parse_pidf(body).unwrap();
        assert_eq!(s.availability, Availability::Online);
        assert_eq!(s.endpoint.unwrap().id.as_deref(), Some("a"));
    }

    #[test]
    fn tolerates_prefixes_and_unknown_elements() {
        let body = br#"<?xml version='1.0'?>
<!-- comment -->
<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:x="urn:example:ext"
   xmlns:rp="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:a@b">
  <p:tuple id="t1">
    <p:status><p:basic> OPEN </p:basic><x:location><x:basic>closed</x:basic></x:location></p:status>
    <x:unknown a="1"><x:deep><x:deeper/></x:deep></x:unknown>
    <p:note xml:lang="en"><![CDATA[on a <call>]]></p:note>
  </p:tuple>
  <dm:person id="p1">
    <rp:activities><rp:note>ignored</rp:note><rp:on-the-phone/><rp:unknown/></rp:activities>
    <rp:user-input last-input="2024-01-01T00:00:00Z">idle</rp:user-input>
  </dm:person>
  <x:tail/>
</p:presence>"#;
        let s = parse_pidf(body).unwrap();
        // Any `basic` inside a tuple counts and one "open" is enough, so the
        // extension's nested "closed" does not make the presentity offline.
        assert_eq!(s.availability, Availability::BusyIdle);
        assert_eq!(s.note.as_deref(), Some("on a <call>"));
        assert_eq!(s.activity.as_deref(), Some("on-the-phone"));
    }

    #[test]
    fn activity_precedence_and_other_text() {
        let body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">
<tuple id="t"><status><basic>open</basic></status></tuple>
<rpid:activities><rpid:away/><rpid:other>Do not disturb</rpid:other><rpid:busy/></rpid:activities></presence>"#;
        let s = parse_pidf(body).unwrap();
        assert_eq!(s.availability, Availability::DoNotDisturb);
        assert_eq!(s.activity.as_deref(), Some("away"));
    }

    #[test]
    fn activities_without_basic_mean_open() {
        let body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">
<rpid:activities><rpid:meeting/></rpid:activities></presence>"#;
        assert_eq!(parse_pidf(body).unwrap().availability, Availability::Busy);
    }

    #[test]
    fn empty_presence_is_offline() {
        let s = parse_pidf(br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>"#)
            .unwrap();
        assert_eq!(s, PresenceState::offline());
    }

    #[test]
    fn rejects_bad_documents() {
        assert!(matches!(parse_pidf(b""), Err(PresenceError::Empty)));
        assert!(matches!(
            parse_pidf(b"<foo/>"),
            Err(PresenceError::NotPidf(n)) if n == "foo"
        ));
        assert!(matches!(
            parse_pidf(b"<presence><tuple>"),
            Err(PresenceError::Malformed(_))
        ));
        assert!(matches!(
            parse_pidf(b"<presence></tuple>"),
            Err(PresenceError::Malformed(_))
        ));
        assert!(matches!(
            parse_pidf(b"<presence/><presence/>"),
            Err(PresenceError::Malformed(_))
        ));
        assert!(matches!(
            parse_pidf(b"<presence>\xff</presence>"),
            Err(PresenceError::NotUtf8)
        ));
        assert!(matches!(
            parse_pidf(b"<!DOCTYPE presence [<!ENTITY x \"y\">]><presence>&x;</presence>"),
            Err(PresenceError::Malformed(_))
        ));
        assert!(matches!(
            parse_pidf(b"<presence><note>&bogus;</note></presence>"),
            Err(PresenceError::Malformed(_))
        ));
    }

    #[test]
    fn enforces_limits() {
        let big = vec![b' '; MAX_PIDF_SIZE + 1];
        assert!(matches!(
            parse_pidf(&big),
            Err(PresenceError::TooLarge { size, limit: MAX_PIDF_SIZE }) if size == MAX_PIDF_SIZE + 1
        ));

        let mut deep = String::from("<presence>");
        for _ in 0..MAX_PIDF_DEPTH {
            deep.push_str("<a>");
        }
        assert!(matches!(
            parse_pidf(deep.as_bytes()),
            Err(PresenceError::TooDeep(MAX_PIDF_DEPTH))
        ));

        // Exactly at the depth limit is fine.
        let mut ok = String::from("<presence>");
        ok.push_str(&"<a>".repeat(MAX_PIDF_DEPTH - 1));
        ok.push_str(&"</a>".repeat(MAX_PIDF_DEPTH - 1));
        ok.push_str("</presence>");
        assert!(parse_pidf(ok.as_bytes()).is_ok());

        let mut many = String::from("<presence>");
        many.push_str(&"<x/>".repeat(MAX_PIDF_ELEMENTS));
        many.push_str("</presence>");
        assert!(many.len() <= MAX_PIDF_SIZE);
        assert!(matches!(
            parse_pidf(many.as_bytes()),
            Err(PresenceError::TooManyElements(MAX_PIDF_ELEMENTS))
        ));
    }

    #[test]
    fn utf8_bom_is_accepted() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(
            b"<presence><tuple id='a'><status><basic>open</basic></status></tuple></presence>",
        );
        assert_eq!(
            parse_pidf(&body).unwrap().availability,
            Availability::Online
        );
    }

    #[test]
    fn render_uses_plain_basic_and_rpid_prefix() {
        let away = render_pidf(
            "sip:alice@example.com",
            &PresenceState::new(Availability::Away),
        );
        assert!(away.contains("<basic>open</basic>"), "{away}");
        assert!(away.contains("<rpid:away/>"), "{away}");
        assert!(away.contains("entity=\"sip:alice@example.com\""));
        let busy = render_pidf("sip:a@b", &PresenceState::new(Availability::Busy));
        assert!(busy.contains("<rpid:busy/>"), "{busy}");
        let off = render_pidf("sip:a@b", &PresenceState::offline());
        assert!(off.contains("<basic>closed</basic>"), "{off}");
        assert!(!off.contains("rpid:activities"), "{off}");
        let online = render_pidf("sip:a@b", &PresenceState::online());
        assert!(!online.contains("dm:person"), "{online}");
    }

    #[test]
    fn render_exact_document() {
        let s = PresenceState::new(Availability::BusyIdle)
            .with_note("In a call")
            .with_activity("on-the-phone")
            .with_endpoint(EndpointInfo {
                id: Some("ep1".into()),
                contact: Some("sip:alice@192.0.2.1".into()),
            });
        let expected = concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" ",
            "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" ",
            "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:alice@example.com\">\n",
            "<tuple id=\"ep1\"><status><basic>open</basic></status>",
            "<contact>sip:alice@192.0.2.1</contact><note>In a call</note></tuple>\n",
            "<dm:person id=\"pep1\"><rpid:activities><rpid:on-the-phone/></rpid:activities>",
            "<rpid:user-input>idle</rpid:user-input></dm:person>\n",
            "</presence>\n",
        );
        assert_eq!(render_pidf("sip:alice@example.com", &s), expected);
    }

    #[test]
    fn render_escapes() {
        let s = PresenceState::online()
            .with_note("a<b>&\"c\"\u{1}\r\n")
            .with_endpoint(EndpointInfo {
                id: Some("not an id!".into()),
                contact: Some("<sip:x@y>".into()),
            });
        let doc = render_pidf("sip:\"q\"&<x>@y", &s);
        assert!(
            doc.contains("entity=\"sip:&quot;q&quot;&amp;&lt;x&gt;@y\""),
            "{doc}"
        );
        assert!(doc.contains("<note>a&lt;b&gt;&amp;\"c\"</note>"), "{doc}");
        assert!(doc.contains("<contact>&lt;sip:x@y&gt;</contact>"), "{doc}");
        assert!(!doc.contains("not an id"), "{doc}");
        let back = parse_pidf(doc.as_bytes()).unwrap();
        assert_eq!(back.note.as_deref(), Some("a<b>&\"c\""));
        assert_eq!(back.endpoint.unwrap().contact.as_deref(), Some("<sip:x@y>"));
    }

    #[test]
    fn render_parse_round_trip_all_availabilities() {
        for a in Availability::BY_PRECEDENCE {
            let state = PresenceState::new(a).with_note("n");
            let back = parse_pidf(render_pidf("sip:a@b", &state).as_bytes()).unwrap();
            assert_eq!(back.availability, a);
            assert_eq!(back.note.as_deref(), Some("n"));
        }
        let s = PresenceState::new(Availability::DoNotDisturb).with_activity("on-the-phone");
        let back = parse_pidf(render_pidf("sip:a@b", &s).as_bytes()).unwrap();
        assert_eq!(back.availability, Availability::DoNotDisturb);
        assert_eq!(back.activity.as_deref(), Some("on-the-phone"));
        let s = PresenceState::new(Availability::BusyIdle).with_activity("meeting");
        let doc = render_pidf("sip:a@b", &s);
        assert!(!doc.contains("<rpid:busy/>"), "{doc}");
        let back = parse_pidf(doc.as_bytes()).unwrap();
        assert_eq!(back.availability, Availability::BusyIdle);
        assert_eq!(back.activity.as_deref(), Some("meeting"));
    }

    /// What `parse_pidf(render_pidf(..))` is expected to give for text fields.
    fn normalize(s: &Option<String>) -> Option<String> {
        s.as_deref().map(clean_text).filter(|t| !t.is_empty())
    }

    fn availability() -> impl Strategy<Value = Availability> {
        prop::sample::select(Availability::BY_PRECEDENCE.to_vec())
    }

    proptest! {
        #[test]
        fn parse_pidf_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_pidf(&bytes);
        }

        #[test]
        fn parse_pidf_never_panics_on_xmlish(s in "(<[a-z:]{0,6}( [a-z]{1,3}='[^']{0,4}')?/?>|</[a-z:]{0,6}>|&[a-z#0-9]{0,5};|[a-z ]{0,4}|<!\\[CDATA\\[[a-z<]{0,4}\\]\\]>){0,40}") {
            let _ = parse_pidf(s.as_bytes());
            let doc = format!("<presence>{s}</presence>");
            let _ = parse_pidf(doc.as_bytes());
        }

        #[test]
        fn render_then_parse_round_trips(
            a in availability(),
            note in proptest::option::of(any::<String>()),
            other in proptest::option::of("[A-Za-z0-9 <>&'\"]{0,20}"),
            online_token in proptest::option::of(prop::sample::select(vec!["working", "playing", "tv", "shopping"])),
            entity in any::<String>(),
            contact in proptest::option::of(any::<String>()),
        ) {
            // Activities that say nothing about availability: free text with an
            // "x-" prefix, or RPID tokens that map to nothing.
            let activity = match (online_token, other) {
                (Some(t), _) => Some(t.to_owned()),
                (None, Some(o)) => Some(format!("x-{o}")),
                (None, None) => None,
            };
            let state = PresenceState {
                availability: a,
                note: note.clone(),
                activity: activity.clone(),
                endpoint: contact.clone().map(|c| EndpointInfo { id: Some("t1".into()), contact: Some(c) }),
            };
            let doc = render_pidf(&entity, &state);
            let back = parse_pidf(doc.as_bytes()).unwrap();
            prop_assert_eq!(back.availability, a);
            prop_assert_eq!(back.note, normalize(&note));
            if activity.is_some() {
                prop_assert_eq!(back.activity, normalize(&activity));
            }
            let back_contact = back.endpoint.and_then(|e| e.contact);
            prop_assert_eq!(back_contact, normalize(&contact));
        }
    }
}
