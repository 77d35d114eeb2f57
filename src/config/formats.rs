//! `[kafka.formats]` and `[schema_registry]`: how the input and output topics are
//! encoded, and the Confluent-compatible Schema Registry that Avro records name their
//! writer schema in.

use super::{invalid, ConfigError, Dur};
use crate::event::InputTopic;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a topic's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON object per record, as CONTRACT §1 writes it.
    #[default]
    Json,
    /// Confluent wire format: magic byte 0, the writer schema's registry id, Avro binary.
    Avro,
}

/// The format of each input topic, and of every output topic (decisions, profiles and
/// product records; the dead-letter topic keeps the bytes it was given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TopicFormats {
    pub clickstream: Format,
    pub cart: Format,
    pub stock: Format,
    pub customers: Format,
    pub outputs: Format,
}

impl TopicFormats {
    pub fn of(&self, topic: InputTopic) -> Format {
        match topic {
            InputTopic::Clickstream => self.clickstream,
            InputTopic::Cart => self.cart,
            InputTopic::Stock => self.stock,
            InputTopic::Customers => self.customers,
        }
    }

    pub fn any_input_avro(&self) -> bool {
        [self.clickstream, self.cart, self.stock, self.customers].contains(&Format::Avro)
    }

    /// The first topic setting that is Avro, e.g. `kafka.formats.cart`.
    fn first_avro(&self) -> Option<&'static str> {
        [
            ("clickstream", self.clickstream),
            ("cart", self.cart),
            ("stock", self.stock),
            ("customers", self.customers),
            ("outputs", self.outputs),
        ]
        .into_iter()
        .find(|(_, f)| *f == Format::Avro)
        .map(|(topic, _)| topic)
    }
}

/// How the subject a schema is registered under is named, as Confluent's serializers'
/// `subject.name.strategy` (only the output schemas are registered; inputs are read by
/// id, whatever their subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectStrategy {
    /// `<topic>-value` (TopicNameStrategy, Confluent's default).
    #[default]
    TopicName,
    /// The record's full name, e.g. `com.personalizer.decisions.Profile`.
    RecordName,
    /// `<topic>-<full name>`.
    TopicRecordName,
}

impl SubjectStrategy {
    pub fn subject(self, topic: &str, record_full_name: &str) -> String {
        match self {
            SubjectStrategy::TopicName => format!("{topic}-value"),
            SubjectStrategy::RecordName => record_full_name.to_string(),
            SubjectStrategy::TopicRecordName => format!("{topic}-{record_full_name}"),
        }
    }
}

/// What start-up does with the output schemas when the outputs are Avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputSchemas {
    /// Registers each under its subject (a no-op when it is there already); the registry
    /// refuses one its compatibility rule forbids, and start-up stops naming it.
    #[default]
    Register,
    /// Only looks each up: it must be registered already (by a schema pipeline).
    Check,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g. `http://registry:8081` (Apicurio:
    /// `http://registry:8080/apis/ccompat/v7`). Needed when any topic is Avro.
    pub url: Option<String>,
    /// Basic authentication; set the password through the environment
    /// (`PERSONALIZER_SCHEMA_REGISTRY__PASSWORD`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long one request to the registry may take.
    pub timeout: Dur,
    /// PEM file of the certificate authorities to trust for an `https://` registry
    /// (a private CA); unset: the public web roots bundled in the binary.
    pub ca_file: Option<std::path::PathBuf>,
    pub subject_strategy: SubjectStrategy,
    pub output_schemas: OutputSchemas,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            url: None,
            username: None,
            password: None,
            timeout: Dur(Duration::from_secs(5)),
            ca_file: None,
            subject_strategy: SubjectStrategy::default(),
            output_schemas: OutputSchemas::default(),
        }
    }
}

impl SchemaRegistryConfig {
    pub fn validate(&self, formats: &TopicFormats) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(invalid(
                    "schema_registry.url",
                    format!("`{url}` must be an http:// or https:// URL"),
                ));
            }
        }
        if let Some(path) = &self.ca_file {
            if !path.is_file() {
                return Err(invalid(
                    "schema_registry.ca_file",
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        if let (Some(topic), None) = (formats.first_avro(), &self.url) {
            return Err(invalid(
                "schema_registry.url",
                format!(
                    "is required: `kafka.formats.{topic}` is avro, and Avro records name their \
                     writer schema by its registry id"
                ),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(invalid(
                "schema_registry.username",
                "is required when a password is set",
            ));
        }
        if self.timeout.0 < Duration::from_millis(100) {
            return Err(invalid("schema_registry.timeout", "must be at least 100ms"));
        }
        Ok(())
    }
}
