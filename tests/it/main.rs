//! Herald's end-to-end tests: real sockets, real SQLite, real HTTP, and the Python
//! `standardwebhooks` verifier for interoperability.

mod architecture;
mod authorization;
mod azure;
mod catalog;
mod cluster;
mod console;
mod crash;
mod dataverse;
mod demo;
mod dispatch;
mod docs;
mod edge;
mod flows;
mod fuzzing;
mod health;
mod infra;
mod ingest;
mod ops;
mod pipeline;
mod plugins;
mod resilience;
mod retention;
mod secrets_at_rest;
mod security;
mod sources;
mod store_console;
mod store_contract;
mod store_retention;
mod support;
mod traces;
mod validation;
mod webhooks;
