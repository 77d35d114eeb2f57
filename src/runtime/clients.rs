//! Kafka clients built from the configuration: the settings Personalizer owns, then the
//! pass-through librdkafka properties of `kafka.properties`.

use crate::config::Config;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long one wait for delivery reports lasts before the count is checked again.
const DELIVERY_POLL_SLICE: Duration = Duration::from_millis(1);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot create a Kafka client (check `kafka.properties` and `kafka.bootstrap_servers`): {0}")]
    Create(Box<KafkaError>),
    // `error` is part of the message, not a chained source, so it is printed once.
    #[error("cannot {action} on `{bootstrap}` (`kafka.bootstrap_servers`): {error}")]
    Broker {
        action: String,
        bootstrap: String,
        error: Box<KafkaError>,
    },
    #[error("topic `{topic}` {problem}")]
    Topic { topic: String, problem: String },
}

impl ClientError {
    pub fn create(source: KafkaError) -> ClientError {
        ClientError::Create(Box::new(source))
    }

    pub fn broker(config: &Config, action: &str, source: KafkaError) -> ClientError {
        ClientError::Broker {
            action: action.to_string(),
            bootstrap: config.kafka.bootstrap_servers.clone(),
            error: Box::new(source),
        }
    }
}

/// The properties every client shares.
pub fn base(config: &Config) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.kafka.bootstrap_servers);
    client.set("client.id", &config.application_id);
    for (key, value) in &config.kafka.properties {
        client.set(key, value);
    }
    client
}

/// Sets one of Personalizer's own defaults for a librdkafka property, unless the
/// operator gave the property in `kafka.properties`.
pub fn set_unless_given(client: &mut ClientConfig, config: &Config, key: &str, value: &str) {
    if !config.kafka.properties.contains_key(key) {
        client.set(key, value);
    }
}

/// How far a consumer fetches ahead of the thread that takes its records.
///
/// librdkafka's defaults (up to 100,000 records per partition or 64 MiB queued, fetch
/// responses of up to 50 MiB) are made for a process with one consumer; Personalizer
/// runs up to five beside the stream thread's, and heaptrack of `personalizer run`
/// working off a backlog found hundreds of MiB of decompressed batches waiting in their
/// queues. A queue only needs to stay ahead of the thread that drains it, and a consumer
/// that fetches again soon after its queue drains (`fetch.queue.backoff.ms`) keeps up
/// with a small one.
#[derive(Debug, Clone, Copy)]
pub struct Prefetch {
    /// `queued.max.messages.kbytes`: decompressed records queued per consumer.
    pub queued_kib: usize,
    /// `queued.min.messages`: records librdkafka tries to keep queued per partition.
    pub queued_records: usize,
    /// `fetch.max.bytes`: the largest fetch response.
    pub fetch_bytes: usize,
    /// `max.partition.fetch.bytes`: the most one partition adds to a fetch response.
    pub partition_fetch_bytes: usize,
}

impl Prefetch {
    /// Consumers that read topics to their end beside the stream thread: the product
    /// table, the decision feed, the instances topic.
    pub const READER: Prefetch = Prefetch {
        queued_kib: 4 << 10,
        queued_records: 10_000,
        fetch_bytes: 4 << 20,
        partition_fetch_bytes: 1 << 20,
    };

    /// Sets the limits on `client`, except those `kafka.properties` names: an operator's
    /// choice stands.
    pub fn apply(&self, client: &mut ClientConfig, config: &Config) {
        let limits = [
            ("queued.max.messages.kbytes", self.queued_kib),
            ("queued.min.messages", self.queued_records),
            ("fetch.max.bytes", self.fetch_bytes),
            ("max.partition.fetch.bytes", self.partition_fetch_bytes),
        ];
        for (key, value) in limits {
            set_unless_given(client, config, key, &value.to_string());
        }
        // librdkafka waits 1 s to fetch again once a queue was full; with a small queue
        // that wait is most of a reader's time.
        set_unless_given(client, config, "fetch.queue.backoff.ms", "5");
    }
}

/// Waits until every record sent so far is acknowledged (or has failed), serving the
/// delivery reports as they arrive.
///
/// Not `BaseProducer::poll(slice)`: it always lasts its whole slice (it returns only at
/// its deadline, even after serving reports at once: with `flush`'s 100 ms slices every
/// commit waited at least 100 ms), and its last millisecond is a busy loop (the time
/// left, rounded down to whole milliseconds, is 0): with 1 ms slices the committer
/// thread spun for the whole wait, 2.7 s of CPU in 15 s at 20,000 events/s with
/// adaptive pacing. The wait here sleeps in librdkafka's flush instead, which also has
/// it send the records still lingering (`linger.ms`) at once, as Java's `flush` does: a
/// commit has nothing more to add to their batches (measured at 20,000 events/s: the
/// wait for a transaction's records 18.4 → 13.2 ms at the median).
pub fn deliver_outstanding<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    // Counts queued and in-flight records and the reports not yet served.
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut));
        }
        send_lingering_and_wait(producer);
        serve_reports(producer);
    }
    Ok(())
}

/// Has librdkafka send what lingers now, and sleeps up to [`DELIVERY_POLL_SLICE`]. Its
/// flush treats `linger.ms` as elapsed only while the call lasts, and wakes the broker
/// threads to look: a call that returned at once could end before they do. With
/// delivery reports as events (as `BaseProducer` has them) it serves none, and waits
/// for the count of unserved records to reach zero, so it sleeps the whole slice unless
/// nothing is outstanding.
fn send_lingering_and_wait<C: ProducerContext>(producer: &BaseProducer<C>) {
    let wait_ms = DELIVERY_POLL_SLICE.as_millis() as i32;
    // SAFETY: the handle belongs to a producer that outlives the call.
    unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), wait_ms) };
}

/// Serves the delivery reports waiting, without waiting for more: a poll without a
/// timeout serves at most one report event (one per batch of records), so it polls
/// until the count of outstanding records stops falling.
fn serve_reports<C: ProducerContext>(producer: &BaseProducer<C>) {
    let mut outstanding = producer.in_flight_count();
    while outstanding > 0 {
        producer.poll(Duration::ZERO);
        let now = producer.in_flight_count();
        if now == outstanding {
            return;
        }
        outstanding = now;
    }
}

/// A consumer with no group, for metadata and reading changelogs.
pub fn plain_consumer<C: FromClientConfig>(config: &Config) -> Result<C, ClientError> {
    plain_config(config).create().map_err(ClientError::create)
}

/// The properties of [`plain_consumer`]: no group offsets, read committed only.
pub fn plain_config(config: &Config) -> ClientConfig {
    let mut client = base(config);
    client
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("group.id", format!("{}-restore", config.application_id));
    client
}

/// The context of a consumer that reads partitions to their end (a restore, the product
/// table): reaching the end is how it finishes, not an error, so librdkafka's report of
/// it is logged at debug; anything else at error, naming what was being read.
pub struct ReadToEnd {
    pub reading: &'static str,
}

impl ClientContext for ReadToEnd {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
        {
            tracing::debug!(reading = self.reading, %reason, "reached the end of a partition");
        } else {
            tracing::error!(reading = self.reading, error = %error, %reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for ReadToEnd {}

/// A consumer with no group that reads topics to their end (committed records only),
/// naming what it reads in its logs.
pub fn reader(
    config: &Config,
    reading: &'static str,
) -> Result<BaseConsumer<ReadToEnd>, ClientError> {
    let mut client = plain_config(config);
    Prefetch::READER.apply(&mut client, config);
    consumer_with(&client, ReadToEnd { reading })
}

pub fn consumer_with<Ctx: ConsumerContext>(
    client: &ClientConfig,
    context: Ctx,
) -> Result<BaseConsumer<Ctx>, ClientError> {
    BaseConsumer::from_config_and_context(client, context).map_err(ClientError::create)
}

pub fn admin(config: &Config) -> Result<AdminClient<DefaultClientContext>, ClientError> {
    base(config).create().map_err(ClientError::create)
}

/// Runs one admin future to completion on a small runtime of its own.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime needs no resources that can be missing")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseRecord;

    #[test]
    fn prefetch_limits_are_set_unless_kafka_properties_name_them() {
        let mut config = Config::default();
        config
            .kafka
            .properties
            .insert("fetch.max.bytes".into(), "123456".into());
        let mut client = base(&config);
        Prefetch::READER.apply(&mut client, &config);
        assert_eq!(client.get("fetch.max.bytes"), Some("123456"));
        assert_eq!(client.get("queued.max.messages.kbytes"), Some("4096"));
        assert_eq!(client.get("queued.min.messages"), Some("10000"));
        assert_eq!(client.get("max.partition.fetch.bytes"), Some("1048576"));
        assert_eq!(client.get("fetch.queue.backoff.ms"), Some("5"));
    }

    fn producer_to_nowhere() -> BaseProducer {
        ClientConfig::new()
            // Nothing listens there: records stay queued until their timeout.
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.timeout.ms", "60000")
            .create()
            .expect("a producer needs no broker to be created")
    }

    /// A producer to nowhere with one record queued that no broker will acknowledge.
    fn producer_with_a_record_to_nowhere() -> BaseProducer {
        let producer = producer_to_nowhere();
        producer
            .send(BaseRecord::<str, str>::to("t").key("k").payload("v"))
            .map_err(|(e, _)| e)
            .unwrap();
        producer
    }

    #[test]
    fn delivering_nothing_outstanding_returns_at_once() {
        let producer = producer_to_nowhere();
        let started = Instant::now();
        deliver_outstanding(&producer, Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn delivering_records_no_broker_acknowledges_times_out() {
        let producer = producer_with_a_record_to_nowhere();
        let started = Instant::now();
        let error = deliver_outstanding(&producer, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(error, KafkaError::Flush(_)), "{error}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!(producer.in_flight_count(), 1);
    }

    /// CPU time this thread has used.
    fn thread_cpu_time() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a timespec the call fills in.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        assert_eq!(status, 0, "the thread's CPU clock is readable");
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    #[test]
    fn waiting_for_deliveries_sleeps_rather_than_spins() {
        let producer = producer_with_a_record_to_nowhere();
        let before = thread_cpu_time();
        let _ = deliver_outstanding(&producer, Duration::from_millis(500));
        let used = thread_cpu_time() - before;
        // A poll loop that spins uses about the whole wait.
        assert!(
            used < Duration::from_millis(100),
            "{used:?} of CPU in 500 ms"
        );
    }
}
