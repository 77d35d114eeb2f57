//! `[kafka.formats]` and `[schema_registry]`: how the input topics are encoded, and the
//! Confluent-compatible Schema Registry that Avro records name their writer schema in.

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

/// The format of each input topic (the outputs are JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct InputFormats {
    pub clickstream: Format,
    pub cart: Format,
    pub stock: Format,
    pub customers: Format,
}

impl InputFormats {
    pub fn of(&self, topic: InputTopic) -> Format {
        match topic {
            InputTopic::Clickstream => self.clickstream,
            InputTopic::Cart => self.cart,
            InputTopic::Stock => self.stock,
            InputTopic::Customers => self.customers,
        }
    }

    pub fn any_avro(&self) -> bool {
        [self.clickstream, self.cart, self.stock, self.customers].contains(&Format::Avro)
    }
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
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        SchemaRegistryConfig {
            url: None,
            username: None,
            password: None,
            timeout: Dur(Duration::from_secs(5)),
        }
    }
}

impl SchemaRegistryConfig {
    pub fn validate(&self, formats: &InputFormats) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if !url.starts_with("http://") {
                return Err(invalid(
                    "schema_registry.url",
                    format!(
                        "`{url}` must be an http:// URL (this build has no TLS client for the \
                         registry)"
                    ),
                ));
            }
        }
        if formats.any_avro() && self.url.is_none() {
            let topic = ["clickstream", "cart", "stock", "customers"]
                .into_iter()
                .zip([
                    formats.clickstream,
                    formats.cart,
                    formats.stock,
                    formats.customers,
                ])
                .find(|(_, f)| *f == Format::Avro)
                .map(|(t, _)| t)
                .unwrap_or_default();
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
