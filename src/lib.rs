//! Herald: cataloged business events, stored durably and delivered to subscribers.
#![deny(missing_docs)]

pub mod catalog;
pub mod ids;
