//! What the stream threads of one process tell each other.
//!
//! Each thread owns its tasks, but a few decisions and figures are the process's, not
//! one thread's: whether quiet tasks may follow the wall clock (only once every thread
//! has read all there is, or a product task of one thread would move the shoppers of a
//! thread still working off a backlog to today), how far the shared store's dedupe
//! horizon may move (no further than the oldest task of any thread), which customer
//! partitions the instance announces, when a backlog has been worked off, and the
//! per-side and task gauges. Each thread writes its own
//! slot; readers combine the slots.

use crate::decision::LifecycleStage;
use crate::engine::Side;
use crate::time::Millis;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The gauges one thread reports, per side where they are per side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadGauges {
    /// How far behind the wall clock the thread's furthest-behind reading task is.
    pub stream_time_lag: [Millis; 2],
    pub timers_pending: [i64; 2],
    pub input_buffered: [i64; 2],
    pub lifecycle: [i64; LifecycleStage::ALL.len()],
}

impl ThreadGauges {
    pub fn side(side: Side) -> usize {
        match side {
            Side::Customer => 0,
            Side::Product => 1,
        }
    }

    /// The process's figures: the largest lag, and the sums of the counts.
    fn combine(&mut self, other: &ThreadGauges) {
        for i in 0..2 {
            self.stream_time_lag[i] = self.stream_time_lag[i].max(other.stream_time_lag[i]);
            self.timers_pending[i] += other.timers_pending[i];
            self.input_buffered[i] += other.input_buffered[i];
        }
        for (sum, n) in self.lifecycle.iter_mut().zip(other.lifecycle) {
            *sum += n;
        }
    }
}

/// No stream time reported (a thread without tasks, or not started yet).
const NO_TIME: Millis = Millis::MAX;

struct Slot {
    caught_up: AtomicBool,
    /// Caught up, and everything it read committed.
    settled: AtomicBool,
    /// The smallest stream time among the thread's tasks, [`NO_TIME`] for none.
    oldest_stream_time: AtomicI64,
    customer_partitions: Mutex<Vec<u16>>,
    gauges: Mutex<ThreadGauges>,
}

/// Tasks per side, customer first.
pub type PerSide = [i64; 2];

/// A thread's tasks: assigned, and of those still restoring, per side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub assigned: PerSide,
    pub restoring: PerSide,
}

pub struct Peers {
    slots: Vec<Slot>,
    /// Every thread's tasks, under one lock (see [`Peers::update_tasks`]).
    tasks: Mutex<Vec<TaskCounts>>,
    /// Events (processed and duplicates) every thread has committed.
    committed_events: AtomicU64,
    /// Since when some thread has had work, and the events committed by then; `None`
    /// while every thread is settled.
    backlog: Mutex<Option<(Instant, u64)>>,
}

impl Peers {
    /// The board of `threads` stream threads, none of them caught up yet.
    pub fn new(threads: usize) -> Peers {
        Peers {
            slots: (0..threads.max(1))
                .map(|_| Slot {
                    caught_up: AtomicBool::new(false),
                    settled: AtomicBool::new(false),
                    oldest_stream_time: AtomicI64::new(NO_TIME),
                    customer_partitions: Mutex::new(Vec::new()),
                    gauges: Mutex::new(ThreadGauges::default()),
                })
                .collect(),
            tasks: Mutex::new(vec![TaskCounts::default(); threads.max(1)]),
            committed_events: AtomicU64::new(0),
            backlog: Mutex::new(None),
        }
    }

    pub fn threads(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, thread: usize) -> &Slot {
        &self.slots[thread.min(self.slots.len() - 1)]
    }

    /// Whether every task of `thread` has read all there is. A thread that is being
    /// rebuilt says `false` until its new tasks have caught up.
    pub fn set_caught_up(&self, thread: usize, caught_up: bool) {
        self.slot(thread)
            .caught_up
            .store(caught_up, Ordering::SeqCst);
    }

    pub fn all_caught_up(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.caught_up.load(Ordering::SeqCst))
    }

    /// A thread starts a batch: the process has work from now on, unless it had already.
    pub fn working(&self) {
        let mut backlog = lock(&self.backlog);
        if backlog.is_none() {
            *backlog = Some((Instant::now(), self.committed_events.load(Ordering::SeqCst)));
        }
    }

    /// A thread committed a batch of `events` (processed and duplicates).
    pub fn count_committed(&self, events: u64) {
        self.committed_events.fetch_add(events, Ordering::SeqCst);
    }

    /// Whether `thread` has read all there is and committed all it read.
    pub fn set_settled(&self, thread: usize, settled: bool) {
        self.slot(thread).settled.store(settled, Ordering::SeqCst);
    }

    /// Once every thread is settled: how long the process had work and how many events
    /// it committed meanwhile. Answered once per stretch of work, to one thread.
    pub fn backlog_done(&self) -> Option<(Duration, u64)> {
        if !self.slots.iter().all(|s| s.settled.load(Ordering::SeqCst)) {
            return None;
        }
        let (since, events_before) = lock(&self.backlog).take()?;
        let events = self.committed_events.load(Ordering::SeqCst) - events_before;
        Some((since.elapsed(), events))
    }

    /// The smallest stream time among `thread`'s tasks; `None` when it has no tasks
    /// left after a rebalance (its partitions moved to other members, which hold their
    /// own). A thread that is rebuilt keeps its last value until it reports again, so
    /// the horizon never passes the tasks it is restoring.
    pub fn set_oldest_stream_time(&self, thread: usize, time: Option<Millis>) {
        self.slot(thread)
            .oldest_stream_time
            .store(time.unwrap_or(NO_TIME), Ordering::SeqCst);
    }

    /// The smallest stream time of any task of any thread.
    pub fn oldest_stream_time(&self) -> Option<Millis> {
        self.slots
            .iter()
            .map(|s| s.oldest_stream_time.load(Ordering::SeqCst))
            .min()
            .filter(|t| *t != NO_TIME)
    }

    /// Records the customer partitions `thread` now serves and returns those of every
    /// thread, in order: what the instance announces.
    pub fn serve(&self, thread: usize, partitions: &[u16]) -> Vec<u16> {
        *lock(&self.slot(thread).customer_partitions) = partitions.to_vec();
        let mut all: Vec<u16> = self
            .slots
            .iter()
            .flat_map(|s| lock(&s.customer_partitions).clone())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The customer partitions `thread` last said it serves. Kept across the thread's
    /// rebuilds, so a new incarnation knows what its predecessor served.
    pub fn served_by(&self, thread: usize) -> Vec<u16> {
        lock(&self.slot(thread).customer_partitions).clone()
    }

    /// Records `thread`'s gauges and returns the process's.
    pub fn report_gauges(&self, thread: usize, gauges: ThreadGauges) -> ThreadGauges {
        *lock(&self.slot(thread).gauges) = gauges;
        let mut total = ThreadGauges::default();
        for slot in &self.slots {
            total.combine(&lock(&slot.gauges));
        }
        total
    }
}

impl Peers {
    /// Changes `thread`'s task counts with `update`, then hands the process's sums to
    /// `publish` before another thread can change them, so the task gauges are set in
    /// the order of the changes and end at the true count.
    pub fn update_tasks(
        &self,
        thread: usize,
        update: impl FnOnce(&mut TaskCounts),
        publish: impl FnOnce(TaskCounts),
    ) {
        let mut all = lock(&self.tasks);
        let index = thread.min(all.len() - 1);
        update(&mut all[index]);
        let mut sum = TaskCounts::default();
        for counts in all.iter() {
            for side in 0..2 {
                sum.assigned[side] += counts.assigned[side];
                sum.restoring[side] += counts.restoring[side];
            }
        }
        publish(sum);
    }
}

/// A slot's lock is only held to copy plain values, so a thread that panicked while
/// holding it left nothing half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_tasks_wait_until_every_thread_has_caught_up() {
        let peers = Peers::new(2);
        assert!(!peers.all_caught_up(), "no thread has reported yet");
        peers.set_caught_up(0, true);
        assert!(!peers.all_caught_up(), "thread 1 is still working");
        peers.set_caught_up(1, true);
        assert!(peers.all_caught_up());
        peers.set_caught_up(0, false);
        assert!(!peers.all_caught_up());
    }

    #[test]
    fn a_backlog_is_done_once_every_thread_has_committed_all_it_read() {
        let peers = Peers::new(2);
        peers.count_committed(5);
        peers.working();
        peers.working();
        peers.count_committed(30);
        peers.set_settled(0, true);
        assert_eq!(peers.backlog_done(), None, "thread 1 is still working");
        peers.count_committed(12);
        peers.set_settled(1, true);
        let (_, events) = peers.backlog_done().expect("both settled");
        assert_eq!(events, 42, "the events of this stretch only");
        assert_eq!(peers.backlog_done(), None, "told once");
        peers.working();
        assert_eq!(peers.backlog_done().map(|(_, n)| n), Some(0));
    }

    #[test]
    fn the_oldest_stream_time_is_the_smallest_reported_and_ignores_threads_without_tasks() {
        let peers = Peers::new(3);
        assert_eq!(peers.oldest_stream_time(), None);
        peers.set_oldest_stream_time(0, Some(5_000));
        peers.set_oldest_stream_time(2, Some(2_000));
        assert_eq!(peers.oldest_stream_time(), Some(2_000));
        peers.set_oldest_stream_time(2, None);
        assert_eq!(peers.oldest_stream_time(), Some(5_000));
    }

    #[test]
    fn the_announced_partitions_are_every_threads_in_order() {
        let peers = Peers::new(2);
        assert_eq!(peers.serve(1, &[3, 1]), vec![1, 3]);
        assert_eq!(peers.serve(0, &[2, 0]), vec![0, 1, 2, 3]);
        // A rebalance moves partition 3 to thread 0: announced once.
        assert_eq!(peers.serve(0, &[0, 2, 3]), vec![0, 1, 2, 3]);
        assert_eq!(peers.serve(1, &[1]), vec![0, 1, 2, 3]);
        assert_eq!(peers.serve(0, &[]), vec![1]);
        assert_eq!(peers.served_by(1), vec![1]);
        assert_eq!(peers.served_by(0), Vec::<u16>::new());
    }

    #[test]
    fn task_counts_are_the_sums_of_every_threads_latest_counts() {
        let peers = Peers::new(2);
        let published = std::cell::Cell::new(TaskCounts::default());
        let assign = |thread, tasks| {
            peers.update_tasks(
                thread,
                |t| {
                    *t = TaskCounts {
                        assigned: tasks,
                        restoring: tasks,
                    }
                },
                |sum| published.set(sum),
            )
        };
        let restored = |thread, side: usize| {
            peers.update_tasks(thread, |t| t.restoring[side] -= 1, |sum| published.set(sum))
        };
        assign(0, [2, 2]);
        assign(1, [2, 1]);
        assert_eq!(published.get().assigned, [4, 3]);
        assert_eq!(published.get().restoring, [4, 3]);
        restored(0, 0);
        restored(0, 1);
        assert_eq!(published.get().restoring, [3, 2]);
        // Thread 1 is assigned again (a rebalance): its new tasks replace its old ones.
        assign(1, [1, 1]);
        assert_eq!(published.get().assigned, [3, 3]);
        assert_eq!(published.get().restoring, [2, 2]);
    }

    #[test]
    fn gauges_combine_as_the_largest_lag_and_the_sums_of_counts() {
        let peers = Peers::new(2);
        let first = ThreadGauges {
            stream_time_lag: [4_000, 10],
            timers_pending: [7, 1],
            input_buffered: [100, 0],
            lifecycle: [3, 0, 0, 0, 0],
        };
        let second = ThreadGauges {
            stream_time_lag: [1_000, 20],
            lifecycle: [-1, 0, 0, 0, 0],
            ..first
        };
        peers.report_gauges(0, first);
        let total = peers.report_gauges(1, second);
        assert_eq!(total.stream_time_lag, [4_000, 20]);
        assert_eq!(total.timers_pending, [14, 2]);
        assert_eq!(total.input_buffered, [200, 0]);
        assert_eq!(total.lifecycle[0], 2);
        // A new report replaces the thread's last one.
        let total = peers.report_gauges(1, ThreadGauges::default());
        assert_eq!(total, first);
    }
}
