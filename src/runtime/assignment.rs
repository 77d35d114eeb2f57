//! The topics each side reads, and the stream thread's view of its assigned tasks'
//! inputs: buffered records, offsets to commit, how far each partition is behind, and
//! which partitions are paused because their buffer is full.

use super::input::{Item, Source};
use super::merge::{Lag, TaskInputs};
use super::topics::TopicLayout;
use super::watermarks::cached_watermarks;
use crate::config::Config;
use crate::engine::{Side, TaskId};
use crate::event::InputTopic;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Buffered records of one input partition at which it is paused (librdkafka drops what
/// it prefetched for it and fetches again from the next record when it is resumed), so
/// the other partitions keep flowing and the buffers stay bounded. Pausing is costly
/// (the prefetched records are fetched twice): at 5,000 a 2 M-event backlog ran at a
/// third of the speed it reaches at 20,000, which pauses rarely.
pub const PAUSE_AT: usize = 20_000;
/// Buffered records of a paused partition below which it is resumed.
pub const RESUME_BELOW: usize = PAUSE_AT / 2;
/// How long a partition may look behind with nothing arriving before the broker is
/// asked for its last stable offset, and how often it is asked again after that.
const LSO_PROBE_AFTER: Duration = Duration::from_millis(250);
/// How long that question may take.
const LSO_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which side a topic feeds, which input of the task it is, and what it carries.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub side: Side,
    pub input: usize,
    pub source: Source,
}

/// The input topics of both sides, each side's in the order of its task's inputs.
pub struct Topics {
    customer: Vec<String>,
    product: Vec<String>,
    changelogs: [String; 2],
    internal: [String; 2],
    routes: HashMap<String, Route>,
    c_names: HashMap<String, CString>,
}

impl Topics {
    pub fn new(config: &Config, layout: &TopicLayout) -> Topics {
        let t = &config.kafka.topics;
        let customer = vec![
            (
                t.clickstream.clone(),
                Source::Events(InputTopic::Clickstream),
            ),
            (t.cart.clone(), Source::Events(InputTopic::Cart)),
            (t.customers.clone(), Source::Events(InputTopic::Customers)),
            (layout.by_customer.clone(), Source::Forwarded),
        ];
        let product = vec![
            (t.stock.clone(), Source::Events(InputTopic::Stock)),
            (layout.by_sku.clone(), Source::Forwarded),
        ];
        let mut routes = HashMap::new();
        for (side, inputs) in [(Side::Customer, &customer), (Side::Product, &product)] {
            for (input, (topic, source)) in inputs.iter().enumerate() {
                routes.insert(
                    topic.clone(),
                    Route {
                        side,
                        input,
                        source: *source,
                    },
                );
            }
        }
        let c_names = routes
            .keys()
            .map(|t| {
                let name = CString::new(t.as_str()).expect("topic names have no NUL");
                (t.clone(), name)
            })
            .collect();
        Topics {
            customer: customer.into_iter().map(|(t, _)| t).collect(),
            product: product.into_iter().map(|(t, _)| t).collect(),
            changelogs: [
                layout.customer_changelog.clone(),
                layout.product_changelog.clone(),
            ],
            internal: [layout.by_customer.clone(), layout.by_sku.clone()],
            routes,
            c_names,
        }
    }

    /// The topics a task of `side` reads, in input order.
    pub fn inputs(&self, side: Side) -> &[String] {
        match side {
            Side::Customer => &self.customer,
            Side::Product => &self.product,
        }
    }

    pub fn changelog(&self, side: Side) -> &str {
        &self.changelogs[side as usize]
    }

    /// The internal topic that carries forwarded messages to `side`.
    pub fn internal(&self, side: Side) -> &str {
        &self.internal[side as usize]
    }

    pub fn route(&self, topic: &str) -> Option<Route> {
        self.routes.get(topic).copied()
    }

    pub fn c_name(&self, topic: &str) -> Option<&CString> {
        self.c_names.get(topic)
    }

    pub fn subscription(&self) -> Vec<&str> {
        self.routes.keys().map(String::as_str).collect()
    }
}

/// One task's inputs as the stream thread holds them.
pub struct TaskInput {
    pub records: TaskInputs<Item>,
    /// Next offset to commit, per input.
    pub consumed: Vec<Option<i64>>,
}

impl TaskInput {
    pub fn new(inputs: usize) -> TaskInput {
        TaskInput {
            records: TaskInputs::new(inputs),
            consumed: vec![None; inputs],
        }
    }
}

/// The assigned tasks' inputs.
#[derive(Default)]
pub struct Assignment {
    pub tasks: BTreeMap<TaskId, TaskInput>,
    /// The group's committed offset of each assigned partition when it was assigned:
    /// where the consumer stands on a partition it has delivered nothing from since.
    committed: HashMap<(String, i32), i64>,
    /// Input partitions paused because their buffer is full.
    paused: HashSet<(String, i32)>,
    /// Input partitions that look behind with nothing buffered: since when, and the
    /// last stable offset the broker gave when last asked.
    stuck: HashMap<(String, i32), Stuck>,
}

struct Stuck {
    since: Instant,
    asked: Option<(Instant, i64)>,
}

impl Assignment {
    /// The tasks of a new assignment, with the committed offsets of its partitions.
    pub fn new(
        topics: &Topics,
        assigned: &TopicPartitionList,
        committed: &TopicPartitionList,
    ) -> Assignment {
        let mut tasks = BTreeMap::new();
        for element in assigned.elements() {
            let (Some(route), Ok(p)) = (
                topics.route(element.topic()),
                u16::try_from(element.partition()),
            ) else {
                continue;
            };
            tasks
                .entry((route.side, p))
                .or_insert_with(|| TaskInput::new(topics.inputs(route.side).len()));
        }
        let committed = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect();
        Assignment {
            tasks,
            committed,
            paused: HashSet::new(),
            stuck: HashMap::new(),
        }
    }

    /// Whether some input partition is paused because its buffer is full.
    pub fn any_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// Nothing buffered and every input of every task caught up; true of no tasks (a
    /// stream thread that got no partitions has no input waiting).
    pub fn all_caught_up(&self) -> bool {
        self.tasks.values().all(|t| t.records.fully_caught_up())
    }

    /// Records buffered by the tasks of `side`.
    pub fn buffered(&self, side: Side) -> usize {
        self.tasks
            .iter()
            .filter(|((s, _), _)| *s == side)
            .map(|(_, t)| t.records.buffered())
            .sum()
    }

    /// The most records buffered by one task.
    pub fn max_buffered(&self) -> usize {
        self.tasks
            .values()
            .map(|t| t.records.buffered())
            .max()
            .unwrap_or(0)
    }

    /// Buffers a record; returns how many its input partition now holds.
    pub fn push(
        &mut self,
        route: Route,
        partition: u16,
        record: super::merge::Pending<Item>,
    ) -> Option<usize> {
        let task = self.tasks.get_mut(&(route.side, partition))?;
        task.records.push(route.input, record);
        Some(task.records.buffered_in(route.input))
    }

    /// Updates the lag of every input with nothing buffered: caught up when the
    /// consumer's position is the partition's end (the high watermark of the last fetch
    /// response), behind when below it, unknown before the first fetch response.
    ///
    /// The position is where the last record handed to this thread leaves the consumer
    /// (past any transaction markers after it); on a partition that has delivered
    /// nothing since it was assigned, it is the group's committed offset (or the log
    /// start when nothing is committed), so a restarted task whose partitions are at
    /// their end is caught up without waiting for new records.
    ///
    /// Records of a transaction still open lie below the high watermark but cannot be
    /// read (`read_committed`): a partition that stays behind with nothing arriving for
    /// [`LSO_PROBE_AFTER`] is measured against its last stable offset, asked of the
    /// broker, as Kafka Streams measures lag; at it, the partition is caught up.
    pub fn refresh_lags<C: ConsumerContext>(
        &mut self,
        topics: &Topics,
        consumer: &BaseConsumer<C>,
    ) {
        let Ok(positions) = consumer.position() else {
            return;
        };
        let mut position_of = HashMap::new();
        for e in positions.elements() {
            if let Offset::Offset(o) = e.offset() {
                position_of.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        let now = Instant::now();
        let mut still_stuck = HashSet::new();
        for (&(side, p), task) in &mut self.tasks {
            for (input, topic) in topics.inputs(side).iter().enumerate() {
                if task.records.buffered_in(input) > 0 {
                    continue;
                }
                let partition = i32::from(p);
                let watermarks = topics
                    .c_name(topic)
                    .and_then(|name| cached_watermarks(consumer, name, partition));
                let key = (topic.clone(), partition);
                let lag = match watermarks {
                    None => Lag::Unknown,
                    Some((low, high)) => {
                        let position = position_of
                            .get(&key)
                            .or_else(|| self.committed.get(&key))
                            .copied()
                            .unwrap_or(low);
                        if position >= high {
                            Lag::CaughtUp
                        } else {
                            let stuck = self.stuck.entry(key.clone()).or_insert(Stuck {
                                since: now,
                                asked: None,
                            });
                            still_stuck.insert(key.clone());
                            stuck_lag(stuck, now, position, || {
                                consumer
                                    .fetch_watermarks(topic, partition, LSO_PROBE_TIMEOUT)
                                    .ok()
                                    .map(|(_, stable)| stable)
                            })
                        }
                    }
                };
                task.records.set_lag(input, lag);
            }
        }
        self.stuck.retain(|key, _| still_stuck.contains(key));
    }

    /// Pauses `topic`'s `partition` (its buffer is full), unless it is paused already.
    pub fn pause<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: u16,
    ) -> rdkafka::error::KafkaResult<()> {
        let key = (topic.to_string(), i32::from(partition));
        if self.paused.contains(&key) {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&key.0, key.1);
        consumer.pause(&tpl)?;
        self.paused.insert(key);
        Ok(())
    }

    /// Resumes the paused partitions whose buffer has drained below [`RESUME_BELOW`].
    pub fn resume_drained<C: ConsumerContext>(
        &mut self,
        topics: &Topics,
        consumer: &BaseConsumer<C>,
    ) -> rdkafka::error::KafkaResult<()> {
        if self.paused.is_empty() {
            return Ok(());
        }
        let drained: Vec<(String, i32)> = self
            .paused
            .iter()
            .filter(|(topic, partition)| {
                let (Some(route), Ok(p)) = (topics.route(topic), u16::try_from(*partition)) else {
                    return true;
                };
                self.tasks
                    .get(&(route.side, p))
                    .is_none_or(|t| t.records.buffered_in(route.input) < RESUME_BELOW)
            })
            .cloned()
            .collect();
        if drained.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &drained {
            tpl.add_partition(topic, *partition);
        }
        consumer.resume(&tpl)?;
        for key in drained {
            self.paused.remove(&key);
        }
        Ok(())
    }
}

/// The lag of a partition whose position is below its high watermark: behind, unless it
/// has been so for a while and the broker's last stable offset (`ask`, at most every
/// [`LSO_PROBE_AFTER`]) says the rest is an open transaction.
fn stuck_lag(
    stuck: &mut Stuck,
    now: Instant,
    position: i64,
    ask: impl FnOnce() -> Option<i64>,
) -> Lag {
    if now.duration_since(stuck.since) < LSO_PROBE_AFTER {
        return Lag::Behind;
    }
    let due = stuck
        .asked
        .is_none_or(|(at, _)| now.duration_since(at) >= LSO_PROBE_AFTER);
    if due {
        if let Some(stable) = ask() {
            stuck.asked = Some((now, stable));
        }
    }
    match stuck.asked {
        Some((_, stable)) if position >= stable => Lag::CaughtUp,
        _ => Lag::Behind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_behind_only_by_an_open_transaction_is_caught_up_after_the_probe() {
        let start = Instant::now();
        let mut stuck = Stuck {
            since: start,
            asked: None,
        };
        let at = |ms| start + Duration::from_millis(ms);
        let never = || -> Option<i64> { panic!("asked too early") };
        assert_eq!(stuck_lag(&mut stuck, at(100), 40, never), Lag::Behind);
        // The stable offset is the position: the records above it are not committed.
        assert_eq!(
            stuck_lag(&mut stuck, at(250), 40, || Some(40)),
            Lag::CaughtUp
        );
        // Asked again only after a while; until then the answer stands.
        assert_eq!(stuck_lag(&mut stuck, at(300), 40, never), Lag::CaughtUp);
        assert_eq!(stuck_lag(&mut stuck, at(500), 40, || Some(45)), Lag::Behind);
    }

    #[test]
    fn a_thread_without_tasks_has_no_input_waiting() {
        assert!(Assignment::default().all_caught_up());
    }

    #[test]
    fn a_partition_with_committed_records_to_read_stays_behind() {
        let start = Instant::now();
        let mut stuck = Stuck {
            since: start,
            asked: None,
        };
        let later = start + Duration::from_secs(5);
        assert_eq!(stuck_lag(&mut stuck, later, 40, || Some(90)), Lag::Behind);
        // A broker that does not answer leaves it behind.
        let mut silent = Stuck {
            since: start,
            asked: None,
        };
        assert_eq!(stuck_lag(&mut silent, later, 40, || None), Lag::Behind);
    }
}
