//! Restoring a task's state from its changelog partition.
//!
//! Local RocksDB is a cache of the changelog. Each commit stores, in the same WriteBatch
//! as the state, the changelog offset it reaches (the checkpoint). A task assigned to
//! this process reads its changelog from the checkpoint to the end: only the gap when
//! the state is here, everything when it is new. A checkpoint the changelog does not
//! have (the topic was recreated, or records were deleted) drops the local state first.

use super::changelog;
use super::clients::{self, ClientError};
use crate::config::Config;
use crate::store::{Family, StateChange, Store, StoreError};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const BATCH: usize = 10_000;
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// A restore that makes no progress for this long is reported as failed.
const STALL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("changelog `{topic}` partition {partition} offset {offset}: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        offset: i64,
        source: changelog::ChangelogError,
    },
    #[error("changelog `{topic}` partition {partition}: no progress for {STALL_LIMIT:?} at offset {offset} (end {end}): {last_error}")]
    Stalled {
        topic: String,
        partition: i32,
        offset: i64,
        end: i64,
        last_error: String,
    },
}

/// The `meta` key holding how far into its changelog a task's local state goes.
pub fn checkpoint_key(changelog: &str, partition: u16) -> String {
    format!("checkpoint/{changelog}/{partition}")
}

pub fn checkpoint_change(changelog: &str, partition: u16, next_offset: i64) -> StateChange {
    Store::meta_change(&checkpoint_key(changelog, partition), next_offset)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Changelog records applied.
    pub records: u64,
    /// Where reading started.
    pub from: i64,
    /// Whether local state was dropped first.
    pub wiped: bool,
    /// The local checkpoint found, if any, and the changelog's range when restoring
    /// began: a checkpoint outside it is why state is dropped.
    pub checkpoint: Option<i64>,
    pub low: i64,
    pub high: i64,
}

/// Brings the task's local state up to the end of its changelog partition.
/// `on_progress` hears of the records applied as they are written (and of waits, with
/// 0), so metrics and liveness follow a long restore.
pub fn restore(
    config: &Config,
    store: &Store,
    topic: &str,
    partition: u16,
    families: &[Family],
    task_meta: &[String],
    on_progress: &mut dyn FnMut(u64),
) -> Result<Restored, RestoreError> {
    let consumer: BaseConsumer<RestoreContext> =
        clients::plain_consumer_with(config, RestoreContext)?;
    let p = i32::from(partition);
    let (low, high) = stable_end(config, &consumer, topic, p)?;
    let key = checkpoint_key(topic, partition);
    let checkpoint = store.read_meta(&key)?;
    let (from, wiped) = match checkpoint {
        Some(c) if (low..=high).contains(&c) => (c, false),
        _ => {
            let mut meta = task_meta.to_vec();
            meta.push(key.clone());
            store.delete_partition(families, partition, &meta)?;
            (low, true)
        }
    };
    let mut restored = Restored {
        records: 0,
        from,
        wiped,
        checkpoint,
        low,
        high,
    };
    if from >= high {
        return Ok(restored);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, p, Offset::Offset(from))
        .expect("a fresh list accepts any partition");
    consumer
        .assign(&assignment)
        .map_err(|e| ClientError::broker(config, &format!("read `{topic}`"), e))?;
    let mut batch: Vec<StateChange> = Vec::with_capacity(BATCH);
    let mut next = from;
    let mut last_progress = Instant::now();
    let mut last_error = String::from("none");
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let change =
                    changelog::decode(message.key().unwrap_or_default(), message.payload())
                        .map_err(|source| RestoreError::Corrupt {
                            topic: topic.to_string(),
                            partition: p,
                            offset: message.offset(),
                            source,
                        })?;
                batch.push(change);
                next = message.offset() + 1;
                restored.records += 1;
                last_progress = Instant::now();
                if batch.len() >= BATCH {
                    on_progress(batch.len() as u64);
                    batch.push(checkpoint_change(topic, partition, next));
                    store.write(&batch)?;
                    batch.clear();
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => last_error = e.to_string(),
            None => {
                on_progress(0);
                // Past the end, though no end-of-partition came (the last offsets may
                // be transaction markers, which are never handed out as records).
                if position_of(&consumer, topic, p).is_some_and(|at| at >= high) {
                    break;
                }
            }
        }
        if last_progress.elapsed() > STALL_LIMIT {
            return Err(RestoreError::Stalled {
                topic: topic.to_string(),
                partition: p,
                offset: next,
                end: high,
                last_error,
            });
        }
    }
    // The position is past any transaction markers that follow the last record.
    let end = position_of(&consumer, topic, p)
        .filter(|&o| o >= next)
        .unwrap_or(next);
    on_progress(batch.len() as u64);
    batch.push(checkpoint_change(topic, partition, end));
    store.write(&batch)?;
    Ok(restored)
}

/// How long a restore waits for a transaction on its changelog to end.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// The changelog partition's low watermark and its end once every transaction that
/// wrote to it has ended. A commit's transaction markers are written after the commit
/// returns; the previous owner of a task that just moved here may have committed a
/// moment ago, and its group offsets already count that batch. Restoring only to the
/// last stable offset of that moment would miss the batch's state changes, and the
/// batch's decisions would be made again (a dead owner's open transaction is aborted
/// by the broker within its 10 s lifetime).
fn stable_end<C: ConsumerContext>(
    config: &Config,
    consumer: &BaseConsumer<C>,
    topic: &str,
    p: i32,
) -> Result<(i64, i64), RestoreError> {
    let read_end = |e| ClientError::broker(config, &format!("read the end of `{topic}`"), e);
    let mut everything = clients::base(config);
    everything.set("isolation.level", "read_uncommitted");
    let uncommitted: BaseConsumer = clients::consumer_with(&everything, DefaultConsumerContext)?;
    let (_, written) = uncommitted
        .fetch_watermarks(topic, p, WATERMARK_TIMEOUT)
        .map_err(read_end)?;
    let started = Instant::now();
    loop {
        let (low, stable) = consumer
            .fetch_watermarks(topic, p, WATERMARK_TIMEOUT)
            .map_err(read_end)?;
        if stable >= written {
            return Ok((low, stable));
        }
        if started.elapsed() > SETTLE_LIMIT {
            tracing::warn!(
                topic,
                partition = p,
                stable,
                written,
                "a transaction on the changelog is still open; restoring what is committed"
            );
            return Ok((low, stable));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn position_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    consumer
        .position()
        .ok()
        .and_then(|tpl| tpl.find_partition(topic, partition).map(|e| e.offset()))
        .and_then(|o| o.to_raw())
}

/// The restore consumer's context: reaching the end of the changelog is how a restore
/// ends, not an error, so librdkafka's end-of-partition report is logged at debug.
pub struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::debug!(%reason, "restore reached the end of the changelog");
        } else {
            tracing::error!(error = %error, %reason, "librdkafka error while restoring");
        }
    }
}

impl ConsumerContext for RestoreContext {}
