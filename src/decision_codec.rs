//! Decisions on the output topics, as JSON or as Avro in the Confluent wire format
//! (`kafka.formats.outputs`), and reading them back: the product table and the activity
//! feed read the output topics, whichever format an instance wrote them in.

use crate::avro::{AvroReader, Catalog, DatumError, SchemaLookup, MAGIC_BYTE};
use crate::decision::{Decision, DecisionType};
use std::collections::HashMap;
use std::sync::Arc;

/// How decisions are written.
pub enum DecisionEncoder {
    Json,
    /// Each decision type with the registry id of its schema.
    Avro {
        catalog: Catalog,
        ids: HashMap<DecisionType, u32>,
    },
}

impl DecisionEncoder {
    /// The record value of `decision` (not a tombstone: that has none).
    pub fn encode(&self, decision: &Decision) -> Result<Vec<u8>, String> {
        match self {
            DecisionEncoder::Json => Ok(decision.to_json_bytes()),
            DecisionEncoder::Avro { catalog, ids } => {
                let kind = decision.decision_type();
                let id = ids
                    .get(&kind)
                    .ok_or_else(|| format!("no registry id for the `{}` schema", kind.name()))?;
                let payload = crate::avro::encode_decision(catalog, decision)?;
                Ok(crate::avro::frame(*id, &payload))
            }
        }
    }
}

/// Why an output record did not read back as a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionDecodeError {
    #[error("{0}")]
    Bad(String),
    /// Its writer schema could not be fetched now: try again later.
    #[error("{0}")]
    RegistryUnavailable(String),
}

/// Reads output records in either format: JSON starts with `{`, Avro with the magic byte.
#[derive(Clone)]
pub struct DecisionDecoder {
    avro: Option<Arc<AvroReader<Arc<dyn SchemaLookup>>>>,
}

impl DecisionDecoder {
    /// JSON only: an Avro record is an error.
    pub fn json() -> DecisionDecoder {
        DecisionDecoder { avro: None }
    }

    pub fn with_lookup(catalog: Catalog, lookup: Arc<dyn SchemaLookup>) -> DecisionDecoder {
        DecisionDecoder {
            avro: Some(Arc::new(AvroReader::new(catalog, lookup))),
        }
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Decision, DecisionDecodeError> {
        match (bytes.first(), &self.avro) {
            (Some(&MAGIC_BYTE), Some(reader)) => decode_avro(reader, bytes),
            (Some(&MAGIC_BYTE), None) => Err(DecisionDecodeError::Bad(
                "an Avro record, and no schema registry is configured to read it".into(),
            )),
            _ => crate::decision_json::from_json(bytes)
                .map_err(|e| DecisionDecodeError::Bad(format!("not a decision: {e}"))),
        }
    }
}

fn decode_avro(
    reader: &AvroReader<Arc<dyn SchemaLookup>>,
    bytes: &[u8],
) -> Result<Decision, DecisionDecodeError> {
    reader.read(bytes).map_err(|e| match e {
        DatumError::Bad(problem) => DecisionDecodeError::Bad(problem),
        DatumError::Invalid { field, problem } => {
            DecisionDecodeError::Bad(format!("not a decision: `{field}`: {problem}"))
        }
        DatumError::Unavailable(problem) => DecisionDecodeError::RegistryUnavailable(problem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::FixedSchemas;
    use crate::decision::DecisionBody;
    use crate::samples::one_of_each_decision_type as sample_decisions;

    fn avro_pair() -> (DecisionEncoder, DecisionDecoder) {
        let catalog = Catalog::load();
        let mut fixed = FixedSchemas::default();
        let mut ids = HashMap::new();
        for (n, kind) in DecisionType::ALL.into_iter().enumerate() {
            let id = 100 + n as u32;
            fixed.insert(id, catalog.decision(kind.name()).unwrap().schema.clone());
            ids.insert(kind, id);
        }
        let lookup: Arc<dyn SchemaLookup> = Arc::new(fixed);
        (
            DecisionEncoder::Avro {
                catalog: catalog.clone(),
                ids,
            },
            DecisionDecoder::with_lookup(catalog, lookup),
        )
    }

    #[test]
    fn every_decision_type_reads_back_equal_from_either_format() {
        let (avro, decoder) = avro_pair();
        let samples = sample_decisions();
        let kinds: std::collections::HashSet<_> =
            samples.iter().map(Decision::decision_type).collect();
        assert_eq!(
            kinds.len(),
            DecisionType::ALL.len(),
            "a sample of each type"
        );
        for decision in samples.iter().filter(|d| !d.is_tombstone()) {
            let framed = avro.encode(decision).unwrap();
            assert_eq!(framed[0], MAGIC_BYTE);
            assert_eq!(&decoder.decode(&framed).unwrap(), decision);
            let json = DecisionEncoder::Json.encode(decision).unwrap();
            assert_eq!(&decoder.decode(&json).unwrap(), decision);
        }
    }

    #[test]
    fn bad_output_records_are_errors_that_say_why() {
        let (avro, decoder) = avro_pair();
        let product = sample_decisions()
            .into_iter()
            .find(|d| matches!(d.body, DecisionBody::Product(_)))
            .unwrap();
        let framed = avro.encode(&product).unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not a decision"),
            (vec![0, 0, 0], "shorter than the 5-byte"),
            (crate::avro::frame(9, &framed[5..]), "schema id 9"),
            (framed[..framed.len() - 3].to_vec(), "does not match schema"),
            ([framed.as_slice(), b"xx"].concat(), "left over"),
        ];
        for (bytes, expected) in cases {
            match decoder.decode(&bytes) {
                Err(DecisionDecodeError::Bad(problem)) => {
                    assert!(problem.contains(expected), "{problem} lacks {expected}")
                }
                other => panic!("{bytes:?} gave {other:?}"),
            }
        }
        let json_only = DecisionDecoder::json();
        assert!(matches!(
            json_only.decode(&framed),
            Err(DecisionDecodeError::Bad(p)) if p.contains("no schema registry")
        ));
    }

    #[test]
    fn a_type_without_an_id_is_an_encoding_error() {
        let encoder = DecisionEncoder::Avro {
            catalog: Catalog::load(),
            ids: HashMap::new(),
        };
        let decision = sample_decisions().remove(0);
        assert!(encoder
            .encode(&decision)
            .unwrap_err()
            .contains("no registry id"));
    }
}
