//! Event Hubs readers per consumer group and partition, with their epochs (owner levels): a
//! reader with an epoch takes the partition from readers with a lower one or none, which lose
//! their links; a reader whose epoch is lower than the owner's is refused.

use super::{Broker, BrokerError};
use std::collections::HashMap;

/// A partition of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionKey {
    hub: String,
    group: String,
    partition: usize,
}

/// Open readers and the ones that lost their partition.
#[derive(Debug, Default)]
pub(super) struct Readers {
    open: HashMap<PartitionKey, Vec<(u64, Option<i64>)>>,
    stolen: HashMap<u64, String>,
}

impl Broker {
    /// Registers reader `owner` on a partition of a consumer group, with an optional epoch.
    pub fn open_reader(
        &mut self,
        hub: &str,
        group: &str,
        partition: usize,
        owner: u64,
        epoch: Option<i64>,
    ) -> Result<(), BrokerError> {
        let key = PartitionKey {
            hub: hub.to_owned(),
            group: group.to_owned(),
            partition,
        };
        let readers = self.readers.open.entry(key).or_default();
        let top = readers.iter().filter_map(|(_, e)| *e).max();
        match (epoch, top) {
            (Some(e), Some(t)) if e < t => {
                return Err(BrokerError::LinkStolen(format!(
                    "a receiver with a higher epoch of '{t}' already exists for partition {partition} of consumer group '{group}'; the epoch '{e}' is refused"
                )))
            }
            (None, Some(t)) => {
                return Err(BrokerError::LinkStolen(format!(
                    "a receiver with epoch '{t}' exists for partition {partition} of consumer group '{group}', so receivers without an epoch are not allowed"
                )))
            }
            (Some(e), _) => {
                let why = format!(
                    "a new receiver with a higher epoch of '{e}' took partition {partition} of consumer group '{group}'; this receiver is disconnected"
                );
                for (o, _) in readers.drain(..) {
                    self.readers.stolen.insert(o, why.clone());
                }
            }
            (None, None) => {}
        }
        readers.push((owner, epoch));
        Ok(())
    }

    /// Forgets reader `owner` (its link is gone).
    pub fn close_reader(&mut self, owner: u64) {
        self.readers.stolen.remove(&owner);
        for readers in self.readers.open.values_mut() {
            readers.retain(|(o, _)| *o != owner);
        }
        self.readers.open.retain(|_, r| !r.is_empty());
    }

    /// Why reader `owner` lost its partition, once.
    pub fn take_stolen(&mut self, owner: u64) -> Option<String> {
        self.readers.stolen.remove(&owner)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Topology;
    use super::*;

    #[test]
    fn a_higher_epoch_takes_the_partition_and_a_lower_one_is_refused() {
        let mut b = Broker::new(&Topology::builtin(), 0);
        b.open_reader("eh1", "$default", 0, 1, None).expect("plain");
        b.open_reader("eh1", "$default", 0, 2, None).expect("plain");
        b.open_reader("eh1", "$default", 0, 3, Some(5))
            .expect("epoch");
        assert!(b.take_stolen(1).is_some() && b.take_stolen(2).is_some());
        assert!(b.take_stolen(3).is_none());
        assert!(b.open_reader("eh1", "$default", 0, 4, Some(4)).is_err());
        assert!(b.open_reader("eh1", "$default", 0, 5, None).is_err());
        assert!(
            b.open_reader("eh1", "$default", 1, 6, None).is_ok(),
            "another partition"
        );
        b.open_reader("eh1", "$default", 0, 7, Some(5))
            .expect("equal epoch takes over");
        assert!(b.take_stolen(3).is_some());
        b.close_reader(7);
        b.open_reader("eh1", "$default", 0, 8, None)
            .expect("owner gone");
    }
}
