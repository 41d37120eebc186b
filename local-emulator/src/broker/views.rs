//! Read-only views of broker state: event hub and partition information for management,
//! positions and reads for event hub receivers, and the entity overview for the side port.

use super::eventhub::{Event, Position};
use super::{Broker, StoreKey};
use serde::Serialize;

/// A row of the entity overview.
#[derive(Debug, Clone, Serialize)]
pub struct EntityCount {
    /// Entity path.
    pub path: String,
    /// `queue`, `subscription`, `deadletter`, `topic`, `partition`.
    pub kind: &'static str,
    /// Messages or events held.
    pub count: usize,
}

/// Event hub runtime information.
#[derive(Debug, Clone)]
pub struct HubInfo {
    /// Hub name.
    pub name: String,
    /// Creation time (unix ms).
    pub created_ms: i64,
    /// Partition count.
    pub partitions: usize,
}

/// Partition runtime information.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    /// First sequence number kept.
    pub begin_seq: i64,
    /// Last sequence number, -1 when empty.
    pub last_seq: i64,
    /// Last offset, -1 when empty.
    pub last_offset: i64,
    /// Last enqueue time (unix ms).
    pub last_enqueued_ms: i64,
    /// Whether the partition is empty.
    pub empty: bool,
}

impl Broker {
    /// Hub information.
    pub fn hub_info(&self, hub: &str) -> Option<HubInfo> {
        let h = self.hubs.get(&hub.to_ascii_lowercase())?;
        Some(HubInfo {
            name: h.name.clone(),
            created_ms: h.created_ms,
            partitions: h.partitions.len(),
        })
    }

    /// Partition information.
    pub fn partition_info(&self, hub: &str, p: usize) -> Option<PartitionInfo> {
        let part = self
            .hubs
            .get(&hub.to_ascii_lowercase())?
            .partitions
            .get(p)?;
        let last = part.events.last();
        Some(PartitionInfo {
            begin_seq: part.events.first().map_or(0, |e| e.seq),
            last_seq: last.map_or(-1, |e| e.seq),
            last_offset: last.map_or(-1, |e| e.offset),
            last_enqueued_ms: last.map_or(0, |e| e.enqueued_ms),
            empty: last.is_none(),
        })
    }

    /// Index where a reader starting at `pos` begins.
    pub fn hub_index(&self, hub: &str, p: usize, pos: Position) -> usize {
        self.hubs
            .get(hub)
            .and_then(|h| h.partitions.get(p))
            .map_or(0, |x| x.index_of(pos))
    }

    /// Up to `max` events from index `from`.
    pub fn hub_read(&self, hub: &str, p: usize, from: usize, max: usize) -> Vec<Event> {
        self.hubs
            .get(hub)
            .and_then(|h| h.partitions.get(p))
            .map(|x| x.events.iter().skip(from).take(max).cloned().collect())
            .unwrap_or_default()
    }

    /// Every entity with its message count.
    pub fn overview(&self) -> Vec<EntityCount> {
        let name = |n: &String| self.names.get(n).cloned().unwrap_or_else(|| n.clone());
        let mut out: Vec<EntityCount> = self
            .stores
            .iter()
            .map(|(k, st)| {
                let (path, kind) = match k {
                    StoreKey::Queue(q) => (name(q), "queue"),
                    StoreKey::QueueDlq(q) => {
                        (format!("{}/$DeadLetterQueue", name(q)), "deadletter")
                    }
                    StoreKey::Sub(t, s) => {
                        (format!("{}/Subscriptions/{s}", name(t)), "subscription")
                    }
                    StoreKey::SubDlq(t, s) => (
                        format!("{}/Subscriptions/{s}/$DeadLetterQueue", name(t)),
                        "deadletter",
                    ),
                };
                EntityCount {
                    path,
                    kind,
                    count: st.len(),
                }
            })
            .collect();
        for t in self.topics.keys() {
            out.push(EntityCount {
                path: name(t),
                kind: "topic",
                count: 0,
            });
        }
        for h in self.hubs.values() {
            for (i, p) in h.partitions.iter().enumerate() {
                out.push(EntityCount {
                    path: format!("{}/Partitions/{i}", h.name),
                    kind: "partition",
                    count: p.events.len(),
                });
            }
        }
        out
    }
}
