//! What the stream thread writes: decisions, forwarded messages, dead letters and
//! changelog records, through one producer (transactional with exactly-once), and the
//! delivery reports that say which changelog offsets a commit reached.

use super::clients::{self, ClientError};
use super::events::AbortReason;
use super::input::BadRecord;
use super::transaction::{Committer, CommitterBusy, Delivered};
use crate::config::{Config, ProcessingGuarantee};
use crate::decision::Decision;
use crate::decision_codec::DecisionEncoder;
use crate::forward::Forward;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the broker keeps a dead instance's transaction open before aborting it,
/// which holds back `read_committed` readers of the partitions it wrote (as Kafka
/// Streams, 10 s: long enough for any commit, short enough for a quick failover).
const TRANSACTION_LIFETIME: Duration = Duration::from_secs(10);

/// The open batch cannot be committed: why, and what went wrong.
#[derive(Debug)]
pub struct Abort {
    pub reason: AbortReason,
    pub problem: String,
}

impl Abort {
    pub fn new(reason: AbortReason, problem: String) -> Abort {
        Abort { reason, problem }
    }
}

/// What kind of record a delivery report is about (carried as the record's opaque
/// value, which librdkafka hands back as a `usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum RecordKind {
    /// A decision, forwarded message or dead letter.
    Output = 0,
    /// A changelog record, whose offset the commit checkpoints.
    Changelog = 1,
}

const OUTPUT: usize = RecordKind::Output as usize;
const CHANGELOG: usize = RecordKind::Changelog as usize;

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

impl DeliveryContext {
    /// The changelog offsets the records delivered since the last call reached; an
    /// error if any of them was not delivered.
    pub fn take_deliveries(&self) -> Result<Delivered, Abort> {
        let mut deliveries = self.state.lock().expect("delivery state is never poisoned");
        if deliveries.failures == 0 {
            return Ok(std::mem::take(&mut deliveries.changelog_offsets));
        }
        deliveries.failures = 0;
        deliveries.changelog_offsets.clear();
        let failure = deliveries.last_failure.take().unwrap_or_default();
        Err(Abort::new(
            AbortReason::DeliveryFailed,
            format!("records were not delivered: {failure}"),
        ))
    }
}

/// A record produced while a commit is under way, sent when it has ended.
pub(super) struct HeldRecord {
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
    kind: usize,
}

/// The stream thread's producer.
pub struct Output {
    pub(super) producer: Arc<BaseProducer<DeliveryContext>>,
    pub(super) exactly_once: bool,
    pub(super) in_transaction: bool,
    /// `Some` from the start of a commit until the records it holds are released.
    pub(super) held: Option<Vec<HeldRecord>>,
    pub(super) committer: Committer,
    encoder: Arc<DecisionEncoder>,
}

impl Output {
    /// Creates the producer; with exactly-once, a transactional one named
    /// `transactional_id` (see [`Output::init`]). `busy` tells whether its committer
    /// is working on a commit.
    pub fn new(
        config: &Config,
        transactional_id: &str,
        busy: Arc<CommitterBusy>,
        encoder: Arc<DecisionEncoder>,
    ) -> Result<Output, ClientError> {
        let exactly_once = config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnce;
        let mut producer_config = clients::base(config);
        producer_config
            .set("enable.idempotence", "true")
            // Keyed records land where a Java producer would put them (the records
            // that name their partition, changelogs and internal topics, are the same).
            .set("partitioner", "murmur2_random");
        // Decisions are JSON or Avro with repeated field names and SKUs: lz4 shrinks
        // them several times for little CPU. An operator's value replaces either.
        clients::set_unless_given(&mut producer_config, config, "linger.ms", "5");
        clients::set_unless_given(&mut producer_config, config, "compression.type", "lz4");
        if exactly_once {
            producer_config
                .set("transactional.id", transactional_id)
                .set(
                    "transaction.timeout.ms",
                    TRANSACTION_LIFETIME.as_millis().to_string(),
                );
        }
        let producer: Arc<BaseProducer<DeliveryContext>> = Arc::new(
            producer_config
                .create_with_context(DeliveryContext::default())
                .map_err(ClientError::create)?,
        );
        Ok(Output {
            committer: Committer::start(Arc::clone(&producer), exactly_once, busy),
            producer,
            exactly_once,
            in_transaction: false,
            held: None,
            encoder,
        })
    }

    /// Records keep the broker's default timestamp (now), never an event time:
    /// retention deletes by record timestamp, and a backlog's event times may be months
    /// old. Keyed by customer and partitioned by the producer's murmur2 partitioner.
    ///
    /// A tombstone (a deleted profile) is the key with no value, as compaction expects.
    pub fn decision(&mut self, topic: &str, decision: &Decision) -> Result<(), Abort> {
        let record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, OUTPUT).key(decision.record_key().as_bytes());
        if decision.is_tombstone() {
            return self.send(record);
        }
        let value = self.encoder.encode(decision).map_err(|problem| {
            Abort::new(
                AbortReason::ProduceFailed,
                format!(
                    "cannot encode a `{}` decision for `{topic}`: {problem}",
                    decision.decision_type().name()
                ),
            )
        })?;
        self.send(record.payload(&value))
    }

    /// A message for a task of another instance, to the internal topic of its side.
    pub fn forward(
        &mut self,
        topic: &str,
        partition: u16,
        key: &str,
        forward: &Forward,
    ) -> Result<(), Abort> {
        let value = serde_json::to_vec(forward).expect("forwarded messages always serialize");
        let record = BaseRecord::with_opaque_to(topic, OUTPUT)
            .key(key.as_bytes())
            .payload(&value)
            .partition(i32::from(partition));
        self.send(record)
    }

    /// An input event read from a partition its key does not belong to, to the
    /// internal topic's partition of the task that owns the key (its contract JSON:
    /// the receiving task decodes it as the event it is).
    pub fn pass_on(
        &mut self,
        topic: &str,
        partition: u16,
        key: &str,
        event_json: &str,
    ) -> Result<(), Abort> {
        let record = BaseRecord::with_opaque_to(topic, OUTPUT)
            .key(key.as_bytes())
            .payload(event_json.as_bytes())
            .partition(i32::from(partition));
        self.send(record)
    }

    /// A record that could not be processed, with where it came from and why.
    pub fn dead_letter(
        &mut self,
        dlq: &str,
        source: (&str, u16, i64),
        bad: &BadRecord,
    ) -> Result<(), Abort> {
        let (topic, partition, offset) = source;
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
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(dlq, OUTPUT).headers(headers);
        if let Some(key) = &bad.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &bad.value {
            record = record.payload(value.as_slice());
        }
        self.send(record)
    }

    /// A state change, to the task's partition of its side's changelog.
    pub fn changelog(
        &mut self,
        topic: &str,
        partition: u16,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), Abort> {
        let mut record = BaseRecord::with_opaque_to(topic, CHANGELOG)
            .key(key)
            .partition(i32::from(partition));
        if let Some(value) = value {
            record = record.payload(value);
        }
        self.send(record)
    }

    /// Whether a commit is under way (or its held records are not yet released).
    pub fn is_committing(&self) -> bool {
        self.held.is_some()
    }

    /// Drops what was held for the next transaction (its batch is being dropped).
    pub fn discard_held(&mut self) {
        if let Some(held) = &mut self.held {
            held.clear();
        }
    }

    /// Opens the next transaction and produces what was held while the last commit was
    /// under way.
    pub fn release_held(&mut self) -> Result<(), Abort> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        if held.is_empty() {
            return Ok(());
        }
        self.begin()?;
        for record in held {
            let mut base =
                BaseRecord::<'_, [u8], [u8], usize>::with_opaque_to(&record.topic, record.kind);
            if let Some(partition) = record.partition {
                base = base.partition(partition);
            }
            if let Some(key) = &record.key {
                base = base.key(key.as_slice());
            }
            if let Some(payload) = &record.payload {
                base = base.payload(payload.as_slice());
            }
            if let Some(headers) = record.headers {
                base = base.headers(headers);
            }
            self.send(base)?;
        }
        Ok(())
    }

    /// Queues a record, waiting for room when the producer's queue is full; holds it
    /// while a commit is under way.
    fn send<K, V>(&mut self, mut record: BaseRecord<'_, K, V, usize>) -> Result<(), Abort>
    where
        K: ToBytes + ?Sized,
        V: ToBytes + ?Sized,
    {
        if let Some(held) = &mut self.held {
            held.push(HeldRecord {
                topic: record.topic.to_string(),
                partition: record.partition,
                key: record.key.map(|k| k.to_bytes().to_vec()),
                payload: record.payload.map(|p| p.to_bytes().to_vec()),
                headers: record.headers.take(),
                kind: record.delivery_opaque,
            });
            return Ok(());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, back)) => {
                    return Err(Abort::new(
                        AbortReason::ProduceFailed,
                        format!("cannot produce to `{}`: {e}", back.topic),
                    ))
                }
            }
        }
    }

    /// Sends what is queued, for at most `timeout` (on close).
    pub fn flush(&self, timeout: Duration) {
        let _ = clients::deliver_outstanding(&self.producer, timeout);
    }
}
