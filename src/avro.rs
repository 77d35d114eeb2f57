//! The Avro form of events and decisions: the schemas in `schemas/` (compiled in), the
//! Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro binary), and
//! a schema-guided conversion between Avro values and the JSON form.
//!
//! Converting through the JSON form means one validation path for both formats, and it
//! proves the two forms carry the same fields: a JSON field the schema lacks, or a
//! required schema field the JSON lacks, is an error.

#[path = "avro_read.rs"]
mod read;
pub use read::*;

use crate::decision::Decision;
use crate::event::{DecodeError, Event};
use crate::time::{format_rfc3339, parse_rfc3339};
use apache_avro::schema::{Name, Schema};
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;

/// The schema files, by the event or decision type they describe.
pub const EVENT_SCHEMA_FILES: [(&str, &str); 17] = [
    (
        "page_viewed",
        include_str!("../schemas/events/page_viewed.avsc"),
    ),
    (
        "product_viewed",
        include_str!("../schemas/events/product_viewed.avsc"),
    ),
    (
        "category_viewed",
        include_str!("../schemas/events/category_viewed.avsc"),
    ),
    (
        "products_searched",
        include_str!("../schemas/events/products_searched.avsc"),
    ),
    (
        "search_result_clicked",
        include_str!("../schemas/events/search_result_clicked.avsc"),
    ),
    (
        "wishlist_added",
        include_str!("../schemas/events/wishlist_added.avsc"),
    ),
    (
        "back_in_stock_requested",
        include_str!("../schemas/events/back_in_stock_requested.avsc"),
    ),
    (
        "signed_in",
        include_str!("../schemas/events/signed_in.avsc"),
    ),
    (
        "site_selected",
        include_str!("../schemas/events/site_selected.avsc"),
    ),
    (
        "cart_item_added",
        include_str!("../schemas/events/cart_item_added.avsc"),
    ),
    (
        "cart_item_removed",
        include_str!("../schemas/events/cart_item_removed.avsc"),
    ),
    (
        "cart_cleared",
        include_str!("../schemas/events/cart_cleared.avsc"),
    ),
    (
        "checkout_started",
        include_str!("../schemas/events/checkout_started.avsc"),
    ),
    (
        "order_completed",
        include_str!("../schemas/events/order_completed.avsc"),
    ),
    (
        "stock_changed",
        include_str!("../schemas/events/stock_changed.avsc"),
    ),
    (
        "consent_changed",
        include_str!("../schemas/events/consent_changed.avsc"),
    ),
    (
        "customer_erased",
        include_str!("../schemas/events/customer_erased.avsc"),
    ),
];

pub const DECISION_SCHEMA_FILES: [(&str, &str); 6] = [
    (
        "abandoned_cart",
        include_str!("../schemas/decisions/abandoned_cart.avsc"),
    ),
    (
        "back_in_stock",
        include_str!("../schemas/decisions/back_in_stock.avsc"),
    ),
    (
        "discount_offer",
        include_str!("../schemas/decisions/discount_offer.avsc"),
    ),
    (
        "segment_changed",
        include_str!("../schemas/decisions/segment_changed.avsc"),
    ),
    ("profile", include_str!("../schemas/decisions/profile.avsc")),
    ("product", include_str!("../schemas/decisions/product.avsc")),
];

/// A parsed schema with the named types it defines, for resolving references.
#[derive(Debug, Clone)]
pub struct NamedSchema {
    pub type_name: &'static str,
    pub schema: Schema,
    /// The schema as written in `schemas/`, with its docs and logical types (the
    /// registry gets this: the canonical form drops `logicalType`, and readers then see
    /// bare longs where the project writes timestamps).
    pub text: String,
    names: HashMap<Name, Schema>,
}

impl NamedSchema {
    pub fn parse(type_name: &'static str, text: &str) -> Result<NamedSchema, String> {
        let schema =
            Schema::parse_str(text).map_err(|e| format!("schema of `{type_name}`: {e}"))?;
        let names = apache_avro::schema::ResolvedSchema::try_from(&schema)
            .map_err(|e| format!("schema of `{type_name}`: {e}"))?
            .get_names()
            .iter()
            .map(|(name, s)| (name.clone(), (*s).clone()))
            .collect();
        Ok(NamedSchema {
            type_name,
            schema,
            text: text.to_string(),
            names,
        })
    }

    /// The named types the schema defines, to follow its references.
    pub fn names(&self) -> &HashMap<Name, Schema> {
        &self.names
    }

    /// The record's full name, e.g. `com.personalizer.events.CartItemAdded`.
    pub fn full_name(&self) -> String {
        match &self.schema {
            Schema::Record(r) => r.name.fullname(None),
            _ => self.type_name.to_string(),
        }
    }

    /// JSON form → Avro binary (no framing).
    pub fn encode_json(&self, json: &Json) -> Result<Vec<u8>, String> {
        let value = json_to_avro(json, &self.schema, &self.names, "")?;
        apache_avro::to_avro_datum(&self.schema, value).map_err(|e| e.to_string())
    }
}

/// Every schema of the project, parsed once.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub events: Vec<NamedSchema>,
    pub decisions: Vec<NamedSchema>,
}

impl Catalog {
    pub fn load() -> Catalog {
        let parse = |(name, text): &(&'static str, &str)| {
            NamedSchema::parse(name, text).expect("the schemas in schemas/ are tested to parse")
        };
        Catalog {
            events: EVENT_SCHEMA_FILES.iter().map(parse).collect(),
            decisions: DECISION_SCHEMA_FILES.iter().map(parse).collect(),
        }
    }

    pub fn event(&self, type_name: &str) -> Option<&NamedSchema> {
        self.events.iter().find(|s| s.type_name == type_name)
    }

    pub fn decision(&self, type_name: &str) -> Option<&NamedSchema> {
        self.decisions.iter().find(|s| s.type_name == type_name)
    }

    /// Our schema for the record a writer schema names, to read it with (evolution).
    pub fn reader_for(&self, writer: &Schema) -> Option<&NamedSchema> {
        let Schema::Record(record) = writer else {
            return None;
        };
        let full = record.name.fullname(None);
        self.events
            .iter()
            .chain(&self.decisions)
            .find(|s| s.full_name() == full)
    }
}

/// Why a writer schema was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The registry does not know the id (or it is not an Avro schema): the record is bad.
    Unknown(String),
    /// The registry did not answer: the record is not at fault and must wait.
    Unavailable(String),
}

/// Finds writer schemas by their registry id. Live this is the Schema Registry client.
pub trait SchemaLookup: Send + Sync {
    fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, LookupError>;
}

impl<T: SchemaLookup + ?Sized> SchemaLookup for Arc<T> {
    fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, LookupError> {
        (**self).schema_by_id(id)
    }
}

/// Why an Avro record did not decode to an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AvroDecodeError {
    /// The record is bad: it goes to the dead-letter topic.
    #[error(transparent)]
    Bad(#[from] DecodeError),
    /// Its writer schema could not be fetched: read it again later.
    #[error("{0}")]
    RegistryUnavailable(String),
}

/// Schemas known up front, by id: tests, and registries that were read at start-up.
#[derive(Default)]
pub struct FixedSchemas {
    by_id: HashMap<u32, Arc<Schema>>,
}

impl FixedSchemas {
    pub fn insert(&mut self, id: u32, schema: Schema) {
        self.by_id.insert(id, Arc::new(schema));
    }
}

impl SchemaLookup for FixedSchemas {
    fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, LookupError> {
        self.by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| LookupError::Unknown(format!("schema id {id} is not registered")))
    }
}

pub const MAGIC_BYTE: u8 = 0;

/// Confluent framing: magic byte, schema id, payload.
pub fn frame(schema_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn unframe(record: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match record {
        [] => Err(DecodeError::Avro("empty record".into())),
        [magic, ..] if *magic != MAGIC_BYTE => Err(DecodeError::Avro(format!(
            "magic byte is {magic}, not 0: not in the Confluent wire format"
        ))),
        [_, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        _ => Err(DecodeError::Avro(
            "shorter than the 5-byte Confluent header".into(),
        )),
    }
}

/// An event in its Avro binary form (no framing), per its type's schema.
pub fn encode_event(catalog: &Catalog, event: &Event) -> Result<Vec<u8>, String> {
    let type_name = event.body.type_name();
    let schema = catalog
        .event(type_name)
        .ok_or_else(|| format!("no schema for event type `{type_name}`"))?;
    let json = serde_json::to_value(event.to_wire()).map_err(|e| e.to_string())?;
    schema.encode_json(&json)
}

/// A decision in its Avro binary form (no framing), per its type's schema.
pub fn encode_decision(catalog: &Catalog, decision: &Decision) -> Result<Vec<u8>, String> {
    let type_name = decision.decision_type().name();
    let schema = catalog
        .decision(type_name)
        .ok_or_else(|| format!("no schema for decision type `{type_name}`"))?;
    let json = serde_json::to_value(decision).map_err(|e| e.to_string())?;
    schema.encode_json(&json)
}

/// Reads an Avro-encoded decision back (consumers' view; used by tests).
pub fn decode_decision(
    catalog: &Catalog,
    type_name: &str,
    payload: &[u8],
) -> Result<Decision, String> {
    let schema = catalog
        .decision(type_name)
        .ok_or_else(|| format!("no schema for decision type `{type_name}`"))?;
    let mut rest = payload;
    let value =
        apache_avro::from_avro_datum(&schema.schema, &mut rest, None).map_err(|e| e.to_string())?;
    serde_json::from_value(avro_to_json(&value)?).map_err(|e| e.to_string())
}

fn at(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// JSON form → Avro value, guided by the schema. Errors name the field path.
pub fn json_to_avro(
    json: &Json,
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    path: &str,
) -> Result<Avro, String> {
    let mismatch = || format!("`{path}`: {json} does not fit schema type {schema:?}");
    Ok(match schema {
        Schema::Null => match json {
            Json::Null => Avro::Null,
            _ => return Err(mismatch()),
        },
        Schema::Boolean => Avro::Boolean(json.as_bool().ok_or_else(mismatch)?),
        Schema::Int => {
            let n = json.as_i64().ok_or_else(mismatch)?;
            Avro::Int(i32::try_from(n).map_err(|_| mismatch())?)
        }
        Schema::Long => Avro::Long(json.as_i64().ok_or_else(mismatch)?),
        Schema::Float => Avro::Float(json.as_f64().ok_or_else(mismatch)? as f32),
        Schema::Double => Avro::Double(json.as_f64().ok_or_else(mismatch)?),
        Schema::String => Avro::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        Schema::TimestampMillis => match json {
            Json::String(text) => {
                Avro::TimestampMillis(parse_rfc3339(text).map_err(|e| format!("`{path}`: {e}"))?)
            }
            Json::Number(n) => Avro::TimestampMillis(n.as_i64().ok_or_else(mismatch)?),
            _ => return Err(mismatch()),
        },
        Schema::Array(array) => Avro::Array(
            json.as_array()
                .ok_or_else(mismatch)?
                .iter()
                .enumerate()
                .map(|(i, item)| json_to_avro(item, &array.items, names, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Schema::Map(map) => Avro::Map(
            json.as_object()
                .ok_or_else(mismatch)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_to_avro(v, &map.types, names, &at(path, k))?)))
                .collect::<Result<_, String>>()?,
        ),
        Schema::Enum(e) => {
            let symbol = json.as_str().ok_or_else(mismatch)?;
            let index = e
                .symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| format!("`{path}`: `{symbol}` is not one of {:?}", e.symbols))?;
            Avro::Enum(index as u32, symbol.to_string())
        }
        Schema::Union(union) => {
            let variants = union.variants();
            if json.is_null() {
                let index = variants
                    .iter()
                    .position(|v| matches!(v, Schema::Null))
                    .ok_or_else(|| format!("`{path}` may not be null"))?;
                Avro::Union(index as u32, Box::new(Avro::Null))
            } else {
                let mut last_error = mismatch();
                let mut found = None;
                for (index, variant) in variants.iter().enumerate() {
                    if matches!(variant, Schema::Null) {
                        continue;
                    }
                    match json_to_avro(json, variant, names, path) {
                        Ok(value) => {
                            found = Some(Avro::Union(index as u32, Box::new(value)));
                            break;
                        }
                        Err(e) => last_error = e,
                    }
                }
                found.ok_or(last_error)?
            }
        }
        Schema::Record(record) => {
            let object = json.as_object().ok_or_else(mismatch)?;
            if let Some(extra) = object.keys().find(|k| !record.lookup.contains_key(*k)) {
                return Err(format!(
                    "`{}` is not a field of {}",
                    at(path, extra),
                    record.name
                ));
            }
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let value = match object.get(&field.name) {
                    Some(v) => json_to_avro(v, &field.schema, names, &at(path, &field.name))?,
                    None if matches!(&field.schema, Schema::Union(u) if u.is_nullable()) => {
                        json_to_avro(&Json::Null, &field.schema, names, &at(path, &field.name))?
                    }
                    None => {
                        return Err(format!(
                            "missing required field `{}`",
                            at(path, &field.name)
                        ))
                    }
                };
                fields.push((field.name.clone(), value));
            }
            Avro::Record(fields)
        }
        Schema::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("`{path}`: unknown named type {name}"))?;
            json_to_avro(json, target, names, path)?
        }
        other => {
            return Err(format!(
                "`{path}`: schema type {other:?} is not used by this project"
            ))
        }
    })
}

/// Avro value → JSON form: timestamps as RFC 3339, nulls left out as the JSON form does.
pub fn avro_to_json(value: &Avro) -> Result<Json, String> {
    Ok(match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(*b),
        Avro::Int(n) => Json::from(*n),
        Avro::Long(n) => Json::from(*n),
        Avro::Float(x) => number(f64::from(*x))?,
        Avro::Double(x) => number(*x)?,
        Avro::String(s) => Json::String(s.clone()),
        Avro::Enum(_, symbol) => Json::String(symbol.clone()),
        Avro::TimestampMillis(ms) => Json::String(format_rfc3339(*ms)),
        Avro::Union(_, inner) => avro_to_json(inner)?,
        Avro::Array(items) => {
            Json::Array(items.iter().map(avro_to_json).collect::<Result<_, _>>()?)
        }
        Avro::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), avro_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Avro::Record(fields) => {
            let mut object = serde_json::Map::new();
            for (name, v) in fields {
                let json = avro_to_json(v)?;
                if !json.is_null() {
                    object.insert(name.clone(), json);
                }
            }
            Json::Object(object)
        }
        other => return Err(format!("Avro value {other:?} has no JSON form here")),
    })
}

fn number(x: f64) -> Result<Json, String> {
    serde_json::Number::from_f64(x)
        .map(Json::Number)
        .ok_or_else(|| format!("{x} is not a finite number"))
}

#[cfg(test)]
#[path = "avro_tests.rs"]
mod tests;
