//! `[kafka]`: the brokers, the processing guarantee, commit and idle timing, and the
//! topic names.

use super::Dur;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Transactions: every decision, forwarded message and state change of a commit
    /// becomes visible together with the input offsets, or none of it does.
    ExactlyOnce,
    /// No transactions (brokers without them); after a crash some decisions are sent
    /// again with the same `decision_id`.
    AtLeastOnce,
}

/// When a batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitPacing {
    /// Every `commit_interval` (as Kafka Streams' `commit.interval.ms`).
    Interval,
    /// Every `commit_interval` while input is waiting; while the processor keeps up with
    /// its input, as soon as the previous commit has ended: a backlog is worked off in
    /// large batches, and live traffic waits for a commit only about as long as one takes.
    Adaptive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Brokers to bootstrap from, `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    pub processing_guarantee: ProcessingGuarantee,
    /// How often a task's work is committed (a transaction, with exactly-once).
    pub commit_interval: Dur,
    /// Whether a batch may be committed before `commit_interval` once caught up.
    pub commit_pacing: CommitPacing,
    /// How long a task waits for an input partition that has no buffered records and is
    /// caught up (a record with an earlier time may still come), before it processes the
    /// others without it. One that is behind is always waited for.
    pub max_task_idle: Dur,
    /// A quiet task that is fully caught up moves its stream time to the wall clock minus
    /// this, so timers fire while no events arrive.
    pub grace: Dur,
    /// Names this process's transactional producer; it must be stable across restarts of
    /// the same instance and unique among instances. Unset: a random id kept in the
    /// state directory.
    pub instance_id: Option<String>,
    /// Stream threads of this process, each a member of the group with its own consumer,
    /// transactional producer and tasks (Kafka Streams' `num.stream.threads`). Messages
    /// between tasks of different threads travel through the internal topics, as between
    /// instances; with one thread every message stays in memory, which keeps a single
    /// instance's decisions equal to `replay`'s (see the README's "Stream threads").
    pub stream_threads: usize,
    /// Partitions and replication for `topics create` and internal topics.
    pub default_partitions: i32,
    pub replication_factor: i32,
    /// `segment.bytes` of the compacted topics it creates (changelogs, profiles,
    /// products). Kafka's log cleaner never compacts a partition's active segment, and
    /// Kafka's default segment is 1 GiB: a busy changelog would otherwise be restored
    /// record by record, every superseded value included.
    pub compacted_segment_bytes: u64,
    pub topics: TopicsConfig,
    /// How each input topic is encoded: `json` (default) or `avro`.
    pub formats: super::TopicFormats,
    /// librdkafka properties passed through unchanged to every client (SASL, SSL, …).
    pub properties: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    pub clickstream: String,
    pub cart: String,
    pub stock: String,
    pub customers: String,
    pub abandoned_cart: String,
    pub back_in_stock: String,
    pub offers: String,
    pub segments: String,
    pub profiles: String,
    /// The product table: compacted, keyed by SKU, read in full by every instance.
    pub products: String,
    pub dead_letter: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "localhost:9092".into(),
            processing_guarantee: ProcessingGuarantee::ExactlyOnce,
            commit_interval: Dur(Duration::from_millis(100)),
            commit_pacing: CommitPacing::Interval,
            max_task_idle: Dur(Duration::from_millis(100)),
            grace: Dur(Duration::from_secs(30)),
            instance_id: None,
            stream_threads: 1,
            default_partitions: 8,
            replication_factor: 1,
            compacted_segment_bytes: 64 << 20,
            topics: TopicsConfig::default(),
            formats: Default::default(),
            properties: Default::default(),
        }
    }
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            clickstream: "clickstream".into(),
            cart: "cart".into(),
            stock: "stock".into(),
            customers: "customers".into(),
            abandoned_cart: "personalization.abandoned-cart".into(),
            back_in_stock: "personalization.back-in-stock".into(),
            offers: "personalization.offers".into(),
            segments: "personalization.segments".into(),
            profiles: "personalization.profiles".into(),
            products: "personalization.products".into(),
            dead_letter: "personalization.dlq".into(),
        }
    }
}

impl TopicsConfig {
    /// Every topic setting with its name, for validation and messages.
    pub fn all(&self) -> [(&'static str, &str); 11] {
        [
            ("clickstream", &self.clickstream),
            ("cart", &self.cart),
            ("stock", &self.stock),
            ("customers", &self.customers),
            ("abandoned_cart", &self.abandoned_cart),
            ("back_in_stock", &self.back_in_stock),
            ("offers", &self.offers),
            ("segments", &self.segments),
            ("profiles", &self.profiles),
            ("products", &self.products),
            ("dead_letter", &self.dead_letter),
        ]
    }

    /// The output topic of a decision type.
    pub fn for_decision(&self, kind: crate::decision::DecisionType) -> &str {
        use crate::decision::DecisionType;
        match kind {
            DecisionType::AbandonedCart => &self.abandoned_cart,
            DecisionType::BackInStock => &self.back_in_stock,
            DecisionType::DiscountOffer => &self.offers,
            DecisionType::SegmentChanged => &self.segments,
            DecisionType::Profile => &self.profiles,
            DecisionType::Product => &self.products,
        }
    }
}
