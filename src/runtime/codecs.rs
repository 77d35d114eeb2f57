//! The formats of the topics, built once at start-up around one Schema Registry client
//! (one cache of writer schemas for the whole process): how inputs are decoded, how
//! decisions are encoded (their schemas registered or checked first), and how output
//! records written by any instance are read back.

use super::input::InputDecoders;
use crate::avro::{Catalog, SchemaLookup};
use crate::config::{Config, Format};
use crate::decision::DecisionType;
use crate::decision_codec::{DecisionDecoder, DecisionEncoder};
use crate::registry::{RegistryClient, RegistryError};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Codecs {
    pub inputs: Arc<InputDecoders>,
    pub outputs: Arc<DecisionEncoder>,
    pub reader: DecisionDecoder,
}

impl Codecs {
    /// JSON everywhere, no registry.
    pub fn json() -> Codecs {
        Codecs {
            inputs: Arc::new(InputDecoders::json()),
            outputs: Arc::new(DecisionEncoder::Json),
            reader: DecisionDecoder::json(),
        }
    }

    /// What `config` asks for. With an Avro topic the registry must answer, and with
    /// Avro outputs every decision schema is registered (or found) under its subject.
    ///
    /// With a registry configured, output records are read back in either format even
    /// when this instance writes JSON: while a fleet moves its outputs to Avro one
    /// instance at a time, every product table stays whole.
    pub fn new(config: &Config) -> Result<Codecs, RegistryError> {
        let formats = &config.kafka.formats;
        if config.schema_registry.url.is_none() {
            // Validation refuses an Avro topic without a registry.
            return Ok(Codecs::json());
        }
        let client = Arc::new(RegistryClient::new(&config.schema_registry)?);
        if formats.any_input_avro() || formats.outputs == Format::Avro {
            client.check()?;
        }
        let catalog = Catalog::load();
        let outputs = match formats.outputs {
            Format::Json => DecisionEncoder::Json,
            Format::Avro => {
                let registry = &config.schema_registry;
                let mut ids = HashMap::new();
                for kind in DecisionType::ALL {
                    let ours = catalog
                        .decision(kind.name())
                        .expect("every decision type has a schema");
                    let topic = config.kafka.topics.for_decision(kind);
                    let subject = registry.subject_strategy.subject(topic, &ours.full_name());
                    let id = client.prepare(
                        "kafka.formats.outputs",
                        kind.name(),
                        &subject,
                        ours,
                        registry.output_schemas,
                    )?;
                    tracing::info!(
                        decision = kind.name(),
                        subject,
                        schema_id = id,
                        "output schema ready"
                    );
                    ids.insert(kind, id);
                }
                DecisionEncoder::Avro {
                    catalog: catalog.clone(),
                    ids,
                }
            }
        };
        let lookup: Arc<dyn SchemaLookup> = client;
        Ok(Codecs {
            inputs: Arc::new(InputDecoders::with_lookup(
                formats.clone(),
                Arc::clone(&lookup),
            )),
            outputs: Arc::new(outputs),
            reader: DecisionDecoder::with_lookup(catalog, lookup),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::frame;
    use crate::decision_codec::DecisionDecodeError;

    #[test]
    fn with_a_registry_configured_avro_outputs_read_back_even_when_this_instance_writes_json() {
        let mut config = Config::default();
        // Nothing listens on port 1: JSON formats need no answer at start-up.
        config.schema_registry.url = Some("http://127.0.0.1:1".into());
        let codecs = Codecs::new(&config).unwrap();
        assert!(matches!(*codecs.outputs, DecisionEncoder::Json));
        // Another instance's Avro record: the registry is asked (here it cannot answer),
        // rather than the record being refused as unreadable.
        assert!(matches!(
            codecs.reader.decode(&frame(7, b"\x02")),
            Err(DecisionDecodeError::RegistryUnavailable(_))
        ));
        // Without a registry, such a record is refused, saying why.
        let json_only = Codecs::new(&Config::default()).unwrap();
        assert!(matches!(
            json_only.reader.decode(&frame(7, b"\x02")),
            Err(DecisionDecodeError::Bad(p)) if p.contains("no schema registry")
        ));
    }

    #[test]
    fn an_avro_topic_needs_the_registry_to_answer_at_start_up() {
        let mut config = Config::default();
        config.kafka.formats.cart = Format::Avro;
        config.schema_registry.url = Some("http://127.0.0.1:1".into());
        let error = Codecs::new(&config)
            .err()
            .expect("nothing answers on port 1");
        assert!(error.to_string().contains("schema_registry.url"), "{error}");
    }
}
