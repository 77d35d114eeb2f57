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
    pub fn new(config: &Config) -> Result<Codecs, RegistryError> {
        let formats = &config.kafka.formats;
        if !formats.any_input_avro() && formats.outputs == Format::Json {
            return Ok(Codecs::json());
        }
        let client = Arc::new(RegistryClient::new(&config.schema_registry)?);
        client.check()?;
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
