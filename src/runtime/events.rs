//! What the stream thread reports: one typed value per occurrence, whose `emit` writes
//! the log line and moves the metrics together, so the two cannot drift apart (the way
//! Vector's `internal_events` work). Counts that belong to a batch go into the batch and
//! reach the metrics only if it commits.

use super::batch::{BatchCounts, InputId};
use super::peers::PerSide;
use crate::engine::Side;
use crate::telemetry::metrics::Metrics;
use std::time::Duration;

/// Why the open batch was dropped (the `reason` label of `personalizer_aborts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    Rebalance,
    ProduceFailed,
    DeliveryFailed,
    CommitFailed,
}

impl AbortReason {
    pub const ALL: [AbortReason; 4] = [
        AbortReason::Rebalance,
        AbortReason::ProduceFailed,
        AbortReason::DeliveryFailed,
        AbortReason::CommitFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AbortReason::Rebalance => "rebalance",
            AbortReason::ProduceFailed => "produce_failed",
            AbortReason::DeliveryFailed => "delivery_failed",
            AbortReason::CommitFailed => "commit_failed",
        }
    }
}

/// The uncommitted batch was dropped; the thread rebuilds from the last commit.
pub struct BatchAborted<'a> {
    pub reason: AbortReason,
    pub problem: &'a str,
}

impl BatchAborted<'_> {
    pub fn emit(self, metrics: &Metrics) {
        tracing::warn!(
            reason = self.reason.label(),
            problem = self.problem,
            "batch aborted: its work is dropped and redone from the last commit"
        );
        metrics
            .aborts
            .with_label_values(&[self.reason.label()])
            .inc();
    }
}

/// The group gave this instance a new assignment.
pub struct Rebalanced {
    /// The stream thread that was assigned the tasks.
    pub thread: usize,
    /// Tasks assigned to that thread, per side.
    pub tasks: PerSide,
    /// Tasks assigned to every thread of the process, and those of them restoring.
    pub process_assigned: PerSide,
    pub process_restoring: PerSide,
}

impl Rebalanced {
    pub fn emit(self, metrics: &Metrics) {
        tracing::info!(
            thread = self.thread,
            customer_tasks = self.tasks[0],
            product_tasks = self.tasks[1],
            "rebalanced: restoring the assigned tasks"
        );
        metrics.rebalances.inc();
        for side in Side::ALL {
            let i = side as usize;
            metrics
                .tasks_assigned
                .with_label_values(&[side.name()])
                .set(self.process_assigned[i]);
            metrics
                .tasks_restoring
                .with_label_values(&[side.name()])
                .set(self.process_restoring[i]);
        }
    }
}

/// Every task of a new assignment was restored and opened: the assignment's restore
/// as a whole, which is what a reader of the log waits for after a rebalance.
pub struct AssignmentRestored {
    pub thread: usize,
    pub tasks: usize,
    pub records: u64,
    pub seconds: f64,
}

impl AssignmentRestored {
    pub fn emit(self) {
        let per_second = if self.seconds > 0.0 {
            (self.records as f64 / self.seconds) as u64
        } else {
            0
        };
        tracing::info!(
            thread = self.thread,
            tasks = self.tasks,
            records = self.records,
            seconds = self.seconds,
            records_per_second = per_second,
            "assignment restored"
        );
    }
}

/// Every stream thread has read and committed all there is: a stretch of work (a
/// backlog, or live traffic between two commits) is done.
pub struct CaughtUp {
    /// Events processed (and duplicates dropped) in that stretch, by every thread.
    pub events: u64,
    pub elapsed: Duration,
}

impl CaughtUp {
    pub fn emit(self) {
        let seconds = self.elapsed.as_secs_f64();
        let rate = (self.events as f64 / seconds).round();
        // Live traffic catches up every commit; only a real backlog is worth a line.
        if seconds >= 1.0 {
            tracing::info!(
                events = self.events,
                seconds,
                events_per_second = rate,
                "caught up"
            );
        } else {
            tracing::debug!(
                events = self.events,
                seconds,
                events_per_second = rate,
                "caught up"
            );
        }
    }
}

/// A task's state was brought up to date from its changelog.
pub struct TaskRestored {
    pub side: Side,
    pub partition: u16,
    pub records: u64,
    pub from_offset: i64,
    pub wiped: bool,
    pub checkpoint: Option<i64>,
    pub changelog_low: i64,
    pub changelog_high: i64,
    pub seconds: f64,
    /// Tasks of the process still restoring, per side, this one done.
    pub process_restoring: PerSide,
}

impl TaskRestored {
    /// Restored records are counted as they are read; this closes the restore.
    pub fn emit(self, metrics: &Metrics) {
        tracing::info!(
            processor = self.side.name(),
            task = self.partition,
            records = self.records,
            from_offset = self.from_offset,
            wiped = self.wiped,
            checkpoint = self.checkpoint,
            changelog_low = self.changelog_low,
            changelog_high = self.changelog_high,
            seconds = self.seconds,
            "task restored"
        );
        metrics
            .tasks_restoring
            .with_label_values(&[self.side.name()])
            .set(self.process_restoring[self.side as usize]);
    }
}

/// A record that cannot be processed goes to the dead-letter topic.
pub struct RecordDeadLettered<'a> {
    pub input: InputId,
    pub topic: &'a str,
    pub partition: u16,
    pub offset: i64,
    pub reason: &'static str,
    pub error: &'a str,
}

impl RecordDeadLettered<'_> {
    /// Counted in the batch: it reaches the metrics when the batch commits.
    pub fn emit(self, batch: &mut BatchCounts) {
        tracing::warn!(
            task = self.partition,
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            reason = self.reason,
            error = self.error,
            "record sent to the dead-letter topic"
        );
        batch.stats.invalid += 1;
        batch.dead_letter(self.input, self.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_reasons_are_the_series_the_metrics_start_at_zero() {
        let mut labels: Vec<&str> = AbortReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        assert_eq!(labels, crate::telemetry::metrics::ABORT_REASONS);
    }

    #[test]
    fn an_abort_is_counted_by_its_reason() {
        let metrics = Metrics::new();
        BatchAborted {
            reason: AbortReason::CommitFailed,
            problem: "the broker went away",
        }
        .emit(&metrics);
        assert!(metrics
            .render()
            .contains(r#"personalizer_aborts_total{reason="commit_failed"} 1"#));
    }

    #[test]
    fn a_rebalance_sets_the_task_gauges() {
        let metrics = Metrics::new();
        Rebalanced {
            thread: 1,
            tasks: [2, 1],
            process_assigned: [3, 2],
            process_restoring: [3, 2],
        }
        .emit(&metrics);
        let text = metrics.render();
        for line in [
            "personalizer_rebalances_total 1",
            r#"personalizer_tasks_assigned{processor="customer"} 3"#,
            r#"personalizer_tasks_restoring{processor="product"} 2"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
