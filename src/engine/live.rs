//! One task driven on its own clock, as the live runtime needs it.
//!
//! [`super::Engine`] keeps one stream time for every task, which is right for `replay`
//! of a single file. Live, each task reads its own partitions at its own pace, so each
//! keeps its own stream time: the largest event time it has seen, moved by events, by
//! forwarded messages (judged by their own event time) and by the wall clock when the
//! runtime says the task is caught up. Timers fire in due order before whatever moves
//! the clock past them, exactly as in `replay`.

use super::processor::Processor;
use super::stats::Stats;
use super::task::{Task, TaskError};
use super::Outcome;
use crate::config::RulesConfig;
use crate::decision::Decision;
use crate::event::Event;
use crate::rules::{Ctx, Forward, Note, Outputs};
use crate::store::{StateChange, Store};
use crate::time::Millis;

/// What a task produced since the caller last drained it.
#[derive(Debug, Default)]
pub struct TaskOutput {
    pub decisions: Vec<Decision>,
    pub forwards: Vec<Forward>,
    pub stats: Stats,
}

pub struct LiveTask<P: Processor> {
    task: Task<P>,
    partition: u16,
    stream_time: Option<Millis>,
    scratch: Outputs,
}

/// The `meta` key under which a task's stream time is kept (and changelogged).
pub fn stream_time_key(processor: &str, partition: u16) -> String {
    format!("task/{processor}/{partition}/stream_time")
}

impl<P: Processor> LiveTask<P> {
    /// Opens the task on what the store holds for its partition.
    pub fn open(store: &Store, partition: u16) -> Result<Self, TaskError> {
        let stream_time = store
            .read_meta(&stream_time_key(P::NAME, partition))
            .map_err(TaskError::Store)?;
        Ok(LiveTask {
            task: Task::open(store, partition)?,
            partition,
            stream_time,
            scratch: Outputs::default(),
        })
    }

    pub fn partition(&self) -> u16 {
        self.partition
    }

    pub fn stream_time(&self) -> Option<Millis> {
        self.stream_time
    }

    /// When the earliest pending timer falls due.
    pub fn next_due(&self) -> Option<Millis> {
        self.task.next_timer().map(|t| t.due)
    }

    pub fn pending_timers(&self) -> usize {
        self.task.pending_timers()
    }

    /// Applies one input event keyed by `key` (a shopper or a SKU).
    pub fn process_event(
        &mut self,
        store: &Store,
        rules: &RulesConfig,
        key: &str,
        event: &Event,
        out: &mut TaskOutput,
    ) -> Result<Outcome, TaskError> {
        let now = self
            .stream_time
            .map_or(event.occurred_at, |t| t.max(event.occurred_at));
        let window = rules.dedupe_window.millis();
        if self
            .task
            .seen_before(store, key, &event.event_id, now, window)?
        {
            out.stats.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }
        self.advance_to(store, rules, now, out)?;
        let mut ctx = Ctx {
            now,
            rules,
            out: &mut self.scratch,
        };
        self.task.on_event(store, key, event, &mut ctx)?;
        collect(&mut self.scratch, out);
        out.stats.count_event(event.body.type_name());
        Ok(Outcome::Processed)
    }

    /// Applies a message forwarded by another task. The rules judge it by its own event
    /// time `at`, though it may arrive after this task's clock has moved past it; what
    /// it decides is decided at `now` (at least `at`: the sender's stream time when it
    /// sent the message, or this task's when that is later).
    #[allow(clippy::too_many_arguments)] // the store, settings, input, and two clocks
    pub fn process_message(
        &mut self,
        store: &Store,
        rules: &RulesConfig,
        key: &str,
        at: Millis,
        now: Millis,
        message: &P::Message,
        out: &mut TaskOutput,
    ) -> Result<(), TaskError> {
        let now = now.max(at);
        self.advance_to(store, rules, now, out)?;
        let mut ctx = Ctx {
            now,
            rules,
            out: &mut self.scratch,
        };
        self.task.on_message(store, key, at, message, &mut ctx)?;
        collect(&mut self.scratch, out);
        Ok(())
    }

    /// Moves stream time to `until` (never back), firing every timer due by then.
    pub fn advance_to(
        &mut self,
        store: &Store,
        rules: &RulesConfig,
        until: Millis,
        out: &mut TaskOutput,
    ) -> Result<(), TaskError> {
        loop {
            let mut ctx = Ctx {
                now: until,
                rules,
                out: &mut self.scratch,
            };
            if !self.task.fire_next_timer(store, until, &mut ctx)? {
                break;
            }
            out.stats.timers_fired += 1;
            collect(&mut self.scratch, out);
        }
        if self.stream_time.is_none_or(|t| t < until) {
            self.stream_time = Some(until);
        }
        Ok(())
    }

    /// Everything changed since the last call, stream time included.
    pub fn take_changes(&mut self, changes: &mut Vec<StateChange>) {
        self.task.take_changes(changes);
        if let Some(t) = self.stream_time {
            changes.push(Store::meta_change(
                &stream_time_key(P::NAME, self.partition),
                t,
            ));
        }
    }

    pub fn cached_entries(&self) -> usize {
        self.task.cached_entries()
    }

    /// See [`Task::evict`]; call after [`LiveTask::take_changes`].
    pub fn evict(&mut self, max: usize) {
        self.task.evict(max);
    }
}

fn collect(scratch: &mut Outputs, out: &mut TaskOutput) {
    for decision in &scratch.decisions {
        out.stats.count_decision(decision.decision_type().name());
    }
    out.decisions.append(&mut scratch.decisions);
    out.stats.forwards += scratch.forwards.len() as u64;
    out.forwards.append(&mut scratch.forwards);
    for note in scratch.notes.drain(..) {
        match note {
            Note::SuppressedNoConsent => out.stats.suppressed_no_consent += 1,
            Note::NotificationDropped => out.stats.notifications_dropped += 1,
        }
    }
}
