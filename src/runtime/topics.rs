//! The topics the processor reads and writes, the partition counts they must have, and
//! `topics create|check`.
//!
//! clickstream, cart and customers are co-partitioned: one customer task per partition
//! reads partition p of each, so they must have the same count. The internal topics
//! follow the side they feed: `<app>-by-customer` and the customer changelog have the
//! customer count, `<app>-by-sku` and the product changelog the count of `stock`.

use super::clients::{self, ClientError};
use crate::config::Config;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Brokers answer DescribeConfigs in milliseconds; one that does not may not support it.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a topic is for, which decides who creates it and how it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read by customer tasks; must be co-partitioned with the other customer inputs.
    CustomerInput,
    ProductInput,
    Output,
    /// Created by `run` itself when missing.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// The setting that names it, for error messages.
    pub setting: String,
    pub role: Role,
    pub compacted: bool,
}

/// Every topic of one application, with names resolved from the configuration.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    pub clickstream: String,
    pub cart: String,
    pub customers: String,
    pub stock: String,
    pub by_customer: String,
    pub by_sku: String,
    pub customer_changelog: String,
    pub product_changelog: String,
    /// Where instances say which customer partitions they serve, and at what URL.
    pub instances: String,
    pub dead_letter: String,
    /// The largest changelog record a state can make: `rules.limits.max_state_bytes`
    /// plus room for its key and the record's framing.
    pub state_record_bytes: i64,
    specs: Vec<TopicSpec>,
}

/// Room for a changelog record's key (partition and entity key) and framing.
const RECORD_OVERHEAD_BYTES: i64 = 4 * 1024;

impl TopicLayout {
    pub fn new(config: &Config) -> TopicLayout {
        let t = &config.kafka.topics;
        let app = &config.application_id;
        let internal = |suffix: &str| format!("{app}-{suffix}");
        let mut specs = Vec::new();
        let mut add = |name: &str, setting: String, role: Role, compacted: bool| {
            specs.push(TopicSpec {
                name: name.to_string(),
                setting,
                role,
                compacted,
            })
        };
        for (setting, name) in t.all() {
            let role = match setting {
                "clickstream" | "cart" | "customers" => Role::CustomerInput,
                "stock" => Role::ProductInput,
                _ => Role::Output,
            };
            add(
                name,
                format!("kafka.topics.{setting}"),
                role,
                matches!(setting, "profiles" | "products"),
            );
        }
        let layout_internal = [
            (internal("by-customer"), false),
            (internal("by-sku"), false),
            (internal("customer-changelog"), true),
            (internal("product-changelog"), true),
            (internal("instances"), true),
        ];
        for (name, compacted) in &layout_internal {
            add(
                name,
                "application_id".to_string(),
                Role::Internal,
                *compacted,
            );
        }
        TopicLayout {
            clickstream: t.clickstream.clone(),
            cart: t.cart.clone(),
            customers: t.customers.clone(),
            stock: t.stock.clone(),
            by_customer: layout_internal[0].0.clone(),
            by_sku: layout_internal[1].0.clone(),
            customer_changelog: layout_internal[2].0.clone(),
            product_changelog: layout_internal[3].0.clone(),
            instances: layout_internal[4].0.clone(),
            dead_letter: t.dead_letter.clone(),
            state_record_bytes: config.rules.limits.max_state_bytes as i64 + RECORD_OVERHEAD_BYTES,
            specs,
        }
    }

    pub fn specs(&self) -> &[TopicSpec] {
        &self.specs
    }

    /// The names of the topics that must be compacted.
    pub fn compacted_names(&self) -> impl Iterator<Item = &str> {
        self.specs
            .iter()
            .filter(|s| s.compacted)
            .map(|s| s.name.as_str())
    }

    /// Partition counts every topic must have, given those that exist.
    /// Customer-side topics follow clickstream, product-side ones follow stock.
    fn required_partitions(
        &self,
        spec: &TopicSpec,
        existing: &BTreeMap<String, i32>,
        default: i32,
    ) -> Option<i32> {
        let customer = existing.get(&self.clickstream).copied().unwrap_or(default);
        let product = existing.get(&self.stock).copied().unwrap_or(default);
        match spec.role {
            Role::CustomerInput => Some(customer),
            Role::ProductInput => Some(product),
            Role::Internal if spec.name == self.by_sku || spec.name == self.product_changelog => {
                Some(product)
            }
            Role::Internal if spec.name == self.instances => Some(1),
            Role::Internal => Some(customer),
            Role::Output => None,
        }
    }

    /// Compares the cluster's topics with what the layout needs.
    pub fn check(&self, cluster: &ClusterTopics, default_partitions: i32) -> Vec<TopicProblem> {
        let mut problems = Vec::new();
        for spec in &self.specs {
            let Some(info) = cluster.topics.get(&spec.name) else {
                problems.push(TopicProblem::Missing(spec.clone()));
                continue;
            };
            if let Some(required) =
                self.required_partitions(spec, &cluster.partition_counts(), default_partitions)
            {
                if info.partitions != required {
                    problems.push(TopicProblem::Partitions {
                        spec: spec.clone(),
                        actual: info.partitions,
                        required,
                        reference: if spec.name == self.instances {
                            None
                        } else if matches!(spec.role, Role::ProductInput)
                            || spec.name == self.by_sku
                            || spec.name == self.product_changelog
                        {
                            Some(self.stock.clone())
                        } else {
                            Some(self.clickstream.clone())
                        },
                    });
                }
            }
            let changelog =
                spec.name == self.customer_changelog || spec.name == self.product_changelog;
            if let Some(limit) = info.max_message_bytes.filter(|_| changelog) {
                if limit < self.state_record_bytes {
                    problems.push(TopicProblem::RecordLimit {
                        spec: spec.clone(),
                        max_message_bytes: limit,
                        needed: self.state_record_bytes,
                    });
                }
            }
            if spec.compacted {
                if let Some(policy) = &info.cleanup_policy {
                    if !policy.split(',').any(|p| p.trim() == "compact") {
                        problems.push(TopicProblem::NotCompacted {
                            spec: spec.clone(),
                            policy: policy.clone(),
                        });
                    }
                }
            }
        }
        problems
    }

    /// The topics to create for `missing`, with their partition counts.
    pub fn to_create<'a>(
        &self,
        missing: impl Iterator<Item = &'a TopicSpec>,
        cluster: &ClusterTopics,
        default_partitions: i32,
    ) -> Vec<(TopicSpec, i32)> {
        let counts = cluster.partition_counts();
        missing
            .map(|spec| {
                let partitions = self
                    .required_partitions(spec, &counts, default_partitions)
                    .unwrap_or(default_partitions);
                (spec.clone(), partitions)
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicProblem {
    Missing(TopicSpec),
    Partitions {
        spec: TopicSpec,
        actual: i32,
        required: i32,
        /// The topic it must be partitioned like; `None`: its count is fixed.
        reference: Option<String>,
    },
    NotCompacted {
        spec: TopicSpec,
        policy: String,
    },
    /// A changelog refuses records as large as a state may be.
    RecordLimit {
        spec: TopicSpec,
        max_message_bytes: i64,
        needed: i64,
    },
}

impl fmt::Display for TopicProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicProblem::Missing(spec) => write!(
                f,
                "topic `{}` (`{}`) does not exist; create it with `personalizer topics create`",
                spec.name, spec.setting
            ),
            TopicProblem::Partitions {
                spec,
                actual,
                required,
                reference: Some(reference),
            } => write!(
                f,
                "topic `{}` (`{}`) has {actual} partitions but must have {required}, like \
                 `{reference}`: its partitions are read together, partition by partition",
                spec.name, spec.setting
            ),
            TopicProblem::Partitions {
                spec,
                actual,
                required,
                reference: None,
            } => write!(
                f,
                "topic `{}` (`{}`) has {actual} partitions but must have {required}: every \
                 instance reads it in full, in order; delete it and run `personalizer topics \
                 create`",
                spec.name, spec.setting
            ),
            TopicProblem::NotCompacted { spec, policy } => write!(
                f,
                "topic `{}` (`{}`) has cleanup.policy={policy} but must be compacted",
                spec.name, spec.setting
            ),
            TopicProblem::RecordLimit {
                spec,
                max_message_bytes,
                needed,
            } => write!(
                f,
                "topic `{}` (`{}`) takes records of at most {max_message_bytes} bytes \
                 (max.message.bytes), but a state record may take {needed} \
                 (`rules.limits.max_state_bytes` and its key): raise the topic's \
                 max.message.bytes or lower the setting",
                spec.name, spec.setting
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub partitions: i32,
    /// Known when it was asked for (compacted topics only).
    pub cleanup_policy: Option<String>,
    /// Known when it was asked for (compacted topics only).
    pub max_message_bytes: Option<i64>,
    /// Known when it was asked for (compacted topics only).
    pub segment_bytes: Option<u64>,
}

/// The topics of a cluster that the layout names.
#[derive(Debug, Clone, Default)]
pub struct ClusterTopics {
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterTopics {
    fn partition_counts(&self) -> BTreeMap<String, i32> {
        self.topics
            .iter()
            .map(|(name, info)| (name.clone(), info.partitions))
            .collect()
    }

    /// Reads partition counts (and, for compacted topics, cleanup.policy) from the cluster.
    pub fn fetch(config: &Config, layout: &TopicLayout) -> Result<ClusterTopics, ClientError> {
        let consumer: BaseConsumer = clients::plain_consumer(config)?;
        let metadata = consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|e| ClientError::broker(config, "read the cluster's topics", e))?;
        let mut topics = BTreeMap::new();
        for topic in metadata.topics() {
            if topic.error().is_none() && layout.specs.iter().any(|s| s.name == topic.name()) {
                topics.insert(
                    topic.name().to_string(),
                    TopicInfo {
                        partitions: topic.partitions().len() as i32,
                        cleanup_policy: None,
                        max_message_bytes: None,
                        segment_bytes: None,
                    },
                );
            }
        }
        let compacted: Vec<&str> = layout
            .compacted_names()
            .filter(|name| topics.contains_key(*name))
            .collect();
        if !compacted.is_empty() {
            let admin: AdminClient<DefaultClientContext> = clients::admin(config)?;
            let resources: Vec<ResourceSpecifier> = compacted
                .iter()
                .map(|n| ResourceSpecifier::Topic(n))
                .collect();
            // Brokers may refuse DescribeConfigs (ACLs, the in-process mock cluster):
            // then compaction is not checked, and the log says so.
            let results = match clients::block_on(admin.describe_configs(
                &resources,
                &AdminOptions::new().request_timeout(Some(DESCRIBE_TIMEOUT)),
            )) {
                Ok(results) => results,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read topic configurations; compaction of changelogs, profiles and products is not checked");
                    Vec::new()
                }
            };
            for (name, result) in compacted.iter().zip(results) {
                if let Ok(resource) = result {
                    if let Some(info) = topics.get_mut(*name) {
                        if let Some(entry) = resource.get("cleanup.policy") {
                            info.cleanup_policy = entry.value.clone();
                        }
                        if let Some(entry) = resource.get("segment.bytes") {
                            info.segment_bytes =
                                entry.value.as_deref().and_then(|v| v.parse().ok());
                        }
                        if let Some(entry) = resource.get("max.message.bytes") {
                            info.max_message_bytes =
                                entry.value.as_deref().and_then(|v| v.parse().ok());
                        }
                    }
                }
            }
        }
        Ok(ClusterTopics { topics })
    }
}

/// Creates the given topics; compacted ones with `cleanup.policy=compact`.
/// A topic that another process created meanwhile counts as created.
pub fn create(config: &Config, topics: &[(TopicSpec, i32)]) -> Result<(), ClientError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = clients::admin(config)?;
    let segment_bytes = config.kafka.compacted_segment_bytes.to_string();
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|(spec, partitions)| {
            let topic = NewTopic::new(
                &spec.name,
                *partitions,
                TopicReplication::Fixed(config.kafka.replication_factor),
            );
            if spec.compacted {
                topic
                    .set("cleanup.policy", "compact")
                    .set("segment.bytes", &segment_bytes)
            } else {
                topic
            }
        })
        .collect();
    let results = clients::block_on(admin.create_topics(
        &new_topics,
        &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)),
    ))
    .map_err(|e| ClientError::broker(config, "create topics", e))?;
    for result in results {
        if let Err((name, code)) = result {
            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                return Err(ClientError::Topic {
                    topic: name,
                    problem: format!("cannot be created: {code}"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "topics_tests.rs"]
mod tests;
