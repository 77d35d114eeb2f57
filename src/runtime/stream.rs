//! The stream thread: one consumer in the application's group, one producer, and a task
//! per assigned partition of each processor.
//!
//! Per commit interval it reads records, processes them in event-time order per task,
//! produces decisions and forwarded messages as they happen, then produces every state
//! change to the changelogs and commits: with exactly-once, one transaction holding
//! outputs, changelog records and the consumed offsets. Only after that succeeds is the
//! same batch written to RocksDB, with the changelog offsets it reaches. Anything that
//! goes wrong before the commit is undone by dropping the in-memory work: the thread is
//! rebuilt from RocksDB and the committed offsets.

use super::batch::{self, BatchCounts, InputId};
use super::changelog;
use super::clients::{self, ClientError};
use super::input::{self, BadRecord, Item, Source};
use super::latency::LatencyHistogram;
use super::merge::{Merger, Pending, TaskInputs};
use super::restore::{self, checkpoint_change, RestoreError};
use super::topics::TopicLayout;
use super::watermarks::cached_high_watermark;
use crate::config::{Config, ProcessingGuarantee, RulesConfig};
use crate::decision::Decision;
use crate::engine::live::{stream_time_key, LiveTask, TaskOutput};
use crate::engine::partitioner::partition_for;
use crate::engine::processor::{CustomerProcessor, Processor, ProductProcessor};
use crate::engine::stats::Stats;
use crate::engine::task::TaskError;
use crate::engine::Outcome;
use crate::event::{InputTopic, RoutingKey};
use crate::rules::Forward;
use crate::store::{StateChange, Store, StoreError};
use crate::telemetry::health::Phase;
use crate::telemetry::Telemetry;
use crate::time::Millis;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a transactional call (commit, abort, init) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the broker keeps a dead instance's transaction open before aborting it,
/// which holds back `read_committed` readers of the partitions it wrote (as Kafka
/// Streams, 10 s: long enough for any commit, short enough for a quick failover).
const TRANSACTION_LIFETIME: Duration = Duration::from_secs(10);
const POLL_BATCH: usize = 2_000;
/// Buffered records per task beyond which the thread stops reading and processes.
const MAX_BUFFERED: usize = 20_000;
/// How often lag, task and RocksDB gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

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
    rebalanced: AtomicBool,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
        self.rebalanced.store(true, Ordering::SeqCst);
    }
}

/// Delivery tags: what kind of record a delivery report is about.
const OUTPUT: usize = 0;
const CHANGELOG: usize = 1;

/// Tracks the offsets the changelog records of this commit reached, and failures.
#[derive(Default)]
pub struct DeliveryContext {
    state: Mutex<Deliveries>,
}

#[derive(Default)]
struct Deliveries {
    /// (topic, partition) → highest offset delivered since the last commit.
    changelog_offsets: HashMap<(String, i32), i64>,
    failures: u64,
    last_failure: Option<String>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    /// [`CHANGELOG`] for changelog records, whose offsets are tracked; else [`OUTPUT`].
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, kind: usize) {
        let mut state = self.state.lock().expect("delivery state is never poisoned");
        match result {
            Ok(message) if kind == CHANGELOG => {
                let key = (message.topic().to_string(), message.partition());
                let entry = state.changelog_offsets.entry(key).or_insert(-1);
                *entry = (*entry).max(message.offset());
            }
            Ok(_) => {}
            Err((error, message)) => {
                state.failures += 1;
                state.last_failure = Some(format!("{}: {error}", message.topic()));
            }
        }
    }
}

/// Which side of the processor a topic feeds, and which input of the task it is.
#[derive(Debug, Clone, Copy)]
struct Route {
    products: bool,
    input: usize,
    source: Source,
}

/// What one `poll` gave, detached from the consumer's borrow.
enum Polled {
    Nothing,
    Skip,
    Error(KafkaError),
    Record(Route, u16, Pending<Item>),
}

struct LiveState<P: Processor> {
    task: LiveTask<P>,
    inputs: TaskInputs<Item>,
    /// Next offset to commit, per input.
    consumed: Vec<Option<i64>>,
    output: TaskOutput,
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

pub struct Stream<'a> {
    config: &'a Config,
    layout: &'a TopicLayout,
    store: &'a Store,
    consumer: BaseConsumer<GroupContext>,
    producer: BaseProducer<DeliveryContext>,
    exactly_once: bool,
    in_transaction: bool,
    batch_started: Option<Instant>,
    /// Customer-side topics (clickstream, cart, customers, by-customer) in input order.
    customer_topics: [String; 4],
    /// Product-side topics (stock, by-sku) in input order.
    product_topics: [String; 2],
    topic_names: HashMap<String, CString>,
    routes: HashMap<String, Route>,
    customer_partitions: u16,
    product_partitions: u16,
    customers: BTreeMap<u16, LiveState<CustomerProcessor>>,
    products: BTreeMap<u16, LiveState<ProductProcessor>>,
    merger: Merger,
    /// What the open batch did, published when it commits.
    batch: BatchCounts,
    telemetry: &'a Telemetry,
    last_gauges: Instant,
    /// When the first record since the last catch-up was processed.
    behind_since: Option<Instant>,
    events_at_behind: u64,
    pub totals: Totals,
}

fn wall_clock_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl<'a> Stream<'a> {
    /// Creates the clients and joins the group. `transactional_id` names the producer.
    pub fn new(
        config: &'a Config,
        layout: &'a TopicLayout,
        store: &'a Store,
        transactional_id: &str,
        partitions: (u16, u16),
        telemetry: &'a Telemetry,
    ) -> Result<Stream<'a>, StreamError> {
        let exactly_once = config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let mut consumer_config = clients::base(config);
        consumer_config
            .set("group.id", &config.application_id)
            .set("partition.assignment.strategy", "range")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed");
        let consumer = clients::consumer_with(&consumer_config, GroupContext::default())?;
        let mut producer_config = clients::base(config);
        producer_config
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("compression.type", "lz4");
        if exactly_once {
            producer_config
                .set("transactional.id", transactional_id)
                .set(
                    "transaction.timeout.ms",
                    TRANSACTION_LIFETIME.as_millis().to_string(),
                );
        }
        let producer: BaseProducer<DeliveryContext> = producer_config
            .create_with_context(DeliveryContext::default())
            .map_err(ClientError::create)?;
        if exactly_once {
            producer
                .init_transactions(TRANSACTION_TIMEOUT)
                .map_err(|e| ClientError::broker(config, "start the transactional producer", e))?;
        }
        let t = &config.kafka.topics;
        let customer_topics = [
            t.clickstream.clone(),
            t.cart.clone(),
            t.customers.clone(),
            layout.by_customer.clone(),
        ];
        let product_topics = [t.stock.clone(), layout.by_sku.clone()];
        let mut routes = HashMap::new();
        let customer_sources = [
            Source::Events(InputTopic::Clickstream),
            Source::Events(InputTopic::Cart),
            Source::Events(InputTopic::Customers),
            Source::Forwarded,
        ];
        for (input, (topic, source)) in customer_topics.iter().zip(customer_sources).enumerate() {
            routes.insert(
                topic.clone(),
                Route {
                    products: false,
                    input,
                    source,
                },
            );
        }
        let product_sources = [Source::Events(InputTopic::Stock), Source::Forwarded];
        for (input, (topic, source)) in product_topics.iter().zip(product_sources).enumerate() {
            routes.insert(
                topic.clone(),
                Route {
                    products: true,
                    input,
                    source,
                },
            );
        }
        let topic_names = routes
            .keys()
            .map(|t| {
                (
                    t.clone(),
                    CString::new(t.as_str()).expect("topic names have no NUL"),
                )
            })
            .collect();
        let subscription: Vec<&str> = routes.keys().map(String::as_str).collect();
        consumer
            .subscribe(&subscription)
            .map_err(|e| ClientError::broker(config, "subscribe", e))?;
        Ok(Stream {
            config,
            layout,
            store,
            consumer,
            producer,
            exactly_once,
            in_transaction: false,
            batch_started: None,
            customer_topics,
            product_topics,
            topic_names,
            routes,
            customer_partitions: partitions.0,
            product_partitions: partitions.1,
            customers: BTreeMap::new(),
            products: BTreeMap::new(),
            merger: Merger::default(),
            batch: BatchCounts::default(),
            telemetry,
            last_gauges: Instant::now(),
            behind_since: None,
            events_at_behind: 0,
            totals: Totals::default(),
        })
    }

    /// Runs until `shutdown` is set (then commits and returns) or an error.
    pub fn run(&mut self, shutdown: &AtomicBool) -> Result<(), StreamError> {
        let mut last_log = Instant::now();
        loop {
            self.telemetry.health.beat();
            if shutdown.load(Ordering::SeqCst) {
                self.telemetry.health.set_phase(Phase::Stopping);
                self.commit()?;
                return Ok(());
            }
            self.poll_records()?;
            self.process_ready()?;
            self.advance_quiet_tasks()?;
            if self
                .batch_started
                .is_some_and(|t| t.elapsed() >= self.config.kafka.commit_interval.0)
            {
                self.commit()?;
            }
            self.note_catch_up();
            if self.last_gauges.elapsed() >= GAUGE_INTERVAL {
                self.last_gauges = Instant::now();
                self.refresh_gauges();
            }
            if last_log.elapsed() >= Duration::from_secs(10) {
                last_log = Instant::now();
                tracing::info!(
                    latency_p50_ms = self.totals.latency.quantile(0.5),
                    latency_p99_ms = self.totals.latency.quantile(0.99),
                    events = self.totals.stats.events_processed(),
                    decisions = self.totals.stats.decisions_made(),
                    dead_letters = self.totals.dead_letters,
                    commits = self.totals.commits,
                    commit_ms_mean = (self.totals.commit_seconds * 1000.0
                        / self.totals.commits.max(1) as f64)
                        .round(),
                    customer_tasks = self.customers.len(),
                    product_tasks = self.products.len(),
                    "progress"
                );
            }
        }
    }

    fn all_caught_up(&self) -> bool {
        (!self.customers.is_empty() || !self.products.is_empty())
            && self.customers.values().all(|s| s.inputs.fully_caught_up())
            && self.products.values().all(|s| s.inputs.fully_caught_up())
    }

    /// Logs when a backlog has been worked off: how many events, how fast.
    fn note_catch_up(&mut self) {
        let Some(since) = self.behind_since else {
            return;
        };
        if self.in_transaction || self.batch_started.is_some() || !self.all_caught_up() {
            return;
        }
        let events = self.totals.stats.events_processed() + self.totals.stats.duplicates
            - self.events_at_behind;
        self.behind_since = None;
        if events == 0 {
            return;
        }
        let seconds = since.elapsed().as_secs_f64();
        let rate = (events as f64 / seconds).round();
        // Live traffic catches up every commit; only a real backlog is worth a line.
        if seconds >= 1.0 {
            tracing::info!(events, seconds, events_per_second = rate, "caught up");
        } else {
            tracing::debug!(events, seconds, events_per_second = rate, "caught up");
        }
    }

    fn buffered(&self) -> usize {
        self.customers
            .values()
            .map(|s| s.inputs.buffered())
            .chain(self.products.values().map(|s| s.inputs.buffered()))
            .max()
            .unwrap_or(0)
    }

    fn poll_records(&mut self) -> Result<(), StreamError> {
        let busy = self.buffered() > 0;
        let mut timeout = if busy {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        for _ in 0..POLL_BATCH {
            let polled = match self.consumer.poll(timeout) {
                None => Polled::Nothing,
                Some(Ok(message)) => match (
                    self.routes.get(message.topic()).copied(),
                    u16::try_from(message.partition()),
                ) {
                    (Some(route), Ok(partition)) => {
                        let item = input::decode(
                            route.source,
                            route.products,
                            message.key(),
                            message.payload(),
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
                Polled::Nothing => break,
                Polled::Skip => {}
                Polled::Error(e) => {
                    tracing::warn!(error = %e, "consumer error; retrying");
                    break;
                }
                Polled::Record(route, partition, pending) => {
                    let buffered = if route.products {
                        self.products.get_mut(&partition).map(|s| {
                            s.inputs.push(route.input, pending);
                            s.inputs.buffered()
                        })
                    } else {
                        self.customers.get_mut(&partition).map(|s| {
                            s.inputs.push(route.input, pending);
                            s.inputs.buffered()
                        })
                    };
                    if buffered.is_some_and(|n| n >= MAX_BUFFERED) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// A rebalance happened inside `poll`: drop uncommitted work (the group's offsets
    /// may have moved to another member), then open and restore the assigned tasks.
    fn on_rebalance(&mut self) -> Result<(), StreamError> {
        let metrics = &self.telemetry.metrics;
        metrics.rebalances.inc();
        if self.in_transaction {
            self.totals.aborts += 1;
            metrics.aborts.with_label_values(&["rebalance"]).inc();
            let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
            self.in_transaction = false;
        }
        self.batch_started = None;
        self.batch.clear();
        self.customers.clear();
        self.products.clear();
        metrics.consumer_lag.reset();
        self.telemetry.health.set_phase(Phase::Restoring);
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| ClientError::broker(self.config, "read the assignment", e))?;
        let mut customer_parts = std::collections::BTreeSet::new();
        let mut product_parts = std::collections::BTreeSet::new();
        for element in assignment.elements() {
            let Some(route) = self.routes.get(element.topic()) else {
                continue;
            };
            let Ok(p) = u16::try_from(element.partition()) else {
                continue;
            };
            if route.products {
                product_parts.insert(p);
            } else {
                customer_parts.insert(p);
            }
        }
        let assigned = |processor: &str, n: usize| {
            metrics
                .tasks_assigned
                .with_label_values(&[processor])
                .set(n as i64);
            metrics
                .tasks_restoring
                .with_label_values(&[processor])
                .set(n as i64);
        };
        assigned(CustomerProcessor::NAME, customer_parts.len());
        assigned(ProductProcessor::NAME, product_parts.len());
        for p in customer_parts {
            let state =
                self.open_task::<CustomerProcessor>(p, &self.layout.customer_changelog, 4)?;
            self.customers.insert(p, state);
        }
        for p in product_parts {
            let state = self.open_task::<ProductProcessor>(p, &self.layout.product_changelog, 2)?;
            self.products.insert(p, state);
        }
        self.refresh_gauges();
        self.telemetry.health.set_phase(Phase::Running);
        Ok(())
    }

    fn open_task<P: Processor>(
        &mut self,
        partition: u16,
        changelog: &str,
        inputs: usize,
    ) -> Result<LiveState<P>, StreamError> {
        let families = [P::STATE, P::TIMERS, P::DEDUPE];
        let started = Instant::now();
        let telemetry = self.telemetry;
        let restored_records = telemetry
            .metrics
            .restored_records
            .with_label_values(&[P::NAME]);
        let restored = restore::restore(
            self.config,
            self.store,
            changelog,
            partition,
            &families,
            &[stream_time_key(P::NAME, partition)],
            &mut |records| {
                restored_records.inc_by(records);
                telemetry.health.beat();
            },
        )?;
        telemetry
            .metrics
            .tasks_restoring
            .with_label_values(&[P::NAME])
            .dec();
        self.totals.restored_records += restored.records;
        tracing::info!(
            processor = P::NAME,
            task = partition,
            records = restored.records,
            from_offset = restored.from,
            wiped = restored.wiped,
            checkpoint = restored.checkpoint,
            changelog_low = restored.low,
            changelog_high = restored.high,
            seconds = started.elapsed().as_secs_f64(),
            "task restored"
        );
        Ok(LiveState {
            task: LiveTask::open(self.store, partition)?,
            inputs: TaskInputs::new(inputs),
            consumed: vec![None; inputs],
            output: TaskOutput::default(),
        })
    }

    /// Refreshes the gauges: consumer lag per assigned partition, stream-time lag and
    /// pending timers per processor, RocksDB figures.
    fn refresh_gauges(&self) {
        let metrics = &self.telemetry.metrics;
        if let Ok(positions) = self.consumer.position() {
            for e in positions.elements() {
                let (Some(name), Offset::Offset(position)) =
                    (self.topic_names.get(e.topic()), e.offset())
                else {
                    continue;
                };
                if let Some(high) = cached_high_watermark(&self.consumer, name, e.partition()) {
                    metrics
                        .consumer_lag
                        .with_label_values(&[e.topic(), &e.partition().to_string()])
                        .set((high - position).max(0));
                }
            }
        }
        let now = wall_clock_millis();
        task_gauges(metrics, &self.customers, now);
        task_gauges(metrics, &self.products, now);
        let stats = self.store.stats();
        let mut memtables = 0;
        for family in &stats.families {
            let name = family.family.name();
            let gauge = |vec: &prometheus::IntGaugeVec, value: u64| {
                vec.with_label_values(&[name]).set(value as i64);
            };
            gauge(&metrics.state_keys, family.keys);
            gauge(&metrics.rocksdb_sst_bytes, family.sst_bytes);
            gauge(
                &metrics.rocksdb_pending_compaction,
                family.pending_compaction_bytes,
            );
            memtables += family.memtable_bytes;
        }
        metrics.rocksdb_memtable_bytes.set(memtables as i64);
        metrics
            .rocksdb_block_cache_usage
            .set(stats.block_cache_usage_bytes as i64);
        metrics
            .rocksdb_block_cache_capacity
            .set(stats.block_cache_capacity_bytes as i64);
    }

    /// Updates which inputs are caught up: nothing buffered and the consumer's position
    /// at the high watermark it last saw.
    fn refresh_caught_up(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut position_of = HashMap::new();
        for e in positions.elements() {
            if let Offset::Offset(o) = e.offset() {
                position_of.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        let caught_up = |topic: &str, partition: u16| -> bool {
            let Some(name) = self.topic_names.get(topic) else {
                return false;
            };
            let Some(high) = cached_high_watermark(&self.consumer, name, i32::from(partition))
            else {
                return false;
            };
            high == 0
                || position_of
                    .get(&(topic.to_string(), i32::from(partition)))
                    .is_some_and(|&pos| pos >= high)
        };
        let mut updates = Vec::new();
        for (&p, state) in &self.customers {
            for (i, topic) in self.customer_topics.iter().enumerate() {
                if state.inputs.buffered_in(i) == 0 {
                    updates.push((false, p, i, caught_up(topic, p)));
                }
            }
        }
        for (&p, state) in &self.products {
            for (i, topic) in self.product_topics.iter().enumerate() {
                if state.inputs.buffered_in(i) == 0 {
                    updates.push((true, p, i, caught_up(topic, p)));
                }
            }
        }
        for (products, p, i, value) in updates {
            if products {
                if let Some(s) = self.products.get_mut(&p) {
                    s.inputs.set_caught_up(i, value);
                }
            } else if let Some(s) = self.customers.get_mut(&p) {
                s.inputs.set_caught_up(i, value);
            }
        }
    }

    fn process_ready(&mut self) -> Result<(), StreamError> {
        self.refresh_caught_up();
        let max_idle = self.config.kafka.max_task_idle.0;
        loop {
            // Customer tasks first, then product tasks, in partition order: the same
            // order `choose` sees them in, so its index maps back.
            let chosen = {
                let inputs = self
                    .customers
                    .values()
                    .map(|s| &s.inputs)
                    .chain(self.products.values().map(|s| &s.inputs));
                self.merger.choose(inputs, Instant::now, max_idle)
            };
            let Some(index) = chosen else {
                return Ok(());
            };
            self.begin()?;
            let rules = &self.config.rules;
            let (products, p, applied) = if let Some(&p) = self.customers.keys().nth(index) {
                let applied = apply_next(
                    self.customers.get_mut(&p).expect("chosen task exists"),
                    self.store,
                    rules,
                    &mut self.batch,
                );
                (false, p, applied)
            } else {
                let p = *self
                    .products
                    .keys()
                    .nth(index - self.customers.len())
                    .expect("the index is of a product task");
                let applied = apply_next(
                    self.products.get_mut(&p).expect("chosen task exists"),
                    self.store,
                    rules,
                    &mut self.batch,
                );
                (true, p, applied)
            };
            let (input, bad) = applied.map_err(|(input, offset, source)| {
                let (processor, topics) = if products {
                    (ProductProcessor::NAME, &self.product_topics[..])
                } else {
                    (CustomerProcessor::NAME, &self.customer_topics[..])
                };
                StreamError::Record {
                    processor,
                    task: p,
                    topic: topics[input].clone(),
                    offset,
                    source: Box::new(source),
                }
            })?;
            if let Some((offset, bad)) = bad {
                let topic = if products {
                    self.product_topics[input].clone()
                } else {
                    self.customer_topics[input].clone()
                };
                self.dead_letter(&topic, p, offset, &bad)?;
            }
            self.drain_outputs(products, p)?;
        }
    }

    /// A task that is fully caught up and quiet follows the wall clock minus the grace,
    /// so reminders fall due while no events arrive. One that is behind never does.
    /// The clock is only moved when a timer falls due: moving it costs a changelog
    /// record and a commit, and nothing but timers reads it between events.
    fn advance_quiet_tasks(&mut self) -> Result<(), StreamError> {
        let until = wall_clock_millis() - self.config.kafka.grace.millis();
        let rules = &self.config.rules;
        let mut fired = Vec::new();
        for (&p, state) in &mut self.customers {
            if state.inputs.fully_caught_up()
                && state.task.next_due().is_some_and(|due| due <= until)
            {
                state
                    .task
                    .advance_to(self.store, rules, until, &mut state.output)?;
                fired.push((false, p));
            }
        }
        for (&p, state) in &mut self.products {
            if state.inputs.fully_caught_up()
                && state.task.next_due().is_some_and(|due| due <= until)
            {
                state
                    .task
                    .advance_to(self.store, rules, until, &mut state.output)?;
                fired.push((true, p));
            }
        }
        for (products, p) in fired {
            self.begin()?;
            self.drain_outputs(products, p)?;
        }
        Ok(())
    }

    /// Starts a transaction (exactly-once) and the commit interval, if not started.
    fn begin(&mut self) -> Result<(), StreamError> {
        if self.behind_since.is_none() {
            self.behind_since = Some(Instant::now());
            self.events_at_behind =
                self.totals.stats.events_processed() + self.totals.stats.duplicates;
        }
        if self.batch_started.is_none() {
            self.batch_started = Some(Instant::now());
        }
        if self.exactly_once && !self.in_transaction {
            self.producer
                .begin_transaction()
                .map_err(|e| StreamError::Rewind(format!("cannot begin a transaction: {e}")))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Produces what a task decided since the last call, and delivers what it forwarded:
    /// at once to a task of this thread (as `replay` does, and in the same transaction,
    /// so the message and its effect commit together), through the internal topic to a
    /// task elsewhere.
    fn drain_outputs(&mut self, products: bool, p: u16) -> Result<(), StreamError> {
        let mut pending = std::collections::VecDeque::from([(products, p)]);
        while let Some((products, p)) = pending.pop_front() {
            // Messages are sent at the sender's stream time, as in `replay`.
            let output = if products {
                self.products
                    .get_mut(&p)
                    .map(|s| (std::mem::take(&mut s.output), s.task.stream_time()))
            } else {
                self.customers
                    .get_mut(&p)
                    .map(|s| (std::mem::take(&mut s.output), s.task.stream_time()))
            };
            let Some((output, sent_at)) = output else {
                continue;
            };
            for decision in &output.decisions {
                self.produce_decision(decision)?;
            }
            self.batch.stats.add(&output.stats);
            for forward in output.forwards {
                if let Some(task) = self.deliver_locally(forward, sent_at)? {
                    pending.push_back(task);
                }
            }
        }
        Ok(())
    }

    /// Applies a forwarded message to its task if this thread has it (returning which
    /// task, whose outputs then need draining); else produces it to the internal topic.
    fn deliver_locally(
        &mut self,
        forward: Forward,
        sent_at: Option<Millis>,
    ) -> Result<Option<(bool, u16)>, StreamError> {
        let rules = &self.config.rules;
        let to_product = matches!(forward, Forward::ToProduct { .. });
        let delivered = if to_product {
            deliver(
                &mut self.products,
                self.product_partitions,
                self.store,
                rules,
                forward,
                sent_at,
            )?
        } else {
            deliver(
                &mut self.customers,
                self.customer_partitions,
                self.store,
                rules,
                forward,
                sent_at,
            )?
        };
        self.batch.forward(to_product, delivered.is_err());
        match delivered {
            Ok(p) => Ok(Some((to_product, p))),
            Err(forward) => {
                self.produce_forward(&forward)?;
                Ok(None)
            }
        }
    }

    // Records keep the broker's default timestamp (now), never an event time: retention
    // deletes by record timestamp, and a backlog's event times may be months old.
    fn produce_decision(&mut self, decision: &Decision) -> Result<(), StreamError> {
        let topic = self
            .config
            .kafka
            .topics
            .for_decision(decision.decision_type())
            .to_string();
        let value = decision.to_json_line();
        let record = BaseRecord::with_opaque_to(&topic, OUTPUT)
            .key(decision.customer_id.as_bytes())
            .payload(value.as_bytes());
        self.send(record)
    }

    fn produce_forward(&mut self, forward: &Forward) -> Result<(), StreamError> {
        let (topic, key, partitions) = match forward {
            Forward::ToProduct { sku, .. } => (&self.layout.by_sku, sku, self.product_partitions),
            Forward::ToShopper { key, .. } => {
                (&self.layout.by_customer, key, self.customer_partitions)
            }
        };
        let topic = topic.clone();
        let partition = i32::from(partition_for(key.as_bytes(), partitions));
        let value = serde_json::to_vec(forward).expect("forwarded messages always serialize");
        let key = key.clone();
        let record = BaseRecord::with_opaque_to(&topic, OUTPUT)
            .key(key.as_bytes())
            .payload(&value)
            .partition(partition);
        self.send(record)
    }

    fn dead_letter(
        &mut self,
        topic: &str,
        partition: u16,
        offset: i64,
        bad: &BadRecord,
    ) -> Result<(), StreamError> {
        tracing::warn!(task = partition, topic, partition, offset, reason = bad.reason, error = %bad.error, "record sent to the dead-letter topic");
        self.batch.stats.invalid += 1;
        let partition_text = partition.to_string();
        let offset_text = offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "source_topic",
                value: Some(topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(&partition_text),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(&offset_text),
            })
            .insert(Header {
                key: "error_reason",
                value: Some(bad.reason),
            })
            .insert(Header {
                key: "error",
                value: Some(&bad.error),
            });
        let dlq = self.layout.dead_letter.clone();
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&dlq, OUTPUT).headers(headers);
        if let Some(key) = &bad.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &bad.value {
            record = record.payload(value.as_slice());
        }
        self.send(record)
    }

    /// Queues a record, waiting for room when the producer's queue is full.
    fn send<K, V>(&mut self, mut record: BaseRecord<'_, K, V, usize>) -> Result<(), StreamError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        V: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, back)) => {
                    let problem = format!("cannot produce to `{}`: {e}", back.topic);
                    return Err(self.rewind("produce_failed", problem));
                }
            }
        }
    }

    /// Produces the state changes to the changelogs, commits (the transaction with the
    /// consumed offsets, or offsets after a flush), then writes the same changes to
    /// RocksDB with the changelog offsets they reach.
    pub fn commit(&mut self) -> Result<(), StreamError> {
        if self.batch_started.is_none() {
            return Ok(());
        }
        self.begin()?;
        let mut changes: Vec<StateChange> = Vec::new();
        let mut offsets = TopicPartitionList::new();
        let mut produced: Vec<(String, u16, Vec<StateChange>)> = Vec::new();
        take_changes(
            &mut self.customers,
            &self.customer_topics,
            &self.layout.customer_changelog,
            &mut offsets,
            &mut produced,
        );
        take_changes(
            &mut self.products,
            &self.product_topics,
            &self.layout.product_changelog,
            &mut offsets,
            &mut produced,
        );
        for (topic, p, task_changes) in &produced {
            for change in task_changes {
                let key = changelog::encode_key(change);
                let value = changelog::encode_value(change);
                let mut record = BaseRecord::with_opaque_to(topic, CHANGELOG)
                    .key(key.as_slice())
                    .partition(i32::from(*p));
                if let Some(value) = &value {
                    record = record.payload(value.as_slice());
                }
                self.send(record)?;
            }
        }
        let committing = Instant::now();
        let delivered = self.finish_commit(&offsets)?;
        let commit_seconds = committing.elapsed().as_secs_f64();
        self.totals.commit_seconds += commit_seconds;
        for (topic, p, task_changes) in produced {
            changes.extend(task_changes);
            if let Some(last) = delivered.get(&(topic.clone(), i32::from(p))) {
                changes.push(checkpoint_change(&topic, p, last + 1));
            }
        }
        if let Some(horizon) = self
            .customers
            .values()
            .filter_map(|s| s.task.stream_time())
            .chain(self.products.values().filter_map(|s| s.task.stream_time()))
            .min()
        {
            self.store.set_dedupe_horizon(
                horizon.saturating_sub(self.config.rules.dedupe_window.millis()),
            );
        }
        changes.sort_unstable_by(|a, b| (a.family, &a.key).cmp(&(b.family, &b.key)));
        self.store.write(&changes)?;
        self.publish_batch(commit_seconds);
        self.trim_caches();
        self.batch_started = None;
        Ok(())
    }

    /// The batch is committed: its counts go to the totals and the metrics.
    fn publish_batch(&mut self, commit_seconds: f64) {
        let metrics = &self.telemetry.metrics;
        metrics.commits.inc();
        metrics.commit_duration.observe(commit_seconds);
        if let Some(started) = self.batch_started {
            metrics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
        }
        self.totals.commits += 1;
        self.totals.stats.add(&self.batch.stats);
        self.totals.dead_letters += self.batch.dead_letter_count();
        let (customer_topics, product_topics) = (&self.customer_topics, &self.product_topics);
        self.batch.publish(
            metrics,
            &mut self.totals.latency,
            wall_clock_millis(),
            |(products, input)| {
                if products {
                    &product_topics[input]
                } else {
                    &customer_topics[input]
                }
            },
        );
    }

    /// Drops the open batch: counts it as aborted for `reason` and says what to rebuild.
    fn rewind(&mut self, reason: &'static str, problem: String) -> StreamError {
        self.totals.aborts += 1;
        self.telemetry
            .metrics
            .aborts
            .with_label_values(&[reason])
            .inc();
        self.batch.clear();
        StreamError::Rewind(problem)
    }

    /// The changelog offsets this batch's records reached; an error if any record of the
    /// batch was not delivered.
    fn take_deliveries(&mut self) -> Result<HashMap<(String, i32), i64>, StreamError> {
        let failure = {
            let mut deliveries = self
                .producer
                .context()
                .state
                .lock()
                .expect("delivery state is never poisoned");
            if deliveries.failures == 0 {
                return Ok(std::mem::take(&mut deliveries.changelog_offsets));
            }
            deliveries.failures = 0;
            deliveries.changelog_offsets.clear();
            deliveries.last_failure.take().unwrap_or_default()
        };
        Err(self.rewind(
            "delivery_failed",
            format!("records were not delivered: {failure}"),
        ))
    }

    /// Ends the batch at the broker: commits the transaction with the consumed offsets,
    /// or (at-least-once) waits for every record and then commits the offsets. Returns
    /// the changelog offsets reached.
    fn finish_commit(
        &mut self,
        offsets: &TopicPartitionList,
    ) -> Result<HashMap<(String, i32), i64>, StreamError> {
        if self.exactly_once {
            let result = (|| {
                if offsets.count() > 0 {
                    let metadata = self.consumer.group_metadata().ok_or_else(|| {
                        "the consumer has no group metadata (not in the group)".to_string()
                    })?;
                    self.producer
                        .send_offsets_to_transaction(offsets, &metadata, TRANSACTION_TIMEOUT)
                        .map_err(|e| format!("cannot add offsets to the transaction: {e}"))?;
                }
                self.producer
                    .commit_transaction(TRANSACTION_TIMEOUT)
                    .map_err(|e| format!("cannot commit the transaction: {e}"))
            })();
            self.in_transaction = false;
            if let Err(problem) = result {
                let _ = self.producer.abort_transaction(TRANSACTION_TIMEOUT);
                return Err(self.rewind("commit_failed", problem));
            }
            self.take_deliveries()
        } else {
            if let Err(e) = self.producer.flush(TRANSACTION_TIMEOUT) {
                let problem = format!("cannot flush the producer: {e}");
                return Err(self.rewind("commit_failed", problem));
            }
            // Offsets only after every record of the batch is known to be delivered.
            let delivered = self.take_deliveries()?;
            if offsets.count() > 0 {
                if let Err(e) = self.consumer.commit(offsets, CommitMode::Sync) {
                    let problem = format!("cannot commit offsets: {e}");
                    return Err(self.rewind("commit_failed", problem));
                }
            }
            Ok(delivered)
        }
    }

    fn trim_caches(&mut self) {
        let budget = self.config.state.cache_max_entries;
        let cached: usize = self
            .customers
            .values()
            .map(|s| s.task.cached_entries())
            .chain(self.products.values().map(|s| s.task.cached_entries()))
            .sum();
        if cached <= budget {
            return;
        }
        let share = |entries: usize| (entries as u128 * budget as u128 / cached as u128) as usize;
        for s in self.customers.values_mut() {
            s.task.evict(share(s.task.cached_entries()));
        }
        for s in self.products.values_mut() {
            s.task.evict(share(s.task.cached_entries()));
        }
    }

    /// Leaves the group now, so the partitions move without waiting for a timeout.
    pub fn close(self) {
        self.consumer.unsubscribe();
        drop(self.consumer);
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

/// Stream-time lag (of the task furthest behind among those still reading) and
/// pending timers of one processor's tasks.
fn task_gauges<P: Processor>(
    metrics: &crate::telemetry::metrics::Metrics,
    tasks: &BTreeMap<u16, LiveState<P>>,
    now: Millis,
) {
    let behind = tasks
        .values()
        .filter(|s| !s.inputs.fully_caught_up())
        .filter_map(|s| s.task.stream_time())
        .map(|t| (now - t).max(0))
        .max()
        .unwrap_or(0);
    metrics
        .stream_time_lag
        .with_label_values(&[P::NAME])
        .set(behind as f64 / 1000.0);
    let timers: usize = tasks.values().map(|s| s.task.pending_timers()).sum();
    metrics
        .timers_pending
        .with_label_values(&[P::NAME])
        .set(timers as i64);
}

/// A bad record's offset and what is wrong with it.
type DeadLetter = (i64, Box<BadRecord>);

/// A task's failure on one record: the input it came from, its offset, the error.
type RecordFailure = (usize, i64, TaskError);

/// Takes a task's next record in event-time order and applies it, counting it in
/// `batch`; returns which input it came from and, for a bad record, its offset and what
/// is wrong, for the dead-letter topic.
fn apply_next<P: Processor>(
    state: &mut LiveState<P>,
    store: &Store,
    rules: &RulesConfig,
    batch: &mut BatchCounts,
) -> Result<(usize, Option<DeadLetter>), RecordFailure> {
    let (input, record) = state.inputs.pop().expect("chosen task has a record");
    state.consumed[input] = Some(record.offset + 1);
    let id: InputId = (P::NAME == ProductProcessor::NAME, input);
    let failed = |e: TaskError| (input, record.offset, e);
    match record.item {
        Item::Event(event) => {
            let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
            let outcome = state
                .task
                .process_event(store, rules, key, &event, &mut state.output)
                .map_err(failed)?;
            let outcome = match outcome {
                Outcome::Processed => batch::PROCESSED,
                Outcome::Duplicate => batch::DUPLICATE,
            };
            batch.event(id, event.body.type_name(), outcome, event.occurred_at);
        }
        Item::Message(forward) => {
            // The decoder refuses messages for the other processor.
            if let Ok((key, at, message)) = P::addressed(*forward) {
                state
                    .task
                    .process_message(store, rules, &key, at, at, &message, &mut state.output)
                    .map_err(failed)?;
            }
        }
        Item::UnknownType => {
            state.output.stats.unknown_types += 1;
            batch.unknown_type(id);
        }
        Item::Bad(bad) => {
            batch.dead_letter(id, bad.reason);
            return Ok((input, Some((record.offset, bad))));
        }
    }
    Ok((input, None))
}

/// Applies `forward` at once if it is for a task of `P` that is among `tasks` (returning
/// the task's partition); else gives it back.
fn deliver<P: Processor>(
    tasks: &mut BTreeMap<u16, LiveState<P>>,
    partitions: u16,
    store: &Store,
    rules: &RulesConfig,
    forward: Forward,
    sent_at: Option<Millis>,
) -> Result<Result<u16, Box<Forward>>, StreamError> {
    let (key, at, message) = match P::addressed(forward) {
        Ok(parts) => parts,
        Err(other) => return Ok(Err(other)),
    };
    let p = partition_for(key.as_bytes(), partitions);
    let Some(state) = tasks.get_mut(&p) else {
        return Ok(Err(Box::new(P::forward(key, at, message))));
    };
    state.task.process_message(
        store,
        rules,
        &key,
        at,
        sent_at.unwrap_or(at),
        &message,
        &mut state.output,
    )?;
    Ok(Ok(p))
}

/// Moves every task's state changes (to produce to `changelog`) and consumed offsets (of
/// `topics`, in input order) into the commit.
fn take_changes<P: Processor>(
    tasks: &mut BTreeMap<u16, LiveState<P>>,
    topics: &[String],
    changelog: &str,
    offsets: &mut TopicPartitionList,
    produced: &mut Vec<(String, u16, Vec<StateChange>)>,
) {
    for (&p, state) in tasks.iter_mut() {
        let mut task_changes = Vec::new();
        state.task.take_changes(&mut task_changes);
        for (input, next) in state.consumed.iter_mut().enumerate() {
            if let Some(offset) = next.take() {
                offsets
                    .add_partition_offset(&topics[input], i32::from(p), Offset::Offset(offset))
                    .expect("offsets are valid");
            }
        }
        produced.push((changelog.to_string(), p, task_changes));
    }
}
