//! The task core that both drivers run: `replay` and the live runtime.
//!
//! A [`Core`] holds the tasks its driver has (every partition of both processors in
//! `replay`; the assigned ones live) and does, once for both, what happens to an input:
//! drop a duplicate, fire the timers its time passes, run the rule, deliver what the rule
//! forwards (at once and in memory to a task the core holds; back to the driver for a
//! task elsewhere), and collect the decisions and counts. It also hands out each task's
//! state changes for the commit and keeps the write-back caches within their budget.
//!
//! Stream time is the one thing the drivers choose, with [`Clock`]: `replay` of one file
//! keeps one clock for every task (CONTRACT §4); live, each task reads its own partitions
//! at its own pace and keeps its own clock, which the runtime may also move to the wall
//! clock when the task is quiet.

use super::partitioner::partition_for;
use super::processor::{CustomerProcessor, ProductProcessor};
use super::side_task::{Clocked, SideTask};
use super::stats::Stats;
use super::task::{evict_to, eviction_cutoff, CacheBudget, Task, TaskError, UseOrder};
use super::Outcome;
use crate::catalog::{ProductCatalog, SharedCatalog};
use crate::config::RulesConfig;
use crate::decision::{Decision, DecisionBody, LifecycleStage};
use crate::event::Event;
use crate::forward::Forward;
use crate::rules::{Ctx, Note, Outputs};
use crate::store::{StateChange, Store};
use crate::time::Millis;
use std::collections::{BTreeMap, VecDeque};

pub use super::side::{Side, TaskId};
pub use super::task_meta::{lifecycle_key, stream_time_key, task_meta_keys, LifecycleCounts};

/// How stream time moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Each task keeps its own stream time: the largest event time it has seen.
    PerTask,
    /// One stream time for every task, the largest event time seen by any; before an
    /// input is applied, every task's timers due by then fire, in due order.
    Shared,
}

/// How a forwarded message reached its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Delivery {
    /// The receiving task is in this core: applied at once, in memory.
    InProcess,
    /// The receiving task is elsewhere: the driver sends it through the internal topic.
    Topic,
}

/// What the core produced since the driver last took it.
#[derive(Debug, Default)]
pub struct Output {
    pub decisions: Vec<Decision>,
    /// Messages for tasks this core does not hold, in the order they were sent.
    pub remote: Vec<Forward>,
    pub stats: Stats,
    /// Forwarded messages by receiving side and delivery.
    pub forwarded: BTreeMap<(Side, Delivery), u64>,
}

/// Where the product table the rules rank against comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSource {
    /// The product records this core makes, as it makes them (`replay`: every SKU's
    /// task is here).
    OwnRecords,
    /// Someone else fills it: live, the global table that follows the products topic.
    Table,
}

/// Whether messages are being delivered (re-entrancy guard of [`Core::deliver_local`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivering {
    Idle,
    Busy,
}

/// How far [`Core::advance`] moved a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advanced {
    /// To the time asked for: every timer due by then has fired.
    Reached,
    /// To the last timer its budget allowed: more are due by the time asked for.
    Interrupted,
}

pub struct Core {
    rules: RulesConfig,
    clock: Clock,
    /// Partition counts of each side, to find the task of a forwarded message's key.
    partitions: [u16; 2],
    tasks: BTreeMap<TaskId, Box<dyn SideTask + Send>>,
    /// The shared stream time ([`Clock::Shared`]).
    shared_time: Option<Millis>,
    /// Messages for tasks of this core, with the time they were sent at.
    local: VecDeque<(Forward, Millis)>,
    /// Whether [`Core::deliver_local`] is under way further up the stack.
    delivery: Delivering,
    scratch: Outputs,
    output: Output,
    /// Each customer task's count of customers per lifecycle stage, and whether it
    /// changed since its changes were last taken.
    lifecycle: BTreeMap<TaskId, (LifecycleCounts, bool)>,
    catalog: SharedCatalog,
    catalog_source: CatalogSource,
    /// The last-use order of every task's cached entries, for one eviction cutoff.
    uses: UseOrder,
}

impl Core {
    /// A core with no tasks yet. `partitions` are the customer and product sides'.
    pub fn new(rules: RulesConfig, clock: Clock, partitions: [u16; 2]) -> Core {
        Core {
            rules,
            clock,
            partitions,
            tasks: BTreeMap::new(),
            shared_time: None,
            local: VecDeque::new(),
            delivery: Delivering::Idle,
            scratch: Outputs::default(),
            output: Output::default(),
            lifecycle: BTreeMap::new(),
            catalog: ProductCatalog::shared(),
            catalog_source: CatalogSource::OwnRecords,
            uses: UseOrder::default(),
        }
    }

    /// Ranks products against `catalog`, which the driver keeps filled.
    pub fn use_catalog(&mut self, catalog: SharedCatalog) {
        self.catalog = catalog;
        self.catalog_source = CatalogSource::Table;
    }

    /// The product table the rules rank against.
    pub fn catalog(&self) -> SharedCatalog {
        self.catalog.clone()
    }

    /// Opens a task on what the store holds for it; `stream_time` is where its clock
    /// stands (what the store kept for it, or none).
    pub fn open_task(
        &mut self,
        store: &Store,
        id: TaskId,
        stream_time: Option<Millis>,
    ) -> Result<(), TaskError> {
        let (side, partition) = id;
        let task: Box<dyn SideTask + Send> = match side {
            Side::Customer => Box::new(Clocked::<CustomerProcessor> {
                task: Task::open(store, partition, self.uses.clone())?,
                stream_time,
            }),
            Side::Product => Box::new(Clocked::<ProductProcessor> {
                task: Task::open(store, partition, self.uses.clone())?,
                stream_time,
            }),
        };
        self.tasks.insert(id, task);
        if side == Side::Customer {
            let mut counts = LifecycleCounts::default();
            for stage in LifecycleStage::ALL {
                counts.0[stage as usize] = store
                    .read_meta(&lifecycle_key(partition, stage))?
                    .unwrap_or(0);
            }
            self.lifecycle.insert(id, (counts, false));
        }
        Ok(())
    }

    /// Customers per lifecycle stage over every open task.
    pub fn lifecycle_counts(&self) -> LifecycleCounts {
        let mut total = LifecycleCounts::default();
        for (counts, _) in self.lifecycle.values() {
            for (sum, n) in total.0.iter_mut().zip(counts.0) {
                *sum += n;
            }
        }
        total
    }

    /// Starts the shared clock at `t` ([`Clock::Shared`], resuming a replay).
    pub fn set_shared_time(&mut self, t: Option<Millis>) {
        self.shared_time = t;
    }

    /// Drops every task and whatever they did since their last changes were taken.
    pub fn close_tasks(&mut self) {
        self.tasks.clear();
        self.lifecycle.clear();
        self.local.clear();
        self.output = Output::default();
    }

    pub fn task_ids(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks.keys().copied()
    }

    /// Where task `id`'s clock stands: its own, or the shared one.
    pub fn stream_time(&self, id: TaskId) -> Option<Millis> {
        match self.clock {
            Clock::Shared => self.shared_time,
            Clock::PerTask => self.tasks.get(&id).and_then(|t| t.stream_time()),
        }
    }

    /// The shared stream time, or the earliest of the tasks' clocks.
    pub fn min_stream_time(&self) -> Option<Millis> {
        match self.clock {
            Clock::Shared => self.shared_time,
            Clock::PerTask => self.tasks.values().filter_map(|t| t.stream_time()).min(),
        }
    }

    /// When the task's earliest pending timer falls due.
    pub fn next_due(&self, id: TaskId) -> Option<Millis> {
        self.tasks
            .get(&id)
            .and_then(|t| t.next_timer())
            .map(|t| t.due)
    }

    pub fn pending_timers(&self, side: Side) -> usize {
        self.tasks
            .iter()
            .filter(|((s, _), _)| *s == side)
            .map(|(_, t)| t.pending_timers())
            .sum()
    }

    /// Takes what the core produced since the last call.
    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.output)
    }

    /// The task that owns `key` on `side`, by Kafka's partitioner.
    pub fn task_for(&self, side: Side, key: &str) -> TaskId {
        let partitions = self.partitions[side as usize];
        (side, partition_for(key.as_bytes(), partitions))
    }

    /// Applies one input event keyed by `key` to task `id`: skipped if its id was seen
    /// within the dedupe window, else the timers its time passes fire first.
    pub fn process_event(
        &mut self,
        store: &Store,
        id: TaskId,
        key: &str,
        event: &Event,
    ) -> Result<Outcome, TaskError> {
        let clock = self.stream_time(id);
        let now = clock.map_or(event.occurred_at, |t| t.max(event.occurred_at));
        let window = self.rules.dedupe_window.millis();
        let task = self
            .tasks
            .get_mut(&id)
            .expect("the driver routes to its own tasks");
        if task.seen_before(store, key, &event.event_id, now, window)? {
            self.output.stats.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }
        self.advance_fully(store, id, now)?;
        let task = self.tasks.get_mut(&id).expect("opened");
        let catalog = read(&self.catalog);
        let mut ctx = Ctx {
            now,
            rules: &self.rules,
            catalog: &catalog,
            out: &mut self.scratch,
        };
        task.on_event(store, key, event, &mut ctx)?;
        drop(catalog);
        if let Some(refusal) = self.scratch.refused.take() {
            return Ok(Outcome::Refused(refusal));
        }
        self.collect(id, now);
        self.deliver_local(store)?;
        self.output.stats.count_event(event.body.type_name());
        Ok(Outcome::Processed)
    }

    /// Applies a message that reached task `id` through the internal topic. The rules
    /// judge it by its own event time, though it may arrive after this task's clock has
    /// moved past it.
    pub fn process_message(
        &mut self,
        store: &Store,
        id: TaskId,
        forward: Forward,
    ) -> Result<(), TaskError> {
        let (_, _, at) = Side::addressee(&forward);
        self.apply_message(store, id, forward, at)?;
        self.deliver_local(store)
    }

    /// Moves stream time toward `until` (never back): task `id`'s clock
    /// ([`Clock::PerTask`]) or the shared one, firing the timers due by then in due
    /// order, at most `*budget` of them (less what it fires). When the budget runs out
    /// first the clock stays at the last timer fired, and a later call goes on.
    pub fn advance(
        &mut self,
        store: &Store,
        id: TaskId,
        until: Millis,
        budget: &mut usize,
    ) -> Result<Advanced, TaskError> {
        match self.clock {
            Clock::PerTask => self.fire_due(store, Some(id), until, budget),
            Clock::Shared => self.fire_due(store, None, until, budget),
        }
    }

    /// Moves every task's clock to `until`, firing what falls due (`replay --until`).
    pub fn advance_all(&mut self, store: &Store, until: Millis) -> Result<(), TaskError> {
        match self.clock {
            Clock::Shared => {
                let mut unbounded = usize::MAX;
                self.fire_due(store, None, until, &mut unbounded)?;
            }
            Clock::PerTask => {
                let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
                for id in ids {
                    self.advance_fully(store, id, until)?;
                }
            }
        }
        Ok(())
    }

    /// [`Core::advance`] without a budget: what an event or a message does to its task.
    fn advance_fully(&mut self, store: &Store, id: TaskId, until: Millis) -> Result<(), TaskError> {
        let mut unbounded = usize::MAX;
        self.advance(store, id, until, &mut unbounded)?;
        Ok(())
    }

    /// Takes the state changes of task `id` since the last call, its clock included
    /// when each task keeps its own.
    pub fn take_changes(&mut self, id: TaskId, changes: &mut Vec<StateChange>) {
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.take_changes(changes);
        if let (Clock::PerTask, Some(t)) = (self.clock, task.stream_time()) {
            changes.push(Store::meta_change(&stream_time_key(id.0, id.1), t));
        }
        if let Some((counts, dirty)) = self.lifecycle.get_mut(&id) {
            if std::mem::replace(dirty, false) {
                for stage in LifecycleStage::ALL {
                    changes.push(Store::meta_change(
                        &lifecycle_key(id.1, stage),
                        counts.get(stage),
                    ));
                }
            }
        }
    }

    /// What the write-back caches of all tasks hold, as of the last commit.
    pub fn cache_usage(&self) -> CacheBudget {
        CacheBudget {
            entries: self.tasks.values().map(|t| t.cached_entries()).sum(),
            bytes: self.tasks.values().map(|t| t.cached_bytes()).sum(),
        }
    }

    /// Keeps the write-back caches within `budget` in total (to nine tenths of it, so
    /// the next commits rarely sort again): the least recently used entries go first,
    /// by one cutoff over every task, so a hot SKU stays while a shopper gone quiet goes
    /// whichever tasks hold them. Call once every task's changes are taken (only clean
    /// entries are dropped, and their sizes are known).
    pub fn trim_caches(&mut self, budget: CacheBudget) {
        let held = self.cache_usage();
        if held.entries <= budget.entries && held.bytes <= budget.bytes {
            return;
        }
        let mut evictable = Vec::new();
        for task in self.tasks.values() {
            task.evictable(&mut evictable);
        }
        let kept = CacheBudget {
            entries: evict_to(budget.entries),
            bytes: evict_to(budget.bytes),
        };
        let (cutoff, _) = eviction_cutoff(&mut evictable, held, kept);
        for task in self.tasks.values_mut() {
            task.evict_before(cutoff);
        }
    }

    /// Fires, in due order, the timers due by `until` of task `only` (or of every task),
    /// delivering what each forwards at its due time, then moves the clock(s) to `until`;
    /// or, once `*budget` timers have fired, to the due time of the last one.
    fn fire_due(
        &mut self,
        store: &Store,
        only: Option<TaskId>,
        until: Millis,
        budget: &mut usize,
    ) -> Result<Advanced, TaskError> {
        let mut last_fired = None;
        loop {
            let next = match only {
                Some(id) => self
                    .tasks
                    .get(&id)
                    .and_then(|t| t.next_timer())
                    .map(|timer| (timer.due, id)),
                None => self
                    .tasks
                    .iter()
                    .filter_map(|(id, t)| t.next_timer().map(|timer| (timer, *id)))
                    .min()
                    .map(|(timer, id)| (timer.due, id)),
            };
            let Some((due, id)) = next.filter(|(due, _)| *due <= until) else {
                break;
            };
            if *budget == 0 {
                if let Some(due) = last_fired {
                    self.move_clocks(only, due);
                }
                return Ok(Advanced::Interrupted);
            }
            *budget -= 1;
            last_fired = Some(due);
            let task = self.tasks.get_mut(&id).expect("found above");
            let catalog = read(&self.catalog);
            let mut ctx = Ctx {
                now: until,
                rules: &self.rules,
                catalog: &catalog,
                out: &mut self.scratch,
            };
            task.fire_next_timer(store, until, &mut ctx)?;
            drop(catalog);
            self.output.stats.timers_fired += 1;
            self.collect(id, due);
            self.deliver_local(store)?;
        }
        self.move_clocks(only, until);
        Ok(Advanced::Reached)
    }

    /// Moves task `only`'s clock (or the shared one) to `to`, never back.
    fn move_clocks(&mut self, only: Option<TaskId>, to: Millis) {
        match only {
            Some(id) => {
                if let Some(task) = self.tasks.get_mut(&id) {
                    task.set_stream_time(to);
                }
            }
            None => {
                if self.shared_time.is_none_or(|t| t < to) {
                    self.shared_time = Some(to);
                }
            }
        }
    }

    /// Applies a forwarded message to task `id` at `sent_at` (the sender's stream time,
    /// or the message's own time when it came through a topic): the receiver's clock
    /// first moves to that time, firing what falls due, as the sender's would have.
    fn apply_message(
        &mut self,
        store: &Store,
        id: TaskId,
        forward: Forward,
        sent_at: Millis,
    ) -> Result<(), TaskError> {
        let (_, _, at) = Side::addressee(&forward);
        let now = sent_at
            .max(at)
            .max(self.stream_time(id).unwrap_or(Millis::MIN));
        self.advance_fully(store, id, now)?;
        let task = self
            .tasks
            .get_mut(&id)
            .expect("the driver routes to its own tasks");
        let catalog = read(&self.catalog);
        let mut ctx = Ctx {
            now,
            rules: &self.rules,
            catalog: &catalog,
            out: &mut self.scratch,
        };
        task.on_message(store, forward, &mut ctx)?;
        drop(catalog);
        if self.scratch.refused.take().is_some() {
            // A message has no record to dead-letter: it is dropped and counted.
            self.output.stats.messages_refused += 1;
        }
        self.collect(id, now);
        Ok(())
    }

    /// Delivers the queued messages: at once to a task of this core, else to the driver.
    ///
    /// In order of sending, always: a message whose delivery moves a lagging task's clock
    /// fires that task's timers, and what those forward joins the back of the queue
    /// instead of overtaking messages sent before it (a nested delivery would let a
    /// notification relayed by a second task reach its shopper before one sent to the
    /// shopper directly, and live would then decide otherwise than `replay`).
    fn deliver_local(&mut self, store: &Store) -> Result<(), TaskError> {
        if self.delivery == Delivering::Busy {
            return Ok(());
        }
        self.delivery = Delivering::Busy;
        let delivered = self.deliver_queued(store);
        self.delivery = Delivering::Idle;
        delivered
    }

    fn deliver_queued(&mut self, store: &Store) -> Result<(), TaskError> {
        while let Some((forward, sent_at)) = self.local.pop_front() {
            let (side, key, _) = Side::addressee(&forward);
            let id = self.task_for(side, key);
            self.output.stats.forwards += 1;
            if self.tasks.contains_key(&id) {
                *self
                    .output
                    .forwarded
                    .entry((side, Delivery::InProcess))
                    .or_default() += 1;
                self.apply_message(store, id, forward, sent_at)?;
            } else {
                *self
                    .output
                    .forwarded
                    .entry((side, Delivery::Topic))
                    .or_default() += 1;
                self.output.remote.push(forward);
            }
        }
        Ok(())
    }

    /// Moves what the last rule produced into the output; its forwards are sent at `now`.
    fn collect(&mut self, id: TaskId, now: Millis) {
        for decision in &self.scratch.decisions {
            self.output.stats.count_decision(decision);
            if let (CatalogSource::OwnRecords, DecisionBody::Product(record)) =
                (self.catalog_source, &decision.body)
            {
                self.catalog
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .apply(record, decision.decided_at);
            }
        }
        self.output.decisions.append(&mut self.scratch.decisions);
        self.local
            .extend(self.scratch.forwards.drain(..).map(|f| (f, now)));
        for note in self.scratch.notes.drain(..) {
            match note {
                Note::SuppressedNoConsent => self.output.stats.suppressed_no_consent += 1,
                Note::NotificationDropped => self.output.stats.notifications_dropped += 1,
                Note::Lifecycle(stage, change) => {
                    if let Some((counts, dirty)) = self.lifecycle.get_mut(&id) {
                        counts.apply(stage, change);
                        *dirty = true;
                    }
                }
            }
        }
    }
}

/// The catalog for reading; a writer that panicked left nothing half-done worth refusing.
fn read(catalog: &SharedCatalog) -> std::sync::RwLockReadGuard<'_, ProductCatalog> {
    catalog
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
