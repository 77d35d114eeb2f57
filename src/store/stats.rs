//! What RocksDB reports about the store, for the metrics.

use super::{Family, Store};

/// What RocksDB reports about one column family, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyStats {
    pub family: Family,
    /// RocksDB's estimate.
    pub keys: u64,
    pub sst_bytes: u64,
    pub pending_compaction_bytes: u64,
    pub memtable_bytes: u64,
}

/// What RocksDB reports about the whole store, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub families: Vec<FamilyStats>,
    pub block_cache_usage_bytes: u64,
    pub block_cache_capacity_bytes: u64,
}

impl Store {
    /// Sizes and counts RocksDB keeps track of; cheap enough to read every second.
    pub fn stats(&self) -> StoreStats {
        let property = |family: Family, name: &str| -> u64 {
            self.db
                .property_int_value_cf(self.cf(family), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        StoreStats {
            families: Family::ALL
                .iter()
                .map(|&family| FamilyStats {
                    family,
                    keys: property(family, "rocksdb.estimate-num-keys"),
                    sst_bytes: property(family, "rocksdb.total-sst-files-size"),
                    pending_compaction_bytes: property(
                        family,
                        "rocksdb.estimate-pending-compaction-bytes",
                    ),
                    memtable_bytes: property(family, "rocksdb.cur-size-all-mem-tables"),
                })
                .collect(),
            block_cache_usage_bytes: self.block_cache.get_usage() as u64,
            block_cache_capacity_bytes: self.block_cache_capacity,
        }
    }
}
