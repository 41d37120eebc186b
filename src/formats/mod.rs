//! Message formats: how an event is written for a destination.

pub mod cloudevents;
pub mod dataverse;
pub mod row;
