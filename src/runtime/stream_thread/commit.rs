//! The end of a batch: state changes to the changelogs, the commit at the broker, then
//! the same changes (with the changelog offsets reached) to RocksDB; or, when anything
//! fails before the commit, the batch dropped.
//!
//! The commit at the broker runs on the committer thread (see
//! [`crate::runtime::transaction`]) while this thread processes the next batch. Its state
//! changes wait in memory until it has ended: the core's write-back caches still hold
//! them (they are only trimmed after the write), so the next batch reads what the
//! committing one wrote.

use super::{wall_clock_millis, StreamError, StreamThread};
use crate::config::{CommitPacing, KafkaConfig, Workload};
use crate::engine::task::CacheBudget;
use crate::engine::TaskId;
use crate::runtime::batch::BatchCounts;
use crate::runtime::changelog;
use crate::runtime::events::BatchAborted;
use crate::runtime::output::Abort;
use crate::runtime::restore::checkpoint_change;
use crate::runtime::transaction::InFlightCommit;
use crate::store::{Family, StateChange};
use crate::telemetry::metrics::Metrics;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Whether the open batch (`batch_age` old; `None` when no batch is open) is to be
/// committed now: once it is `commit_interval` old; or, with adaptive pacing, as soon as
/// the thread keeps up with its input and no commit is under way (an early commit never
/// waits for the one before it).
pub(super) fn batch_due(
    kafka: &KafkaConfig,
    batch_age: Option<Duration>,
    committing: bool,
    keeping_up: bool,
) -> bool {
    let Some(age) = batch_age else {
        return false;
    };
    age >= kafka.commit_interval.0
        || (kafka.commit_pacing == CommitPacing::Adaptive && !committing && keeping_up)
}

/// A batch whose commit is under way.
pub(super) struct Committing {
    commit: Option<InFlightCommit>,
    /// Each task's state changes, written to RocksDB once the commit has succeeded.
    changes: Vec<(TaskId, Vec<StateChange>)>,
    counts: BatchCounts,
    batch_started: Instant,
    commit_started: Instant,
}

impl StreamThread<'_> {
    /// Ends the open batch: waits for the commit under way (if any), then produces the
    /// batch's state changes to the changelogs and starts its commit (the transaction with
    /// the consumed offsets, or offsets after a flush). The changes reach RocksDB when
    /// the commit has succeeded, see [`StreamThread::collect_commit`].
    pub fn commit(&mut self) -> Result<(), StreamError> {
        self.collect_commit(true)?;
        let Some(batch_started) = self.batch_started else {
            return Ok(());
        };
        self.begin()?;
        let mut offsets = TopicPartitionList::new();
        let mut produced: Vec<(TaskId, Vec<StateChange>)> = Vec::new();
        for (&id, task) in &mut self.assignment.tasks {
            let mut changes = Vec::new();
            self.core.take_changes(id, &mut changes);
            for (input, next) in task.consumed.iter_mut().enumerate() {
                if let Some(offset) = next.take() {
                    let topic = &self.topics.inputs(id.0)[input];
                    offsets
                        .add_partition_offset(topic, i32::from(id.1), Offset::Offset(offset))
                        .expect("offsets are valid");
                }
            }
            produced.push((id, changes));
        }
        for ((side, p), changes) in &produced {
            let topic = self.topics.changelog(*side);
            for change in changes {
                let key = changelog::encode_key(change);
                let value = changelog::encode_value(change);
                if let Err(abort) = self.output.changelog(topic, *p, &key, value.as_deref()) {
                    return Err(self.rewind(abort));
                }
            }
        }
        let commit = match self.output.start_commit(&self.consumer, offsets) {
            Ok(commit) => commit,
            Err(abort) => return Err(self.rewind(abort)),
        };
        self.committing = Some(Committing {
            commit: Some(commit),
            changes: produced,
            counts: std::mem::take(&mut self.batch),
            batch_started,
            commit_started: Instant::now(),
        });
        self.batch_started = None;
        Ok(())
    }

    /// Collects the commit under way, waiting for it if `wait`: on success its changes
    /// go to RocksDB with the changelog offsets reached, its counts to the metrics, and
    /// what the next batch produced meanwhile to the producer. Returns whether no
    /// commit is under way any more.
    pub(super) fn collect_commit(&mut self, wait: bool) -> Result<bool, StreamError> {
        let Some(committing) = &mut self.committing else {
            return Ok(true);
        };
        let result = match self
            .output
            .finish_commit(&self.consumer, &mut committing.commit, wait)
        {
            None => return Ok(false),
            Some(result) => result,
        };
        let committing = self.committing.take().expect("checked above");
        let delivered = match result {
            Ok(delivered) => delivered,
            Err(abort) => return Err(self.rewind(abort)),
        };
        let commit_seconds = committing.commit_started.elapsed().as_secs_f64();
        self.totals.commit_seconds += commit_seconds;
        let mut changes: Vec<StateChange> = Vec::new();
        for ((side, p), task_changes) in committing.changes {
            changes.extend(task_changes);
            let topic = self.topics.changelog(side);
            if let Some(last) = delivered.get(&(topic.to_string(), i32::from(p))) {
                changes.push(checkpoint_change(topic, p, last + 1));
            }
        }
        if let Some(oldest) = self.core.min_stream_time() {
            self.peers.set_oldest_stream_time(self.index, Some(oldest));
        }
        // The store is shared: its horizon follows the oldest task of any thread.
        if let Some(oldest) = self.peers.oldest_stream_time() {
            self.store.set_dedupe_horizon(
                oldest.saturating_sub(self.config.rules.dedupe_window.millis()),
            );
        }
        self.store.write_sorted(&mut changes)?;
        count_written_bytes(&self.telemetry.metrics, &changes);
        self.publish_batch(committing.counts, committing.batch_started, commit_seconds);
        let more_waiting = self.batch_started.is_some() || !self.read_all_there_is();
        self.health().committed(more_waiting);
        let budget = CacheBudget::new(&self.config.state, Workload::Live);
        self.core
            .trim_caches(budget.shared_by(self.peers.threads()));
        if let Err(abort) = self.output.release_held() {
            return Err(self.rewind(abort));
        }
        Ok(true)
    }

    /// The batch is committed: its counts go to the totals and the metrics.
    fn publish_batch(&mut self, mut counts: BatchCounts, started: Instant, commit_seconds: f64) {
        let metrics = &self.telemetry.metrics;
        metrics.commits.inc();
        metrics.commit_duration.observe(commit_seconds);
        metrics
            .batch_duration
            .observe(started.elapsed().as_secs_f64());
        self.totals.commits += 1;
        self.totals.stats.add(&counts.stats);
        self.peers
            .count_committed(counts.stats.events_processed() + counts.stats.duplicates);
        self.totals.dead_letters += counts.dead_letter_count();
        let topics = &self.topics;
        counts.publish(
            metrics,
            &mut self.totals.latency,
            wall_clock_millis(),
            |(side, input)| &topics.inputs(side)[input],
        );
    }

    /// Drops the open batch (and a commit under way's): counts it as aborted and says
    /// what to rebuild.
    pub(super) fn rewind(&mut self, abort: Abort) -> StreamError {
        self.totals.aborts += 1;
        BatchAborted {
            reason: abort.reason,
            problem: &abort.problem,
        }
        .emit(&self.telemetry.metrics);
        self.output.abort();
        self.batch.clear();
        self.committing = None;
        StreamError::Rewind(abort.problem)
    }
}

/// Adds a committed batch's store writes to `personalizer_state_written_bytes_total`.
fn count_written_bytes(metrics: &Metrics, changes: &[StateChange]) {
    let mut bytes = [0u64; Family::ALL.len()];
    for change in changes {
        let size = change.key.len() + change.value.as_ref().map_or(0, Vec::len);
        // Declaration order is Family::ALL's order.
        bytes[change.family as usize] += size as u64;
    }
    for (family, bytes) in Family::ALL.iter().zip(bytes) {
        if bytes > 0 {
            metrics
                .state_written_bytes
                .with_label_values(&[family.name()])
                .inc_by(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka(pacing: CommitPacing) -> KafkaConfig {
        KafkaConfig {
            commit_pacing: pacing,
            ..KafkaConfig::default()
        }
    }

    const YOUNG: Option<Duration> = Some(Duration::from_millis(3));
    const OLD: Option<Duration> = Some(Duration::from_millis(100));

    #[test]
    fn no_open_batch_is_never_due() {
        for pacing in [CommitPacing::Adaptive, CommitPacing::Interval] {
            assert!(!batch_due(&kafka(pacing), None, false, true));
        }
    }

    #[test]
    fn a_batch_as_old_as_the_interval_is_due_whatever_else_holds() {
        for pacing in [CommitPacing::Adaptive, CommitPacing::Interval] {
            for (committing, keeping_up) in [(false, false), (true, false), (true, true)] {
                assert!(batch_due(&kafka(pacing), OLD, committing, keeping_up));
            }
        }
    }

    #[test]
    fn adaptive_pacing_commits_a_young_batch_when_keeping_up_and_no_commit_is_under_way() {
        let adaptive = kafka(CommitPacing::Adaptive);
        assert!(batch_due(&adaptive, YOUNG, false, true));
        assert!(
            !batch_due(&adaptive, YOUNG, true, true),
            "a commit is under way"
        );
        assert!(
            !batch_due(&adaptive, YOUNG, false, false),
            "input is waiting"
        );
    }

    #[test]
    fn interval_pacing_never_commits_a_young_batch() {
        let interval = kafka(CommitPacing::Interval);
        for (committing, keeping_up) in [(false, false), (false, true), (true, true)] {
            assert!(!batch_due(&interval, YOUNG, committing, keeping_up));
        }
    }
}
