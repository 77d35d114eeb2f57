//! The live Kafka runtime: `personalizer run`.
//!
//! It checks the topic layout (creating missing internal topics), opens the state
//! store, and runs `kafka.stream_threads` stream threads ([`stream_thread::StreamThread`]),
//! each a member of the group with its own tasks and transactional producer. When a
//! thread has to drop uncommitted work (an aborted transaction, a broker that went away)
//! it is rebuilt from the committed state after a backoff; only errors no retry can fix
//! end the process (and then every thread stops).

pub mod assignment;
pub mod batch;
pub mod broker_probe;
pub mod changelog;
pub mod clients;
pub mod codecs;
pub mod decision_tail;
pub mod events;
pub mod global_table;
pub mod input;
pub mod instances;
pub mod latency;
pub mod merge;
pub mod output;
pub mod peers;
pub mod restore;
pub mod stream_thread;
pub mod topics;
pub mod transaction;
pub mod watermarks;

use crate::api::activity::RecentActivity;
use crate::api::shoppers::{ServedPartitions, StoreShoppers};
use crate::api::{ApiMetrics, ApiSlot, Forwarder, ReadSide};
use crate::catalog::ProductCatalog;
use crate::config::Config;
use crate::product_index::ProductIndex;
use crate::store::{Store, StoreError, META_CUSTOMER_PARTITIONS};
use crate::telemetry::health::{Health, Phase};
use crate::telemetry::Telemetry;
use clients::ClientError;
use global_table::GlobalTable;
use instances::Announcer;
use peers::Peers;
use restore::RestoreError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stream_thread::{SharedWithReaders, StreamError, StreamSetup, StreamThread, Totals};
use topics::{ClusterTopics, Role, TopicLayout, TopicProblem};

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The pause before a stream thread that stopped is replaced, the first time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("setting `state.dir` (or `--state-dir`): `run` keeps its state on disk and needs a directory")]
    NoStateDir,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the topics are not as the processor needs them:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Topics(Vec<TopicProblem>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot keep the instance id in {path}: {source}")]
    InstanceId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Stream(StreamError),
    #[error("a stream thread panicked; the other threads committed and stopped")]
    StreamThreadPanicked,
    #[error("product table: {0}")]
    ProductTable(global_table::GlobalTableError),
    #[error(transparent)]
    SchemaRegistry(#[from] crate::registry::RegistryError),
}

/// Reads the layout from the cluster, creates what `create` allows, and reports what is
/// still wrong. Retries while the broker cannot be reached, until `shutdown`.
pub fn prepare_topics(
    config: &Config,
    layout: &TopicLayout,
    create: impl Fn(Role) -> bool,
    shutdown: &AtomicBool,
    health: &Health,
) -> Result<ClusterTopics, RuntimeError> {
    let default = config.kafka.default_partitions;
    let cluster = with_retry("read the topics", shutdown, health, || {
        ClusterTopics::fetch(config, layout)
    })?;
    let problems = layout.check(&cluster, default);
    let missing = problems.iter().filter_map(|p| match p {
        TopicProblem::Missing(spec) if create(spec.role) => Some(spec),
        _ => None,
    });
    let plan = layout.to_create(missing, &cluster, default);
    if plan.is_empty() {
        return if problems.is_empty() {
            Ok(cluster)
        } else {
            Err(RuntimeError::Topics(problems))
        };
    }
    for (spec, partitions) in &plan {
        tracing::info!(topic = %spec.name, partitions, compacted = spec.compacted, "creating topic");
    }
    topics::create(config, &plan)?;
    // A new topic reaches the brokers' metadata a moment after the controller made it.
    let mut attempts = 0;
    loop {
        let cluster = with_retry("read the topics", shutdown, health, || {
            ClusterTopics::fetch(config, layout)
        })?;
        let problems = layout.check(&cluster, default);
        if problems.is_empty() {
            return Ok(cluster);
        }
        let still_missing = problems.iter().any(
            |p| matches!(p, TopicProblem::Missing(spec) if plan.iter().any(|(s, _)| s == spec)),
        );
        attempts += 1;
        if !still_missing || attempts >= 40 {
            return Err(RuntimeError::Topics(problems));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn with_retry<T>(
    action: &str,
    shutdown: &AtomicBool,
    health: &Health,
    mut attempt: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        match attempt() {
            Err(e @ ClientError::Broker { .. }) if !shutdown.load(Ordering::SeqCst) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot {action}; retrying");
                sleep_unless(&[shutdown], || health.beat(), backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Sleeps (showing signs of life with `beat`) unless or until one of `stops` is set.
fn sleep_unless(stops: &[&AtomicBool], beat: impl Fn(), duration: Duration) {
    let step = Duration::from_millis(50);
    let mut left = duration;
    while !left.is_zero() && !stops.iter().any(|stop| stop.load(Ordering::SeqCst)) {
        beat();
        let nap = left.min(step);
        std::thread::sleep(nap);
        left -= nap;
    }
}

/// The id naming this instance's transactional producer: the setting, or one created
/// once and kept in the state directory, so a restarted instance fences its own past.
fn instance_id(config: &Config, dir: &Path) -> Result<String, RuntimeError> {
    if let Some(id) = &config.kafka.instance_id {
        return Ok(id.clone());
    }
    let path = dir.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => {
            let id = format!("{:016x}", rand::random::<u64>());
            std::fs::write(&path, &id).map_err(|source| RuntimeError::InstanceId {
                path: path.clone(),
                source,
            })?;
            Ok(id)
        }
    }
}

/// Logs a stream error at `$level`, with the task, topic and offset it names as fields.
macro_rules! log_stream_error {
    ($level:expr, $error:expr, $message:expr) => {
        match $error {
            StreamError::Record {
                processor,
                task,
                topic,
                offset,
                source,
            } => tracing::event!($level, processor, task, topic, partition = task, offset, error = %source, $message),
            StreamError::Restore(RestoreError::Corrupt {
                topic,
                partition,
                offset,
                source,
            }) => tracing::event!($level, task = partition, topic, partition, offset, error = %source, $message),
            StreamError::Restore(e @ RestoreError::Stalled {
                topic,
                partition,
                offset,
                ..
            }) => tracing::event!($level, task = partition, topic, partition, offset, error = %e, $message),
            other => tracing::event!($level, error = %other, $message),
        }
    };
}

/// Runs the processor until `shutdown` is set; then commits, leaves the group and
/// flushes the state store. It reports through `telemetry` as it goes.
/// Once the state is open, the read API is published to `api` for the HTTP port.
pub fn run(
    config: &Config,
    shutdown: &AtomicBool,
    telemetry: &Telemetry,
    api: &ApiSlot,
) -> Result<Totals, RuntimeError> {
    let stop_probe = AtomicBool::new(false);
    std::thread::scope(|scope| {
        spawn_named(scope, "broker-probe", || {
            broker_probe::run(config, telemetry, &stop_probe)
        });
        let result = run_stream(config, shutdown, telemetry, api);
        stop_probe.store(true, Ordering::SeqCst);
        if let Err(RuntimeError::Stream(e)) = &result {
            log_stream_error!(tracing::Level::ERROR, e, "the processor stops");
        }
        result
    })
}

fn run_stream(
    config: &Config,
    shutdown: &AtomicBool,
    telemetry: &Telemetry,
    api: &ApiSlot,
) -> Result<Totals, RuntimeError> {
    let health = &telemetry.health;
    health.set_phase(Phase::Starting);
    let dir = config.state.dir.clone().ok_or(RuntimeError::NoStateDir)?;
    let layout = TopicLayout::new(config);
    let cluster = match prepare_topics(
        config,
        &layout,
        |role| role == Role::Internal,
        shutdown,
        health,
    ) {
        Ok(cluster) => cluster,
        // Asked to stop while still waiting for the brokers: nothing was started, so
        // this is a clean stop, not a failure.
        Err(RuntimeError::Client(ClientError::Broker { .. }))
            if shutdown.load(Ordering::SeqCst) =>
        {
            health.set_phase(Phase::Stopping);
            return Ok(Totals::default());
        }
        Err(e) => return Err(e),
    };
    let partitions_of = |topic: &str| -> u16 {
        cluster
            .topics
            .get(topic)
            .map_or(1, |t| u16::try_from(t.partitions).unwrap_or(u16::MAX))
    };
    let partitions = [
        partitions_of(&layout.clickstream),
        partitions_of(&layout.stock),
    ];
    let store = Arc::new(Store::open(&dir, &config.state)?.keep_writes());
    // `personalizer query` finds shoppers in this directory after the processor stops.
    store.write(&[Store::meta_change(
        META_CUSTOMER_PARTITIONS,
        i64::from(partitions[0]),
    )])?;
    let codecs = codecs::Codecs::new(config)?;
    let catalog = ProductCatalog::shared();
    let index = ProductIndex::shared(config.rules.products.popularity_half_life.millis());
    let served = Arc::new(ServedPartitions::new(partitions[0]));
    let mut table = GlobalTable::open(
        config,
        &store,
        catalog.clone(),
        index.clone(),
        &telemetry.metrics,
        i32::from(partitions_of(&config.kafka.topics.products)),
        codecs.reader.clone(),
    )
    .map_err(RuntimeError::ProductTable)?;
    table
        .catch_up(shutdown)
        .map_err(RuntimeError::ProductTable)?;
    let transactional_id = format!("{}-{}", config.application_id, instance_id(config, &dir)?);
    let directory = instances::shared(&transactional_id);
    let url = instances::advertised_url(config, api.bound());
    let announcer = Arc::new(
        Announcer::new(config, &layout.instances, &transactional_id, &url)
            .map_err(|e| RuntimeError::Stream(StreamError::Client(e)))?,
    );
    let activity = Arc::new(RecentActivity::new(codecs.reader.clone()));
    let read_side = ReadSide {
        config: Arc::new(config.clone()),
        shoppers: StoreShoppers::new(Arc::clone(&store), partitions[0], Some(served.clone())),
        products: index,
        activity: Some(activity.clone()),
    };
    let api_metrics = ApiMetrics::of(&telemetry.metrics);
    let forwarder = Forwarder::new(
        directory.clone(),
        config.api.forward_timeout.0,
        Some(api_metrics.forwards.clone()),
    );
    api.publish(crate::api::router(
        Arc::new(read_side),
        Some(api_metrics),
        Some(forwarder),
    ));
    tracing::info!(
        application_id = %config.application_id,
        transactional_id,
        customer_partitions = partitions[0],
        product_partitions = partitions[1],
        "starting"
    );
    let threads = config.kafka.stream_threads;
    health.set_stream_threads(threads);
    let shared = SharedWithReaders {
        catalog: catalog.clone(),
        served: served.clone(),
        announcer: announcer.clone(),
        decoders: codecs.inputs.clone(),
        encoder: codecs.outputs.clone(),
        peers: Arc::new(Peers::new(threads)),
    };
    let stop_table = AtomicBool::new(false);
    let totals = std::thread::scope(|scope| {
        let follower = spawn_named(scope, "product-table", || {
            table.follow(&[shutdown, &stop_table])
        });
        let directory_reader = spawn_named(scope, "instances", || {
            instances::follow(
                config,
                &layout.instances,
                &directory,
                &[shutdown, &stop_table],
            )
        });
        let decision_reader = spawn_named(scope, "decision-tail", || {
            decision_tail::follow(config, &activity, &[shutdown, &stop_table])
        });
        let result = run_stream_threads(
            &StreamSetup {
                config,
                layout: &layout,
                store: &store,
                transactional_id: &transactional_id,
                partitions,
                shared: &shared,
                telemetry,
            },
            threads,
            shutdown,
        );
        stop_table.store(true, Ordering::SeqCst);
        // Other instances stop sending read-API requests here.
        announcer.announce(&[]);
        join_reader(decision_reader.join(), "the decision topics");
        join_reader(directory_reader.join(), "the instances topic");
        join_reader(follower.join(), "the product table");
        result
    })?;
    health.set_phase(Phase::Stopping);
    store.flush()?;
    Ok(totals)
}

/// Spawns a scoped thread under a name that `top -H` and the logs show.
fn spawn_named<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    work: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, work)
        .unwrap_or_else(|e| panic!("cannot start the {name} thread: {e}"))
}

/// Logs how a reader thread beside the stream thread ended, if not cleanly.
fn join_reader<E: std::fmt::Display>(joined: std::thread::Result<Result<(), E>>, reading: &str) {
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, reading, "a reader stopped following its topic"),
        Err(_) => tracing::error!(reading, "a reader thread panicked"),
    }
}

/// Runs `threads` stream threads until `shutdown`, or until one of them meets an error
/// no restart can fix: then the others commit and stop too, and that error is returned.
fn run_stream_threads(
    setup: &StreamSetup,
    threads: usize,
    shutdown: &AtomicBool,
) -> Result<Totals, RuntimeError> {
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Totals, RuntimeError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let failed = &failed;
                spawn_named(scope, &format!("stream-{index}"), move || {
                    let result = run_stream_thread(setup, index, &[shutdown, failed]);
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    failed.store(true, Ordering::SeqCst);
                    Err(RuntimeError::StreamThreadPanicked)
                })
            })
            .collect()
    });
    let mut totals = Totals::default();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(thread_totals) => totals.add(&thread_totals),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(totals), Err)
}

/// Runs stream thread `index`, rebuilt after a backoff each time it had to drop
/// uncommitted work, until one of `stops` is set.
fn run_stream_thread(
    setup: &StreamSetup,
    index: usize,
    stops: &[&AtomicBool],
) -> Result<Totals, RuntimeError> {
    let health = setup.telemetry.health.thread(index);
    let stopping = || stops.iter().any(|stop| stop.load(Ordering::SeqCst));
    let mut totals = Totals::default();
    let mut backoff = FIRST_BACKOFF;
    while !stopping() {
        health.set_phase(Phase::Starting);
        let stream = StreamThread::new(setup, index);
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(StreamError::Client(e @ ClientError::Broker { .. })) => {
                tracing::warn!(thread = index, error = %e, retry_in = ?backoff, "cannot start; retrying");
                sleep_unless(stops, || health.beat(), backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => return Err(RuntimeError::Stream(e)),
        };
        let started = std::time::Instant::now();
        let result = stream.run(stops);
        totals.add(&stream.totals);
        // A thread that worked for a while before it stopped starts the backoff over:
        // a rare rewind in a long run should not wait as long as the tenth in a row.
        if started.elapsed() > MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        stream.close();
        match result {
            Ok(()) => break,
            Err(
                e @ (StreamError::Rewind(_)
                | StreamError::Client(ClientError::Broker { .. })
                | StreamError::Restore(RestoreError::Client(ClientError::Broker { .. }))
                | StreamError::Restore(RestoreError::Stalled { .. })),
            ) => {
                log_stream_error!(
                    tracing::Level::WARN,
                    &e,
                    "stream thread stopped; restarting from the last commit"
                );
                tracing::info!(thread = index, retry_in = ?backoff, "restarting the stream thread");
                sleep_unless(stops, || health.beat(), backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(RuntimeError::Stream(e)),
        }
    }
    Ok(totals)
}
