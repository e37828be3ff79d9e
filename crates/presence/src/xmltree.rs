//! A small owned XML tree on top of quick-xml, for the bounded documents Lync
//! clients send (MS-PRES category publications and batched subscriptions, SOAP
//! contact-list edits): elements by local name (prefixes ignored, as the clients'
//! own readers do), attributes, children and text. Size, depth and element
//! counts are bounded; DOCTYPE and unknown entities are refused. Also the
//! escaping the renderers of those documents share.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// Bounds on a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted (the root is depth 1).
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document exceeds [`Limits::max_bytes`].
    #[error("document too large: {size} bytes (limit {limit})")]
    TooLarge {
        /// Size of the rejected document.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not UTF-8.
    #[error("document is not valid UTF-8")]
    NotUtf8,
    /// Elements are nested deeper than [`Limits::max_depth`].
    #[error("nested deeper than {0}")]
    TooDeep(usize),
    /// The document has more than [`Limits::max_elements`] elements.
    #[error("more than {0} elements")]
    TooManyElements(usize),
    /// The document has no root element.
    #[error("empty document")]
    Empty,
    /// Not well-formed XML, or a refused construct (DOCTYPE, unknown entity,
    /// content outside the root element); the reason is the message.
    #[error("{0}")]
    Malformed(String),
}

/// Whether XML 1.0 can carry `c`.
pub const fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Appends `s` escaped with [`quick_xml::escape::escape`] after dropping
/// characters XML cannot carry; CR (and in attributes TAB/LF) become
/// character references so they survive end-of-line/attribute normalisation.
pub fn push_escaped(out: &mut String, s: &str, attribute: bool) {
    let filtered: String = s.chars().filter(|c| is_xml_char(*c)).collect();
    for c in quick_xml::escape::escape(filtered.as_str()).chars() {
        match c {
            '\r' => out.push_str("&#xD;"),
            '\n' if attribute => out.push_str("&#xA;"),
            '\t' if attribute => out.push_str("&#x9;"),
            c => out.push(c),
        }
    }
}

/// Trims XML whitespace (space, tab, CR, LF) from both ends.
pub fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

/// One element of a parsed document: local name, attributes by local name
/// (namespace declarations left out), element children and direct text.
#[derive(Debug, Default)]
pub struct Node {
    /// Local name (prefix removed).
    pub name: String,
    /// Attributes in document order: (local name, normalised value).
    pub attrs: Vec<(String, String)>,
    /// Element children in document order.
    pub children: Vec<Node>,
    /// Direct text (text, CDATA and references), untrimmed.
    pub text: String,
}

impl Node {
    /// Value of the attribute with local name `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First child element with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Child elements with local name `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local_name<'a>(start: &'a BytesStart<'_>) -> &'a str {
    let name = start.name().into_inner();
    match name.rfind(':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn new_node(start: &BytesStart<'_>) -> Result<Node, XmlError> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(malformed)?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(malformed)?;
        attrs.push((
            attr.key.local_name().into_inner().to_owned(),
            value.into_owned(),
        ));
    }
    Ok(Node {
        name: local_name(start).to_owned(),
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parses `body` into a tree, enforcing the size, depth and element limits.
pub fn parse_tree(body: &[u8], limits: &Limits) -> Result<Node, XmlError> {
    if body.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            size: body.len(),
            limit: limits.max_bytes,
        });
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;

    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::TooManyElements(limits.max_elements));
                }
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep(limits.max_depth));
                }
                let node = new_node(start)?;
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    close(&mut stack, &mut root, node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unmatched end tag"))?;
                close(&mut stack, &mut root, node);
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    node.text.push_str(&t.xml10_content());
                } else if !trim_xml(&t.xml10_content()).is_empty() {
                    return Err(malformed("text outside the root element"));
                }
            }
            Event::CData(t) => {
                let node = stack
                    .last_mut()
                    .ok_or_else(|| malformed("character data outside the root element"))?;
                node.text.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) => {
                let node = stack
                    .last_mut()
                    .ok_or_else(|| malformed("reference outside the root element"))?;
                match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => node.text.push(c),
                    None => {
                        let name = r.xml10_content();
                        let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?;
                        node.text.push_str(resolved);
                    }
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
    root.ok_or(XmlError::Empty)
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_bytes: 1024,
        max_depth: 4,
        max_elements: 10,
    };

    #[test]
    fn local_names_attributes_and_text() {
        let doc = br#"<?xml version="1.0"?><s:a xmlns:s="urn:x" k="v &amp; w"><s:b>one &lt;2&gt; &#x41;</s:b><c/><b><![CDATA[x<y]]></b></s:a>"#;
        let root = parse_tree(doc, &L).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("k"), Some("v & w"));
        assert_eq!(
            root.attr("xmlns:s"),
            None,
            "namespace declarations are left out"
        );
        assert_eq!(root.text_of("b"), Some("one <2> A"));
        assert_eq!(root.children_named("b").count(), 2);
        assert!(root.child("c").is_some());
    }

    #[test]
    fn limits_and_refusals() {
        let deep = b"<a><a><a><a><a/></a></a></a></a>";
        assert_eq!(parse_tree(deep, &L).unwrap_err(), XmlError::TooDeep(4));
        let many = format!("<a>{}</a>", "<b/>".repeat(10));
        assert_eq!(
            parse_tree(many.as_bytes(), &L).unwrap_err(),
            XmlError::TooManyElements(10)
        );
        let big = vec![b' '; 1025];
        assert!(matches!(
            parse_tree(&big, &L),
            Err(XmlError::TooLarge { size: 1025, .. })
        ));
        assert_eq!(parse_tree(b"", &L).unwrap_err(), XmlError::Empty);
        assert_eq!(parse_tree(b"\xff<a/>", &L).unwrap_err(), XmlError::NotUtf8);
        for bad in [
            &b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>"[..],
            b"<a>&e;</a>",
            b"<a></b>",
            b"<a/><b/>",
            b"text<a/>",
            b"<a>",
        ] {
            assert!(
                matches!(parse_tree(bad, &L), Err(XmlError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limits_are_inclusive() {
        // Exactly at each limit is accepted.
        let deep = b"<a><a><a><a/></a></a></a>";
        assert!(parse_tree(deep, &L).is_ok());
        let many = format!("<a>{}</a>", "<b/>".repeat(9));
        assert_eq!(
            parse_tree(many.as_bytes(), &L).map(|r| r.children.len()),
            Ok(9)
        );
        let mut big = b"<a>".to_vec();
        big.resize(1020, b' ');
        big.extend_from_slice(b"</a>");
        assert_eq!(big.len(), 1024);
        assert!(parse_tree(&big, &L).is_ok());
        // Per-call limits: the same document against tighter bounds.
        let tight = Limits {
            max_bytes: 1024,
            max_depth: 1,
            max_elements: 1,
        };
        assert_eq!(parse_tree(b"<a/>", &tight).map(|r| r.name), Ok("a".into()));
        assert_eq!(
            parse_tree(b"<a><b/></a>", &tight).err(),
            Some(XmlError::TooManyElements(1))
        );
        let tight = Limits {
            max_elements: 10,
            ..tight
        };
        assert_eq!(
            parse_tree(b"<a><b/></a>", &tight).err(),
            Some(XmlError::TooDeep(1))
        );
    }

    #[test]
    fn doctype_and_unknown_entities_are_refused() {
        let refused = |doc: &[u8]| match parse_tree(doc, &L) {
            Err(XmlError::Malformed(m)) => m,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(doc)),
        };
        assert_eq!(refused(b"<!DOCTYPE a><a/>"), "DOCTYPE is not allowed");
        assert_eq!(
            refused(b"<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>"),
            "DOCTYPE is not allowed"
        );
        assert_eq!(refused(b"<a>&nbsp;</a>"), "unknown entity &nbsp;");
        // The five predefined entities and character references are fine.
        let root = parse_tree(b"<a>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;</a>", &L);
        assert_eq!(root.map(|r| r.text), Ok("<>&'\"AB".into()));
    }

    #[test]
    fn prefixes_are_ignored_in_names() {
        let doc = br#"<p:root xmlns:p="urn:p" xmlns="urn:d" xmlns:xsi="urn:xsi" xsi:type="aggregateState" plain="1"><q:item xmlns:q="urn:q" q:id="7"/><item id="8"/><a:b:c/></p:root>"#;
        let root = parse_tree(doc, &L).unwrap();
        assert_eq!(root.name, "root");
        assert_eq!(
            root.attrs,
            vec![
                ("type".to_owned(), "aggregateState".to_owned()),
                ("plain".to_owned(), "1".to_owned()),
            ]
        );
        let ids: Vec<_> = root.children_named("item").map(|c| c.attr("id")).collect();
        assert_eq!(ids, [Some("7"), Some("8")]);
        assert_eq!(root.text_of("item"), Some(""));
        assert!(root.child("c").is_some(), "last segment after ':'");
        assert!(root.child("p:root").is_none());
    }

    #[test]
    fn text_and_attributes() {
        let doc = "\u{FEFF}<a k=\"x\ty\nz\" e=\"&#xA;&lt;\"><!-- c --><?pi x?> one <b>two</b> three<![CDATA[ & four ]]></a>\n";
        let root = parse_tree(doc.as_bytes(), &L).unwrap();
        // Attribute values are normalised; character references survive.
        assert_eq!(root.attr("k"), Some("x y z"));
        assert_eq!(root.attr("e"), Some("\n<"));
        assert_eq!(root.attr("missing"), None);
        // Direct text only, untrimmed; child text stays with the child.
        assert_eq!(root.text, " one  three & four ");
        assert_eq!(root.text_of("b"), Some("two"));
        assert_eq!(trim_xml(&root.text), "one  three & four");
        assert_eq!(root.text_of("none"), None);
        assert!(root.child("b").is_some_and(|b| b.children.is_empty()));
    }

    #[test]
    fn escaping() {
        let mut out = String::new();
        push_escaped(&mut out, "a<b>&\"'\r\n\t\u{1}", true);
        assert_eq!(out, "a&lt;b&gt;&amp;&quot;&apos;&#13;&#xA;&#x9;");
        let mut out = String::new();
        push_escaped(&mut out, "x\ny\t", false);
        assert_eq!(out, "x\ny\t");
        assert_eq!(trim_xml("\r\n x \t"), "x");
    }
}
