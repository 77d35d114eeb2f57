//! The end of a batch: state changes to the changelogs, the commit at the broker, then
//! the same changes (with the changelog offsets reached) to RocksDB; or, when anything
//! fails before the commit, the batch dropped.

use super::{wall_clock_millis, StreamError, StreamThread};
use crate::engine::TaskId;
use crate::runtime::changelog;
use crate::runtime::events::BatchAborted;
use crate::runtime::output::Abort;
use crate::runtime::restore::checkpoint_change;
use crate::store::StateChange;
use rdkafka::{Offset, TopicPartitionList};
use std::time::Instant;

impl StreamThread<'_> {
    /// Produces the state changes to the changelogs, commits (the transaction with the
    /// consumed offsets, or offsets after a flush), then writes the same changes to
    /// RocksDB with the changelog offsets they reach.
    pub fn commit(&mut self) -> Result<(), StreamError> {
        if self.batch_started.is_none() {
            return Ok(());
        }
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
        let committing = Instant::now();
        let delivered = match self.output.commit(&self.consumer, &offsets) {
            Ok(delivered) => delivered,
            Err(abort) => return Err(self.rewind(abort)),
        };
        let commit_seconds = committing.elapsed().as_secs_f64();
        self.totals.commit_seconds += commit_seconds;
        let mut changes: Vec<StateChange> = Vec::new();
        for ((side, p), task_changes) in produced {
            changes.extend(task_changes);
            let topic = self.topics.changelog(side);
            if let Some(last) = delivered.get(&(topic.to_string(), i32::from(p))) {
                changes.push(checkpoint_change(topic, p, last + 1));
            }
        }
        if let Some(horizon) = self.core.min_stream_time() {
            self.store.set_dedupe_horizon(
                horizon.saturating_sub(self.config.rules.dedupe_window.millis()),
            );
        }
        self.store.write_sorted(&mut changes)?;
        self.publish_batch(commit_seconds);
        self.core.trim_caches(self.config.state.cache_max_entries);
        self.batch_started = None;
        Ok(())
    }

    /// The batch is committed: its counts go to the totals and the metrics.
    fn publish_batch(&mut self, commit_seconds: f64) {
        let metrics = &self.telemetry.metrics;
        metrics.commits.inc();
        metrics.commit_duration.observe(commit_seconds);
        if let Some(started) = self.batch_started {
            metrics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
        }
        self.totals.commits += 1;
        self.totals.stats.add(&self.batch.stats);
        self.totals.dead_letters += self.batch.dead_letter_count();
        let topics = &self.topics;
        self.batch.publish(
            metrics,
            &mut self.totals.latency,
            wall_clock_millis(),
            |(side, input)| &topics.inputs(side)[input],
        );
    }

    /// Drops the open batch: counts it as aborted and says what to rebuild.
    pub(super) fn rewind(&mut self, abort: Abort) -> StreamError {
        self.totals.aborts += 1;
        BatchAborted {
            reason: abort.reason,
            problem: &abort.problem,
        }
        .emit(&self.telemetry.metrics);
        self.output.abort();
        self.batch.clear();
        StreamError::Rewind(abort.problem)
    }
}
