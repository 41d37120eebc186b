//! An event's unique name as a type: what the catalog defines, what an event carries, what a
//! subscription names. Text from a caller becomes one only through [`EventName::parse`], so a
//! name that travels has the catalog's form: an ASCII letter, then ASCII letters, digits and
//! `_`, at most 128 characters (as Dataverse's unique names).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most characters an event name has.
pub const MAX_EVENT_NAME: usize = 128;

/// A cataloged event's unique name (`contoso_CustomerPurchase`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventName(String);

/// Why text is not an event name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an event name: an ASCII letter, then ASCII letters, digits and `_`, at most 128 characters")]
pub struct EventNameError(pub String);

impl EventName {
    /// `text` as an event name, if it has the form of one.
    pub fn parse(text: &str) -> Result<Self, EventNameError> {
        let mut chars = text.chars();
        let formed = text.len() <= MAX_EVENT_NAME
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if formed {
            Ok(EventName(text.to_owned()))
        } else {
            Err(EventNameError(text.to_owned()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EventName {
    type Err = EventNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventName::parse(s)
    }
}

impl Deref for EventName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EventName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for EventName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for EventName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for EventName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<EventName> for String {
    fn from(name: EventName) -> String {
        name.0
    }
}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        EventName::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A cataloged event's unique name: the solution's publisher prefix, `_`, then letters and digits."))
            .pattern(Some("^[A-Za-z][A-Za-z0-9_]{0,127}$"))
            .examples(["contoso_CustomerPurchase"])
            .into()
    }
}

impl utoipa::ToSchema for EventName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_name_has_the_catalog_form_and_nothing_else_is_one() {
        for good in [
            "contoso_CustomerPurchase",
            "herald_EndpointFailing",
            "a",
            "A_1",
        ] {
            assert_eq!(EventName::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(MAX_EVENT_NAME + 1);
        for bad in ["", "1abc", "_x", "a-b", "a b", "é", long.as_str(), "a\n"] {
            assert!(EventName::parse(bad).is_err(), "{bad:?}");
        }
        let parsed: EventName = serde_json::from_str("\"contoso_X\"").unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"contoso_X\"");
        assert!(serde_json::from_str::<EventName>("\"no way\"").is_err());
    }
}
