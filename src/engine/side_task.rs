//! A task with its clock, behind one trait whichever side it is on, so the core keeps the
//! tasks of both processors in one map.

use super::processor::Processor;
use super::task::{Task, TaskError};
use crate::event::Event;
use crate::forward::Forward;
use crate::rules::Ctx;
use crate::store::{StateChange, Store};
use crate::time::Millis;
use crate::timer::Timer;

/// One task with its clock, whichever side it is on.
pub(super) trait SideTask {
    fn stream_time(&self) -> Option<Millis>;
    fn set_stream_time(&mut self, t: Millis);
    fn next_timer(&self) -> Option<&Timer>;
    fn pending_timers(&self) -> usize;
    fn seen_before(
        &mut self,
        store: &Store,
        key: &str,
        event_id: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, TaskError>;
    fn on_event(
        &mut self,
        store: &Store,
        key: &str,
        event: &Event,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError>;
    /// Applies a message addressed to this side (the core routes by the message's side).
    fn on_message(
        &mut self,
        store: &Store,
        forward: Forward,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError>;
    fn fire_next_timer(
        &mut self,
        store: &Store,
        until: Millis,
        ctx: &mut Ctx,
    ) -> Result<bool, TaskError>;
    fn take_changes(&mut self, changes: &mut Vec<StateChange>);
    fn cached_entries(&self) -> usize;
    fn cached_bytes(&self) -> usize;
    fn evictable(&self, out: &mut Vec<(u64, usize)>);
    fn evict_before(&mut self, cutoff: u64);
}

pub(super) struct Clocked<P: Processor> {
    pub(super) task: Task<P>,
    pub(super) stream_time: Option<Millis>,
}

impl<P: Processor> SideTask for Clocked<P> {
    fn stream_time(&self) -> Option<Millis> {
        self.stream_time
    }
    fn set_stream_time(&mut self, t: Millis) {
        if self.stream_time.is_none_or(|s| s < t) {
            self.stream_time = Some(t);
        }
    }
    fn next_timer(&self) -> Option<&Timer> {
        self.task.next_timer()
    }
    fn pending_timers(&self) -> usize {
        self.task.pending_timers()
    }
    fn seen_before(
        &mut self,
        store: &Store,
        key: &str,
        event_id: &str,
        now: Millis,
        window: Millis,
    ) -> Result<bool, TaskError> {
        self.task.seen_before(store, key, event_id, now, window)
    }
    fn on_event(
        &mut self,
        store: &Store,
        key: &str,
        event: &Event,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError> {
        self.task.on_event(store, key, event, ctx)
    }
    fn on_message(
        &mut self,
        store: &Store,
        forward: Forward,
        ctx: &mut Ctx,
    ) -> Result<(), TaskError> {
        match P::addressed(forward) {
            Ok((key, at, message)) => self.task.on_message(store, &key, at, &message, ctx),
            Err(other) => unreachable!("the core routes messages by their side: {other:?}"),
        }
    }
    fn fire_next_timer(
        &mut self,
        store: &Store,
        until: Millis,
        ctx: &mut Ctx,
    ) -> Result<bool, TaskError> {
        self.task.fire_next_timer(store, until, ctx)
    }
    fn take_changes(&mut self, changes: &mut Vec<StateChange>) {
        self.task.take_changes(changes);
    }
    fn cached_entries(&self) -> usize {
        self.task.cached_entries()
    }
    fn cached_bytes(&self) -> usize {
        self.task.cached_bytes()
    }
    fn evictable(&self, out: &mut Vec<(u64, usize)>) {
        self.task.evictable(out);
    }
    fn evict_before(&mut self, cutoff: u64) {
        self.task.evict_before(cutoff);
    }
}
