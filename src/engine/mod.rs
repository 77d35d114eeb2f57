//! The deterministic core: `(state, event, stream time) → (state changes, decisions,
//! forwarded messages)`, with no Kafka, files or clocks in it.
//!
//! [`Engine`] runs every task of both processors in one thread, as `replay` needs: it
//! routes each event to its task by Kafka's partitioner, keeps one stream time, fires
//! timers in due order before the event that moves stream time past them, and delivers
//! forwarded messages through an in-memory queue right after the input that caused them.
//! The live runtime drives the same [`task::Task`]s, one per assigned partition.

pub mod dedupe;
pub mod live;
pub mod partitioner;
pub mod processor;
pub mod stats;
pub mod task;

use crate::config::Config;
use crate::decision::Decision;
use crate::event::{Event, RoutingKey};
use crate::rules::{Ctx, Forward, Note, Outputs};
use crate::store::{StateChange, Store, StoreError};
use crate::time::Millis;
use partitioner::partition_for;
use processor::{CustomerProcessor, ProductProcessor};
use stats::Stats;
use std::collections::VecDeque;
use task::{Task, TaskError};

const META_STREAM_TIME: &str = "stream_time";
const META_PARTITIONS: &str = "partitions";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "setting `engine.partitions` is {configured}, but the state in {dir} was written with \
         {stored} partitions; use the same value or a new state directory"
    )]
    PartitionMismatch {
        configured: u16,
        stored: i64,
        dir: String,
    },
}

/// What became of one input event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Duplicate,
}

pub struct Engine {
    config: Config,
    store: Store,
    customers: Vec<Task<CustomerProcessor>>,
    products: Vec<Task<ProductProcessor>>,
    stream_time: Option<Millis>,
    queue: VecDeque<Forward>,
    scratch: Outputs,
    stats: Stats,
    events_since_commit: usize,
}

impl Engine {
    /// Opens the engine on a store, resuming from the stream time it was left at.
    pub fn open(config: Config, store: Store) -> Result<Engine, EngineError> {
        let partitions = config.engine.partitions;
        if let Some(stored) = store.read_meta(META_PARTITIONS)? {
            if stored != i64::from(partitions) {
                return Err(EngineError::PartitionMismatch {
                    configured: partitions,
                    stored,
                    dir: store.path().display().to_string(),
                });
            }
        }
        let customers = (0..partitions)
            .map(|p| Task::open(&store, p))
            .collect::<Result<_, _>>()?;
        let products = (0..partitions)
            .map(|p| Task::open(&store, p))
            .collect::<Result<_, _>>()?;
        let stream_time = store.read_meta(META_STREAM_TIME)?;
        Ok(Engine {
            config,
            store,
            customers,
            products,
            stream_time,
            queue: VecDeque::new(),
            scratch: Outputs::default(),
            stats: Stats::default(),
            events_since_commit: 0,
        })
    }

    pub fn stream_time(&self) -> Option<Millis> {
        self.stream_time
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    pub fn pending_timers(&self) -> usize {
        self.customers
            .iter()
            .map(Task::pending_timers)
            .sum::<usize>()
            + self
                .products
                .iter()
                .map(Task::pending_timers)
                .sum::<usize>()
    }

    fn partition(&self, key: &str) -> usize {
        usize::from(partition_for(key.as_bytes(), self.config.engine.partitions))
    }

    /// Applies one event: drops it if its id was seen within the dedupe window, else
    /// fires the timers its time passes, runs the rules and delivers what they forward.
    pub fn process(
        &mut self,
        event: &Event,
        decisions: &mut Vec<Decision>,
    ) -> Result<Outcome, EngineError> {
        let now = self
            .stream_time
            .map_or(event.occurred_at, |t| t.max(event.occurred_at));
        let window = self.config.rules.dedupe_window.millis();
        let key = event.routing_key();
        let (RoutingKey::Shopper(k) | RoutingKey::Sku(k)) = key;
        let p = self.partition(k);
        let duplicate = match key {
            RoutingKey::Shopper(_) => {
                self.customers[p].seen_before(&self.store, k, &event.event_id, now, window)?
            }
            RoutingKey::Sku(_) => {
                self.products[p].seen_before(&self.store, k, &event.event_id, now, window)?
            }
        };
        if duplicate {
            self.stats.duplicates += 1;
            return Ok(Outcome::Duplicate);
        }
        self.advance_to(now, decisions)?;
        let mut ctx = Ctx {
            now,
            rules: &self.config.rules,
            out: &mut self.scratch,
        };
        match key {
            RoutingKey::Shopper(_) => {
                self.customers[p].on_event(&self.store, k, event, &mut ctx)?
            }
            RoutingKey::Sku(_) => self.products[p].on_event(&self.store, k, event, &mut ctx)?,
        }
        self.collect(decisions);
        self.deliver_forwards(now, decisions)?;
        self.stats.count_event(event.body.type_name());
        self.events_since_commit += 1;
        if self.events_since_commit >= self.config.engine.commit_every_events {
            self.commit()?;
        }
        Ok(Outcome::Processed)
    }

    /// Moves stream time to `until`, firing every timer due at or before it, in due order.
    pub fn advance_to(
        &mut self,
        until: Millis,
        decisions: &mut Vec<Decision>,
    ) -> Result<(), EngineError> {
        loop {
            // (due, is_product, task index) of the earliest timer of either processor.
            let next: Option<(Millis, bool, usize)> = {
                let customer = earliest(self.customers.iter().map(Task::next_timer));
                let product = earliest(self.products.iter().map(Task::next_timer));
                match (customer, product) {
                    (Some((_, ct)), Some((p, pt))) if pt < ct => Some((pt.due, true, p)),
                    (Some((c, ct)), _) => Some((ct.due, false, c)),
                    (None, Some((p, pt))) => Some((pt.due, true, p)),
                    (None, None) => None,
                }
            };
            let Some((fired_due, is_product, index)) = next else {
                break;
            };
            let fired = if is_product {
                self.fire_product(index, until)?
            } else {
                self.fire_customer(index, until)?
            };
            if !fired {
                break;
            }
            self.stats.timers_fired += 1;
            self.collect(decisions);
            self.deliver_forwards(fired_due, decisions)?;
        }
        if self.stream_time.is_none_or(|t| t < until) {
            self.stream_time = Some(until);
        }
        Ok(())
    }

    fn fire_customer(&mut self, index: usize, until: Millis) -> Result<bool, EngineError> {
        let mut ctx = Ctx {
            now: until,
            rules: &self.config.rules,
            out: &mut self.scratch,
        };
        Ok(self.customers[index].fire_next_timer(&self.store, until, &mut ctx)?)
    }

    fn fire_product(&mut self, index: usize, until: Millis) -> Result<bool, EngineError> {
        let mut ctx = Ctx {
            now: until,
            rules: &self.config.rules,
            out: &mut self.scratch,
        };
        Ok(self.products[index].fire_next_timer(&self.store, until, &mut ctx)?)
    }

    fn collect(&mut self, decisions: &mut Vec<Decision>) {
        for decision in &self.scratch.decisions {
            self.stats.count_decision(decision.decision_type().name());
        }
        decisions.append(&mut self.scratch.decisions);
        self.queue.extend(self.scratch.forwards.drain(..));
        for note in self.scratch.notes.drain(..) {
            match note {
                Note::SuppressedNoConsent => self.stats.suppressed_no_consent += 1,
                Note::NotificationDropped => self.stats.notifications_dropped += 1,
            }
        }
    }

    fn deliver_forwards(
        &mut self,
        now: Millis,
        decisions: &mut Vec<Decision>,
    ) -> Result<(), EngineError> {
        let partitions = self.config.engine.partitions;
        while let Some(forward) = self.queue.pop_front() {
            self.stats.forwards += 1;
            let mut ctx = Ctx {
                now,
                rules: &self.config.rules,
                out: &mut self.scratch,
            };
            match &forward {
                Forward::ToProduct { sku, at, message } => {
                    let p = usize::from(partition_for(sku.as_bytes(), partitions));
                    self.products[p].on_message(&self.store, sku, *at, message, &mut ctx)?;
                }
                Forward::ToShopper { key, at, message } => {
                    let p = usize::from(partition_for(key.as_bytes(), partitions));
                    self.customers[p].on_message(&self.store, key, *at, message, &mut ctx)?;
                }
            }
            self.collect(decisions);
        }
        Ok(())
    }

    /// Writes everything changed since the last commit to the store in one batch, with
    /// the stream time it corresponds to, then trims the write-back caches.
    pub fn commit(&mut self) -> Result<(), EngineError> {
        let mut changes: Vec<StateChange> = Vec::new();
        for task in &mut self.customers {
            task.take_changes(&mut changes);
        }
        for task in &mut self.products {
            task.take_changes(&mut changes);
        }
        if let Some(t) = self.stream_time {
            changes.push(Store::meta_change(META_STREAM_TIME, t));
            let window = self.config.rules.dedupe_window.millis();
            self.store.set_dedupe_horizon(t.saturating_sub(window));
        }
        changes.push(Store::meta_change(
            META_PARTITIONS,
            i64::from(self.config.engine.partitions),
        ));
        // Key order lets RocksDB's skiplist reuse its insert position from one key to
        // the next. Tasks give at most one change per key, so the order among equal
        // keys cannot matter.
        changes.sort_unstable_by(|a, b| (a.family, &a.key).cmp(&(b.family, &b.key)));
        self.store.write(&changes)?;
        self.trim_caches();
        self.stats.commits += 1;
        self.events_since_commit = 0;
        Ok(())
    }

    /// Keeps the write-back caches within `state.cache_max_entries` in total, trimming
    /// each task in proportion to its share, so busy partitions keep more.
    fn trim_caches(&mut self) {
        let budget = self.config.state.cache_max_entries;
        let cached = self
            .customers
            .iter()
            .map(Task::cached_entries)
            .sum::<usize>()
            + self
                .products
                .iter()
                .map(Task::cached_entries)
                .sum::<usize>();
        if cached <= budget {
            return;
        }
        let share = |entries: usize| (entries as u128 * budget as u128 / cached as u128) as usize;
        for task in &mut self.customers {
            task.evict(share(task.cached_entries()));
        }
        for task in &mut self.products {
            task.evict(share(task.cached_entries()));
        }
    }

    /// Commits and flushes, so the state directory can be opened again later.
    pub fn close(mut self) -> Result<Stats, EngineError> {
        self.commit()?;
        self.store.flush()?;
        Ok(self.stats)
    }
}

fn earliest<'a>(
    timers: impl Iterator<Item = Option<&'a crate::rules::Timer>>,
) -> Option<(usize, &'a crate::rules::Timer)> {
    timers
        .enumerate()
        .filter_map(|(i, t)| t.map(|t| (i, t)))
        .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)))
}
