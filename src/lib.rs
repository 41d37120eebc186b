//! Herald: cataloged business events, stored durably and delivered to subscribers.
//!
//! The path of one event: [`ingest`] (HTTP) → [`catalog`] validation → [`store`] (one durable
//! transaction with its deliveries) → [`dispatch`] (leases, retries, dead letters) →
//! [`destinations`] (webhooks) in a [`formats`] message format.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
mod demo;
pub mod destinations;
pub mod dispatch;
pub mod formats;
pub mod ids;
pub mod ingest;
pub mod server;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
