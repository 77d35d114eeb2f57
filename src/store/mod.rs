//! Local state in RocksDB: one database per process, a column family per store, memory
//! bounded by one block cache and one write-buffer manager shared by all of them.
//!
//! The store only moves bytes. What the bytes mean is decided by `keys.rs` (layout of
//! keys) and `crate::state` (versioned values); the engine's write-back cache decides
//! when they are written: one [`StateChange`] list per commit, applied as one WriteBatch.

pub mod keys;
pub mod recent_ids;
mod stats;

pub use stats::{FamilyStats, StoreStats};

use crate::config::StateConfig;
use crate::time::Millis;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, Direction, IteratorMode, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteBufferManager, WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The column families. Each processor has its own state, timers and dedupe sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Shoppers,
    ShopperTimers,
    ShopperDedupe,
    Products,
    ProductTimers,
    ProductDedupe,
    Meta,
    /// The product table: the latest `product` record per SKU (a global table live).
    ProductTable,
    /// A SKU's waiting back-in-stock requests, stored apart from its state.
    ProductRequests,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::Shoppers,
        Family::ShopperTimers,
        Family::ShopperDedupe,
        Family::Products,
        Family::ProductTimers,
        Family::ProductDedupe,
        Family::Meta,
        Family::ProductTable,
        Family::ProductRequests,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Shoppers => "shoppers",
            Family::ShopperTimers => "shopper_timers",
            Family::ShopperDedupe => "shopper_dedupe",
            Family::Products => "products",
            Family::ProductTimers => "product_timers",
            Family::ProductDedupe => "product_dedupe",
            Family::Meta => "meta",
            Family::ProductTable => "product_table",
            Family::ProductRequests => "product_requests",
        }
    }

    /// A stable one-byte code, used where family and key travel together (changelogs).
    pub fn code(self) -> u8 {
        match self {
            Family::Shoppers => 1,
            Family::ShopperTimers => 2,
            Family::ShopperDedupe => 3,
            Family::Products => 4,
            Family::ProductTimers => 5,
            Family::ProductDedupe => 6,
            Family::Meta => 7,
            Family::ProductTable => 8,
            Family::ProductRequests => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.code() == code)
    }

    fn is_dedupe(self) -> bool {
        matches!(self, Family::ShopperDedupe | Family::ProductDedupe)
    }
}

/// The `meta` key under which both drivers record how many partitions the shopper
/// side has, so that the read API can find a shopper in a stopped processor's or a
/// replay's state directory.
pub const META_CUSTOMER_PARTITIONS: &str = "customer_partitions";

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One write to the store: a put, or a delete when `value` is `None`. The same list can
/// be sent to a changelog topic before it is applied here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub family: Family,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Changes gathered for one atomic write (see [`Store::staged`]).
pub struct StagedWrites {
    batch: WriteBatch,
}

impl StagedWrites {
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch's size as RocksDB encodes it: keys, values and a few bytes each.
    pub fn bytes(&self) -> usize {
        self.batch.size_in_bytes()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB at {path}: {source}")]
    Rocks {
        path: PathBuf,
        source: rocksdb::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

pub struct Store {
    db: DB,
    path: PathBuf,
    /// Entities whose newest seen event id is older than this are dropped at compaction.
    dedupe_horizon: Arc<AtomicI64>,
    // Kept alive for the database's lifetime; RocksDB holds references into them.
    block_cache: Cache,
    block_cache_capacity: u64,
    _write_buffers: WriteBufferManager,
    _temporary: Option<tempfile::TempDir>,
    /// Whether writes go through RocksDB's write-ahead log (see [`Store::keep_writes`]).
    wal: bool,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, config: &StateConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        Store::open_inner(dir, config, None, Access::ReadWrite)
    }

    /// Opens the store in `dir` to read it only: several readers (and `personalizer
    /// query` beside a running processor) may hold it at once; every write fails.
    pub fn open_read_only(dir: &Path, config: &StateConfig) -> Result<Store, StoreError> {
        Store::open_inner(dir, config, None, Access::ReadOnly)
    }

    /// A store in a fresh temporary directory, deleted when the store is dropped.
    pub fn open_temporary(config: &StateConfig) -> Result<Store, StoreError> {
        let temp = tempfile::Builder::new()
            .prefix("personalizer-state-")
            .tempdir()
            .map_err(|source| StoreError::Dir {
                path: std::env::temp_dir(),
                source,
            })?;
        let path = temp.path().to_path_buf();
        Store::open_inner(&path, config, Some(temp), Access::ReadWrite)
    }

    fn open_inner(
        dir: &Path,
        config: &StateConfig,
        temporary: Option<tempfile::TempDir>,
        access: Access,
    ) -> Result<Store, StoreError> {
        let block_cache = Cache::new_lru_cache(config.block_cache_bytes as usize);
        // No stall: writes never block on the budget (a stalled commit was seen to wait
        // forever with the WAL off); reaching it makes RocksDB flush the largest memtable.
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager(config.write_buffer_bytes as usize, false);
        let memtable_bytes = (config.write_buffer_bytes as usize / 4).max(1 << 20);
        let dedupe_horizon = Arc::new(AtomicI64::new(i64::MIN));

        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_write_buffer_manager(&write_buffers);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(3);

        let descriptors = Family::ALL.map(|family| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&block_cache);
            // Most lookups are for keys that are not there yet (new event ids, new
            // shoppers): bloom filters answer those without touching data blocks.
            table.set_bloom_filter(10.0, false);
            table.set_cache_index_and_filter_blocks(true);
            if family.is_dedupe() {
                // Only point lookups of ids, most of them misses: a hash index in each
                // data block, as RocksDB's `OptimizeForPointLookup` sets. Not that call
                // itself: it gives the family a block cache of its own (one more
                // `block_cache_bytes` per dedupe family, outside the shared budget)
                // and keeps index and filter blocks outside any cache.
                table.set_data_block_index_type(rocksdb::DataBlockIndexType::BinaryAndHash);
                table.set_data_block_hash_ratio(0.75);
            }
            let mut cf = Options::default();
            cf.set_block_based_table_factory(&table);
            cf.set_write_buffer_size(memtable_bytes);
            cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            cf.set_memtable_whole_key_filtering(true);
            cf.set_memtable_prefix_bloom_ratio(0.1);
            if family.is_dedupe() {
                // An entity's chunks share its dedupe key: loading them is a scan of
                // that prefix, and for the many entities with none, the prefix bloom
                // filters answer without reading a block.
                cf.set_prefix_extractor(SliceTransform::create_fixed_prefix(keys::DEDUPE_KEY_LEN));
                let horizon = Arc::clone(&dedupe_horizon);
                cf.set_compaction_filter("dedupe-expiry", move |_level, _key, value: &[u8]| {
                    match recent_ids::newest_seen(value) {
                        Some(seen) if seen < horizon.load(Ordering::Relaxed) => {
                            rocksdb::compaction_filter::Decision::Remove
                        }
                        _ => rocksdb::compaction_filter::Decision::Keep,
                    }
                });
            }
            ColumnFamilyDescriptor::new(family.name(), cf)
        });
        let db = match access {
            Access::ReadWrite => DB::open_cf_descriptors(&db_options, dir, descriptors),
            Access::ReadOnly => {
                DB::open_cf_descriptors_read_only(&db_options, dir, descriptors, false)
            }
        }
        .map_err(|source| StoreError::Rocks {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            db,
            path: dir.to_path_buf(),
            dedupe_horizon,
            block_cache,
            block_cache_capacity: config.block_cache_bytes,
            _write_buffers: write_buffers,
            _temporary: temporary,
            wal: false,
        })
    }

    /// Writes from now on go through the write-ahead log (not synced), so a process that
    /// is killed keeps every batch it wrote, and its checkpoints with them. The live
    /// runtime wants this: a task that comes back after a crash then restores only the
    /// changelog records it lacks. `replay` does without: what it loses it reads again.
    pub fn keep_writes(mut self) -> Store {
        self.wal = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    fn cf(&self, family: Family) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(family.name())
            .expect("every family is created at open")
    }

    pub fn get(&self, family: Family, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(family), key)
            .map(|v| v.map(|bytes| bytes.to_vec()))
            .map_err(|e| self.error(e))
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, family: Family, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let mut options = ReadOptions::default();
        // A whole dedupe key is the family's bloom-filtered prefix (see `open`).
        options
            .set_prefix_same_as_start(family.is_dedupe() && prefix.len() == keys::DEDUPE_KEY_LEN);
        for item in self.db.iterator_cf_opt(
            self.cf(family),
            options,
            IteratorMode::From(prefix, Direction::Forward),
        ) {
            let (key, value) = item.map_err(|e| self.error(e))?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    /// Applies the changes atomically. Unless [`Store::keep_writes`] was asked for, the
    /// write-ahead log is off: a commit's batch and its checkpoint (in `meta`) are lost or
    /// kept together, and what is lost is rebuilt from its source.
    pub fn write(&self, changes: &[StateChange]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for change in changes {
            let cf = self.cf(change.family);
            match &change.value {
                Some(value) => batch.put_cf(cf, &change.key, value),
                None => batch.delete_cf(cf, &change.key),
            }
        }
        let mut options = WriteOptions::default();
        options.disable_wal(!self.wal);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| self.error(e))
    }

    /// An empty batch for [`Store::stage`] and [`Store::write_staged_unlogged`]: changes copied
    /// in from borrowed bytes (a restore's changelog records) without a [`StateChange`]
    /// allocated for each.
    pub fn staged(&self) -> StagedWrites {
        StagedWrites {
            batch: WriteBatch::default(),
        }
    }

    /// Adds a put (`Some`) or a delete (`None`) to the batch.
    pub fn stage(
        &self,
        staged: &mut StagedWrites,
        family: Family,
        key: &[u8],
        value: Option<&[u8]>,
    ) {
        let cf = self.cf(family);
        match value {
            Some(value) => staged.batch.put_cf(cf, key, value),
            None => staged.batch.delete_cf(cf, key),
        }
    }

    /// Applies the staged changes atomically without the write-ahead log, and leaves the
    /// batch empty for reuse. For what can be read again from elsewhere (a restore from
    /// the changelog): a crash may lose it, so nothing that depends on it (a checkpoint)
    /// may be written before a [`Store::flush`] has made it durable.
    pub fn write_staged_unlogged(&self, staged: &mut StagedWrites) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut staged.batch);
        let mut options = WriteOptions::default();
        options.disable_wal(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| self.error(e))
    }

    /// Sorts the changes by family and key, then applies them as [`Store::write`] does:
    /// in key order RocksDB's skiplist reuses its insert position from one key to the
    /// next. The changes must hold at most one per key (the order among equal keys is
    /// not kept), as a commit of the write-back cache gives.
    pub fn write_sorted(&self, changes: &mut [StateChange]) -> Result<(), StoreError> {
        changes.sort_unstable_by(|a, b| (a.family, &a.key).cmp(&(b.family, &b.key)));
        self.write(changes)
    }

    /// Drops everything one task holds in `families` (its partition-prefixed range) and
    /// the `meta` entries named, so the task can be restored from scratch.
    pub fn delete_partition(
        &self,
        families: &[Family],
        partition: u16,
        meta_names: &[String],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let from = keys::partition_prefix(partition);
        // Partitions are at most 1024 (validated), so `partition + 1` cannot overflow.
        let to = keys::partition_prefix(partition + 1);
        for family in families {
            batch.delete_range_cf(self.cf(*family), from, to);
        }
        for name in meta_names {
            batch.delete_cf(self.cf(Family::Meta), name.as_bytes());
        }
        let mut options = WriteOptions::default();
        options.disable_wal(!self.wal);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| self.error(e))
    }

    /// Dedupe entries first seen before `horizon` may be dropped from now on.
    pub fn set_dedupe_horizon(&self, horizon: Millis) {
        self.dedupe_horizon.fetch_max(horizon, Ordering::Relaxed);
    }

    pub fn read_meta(&self, name: &str) -> Result<Option<Millis>, StoreError> {
        Ok(self
            .get(Family::Meta, name.as_bytes())?
            .and_then(|v| keys::decode_millis(&v)))
    }

    pub fn meta_change(name: &str, value: Millis) -> StateChange {
        StateChange {
            family: Family::Meta,
            key: name.as_bytes().to_vec(),
            value: Some(keys::encode_millis(value).to_vec()),
        }
    }

    /// Writes memtables to disk, so a reopened store finds everything without a WAL.
    pub fn flush(&self) -> Result<(), StoreError> {
        let handles: Vec<&rocksdb::ColumnFamily> =
            Family::ALL.iter().map(|f| self.cf(*f)).collect();
        self.db
            .flush_cfs_opt(&handles, &rocksdb::FlushOptions::default())
            .map_err(|e| self.error(e))
    }

    /// Compacts a whole column family now (RocksDB does this by itself over time);
    /// compaction is when expired dedupe entries are dropped.
    pub fn compact(&self, family: Family) {
        self.db
            .compact_range_cf(self.cf(family), None::<&[u8]>, None::<&[u8]>);
    }
}

#[cfg(test)]
mod tests;
