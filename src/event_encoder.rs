//! Events as a shop's producers write them to the input topics: JSON, or Avro in the
//! Confluent wire format with the project's schema of the event's type, registered the
//! first time a type goes to a topic (as Confluent's serializers do with
//! `auto.register.schemas`). Used by `generate --to-kafka` and the benchmarks.

use crate::avro::{encode_event, frame, Catalog};
use crate::config::{Config, Format, OutputSchemas, SubjectStrategy, TopicFormats};
use crate::event::{Event, InputTopic};
use crate::registry::{RegistryClient, RegistryError};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum EventEncodeError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("a `{type_name}` event does not fit its Avro schema: {problem}")]
    Schema { type_name: String, problem: String },
}

pub struct EventEncoder {
    formats: TopicFormats,
    avro: Option<AvroTopics>,
}

struct AvroTopics {
    catalog: Catalog,
    client: RegistryClient,
    strategy: SubjectStrategy,
    /// The schema id of each event type on each topic, once registered.
    ids: HashMap<(String, &'static str), u32>,
}

impl EventEncoder {
    /// The formats of `config`'s input topics; with an Avro one, the registry must answer.
    pub fn new(config: &Config) -> Result<EventEncoder, RegistryError> {
        let formats = config.kafka.formats.clone();
        let avro = if formats.any_input_avro() {
            let client = RegistryClient::new(&config.schema_registry)?;
            client.check()?;
            Some(AvroTopics {
                catalog: Catalog::load(),
                client,
                strategy: config.schema_registry.subject_strategy,
                ids: HashMap::new(),
            })
        } else {
            None
        };
        Ok(EventEncoder { formats, avro })
    }

    /// The record value of `event` on `topic` (the name of its input topic).
    pub fn encode(&mut self, topic: &str, event: &Event) -> Result<Vec<u8>, EventEncodeError> {
        let input = event.body.topic();
        match (self.formats.of(input), &mut self.avro) {
            (Format::Avro, Some(avro)) => avro.encode(input, topic, event),
            _ => Ok(event.to_json_line().into_bytes()),
        }
    }
}

impl AvroTopics {
    fn encode(
        &mut self,
        input: InputTopic,
        topic: &str,
        event: &Event,
    ) -> Result<Vec<u8>, EventEncodeError> {
        let type_name = event.body.type_name();
        let schema = self
            .catalog
            .event(type_name)
            .expect("every event type has a schema");
        let id = match self.ids.get(&(topic.to_string(), schema.type_name)) {
            Some(id) => *id,
            None => {
                let subject = self.strategy.subject(topic, &schema.full_name());
                let setting = format!("kafka.formats.{}", input.name());
                let id = self.client.prepare(
                    &setting,
                    type_name,
                    &subject,
                    schema,
                    OutputSchemas::Register,
                )?;
                self.ids.insert((topic.to_string(), schema.type_name), id);
                id
            }
        };
        let payload =
            encode_event(&self.catalog, event).map_err(|problem| EventEncodeError::Schema {
                type_name: type_name.to_string(),
                problem,
            })?;
        Ok(frame(id, &payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::one_of_each_event_type;

    #[test]
    fn json_topics_carry_the_contract_json() {
        let mut encoder = EventEncoder::new(&Config::default()).unwrap();
        for event in one_of_each_event_type() {
            let bytes = encoder.encode("any", &event).unwrap();
            assert_eq!(bytes, event.to_json_line().into_bytes());
        }
    }

    #[test]
    fn an_avro_topic_needs_a_registry_that_answers() {
        let mut config = Config::default();
        config.kafka.formats.cart = Format::Avro;
        // Nothing listens on port 1.
        config.schema_registry.url = Some("http://127.0.0.1:1".into());
        let error = EventEncoder::new(&config).err().expect("no registry there");
        assert!(error.to_string().contains("schema_registry.url"), "{error}");
    }
}
