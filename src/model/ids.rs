//! Typed, prefixed identifiers for Herald's records (`evt_…`, `dlv_…`, `ep_…`, `sub_…`).
//!
//! Every id is a UUIDv7 (time-ordered, so indexes stay compact and ids sort by creation)
//! rendered with a short prefix saying what it names, as svix does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A typed id: its text form starts with its kind's prefix.
pub trait PrefixedId: FromStr + fmt::Display {
    /// What it names, in messages (`endpoint`, `delivery`…).
    const KIND: &'static str;
}

/// An id string did not have the expected prefix or did not hold a UUID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}` followed by a UUID)")]
pub struct IdParseError {
    kind: &'static str,
    prefix: &'static str,
    value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix this id kind is written with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The UUID inside.
            pub fn uuid(&self) -> Uuid {
                self.0
            }

            /// Wraps an existing UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// When the id was made, in unix milliseconds (ids are UUIDv7, whose first 48
            /// bits are that time); `None` for an id of another UUID version.
            pub fn unix_millis(&self) -> Option<i64> {
                (self.0.get_version_num() == 7)
                    .then(|| (self.0.as_u128() >> 80) as i64)
            }

            /// The smallest id made at `unix_millis`, as stored: every id made earlier sorts
            /// before it, as text too (the hex digits of a UUIDv7 start with its time).
            pub fn first_at(unix_millis: i64) -> Self {
                let ms = (unix_millis.max(0) as u128) & ((1 << 48) - 1);
                Self(Uuid::from_u128((ms << 80) | (0x7 << 76) | (0b10 << 62)))
            }
        }

        impl PrefixedId for $name {
            const KIND: &'static str = $kind;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Exactly the form `Display` writes: the prefix and 32 lower-case hex digits.
                s.strip_prefix($prefix)
                    .filter(|rest| rest.len() == 32 && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .and_then(|rest| Uuid::parse_str(rest).ok())
                    .map(Self)
                    .ok_or_else(|| IdParseError { kind: $kind, prefix: $prefix, value: s.to_owned() })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, " id: `", $prefix, "` followed by 32 hex digits.")))
                    .pattern(Some(concat!("^", $prefix, "[0-9a-f]{32}$")))
                    .examples([concat!($prefix, "0193a1b2c3d47e8f9a0b1c2d3e4f5a6b")])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// One occurrence of a cataloged event.
    EventId, "evt_", "event"
);
prefixed_id!(
    /// One event × subscription: the unit the dispatcher sends and retries.
    /// Stable across retries, so receivers can drop duplicates by it.
    DeliveryId, "msg_", "delivery"
);
prefixed_id!(
    /// A destination that deliveries are sent to.
    EndpointId, "ep_", "endpoint"
);
prefixed_id!(
    /// A subscription: an event or category routed to an endpoint.
    SubscriptionId, "sub_", "subscription"
);
prefixed_id!(
    /// One of an endpoint's signing secrets.
    SecretId, "whs_", "secret"
);

/// The low bits of an event id that number its deliveries (see [`DeliveryId::of`]).
const DELIVERY_BITS: u128 = 0xffff;

impl EventId {
    /// A new event id whose deliveries' ids are made from it ([`DeliveryId::of`]): a UUIDv7
    /// whose last 16 random bits are zero (58 random bits remain per millisecond).
    pub fn routable() -> Self {
        Self(Uuid::from_u128(Uuid::now_v7().as_u128() & !DELIVERY_BITS))
    }
}

impl DeliveryId {
    /// The id of the `n`th delivery (from 1) of the event `event` (made by
    /// [`EventId::routable`]): the event's id with `n` in its last 16 bits. A delivery kept in
    /// its event's row is found by id this way, through the event's primary key.
    pub fn of(event: EventId, n: u16) -> Self {
        Self(Uuid::from_u128(
            (event.0.as_u128() & !DELIVERY_BITS) | u128::from(n),
        ))
    }

    /// The event and number this id would be made of by [`DeliveryId::of`] (for any id with
    /// non-zero last bits; whether such an event exists is for the store to say).
    pub fn route(&self) -> Option<(EventId, u16)> {
        let n = (self.0.as_u128() & DELIVERY_BITS) as u16;
        (n != 0).then(|| {
            (
                EventId(Uuid::from_u128(self.0.as_u128() & !DELIVERY_BITS)),
                n,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_names_its_event_and_number() {
        let event = EventId::routable();
        let id = DeliveryId::of(event, 3);
        assert_eq!(id.route(), Some((event, 3)));
        assert!(id.to_string() > event.to_string().replace("evt_", "msg_"));
        assert_eq!(id.unix_millis(), event.unix_millis());
        assert!(DeliveryId::of(event, 2) < id);
    }

    #[test]
    fn an_id_knows_when_it_was_made_and_sorts_after_the_first_id_of_that_time() {
        let before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let id = EventId::new();
        let made = id.unix_millis().expect("a UUIDv7");
        assert!((made - before as i64).abs() < 5_000);
        let first = EventId::first_at(made);
        assert_eq!(first.unix_millis(), Some(made));
        assert!(first.to_string() <= id.to_string());
        assert!(EventId::first_at(made + 1).to_string() > id.to_string());
        assert!(EventId::first_at(made - 1).to_string() < id.to_string());
    }

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = DeliveryId::new();
        let text = id.to_string();
        assert!(text.starts_with("msg_"));
        assert_eq!(text.parse::<DeliveryId>().unwrap(), id);
    }

    #[test]
    fn only_the_written_form_of_an_id_is_read_back() {
        let uuid = Uuid::from_u128(0x0193_a1b2_c3d4_7e8f_9a0b_1c2d_3e4f_5a6b);
        let text = EventId::from_uuid(uuid).to_string();
        assert!(text
            .to_uppercase()
            .replace("EVT_", "evt_")
            .parse::<EventId>()
            .is_err());
        assert!(format!("evt_{}", uuid.hyphenated())
            .parse::<EventId>()
            .is_err());
        assert!(format!("evt_{}", uuid.simple()).parse::<EventId>().is_ok());
    }

    #[test]
    fn an_id_with_another_prefix_is_refused() {
        let text = EventId::new().to_string();
        let err = text.parse::<DeliveryId>().unwrap_err();
        assert!(err.to_string().contains("delivery id"));
    }
}
