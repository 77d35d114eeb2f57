//! The deterministic core: `(state, event, stream time) → (state changes, decisions,
//! forwarded messages)`, with no Kafka, files or clocks in it.
//!
//! [`Core`] is the one engine: it holds tasks (one partition of one processor each) and
//! applies inputs to them, for both drivers. [`Engine`] is the core as `replay` runs
//! it: every task of both processors in one thread, one shared stream time, state
//! committed to the store every `engine.commit_every_events`. The live runtime runs the
//! same core with the tasks assigned to it, each on its own clock.

pub mod core;
pub mod partitioner;
pub mod processor;
pub mod product_table;
pub mod side;
mod side_task;
pub mod stats;
pub mod task;
pub mod task_meta;

pub use self::core::{Advanced, Clock, Core, Delivery, Output, Side, TaskId};
use crate::config::{Config, Workload};
use crate::decision::Decision;
use crate::event::{Event, RoutingKey};
use crate::store::{StateChange, Store, StoreError};
use crate::time::Millis;
use stats::Stats;
use task::{CacheBudget, TaskError};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Duplicate,
    /// Applying it would break a bound of `rules.limits`: it changed nothing and goes
    /// to the dead-letter topic (`replay`: to standard error).
    Refused(crate::rules::Refusal),
}

/// The core as `replay` runs it: every task of both processors, one stream time.
pub struct Engine {
    config: Config,
    store: Store,
    core: Core,
    stats: Stats,
    events_since_commit: usize,
    /// The latest product record per SKU made since the last commit: written to the
    /// product table at the commit (serialized once per SKU and commit, not per record).
    table_rows: std::collections::BTreeMap<String, Decision>,
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
        let mut core = Core::new(
            config.rules.clone(),
            Clock::Shared,
            [partitions, partitions],
        );
        for side in Side::ALL {
            for p in 0..partitions {
                core.open_task(&store, (side, p), None)?;
            }
        }
        core.set_shared_time(store.read_meta(META_STREAM_TIME)?);
        // Resuming: the product table is where the last run left it.
        let catalog = core.catalog();
        product_table::load(
            &store,
            &mut catalog.write().unwrap_or_else(|p| p.into_inner()),
        )?;
        Ok(Engine {
            config,
            store,
            core,
            stats: Stats::default(),
            events_since_commit: 0,
            table_rows: Default::default(),
        })
    }

    pub fn stream_time(&self) -> Option<Millis> {
        self.core.min_stream_time()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    pub fn pending_timers(&self) -> usize {
        Side::ALL
            .iter()
            .map(|side| self.core.pending_timers(*side))
            .sum()
    }

    /// Applies one event: drops it if its id was seen within the dedupe window, else
    /// fires the timers its time passes, runs the rules and delivers what they forward.
    pub fn process(
        &mut self,
        event: &Event,
        decisions: &mut Vec<Decision>,
    ) -> Result<Outcome, EngineError> {
        let (side, key) = match event.routing_key() {
            RoutingKey::Shopper(key) => (Side::Customer, key),
            RoutingKey::Sku(key) => (Side::Product, key),
        };
        let task = self.core.task_for(side, key);
        let outcome = self.core.process_event(&self.store, task, key, event)?;
        self.collect(decisions);
        if outcome == Outcome::Processed {
            self.events_since_commit += 1;
            if self.events_since_commit >= self.config.engine.commit_every_events {
                self.commit()?;
            }
        }
        Ok(outcome)
    }

    /// Moves stream time to `until`, firing every timer due at or before it, in due order.
    pub fn advance_to(
        &mut self,
        until: Millis,
        decisions: &mut Vec<Decision>,
    ) -> Result<(), EngineError> {
        self.core.advance_all(&self.store, until)?;
        self.collect(decisions);
        Ok(())
    }

    fn collect(&mut self, decisions: &mut Vec<Decision>) {
        let mut output = self.core.take_output();
        debug_assert!(output.remote.is_empty(), "replay holds every task");
        for decision in &output.decisions {
            if let crate::decision::DecisionBody::Product(record) = &decision.body {
                self.table_rows.insert(record.sku.clone(), decision.clone());
            }
        }
        decisions.append(&mut output.decisions);
        self.stats.add(&output.stats);
    }

    /// Writes everything changed since the last commit to the store in one batch, with
    /// the stream time it corresponds to, then trims the write-back caches.
    pub fn commit(&mut self) -> Result<(), EngineError> {
        let mut changes: Vec<StateChange> = Vec::new();
        let tasks: Vec<TaskId> = self.core.task_ids().collect();
        for task in tasks {
            self.core.take_changes(task, &mut changes);
        }
        changes.extend(
            std::mem::take(&mut self.table_rows)
                .values()
                .filter_map(product_table::row_for),
        );
        if let Some(t) = self.core.min_stream_time() {
            changes.push(Store::meta_change(META_STREAM_TIME, t));
            let window = self.config.rules.dedupe_window.millis();
            self.store.set_dedupe_horizon(t.saturating_sub(window));
        }
        let partitions = i64::from(self.config.engine.partitions);
        changes.push(Store::meta_change(META_PARTITIONS, partitions));
        changes.push(Store::meta_change(
            crate::store::META_CUSTOMER_PARTITIONS,
            partitions,
        ));
        self.store.write_sorted(&mut changes)?;
        self.core
            .trim_caches(CacheBudget::new(&self.config.state, Workload::Replay));
        self.stats.commits += 1;
        self.events_since_commit = 0;
        Ok(())
    }

    /// Commits and flushes, so the state directory can be opened again later.
    pub fn close(mut self) -> Result<Stats, EngineError> {
        self.commit()?;
        self.store.flush()?;
        Ok(self.stats)
    }
}
