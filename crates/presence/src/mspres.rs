//! MS-PRES category presence documents, as Lync clients (and pidgin-sipe in
//! Lync/OCS 2007 mode) exchange them: sans-IO parsing and rendering.
//!
//! * [`parse_category_publish`] — `application/msrtc-category-publish+xml`, the
//!   body of the `SERVICE` a client sends to publish its own categories;
//! * [`parse_batch_subscribe`] — `application/msrtc-adrl-categorylist+xml`, the
//!   body of the batched presence `SUBSCRIBE` (ad-hoc resource list);
//! * [`render_categories`] — `application/msrtc-event-categories+xml`, the
//!   presence of one presentity as sent to a watcher in a `NOTIFY`;
//! * [`render_roaming_self`] — `application/vnd-microsoft-roaming-self+xml`, the
//!   user's own categories, containers and subscribers.
//!
//! Parsing is namespace-tolerant (elements and attributes are recognised by
//! their local name, whatever prefix the sender used — pidgin-sipe does the
//! same), refuses documents over [`MAX_MSPRES_SIZE`] bytes or listing more than
//! [`MAX_MSPRES_ITEMS`] resources or publications, rejects DOCTYPEs and never
//! panics. Rendering escapes every text and attribute value and drops
//! characters XML 1.0 cannot carry.
//!
//! What pidgin-sipe 1.25 requires of the rendered documents (checked against
//! its `sipe-notify.c` and `sipe-ocs2007.c`):
//!
//! * the `categories@uri` of a watcher document must be the buddy's `sip:` URI
//!   in lower case (buddies are looked up by exact string), so the renderers
//!   add `sip:` and lower-case the URI;
//! * for a buddy, SIPE reads `category@name` and `@publishTime` only (not the
//!   container, instance or `xsi:type`); `state/availability` is mapped by
//!   range (3500 shows Online, 15500 Away, ≥ 18000 Offline);
//! * a buddy's note is replaced only when the document has a `note` category:
//!   a document without one leaves the previous note on screen. The renderers
//!   therefore always carry a `note` category, the empty `<category
//!   name="note"/>` (the form Lync uses for a removed note) when there is none;
//! * in roaming-self, SIPE takes its own status from the `state` category in
//!   container 2 with `xsi:type="aggregateState"`, and its own note only from
//!   `note` instance 0 in containers 200/300/400 (the keys it publishes); the
//!   `version` of those is what SIPE puts in its next publication of them;
//!   `subscriber@user` is without `sip:`, and `acknowledged="false"` makes SIPE
//!   ask its user to add the subscriber and answer with `setSubscribers`.

use std::collections::HashSet;

use crate::error::PresenceError;
use crate::model::PresenceState;
use crate::xmltree::{self, Limits, Node, XmlError, is_xml_char, push_escaped, trim_xml};

/// Largest MS-PRES document accepted by the parsers, in bytes.
pub const MAX_MSPRES_SIZE: usize = 256 * 1024;
/// Most publications (in a publish) or resources (in a batch subscribe)
/// accepted in one document.
pub const MAX_MSPRES_ITEMS: usize = 10_000;
/// Deepest element nesting accepted (the root is depth 1).
const MAX_DEPTH: usize = 64;
/// Most elements accepted in one document.
const MAX_ELEMENTS: usize = 200_000;

/// Namespace of `categories` documents.
pub const CATEGORIES_NS: &str = "http://schemas.microsoft.com/2006/09/sip/categories";
/// Namespace of the `state` category.
pub const STATE_NS: &str = "http://schemas.microsoft.com/2006/09/sip/state";
/// Namespace of the `note` category.
pub const NOTE_NS: &str = "http://schemas.microsoft.com/2006/09/sip/note";
/// Namespace of the `contactCard` category.
pub const CONTACT_CARD_NS: &str = "http://schemas.microsoft.com/2006/09/sip/contactcard";
/// Namespace of `roamingData` documents.
pub const ROAMING_SELF_NS: &str = "http://schemas.microsoft.com/2006/09/sip/roaming-self";
/// Namespace of the `containers` element of roaming-self.
pub const CONTAINER_MANAGEMENT_NS: &str =
    "http://schemas.microsoft.com/2006/09/sip/container-management";
/// Namespace of the `subscribers` element of roaming-self.
pub const PRESENCE_SUBSCRIBERS_NS: &str =
    "http://schemas.microsoft.com/2006/09/sip/presence-subscribers";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// When a publication expires (`publication@expireType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpireType {
    /// With the publishing endpoint's registration.
    Endpoint,
    /// Never (until replaced or removed).
    Static,
    /// When the user has no endpoint left.
    User,
    /// After `expires` seconds.
    Time,
}

impl ExpireType {
    /// The attribute value (`endpoint`, `static`, `user`, `time`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ExpireType::Endpoint => "endpoint",
            ExpireType::Static => "static",
            ExpireType::User => "user",
            ExpireType::Time => "time",
        }
    }

    fn parse(s: &str) -> Option<ExpireType> {
        let s = s.trim();
        [
            ExpireType::Endpoint,
            ExpireType::Static,
            ExpireType::User,
            ExpireType::Time,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// The `xsi:type` of a `state` category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKind {
    /// `machineState`: activity of the device (endpoint-scoped).
    Machine,
    /// `userState`: set by the user by hand.
    User,
    /// `calendarState`: from the calendar.
    Calendar,
    /// `phoneState`: in a call.
    Phone,
    /// `aggregateState`: computed by the server.
    Aggregate,
    /// Anything else, or no `xsi:type`.
    Other,
}

impl StateKind {
    fn parse(s: &str) -> StateKind {
        // A QName value may carry a prefix (`ns:userState`).
        let s = s.trim();
        let s = s.rsplit(':').next().unwrap_or(s);
        match s {
            _ if s.eq_ignore_ascii_case("machineState") => StateKind::Machine,
            _ if s.eq_ignore_ascii_case("userState") => StateKind::User,
            _ if s.eq_ignore_ascii_case("calendarState") => StateKind::Calendar,
            _ if s.eq_ignore_ascii_case("phoneState") => StateKind::Phone,
            _ if s.eq_ignore_ascii_case("aggregateState") => StateKind::Aggregate,
            _ => StateKind::Other,
        }
    }
}

/// The data of one publication, as far as the server interprets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategoryBody {
    /// `<state xsi:type=...><availability>N</availability><activity token=.../>`.
    State {
        /// From `xsi:type`.
        kind: StateKind,
        /// The availability number, when present.
        availability: Option<u32>,
        /// `activity@token`, when present and non-empty.
        activity: Option<String>,
    },
    /// `<note><body type="personal">text</body></note>`; an empty text means
    /// the note was cleared.
    Note {
        /// Text of the personal body (else of the first body), trimmed.
        text: String,
    },
    /// `<device endpointId=...>`.
    Device {
        /// `device@endpointId`, when present and non-empty.
        endpoint_id: Option<String>,
    },
    /// Any other category, or a publication without data (a removal,
    /// `expires="0"`).
    Other,
}

/// One `<publication>` of a category publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryPublication {
    /// `categoryName` (`state`, `note`, `device`, `calendarData`, ...).
    pub category: String,
    /// `instance`.
    pub instance: u64,
    /// `container` (2 and 3 self, 100 federated, 200 company, 300 team,
    /// 400 personal, 32000 blocked).
    pub container: u32,
    /// `version` the publisher believes the publication has.
    pub version: u32,
    /// `expireType` (`static` when absent).
    pub expire_type: ExpireType,
    /// `expires` (seconds): `Some(0)` removes the publication (pidgin-sipe
    /// clears notes and states this way, with no data); the lifetime for
    /// [`ExpireType::Time`].
    pub expires: Option<u32>,
    /// The data.
    pub body: CategoryBody,
}

impl CategoryPublication {
    /// `true` when this publication removes the category instance
    /// (`expires="0"`).
    pub fn is_removal(&self) -> bool {
        self.expires == Some(0)
    }
}

/// Parses an `application/msrtc-category-publish+xml` body:
/// `<publish><publications uri="..."><publication categoryName= instance=
/// container= version= expireType=>...`.
///
/// Returns the `publications@uri` as given (e.g. `sip:alice@example.com`) and
/// the publications in document order. `categoryName`, `instance`,
/// `container` and `version` are required; `expireType` defaults to `static`.
pub fn parse_category_publish(
    body: &[u8],
) -> Result<(String, Vec<CategoryPublication>), PresenceError> {
    let root = parse_tree(body)?;
    expect_root(&root, "publish")?;
    let publications = root
        .child("publications")
        .ok_or_else(|| invalid("no <publications> element"))?;
    let uri = publications
        .attr("uri")
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("<publications> without uri"))?
        .to_owned();
    let mut out = Vec::new();
    for publication in publications.children_named("publication") {
        if out.len() >= MAX_MSPRES_ITEMS {
            return Err(PresenceError::TooManyItems(MAX_MSPRES_ITEMS));
        }
        out.push(parse_publication(publication)?);
    }
    Ok((uri, out))
}

fn parse_publication(p: &Node) -> Result<CategoryPublication, PresenceError> {
    let category = p
        .attr("categoryName")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid("<publication> without categoryName"))?
        .to_owned();
    let instance = required_number::<u64>(p, "instance")?;
    let container = required_number::<u32>(p, "container")?;
    let version = required_number::<u32>(p, "version")?;
    let expire_type = match p.attr("expireType") {
        None => ExpireType::Static,
        Some(v) => {
            ExpireType::parse(v).ok_or_else(|| invalid(format!("unknown expireType {v:?}")))?
        }
    };
    let expires = match p.attr("expires") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .map_err(|_| invalid(format!("publication expires is not a number: {v:?}")))?,
        ),
    };
    let body = match p.children.first() {
        None => CategoryBody::Other,
        Some(data) => parse_category_body(data)?,
    };
    Ok(CategoryPublication {
        category,
        instance,
        container,
        version,
        expire_type,
        expires,
        body,
    })
}

fn required_number<T: std::str::FromStr>(p: &Node, name: &str) -> Result<T, PresenceError> {
    let v = p
        .attr(name)
        .ok_or_else(|| invalid(format!("<publication> without {name}")))?;
    v.trim()
        .parse::<T>()
        .map_err(|_| invalid(format!("publication {name} is not a number: {v:?}")))
}

fn parse_category_body(data: &Node) -> Result<CategoryBody, PresenceError> {
    Ok(match data.name.as_str() {
        "state" => {
            let kind = data.attr("type").map_or(StateKind::Other, StateKind::parse);
            let availability = match data.child("availability").map(|a| trim_xml(&a.text)) {
                None | Some("") => None,
                Some(v) => Some(
                    v.parse::<u32>()
                        .map_err(|_| invalid(format!("availability is not a number: {v:?}")))?,
                ),
            };
            let activity = data
                .child("activity")
                .and_then(|a| a.attr("token"))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            CategoryBody::State {
                kind,
                availability,
                activity,
            }
        }
        "note" => {
            let mut bodies = data.children_named("body");
            let personal = data.children_named("body").find(|b| {
                b.attr("type")
                    .is_none_or(|t| t.trim().eq_ignore_ascii_case("personal"))
            });
            let text = personal
                .or_else(|| bodies.next())
                .map(|b| trim_xml(&b.text).to_owned())
                .unwrap_or_default();
            CategoryBody::Note { text }
        }
        "device" => CategoryBody::Device {
            endpoint_id: data
                .attr("endpointId")
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
        },
        _ => CategoryBody::Other,
    })
}

/// A batched presence subscription (`<batchSub>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSubscribe {
    /// `action@name`: `subscribe` or `unsubscribe`.
    pub action: String,
    /// `resource@uri` values as given (e.g. `sip:bob@example.com`), in
    /// document order, without exact duplicates and empty values.
    pub resources: Vec<String>,
    /// `categoryList/category@name` values (`calendarData`, `contactCard`,
    /// `note`, `state`, ...).
    pub categories: Vec<String>,
}

/// Parses an `application/msrtc-adrl-categorylist+xml` body:
/// `<batchSub ...><action name= id=><adhocList><resource uri=.../>...
/// </adhocList><categoryList><category name=.../>...`.
///
/// Only the first `<action>` is read (clients send one).
pub fn parse_batch_subscribe(body: &[u8]) -> Result<BatchSubscribe, PresenceError> {
    let root = parse_tree(body)?;
    expect_root(&root, "batchSub")?;
    let action = root
        .child("action")
        .ok_or_else(|| invalid("no <action> element"))?;
    let name = action
        .attr("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("<action> without name"))?
        .to_owned();
    let mut resources = Vec::new();
    let mut seen = HashSet::new();
    for list in action.children_named("adhocList") {
        for resource in list.children_named("resource") {
            let Some(uri) = resource.attr("uri").map(str::trim) else {
                continue;
            };
            if uri.is_empty() || !seen.insert(uri) {
                continue;
            }
            if resources.len() >= MAX_MSPRES_ITEMS {
                return Err(PresenceError::TooManyItems(MAX_MSPRES_ITEMS));
            }
            resources.push(uri.to_owned());
        }
    }
    let mut categories: Vec<String> = Vec::new();
    for list in action.children_named("categoryList") {
        for category in list.children_named("category") {
            if let Some(c) = category.attr("name").map(str::trim)
                && !c.is_empty()
                && !categories.iter().any(|x| x == c)
            {
                if categories.len() >= MAX_MSPRES_ITEMS {
                    return Err(PresenceError::TooManyItems(MAX_MSPRES_ITEMS));
                }
                categories.push(c.to_owned());
            }
        }
    }
    Ok(BatchSubscribe {
        action: name,
        resources,
        categories,
    })
}

/// Renders the `application/msrtc-event-categories+xml` document of one
/// presentity for a watcher (the form of the captured NOTIFYs):
///
/// * `<categories xmlns=... uri="sip:...">` (URI with `sip:`, lower case);
/// * a `state` category (instance 0, container 2, `expireType="static"`) with
///   `xsi:type="aggregateState"`, `<availability>` =
///   `state.availability.to_lync()` and `<activity token=.../>` when
///   `state.activity` is set;
/// * a `note` category with `<body type="personal" uri="">` when the note is
///   non-empty, else the empty `<category name="note"/>` so a client clears a
///   note it still shows;
/// * a `contactCard` category with `identity/name/displayName` when
///   `display_name` is non-empty.
///
/// `publish_time` (RFC 3339, UTC) and `version` go into every category.
pub fn render_categories(
    uri: &str,
    state: &PresenceState,
    display_name: Option<&str>,
    publish_time: &str,
    version: u32,
) -> String {
    let mut out = String::with_capacity(768);
    open_categories(&mut out, uri);
    push_state_category(&mut out, state, publish_time, version);
    match note_text(state) {
        Some(note) => push_note_category(&mut out, &note, 2, publish_time, version),
        None => push_empty_category(&mut out, "note"),
    }
    if let Some(name) = display_name.map(clean_text).filter(|n| !n.is_empty()) {
        push_category_open(&mut out, "contactCard", 0, 2, publish_time, version);
        out.push_str("<contactCard xmlns=\"");
        out.push_str(CONTACT_CARD_NS);
        out.push_str("\"><identity><name><displayName>");
        push_escaped(&mut out, &name, false);
        out.push_str("</displayName></name></identity></contactCard></category>");
    }
    out.push_str("</categories>");
    out
}

/// Renders the `application/vnd-microsoft-roaming-self+xml` document:
/// `<roamingData>` with
///
/// * `<categories uri=...>` holding, when `state` is given, the aggregate
///   `state` category exactly as [`render_categories`] renders it (container
///   2, which is where the client reads its own status) and the note as
///   instance 0 in containers 200, 300 and 400 (the publications the client
///   recognises as its own), or `<category name="note"/>` when there is no
///   note; an empty `<categories/>` without `state`;
/// * an empty `<containers/>`;
/// * `<subscribers>` with one `<subscriber user="bob@example.com"
///   displayName="" acknowledged="true|false"/>` per entry of `subscribers`
///   (address without `sip:`, lower case).
pub fn render_roaming_self(
    uri: &str,
    state: Option<&PresenceState>,
    publish_time: &str,
    version: u32,
    subscribers: &[(String, bool)],
) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("<roamingData xmlns=\"");
    out.push_str(ROAMING_SELF_NS);
    out.push_str("\">");
    match state {
        None => {
            out.push_str("<categories xmlns=\"");
            out.push_str(CATEGORIES_NS);
            out.push_str("\" uri=\"");
            push_escaped(&mut out, &sip_uri(uri), true);
            out.push_str("\"/>");
        }
        Some(state) => {
            open_categories(&mut out, uri);
            push_state_category(&mut out, state, publish_time, version);
            match note_text(state) {
                Some(note) => {
                    for container in [200, 300, 400] {
                        push_note_category(&mut out, &note, container, publish_time, version);
                    }
                }
                None => push_empty_category(&mut out, "note"),
            }
            out.push_str("</categories>");
        }
    }
    out.push_str("<containers xmlns=\"");
    out.push_str(CONTAINER_MANAGEMENT_NS);
    out.push_str("\"/><subscribers xmlns=\"");
    out.push_str(PRESENCE_SUBSCRIBERS_NS);
    if subscribers.is_empty() {
        out.push_str("\"/>");
    } else {
        out.push_str("\">");
        for (user, acknowledged) in subscribers {
            out.push_str("<subscriber user=\"");
            push_escaped(&mut out, &bare_address(user), true);
            out.push_str("\" displayName=\"\" acknowledged=\"");
            out.push_str(if *acknowledged { "true" } else { "false" });
            out.push_str("\"/>");
        }
        out.push_str("</subscribers>");
    }
    out.push_str("</roamingData>");
    out
}

fn open_categories(out: &mut String, uri: &str) {
    out.push_str("<categories xmlns=\"");
    out.push_str(CATEGORIES_NS);
    out.push_str("\" uri=\"");
    push_escaped(out, &sip_uri(uri), true);
    out.push_str("\">");
}

fn push_category_open(
    out: &mut String,
    name: &str,
    instance: u64,
    container: u32,
    publish_time: &str,
    version: u32,
) {
    out.push_str("<category name=\"");
    out.push_str(name);
    out.push_str("\" instance=\"");
    out.push_str(&instance.to_string());
    out.push_str("\" publishTime=\"");
    push_escaped(out, publish_time, true);
    out.push_str("\" container=\"");
    out.push_str(&container.to_string());
    out.push_str("\" version=\"");
    out.push_str(&version.to_string());
    out.push_str("\" expireType=\"static\">");
}

fn push_empty_category(out: &mut String, name: &str) {
    out.push_str("<category name=\"");
    out.push_str(name);
    out.push_str("\"/>");
}

fn push_state_category(out: &mut String, state: &PresenceState, publish_time: &str, version: u32) {
    push_category_open(out, "state", 0, 2, publish_time, version);
    out.push_str("<state xmlns=\"");
    out.push_str(STATE_NS);
    out.push_str("\" xmlns:xsi=\"");
    out.push_str(XSI_NS);
    out.push_str("\" manual=\"false\" xsi:type=\"aggregateState\"><availability>");
    out.push_str(&state.availability.to_lync().to_string());
    out.push_str("</availability>");
    if let Some(token) = state
        .activity
        .as_deref()
        .map(clean_text)
        .filter(|t| !t.is_empty())
    {
        out.push_str("<activity token=\"");
        push_escaped(out, &token, true);
        out.push_str("\"/>");
    }
    out.push_str("</state></category>");
}

fn push_note_category(
    out: &mut String,
    note: &str,
    container: u32,
    publish_time: &str,
    version: u32,
) {
    push_category_open(out, "note", 0, container, publish_time, version);
    out.push_str("<note xmlns=\"");
    out.push_str(NOTE_NS);
    out.push_str("\"><body type=\"personal\" uri=\"\">");
    push_escaped(out, note, false);
    out.push_str("</body></note></category>");
}

/// The note to render, if any (cleaned, non-empty).
fn note_text(state: &PresenceState) -> Option<String> {
    state
        .note
        .as_deref()
        .map(clean_text)
        .filter(|n| !n.is_empty())
}

/// `sip:` + the address in ASCII lower case (`bob@x`, `sip:Bob@X` → `sip:bob@x`).
fn sip_uri(uri: &str) -> String {
    format!("sip:{}", bare_address(uri))
}

/// The address without `sip:`, in ASCII lower case.
fn bare_address(uri: &str) -> String {
    let uri = uri.trim();
    let bare = match uri.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("sip:") => &uri[4..],
        _ => uri,
    };
    bare.to_ascii_lowercase()
}

/// Removes characters XML 1.0 cannot carry and trims XML whitespace.
fn clean_text(s: &str) -> String {
    let filtered: String = s.chars().filter(|c| is_xml_char(*c)).collect();
    trim_xml(&filtered).to_owned()
}

/// The limits of a MS-PRES document.
const LIMITS: Limits = Limits {
    max_bytes: MAX_MSPRES_SIZE,
    max_depth: MAX_DEPTH,
    max_elements: MAX_ELEMENTS,
};

/// Parses `body` into a tree, enforcing the size, depth and element limits.
fn parse_tree(body: &[u8]) -> Result<Node, PresenceError> {
    xmltree::parse_tree(body, &LIMITS).map_err(|e| match e {
        XmlError::TooLarge { size, limit } => PresenceError::TooLarge { size, limit },
        XmlError::NotUtf8 => PresenceError::NotUtf8,
        XmlError::TooDeep(n) => PresenceError::TooDeep(n),
        XmlError::TooManyElements(n) => PresenceError::TooManyElements(n),
        XmlError::Empty => PresenceError::Empty,
        XmlError::Malformed(m) => PresenceError::Malformed(m),
    })
}

fn invalid(reason: impl Into<String>) -> PresenceError {
    PresenceError::Invalid(reason.into())
}

fn expect_root(root: &Node, expected: &'static str) -> Result<(), PresenceError> {
    if root.name == expected {
        Ok(())
    } else {
        Err(PresenceError::WrongRoot {
            found: root.name.clone(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Availability;

    // Trimmed bodies of our own pidgin-sipe 1.25 captures.

    /// demo/22: alice's initial publish (device, machineState, userState).
    const CAPTURE_22: &str = r#"<publish xmlns="http://schemas.microsoft.com/2006/09/sip/rich-presence"><publications uri="sip:alice@example.com"><publication categoryName="device" instance="3473643738" container="2" version="0" expireType="endpoint"><device xmlns="http://schemas.microsoft.com/2006/09/sip/device" endpointId="b7878522-d7fe-5c33-b30d-265f6618ae78"><capabilities preferred="false" uri="sip:alice@example.com"><text capture="true" render="true" publish="false"/><gifInk capture="false" render="true" publish="false"/><isfInk capture="false" render="true" publish="false"/><voice capture="true" render="true" publish="false"/><video capture="true" render="true" publish="false"/></capabilities><timezone>00:00:00+01:00</timezone><machineName>vm</machineName></device></publication><publication categoryName="state" instance="1022409101" container="2" version="0" expireType="endpoint"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"><availability>3500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="1022409101" container="3" version="0" expireType="endpoint"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"><availability>3500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="536870912" container="2" version="0" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>3500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="536870912" container="3" version="0" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>3500</availability><endpointLocation/></state></publication></publications></publish>"#;

    /// demo/55: bob goes away with a note (containers 200/300/400).
    const CAPTURE_55: &str = r#"<publish xmlns="http://schemas.microsoft.com/2006/09/sip/rich-presence"><publications uri="sip:bob@example.com"><publication categoryName="state" instance="536870912" container="2" version="0" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>15500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="536870912" container="3" version="0" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="true" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="userState"><availability>15500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="916839764" container="2" version="0" expireType="endpoint"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"><availability>15500</availability><endpointLocation/></state></publication><publication categoryName="state" instance="916839764" container="3" version="0" expireType="endpoint"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="machineState"><availability>15500</availability><endpointLocation/></state></publication><publication categoryName="note" instance="0" container="200" version="0" expireType="static"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal" uri="">confab harness away test</body></note></publication><publication categoryName="note" instance="0" container="300" version="0" expireType="static"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal" uri="">confab harness away test</body></note></publication><publication categoryName="note" instance="0" container="400" version="0" expireType="static"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal" uri="">confab harness away test</body></note></publication></publications></publish>"#;

    /// demo/12: the batched presence SUBSCRIBE after the contact list.
    const CAPTURE_12: &str = "<batchSub xmlns=\"http://schemas.microsoft.com/2006/01/sip/batch-subscribe\" uri=\"sip:alice@example.com\" name=\"\">\n<action name=\"subscribe\" id=\"63792024\">\n<adhocList>\n<resource uri=\"sip:bob@example.com\"/>\n<resource uri=\"sip:carol@example.com\"/>\n</adhocList>\n<categoryList xmlns=\"http://schemas.microsoft.com/2006/09/sip/categorylist\">\n<category name=\"calendarData\"/>\n<category name=\"contactCard\"/>\n<category name=\"note\"/>\n<category name=\"state\"/>\n</categoryList>\n</action>\n</batchSub>";

    /// contacts-add/45: one-resource subscribe for a buddy added later.
    const CAPTURE_45: &str = "<batchSub xmlns=\"http://schemas.microsoft.com/2006/01/sip/batch-subscribe\" uri=\"sip:alice@example.com\" name=\"\">\n<action name=\"subscribe\" id=\"63792024\"><adhocList>\n<resource uri=\"sip:bob@example.com\"><context/></resource>\n</adhocList>\n<categoryList xmlns=\"http://schemas.microsoft.com/2006/09/sip/categorylist\">\n<category name=\"calendarData\"/>\n<category name=\"contactCard\"/>\n<category name=\"note\"/>\n<category name=\"state\"/>\n</categoryList>\n</action>\n</batchSub>";

    /// demo/14: bob offline, as SIPE showed it.
    const CAPTURE_14: &str = r#"<categories xmlns="http://schemas.microsoft.com/2006/09/sip/categories" uri="sip:bob@example.com"><category name="state" instance="0" publishTime="2026-11-22T03:46:45Z" container="2" version="1" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" manual="false" xsi:type="aggregateState"><availability>18500</availability></state></category></categories>"#;

    /// demo/57: bob away with a note, as SIPE showed it.
    const CAPTURE_57: &str = r#"<categories xmlns="http://schemas.microsoft.com/2006/09/sip/categories" uri="sip:bob@example.com"><category name="state" instance="0" publishTime="2026-11-22T03:46:49Z" container="2" version="1" expireType="static"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" manual="false" xsi:type="aggregateState"><availability>15500</availability></state></category><category name="note" instance="0" publishTime="2026-11-22T03:46:49Z" container="2" version="1" expireType="static"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="personal" uri="">confab harness away test</body></note></category></categories>"#;

    /// demo/11: the first roaming-self NOTIFY (nothing published yet).
    const CAPTURE_11: &str = r#"<roamingData xmlns="http://schemas.microsoft.com/2006/09/sip/roaming-self"><categories xmlns="http://schemas.microsoft.com/2006/09/sip/categories" uri="sip:alice@example.com"/><containers xmlns="http://schemas.microsoft.com/2006/09/sip/container-management"/><subscribers xmlns="http://schemas.microsoft.com/2006/09/sip/presence-subscribers"/></roamingData>"#;

    fn state_body(kind: StateKind, availability: u32) -> CategoryBody {
        CategoryBody::State {
            kind,
            availability: Some(availability),
            activity: None,
        }
    }

    /// What SIPE reads from a watcher document: (name, publishTime present,
    /// state availability, activity token, note body, displayName).
    #[derive(Debug, Default, PartialEq)]
    struct SipeView {
        uri: String,
        availability: Option<u32>,
        state_type: Option<String>,
        activity: Option<String>,
        note_categories: usize,
        note: Option<String>,
        display_name: Option<String>,
    }

    fn sipe_view(doc: &str) -> SipeView {
        let root = parse_tree(doc.as_bytes()).unwrap();
        assert_eq!(root.name, "categories");
        let mut v = SipeView {
            uri: root.attr("uri").unwrap().to_owned(),
            ..SipeView::default()
        };
        for c in root.children_named("category") {
            match c.attr("name").unwrap() {
                "state" => {
                    let s = c.child("state").unwrap();
                    v.state_type = s.attr("type").map(str::to_owned);
                    v.availability = Some(s.child("availability").unwrap().text.parse().unwrap());
                    v.activity = s
                        .child("activity")
                        .and_then(|a| a.attr("token"))
                        .map(str::to_owned);
                }
                "note" => {
                    v.note_categories += 1;
                    v.note = c
                        .child("note")
                        .and_then(|n| n.child("body"))
                        .map(|b| b.text.clone());
                }
                "contactCard" => {
                    v.display_name = c
                        .child("contactCard")
                        .and_then(|n| n.child("identity"))
                        .and_then(|n| n.child("name"))
                        .and_then(|n| n.child("displayName"))
                        .map(|n| n.text.clone());
                }
                other => panic!("unexpected category {other}"),
            }
        }
        v
    }

    #[test]
    fn parses_capture_22_initial_publish() {
        let (uri, pubs) = parse_category_publish(CAPTURE_22.as_bytes()).unwrap();
        assert_eq!(uri, "sip:alice@example.com");
        assert_eq!(pubs.len(), 5);
        assert_eq!(
            pubs[0],
            CategoryPublication {
                category: "device".into(),
                instance: 3_473_643_738,
                container: 2,
                version: 0,
                expire_type: ExpireType::Endpoint,
                expires: None,
                body: CategoryBody::Device {
                    endpoint_id: Some("b7878522-d7fe-5c33-b30d-265f6618ae78".into())
                },
            }
        );
        for p in &pubs[1..3] {
            assert_eq!(
                (p.instance, p.expire_type, &p.body),
                (
                    1_022_409_101,
                    ExpireType::Endpoint,
                    &state_body(StateKind::Machine, 3500)
                )
            );
        }
        assert_eq!((pubs[1].container, pubs[2].container), (2, 3));
        for p in &pubs[3..5] {
            assert_eq!(
                (p.instance, p.expire_type, &p.body),
                (
                    536_870_912,
                    ExpireType::Static,
                    &state_body(StateKind::User, 3500)
                )
            );
            assert!(!p.is_removal());
        }
    }

    #[test]
    fn parses_capture_55_away_with_note() {
        let (uri, pubs) = parse_category_publish(CAPTURE_55.as_bytes()).unwrap();
        assert_eq!(uri, "sip:bob@example.com");
        assert_eq!(pubs.len(), 7);
        assert_eq!(pubs[0].body, state_body(StateKind::User, 15500));
        assert_eq!(pubs[2].body, state_body(StateKind::Machine, 15500));
        let notes: Vec<_> = pubs.iter().filter(|p| p.category == "note").collect();
        assert_eq!(
            notes.iter().map(|p| p.container).collect::<Vec<_>>(),
            [200, 300, 400]
        );
        for n in notes {
            assert_eq!(n.instance, 0);
            assert_eq!(
                n.body,
                CategoryBody::Note {
                    text: "confab harness away test".into()
                }
            );
        }
    }

    #[test]
    fn parses_removals_activity_and_other_categories() {
        // The forms pidgin-sipe sends: a clear (expires="0", no data), a
        // phoneState with an activity, calendarData and an OOF note.
        let body = r#"<publish xmlns="http://schemas.microsoft.com/2006/09/sip/rich-presence"><publications uri="sip:alice@example.com">
<publication categoryName="note" instance="0" container="200" version="3" expireType="static" expires="0"/>
<publication categoryName="state" instance="1339299275" container="2" version="1" expireType="endpoint"><state xmlns="http://schemas.microsoft.com/2006/09/sip/state" manual="false" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="phoneState"><availability>6500</availability><activity token="on-the-phone" minAvailability="6500" maxAvailability="6500"/></state></publication>
<publication categoryName="calendarData" instance="0" container="300" version="2" expireType="static"><calendarData xmlns="http://schemas.microsoft.com/2006/09/sip/calendarData" mailboxID="a@b"/></publication>
<publication categoryName="note" instance="42" container="400" version="0" expireType="time" expires="3600"><note xmlns="http://schemas.microsoft.com/2006/09/sip/note"><body type="OOF" uri="">gone &amp; back &lt;soon&gt; &#233;</body></note></publication>
<publication categoryName="state" instance="1" container="2" version="0" expireType="USER"><ns:state xmlns:ns="http://schemas.microsoft.com/2006/09/sip/state"><ns:availability> 9500 </ns:availability><ns:activity token=""/></ns:state></publication>
</publications></publish>"#;
        let (_, pubs) = parse_category_publish(body.as_bytes()).unwrap();
        assert_eq!(pubs.len(), 5);
        assert!(pubs[0].is_removal());
        assert_eq!(
            (pubs[0].category.as_str(), pubs[0].version, &pubs[0].body),
            ("note", 3, &CategoryBody::Other)
        );
        assert_eq!(
            pubs[1].body,
            CategoryBody::State {
                kind: StateKind::Phone,
                availability: Some(6500),
                activity: Some("on-the-phone".into())
            }
        );
        assert_eq!(pubs[2].body, CategoryBody::Other);
        assert_eq!(pubs[3].expire_type, ExpireType::Time);
        assert_eq!(pubs[3].expires, Some(3600));
        assert_eq!(
            pubs[3].body,
            CategoryBody::Note {
                text: "gone & back <soon> é".into()
            }
        );
        assert_eq!(pubs[4].expire_type, ExpireType::User);
        assert_eq!(
            pubs[4].body,
            CategoryBody::State {
                kind: StateKind::Other,
                availability: Some(9500),
                activity: None
            }
        );
    }

    #[test]
    fn publish_rejects_bad_documents() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("<publish>", "truncated"),
            ("<presence/>", "wrong root"),
            ("<publish/>", "no publications"),
            ("<publish><publications/></publish>", "no uri"),
            (
                r#"<publish><publications uri="sip:a@b"><publication instance="1" container="2" version="0"/></publications></publish>"#,
                "no categoryName",
            ),
            (
                r#"<publish><publications uri="sip:a@b"><publication categoryName="state" instance="-1" container="2" version="0"/></publications></publish>"#,
                "negative instance",
            ),
            (
                r#"<publish><publications uri="sip:a@b"><publication categoryName="state" instance="1" container="2"/></publications></publish>"#,
                "no version",
            ),
            (
                r#"<publish><publications uri="sip:a@b"><publication categoryName="state" instance="1" container="2" version="0" expireType="forever"/></publications></publish>"#,
                "bad expireType",
            ),
            (
                r#"<publish><publications uri="sip:a@b"><publication categoryName="state" instance="1" container="2" version="0"><state><availability>high</availability></state></publication></publications></publish>"#,
                "bad availability",
            ),
            (
                r#"<!DOCTYPE publish [<!ENTITY x "y">]><publish/>"#,
                "doctype",
            ),
            ("<publish>&bogus;</publish>", "unknown entity"),
            ("<publish></publication>", "mismatched end"),
            ("<publish/><publish/>", "two roots"),
        ];
        for (body, why) in cases {
            assert!(
                parse_category_publish(body.as_bytes()).is_err(),
                "accepted ({why}): {body}"
            );
        }
        assert_eq!(
            parse_category_publish(b"\xff\xfe"),
            Err(PresenceError::NotUtf8)
        );
        assert!(matches!(
            parse_category_publish(b"<batchSub/>"),
            Err(PresenceError::WrongRoot {
                expected: "publish",
                ..
            })
        ));
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![b' '; MAX_MSPRES_SIZE + 1];
        assert!(matches!(
            parse_category_publish(&big),
            Err(PresenceError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_batch_subscribe(&big),
            Err(PresenceError::TooLarge { .. })
        ));

        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(
            parse_batch_subscribe(deep.as_bytes()),
            Err(PresenceError::TooDeep(MAX_DEPTH))
        );

        let mut many = String::from(r#"<batchSub><action name="subscribe"><adhocList>"#);
        for i in 0..=MAX_MSPRES_ITEMS {
            many.push_str(&format!(r#"<resource uri="{i}"/>"#));
        }
        many.push_str("</adhocList></action></batchSub>");
        assert!(many.len() <= MAX_MSPRES_SIZE);
        assert_eq!(
            parse_batch_subscribe(many.as_bytes()),
            Err(PresenceError::TooManyItems(MAX_MSPRES_ITEMS))
        );

        // 10,001 publications cannot fit in the size limit (each needs its
        // four attributes): the size check catches them first.
        let mut pubs = String::from(r#"<publish><publications uri="sip:a@b">"#);
        for i in 0..=MAX_MSPRES_ITEMS {
            pubs.push_str(&format!(
                r#"<publication categoryName="x" instance="{i}" container="2" version="0"/>"#
            ));
        }
        pubs.push_str("</publications></publish>");
        assert!(matches!(
            parse_category_publish(pubs.as_bytes()),
            Err(PresenceError::TooLarge { .. })
        ));
    }

    #[test]
    fn parses_capture_12_batch_subscribe() {
        let b = parse_batch_subscribe(CAPTURE_12.as_bytes()).unwrap();
        assert_eq!(
            b,
            BatchSubscribe {
                action: "subscribe".into(),
                resources: vec!["sip:bob@example.com".into(), "sip:carol@example.com".into()],
                categories: vec![
                    "calendarData".into(),
                    "contactCard".into(),
                    "note".into(),
                    "state".into()
                ],
            }
        );
    }

    #[test]
    fn parses_capture_45_resource_with_context() {
        let b = parse_batch_subscribe(CAPTURE_45.as_bytes()).unwrap();
        assert_eq!(b.action, "subscribe");
        assert_eq!(b.resources, ["sip:bob@example.com"]);
        assert_eq!(b.categories.len(), 4);
    }

    #[test]
    fn batch_subscribe_edge_cases() {
        let body = r#"<b:batchSub xmlns:b="http://schemas.microsoft.com/2006/01/sip/batch-subscribe"><b:action name="unsubscribe"><b:adhocList><b:resource uri="sip:x@e.x"/><b:resource/><b:resource uri=""/><b:resource uri="sip:x@e.x"/><b:resource uri="sip:a&amp;b@e.x"/></b:adhocList></b:action></b:batchSub>"#;
        let b = parse_batch_subscribe(body.as_bytes()).unwrap();
        assert_eq!(b.action, "unsubscribe");
        assert_eq!(b.resources, ["sip:x@e.x", "sip:a&b@e.x"]);
        assert!(b.categories.is_empty());

        assert!(parse_batch_subscribe(b"<batchSub/>").is_err());
        assert!(parse_batch_subscribe(b"<batchSub><action/></batchSub>").is_err());
        assert!(matches!(
            parse_batch_subscribe(b"<publish/>"),
            Err(PresenceError::WrongRoot { .. })
        ));
    }

    #[test]
    fn renders_capture_57_exactly() {
        let state = PresenceState::new(Availability::Away).with_note("confab harness away test");
        let doc = render_categories(
            "sip:bob@example.com",
            &state,
            None,
            "2026-11-22T03:46:49Z",
            1,
        );
        assert_eq!(doc, CAPTURE_57);
    }

    #[test]
    fn renders_capture_14_plus_note_clear() {
        let doc = render_categories(
            "bob@example.com",
            &PresenceState::offline(),
            None,
            "2026-11-22T03:46:45Z",
            1,
        );
        let expected =
            CAPTURE_14.replace("</categories>", r#"<category name="note"/></categories>"#);
        assert_eq!(doc, expected);
    }

    #[test]
    fn rendered_documents_read_as_sipe_reads_them() {
        for (availability, lync) in [
            (Availability::Online, 3500),
            (Availability::Away, 15500),
            (Availability::Busy, 6500),
            (Availability::DoNotDisturb, 9500),
            (Availability::BeRightBack, 12500),
            (Availability::Idle, 5000),
            (Availability::BusyIdle, 8000),
            (Availability::Offline, 18500),
        ] {
            let state = PresenceState::new(availability)
                .with_note("a <b> & \"c\"\r\n")
                .with_activity("on-the-phone");
            let doc = render_categories(
                "SIP:Bob@Example.COM",
                &state,
                Some("Bob \"the\" <Builder>"),
                "2026-01-01T00:00:00Z",
                7,
            );
            let view = sipe_view(&doc);
            assert_eq!(
                view,
                SipeView {
                    uri: "sip:bob@example.com".into(),
                    availability: Some(lync),
                    state_type: Some("aggregateState".into()),
                    activity: Some("on-the-phone".into()),
                    note_categories: 1,
                    note: Some("a <b> & \"c\"".into()),
                    display_name: Some("Bob \"the\" <Builder>".into()),
                }
            );
            assert_eq!(Availability::from_lync(lync), availability);
        }
    }

    #[test]
    fn cleared_note_renders_an_empty_note_category() {
        for note in [None, Some(""), Some("  \n")] {
            let mut state = PresenceState::online();
            state.note = note.map(str::to_owned);
            let doc = render_categories("sip:bob@example.com", &state, Some(""), "t", 1);
            let view = sipe_view(&doc);
            assert_eq!(view.note_categories, 1);
            assert_eq!(view.note, None);
            assert_eq!(view.display_name, None);
            assert!(doc.contains(r#"<category name="note"/>"#));
        }
    }

    #[test]
    fn rendering_escapes_and_drops_invalid_characters() {
        let state = PresenceState::online()
            .with_note("x\u{0}y\u{1b}z]]>")
            .with_activity("t\"><evil/>");
        let doc = render_categories("sip:a\"b@e.x", &state, None, "\"<t>", 1);
        let root = parse_tree(doc.as_bytes()).unwrap();
        assert_eq!(root.attr("uri"), Some("sip:a\"b@e.x"));
        let view = sipe_view(&doc);
        assert_eq!(view.note.as_deref(), Some("xyz]]>"));
        assert_eq!(view.activity.as_deref(), Some("t\"><evil/>"));
        assert!(!doc.contains("<evil"));
    }

    #[test]
    fn renders_capture_11_exactly() {
        let doc = render_roaming_self("sip:alice@example.com", None, "t", 1, &[]);
        assert_eq!(doc, CAPTURE_11);
    }

    #[test]
    fn roaming_self_as_sipe_reads_it() {
        let state = PresenceState::new(Availability::Busy)
            .with_note("at lunch")
            .with_activity("in-a-meeting");
        let subscribers = vec![
            ("sip:Bob@Example.com".to_owned(), false),
            ("carol@example.com".to_owned(), true),
        ];
        let doc = render_roaming_self(
            "alice@example.com",
            Some(&state),
            "2026-01-01T00:00:00Z",
            4,
            &subscribers,
        );
        let root = parse_tree(doc.as_bytes()).unwrap();
        assert_eq!(root.name, "roamingData");
        let cats = root.child("categories").unwrap();
        assert_eq!(cats.attr("uri"), Some("sip:alice@example.com"));
        // Own status: state category in container 2, aggregateState.
        let states: Vec<_> = cats
            .children_named("category")
            .filter(|c| c.attr("name") == Some("state"))
            .collect();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].attr("container"), Some("2"));
        let s = states[0].child("state").unwrap();
        assert_eq!(s.attr("type"), Some("aggregateState"));
        assert_eq!(s.child("availability").unwrap().text, "6500");
        assert_eq!(
            s.child("activity").and_then(|a| a.attr("token")),
            Some("in-a-meeting")
        );
        // Own note: instance 0 in 200/300/400, with version and publishTime.
        let notes: Vec<_> = cats
            .children_named("category")
            .filter(|c| c.attr("name") == Some("note"))
            .collect();
        assert_eq!(
            notes
                .iter()
                .map(|n| (n.attr("instance"), n.attr("container"), n.attr("version")))
                .collect::<Vec<_>>(),
            [
                (Some("0"), Some("200"), Some("4")),
                (Some("0"), Some("300"), Some("4")),
                (Some("0"), Some("400"), Some("4"))
            ]
        );
        for n in notes {
            assert_eq!(n.attr("publishTime"), Some("2026-01-01T00:00:00Z"));
            assert_eq!(
                n.child("note")
                    .and_then(|n| n.child("body"))
                    .map(|b| b.text.as_str()),
                Some("at lunch")
            );
        }
        assert!(root.child("containers").is_some());
        let subs: Vec<_> = root
            .child("subscribers")
            .unwrap()
            .children_named("subscriber")
            .map(|s| {
                (
                    s.attr("user").unwrap(),
                    s.attr("displayName").unwrap(),
                    s.attr("acknowledged").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            subs,
            [
                ("bob@example.com", "", "false"),
                ("carol@example.com", "", "true")
            ]
        );
    }

    #[test]
    fn roaming_self_without_note_clears_it() {
        let doc = render_roaming_self(
            "sip:alice@example.com",
            Some(&PresenceState::online()),
            "t",
            1,
            &[],
        );
        assert!(doc.contains(r#"<category name="note"/>"#));
        assert!(doc.ends_with(
            r#"</categories><containers xmlns="http://schemas.microsoft.com/2006/09/sip/container-management"/><subscribers xmlns="http://schemas.microsoft.com/2006/09/sip/presence-subscribers"/></roamingData>"#
        ));
    }

    #[test]
    fn own_publish_round_trips_through_rendering() {
        // What a client publishes becomes the state the server renders back.
        let (_, pubs) = parse_category_publish(CAPTURE_55.as_bytes()).unwrap();
        let mut state = PresenceState::offline();
        for p in &pubs {
            match &p.body {
                CategoryBody::State {
                    kind: StateKind::User,
                    availability: Some(a),
                    ..
                } => state.availability = Availability::from_lync(*a),
                CategoryBody::Note { text } => state.note = Some(text.clone()),
                _ => {}
            }
        }
        let doc = render_categories(
            "sip:bob@example.com",
            &state,
            None,
            "2026-11-22T03:46:49Z",
            1,
        );
        assert_eq!(doc, CAPTURE_57);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: truncations and byte flips of the captures.
        let mut seed: u32 = 0x1234_5678;
        for doc in [CAPTURE_22, CAPTURE_55, CAPTURE_12, CAPTURE_45, CAPTURE_57] {
            let bytes = doc.as_bytes();
            for cut in (0..bytes.len()).step_by(7) {
                let _ = parse_category_publish(&bytes[..cut]);
                let _ = parse_batch_subscribe(&bytes[..cut]);
            }
            for _ in 0..300 {
                let mut v = bytes.to_vec();
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let i = (seed as usize) % v.len();
                v[i] = (seed >> 16) as u8;
                let _ = parse_category_publish(&v);
                let _ = parse_batch_subscribe(&v);
            }
        }
    }
}
