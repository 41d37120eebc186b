//! Herald: cataloged business events, stored durably and delivered to subscribers.
//!
//! The path of one event: [`api`] (HTTP) → [`ingest`] ([`catalog`] validation, synchronous
//! steps) → [`store`] (one durable transaction with its deliveries) → [`dispatch`] (leases,
//! retries, dead letters) → [`destinations`] (webhooks, Service Bus, Event Hubs) in a
//! [`formats`] message format. [`model`] is the data they all share; [`registry`] owns the
//! rules for endpoints and subscriptions.
#![deny(missing_docs)]

pub mod activity;
pub mod api;
pub mod auth;
pub mod catalog;
pub mod cli;
pub mod config;
mod demo;
pub mod destinations;
pub mod dispatch;
pub mod formats;
pub mod fuzzing;
pub mod ingest;
pub mod model;
pub mod plugins;
pub mod registry;
pub mod server;
pub mod sources;
pub mod store;
pub mod telemetry;
