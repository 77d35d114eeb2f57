//! A stream thread: one consumer in the application's group, one producer, and the
//! engine's [`Core`] holding a task per assigned partition of each side. A process runs
//! `kafka.stream_threads` of them side by side (see [`super::peers`] for what they share).
//!
//! Per commit interval it reads records, hands them to the core in event-time order
//! (see [`super::merge`]), produces decisions and messages for tasks elsewhere as they
//! happen, then produces every state change to the changelogs and commits: with
//! exactly-once, one transaction holding outputs, changelog records and the consumed
//! offsets. Only after that succeeds is the same batch written to RocksDB, with the
//! changelog offsets it reaches. Anything that goes wrong before the commit is undone by
//! dropping the in-memory work: the thread is rebuilt from RocksDB and the committed
//! offsets.

use super::assignment::{Assignment, Topics, PAUSE_AT};
use super::batch::BatchCounts;
use super::clients::{self, ClientError, Prefetch};
use super::events::CaughtUp;
use super::input::{self, InputDecoders, Item, ReadAt};
use super::instances::Announcer;
use super::latency::LatencyHistogram;
use super::merge::{Merger, Pending};
use super::output::Output;
use super::peers::Peers;
use super::restore::RestoreError;
use super::topics::TopicLayout;
use super::transaction::CommitterBusy;
use crate::api::shoppers::ServedPartitions;
use crate::config::Config;
use crate::engine::stats::Stats;
use crate::engine::task::TaskError;
use crate::engine::{Advanced, Clock, Core, TaskId};
use crate::store::{Store, StoreError};
use crate::telemetry::health::{Phase, ThreadHealth};
use crate::telemetry::Telemetry;
use crate::time::Millis;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod apply;
mod commit;
mod gauges;
mod rebalance;
mod setup;

pub use setup::{thread_transactional_id, SharedWithReaders, StreamSetup};

const POLL_BATCH: usize = 2_000;
/// How long the first poll of a round may wait for a record.
const POLL_WAIT: Duration = Duration::from_millis(10);
/// Timers quiet tasks fire per round of the loop. A processor that has caught up with
/// a backlog of old events finds every pending timer due at once (months of lifecycle
/// changes and reminders): fired in one go they made one transaction and held 140 MiB
/// of decisions and produced records; in rounds they are committed as events are.
const TIMERS_PER_ROUND: usize = 1_000;
/// How often lag, task and RocksDB gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// What librdkafka fetches ahead of the merge: about half of what a partition's merge
/// buffer holds before it is paused, in small fetches (the stream consumer reads up to
/// 24 partitions, and at librdkafka's 1 MiB per partition one fetch response, once
/// decompressed, held more than the merge buffers).
const INPUT_PREFETCH: Prefetch = Prefetch {
    queued_kib: 4 << 10,
    queued_records: 10_000,
    fetch_bytes: 2 << 20,
    partition_fetch_bytes: 256 << 10,
};

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Task(#[from] TaskError),
    /// A task failed on one record: where, so the log names it.
    #[error(
        "task {processor}/{task}: record at `{topic}` partition {task} offset {offset}: {source}"
    )]
    Record {
        processor: &'static str,
        task: u16,
        topic: String,
        offset: i64,
        source: Box<TaskError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Work since the last commit was dropped; rebuild from committed state.
    #[error("{0}; the uncommitted work is dropped and the thread restarts from the last commit")]
    Rewind(String),
}

/// Records rebalances for the loop to act on after `poll` returns.
#[derive(Default)]
pub struct GroupContext {
    /// The stream thread whose consumer this is, for the logs.
    thread: usize,
    rebalanced: AtomicBool,
    /// Between a revocation and the next assignment (and before the first): the thread
    /// holds no tasks for now, which is not having read all there is.
    between_assignments: AtomicBool,
    committer: Arc<CommitterBusy>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                thread = self.thread,
                partitions = tpl.count(),
                "partitions revoked"
            );
            self.committer.wait_until_idle();
            self.between_assignments.store(true, Ordering::SeqCst);
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(
                thread = self.thread,
                partitions = tpl.count(),
                "partitions assigned"
            );
            self.between_assignments.store(false, Ordering::SeqCst);
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

/// What one `poll` gave, detached from the consumer's borrow.
enum Polled {
    Nothing,
    Skip,
    Error(KafkaError),
    Record(super::assignment::Route, u16, Pending<Item>),
}

/// Totals since the process started, for logs and the run summary.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub stats: Stats,
    pub dead_letters: u64,
    pub commits: u64,
    pub aborts: u64,
    pub restored_records: u64,
    /// From event time to the commit that made the event's outcome visible.
    pub latency: LatencyHistogram,
    /// Time spent committing (flush, offsets, end of transaction).
    pub commit_seconds: f64,
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        self.stats.add(&other.stats);
        self.dead_letters += other.dead_letters;
        self.commits += other.commits;
        self.aborts += other.aborts;
        self.restored_records += other.restored_records;
        self.latency.add(&other.latency);
        self.commit_seconds += other.commit_seconds;
    }
}

/// Whether quiet tasks were left with timers due at the end of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuietTimers {
    Settled,
    /// The next round polls without waiting, to fire them.
    Waiting,
}

pub struct StreamThread<'a> {
    /// Which of the process's stream threads this is, counted from 0.
    index: usize,
    config: &'a Config,
    layout: &'a TopicLayout,
    store: &'a Store,
    consumer: BaseConsumer<GroupContext>,
    output: Output,
    topics: Topics,
    core: Core,
    assignment: Assignment,
    merger: Merger,
    /// When the open batch started; `None` when there is none.
    batch_started: Option<Instant>,
    /// Whether the last poll took everything the consumer had fetched (it returned
    /// nothing before its batch was full): the thread keeps up with its input.
    input_drained: bool,
    /// Whether quiet tasks have timers due that the last round left for the next.
    quiet_timers: QuietTimers,
    /// What the open batch did, published when it commits.
    batch: BatchCounts,
    /// The previous batch, while its commit is under way.
    committing: Option<commit::Committing>,
    /// Which customer partitions the read API may answer for from this instance.
    served: Arc<ServedPartitions>,
    announcer: Arc<Announcer>,
    decoders: Arc<InputDecoders>,
    peers: Arc<Peers>,
    telemetry: &'a Telemetry,
    last_gauges: Instant,
    pub totals: Totals,
}

fn wall_clock_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl<'a> StreamThread<'a> {
    /// Creates the clients of stream thread `index` and joins the group.
    pub fn new(setup: &StreamSetup<'a>, index: usize) -> Result<StreamThread<'a>, StreamError> {
        let StreamSetup {
            config,
            layout,
            store,
            transactional_id,
            partitions,
            shared,
            telemetry,
        } = *setup;
        let transactional_id = thread_transactional_id(transactional_id, index);
        let SharedWithReaders {
            catalog,
            served,
            announcer,
            decoders,
            encoder,
            peers,
        } = shared.clone();
        // Until its tasks have read all there is, no thread's quiet tasks follow the clock.
        peers.set_caught_up(index, false);
        peers.set_settled(index, false);
        let mut consumer_config = clients::base(config);
        consumer_config
            .set("group.id", &config.application_id)
            .set("partition.assignment.strategy", "range")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed");
        // A backlog arrives faster than it is processed, so the prefetch queue is full
        // most of the time: what it holds beyond the next batches is memory only.
        INPUT_PREFETCH.apply(&mut consumer_config, config);
        let committer = Arc::new(CommitterBusy::default());
        let context = GroupContext {
            thread: index,
            rebalanced: AtomicBool::new(false),
            between_assignments: AtomicBool::new(true),
            committer: Arc::clone(&committer),
        };
        let consumer = clients::consumer_with(&consumer_config, context)?;
        let output = Output::new(config, &transactional_id, committer, encoder)?;
        output
            .init()
            .map_err(|e| ClientError::broker(config, "start the transactional producer", e))?;
        let topics = Topics::new(config, layout);
        consumer
            .subscribe(&topics.subscription())
            .map_err(|e| ClientError::broker(config, "subscribe", e))?;
        let mut core = Core::new(config.rules.clone(), Clock::PerTask, partitions);
        core.use_catalog(catalog);
        Ok(StreamThread {
            index,
            config,
            layout,
            store,
            consumer,
            output,
            topics,
            core,
            assignment: Assignment::default(),
            merger: Merger::default(),
            batch_started: None,
            input_drained: false,
            quiet_timers: QuietTimers::Settled,
            batch: BatchCounts::default(),
            committing: None,
            served,
            announcer,
            decoders,
            peers,
            telemetry,
            last_gauges: Instant::now(),
            totals: Totals::default(),
        })
    }

    /// This thread's handle on the process's health.
    fn health(&self) -> ThreadHealth<'a> {
        self.telemetry.health.thread(self.index)
    }

    /// Runs until one of `stops` is set (then commits and returns) or an error.
    pub fn run(&mut self, stops: &[&AtomicBool]) -> Result<(), StreamError> {
        let mut last_log = Instant::now();
        loop {
            self.health().beat();
            if stops.iter().any(|stop| stop.load(Ordering::SeqCst)) {
                self.telemetry.health.set_phase(Phase::Stopping);
                self.commit()?;
                self.collect_commit(true)?;
                return Ok(());
            }
            self.collect_commit(false)?;
            self.poll_records()?;
            self.process_ready()?;
            self.advance_quiet_tasks()?;
            if self.commit_due() {
                self.commit()?;
            }
            self.note_progress();
            if self.last_gauges.elapsed() >= GAUGE_INTERVAL {
                self.last_gauges = Instant::now();
                self.refresh_gauges();
            }
            if last_log.elapsed() >= Duration::from_secs(10) {
                last_log = Instant::now();
                tracing::info!(
                    latency_p50_ms = %self.totals.latency.quantile(0.5),
                    latency_p99_ms = %self.totals.latency.quantile(0.99),
                    events = self.totals.stats.events_processed(),
                    decisions = self.totals.stats.decisions_made(),
                    dead_letters = self.totals.dead_letters,
                    commits = self.totals.commits,
                    commit_ms_mean = (self.totals.commit_seconds * 1000.0
                        / self.totals.commits.max(1) as f64)
                        .round(),
                    tasks = self.assignment.tasks.len(),
                    "progress"
                );
            }
        }
    }

    fn commit_due(&self) -> bool {
        commit::batch_due(
            &self.config.kafka,
            self.batch_started.map(|t| t.elapsed()),
            self.committing.is_some(),
            // Keeping up: the last poll emptied the consumer's queue, and no partition
            // is paused (a paused one fetches nothing, so its queue is empty anyway).
            self.input_drained && !self.assignment.any_paused(),
        )
    }

    /// Whether every assigned task has read all there is, and the thread is not between
    /// a revocation and its next assignment.
    fn read_all_there_is(&self) -> bool {
        !self
            .consumer
            .context()
            .between_assignments
            .load(Ordering::SeqCst)
            && self.assignment.all_caught_up()
    }

    /// Tells health whether input is waiting to be committed, and logs when the
    /// process (every stream thread) has worked off a backlog: how many events, how fast.
    fn note_progress(&mut self) {
        let health = self.health();
        let caught_up = self.read_all_there_is();
        self.peers.set_caught_up(self.index, caught_up);
        if self.batch_started.is_some() || self.committing.is_some() || !caught_up {
            self.peers.set_settled(self.index, false);
            health.input_waiting();
            return;
        }
        health.caught_up();
        self.peers.set_settled(self.index, true);
        let Some((elapsed, events)) = self.peers.backlog_done() else {
            return;
        };
        if events == 0 {
            return;
        }
        CaughtUp { events, elapsed }.emit();
    }

    fn poll_records(&mut self) -> Result<(), StreamError> {
        self.assignment
            .resume_drained(&self.topics, &self.consumer)
            .map_err(|e| ClientError::broker(self.config, "resume a partition", e))?;
        // Whatever is buffered now waits for more input (the last `process_ready`
        // stopped because nothing could go), so block until a record arrives rather
        // than spin: a spinning thread takes the cores librdkafka fetches with.
        let mut timeout = match self.quiet_timers {
            QuietTimers::Settled => POLL_WAIT,
            QuietTimers::Waiting => Duration::ZERO,
        };
        let max_skew = self.config.engine.max_clock_skew.millis();
        let max_bytes = self.config.rules.limits.max_event_bytes;
        let wall_clock = wall_clock_millis();
        self.input_drained = false;
        for _ in 0..POLL_BATCH {
            let polled = match self.consumer.poll(timeout) {
                None => Polled::Nothing,
                Some(Ok(message)) => match (
                    self.topics.route(message.topic()),
                    u16::try_from(message.partition()),
                ) {
                    (Some(route), Ok(partition)) => {
                        let read = ReadAt {
                            at: message.timestamp().to_millis().unwrap_or(wall_clock),
                            max_skew,
                            max_bytes,
                        };
                        let item = input::decode(
                            &self.decoders,
                            route.source,
                            route.side,
                            message.key(),
                            message.payload(),
                            read,
                        );
                        Polled::Record(
                            route,
                            partition,
                            Pending {
                                time: item.time(),
                                offset: message.offset(),
                                item,
                            },
                        )
                    }
                    _ => Polled::Skip,
                },
                Some(Err(KafkaError::PartitionEOF(_))) => Polled::Skip,
                Some(Err(e)) => Polled::Error(e),
            };
            timeout = Duration::ZERO;
            // A rebalance runs inside `poll`, before the record it returns.
            if self
                .consumer
                .context()
                .rebalanced
                .swap(false, Ordering::SeqCst)
            {
                self.on_rebalance()?;
            }
            match polled {
                Polled::Nothing => {
                    self.input_drained = true;
                    break;
                }
                Polled::Skip => {}
                Polled::Error(e) => {
                    tracing::warn!(error = %e, "consumer error; retrying");
                    break;
                }
                Polled::Record(
                    _,
                    _,
                    Pending {
                        item: Item::Wait(problem),
                        ..
                    },
                ) => {
                    // Not the record's fault: it is read again after a restart from the
                    // last commit, once the registry answers.
                    return Err(StreamError::Rewind(format!(
                        "an input record cannot be decoded now: {problem}"
                    )));
                }
                Polled::Record(route, partition, pending) => {
                    let buffered = self.assignment.push(route, partition, pending);
                    if buffered.is_some_and(|n| n >= PAUSE_AT) {
                        let topic = &self.topics.inputs(route.side)[route.input];
                        self.assignment
                            .pause(&self.consumer, topic, partition)
                            .map_err(|e| {
                                ClientError::broker(self.config, "pause a full partition", e)
                            })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn process_ready(&mut self) -> Result<(), StreamError> {
        self.assignment.refresh_lags(&self.topics, &self.consumer);
        let max_idle = self.config.kafka.max_task_idle.0;
        loop {
            let chosen = {
                let inputs = self.assignment.tasks.values().map(|t| &t.records);
                self.merger.choose(inputs, Instant::now, max_idle)
            };
            let Some(index) = chosen else {
                return self
                    .assignment
                    .resume_drained(&self.topics, &self.consumer)
                    .map_err(|e| ClientError::broker(self.config, "resume a partition", e).into());
            };
            let id = *self
                .assignment
                .tasks
                .keys()
                .nth(index)
                .expect("the merger chose among these tasks");
            self.begin()?;
            self.apply_next(id)?;
            self.flush_output()?;
            self.collect_commit(false)?;
        }
    }

    /// Quiet tasks follow the wall clock minus the grace, so reminders fall due while no
    /// events arrive; but only once every task of every stream thread of the process
    /// has read all there is.
    ///
    /// A task that is behind never follows the wall clock, and neither may one whose
    /// senders are behind: a forwarded message moves its receiver's clock to the
    /// sender's, so a product task that followed the wall clock while the shopper tasks
    /// were still working off a backlog months old moved them to today when it served a
    /// restock, and fired every pending reminder of their partitions (both steps), for
    /// carts that later events in the backlog emptied or bought.
    /// The clock is only moved when a timer falls due: moving it costs a changelog
    /// record and a commit, and nothing but timers reads it between events.
    /// At most [`TIMERS_PER_ROUND`] fire per call; the rest in the next rounds.
    fn advance_quiet_tasks(&mut self) -> Result<(), StreamError> {
        self.quiet_timers = QuietTimers::Settled;
        let caught_up = self.read_all_there_is();
        self.peers.set_caught_up(self.index, caught_up);
        if !caught_up || !self.peers.all_caught_up() {
            return Ok(());
        }
        let until = wall_clock_millis() - self.config.kafka.grace.millis();
        let due: Vec<TaskId> = self
            .assignment
            .tasks
            .keys()
            .copied()
            .filter(|id| self.core.next_due(*id).is_some_and(|due| due <= until))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        self.begin()?;
        let mut budget = TIMERS_PER_ROUND;
        for id in due {
            if self.core.advance(self.store, id, until, &mut budget)? == Advanced::Interrupted {
                self.quiet_timers = QuietTimers::Waiting;
                break;
            }
        }
        self.flush_output()
    }

    /// Starts the commit interval (and, exactly-once, a transaction) if not started.
    fn begin(&mut self) -> Result<(), StreamError> {
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
            // Once per batch, not per event: it takes a lock the threads share.
            self.peers.working();
        }
        self.output
            .begin()
            .map_err(|abort| StreamError::Rewind(abort.problem))
    }

    /// Leaves the group now, so the partitions move without waiting for a timeout.
    pub fn close(self) {
        self.consumer.unsubscribe();
        drop(self.consumer);
        self.output.flush(Duration::from_secs(5));
    }
}
