//! A task: one partition of one processor. It owns a write-back cache of that
//! partition's states, its timers in due order, and the event ids it has seen, and turns
//! everything it changed since the last commit into one list of [`StateChange`]s.

use super::processor::Processor;
use crate::config::{StateConfig, Workload};
use crate::event::Event;
use crate::rules::{Ctx, Refusal};
use crate::state::{StateDecodeError, VersionedState};
use crate::store::keys::{self, entity_key, parse_timer_key, partition_prefix, timer_key};
use crate::store::recent_ids::{RecentIdsError, SeenIds};
use crate::store::{StateChange, Store, StoreError};
use crate::time::Millis;
use crate::timer::{Timer, TimerOp};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// The stored size of a state: its value and its detached entries.
fn stored_len<S: VersionedState>(state: &S) -> usize {
    encoded_len(state) + state.detached_len()
}

/// What a task's write-back cache may hold after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    pub entries: usize,
    /// Counted as [`Slot::weight`]s: stored sizes, not the larger decoded ones.
    pub bytes: usize,
}

impl CacheBudget {
    /// The budget `state` sets for `workload`.
    pub fn new(state: &StateConfig, workload: Workload) -> CacheBudget {
        CacheBudget {
            entries: state.cache_max_entries,
            bytes: usize::try_from(state.cache_bytes_for(workload)).unwrap_or(usize::MAX),
        }
    }

    /// Each one's part when `holders` caches (the process's stream threads) share it.
    pub fn shared_by(self, holders: usize) -> CacheBudget {
        let holders = holders.max(1);
        CacheBudget {
            entries: (self.entries / holders).max(1),
            bytes: (self.bytes / holders).max(1),
        }
    }
}

/// The order in which cached entries were last used, one count shared by every task of
/// a core, so that eviction compares entries across tasks and sides: a hot SKU outlives
/// a shopper gone quiet, whichever task holds either.
#[derive(Debug, Clone, Default)]
pub struct UseOrder(Arc<AtomicU64>);

impl UseOrder {
    fn next(&self) -> u64 {
        // One thread uses a core's tasks: the count needs no ordering with other memory.
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Bytes counted for a cached entry beside its key, state and event ids: the slot, its
/// box and its place in the table.
const SLOT_OVERHEAD: usize = 128;
/// What eviction leaves of a `limit`: nine tenths of it. Evicting below the budget
/// leaves room for the next commits' new keys, so the LRU order is sorted rarely.
pub(super) fn evict_to(limit: usize) -> usize {
    limit - limit / 10
}

struct Slot<S> {
    value: Option<S>,
    /// At least the encoded size of `value`: exact when it was last read, written or
    /// measured, plus the size of each input applied since (no input adds more to a
    /// state than its own encoding holds).
    bytes: usize,
    /// Stored size of the state's detached entries (counted in `bytes` too).
    detached_bytes: usize,
    dirty: bool,
    /// Event ids this entity saw within the dedupe window.
    seen: SeenIds,
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
    uses: UseOrder,
    /// The cache's [`Slot::weight`]s summed, as of the last [`Task::take_changes`].
    cached_bytes: usize,
}

impl<S> Slot<S> {
    /// What the slot of `key` counts against [`CacheBudget::bytes`].
    fn weight(&self, key: &str) -> usize {
        key.len() + self.bytes + self.seen.encoded_len() + SLOT_OVERHEAD
    }
}

impl<P: Processor> Task<P> {
    /// Opens the task's partition of the store, loading its timers. `uses` orders the
    /// entries' last uses with the other tasks of the same core.
    pub fn open(store: &Store, partition: u16, uses: UseOrder) -> Result<Self, TaskError> {
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
            uses,
            cached_bytes: 0,
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
        Ok(slot.seen.seen_before(event_id, now, window))
    }

    fn slot(&mut self, store: &Store, key: &str) -> Result<&mut Slot<P::State>, TaskError> {
        let clock = self.uses.next();
        if !self.cache.contains_key(key) {
            let stored_key = entity_key(self.partition, key);
            let stored = store.get(P::STATE, &stored_key)?;
            let corrupt = |source| TaskError::CorruptState {
                processor: P::NAME,
                partition: self.partition,
                key: key.to_string(),
                source,
            };
            let mut bytes = stored.as_ref().map_or(0, Vec::len);
            let mut detached_bytes = 0;
            let value = match stored {
                Some(stored) => {
                    let mut state = P::State::decode(&stored).map_err(corrupt)?;
                    if let Some(family) = P::DETACHED {
                        let prefix = keys::detached_prefix(self.partition, key);
                        let entries: Vec<(Vec<u8>, Vec<u8>)> = store
                            .scan_prefix(family, &prefix)?
                            .into_iter()
                            .map(|(key, value)| (key[prefix.len()..].to_vec(), value))
                            .collect();
                        if !entries.is_empty() {
                            state.attach(entries).map_err(corrupt)?;
                            detached_bytes = state.detached_len();
                            bytes += detached_bytes;
                        }
                    }
                    Some(state)
                }
                None => None,
            };
            let chunks = store.scan_prefix(P::DEDUPE, &keys::dedupe_key(self.partition, key))?;
            let seen = SeenIds::load(chunks).map_err(|source| TaskError::CorruptSeenIds {
                processor: P::NAME,
                partition: self.partition,
                key: key.to_string(),
                source,
            })?;
            self.cache.insert(
                key.to_string(),
                Box::new(Slot {
                    value,
                    bytes,
                    detached_bytes,
                    dirty: false,
                    seen,
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
                let bytes = slot.value.as_ref().map_or(0, stored_len);
                // Only growth is refused: a state already past the limit (stored before
                // the limit was lowered) may still shrink.
                let grew = bytes > before.as_ref().map_or(0, stored_len);
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
        if self.timers.first().is_none_or(|t| t.due > until) {
            return Ok(false);
        }
        let timer = self.timers.pop_first().expect("checked above");
        self.timer_changes.insert(timer.clone(), false);
        ctx.now = timer.due;
        // A timer only moves a reminder's step: nothing that grows the state.
        self.with_state(store, &timer.key, ctx, 0, |state, ctx| {
            P::on_timer(&timer.key, state, &timer, ctx)
        })?;
        Ok(true)
    }

    /// Everything changed since the last commit, as store writes, at most one per key;
    /// the cache keeps the values (now clean) so hot keys are not read back.
    pub fn take_changes(&mut self, out: &mut Vec<StateChange>) {
        let mut cached_bytes = 0;
        for (key, slot) in self.cache.iter_mut() {
            if slot.dirty {
                slot.dirty = false;
                let stored_key = entity_key(self.partition, key);
                if let (Some(family), Some(state)) = (P::DETACHED, slot.value.as_mut()) {
                    let mut entries = Vec::new();
                    state.take_detached(&mut entries);
                    if !entries.is_empty() {
                        let prefix = keys::detached_prefix(self.partition, key);
                        for (sub_key, value) in entries {
                            let mut key = prefix.clone();
                            key.extend_from_slice(&sub_key);
                            out.push(StateChange { family, key, value });
                        }
                    }
                    slot.detached_bytes = state.detached_len();
                }
                // The rules never remove a state that has detached entries (the product
                // side keeps every SKU it saw): removing one would leave them behind.
                debug_assert!(slot.value.is_some() || slot.detached_bytes == 0);
                let value = slot.value.as_ref().map(VersionedState::encode);
                slot.bytes = value.as_ref().map_or(0, Vec::len) + slot.detached_bytes;
                out.push(StateChange {
                    family: P::STATE,
                    key: stored_key,
                    value,
                });
            }
            if slot.seen.has_unsaved() {
                let prefix = keys::dedupe_key(self.partition, key);
                slot.seen.take_writes(&prefix, |key, value| {
                    out.push(StateChange {
                        family: P::DEDUPE,
                        key,
                        value,
                    })
                });
            }
            cached_bytes += slot.weight(key);
        }
        self.cached_bytes = cached_bytes;
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

    /// The cache's size as [`CacheBudget::bytes`] counts it, as of the last commit.
    pub fn cached_bytes(&self) -> usize {
        self.cached_bytes
    }

    /// Lists, as (last used, weight), the entries eviction may drop: the clean ones.
    /// Call after [`Task::take_changes`], when every entry is clean and measured.
    pub fn evictable(&self, out: &mut Vec<(u64, usize)>) {
        out.extend(
            self.cache
                .iter()
                .filter(|(_, s)| !s.dirty && !s.seen.has_unsaved())
                .map(|(key, s)| (s.last_used, s.weight(key))),
        );
    }

    /// Drops the clean entries last used before `cutoff` (see [`eviction_cutoff`]).
    pub fn evict_before(&mut self, cutoff: u64) {
        let before = self.cache.len();
        self.cache
            .retain(|_, s| s.dirty || s.seen.has_unsaved() || s.last_used >= cutoff);
        if self.cache.len() != before {
            self.cached_bytes = self.cache.iter().map(|(key, s)| s.weight(key)).sum();
        }
    }
}

/// Which entries go so that a cache holding `held` keeps at most `kept`: those last
/// used before the returned cutoff (the least recently used first; `clean`, as
/// (last used, weight), lists the entries that may go). Also what is left.
pub(super) fn eviction_cutoff(
    clean: &mut [(u64, usize)],
    held: CacheBudget,
    kept: CacheBudget,
) -> (u64, CacheBudget) {
    clean.sort_unstable();
    let mut left = held;
    let mut cutoff = 0;
    for &(last_used, weight) in clean.iter() {
        if left.entries <= kept.entries && left.bytes <= kept.bytes {
            break;
        }
        left.entries -= 1;
        // Entries loaded since the last commit are not in `held` yet.
        left.bytes = left.bytes.saturating_sub(weight);
        cutoff = last_used + 1;
    }
    (cutoff, left)
}

#[cfg(test)]
mod tests {
    use super::{eviction_cutoff, CacheBudget};

    fn budget(entries: usize, bytes: usize) -> CacheBudget {
        CacheBudget { entries, bytes }
    }

    #[test]
    fn the_least_recently_used_go_first_until_the_bytes_fit() {
        // Used at 5, 1, 3, 2 (out of order, as a hash table lists them), 100 bytes each.
        let mut clean = [(5, 100), (1, 100), (3, 100), (2, 100)];
        let (cutoff, left) = eviction_cutoff(&mut clean, budget(4, 400), budget(10, 250));
        assert_eq!(cutoff, 3, "the two used at 1 and 2 go");
        assert_eq!(left, budget(2, 200));
    }

    #[test]
    fn the_entry_count_is_kept_as_well_as_the_bytes() {
        let mut clean = [(7, 10), (8, 10), (9, 10)];
        let (cutoff, left) = eviction_cutoff(&mut clean, budget(3, 30), budget(1, 1_000));
        assert_eq!(cutoff, 9);
        assert_eq!(left, budget(1, 10));
    }

    #[test]
    fn stream_threads_share_the_budget_in_equal_parts() {
        assert_eq!(
            budget(200_000, 16 << 20).shared_by(2),
            budget(100_000, 8 << 20)
        );
        assert_eq!(budget(10, 100).shared_by(1), budget(10, 100));
        assert_eq!(budget(1, 3).shared_by(4), budget(1, 1), "never nothing");
        assert_eq!(budget(8, 8).shared_by(0), budget(8, 8));
    }

    #[test]
    fn nothing_goes_when_the_cache_fits() {
        let mut clean = [(1, 10), (2, 10)];
        let (cutoff, left) = eviction_cutoff(&mut clean, budget(2, 20), budget(2, 20));
        assert_eq!(cutoff, 0, "every entry was used at or after 0");
        assert_eq!(left, budget(2, 20));
    }

    #[test]
    fn entries_that_may_not_go_stay_even_past_the_budget() {
        // Two entries of 100 bytes are dirty: only the clean one may go.
        let mut clean = [(4, 100)];
        let (cutoff, left) = eviction_cutoff(&mut clean, budget(3, 300), budget(1, 50));
        assert_eq!(cutoff, 5);
        assert_eq!(left, budget(2, 200));
    }
}
