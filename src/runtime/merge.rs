//! Event-time merge of input partitions, as Kafka Streams does it for a task.
//!
//! A task reads several partitions (clickstream, cart, customers and the forwarded
//! messages for shoppers; stock and forwarded messages for products). The stream thread
//! takes the buffered record with the smallest event time across all the partitions of
//! all its tasks, so a fast topic cannot run a shopper's clock ahead of a slow one, and a
//! message one task forwards to another reaches it before that task's later events, as
//! in `replay`.
//!
//! When a partition has nothing buffered, what happens depends on its [`Lag`]. One that
//! is known to be behind (the broker holds records beyond what was read) or whose lag is
//! not known yet is always waited for, however long: going on without it would take
//! later events first, which is how a backlog fired reminders that its own later events
//! cancel (as Kafka Streams since KIP-695). One that is caught up may still receive a
//! record with an earlier time; it is waited for up to `max_task_idle`, then skipped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One buffered record: its event time (or `i64::MIN` for records that need no
/// ordering, such as bad ones headed for the dead-letter topic) and what it carries.
#[derive(Debug)]
pub struct Pending<T> {
    pub time: i64,
    pub offset: i64,
    pub item: T,
}

/// How far an input partition is behind the broker's end of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Not known since the last records arrived (the next refresh tells).
    Unknown,
    /// The broker holds records beyond the consumer's position.
    Behind,
    /// The consumer's position is the end of the partition.
    CaughtUp,
}

/// Why nothing may be taken yet, from the most to the least binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wait {
    None,
    /// An empty input is caught up: more may come, so wait up to `max_task_idle`.
    Idle,
    /// An empty input is behind or not known to be caught up: wait for the fetch.
    Fetch,
}

#[derive(Debug)]
struct Input<T> {
    records: VecDeque<Pending<T>>,
    lag: Lag,
}

/// The buffered input of one task: one queue per partition it reads.
#[derive(Debug)]
pub struct TaskInputs<T> {
    inputs: Vec<Input<T>>,
}

impl<T> TaskInputs<T> {
    pub fn new(partitions: usize) -> Self {
        TaskInputs {
            inputs: (0..partitions)
                .map(|_| Input {
                    records: VecDeque::new(),
                    lag: Lag::Unknown,
                })
                .collect(),
        }
    }

    pub fn push(&mut self, input: usize, record: Pending<T>) {
        let input = &mut self.inputs[input];
        input.records.push_back(record);
        // More may follow what just arrived; the next refresh decides.
        input.lag = Lag::Unknown;
    }

    pub fn set_lag(&mut self, input: usize, lag: Lag) {
        self.inputs[input].lag = lag;
    }

    pub fn buffered(&self) -> usize {
        self.inputs.iter().map(|i| i.records.len()).sum()
    }

    pub fn buffered_in(&self, input: usize) -> usize {
        self.inputs[input].records.len()
    }

    /// Nothing buffered and every input caught up: the task has seen all there is.
    pub fn fully_caught_up(&self) -> bool {
        self.inputs
            .iter()
            .all(|i| i.records.is_empty() && i.lag == Lag::CaughtUp)
    }

    /// The event time of the record this task would process next.
    pub fn head_time(&self) -> Option<i64> {
        self.inputs
            .iter()
            .filter_map(|i| i.records.front().map(|r| r.time))
            .min()
    }

    /// What an input with nothing buffered makes this task wait for.
    fn wait(&self) -> Wait {
        self.inputs
            .iter()
            .filter(|i| i.records.is_empty())
            .map(|i| match i.lag {
                Lag::CaughtUp => Wait::Idle,
                Lag::Behind | Lag::Unknown => Wait::Fetch,
            })
            .max()
            .unwrap_or(Wait::None)
    }

    /// Takes the buffered record with the smallest event time (the first input wins ties).
    pub fn pop(&mut self) -> Option<(usize, Pending<T>)> {
        let (index, _) = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, input)| input.records.front().map(|r| (i, r.time)))
            .min_by_key(|&(i, t)| (t, i))?;
        let record = self.inputs[index].records.pop_front()?;
        Some((index, record))
    }
}

/// Chooses what to process next across several tasks: the smallest event time among
/// their buffered records, once no input with nothing buffered may still deliver an
/// earlier one (see the module's comment for how long each kind is waited for).
#[derive(Debug, Default)]
pub struct Merger {
    idle_since: Option<Instant>,
}

impl Merger {
    /// The index of the task to take from now, if any may be taken.
    /// `now` is asked for only when an idle input is being waited for.
    pub fn choose<'a, T: 'a>(
        &mut self,
        tasks: impl Iterator<Item = &'a TaskInputs<T>>,
        now: impl FnOnce() -> Instant,
        max_idle: Duration,
    ) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        let mut wait = Wait::None;
        for (index, task) in tasks.enumerate() {
            if let Some(time) = task.head_time() {
                if best.is_none_or(|(_, t)| time < t) {
                    best = Some((index, time));
                }
            }
            wait = wait.max(task.wait());
        }
        let Some((index, time)) = best else {
            self.idle_since = None;
            return None;
        };
        // Records that need no ordering never wait.
        if time == i64::MIN {
            return Some(index);
        }
        match wait {
            Wait::None => {
                self.idle_since = None;
                Some(index)
            }
            Wait::Fetch => None,
            Wait::Idle => {
                let now = now();
                let since = *self.idle_since.get_or_insert(now);
                (now.duration_since(since) >= max_idle).then_some(index)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(time: i64, offset: i64) -> Pending<&'static str> {
        Pending {
            time,
            offset,
            item: "",
        }
    }

    /// Drains tasks through the merger, as (task, input, time).
    fn drain(
        tasks: &mut [TaskInputs<&'static str>],
        merger: &mut Merger,
        now: Instant,
        idle: Duration,
    ) -> Vec<(usize, usize, i64)> {
        let mut out = Vec::new();
        while let Some(task) = merger.choose(tasks.iter(), || now, idle) {
            let (input, record) = tasks[task].pop().unwrap();
            out.push((task, input, record.time));
        }
        out
    }

    #[test]
    fn takes_the_smallest_time_across_inputs_and_tasks() {
        let mut a = TaskInputs::new(2);
        for t in [1, 5, 9] {
            a.push(0, pending(t, t));
        }
        for t in [2, 10] {
            a.push(1, pending(t, t));
        }
        let mut b = TaskInputs::new(1);
        for t in [3, 6] {
            b.push(0, pending(t, t));
        }
        for (task, inputs) in [(&mut a, 2), (&mut b, 1)] {
            for i in 0..inputs {
                task.set_lag(i, Lag::CaughtUp);
            }
        }
        let mut tasks = [a, b];
        let order = drain(
            &mut tasks,
            &mut Merger::default(),
            Instant::now(),
            Duration::ZERO,
        );
        assert_eq!(
            order,
            vec![
                (0, 0, 1),
                (0, 1, 2),
                (1, 0, 3),
                (0, 0, 5),
                (1, 0, 6),
                (0, 0, 9),
                (0, 1, 10)
            ]
        );
        assert!(tasks.iter().all(TaskInputs::fully_caught_up));
    }

    /// What `choose` says at each of `offsets_ms` after the first call.
    fn choices(
        tasks: &[TaskInputs<&'static str>],
        idle: Duration,
        at_ms: &[u64],
    ) -> Vec<Option<usize>> {
        let mut merger = Merger::default();
        let start = Instant::now();
        at_ms
            .iter()
            .map(|ms| merger.choose(tasks.iter(), || start + Duration::from_millis(*ms), idle))
            .collect()
    }

    #[test]
    fn an_empty_input_that_is_behind_or_unknown_is_waited_for_whatever_max_idle_says() {
        for lag in [Lag::Behind, Lag::Unknown] {
            let mut tasks = [TaskInputs::new(2)];
            tasks[0].push(0, pending(5, 0));
            tasks[0].set_lag(0, Lag::CaughtUp);
            tasks[0].set_lag(1, lag);
            assert_eq!(
                choices(&tasks, Duration::ZERO, &[0, 100, 3_600_000]),
                vec![None, None, None],
                "{lag:?}"
            );
        }
    }

    #[test]
    fn a_behind_input_of_another_task_holds_back_every_task() {
        let mut a = TaskInputs::new(1);
        a.push(0, pending(5, 0));
        a.set_lag(0, Lag::CaughtUp);
        let mut b = TaskInputs::new(1);
        b.set_lag(0, Lag::Behind);
        assert_eq!(
            choices(&[a, b], Duration::ZERO, &[0, 60_000]),
            vec![None, None]
        );
    }

    #[test]
    fn an_empty_input_that_is_caught_up_is_waited_for_up_to_max_idle() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(5, 0));
        tasks[0].set_lag(0, Lag::CaughtUp);
        tasks[0].set_lag(1, Lag::CaughtUp);
        assert_eq!(
            choices(&tasks, Duration::from_millis(100), &[0, 50, 100, 150]),
            vec![None, None, Some(0), Some(0)]
        );
    }

    #[test]
    fn the_idle_wait_starts_again_once_every_input_has_data() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(5, 0));
        tasks[0].set_lag(0, Lag::CaughtUp);
        tasks[0].set_lag(1, Lag::CaughtUp);
        let mut merger = Merger::default();
        let start = Instant::now();
        let idle = Duration::from_millis(100);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(merger.choose(tasks.iter(), || at(0), idle), None);
        assert_eq!(merger.choose(tasks.iter(), || at(100), idle), Some(0));
        tasks[0].push(1, pending(6, 0));
        assert_eq!(merger.choose(tasks.iter(), || at(101), idle), Some(0));
        tasks[0].pop();
        tasks[0].set_lag(0, Lag::CaughtUp);
        assert_eq!(merger.choose(tasks.iter(), || at(150), idle), None);
        assert_eq!(merger.choose(tasks.iter(), || at(250), idle), Some(0));
    }

    #[test]
    fn does_not_wait_for_a_caught_up_input_when_every_input_has_data() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(5, 0));
        tasks[0].push(1, pending(7, 0));
        let chosen = Merger::default().choose(tasks.iter(), Instant::now, Duration::from_secs(60));
        assert_eq!(chosen, Some(0));
    }

    #[test]
    fn unordered_records_go_at_once() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(i64::MIN, 0));
        let chosen = Merger::default().choose(tasks.iter(), Instant::now, Duration::from_secs(60));
        assert_eq!(chosen, Some(0));
    }

    #[test]
    fn arriving_records_make_an_input_unknown_again() {
        let mut task = TaskInputs::new(1);
        task.set_lag(0, Lag::CaughtUp);
        task.push(0, pending(1, 0));
        task.pop();
        assert!(!task.fully_caught_up(), "it may have more now");
        assert_eq!(task.wait(), Wait::Fetch);
    }
}
