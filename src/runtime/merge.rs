//! Event-time merge of input partitions, as Kafka Streams does it for a task.
//!
//! A task reads several partitions (clickstream, cart, customers and the forwarded
//! messages for shoppers; stock and forwarded messages for products). The stream thread
//! takes the buffered record with the smallest event time across all the partitions of
//! all its tasks, so a fast topic cannot run a shopper's clock ahead of a slow one, and a
//! message one task forwards to another reaches it before that task's later events, as
//! in `replay`. When a partition has nothing buffered but is not known to be caught up,
//! more may be on its way with earlier times: the thread waits for it, up to
//! `max_task_idle`, then goes on without it.

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

#[derive(Debug)]
struct Input<T> {
    records: VecDeque<Pending<T>>,
    caught_up: bool,
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
                    caught_up: false,
                })
                .collect(),
        }
    }

    pub fn push(&mut self, input: usize, record: Pending<T>) {
        let input = &mut self.inputs[input];
        input.records.push_back(record);
        // More may follow what just arrived; the next refresh decides.
        input.caught_up = false;
    }

    /// Whether `input` has no more records on the broker than it has delivered.
    pub fn set_caught_up(&mut self, input: usize, caught_up: bool) {
        self.inputs[input].caught_up = caught_up;
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
            .all(|i| i.records.is_empty() && i.caught_up)
    }

    /// The event time of the record this task would process next.
    pub fn head_time(&self) -> Option<i64> {
        self.inputs
            .iter()
            .filter_map(|i| i.records.front().map(|r| r.time))
            .min()
    }

    /// Whether some input has nothing buffered but may still have records on the way.
    pub fn waiting(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| i.records.is_empty() && !i.caught_up)
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
/// their buffered records, waiting (up to `max_idle`) while some input that has nothing
/// buffered may still deliver an earlier one.
#[derive(Debug, Default)]
pub struct Merger {
    blocked_since: Option<Instant>,
}

impl Merger {
    /// The index of the task to take from now, if any may be taken.
    /// `now` is asked for only when some input is waiting.
    pub fn choose<'a, T: 'a>(
        &mut self,
        tasks: impl Iterator<Item = &'a TaskInputs<T>>,
        now: impl FnOnce() -> Instant,
        max_idle: Duration,
    ) -> Option<usize> {
        let mut best: Option<(usize, i64)> = None;
        let mut waiting = false;
        for (index, task) in tasks.enumerate() {
            if let Some(time) = task.head_time() {
                if best.is_none_or(|(_, t)| time < t) {
                    best = Some((index, time));
                }
            }
            waiting |= task.waiting();
        }
        let Some((index, time)) = best else {
            self.blocked_since = None;
            return None;
        };
        // Records that need no ordering never wait.
        if waiting && time != i64::MIN {
            let now = now();
            let since = *self.blocked_since.get_or_insert(now);
            if now.duration_since(since) < max_idle {
                return None;
            }
        } else {
            self.blocked_since = None;
        }
        Some(index)
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
                task.set_caught_up(i, true);
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

    #[test]
    fn waits_for_an_empty_input_that_is_behind_then_gives_up() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(5, 0));
        let mut merger = Merger::default();
        let start = Instant::now();
        let idle = Duration::from_millis(100);
        assert_eq!(merger.choose(tasks.iter(), || start, idle), None);
        assert_eq!(
            merger.choose(tasks.iter(), || start + Duration::from_millis(50), idle),
            None
        );
        assert_eq!(
            merger.choose(tasks.iter(), || start + Duration::from_millis(100), idle),
            Some(0)
        );
    }

    #[test]
    fn does_not_wait_for_a_caught_up_input() {
        let mut tasks = [TaskInputs::new(2)];
        tasks[0].push(0, pending(5, 0));
        tasks[0].set_caught_up(0, true);
        tasks[0].set_caught_up(1, true);
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
        task.set_caught_up(0, true);
        task.push(0, pending(1, 0));
        task.pop();
        assert!(task.waiting(), "it may have more now");
    }
}
