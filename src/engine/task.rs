//! A task: one partition of one processor. It owns a write-back cache of that
//! partition's states, its timers in due order, and the event ids it has seen, and turns
//! everything it changed since the last commit into one list of [`StateChange`]s.

use super::processor::Processor;
use crate::event::Event;
use crate::rules::{Ctx, Refusal};
use crate::state::{StateDecodeError, VersionedState};
use crate::store::keys::{self, entity_key, parse_timer_key, partition_prefix, timer_key};
use crate::store::recent_ids::{RecentIds, RecentIdsError};
use crate::store::{StateChange, Store, StoreError};
use crate::time::Millis;
use crate::timer::{Timer, TimerOp};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{processor} task {partition}: stored state of `{key}` cannot be read: {source}")]
    CorruptState {
        processor: &'static str,
        partition: u16,
        key: String,
        source: StateDecodeError,
    },
    #[error("{processor} task {partition}: event ids seen by `{key}` cannot be read: {source}")]
    CorruptSeenIds {
        processor: &'static str,
        partition: u16,
        key: String,
        source: RecentIdsError,
    },
    #[error("{processor} task {partition}: {source}")]
    CorruptTimer {
        processor: &'static str,
        partition: u16,
        source: keys::KeyError,
    },
}

/// The size of `value`'s postcard encoding (a stored state adds one version byte).
fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    1 + postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .expect("measuring an encoding cannot fail")
}

struct Slot<S> {
    value: Option<S>,
    /// At least the encoded size of `value`: exact when it was last read, written or
    /// measured, plus the size of each input applied since (no input adds more to a
    /// state than its own encoding holds).
    bytes: usize,
    dirty: bool,
    /// Event ids this entity saw within the dedupe window.
    seen: RecentIds,
    seen_dirty: bool,
    last_used: u64,
}

pub struct Task<P: Processor> {
    partition: u16,
    /// Slots are boxed: a state is hundreds of bytes, and inline in the table every
    /// empty bucket and every resize (old and new table at once) would cost as much.
    cache: FxHashMap<String, Box<Slot<P::State>>>,
    timers: BTreeSet<Timer>,
    /// Timers set (`true`) or cancelled since the last commit; the last word wins.
    timer_changes: FxHashMap<Timer, bool>,
    clock: u64,
}

impl<P: Processor> Task<P> {
    /// Opens the task's partition of the store, loading its timers.
    pub fn open(store: &Store, partition: u16) -> Result<Self, TaskError> {
        let mut timers = BTreeSet::new();
        for (key, _) in store.scan_prefix(P::TIMERS, &partition_prefix(partition))? {
            let (_, timer) = parse_timer_key(&key).map_err(|source| TaskError::CorruptTimer {
                processor: P::NAME,
                partition,
                source,
            })?;
            timers.insert(timer);
        }
        Ok(Task {
            partition,
            cache: FxHashMap::default(),
            timers,
            timer_changes: FxHashMap::default(),
            clock: 0,
        })
    }

    pub fn next_timer(&self) -> Option<&Timer> {
        self.timers.first()
    }

    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Whether `event_id` was first seen by the entity `key` within `window` before
    /// `now`; remembers it if not.
    pub fn seen_before(
        &mut self,
        store: &Store,
        key: &str,
        event_id: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, TaskError> {
        if window <= 0 {
            return Ok(false);
        }
        let slot = self.slot(store, key)?;
        let duplicate = slot.seen.seen_before(event_id, now, window);
        slot.seen_dirty |= !duplicate;
        Ok(duplicate)
    }

    fn slot(&mut self, store: &Store, key: &str) -> Result<&mut Slot<P::State>, TaskError> {
        self.clock += 1;
        let clock = self.clock;
        if !self.cache.contains_key(key) {
            let stored = store.get(P::STATE, &entity_key(self.partition, key))?;
            let bytes = stored.as_ref().map_or(0, Vec::len);
            let value =
                match stored {
                    Some(bytes) => Some(P::State::decode(&bytes).map_err(|source| {
                        TaskError::CorruptState {
                            processor: P::NAME,
                            partition: self.partition,
                            key: key.to_string(),
                            source,
                        }
                    })?),
                    None => None,
                };
            let seen = match store.get(P::DEDUPE, &keys::dedupe_key(self.partition, key))? {
                Some(bytes) => {
                    RecentIds::decode(&bytes).map_err(|source| TaskError::CorruptSeenIds {
                        processor: P::NAME,
                        partition: self.partition,
                        key: key.to_string(),
                        source,
                    })?
                }
                None => RecentIds::default(),
            };
            self.cache.insert(
                key.to_string(),
                Box::new(Slot {
                    value,
                    bytes,
                    dirty: false,
                    seen,
                    seen_dirty: false,
                    last_used: clock,
                }),
            );
        }
        let slot = self.cache.get_mut(key).expect("inserted above");
        slot.last_used = clock;
        Ok(slot)
    }

    /// Runs `rule` on the state of `key`, then applies the timer changes it asked for.
    ///
    /// `incoming` bounds what the input can add to the state (its own encoded size). When
    /// the state might then outgrow `rules.limits.max_state_bytes`, it is kept aside
    /// first and measured after: if it did outgrow the limit, the input is refused and
    /// the state is put back as it was. States far from the limit are never copied.
    fn with_state(
        &mut self,
        store: &Store,
        key: &str,
        ctx: &mut Ctx,
        incoming: usize,
        rule: impl FnOnce(&mut Option<P::State>, &mut Ctx),
    ) -> Result<(), TaskError> {
        let limit = ctx.rules.limits.max_state_bytes;
        let slot = self.slot(store, key)?;
        let near_limit = incoming > 0 && slot.bytes.saturating_add(incoming) > limit;
        let kept = near_limit.then(|| slot.value.clone());
        rule(&mut slot.value, ctx);
        match kept {
            Some(before) => {
                let bytes = slot.value.as_ref().map_or(0, encoded_len);
                // Only growth is refused: a state already past the limit (stored before
                // the limit was lowered) may still shrink.
                let grew = bytes > before.as_ref().map_or(0, encoded_len);
                if bytes > limit && grew {
                    slot.value = before;
                    ctx.out.refuse(Refusal::StateTooLarge {
                        key: key.to_string(),
                        bytes,
                        limit,
                    });
                    return Ok(());
                }
                slot.bytes = bytes;
            }
            None => slot.bytes += incoming,
        }
        // Rules mutate in place, so any visit may have changed the state.
        slot.dirty = true;
        for op in ctx.out.timers.drain(..) {
            match op {
                TimerOp::Set(timer) => {
                    self.timers.insert(timer.clone());
                    self.timer_changes.insert(timer, true);
                }
                TimerOp::Cancel(timer) => {
                    self.timers.remove(&timer);
                    self.timer_changes.insert(timer, false);
                }
            }
        }
        Ok(())
    }

    pub fn on_event(
        &mut self,
        store: &Store,
        key: &str,
        event: &Event,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError> {
        self.with_state(store, key, ctx, encoded_len(event), |state, ctx| {
            P::on_event(key, state, event, ctx)
        })
    }

    /// A forwarded message; `at` is its own event time.
    pub fn on_message(
        &mut self,
        store: &Store,
        key: &str,
        at: Millis,
        message: &P::Message,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError> {
        self.with_state(store, key, ctx, encoded_len(message), |state, ctx| {
            P::on_message(key, state, at, message, ctx)
        })
    }

    /// Fires the earliest timer if it is due at or before `until`; `false` if none is.
    /// The rule runs with `ctx.now` at the timer's due time: the stream time it stands for.
    pub fn fire_next_timer(
        &mut self,
        store: &Store,
        until: Millis,
        ctx: &mut Ctx,
    ) -> Result<bool, TaskError> {
        let Some(timer) = self.timers.first().filter(|t| t.due <= until).cloned() else {
            return Ok(false);
        };
        self.timers.remove(&timer);
        self.timer_changes.insert(timer.clone(), false);
        ctx.now = timer.due;
        let key = timer.key.clone();
        // A timer only moves a reminder's step: nothing that grows the state.
        self.with_state(store, &key, ctx, 0, |state, ctx| {
            P::on_timer(&key, state, &timer, ctx)
        })?;
        Ok(true)
    }

    /// Everything changed since the last commit, as store writes, at most one per key;
    /// the cache keeps the values (now clean) so hot keys are not read back.
    pub fn take_changes(&mut self, out: &mut Vec<StateChange>) {
        for (key, slot) in self.cache.iter_mut() {
            if slot.dirty {
                slot.dirty = false;
                let value = slot.value.as_ref().map(VersionedState::encode);
                slot.bytes = value.as_ref().map_or(0, Vec::len);
                out.push(StateChange {
                    family: P::STATE,
                    key: entity_key(self.partition, key),
                    value,
                });
            }
            if slot.seen_dirty {
                slot.seen_dirty = false;
                out.push(StateChange {
                    family: P::DEDUPE,
                    key: keys::dedupe_key(self.partition, key),
                    value: (!slot.seen.is_empty()).then(|| slot.seen.encode()),
                });
            }
        }
        for (timer, set) in self.timer_changes.drain() {
            out.push(StateChange {
                family: P::TIMERS,
                key: timer_key(self.partition, &timer),
                value: set.then(Vec::new),
            });
        }
    }

    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// Drops the least recently used clean entries until at most `max` remain.
    /// Call after [`Task::take_changes`], when every entry is clean.
    pub fn evict(&mut self, max: usize) {
        if self.cache.len() <= max {
            return;
        }
        let mut ages: Vec<u64> = self
            .cache
            .values()
            .filter(|s| !s.dirty && !s.seen_dirty)
            .map(|s| s.last_used)
            .collect();
        let excess = self.cache.len() - max;
        if ages.len() <= excess {
            self.cache.retain(|_, s| s.dirty || s.seen_dirty);
            return;
        }
        let (_, cutoff, _) = ages.select_nth_unstable(excess);
        let cutoff = *cutoff;
        self.cache
            .retain(|_, s| s.dirty || s.seen_dirty || s.last_used >= cutoff);
    }
}
