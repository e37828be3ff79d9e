//! SOAP contact-list operations (MS-SIP roaming contacts): the requests a Lync
//! client sends in `SERVICE` (`Content-Type: application/SOAP+xml`), the
//! `application/vnd-microsoft-roaming-contacts+xml` contact list, and the
//! `addGroup` answer. Sans-IO; parsing never panics.
//!
//! The request envelope, as pidgin-sipe (`sip-soap.c`) builds it:
//! `<s:Envelope xmlns:s=".../soap/envelope/" xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><s:Body><m:OP>`
//! parameters `<m:deltaNum>N</m:deltaNum></m:OP></s:Body></s:Envelope>`, with
//! OP one of `setContact` (`displayName`, `groups` = space-separated ids,
//! `subscribed`, `URI` = `sip:` URI, `externalURI`), `deleteContact` (`URI`),
//! `addGroup` (`name`, `externalURI`), `modifyGroup` (`groupID`, `name`,
//! `externalURI`), `deleteGroup` (`groupID`). Elements are matched by local
//! name, whatever their prefix (pidgin-sipe's own XML reader does the same).

use confab_presence::xmltree::{self, Limits, Node, XmlError, push_escaped, trim_xml};

use crate::contacts::ContactList;

/// Largest SOAP body accepted, in bytes.
pub(crate) const MAX_SOAP_SIZE: usize = 256 * 1024;
/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 32;
/// Most elements accepted in one body.
const MAX_ELEMENTS: usize = 10_000;

const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const WINRTC_NS: &str = "http://schemas.microsoft.com/winrtc/2002/11/sip";

/// A contact-list operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SoapRequest {
    /// Adds or replaces a contact.
    SetContact {
        /// `user@domain`, lower case, without `sip:`.
        uri: String,
        /// `displayName`: the alias the owner gave (may be empty). pidgin-sipe
        /// sends the buddy's alias, which is often the `sip:` URI itself.
        name: String,
        /// `groups`: space-separated ids, duplicates removed, order kept.
        groups: Vec<u32>,
        /// `subscribed` (`true` when absent).
        subscribed: bool,
        /// `deltaNum`: the list version the client believes current.
        delta_num: Option<u64>,
    },
    /// Removes a contact.
    DeleteContact {
        /// `user@domain`, lower case, without `sip:`.
        uri: String,
        delta_num: Option<u64>,
    },
    /// Creates a group; the answer carries the new id
    /// ([`render_add_group_response`]).
    AddGroup {
        name: String,
        delta_num: Option<u64>,
    },
    /// Renames a group.
    ModifyGroup {
        id: u32,
        name: String,
        delta_num: Option<u64>,
    },
    /// Deletes a group.
    DeleteGroup { id: u32, delta_num: Option<u64> },
    /// Any other operation (`directorySearch`, `setACE`, ...): its local name.
    Other(String),
}

/// Why a SOAP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SoapError {
    #[error("SOAP body too large: {size} bytes (limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("SOAP body is not valid UTF-8")]
    NotUtf8,
    #[error("malformed SOAP XML: {0}")]
    Malformed(String),
    #[error("not a SOAP request: {0}")]
    NotSoap(String),
    #[error("{op}: missing <{element}>")]
    Missing {
        op: &'static str,
        element: &'static str,
    },
    #[error("{op}: invalid <{element}>: {value:?}")]
    Invalid {
        op: &'static str,
        element: &'static str,
        value: String,
    },
}

/// Parses the body of a `SERVICE` with `Content-Type: application/SOAP+xml`.
pub(crate) fn parse_soap(body: &[u8]) -> Result<SoapRequest, SoapError> {
    let root = parse_tree(body)?;
    if root.name != "Envelope" {
        return Err(SoapError::NotSoap(format!(
            "root element is <{}>, expected <Envelope>",
            root.name
        )));
    }
    let soap_body = root
        .child("Body")
        .ok_or_else(|| SoapError::NotSoap("no <Body> in the envelope".into()))?;
    let op = soap_body
        .children
        .first()
        .ok_or_else(|| SoapError::NotSoap("empty <Body>".into()))?;
    Ok(match op.name.as_str() {
        "setContact" => {
            const OP: &str = "setContact";
            let groups = match op.text_of("groups") {
                None => Vec::new(),
                Some(list) => parse_group_ids(OP, list)?,
            };
            let subscribed = match op.text_of("subscribed").map(trim_xml) {
                None | Some("") => true,
                Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
                Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
                Some(v) => {
                    return Err(SoapError::Invalid {
                        op: OP,
                        element: "subscribed",
                        value: v.to_owned(),
                    });
                }
            };
            SoapRequest::SetContact {
                uri: contact_uri(OP, op)?,
                name: op.text_of("displayName").unwrap_or("").to_owned(),
                groups,
                subscribed,
                delta_num: delta_num(OP, op)?,
            }
        }
        "deleteContact" => SoapRequest::DeleteContact {
            uri: contact_uri("deleteContact", op)?,
            delta_num: delta_num("deleteContact", op)?,
        },
        "addGroup" => SoapRequest::AddGroup {
            name: group_name("addGroup", op)?,
            delta_num: delta_num("addGroup", op)?,
        },
        "modifyGroup" => SoapRequest::ModifyGroup {
            id: group_id("modifyGroup", op)?,
            name: group_name("modifyGroup", op)?,
            delta_num: delta_num("modifyGroup", op)?,
        },
        "deleteGroup" => SoapRequest::DeleteGroup {
            id: group_id("deleteGroup", op)?,
            delta_num: delta_num("deleteGroup", op)?,
        },
        other => SoapRequest::Other(other.to_owned()),
    })
}

fn parse_group_ids(op: &'static str, list: &str) -> Result<Vec<u32>, SoapError> {
    let mut ids: Vec<u32> = Vec::new();
    for token in list.split_ascii_whitespace() {
        let id = token.parse::<u32>().map_err(|_| SoapError::Invalid {
            op,
            element: "groups",
            value: list.to_owned(),
        })?;
        if ids.len() >= MAX_ELEMENTS {
            return Err(SoapError::Invalid {
                op,
                element: "groups",
                value: format!("more than {MAX_ELEMENTS} ids"),
            });
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `URI`, trimmed, `sip:` removed, ASCII lower case; must be non-empty and
/// free of whitespace and control characters.
fn contact_uri(op: &'static str, node: &Node) -> Result<String, SoapError> {
    let raw = node
        .text_of("URI")
        .ok_or(SoapError::Missing { op, element: "URI" })?;
    let uri = trim_xml(raw);
    let bare = match uri.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("sip:") => &uri[4..],
        _ => uri,
    };
    if bare.is_empty() || bare.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SoapError::Invalid {
            op,
            element: "URI",
            value: raw.to_owned(),
        });
    }
    Ok(bare.to_ascii_lowercase())
}

fn group_name(op: &'static str, node: &Node) -> Result<String, SoapError> {
    let raw = node.text_of("name").ok_or(SoapError::Missing {
        op,
        element: "name",
    })?;
    let name = trim_xml(raw);
    if name.is_empty() {
        return Err(SoapError::Invalid {
            op,
            element: "name",
            value: raw.to_owned(),
        });
    }
    Ok(name.to_owned())
}

fn group_id(op: &'static str, node: &Node) -> Result<u32, SoapError> {
    let raw = node.text_of("groupID").ok_or(SoapError::Missing {
        op,
        element: "groupID",
    })?;
    trim_xml(raw).parse().map_err(|_| SoapError::Invalid {
        op,
        element: "groupID",
        value: raw.to_owned(),
    })
}

fn delta_num(op: &'static str, node: &Node) -> Result<Option<u64>, SoapError> {
    match node.text_of("deltaNum").map(trim_xml) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| SoapError::Invalid {
            op,
            element: "deltaNum",
            value: v.to_owned(),
        }),
    }
}

/// Renders the full contact list
/// (`application/vnd-microsoft-roaming-contacts+xml`):
/// `<contactList deltaNum="N"><group id= name= externals=""/>...<contact
/// uri="bob@example.com" name= groups="1 2" subscribed="true"
/// externals=""/>...</contactList>`.
///
/// * `deltaNum` is `list.delta_num`, but at least 1 (MS-SIP: it MUST be
///   non-zero; pidgin-sipe ignores 0 and then counts its requests from 0);
/// * groups are sorted by id; a list without groups gets `<group id="1"
///   name="~"/>` (shown as "Other Contacts"; without any group pidgin-sipe
///   would send an `addGroup` at once);
/// * contact URIs are without `sip:` (the client adds it), no `ucsmode`
///   attribute (that would switch the client to Exchange UCS);
/// * a contact's ids are those of existing groups, in its order, without
///   duplicates; a contact left with none is put in the first group whose
///   name starts with `~`, else the lowest id (where pidgin-sipe would put
///   it anyway).
pub(crate) fn render_contact_list(list: &ContactList) -> String {
    let mut groups: Vec<(u32, &str)> = list
        .groups
        .iter()
        .map(|g| (g.id, g.name.as_str()))
        .collect();
    groups.sort_by_key(|(id, _)| *id);
    groups.dedup_by_key(|(id, _)| *id);
    if groups.is_empty() {
        groups.push((1, "~"));
    }
    let default_group = groups
        .iter()
        .find(|(_, name)| name.starts_with('~'))
        .or(groups.first())
        .map_or(1, |(id, _)| *id);

    let mut out = String::with_capacity(128 + 64 * groups.len() + 128 * list.contacts.len());
    out.push_str("<contactList deltaNum=\"");
    out.push_str(&list.delta_num.max(1).to_string());
    out.push_str("\">");
    for (id, name) in &groups {
        out.push_str("<group id=\"");
        out.push_str(&id.to_string());
        out.push_str("\" name=\"");
        push_escaped(&mut out, name, true);
        out.push_str("\" externals=\"\"/>");
    }
    for contact in &list.contacts {
        let mut ids: Vec<u32> = Vec::with_capacity(contact.groups.len());
        for id in &contact.groups {
            if !ids.contains(id) && groups.iter().any(|(g, _)| g == id) {
                ids.push(*id);
            }
        }
        if ids.is_empty() {
            ids.push(default_group);
        }
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        let uri = contact.uri.trim();
        let uri = match uri.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("sip:") => &uri[4..],
            _ => uri,
        };
        out.push_str("<contact uri=\"");
        push_escaped(&mut out, uri, true);
        out.push_str("\" name=\"");
        push_escaped(&mut out, &contact.name, true);
        out.push_str("\" groups=\"");
        out.push_str(&ids.join(" "));
        out.push_str("\" subscribed=\"");
        out.push_str(if contact.subscribed { "true" } else { "false" });
        out.push_str("\" externals=\"\"/>");
    }
    out.push_str("</contactList>");
    out
}

/// The body of the 200 to `addGroup` (`Content-Type: application/SOAP+xml`);
/// pidgin-sipe reads `Body/addGroup/groupID`.
pub(crate) fn render_add_group_response(id: u32) -> String {
    format!(
        "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{SOAP_ENV_NS}\"><SOAP-ENV:Body>\
         <m:addGroup xmlns:m=\"{WINRTC_NS}\"><m:groupID>{id}</m:groupID></m:addGroup>\
         </SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

/// The limits of a SOAP body.
const LIMITS: Limits = Limits {
    max_bytes: MAX_SOAP_SIZE,
    max_depth: MAX_DEPTH,
    max_elements: MAX_ELEMENTS,
};

fn malformed(e: impl std::fmt::Display) -> SoapError {
    SoapError::Malformed(e.to_string())
}

/// Parses `body` into a tree, enforcing the size, depth and element limits.
fn parse_tree(body: &[u8]) -> Result<Node, SoapError> {
    xmltree::parse_tree(body, &LIMITS).map_err(|e| match e {
        XmlError::TooLarge { size, limit } => SoapError::TooLarge { size, limit },
        XmlError::NotUtf8 => SoapError::NotUtf8,
        other => malformed(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::{Contact, ContactGroup};

    // Bodies of our own pidgin-sipe 1.25 captures.

    /// contacts-add/48.
    const CAPTURE_48_ADD_GROUP: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><s:Body><m:addGroup><m:name>Buddies</m:name><m:externalURI /><m:deltaNum>1</m:deltaNum></m:addGroup></s:Body></s:Envelope>"#;
    /// contacts-add/49.
    const CAPTURE_49_ADD_GROUP_200: &str = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><m:addGroup xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><m:groupID>101</m:groupID></m:addGroup></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
    /// contacts-add/51.
    const CAPTURE_51_SET_CONTACT: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/winrtc/2002/11/sip"><s:Body><m:setContact><m:displayName>sip:bob@example.com</m:displayName><m:groups>101</m:groups><m:subscribed>true</m:subscribed><m:URI>sip:bob@example.com</m:URI><m:externalURI /><m:deltaNum>2</m:deltaNum></m:setContact></s:Body></s:Envelope>"#;
    /// demo/05.
    const CAPTURE_05_CONTACT_LIST: &str = r#"<contactList deltaNum="1"><group id="1" name="~" externals=""/><contact uri="bob@example.com" name="" groups="1" subscribed="true" externals=""/><contact uri="carol@example.com" name="" groups="1" subscribed="true" externals=""/></contactList>"#;

    /// The envelope pidgin-sipe's `sip_soap_request_full()` builds.
    fn sipe_envelope(op: &str, request: &str, delta: Option<u64>) -> String {
        let delta = delta.map_or(String::new(), |d| format!("<m:deltaNum>{d}</m:deltaNum>"));
        format!(
            "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:m=\"http://schemas.microsoft.com/winrtc/2002/11/sip\"><s:Body><m:{op}>{request}{delta}</m:{op}></s:Body></s:Envelope>"
        )
    }

    fn contact(uri: &str, name: &str, groups: &[u32], subscribed: bool) -> Contact {
        Contact {
            uri: uri.into(),
            name: name.into(),
            groups: groups.to_vec(),
            subscribed,
        }
    }

    #[test]
    fn parses_capture_48_add_group() {
        assert_eq!(
            parse_soap(CAPTURE_48_ADD_GROUP.as_bytes()),
            Ok(SoapRequest::AddGroup {
                name: "Buddies".into(),
                delta_num: Some(1)
            })
        );
    }

    #[test]
    fn parses_capture_51_set_contact() {
        assert_eq!(
            parse_soap(CAPTURE_51_SET_CONTACT.as_bytes()),
            Ok(SoapRequest::SetContact {
                uri: "bob@example.com".into(),
                name: "sip:bob@example.com".into(),
                groups: vec![101],
                subscribed: true,
                delta_num: Some(2),
            })
        );
    }

    #[test]
    fn parses_every_operation_sipe_sends() {
        // sipe-group.c send_buddy_update(): escaped alias, several groups.
        let set = sipe_envelope(
            "setContact",
            "<m:displayName>Bob &amp; &lt;Co&gt;</m:displayName><m:groups>1 101 1</m:groups><m:subscribed>true</m:subscribed><m:URI>sip:Bob@Example.COM</m:URI><m:externalURI />",
            Some(7),
        );
        assert_eq!(
            parse_soap(set.as_bytes()),
            Ok(SoapRequest::SetContact {
                uri: "bob@example.com".into(),
                name: "Bob & <Co>".into(),
                groups: vec![1, 101],
                subscribed: true,
                delta_num: Some(7),
            })
        );
        // A buddy in no group: g_strjoinv of nothing is "".
        let set = sipe_envelope(
            "setContact",
            "<m:displayName></m:displayName><m:groups></m:groups><m:subscribed>false</m:subscribed><m:URI>sip:carol@example.com</m:URI><m:externalURI />",
            Some(8),
        );
        assert_eq!(
            parse_soap(set.as_bytes()),
            Ok(SoapRequest::SetContact {
                uri: "carol@example.com".into(),
                name: String::new(),
                groups: vec![],
                subscribed: false,
                delta_num: Some(8),
            })
        );
        // sipe-buddy.c: deleteContact with the sip: URI, unescaped.
        let del = sipe_envelope(
            "deleteContact",
            "<m:URI>sip:bob@example.com</m:URI>",
            Some(3),
        );
        assert_eq!(
            parse_soap(del.as_bytes()),
            Ok(SoapRequest::DeleteContact {
                uri: "bob@example.com".into(),
                delta_num: Some(3)
            })
        );
        // sipe-group.c: "Other Contacts" is sent as "~".
        let add = sipe_envelope("addGroup", "<m:name>~</m:name><m:externalURI />", Some(1));
        assert_eq!(
            parse_soap(add.as_bytes()),
            Ok(SoapRequest::AddGroup {
                name: "~".into(),
                delta_num: Some(1)
            })
        );
        let modify = sipe_envelope(
            "modifyGroup",
            "<m:groupID>101</m:groupID><m:name>Team &quot;A&quot;</m:name><m:externalURI />",
            Some(4),
        );
        assert_eq!(
            parse_soap(modify.as_bytes()),
            Ok(SoapRequest::ModifyGroup {
                id: 101,
                name: "Team \"A\"".into(),
                delta_num: Some(4)
            })
        );
        let delete = sipe_envelope("deleteGroup", "<m:groupID>101</m:groupID>", Some(5));
        assert_eq!(
            parse_soap(delete.as_bytes()),
            Ok(SoapRequest::DeleteGroup {
                id: 101,
                delta_num: Some(5)
            })
        );
    }

    #[test]
    fn other_operations_are_named() {
        // sip-soap.c sip_soap_directory_search(): no deltaNum, extra nodes.
        let search = "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:m=\"http://schemas.microsoft.com/winrtc/2002/11/sip\"><s:Body><m:directorySearch><m:filter m:href=\"#searchArray\"/><m:maxResults>100</m:maxResults></m:directorySearch><m:Array m:id=\"searchArray\"><m:row m:attrib=\"givenName\" m:value=\"Bob\"/></m:Array></s:Body></s:Envelope>";
        assert_eq!(
            parse_soap(search.as_bytes()),
            Ok(SoapRequest::Other("directorySearch".into()))
        );
        let ace = sipe_envelope(
            "setACE",
            "<m:type>USER</m:type><m:mask>bob@example.com</m:mask><m:rights>AA</m:rights>",
            Some(1),
        );
        assert_eq!(
            parse_soap(ace.as_bytes()),
            Ok(SoapRequest::Other("setACE".into()))
        );
    }

    #[test]
    fn missing_delta_num_is_none() {
        let del = sipe_envelope("deleteGroup", "<m:groupID> 7 </m:groupID>", None);
        assert_eq!(
            parse_soap(del.as_bytes()),
            Ok(SoapRequest::DeleteGroup {
                id: 7,
                delta_num: None
            })
        );
    }

    #[test]
    fn refuses_bad_requests_with_a_reason() {
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("<contactList/>".into(), "not an envelope"),
            ("<s:Envelope xmlns:s=\"x\"/>".into(), "no body"),
            ("<Envelope><Body/></Envelope>".into(), "empty body"),
            (
                sipe_envelope("setContact", "<m:groups>1</m:groups>", Some(1)),
                "no URI",
            ),
            (
                sipe_envelope("setContact", "<m:URI>sip:</m:URI>", Some(1)),
                "empty URI",
            ),
            (
                sipe_envelope("setContact", "<m:URI>sip:a b@c</m:URI>", Some(1)),
                "space in URI",
            ),
            (
                sipe_envelope(
                    "setContact",
                    "<m:URI>a@b</m:URI><m:groups>1 x</m:groups>",
                    Some(1),
                ),
                "bad group id",
            ),
            (
                sipe_envelope(
                    "setContact",
                    "<m:URI>a@b</m:URI><m:subscribed>maybe</m:subscribed>",
                    Some(1),
                ),
                "bad subscribed",
            ),
            (sipe_envelope("deleteContact", "", Some(1)), "no URI"),
            (
                sipe_envelope("addGroup", "<m:name> </m:name>", Some(1)),
                "blank name",
            ),
            (sipe_envelope("addGroup", "", Some(1)), "no name"),
            (
                sipe_envelope("modifyGroup", "<m:name>x</m:name>", Some(1)),
                "no id",
            ),
            (
                sipe_envelope("deleteGroup", "<m:groupID>-1</m:groupID>", Some(1)),
                "negative id",
            ),
            (
                sipe_envelope(
                    "deleteGroup",
                    "<m:groupID>1</m:groupID><m:deltaNum>z</m:deltaNum>",
                    None,
                ),
                "bad deltaNum",
            ),
            ("<Envelope><Body><addGroup>".into(), "truncated"),
            (
                "<!DOCTYPE x [<!ENTITY a \"b\">]><Envelope/>".into(),
                "doctype",
            ),
            (
                "<Envelope><Body><addGroup><name>&a;</name></addGroup></Body></Envelope>".into(),
                "entity",
            ),
        ];
        for (body, why) in cases {
            match parse_soap(body.as_bytes()) {
                Ok(r) => panic!("accepted ({why}): {body} -> {r:?}"),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        assert_eq!(parse_soap(b"\xc3\x28"), Err(SoapError::NotUtf8));
        assert_eq!(
            parse_soap(sipe_envelope("deleteContact", "", None).as_bytes())
                .map_err(|e| e.to_string()),
            Err("deleteContact: missing <URI>".to_owned())
        );
        let big = vec![b' '; MAX_SOAP_SIZE + 1];
        assert!(matches!(parse_soap(&big), Err(SoapError::TooLarge { .. })));
        let deep = format!("{}{}", "<a>".repeat(64), "</a>".repeat(64));
        assert!(matches!(
            parse_soap(deep.as_bytes()),
            Err(SoapError::Malformed(_))
        ));
    }

    #[test]
    fn renders_capture_05_exactly() {
        let list = ContactList {
            owner: "alice@example.com".into(),
            delta_num: 1,
            groups: vec![ContactGroup {
                id: 1,
                name: "~".into(),
            }],
            contacts: vec![
                contact("bob@example.com", "", &[1], true),
                contact("carol@example.com", "", &[1], true),
            ],
        };
        assert_eq!(render_contact_list(&list), CAPTURE_05_CONTACT_LIST);
    }

    #[test]
    fn a_list_without_groups_gets_the_tilde_group() {
        let mut list = ContactList::empty("alice@example.com");
        list.contacts = vec![contact("bob@example.com", "", &[], true)];
        assert_eq!(
            render_contact_list(&list),
            r#"<contactList deltaNum="1"><group id="1" name="~" externals=""/><contact uri="bob@example.com" name="" groups="1" subscribed="true" externals=""/></contactList>"#
        );
        // Even empty: SIPE would otherwise create one with addGroup.
        assert_eq!(
            render_contact_list(&ContactList::empty("alice@example.com")),
            r#"<contactList deltaNum="1"><group id="1" name="~" externals=""/></contactList>"#
        );
    }

    #[test]
    fn renders_groups_sorted_and_contacts_escaped() {
        let list = ContactList {
            owner: "alice@example.com".into(),
            delta_num: 42,
            groups: vec![
                ContactGroup {
                    id: 101,
                    name: "Team \"A\" & <B>".into(),
                },
                ContactGroup {
                    id: 2,
                    name: "~".into(),
                },
                ContactGroup {
                    id: 5,
                    name: "Friends".into(),
                },
            ],
            contacts: vec![
                contact("sip:bob@example.com", "Bobby <B>", &[101, 5, 101, 99], true),
                contact("carol@example.com", "", &[], false),
                contact("dave@example.com", "", &[99], true),
            ],
        };
        let doc = render_contact_list(&list);
        assert_eq!(
            doc,
            concat!(
                r#"<contactList deltaNum="42">"#,
                r#"<group id="2" name="~" externals=""/>"#,
                r#"<group id="5" name="Friends" externals=""/>"#,
                r#"<group id="101" name="Team &quot;A&quot; &amp; &lt;B&gt;" externals=""/>"#,
                r#"<contact uri="bob@example.com" name="Bobby &lt;B&gt;" groups="101 5" subscribed="true" externals=""/>"#,
                r#"<contact uri="carol@example.com" name="" groups="2" subscribed="false" externals=""/>"#,
                r#"<contact uri="dave@example.com" name="" groups="2" subscribed="true" externals=""/>"#,
                "</contactList>"
            )
        );
        assert!(!doc.contains("ucsmode"));
    }

    #[test]
    fn group_less_contacts_go_to_the_lowest_group_without_tilde() {
        let list = ContactList {
            owner: "alice@example.com".into(),
            delta_num: 3,
            groups: vec![
                ContactGroup {
                    id: 9,
                    name: "Work".into(),
                },
                ContactGroup {
                    id: 4,
                    name: "Home".into(),
                },
            ],
            contacts: vec![contact("bob@example.com", "", &[], true)],
        };
        assert!(render_contact_list(&list).contains(r#"groups="4""#));
    }

    #[test]
    fn contact_list_round_trips_through_soap_edits() {
        // What a client sends with setContact reappears in the next list.
        let SoapRequest::SetContact {
            uri,
            name,
            groups,
            subscribed,
            ..
        } = parse_soap(CAPTURE_51_SET_CONTACT.as_bytes()).unwrap()
        else {
            panic!("not setContact");
        };
        let mut list = ContactList::empty("alice@example.com");
        list.delta_num = 2;
        list.upsert_group(ContactGroup {
            id: 101,
            name: "Buddies".into(),
        });
        list.upsert_contact(Contact {
            uri,
            name,
            groups,
            subscribed,
        });
        assert_eq!(
            render_contact_list(&list),
            r#"<contactList deltaNum="2"><group id="101" name="Buddies" externals=""/><contact uri="bob@example.com" name="sip:bob@example.com" groups="101" subscribed="true" externals=""/></contactList>"#
        );
    }

    #[test]
    fn renders_capture_49_exactly() {
        assert_eq!(render_add_group_response(101), CAPTURE_49_ADD_GROUP_200);
    }

    #[test]
    fn add_group_response_reads_as_sipe_reads_it() {
        // SIPE strips prefixes and looks up Body/addGroup/groupID.
        let root = parse_tree(render_add_group_response(4_000_000_000).as_bytes()).unwrap();
        assert_eq!(root.name, "Envelope");
        let id = root
            .child("Body")
            .and_then(|b| b.child("addGroup"))
            .and_then(|a| a.text_of("groupID"));
        assert_eq!(id, Some("4000000000"));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u32 = 0x9e37_79b9;
        for doc in [
            CAPTURE_48_ADD_GROUP,
            CAPTURE_51_SET_CONTACT,
            CAPTURE_49_ADD_GROUP_200,
        ] {
            let bytes = doc.as_bytes();
            for cut in 0..bytes.len() {
                let _ = parse_soap(&bytes[..cut]);
            }
            for _ in 0..500 {
                let mut v = bytes.to_vec();
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let i = (seed as usize) % v.len();
                v[i] = (seed >> 16) as u8;
                let _ = parse_soap(&v);
            }
        }
    }
}
