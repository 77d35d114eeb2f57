//! The product table as a global table (CONTRACT §5.4, like a Kafka Streams
//! GlobalKTable): every instance reads every partition of the products topic into its
//! `product_table` column family and the in-memory catalog the product rules rank
//! against. It belongs to no consumer group; it keeps its own position per partition
//! in the store, beside the rows it wrote, and resumes from there.
//!
//! At start the table catches up to the end of the topic before any task runs, so a
//! restarted instance ranks against what it knew before; then a thread of its own
//! follows the topic until shutdown. Either way it keeps only the latest record per SKU
//! of what it has read and not yet applied, and applies those: a products topic not yet
//! compacted holds many records per SKU (3.8 M for 20 K SKUs after 6 M events), and
//! reading each was most of a new instance's start-up. While catching up it holds up to
//! [`CATCH_UP_BUFFER_BYTES`]; while following, what one poll brings (up to
//! [`FOLLOW_WINDOW_RECORDS`]): a busy SKU publishes every `products.publish_interval` of
//! stream time, so working off a backlog a window of 1,000 records holds about 240
//! SKUs, and decoding and writing each record was a third of the process's CPU.

use super::clients::{self, ClientError, ReadToEnd};
use super::restore::position_of;
use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::decision::{Decision, DecisionBody};
use crate::decision_codec::{DecisionDecodeError, DecisionDecoder};
use crate::engine::product_table;
use crate::product_index::SharedProductIndex;
use crate::store::{StateChange, Store, StoreError};
use crate::telemetry::metrics::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// Records written to the store in one batch while catching up or following. A product
/// record is about 2 KiB, and a batch is held twice (the rows, then RocksDB's batch):
/// 1,000 keep that near 4 MiB (5,000 held 30 MiB at times).
const BATCH_RECORDS: usize = 1_000;
/// While catching up, the latest records per SKU held (in bytes) before they are applied.
pub const CATCH_UP_BUFFER_BYTES: usize = 64 << 20;
/// While following, the records read before the latest per SKU among them are applied
/// (fewer when the topic has no more for now).
pub const FOLLOW_WINDOW_RECORDS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum GlobalTableError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one record off the topic did to the table (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableOutcome {
    Applied,
    Deleted,
    Unreadable,
    /// Read while catching up, and replaced by a later record for the same SKU before
    /// it was applied.
    Superseded,
}

impl TableOutcome {
    pub const ALL: [TableOutcome; 4] = [
        TableOutcome::Applied,
        TableOutcome::Deleted,
        TableOutcome::Unreadable,
        TableOutcome::Superseded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TableOutcome::Applied => "applied",
            TableOutcome::Deleted => "deleted",
            TableOutcome::Unreadable => "unreadable",
            TableOutcome::Superseded => "superseded",
        }
    }
}

/// A record read and not yet applied: where it came from, and its payload (`None`: a
/// tombstone).
struct Held {
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

/// The latest record per SKU read and not yet applied.
#[derive(Default)]
struct LatestPerSku {
    /// By key.
    records: FxHashMap<Vec<u8>, Held>,
    /// The next offset per partition once everything held is applied.
    positions: BTreeMap<i32, i64>,
    bytes: usize,
    /// Records read into it, superseded ones included.
    reads: usize,
}

pub struct GlobalTable<'a> {
    config: &'a Config,
    partitions: i32,
    consumer: BaseConsumer<ReadToEnd>,
    writer: TableWriter<'a>,
}

/// What takes the records read into the store and the catalog.
struct TableWriter<'a> {
    store: &'a Store,
    catalog: SharedCatalog,
    /// The read API's view of the same rows.
    index: SharedProductIndex,
    metrics: &'a Metrics,
    topic: String,
    /// Product records may be JSON or Avro, as the instance that wrote them was set.
    reader: DecisionDecoder,
    /// Rows and positions read but not yet written.
    pending: Vec<StateChange>,
    pending_records: usize,
    /// Held while catching up; empty while following.
    latest: LatestPerSku,
}

/// The store key of the table's position in one partition of `topic`.
pub fn position_key(topic: &str, partition: i32) -> String {
    format!("global/{topic}/{partition}")
}

impl<'a> GlobalTable<'a> {
    /// Loads what the store holds into the catalog and positions a consumer on every
    /// partition of the topic where the store left off.
    pub fn open(
        config: &'a Config,
        store: &'a Store,
        catalog: SharedCatalog,
        index: SharedProductIndex,
        metrics: &'a Metrics,
        partitions: i32,
        reader: DecisionDecoder,
    ) -> Result<GlobalTable<'a>, GlobalTableError> {
        let topic = config.kafka.topics.products.clone();
        let loaded = {
            let mut catalog = catalog.write().unwrap_or_else(|p| p.into_inner());
            let mut index = index.write().unwrap_or_else(|p| p.into_inner());
            product_table::for_each_record(store, |record| {
                product_table::apply(&mut catalog, record);
                index.apply(record);
            })?
        };
        let consumer: BaseConsumer<ReadToEnd> = clients::reader(config, "the product table")?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            let offset = match store.read_meta(&position_key(&topic, p))? {
                Some(next) => Offset::Offset(next),
                None => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&topic, p, offset)
                .expect("a fresh list accepts any partition");
        }
        consumer
            .assign(&assignment)
            .map_err(|e| ClientError::broker(config, &format!("read `{topic}`"), e))?;
        tracing::info!(
            topic,
            stored = loaded.records,
            unreadable = loaded.unreadable,
            "product table opened"
        );
        metrics.product_table_skus.set(loaded.records as i64);
        Ok(GlobalTable {
            config,
            partitions,
            consumer,
            writer: TableWriter {
                store,
                catalog,
                index,
                metrics,
                topic,
                reader,
                pending: Vec::new(),
                pending_records: 0,
                latest: LatestPerSku::default(),
            },
        })
    }

    /// Reads up to the end of every partition as it is now (committed records only),
    /// unless `stop` is set first.
    pub fn catch_up(&mut self, stop: &AtomicBool) -> Result<u64, GlobalTableError> {
        let started = Instant::now();
        let mut ends = Vec::with_capacity(self.partitions as usize);
        for p in 0..self.partitions {
            let (_, end) = self
                .consumer
                .fetch_watermarks(&self.writer.topic, p, WATERMARK_TIMEOUT)
                .map_err(|e| {
                    ClientError::broker(
                        self.config,
                        &format!("read the end of `{}`", self.writer.topic),
                        e,
                    )
                })?;
            ends.push(end);
        }
        let mut records = 0;
        loop {
            let caught_up = (0..self.partitions).all(|p| {
                let end = ends[p as usize];
                end <= 0
                    || position_of(&self.consumer, &self.writer.topic, p)
                        .is_some_and(|at| at >= end)
                    || self.writer.stored_position(p).is_some_and(|at| at >= end)
            });
            if caught_up || stop.load(Ordering::SeqCst) {
                break;
            }
            records += self.poll_once(Duration::from_millis(100), Reading::CatchingUp)?;
        }
        self.writer.apply_latest()?;
        tracing::info!(
            topic = self.writer.topic,
            records,
            skus = self.writer.catalog_len(),
            seconds = started.elapsed().as_secs_f64(),
            "product table loaded: read to the end of its topic"
        );
        Ok(records)
    }

    /// Follows the topic until one of `stops` is set, writing what it reads as it goes.
    pub fn follow(&mut self, stops: &[&AtomicBool]) -> Result<(), GlobalTableError> {
        while !stops.iter().any(|stop| stop.load(Ordering::SeqCst)) {
            self.poll_once(Duration::from_millis(100), Reading::Following)?;
        }
        self.writer.write_pending()
    }

    /// Reads what is there (waiting up to `wait` for the first record), holding the
    /// latest record per SKU, and applies what it holds when the buffer is full
    /// (catching up) or at the end of the poll (following).
    fn poll_once(&mut self, wait: Duration, reading: Reading) -> Result<u64, GlobalTableError> {
        let mut read = 0;
        let mut timeout = wait;
        while !self.writer.is_full(reading) {
            match self.consumer.poll(timeout) {
                Some(Ok(message)) => {
                    let key = message.key().unwrap_or_default();
                    let (partition, offset) = (message.partition(), message.offset());
                    self.writer.hold(key, message.payload(), partition, offset);
                    read += 1;
                    timeout = Duration::ZERO;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => timeout = Duration::ZERO,
                Some(Err(e)) => {
                    tracing::warn!(topic = self.writer.topic, error = %e, "cannot read the product table");
                    break;
                }
                None => break,
            }
        }
        match reading {
            Reading::CatchingUp if !self.writer.is_full(reading) => {}
            Reading::CatchingUp | Reading::Following => self.writer.apply_latest()?,
        }
        Ok(read)
    }
}

/// How the table takes in what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// At start, to the end of the topic: applied when the buffer is full or at the end.
    CatchingUp,
    /// Afterwards: applied after every poll, so the table lags the topic by one poll.
    Following,
}

impl TableWriter<'_> {
    fn stored_position(&self, partition: i32) -> Option<i64> {
        self.store
            .read_meta(&position_key(&self.topic, partition))
            .ok()
            .flatten()
    }

    /// Whether the records taken in should be written before reading more.
    fn is_full(&self, reading: Reading) -> bool {
        match reading {
            Reading::CatchingUp => self.latest.bytes >= CATCH_UP_BUFFER_BYTES,
            Reading::Following => self.latest.reads >= FOLLOW_WINDOW_RECORDS,
        }
    }

    fn catalog_len(&self) -> usize {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Holds a record read, in place of any earlier one for its SKU not yet applied.
    fn hold(&mut self, key: &[u8], payload: Option<&[u8]>, partition: i32, offset: i64) {
        self.latest.reads += 1;
        let payload_bytes = payload.map_or(0, <[u8]>::len);
        let held = Held {
            partition,
            offset,
            payload: payload.map(<[u8]>::to_vec),
        };
        match self.latest.records.get_mut(key) {
            Some(earlier) => {
                self.latest.bytes -= earlier.payload.as_ref().map_or(0, Vec::len);
                self.latest.bytes += payload_bytes;
                *earlier = held;
                self.count(TableOutcome::Superseded);
            }
            None => {
                self.latest.bytes += key.len() + payload_bytes;
                self.latest.records.insert(key.to_vec(), held);
            }
        }
        self.latest.positions.insert(partition, offset + 1);
    }

    /// Applies and writes what is held, with the positions it brings each partition to.
    fn apply_latest(&mut self) -> Result<(), GlobalTableError> {
        let latest = std::mem::take(&mut self.latest);
        for (key, held) in latest.records {
            self.apply(&key, held.payload.as_deref(), held.partition, held.offset);
            self.pending_records += 1;
            if self.pending_records >= BATCH_RECORDS {
                self.write_pending()?;
            }
        }
        for (partition, next) in latest.positions {
            self.pending.push(Store::meta_change(
                &position_key(&self.topic, partition),
                next,
            ));
        }
        self.write_pending()
    }

    fn count(&self, outcome: TableOutcome) {
        self.metrics
            .product_table_records
            .with_label_values(&[outcome.label()])
            .inc();
    }

    /// A row (or a tombstone) into the pending writes, the catalog and the index.
    fn apply(&mut self, key: &[u8], payload: Option<&[u8]>, partition: i32, offset: i64) {
        let sku = String::from_utf8_lossy(key).into_owned();
        let outcome = match payload {
            None => {
                self.pending.push(StateChange {
                    family: crate::store::Family::ProductTable,
                    key: key.to_vec(),
                    value: None,
                });
                self.catalog
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&sku);
                self.index
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&sku);
                TableOutcome::Deleted
            }
            Some(bytes) => match self.read_product(bytes) {
                Some(decision) => {
                    // Stored as JSON whatever the topic's format: the store's rows are
                    // read without a registry (`personalizer query`, restarts). A JSON
                    // record is kept as it came, not written anew.
                    let json = match bytes.first() {
                        Some(b'{') => bytes.to_vec(),
                        _ => decision.to_json_line().into_bytes(),
                    };
                    self.pending.push(product_table::row(&sku, json));
                    product_table::apply(
                        &mut self.catalog.write().unwrap_or_else(|p| p.into_inner()),
                        &decision,
                    );
                    self.index
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .apply(&decision);
                    TableOutcome::Applied
                }
                None => {
                    tracing::warn!(
                        topic = self.topic,
                        partition,
                        offset,
                        sku,
                        "a record on the products topic is not a product record; skipped"
                    );
                    TableOutcome::Unreadable
                }
            },
        };
        self.count(outcome);
    }

    /// A product record, or `None` for anything else. While the registry does not
    /// answer for a writer schema this thread waits: the table must not skip a row.
    fn read_product(&self, bytes: &[u8]) -> Option<Decision> {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.reader.decode(bytes) {
                Ok(decision) => {
                    return matches!(decision.body, DecisionBody::Product(_)).then_some(decision)
                }
                Err(DecisionDecodeError::Bad(_)) => return None,
                Err(DecisionDecodeError::RegistryUnavailable(problem)) => {
                    tracing::warn!(
                        topic = self.topic,
                        %problem,
                        retry_in = ?pause,
                        "a product record cannot be read now"
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Writes the rows with the positions they bring the table to, in one batch.
    fn write_pending(&mut self) -> Result<(), GlobalTableError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.store.write(&self.pending)?;
        self.pending.clear();
        self.pending_records = 0;
        self.metrics
            .product_table_skus
            .set(self.catalog_len() as i64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProductCatalog;
    use crate::config::StateConfig;
    use crate::decision::DecisionBody;
    use crate::product_index::ProductIndex;
    use crate::store::Family;
    use std::sync::Arc;

    #[test]
    fn outcomes_are_the_series_the_metrics_start_at_zero() {
        let labels: Vec<&str> = TableOutcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels, crate::telemetry::metrics::PRODUCT_TABLE_OUTCOMES);
    }

    fn record(sku: &str, views: f64) -> Vec<u8> {
        let mut decision = crate::samples::one_of_each_decision_type()
            .into_iter()
            .find(|d| matches!(d.body, DecisionBody::Product(_)))
            .unwrap();
        let DecisionBody::Product(record) = &mut decision.body else {
            unreachable!()
        };
        let record = Arc::make_mut(record);
        record.sku = sku.into();
        record.ranking_basis.views = views;
        decision.to_json_line().into_bytes()
    }

    fn views_in_catalog(writer: &TableWriter, sku: &str) -> Option<f64> {
        let catalog = writer.catalog.read().unwrap();
        catalog.get(sku).map(|entry| entry.views.value)
    }

    fn writer<'a>(store: &'a Store, metrics: &'a Metrics) -> TableWriter<'a> {
        TableWriter {
            store,
            catalog: ProductCatalog::shared(),
            index: ProductIndex::shared(1),
            metrics,
            topic: "products".into(),
            reader: DecisionDecoder::json(),
            pending: Vec::new(),
            pending_records: 0,
            latest: LatestPerSku::default(),
        }
    }

    #[test]
    fn following_applies_a_window_of_reads_however_few_skus_it_holds() {
        let store = Store::open_temporary(&StateConfig::default()).unwrap();
        let metrics = Metrics::new();
        let mut writer = writer(&store, &metrics);
        let payload = record("a", 1.0);
        let last = FOLLOW_WINDOW_RECORDS as i64 - 1;
        for offset in 0..last {
            writer.hold(b"a", Some(&payload), 0, offset);
        }
        assert!(!writer.is_full(Reading::Following));
        writer.hold(b"a", Some(&record("a", 9.0)), 0, last);
        assert!(
            writer.is_full(Reading::Following),
            "one SKU read a window's worth of times fills it"
        );
        assert!(!writer.is_full(Reading::CatchingUp), "a few KiB held");
        writer.apply_latest().unwrap();
        assert_eq!(views_in_catalog(&writer, "a"), Some(9.0));
        assert_eq!(
            store.read_meta(&position_key("products", 0)).unwrap(),
            Some(last + 1)
        );
        assert!(
            !writer.is_full(Reading::Following),
            "the window starts over"
        );
    }

    #[test]
    fn catching_up_applies_the_latest_record_per_sku_with_every_partitions_position() {
        let store = Store::open_temporary(&StateConfig::default()).unwrap();
        let metrics = Metrics::new();
        let mut writer = writer(&store, &metrics);
        writer.hold(b"a", Some(&record("a", 1.0)), 0, 10);
        writer.hold(b"b", Some(&record("b", 5.0)), 1, 3);
        writer.hold(b"a", Some(&record("a", 2.0)), 0, 11);
        writer.hold(b"c", Some(&record("c", 7.0)), 1, 4);
        writer.hold(b"c", None, 1, 5);
        writer.hold(b"d", Some(b"{\"type\":\"product\"}"), 0, 12);
        assert_eq!(views_in_catalog(&writer, "a"), None, "nothing applied yet");
        writer.apply_latest().unwrap();

        assert_eq!(
            views_in_catalog(&writer, "a"),
            Some(2.0),
            "the latest record"
        );
        assert_eq!(views_in_catalog(&writer, "b"), Some(5.0));
        assert_eq!(views_in_catalog(&writer, "c"), None, "a tombstone last");
        assert_eq!(views_in_catalog(&writer, "d"), None, "unreadable: skipped");
        let row = store.get(Family::ProductTable, b"a").unwrap().unwrap();
        assert_eq!(row, record("a", 2.0), "JSON rows are kept as they came");
        assert_eq!(store.get(Family::ProductTable, b"c").unwrap(), None);
        assert_eq!(
            store.read_meta(&position_key("products", 0)).unwrap(),
            Some(13)
        );
        assert_eq!(
            store.read_meta(&position_key("products", 1)).unwrap(),
            Some(6)
        );
        let counted = |outcome: TableOutcome| {
            metrics
                .product_table_records
                .with_label_values(&[outcome.label()])
                .get()
        };
        assert_eq!(counted(TableOutcome::Superseded), 2);
        assert_eq!(counted(TableOutcome::Applied), 2);
        assert_eq!(counted(TableOutcome::Deleted), 1);
        assert_eq!(counted(TableOutcome::Unreadable), 1);
        assert_eq!(writer.latest.bytes, 0, "the buffer is empty again");
        assert!(writer.latest.records.is_empty() && writer.pending.is_empty());
    }

    #[test]
    fn positions_are_kept_per_topic_and_partition() {
        assert_eq!(
            position_key("personalization.products", 3),
            "global/personalization.products/3"
        );
        assert_ne!(position_key("a", 1), position_key("a", 2));
    }
}
