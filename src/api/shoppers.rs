//! Where the read API finds a shopper: their committed state in the local store, on
//! the partition the key hashes to, with that partition's stream time (the instant the
//! profile's decayed scores are read at).
//!
//! Live, a partition's rows are only answered for while this instance owns the
//! partition and has restored it ([`ServedPartitions`]); otherwise the rows may be stale
//! or half-restored, and the request is answered elsewhere.

use super::ApiError;
use crate::engine::partitioner::partition_for;
use crate::engine::task_meta::stream_time_key;
use crate::engine::Side;
use crate::state::{ShopperState, VersionedState};
use crate::store::{keys, Family, Store, META_CUSTOMER_PARTITIONS};
use crate::time::Millis;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The `meta` key of `replay`'s single stream time.
const META_SHARED_STREAM_TIME: &str = "stream_time";

/// A shopper as the API reads them.
#[derive(Debug, Clone)]
pub struct ShopperView {
    /// The key whose state this is: the customer id after a sign-in was followed.
    pub key: String,
    pub state: ShopperState,
    /// Stream time of the shopper's partition.
    pub now: Millis,
}

/// What this instance does with a customer partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PartitionStatus {
    NotHere = 0,
    Restoring = 1,
    Serving = 2,
}

/// Per customer partition, whether this instance serves it. Written by the stream
/// thread on assignment, restore and revocation; read by HTTP handlers without a lock.
#[derive(Debug)]
pub struct ServedPartitions {
    status: Vec<AtomicU8>,
}

impl ServedPartitions {
    pub fn new(partitions: u16) -> ServedPartitions {
        ServedPartitions {
            status: (0..partitions).map(|_| AtomicU8::new(0)).collect(),
        }
    }

    pub fn set(&self, partition: u16, status: PartitionStatus) {
        if let Some(slot) = self.status.get(usize::from(partition)) {
            slot.store(status as u8, Ordering::Release);
        }
    }

    pub fn get(&self, partition: u16) -> PartitionStatus {
        match self
            .status
            .get(usize::from(partition))
            .map(|s| s.load(Ordering::Acquire))
        {
            Some(2) => PartitionStatus::Serving,
            Some(1) => PartitionStatus::Restoring,
            _ => PartitionStatus::NotHere,
        }
    }

    pub fn partitions(&self) -> u16 {
        self.status.len() as u16
    }
}

/// Reads shoppers from a store.
pub struct StoreShoppers {
    store: Arc<Store>,
    partitions: u16,
    /// Live: which partitions this instance serves. `None` (a stopped processor's or a
    /// replay's directory): every partition is here.
    served: Option<Arc<ServedPartitions>>,
}

impl StoreShoppers {
    pub fn new(store: Arc<Store>, partitions: u16, served: Option<Arc<ServedPartitions>>) -> Self {
        StoreShoppers {
            store,
            partitions: partitions.max(1),
            served,
        }
    }

    /// A stopped processor's or a replay's state directory, with the partition count
    /// its driver recorded.
    pub fn from_directory(store: Arc<Store>) -> Result<StoreShoppers, ApiError> {
        let partitions = store
            .read_meta(META_CUSTOMER_PARTITIONS)
            .map_err(ApiError::store)?
            .ok_or_else(|| {
                ApiError::Unavailable(format!(
                    "{} holds no processor state (no `{META_CUSTOMER_PARTITIONS}` entry): \
                     is it the state directory of `run` or `replay --state-dir`?",
                    store.path().display()
                ))
            })?;
        let partitions = u16::try_from(partitions).unwrap_or(u16::MAX);
        Ok(StoreShoppers::new(store, partitions, None))
    }

    pub fn partition_of(&self, key: &str) -> u16 {
        partition_for(key.as_bytes(), self.partitions)
    }

    /// The shopper keyed `key`, following a sign-in to the customer it merged into.
    /// `Ok(None)`: nothing is known about the key (or it was erased).
    pub fn shopper(&self, key: &str) -> Result<Option<ShopperView>, ApiError> {
        let Some(view) = self.read(key)? else {
            return Ok(None);
        };
        match view.state.merged_into.clone() {
            Some(customer) if customer != key => self.read(&customer),
            _ => Ok(Some(view)),
        }
    }

    fn read(&self, key: &str) -> Result<Option<ShopperView>, ApiError> {
        let partition = self.partition_of(key);
        if let Some(served) = &self.served {
            match served.get(partition) {
                PartitionStatus::Serving => {}
                PartitionStatus::Restoring => {
                    return Err(ApiError::Unavailable(format!(
                        "partition {partition}, which holds this shopper, is being restored \
                         on this instance; retry shortly"
                    )))
                }
                PartitionStatus::NotHere => {
                    return Err(ApiError::NotHere {
                        partition,
                        key: key.to_string(),
                    })
                }
            }
        }
        let bytes = self
            .store
            .get(Family::Shoppers, &keys::entity_key(partition, key))
            .map_err(ApiError::store)?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let state = ShopperState::decode(&bytes).map_err(|e| {
            ApiError::Internal(format!(
                "stored state of shopper `{key}` does not load: {e}"
            ))
        })?;
        Ok(Some(ShopperView {
            key: key.to_string(),
            state,
            now: self.stream_time(partition)?,
        }))
    }

    fn stream_time(&self, partition: u16) -> Result<Millis, ApiError> {
        let task = self
            .store
            .read_meta(&stream_time_key(Side::Customer, partition))
            .map_err(ApiError::store)?;
        let time = match task {
            Some(t) => Some(t),
            None => self
                .store
                .read_meta(META_SHARED_STREAM_TIME)
                .map_err(ApiError::store)?,
        };
        Ok(time.unwrap_or(0))
    }
}
