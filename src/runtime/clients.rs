//! Kafka clients built from the configuration: the settings Personalizer owns, then the
//! pass-through librdkafka properties of `kafka.properties`.

use crate::config::Config;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::future::Future;

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
    consumer_with(&plain_config(config), ReadToEnd { reading })
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
