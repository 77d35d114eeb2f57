//! Follows the processor's own decision topics (committed records, from the end as it
//! is at start) into the read API's [`RecentActivity`]: the recent decisions the
//! merchant's page shows per shopper. It reads every partition, so any instance shows
//! every shopper's decisions, and it never touches the stream thread.

use super::clients::{self, ClientError, ReadToEnd};
use crate::api::activity::RecentActivity;
use crate::config::Config;
use crate::decision::DecisionType;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads until one of `stops` is set. Records are kept as they are and read when the
/// page asks (see [`RecentActivity`]).
pub fn follow(
    config: &Config,
    activity: &RecentActivity,
    stops: &[&AtomicBool],
) -> Result<(), ClientError> {
    let consumer: BaseConsumer<ReadToEnd> = clients::reader(config, "the decision topics")?;
    let mut assignment = TopicPartitionList::new();
    for kind in DecisionType::ALL {
        if kind == DecisionType::Product {
            continue;
        }
        let topic = config.kafka.topics.for_decision(kind);
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|e| ClientError::broker(config, &format!("describe `{topic}`"), e))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::End)
                    .expect("a fresh list accepts any partition");
            }
        }
    }
    consumer
        .assign(&assignment)
        .map_err(|e| ClientError::broker(config, "read the decision topics", e))?;
    while !stops.iter().any(|stop| stop.load(Ordering::SeqCst)) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                // Tombstones (no value) are not decisions.
                if let (Some(key), Some(payload)) = (message.key(), message.payload()) {
                    activity.record(key, payload);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "cannot read the decision topics for the merchant's page");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    Ok(())
}
