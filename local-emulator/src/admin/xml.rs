//! Just enough XML for the Atom administration API: a small element tree read with
//! `quick-xml` (local names, attributes, text), and escaping for what is written. Element
//! order and namespaces of what the SDKs send vary; they are read by local name.

use quick_xml::events::Event;
use quick_xml::Reader;

/// An element: its local name, attributes (by local name), text and children.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Element {
    /// Local name (without a namespace prefix).
    pub name: String,
    /// Attributes by local name (`i:type` is `type`).
    pub attrs: Vec<(String, String)>,
    /// The text directly inside it.
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Element>,
}

/// XML that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the request body is not well-formed XML: {0}")]
pub struct XmlError(String);

/// How deep a request's elements may nest.
const MAX_DEPTH: usize = 32;

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    s.rsplit(':').next().unwrap_or_default().to_owned()
}

/// Reads a document into its root element.
pub fn parse(xml: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    let mut buf = Vec::new();
    let open = |e: &quick_xml::events::BytesStart<'_>| -> Result<Element, XmlError> {
        let mut el = Element {
            name: local(e.name().as_ref()),
            ..Element::default()
        };
        for a in e.attributes() {
            let a = a.map_err(|err| XmlError(err.to_string()))?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| XmlError(err.to_string()))?;
            el.attrs.push((local(a.key.as_ref()), value.into_owned()));
        }
        Ok(el)
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError(e.to_string()))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError("elements nest too deeply".into()));
                }
                stack.push(open(&e)?);
            }
            Event::Empty(e) => {
                let el = open(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    let text = t.decode().map_err(|e| XmlError(e.to_string()))?;
                    let text =
                        quick_xml::escape::unescape(&text).map_err(|e| XmlError(e.to_string()))?;
                    el.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(el) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&r);
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity)
                        .map_err(|e| XmlError(e.to_string()))?;
                    el.text.push_str(&text);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(XmlError("the document ends inside an element".into()));
    }
    root.ok_or_else(|| XmlError("the document has no element".into()))
}

impl Element {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first element along a path of child names.
    pub fn find(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// The text of a child, if it is there.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// An attribute by local name.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Text escaped for XML content and attribute values.
pub fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_described_entry_reads_by_local_name_with_escapes_and_attributes() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/xml">
<ns0:RuleDescription xmlns:ns0="http://schemas.microsoft.com/netservices/2010/10/servicebus/connect" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
<ns0:Filter i:type="SqlFilter"><ns0:SqlExpression>Total &gt; 100 AND a = 'x&amp;y'</ns0:SqlExpression></ns0:Filter>
<ns0:Action i:type="EmptyRuleAction"/></ns0:RuleDescription></content></entry>"#;
        let root = parse(xml).expect("parses");
        let filter = root
            .find(&["content", "RuleDescription", "Filter"])
            .expect("filter");
        assert_eq!(filter.attr("type"), Some("SqlFilter"));
        assert_eq!(
            filter.text_of("SqlExpression"),
            Some("Total > 100 AND a = 'x&y'")
        );
        let action = root
            .find(&["content", "RuleDescription", "Action"])
            .expect("action");
        assert_eq!(action.attr("type"), Some("EmptyRuleAction"));
    }

    #[test]
    fn broken_or_too_deep_xml_is_an_error() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"").is_err());
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
