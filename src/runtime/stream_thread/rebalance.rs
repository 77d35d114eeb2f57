//! A new assignment: the open batch dropped, the assigned tasks restored from their
//! changelogs and opened in the core.

use super::{StreamError, StreamThread};
use crate::api::shoppers::PartitionStatus;
use crate::engine::core::{stream_time_key, task_meta_keys};
use crate::engine::{Side, TaskId};
use crate::runtime::assignment::Assignment;
use crate::runtime::clients::ClientError;
use crate::runtime::events::{
    AbortReason, AssignmentRestored, BatchAborted, Rebalanced, TaskRestored,
};
use crate::runtime::peers::TaskCounts;
use crate::runtime::restore::{self, RestoreTarget};
use crate::runtime::transaction::TRANSACTION_TIMEOUT;
use crate::telemetry::health::Phase;
use rdkafka::consumer::Consumer;
use std::time::Instant;

/// Restore threads at most, each with a consumer of its own: more cores than this
/// do not make a restore faster, as the broker and RocksDB become the limit.
const MAX_RESTORE_THREADS: usize = 4;

impl StreamThread<'_> {
    /// A rebalance happened inside `poll`: drop uncommitted work (the group's offsets
    /// may have moved to another member), then open and restore the assigned tasks.
    pub(super) fn on_rebalance(&mut self) -> Result<(), StreamError> {
        // The commit under way is of work done before the rebalance: collect it (what
        // the next batch produced meanwhile is dropped below). If it failed, the tasks
        // are restored from what was committed anyway.
        self.output.discard_held();
        match self.collect_commit(true) {
            Ok(_) | Err(StreamError::Rewind(_)) => {}
            Err(e) => return Err(e),
        }
        let metrics = &self.telemetry.metrics;
        if self.output.in_transaction {
            self.totals.aborts += 1;
            BatchAborted {
                reason: AbortReason::Rebalance,
                problem: "the group rebalanced while a batch was open",
            }
            .emit(metrics);
            self.output.abort();
        }
        self.batch_started = None;
        self.batch.clear();
        self.core.close_tasks();
        // Until the new tasks have read all there is, no thread's quiet tasks follow
        // the wall clock.
        self.peers.set_caught_up(self.index, false);
        self.assignment = Assignment::default();
        // Only this thread's partitions (also those a predecessor rebuilt after an abort
        // served): the other threads still serve theirs.
        for partition in self.peers.served_by(self.index) {
            self.served.set(partition, PartitionStatus::NotHere);
        }
        // Every thread's: the others set theirs again within a second (see gauges.rs),
        // and partitions that left this instance (or a rebuilt thread) leave no gauge.
        metrics.consumer_lag.reset();
        self.health().set_phase(Phase::Restoring);
        let assigned = self
            .consumer
            .assignment()
            .map_err(|e| ClientError::broker(self.config, "read the assignment", e))?;
        // Asked for no partitions (all revoked, the new assignment still to come), the
        // coordinator would not answer and the call would wait out its whole timeout.
        let committed = if assigned.count() == 0 {
            assigned.clone()
        } else {
            self.consumer
                .committed_offsets(assigned.clone(), TRANSACTION_TIMEOUT)
                .map_err(|e| ClientError::broker(self.config, "read the committed offsets", e))?
        };
        // The input waits while the tasks restore: fetched meanwhile, a backlog would
        // fill librdkafka's queues (up to 64 MiB per partition) for nothing.
        if assigned.count() > 0 {
            self.consumer.pause(&assigned).map_err(|e| {
                ClientError::broker(self.config, "pause the assigned partitions", e)
            })?;
        }
        let assignment = Assignment::new(&self.topics, &assigned, &committed);
        let count = |side| assignment.tasks.keys().filter(|(s, _)| *s == side).count() as i64;
        let tasks = [count(Side::Customer), count(Side::Product)];
        self.peers.update_tasks(
            self.index,
            |mine| {
                *mine = TaskCounts {
                    assigned: tasks,
                    restoring: tasks,
                }
            },
            |all| {
                Rebalanced {
                    thread: self.index,
                    tasks,
                    process_assigned: all.assigned,
                    process_restoring: all.restoring,
                }
                .emit(metrics)
            },
        );
        let ids: Vec<TaskId> = assignment.tasks.keys().copied().collect();
        let customer_partitions = || {
            ids.iter()
                .filter(|(side, _)| *side == Side::Customer)
                .map(|(_, partition)| *partition)
        };
        for partition in customer_partitions() {
            self.served.set(partition, PartitionStatus::Restoring);
        }
        self.open_tasks(&ids)?;
        for partition in customer_partitions() {
            self.served.set(partition, PartitionStatus::Serving);
        }
        let mine: Vec<u16> = customer_partitions().collect();
        self.announcer
            .announce(&self.peers.serve(self.index, &mine));
        if ids.is_empty() {
            // Its partitions moved to other members, which hold the dedupe horizon back
            // for them themselves.
            self.peers.set_oldest_stream_time(self.index, None);
        }
        // librdkafka keeps a partition paused across a reassignment; this assignment
        // starts with nothing buffered, so a partition left paused (under the last one
        // its buffer was full; above, for the restore) would never be fetched again,
        // and every task waiting for it would wait for good.
        if assigned.count() > 0 {
            self.consumer.resume(&assigned).map_err(|e| {
                ClientError::broker(self.config, "resume the assigned partitions", e)
            })?;
        }
        self.assignment = assignment;
        self.refresh_gauges();
        self.health().set_phase(Phase::Running);
        Ok(())
    }

    /// Restores the tasks from their changelogs, several at once, and opens them in the
    /// core.
    fn open_tasks(&mut self, ids: &[TaskId]) -> Result<(), StreamError> {
        let started = Instant::now();
        let telemetry = self.telemetry;
        let health = self.health();
        let targets: Vec<RestoreTarget> = ids
            .iter()
            .map(|&(side, partition)| RestoreTarget {
                changelog: self.topics.changelog(side).to_string(),
                partition,
                families: side.families(),
                task_meta: task_meta_keys(side, partition),
            })
            .collect();
        let counters: Vec<_> = ids
            .iter()
            .map(|(side, _)| {
                telemetry
                    .metrics
                    .restored_records
                    .with_label_values(&[side.name()])
            })
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let restored = restore::restore_all(
            self.config,
            self.store,
            &targets,
            threads.min(MAX_RESTORE_THREADS),
            &|index, records| {
                counters[index].inc_by(records);
                health.beat();
            },
        )?;
        let mut records = 0;
        for (&id, restored) in ids.iter().zip(restored) {
            let (side, partition) = id;
            records += restored.records;
            self.peers.update_tasks(
                self.index,
                |mine| mine.restoring[side as usize] -= 1,
                |all| {
                    TaskRestored {
                        side,
                        partition,
                        records: restored.records,
                        from_offset: restored.from,
                        wiped: restored.wiped,
                        checkpoint: restored.checkpoint,
                        changelog_low: restored.low,
                        changelog_high: restored.high,
                        seconds: restored.seconds,
                        process_restoring: all.restoring,
                    }
                    .emit(&telemetry.metrics)
                },
            );
            let stream_time = self.store.read_meta(&stream_time_key(side, partition))?;
            self.core.open_task(self.store, id, stream_time)?;
        }
        self.totals.restored_records += records;
        AssignmentRestored {
            thread: self.index,
            tasks: ids.len(),
            records,
            seconds: started.elapsed().as_secs_f64(),
        }
        .emit();
        Ok(())
    }
}
