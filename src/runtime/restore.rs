//! Restoring a task's state from its changelog partition.
//!
//! Local RocksDB is a cache of the changelog. Each commit stores, in the same WriteBatch
//! as the state, the changelog offset it reaches (the checkpoint). A task assigned to
//! this process reads its changelog from the checkpoint to the end: only the gap when
//! the state is here, everything when it is new. A checkpoint the changelog does not
//! have (the topic was recreated, or records were deleted) drops the local state first.
//!
//! A restore writes without RocksDB's write-ahead log (a tenth faster, and what it
//! writes is in the changelog anyway), so a crash may lose any of it. Its checkpoints
//! are therefore written only at the end, after a flush has made the restored state
//! durable: a crash before then leaves the old checkpoints, and the next restore reads
//! again from there, applying the same records in the same order.

use super::changelog;
use super::clients::{self, ClientError, Prefetch, ReadToEnd};
use crate::config::Config;
use crate::store::{Family, StagedWrites, StateChange, Store, StoreError};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A restore writes each partition's records in batches of at most this many records
/// or bytes: large enough that RocksDB's per-write cost is spread thin, small enough
/// that the batches being filled (one per partition) stay a few MiB each.
const BATCH_RECORDS: usize = 10_000;
const BATCH_BYTES: usize = 2 << 20;
/// How much of its changelogs each restore consumer fetches ahead, per partition.
/// A restore reads faster than RocksDB takes the records, so the prefetch queue is
/// always full: librdkafka's default queue (64 MiB per partition) only costs memory, and
/// its default back-off once the queue is full (1 s) left the restore waiting for data
/// most of the time (108 K records/s against 480 K with 5 ms). Fetches keep librdkafka's
/// sizes: large responses are what a bulk read wants.
const RESTORE_PREFETCH: Prefetch = Prefetch {
    queued_kib: 4 << 10,
    queued_records: 100_000,
    fetch_bytes: 50 << 20,
    partition_fetch_bytes: 1 << 20,
};
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

/// A task to restore: its changelog partition, the state families it owns and the
/// `meta` entries that go with them.
#[derive(Debug, Clone)]
pub struct RestoreTarget {
    pub changelog: String,
    pub partition: u16,
    pub families: Vec<Family>,
    pub task_meta: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// From the start of the restore until this task's state was complete.
    pub seconds: f64,
    /// The changelog offset the local state now reaches: the new checkpoint.
    pub next: i64,
}

/// Brings every target's local state up to the end of its changelog partition, the
/// targets shared among up to `threads` threads (each with one consumer that reads all
/// of its partitions at once), and returns what each restore did, in the targets'
/// order. `on_progress(target, records)` hears of records as they are written (and of
/// waits, with 0) from any of the threads, so metrics and liveness follow a long
/// restore.
pub fn restore_all(
    config: &Config,
    store: &Store,
    targets: &[RestoreTarget],
    threads: usize,
    on_progress: &(dyn Fn(usize, u64) + Sync),
) -> Result<Vec<Restored>, RestoreError> {
    let started = Instant::now();
    let groups = share_out(targets.len(), threads.max(1));
    let results: Vec<Result<Vec<(usize, Restored)>, RestoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                s.spawn(move || restore_group(config, store, targets, &group, started, on_progress))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a restore thread panicked"))
            .collect()
    });
    let mut restored: Vec<Option<Restored>> = vec![None; targets.len()];
    for group in results {
        for (index, r) in group? {
            restored[index] = Some(r);
        }
    }
    let restored: Vec<Restored> = restored
        .into_iter()
        .map(|r| r.expect("every target belongs to one group"))
        .collect();
    // The restored state went in without the write-ahead log: durable first, then the
    // checkpoints that say it is there.
    if restored.iter().any(|r| r.records > 0) {
        store.flush()?;
    }
    let checkpoints: Vec<StateChange> = targets
        .iter()
        .zip(&restored)
        .map(|(target, r)| checkpoint_change(&target.changelog, target.partition, r.next))
        .collect();
    store.write(&checkpoints)?;
    Ok(restored)
}

/// Deals `count` targets round-robin into at most `threads` non-empty groups.
fn share_out(count: usize, threads: usize) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); threads.min(count)];
    for index in 0..count {
        let n = groups.len();
        groups[index % n].push(index);
    }
    groups
}

/// One partition being restored by a group.
struct Progress {
    index: usize,
    partition: i32,
    next: i64,
    staged: StagedWrites,
    restored: Restored,
    done: bool,
}

fn restore_group(
    config: &Config,
    store: &Store,
    targets: &[RestoreTarget],
    group: &[usize],
    started: Instant,
    on_progress: &(dyn Fn(usize, u64) + Sync),
) -> Result<Vec<(usize, Restored)>, RestoreError> {
    let mut reading = clients::plain_config(config);
    RESTORE_PREFETCH.apply(&mut reading, config);
    let consumer: BaseConsumer<ReadToEnd> = clients::consumer_with(
        &reading,
        ReadToEnd {
            reading: "changelogs",
        },
    )?;
    let mut everything = clients::base(config);
    everything.set("isolation.level", "read_uncommitted");
    let uncommitted: BaseConsumer = clients::consumer_with(&everything, DefaultConsumerContext)?;

    let mut progress = Vec::with_capacity(group.len());
    let mut assignment = TopicPartitionList::new();
    for &index in group {
        let target = &targets[index];
        let topic = target.changelog.as_str();
        let p = i32::from(target.partition);
        let (low, high) = stable_end(config, &consumer, &uncommitted, topic, p)?;
        let key = checkpoint_key(topic, target.partition);
        let checkpoint = store.read_meta(&key)?;
        let (from, wiped) = match checkpoint {
            Some(c) if (low..=high).contains(&c) => (c, false),
            _ => {
                let mut meta = target.task_meta.clone();
                meta.push(key);
                store.delete_partition(&target.families, target.partition, &meta)?;
                (low, true)
            }
        };
        let done = from >= high;
        if !done {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(from))
                .expect("a fresh list accepts any partition");
        }
        progress.push(Progress {
            index,
            partition: p,
            next: from,
            staged: store.staged(),
            restored: Restored {
                records: 0,
                from,
                wiped,
                checkpoint,
                low,
                high,
                seconds: started.elapsed().as_secs_f64(),
                next: from,
            },
            done,
        });
    }
    if assignment.count() > 0 {
        consumer
            .assign(&assignment)
            .map_err(|e| ClientError::broker(config, "read the changelogs", e))?;
    }
    let mut last_progress = Instant::now();
    let mut last_error = String::from("none");
    while let Some(waiting) = progress.iter().find(|t| !t.done).map(|t| t.index) {
        let mut check_ends = false;
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let topic = message.topic();
                let at = progress.iter_mut().find(|t| {
                    !t.done
                        && t.partition == message.partition()
                        && targets[t.index].changelog == topic
                });
                // A partition already complete gets nothing more: this process owns
                // the task, so nobody writes to its changelog meanwhile.
                if let Some(task) = at {
                    let change = changelog::decode_borrowed(
                        message.key().unwrap_or_default(),
                        message.payload(),
                    )
                    .map_err(|source| RestoreError::Corrupt {
                        topic: topic.to_string(),
                        partition: task.partition,
                        offset: message.offset(),
                        source,
                    })?;
                    store.stage(&mut task.staged, change.family, change.key, change.value);
                    task.next = message.offset() + 1;
                    task.restored.records += 1;
                    last_progress = Instant::now();
                    if task.next >= task.restored.high {
                        finish(store, &consumer, targets, task, started, on_progress)?;
                    } else if task.staged.len() >= BATCH_RECORDS
                        || task.staged.bytes() >= BATCH_BYTES
                    {
                        write_through(store, task, task.next, on_progress)?;
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => check_ends = true,
            Some(Err(e)) => last_error = e.to_string(),
            None => {
                on_progress(waiting, 0);
                check_ends = true;
            }
        }
        if check_ends {
            // Past the end, though no record reached it: the last offsets may be
            // transaction markers, which are never handed out as records.
            for task in progress.iter_mut().filter(|t| !t.done) {
                let topic = targets[task.index].changelog.as_str();
                if position_of(&consumer, topic, task.partition)
                    .is_some_and(|at| at >= task.restored.high)
                {
                    finish(store, &consumer, targets, task, started, on_progress)?;
                }
            }
        }
        if last_progress.elapsed() > STALL_LIMIT {
            if let Some(task) = progress.iter().find(|t| !t.done) {
                return Err(RestoreError::Stalled {
                    topic: targets[task.index].changelog.clone(),
                    partition: task.partition,
                    offset: task.next,
                    end: task.restored.high,
                    last_error,
                });
            }
        }
    }
    Ok(progress
        .into_iter()
        .map(|t| (t.index, t.restored))
        .collect())
}

/// Writes what the task has staged (without the write-ahead log: see the module's
/// comment), which brings its state to changelog offset `next`.
fn write_through(
    store: &Store,
    task: &mut Progress,
    next: i64,
    on_progress: &(dyn Fn(usize, u64) + Sync),
) -> Result<(), RestoreError> {
    on_progress(task.index, task.staged.len() as u64);
    store.write_staged_unlogged(&mut task.staged)?;
    task.restored.next = next;
    Ok(())
}

/// The task's changelog is read to its end: the last write, with a checkpoint past any
/// transaction markers that follow the last record.
fn finish(
    store: &Store,
    consumer: &BaseConsumer<ReadToEnd>,
    targets: &[RestoreTarget],
    task: &mut Progress,
    started: Instant,
    on_progress: &(dyn Fn(usize, u64) + Sync),
) -> Result<(), RestoreError> {
    let topic = targets[task.index].changelog.as_str();
    let end = position_of(consumer, topic, task.partition)
        .filter(|&o| o >= task.next)
        .unwrap_or(task.next);
    write_through(store, task, end, on_progress)?;
    task.done = true;
    task.restored.seconds = started.elapsed().as_secs_f64();
    Ok(())
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
    uncommitted: &BaseConsumer,
    topic: &str,
    p: i32,
) -> Result<(i64, i64), RestoreError> {
    let read_end = |e| ClientError::broker(config, &format!("read the end of `{topic}`"), e);
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

pub(super) fn position_of<C: ConsumerContext>(
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

#[cfg(test)]
mod tests {
    use super::share_out;

    #[test]
    fn targets_are_dealt_round_robin_into_at_most_one_group_per_thread() {
        assert_eq!(share_out(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(share_out(2, 4), vec![vec![0], vec![1]]);
        assert_eq!(share_out(3, 1), vec![vec![0, 1, 2]]);
        assert!(share_out(0, 4).is_empty());
    }
}
