//! Producing events to the input topics as a shop's services would: each to the topic
//! of its type, keyed by shopper (or SKU for stock), partitioned with murmur2 like the
//! Java clients. Used by `generate --to-kafka`, `demo` and the benchmarks.

use crate::config::Config;
use crate::event::{Event, InputTopic, RoutingKey};
use crate::event_encoder::{EventEncodeError, EventEncoder};
use crate::registry::RegistryError;
use crate::runtime::clients::{self, ClientError};
use crate::time::Millis;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long looking up the input topics' partitions may take before a paced run.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// How fast events go out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the producer takes them; event times as generated.
    Unpaced,
    /// A steady number per second; each event's time is the wall clock when it is sent,
    /// so the time from event to decision can be measured.
    PerSecond(u32),
    /// Each event when the wall clock reaches its own time.
    RealTime,
}

pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

pub fn topic_for(config: &Config, topic: InputTopic) -> &str {
    let topics = &config.kafka.topics;
    match topic {
        InputTopic::Clickstream => &topics.clickstream,
        InputTopic::Cart => &topics.cart,
        InputTopic::Stock => &topics.stock,
        InputTopic::Customers => &topics.customers,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Encode(#[from] EventEncodeError),
}

/// Produces `events` until they run out or `stop` is set; counts them in `sent`. Each
/// topic in the format `kafka.formats` gives it (Avro schemas registered as needed).
pub fn produce_events(
    config: &Config,
    events: impl Iterator<Item = Event>,
    pace: Pace,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<(), LoadError> {
    let mut encoder = EventEncoder::new(config)?;
    let producer: BaseProducer = clients::base(config)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "10")
        .set("batch.size", "262144")
        .set("compression.type", "lz4")
        .create()
        .map_err(ClientError::create)?;
    if matches!(pace, Pace::PerSecond(_)) {
        // Connected and knowing the partitions' leaders before the first event is
        // stamped: otherwise the first ones wait for that in the producer's queue, and a
        // latency measured from their times counts the wait.
        for topic in [
            InputTopic::Clickstream,
            InputTopic::Cart,
            InputTopic::Stock,
            InputTopic::Customers,
        ] {
            producer
                .client()
                .fetch_metadata(Some(topic_for(config, topic)), METADATA_TIMEOUT)
                .map_err(|e| ClientError::broker(config, "look up the input topics", e))?;
        }
    }
    let started = Instant::now();
    for (n, mut event) in events.enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match pace {
            Pace::Unpaced => {}
            Pace::PerSecond(rate) => {
                let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate.max(1)));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                event.occurred_at = now_millis();
            }
            Pace::RealTime => {
                let wait = event.occurred_at - now_millis();
                if wait > 0 {
                    std::thread::sleep(Duration::from_millis(wait as u64));
                }
            }
        }
        let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
        let topic = topic_for(config, event.body.topic());
        let value = encoder.encode(topic, &event)?;
        let record = BaseRecord::to(topic).key(key).payload(&value);
        send_when_room(&producer, record)
            .map_err(|e| ClientError::broker(config, "produce the events", e))?;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| ClientError::broker(config, "deliver the events", e))?;
    Ok(())
}

/// Queues a record, waiting while the producer's queue is full; any other refusal is
/// returned rather than retried for ever.
pub fn send_when_room<K, V>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, V>,
) -> Result<(), KafkaError>
where
    K: ToBytes + ?Sized,
    V: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}
