//! The Avro codec's tests: schemas, framing, round trips, and bad input.

use super::*;
use crate::event::Decoded;
use crate::samples::{one_of_each_decision_type, one_of_each_event_type};
use std::collections::BTreeSet;

fn decoder() -> AvroEventDecoder<FixedSchemas> {
    let catalog = Catalog::load();
    let mut schemas = FixedSchemas::default();
    for (i, s) in catalog.events.iter().enumerate() {
        schemas.insert(i as u32 + 1, s.schema.clone());
    }
    AvroEventDecoder::new(catalog, schemas)
}

fn schema_id(type_name: &str) -> u32 {
    EVENT_SCHEMA_FILES
        .iter()
        .position(|(n, _)| *n == type_name)
        .unwrap() as u32
        + 1
}

fn field_names(schema: &Schema) -> BTreeSet<String> {
    match schema {
        Schema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_schema_parses_and_covers_every_type() {
    let catalog = Catalog::load();
    for (name, _) in crate::event::EVENT_TYPES {
        let s = catalog
            .event(name)
            .unwrap_or_else(|| panic!("no schema for {name}"));
        assert!(s.full_name().starts_with("com.personalizer.events."));
    }
    for t in crate::decision::DecisionType::ALL {
        let s = catalog
            .decision(t.name())
            .unwrap_or_else(|| panic!("no schema for {t:?}"));
        assert!(s.full_name().starts_with("com.personalizer.decisions."));
    }
}

#[test]
fn every_optional_field_is_a_null_union_with_a_null_default() {
    let catalog = Catalog::load();
    for s in catalog.events.iter().chain(&catalog.decisions) {
        let Schema::Record(record) = &s.schema else {
            panic!()
        };
        for field in &record.fields {
            assert!(
                field.doc.is_some(),
                "{}.{} has no doc",
                s.type_name,
                field.name
            );
            if let Schema::Union(u) = &field.schema {
                assert!(
                    matches!(u.variants()[0], Schema::Null),
                    "{}.{}",
                    s.type_name,
                    field.name
                );
                assert_eq!(
                    field.default,
                    Some(serde_json::Value::Null),
                    "{}.{}",
                    s.type_name,
                    field.name
                );
            }
        }
    }
}

#[test]
fn json_and_avro_forms_carry_the_same_fields() {
    let catalog = Catalog::load();
    for event in one_of_each_event_type() {
        let json = serde_json::to_value(event.to_wire()).unwrap();
        let schema = catalog.event(event.body.type_name()).unwrap();
        let json_fields: BTreeSet<String> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            json_fields,
            field_names(&schema.schema),
            "{}",
            event.body.type_name()
        );
    }
    for decision in one_of_each_decision_type() {
        let json = serde_json::to_value(&decision).unwrap();
        let schema = catalog.decision(decision.decision_type().name()).unwrap();
        let json_fields: BTreeSet<String> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            json_fields,
            field_names(&schema.schema),
            "{:?}",
            decision.decision_type()
        );
    }
}

#[test]
fn events_round_trip_through_confluent_framed_avro() {
    let catalog = Catalog::load();
    let decoder = decoder();
    for event in one_of_each_event_type() {
        let payload = encode_event(&catalog, &event).unwrap();
        let record = frame(schema_id(event.body.type_name()), &payload);
        assert_eq!(decoder.decode(&record), Ok(Decoded::Event(event.clone())));
    }
}

#[test]
fn decisions_round_trip_through_avro() {
    let catalog = Catalog::load();
    for decision in one_of_each_decision_type() {
        let payload = encode_decision(&catalog, &decision).unwrap();
        let back = decode_decision(&catalog, decision.decision_type().name(), &payload).unwrap();
        assert_eq!(back, decision);
    }
}

#[test]
fn a_writer_schema_with_an_extra_field_is_read_with_ours() {
    let catalog = Catalog::load();
    let text = EVENT_SCHEMA_FILES
        .iter()
        .find(|(n, _)| *n == "customer_erased")
        .unwrap()
        .1;
    let mut evolved: serde_json::Value = serde_json::from_str(text).unwrap();
    evolved["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "requested_by", "type": ["null", "string"], "default": null}
        ));
    let writer = NamedSchema::parse("customer_erased", &evolved.to_string()).unwrap();
    let mut schemas = FixedSchemas::default();
    schemas.insert(77, writer.schema.clone());
    let decoder = AvroEventDecoder::new(catalog, schemas);
    let json = serde_json::json!({
        "event_id": "e1", "type": "customer_erased", "occurred_at": "2026-01-01T00:00:00Z",
        "customer_id": "c1", "requested_by": "support"
    });
    let payload = writer.encode_json(&json).unwrap();
    match decoder.decode(&frame(77, &payload)).unwrap() {
        Decoded::Event(e) => assert_eq!(e.customer_id.as_deref(), Some("c1")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_avro_records_are_errors_that_say_why() {
    let catalog = Catalog::load();
    let decoder = decoder();
    let sample = one_of_each_event_type().remove(9); // cart_item_added
    let payload = encode_event(&catalog, &sample).unwrap();
    let id = schema_id("cart_item_added");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty record"),
        (vec![0, 0, 1], "5-byte Confluent header"),
        (
            {
                let mut wrong_magic = frame(id, &payload);
                wrong_magic[0] = 7;
                wrong_magic
            },
            "magic byte is 7",
        ),
        (frame(999, &payload), "schema id 999 is not registered"),
        (
            frame(id, &payload[..payload.len() / 2]),
            "does not match schema",
        ),
        (
            [frame(id, &payload), vec![1, 2, 3]].concat(),
            "3 bytes left over",
        ),
    ];
    for (record, expected) in cases {
        let err = decoder.decode(&record).unwrap_err().to_string();
        assert!(err.contains(expected), "expected `{expected}` in `{err}`");
    }
}

#[test]
fn avro_events_are_validated_like_json_ones() {
    let decoder = decoder();
    let schema = Catalog::load().event("cart_item_added").unwrap().clone();
    let json = serde_json::json!({
        "event_id": "e1", "type": "cart_item_added", "occurred_at": "2026-01-01T00:00:00Z",
        "customer_id": "c1", "cart_id": "k1", "product": {"sku": "S1"}, "quantity": -2
    });
    let record = frame(
        schema_id("cart_item_added"),
        &schema.encode_json(&json).unwrap(),
    );
    let err = decoder.decode(&record).unwrap_err().to_string();
    assert!(err.contains("negative quantity"), "{err}");
}

#[test]
fn json_that_does_not_fit_the_schema_is_named() {
    let schema = Catalog::load().event("cart_item_added").unwrap().clone();
    let base = serde_json::json!({
        "event_id": "e1", "type": "cart_item_added", "occurred_at": "2026-01-01T00:00:00Z",
        "cart_id": "k1", "product": {"sku": "S1"}, "quantity": 1
    });
    let mut extra = base.clone();
    extra["coupon"] = "X".into();
    assert!(schema
        .encode_json(&extra)
        .unwrap_err()
        .contains("`coupon` is not a field"));
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("cart_id");
    assert!(schema
        .encode_json(&missing)
        .unwrap_err()
        .contains("missing required field `cart_id`"));
    let mut wrong = base;
    wrong["product"]["price"] = "cheap".into();
    assert!(schema
        .encode_json(&wrong)
        .unwrap_err()
        .contains("`product.price`"));
}
