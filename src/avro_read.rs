//! Reading Confluent-framed Avro records: a read plan per writer schema id (our schema
//! unchanged, an evolved version of it, or a record none of ours is named as), the
//! direct reader for the first, schema resolution for the others.

use super::{
    avro_to_json, unframe, AvroDecodeError, Catalog, LookupError, NamedSchema, SchemaLookup,
};
use crate::avro_serde::AvroSerdeError;
use crate::event::{DecodeError, Decoded, WireEvent};
use apache_avro::schema::Schema;
use std::collections::HashMap;
use std::sync::Arc;

/// How records written with one schema id are read: the writer schema, and ours to
/// resolve it against when they differ. Worked out once per id: schema resolution is
/// costly, and most producers write with our schema unchanged, which needs none.
enum ReadPlan {
    /// Written with our schema, unchanged.
    Ours(Arc<NamedSchema>),
    /// Written with another version of one of ours: resolved against it.
    Evolved { writer: Arc<Schema>, ours: Schema },
    /// A record none of ours is named as: read as written.
    Foreign(Arc<Schema>),
}

/// Why a framed record did not read.
pub enum DatumError {
    /// The record is bad (its id, its framing or its bytes).
    Bad(String),
    /// The record is well formed, and a value in it is refused.
    Invalid { field: String, problem: String },
    /// Its writer schema could not be fetched now.
    Unavailable(String),
}

/// Reads Confluent-framed records into Avro values, resolving each writer schema
/// against the project's schema of the same record name.
pub struct AvroReader<L: SchemaLookup> {
    catalog: Catalog,
    lookup: L,
    plans: std::sync::RwLock<HashMap<u32, Arc<ReadPlan>>>,
}

impl<L: SchemaLookup> AvroReader<L> {
    pub fn new(catalog: Catalog, lookup: L) -> Self {
        AvroReader {
            catalog,
            lookup,
            plans: Default::default(),
        }
    }

    fn plan(&self, id: u32) -> Result<Arc<ReadPlan>, DatumError> {
        if let Some(plan) = self
            .plans
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(plan.clone());
        }
        let writer = self.lookup.schema_by_id(id).map_err(|e| match e {
            LookupError::Unknown(problem) => DatumError::Bad(problem),
            LookupError::Unavailable(problem) => DatumError::Unavailable(problem),
        })?;
        let plan = Arc::new(match self.catalog.reader_for(&writer) {
            Some(ours) if ours.schema.canonical_form() == writer.canonical_form() => {
                ReadPlan::Ours(Arc::new(ours.clone()))
            }
            Some(ours) => ReadPlan::Evolved {
                writer,
                ours: ours.schema.clone(),
            },
            None => ReadPlan::Foreign(writer),
        });
        self.plans
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, plan.clone());
        Ok(plan)
    }

    /// The record as a `T`: straight from the bytes when it was written with our schema,
    /// else through an Avro value (resolved against ours) and its JSON form.
    pub fn read<T: serde::de::DeserializeOwned>(&self, record: &[u8]) -> Result<T, DatumError> {
        let (id, payload) = unframe(record).map_err(|e| DatumError::Bad(e.to_string()))?;
        let mismatch =
            |e: String| DatumError::Bad(format!("payload does not match schema {id}: {e}"));
        let (value, rest) = match &*self.plan(id)? {
            ReadPlan::Ours(ours) => {
                match crate::avro_serde::from_datum(&ours.schema, &ours.names, payload) {
                    Ok(read) => read,
                    Err((field, AvroSerdeError::Invalid(problem))) => {
                        return Err(DatumError::Invalid { field, problem })
                    }
                    Err((field, AvroSerdeError::Bytes(problem))) => {
                        return Err(mismatch(format!("{problem} (at `{field}`)")))
                    }
                }
            }
            ReadPlan::Evolved { writer, ours } => via_value(writer, Some(ours), payload, mismatch)?,
            ReadPlan::Foreign(writer) => via_value(writer, None, payload, mismatch)?,
        };
        if !rest.is_empty() {
            return Err(DatumError::Bad(format!(
                "{} bytes left over after the record (schema {id})",
                rest.len()
            )));
        }
        Ok(value)
    }
}

/// Reads through `apache_avro`'s value tree and the JSON form: for writer schemas that
/// need resolving.
fn via_value<'a, T: serde::de::DeserializeOwned>(
    writer: &Schema,
    reader: Option<&Schema>,
    payload: &'a [u8],
    mismatch: impl Fn(String) -> DatumError,
) -> Result<(T, &'a [u8]), DatumError> {
    let mut rest = payload;
    let value = apache_avro::from_avro_datum(writer, &mut rest, reader)
        .map_err(|e| mismatch(e.to_string()))?;
    let json = avro_to_json(&value).map_err(DatumError::Bad)?;
    let read = serde_path_to_error::deserialize(json).map_err(|e| DatumError::Invalid {
        field: e.path().to_string(),
        problem: e.into_inner().to_string(),
    })?;
    Ok((read, rest))
}

/// Decodes Confluent-framed Avro events, resolving each writer schema against ours.
pub struct AvroEventDecoder<L: SchemaLookup> {
    reader: AvroReader<L>,
}

impl<L: SchemaLookup> AvroEventDecoder<L> {
    pub fn new(catalog: Catalog, lookup: L) -> Self {
        AvroEventDecoder {
            reader: AvroReader::new(catalog, lookup),
        }
    }

    pub fn decode(&self, record: &[u8]) -> Result<Decoded, AvroDecodeError> {
        let wire: WireEvent = self.reader.read(record).map_err(|e| match e {
            DatumError::Bad(problem) => AvroDecodeError::Bad(DecodeError::Avro(problem)),
            DatumError::Invalid { field, problem } => {
                AvroDecodeError::Bad(DecodeError::Invalid { field, problem })
            }
            DatumError::Unavailable(problem) => AvroDecodeError::RegistryUnavailable(problem),
        })?;
        Ok(wire.validate()?)
    }
}
