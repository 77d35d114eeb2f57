//! Avro binary read straight into a Rust type through serde, guided by the schema it
//! was written with, for records written with the project's own schema (most are).
//!
//! `apache_avro` decodes into its `Value` tree first (an owned `String` per field name and
//! per string), which the JSON form is then built from and deserialized: five times
//! slower than reading JSON. This reader visits the bytes once: strings are borrowed from
//! the record, field names from the schema, and nothing is built that the target type
//! does not keep. A `timestamp-millis` is handed over as its RFC 3339 text, the form the
//! contract's JSON has, so one `Deserialize` serves both formats.

use crate::time::format_rfc3339;
use apache_avro::schema::{Name, Schema};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;

/// Why a record did not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroSerdeError {
    /// The bytes are no record of the schema.
    #[error("{0}")]
    Bytes(String),
    /// The record is well formed, and the target type refuses a value in it.
    #[error("{0}")]
    Invalid(String),
}

impl de::Error for AvroSerdeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        AvroSerdeError::Invalid(msg.to_string())
    }
}

fn error(message: impl Into<String>) -> AvroSerdeError {
    AvroSerdeError::Bytes(message.into())
}

/// Reads one `T` written with `schema` (its named types in `names`) from the front of
/// `bytes`; the bytes left after it. An error names the field it happened in.
pub fn from_datum<'de, T: de::Deserialize<'de>>(
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    bytes: &'de [u8],
) -> Result<(T, &'de [u8]), (String, AvroSerdeError)> {
    let mut input = Input { bytes };
    let datum = Datum {
        schema,
        names,
        input: &mut input,
    };
    match T::deserialize(datum) {
        Ok(value) => Ok((value, input.bytes)),
        // Tracking the path costs an allocation per field: only a bad record pays it, by
        // being read again.
        Err(_) => {
            let mut input = Input { bytes };
            let datum = Datum {
                schema,
                names,
                input: &mut input,
            };
            match serde_path_to_error::deserialize::<_, T>(datum) {
                Ok(value) => Ok((value, input.bytes)),
                Err(e) => Err((e.path().to_string(), e.into_inner())),
            }
        }
    }
}

struct Input<'de> {
    bytes: &'de [u8],
}

impl<'de> Input<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], AvroSerdeError> {
        if self.bytes.len() < n {
            return Err(error(format!(
                "the record ends early: {n} bytes wanted, {} left",
                self.bytes.len()
            )));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// A zig-zag varint, as Avro writes `int` and `long`.
    fn long(&mut self) -> Result<i64, AvroSerdeError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first().expect("took one byte");
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(error("a varint longer than 10 bytes"))
    }

    fn length(&mut self) -> Result<usize, AvroSerdeError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| error(format!("a negative length {n}")))
    }

    fn bytes(&mut self) -> Result<&'de [u8], AvroSerdeError> {
        let n = self.length()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'de str, AvroSerdeError> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|e| error(format!("a string that is not UTF-8: {e}")))
    }
}

struct Datum<'s, 'i, 'de> {
    schema: &'s Schema,
    names: &'s HashMap<Name, Schema>,
    input: &'i mut Input<'de>,
}

impl<'s, 'i, 'de> Datum<'s, 'i, 'de> {
    fn with(self, schema: &'s Schema) -> Datum<'s, 'i, 'de> {
        Datum { schema, ..self }
    }

    /// The schema with a named reference followed.
    fn resolved(&self) -> Result<&'s Schema, AvroSerdeError> {
        match self.schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .ok_or_else(|| error(format!("the schema names `{name}` and never defines it"))),
            other => Ok(other),
        }
    }

    /// The branch of a union a record holds.
    fn branch(
        &mut self,
        union: &'s apache_avro::schema::UnionSchema,
    ) -> Result<&'s Schema, AvroSerdeError> {
        let index = self.input.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| union.variants().get(i))
            .ok_or_else(|| error(format!("union branch {index} does not exist")))
    }
}

impl<'de> de::Deserializer<'de> for Datum<'_, '_, 'de> {
    type Error = AvroSerdeError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.resolved()? {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => match self.input.take(1)?[0] {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                other => Err(error(format!("a boolean byte {other}"))),
            },
            Schema::Int | Schema::Long => visitor.visit_i64(self.input.long()?),
            Schema::Float => {
                let bytes = self.input.take(4)?;
                visitor.visit_f32(f32::from_le_bytes(bytes.try_into().expect("four bytes")))
            }
            Schema::Double => {
                let bytes = self.input.take(8)?;
                visitor.visit_f64(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
            }
            Schema::String => visitor.visit_borrowed_str(self.input.str()?),
            Schema::Bytes => visitor.visit_borrowed_bytes(self.input.bytes()?),
            Schema::TimestampMillis => visitor.visit_string(format_rfc3339(self.input.long()?)),
            Schema::Enum(e) => {
                let index = self.input.long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| error(format!("enum symbol {index} does not exist")))?;
                visitor.visit_str(symbol)
            }
            Schema::Union(union) => {
                let branch = self.branch(union)?;
                self.with(branch).deserialize_any(visitor)
            }
            Schema::Array(array) => visitor.visit_seq(Blocks {
                item: &array.items,
                names: self.names,
                input: self.input,
                left: 0,
            }),
            Schema::Map(map) => visitor.visit_map(Blocks {
                item: &map.types,
                names: self.names,
                input: self.input,
                left: 0,
            }),
            Schema::Record(record) => visitor.visit_map(Fields {
                fields: &record.fields,
                next: 0,
                names: self.names,
                input: self.input,
            }),
            other => Err(error(format!("Avro type {other:?} is not read here"))),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.resolved()? {
            Schema::Union(union) => {
                let branch = self.branch(union)?;
                match branch {
                    Schema::Null => visitor.visit_none(),
                    _ => visitor.visit_some(self.with(branch)),
                }
            }
            Schema::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A Rust enum of unit variants is an Avro enum or a string: its symbol names the
    /// variant.
    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.resolved()? {
            Schema::Enum(e) => {
                let index = self.input.long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| error(format!("enum symbol {index} does not exist")))?;
                visitor.visit_enum(symbol.as_str().into_deserializer())
            }
            Schema::String => visitor.visit_enum(self.input.str()?.into_deserializer()),
            Schema::Union(union) => {
                let branch = self.branch(union)?;
                self.with(branch).deserialize_enum(name, variants, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// A record's fields in schema order, named by the schema.
struct Fields<'s, 'i, 'de> {
    fields: &'s [apache_avro::schema::RecordField],
    next: usize,
    names: &'s HashMap<Name, Schema>,
    input: &'i mut Input<'de>,
}

impl<'de> MapAccess<'de> for Fields<'_, '_, 'de> {
    type Error = AvroSerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.fields.get(self.next) {
            Some(field) => seed
                .deserialize(field.name.as_str().into_deserializer())
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let field = &self.fields[self.next];
        self.next += 1;
        seed.deserialize(Datum {
            schema: &field.schema,
            names: self.names,
            input: self.input,
        })
    }
}

/// The items of an array, or the entries of a map: blocks of a count and that many
/// items, until a block of none. A negative count is followed by the block's size.
struct Blocks<'s, 'i, 'de> {
    item: &'s Schema,
    names: &'s HashMap<Name, Schema>,
    input: &'i mut Input<'de>,
    left: usize,
}

impl<'de> Blocks<'_, '_, 'de> {
    /// Whether another item follows.
    fn more(&mut self) -> Result<bool, AvroSerdeError> {
        if self.left == 0 {
            let count = self.input.long()?;
            if count < 0 {
                self.input.long()?;
            }
            self.left =
                usize::try_from(count.unsigned_abs()).map_err(|_| error("a block too large"))?;
            if self.left == 0 {
                return Ok(false);
            }
        }
        self.left -= 1;
        Ok(true)
    }

    fn item(&mut self) -> Datum<'_, '_, 'de> {
        Datum {
            schema: self.item,
            names: self.names,
            input: self.input,
        }
    }
}

impl<'de> SeqAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = AvroSerdeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(self.item()).map(Some)
    }
}

impl<'de> MapAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = AvroSerdeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        if !self.more()? {
            return Ok(None);
        }
        let key = self.input.str()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        seed.deserialize(self.item())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{encode_event, Catalog};
    use crate::event::WireEvent;
    use crate::samples::one_of_each_event_type;

    #[test]
    fn every_event_type_reads_as_its_json_form_reads() {
        let catalog = Catalog::load();
        for event in one_of_each_event_type() {
            let schema = catalog.event(event.body.type_name()).unwrap();
            let bytes = encode_event(&catalog, &event).unwrap();
            let (wire, rest): (WireEvent, _) =
                from_datum(&schema.schema, schema.names(), &bytes).unwrap();
            assert!(rest.is_empty());
            assert_eq!(
                wire.validate().unwrap(),
                crate::event::Decoded::Event(event)
            );
        }
    }

    #[test]
    fn an_event_time_out_of_range_is_refused_naming_the_field() {
        let catalog = Catalog::load();
        let mut event = one_of_each_event_type().remove(0);
        event.occurred_at = 0;
        let schema = catalog.event(event.body.type_name()).unwrap();
        let bytes = encode_event(&catalog, &event).unwrap();
        let (field, error) =
            from_datum::<WireEvent>(&schema.schema, schema.names(), &bytes).unwrap_err();
        assert_eq!(field, "occurred_at");
        assert!(
            matches!(&error, AvroSerdeError::Invalid(p) if p.contains("outside the times")),
            "{error}"
        );
    }

    #[test]
    fn varints_read_as_avro_writes_them() {
        for (bytes, value) in [
            (vec![0x00], 0),
            (vec![0x01], -1),
            (vec![0x02], 1),
            (vec![0x7f], -64),
            (vec![0x80, 0x01], 64),
            (
                vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MAX,
            ),
            (
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MIN,
            ),
        ] {
            assert_eq!(Input { bytes: &bytes }.long().unwrap(), value, "{bytes:?}");
        }
    }

    #[test]
    fn truncated_or_corrupt_records_are_errors_not_panics() {
        let catalog = Catalog::load();
        for event in one_of_each_event_type() {
            let schema = catalog.event(event.body.type_name()).unwrap();
            let bytes = encode_event(&catalog, &event).unwrap();
            for cut in 0..bytes.len() {
                let _ = from_datum::<WireEvent>(&schema.schema, schema.names(), &bytes[..cut]);
            }
            let mut corrupt = bytes.clone();
            for b in corrupt.iter_mut() {
                *b = 0xff;
            }
            assert!(from_datum::<WireEvent>(&schema.schema, schema.names(), &corrupt).is_err());
        }
        let page = catalog.event("page_viewed").unwrap();
        let (field, error) =
            from_datum::<WireEvent>(&page.schema, page.names(), &[0x02]).unwrap_err();
        assert!(
            matches!(&error, AvroSerdeError::Bytes(p) if p.contains("ends early")),
            "{error}"
        );
        assert_eq!(field, "event_id");
    }
}
