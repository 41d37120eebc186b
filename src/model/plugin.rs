//! Plug-ins as the store keeps them: named components of the WIT world
//! `herald:plugin@1.0.0`, each push a new numbered version of the name.

use serde::Serialize;
use time::OffsetDateTime;

/// One pushed version of a plug-in, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginVersion {
    /// The plug-in's name (unique).
    pub name: String,
    /// The version, from 1 and one more at every push of different bytes.
    pub version: u32,
    /// The solution it belongs to: the events it may emit are this solution's.
    pub solution: String,
    /// What it does.
    pub description: String,
    /// SHA-256 of its bytes, hex.
    pub hash: String,
    /// Size of its bytes.
    pub size: u64,
    /// The interfaces it exports.
    pub exports: Vec<String>,
    /// When it was pushed.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewPluginVersion {
    /// The plug-in's name.
    pub name: String,
    /// Its solution.
    pub solution: String,
    /// What it does.
    pub description: String,
    /// SHA-256 of `bytes`, hex.
    pub hash: String,
    /// The interfaces it exports.
    pub exports: Vec<String>,
    /// The component.
    pub bytes: Vec<u8>,
    /// When it is pushed.
    pub created_at: OffsetDateTime,
}
