//! Unit tests of the input model: decoding, validation, bad input.

use super::*;
use crate::time::parse_rfc3339;

fn decode(text: &str) -> Result<Decoded, DecodeError> {
    decode_json(text.as_bytes())
}

fn event(text: &str) -> Event {
    match decode(text).unwrap() {
        Decoded::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

const ADD: &str = r#"{"event_id":"e1","type":"cart_item_added","occurred_at":"2026-01-01T10:00:00Z",
    "customer_id":"c1","cart_id":"k1","quantity":2,
    "product":{"sku":"S1","name":"Dress","price":49.5,"currency":"EUR","category":["women","dresses"]}}"#;

#[test]
fn decodes_a_cart_add() {
    let e = event(ADD);
    assert_eq!(e.event_id, "e1");
    assert_eq!(
        e.occurred_at,
        parse_rfc3339("2026-01-01T10:00:00Z").unwrap()
    );
    assert_eq!(e.routing_key(), RoutingKey::Shopper("c1"));
    match e.body {
        EventBody::CartItemAdded {
            cart_id,
            product,
            quantity,
        } => {
            assert_eq!((cart_id.as_str(), quantity), ("k1", 2));
            assert_eq!(product.price, Some(49.5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_type_round_trips_through_its_json_form() {
    for sample in crate::samples::one_of_each_event_type() {
        let line = sample.to_json_line();
        assert_eq!(event(&line), sample, "{line}");
    }
}

#[test]
fn unknown_types_are_skipped_not_errors() {
    let d =
        decode(r#"{"event_id":"e","type":"coupon_copied","occurred_at":"2026-01-01T00:00:00Z"}"#);
    assert_eq!(d, Ok(Decoded::UnknownType("coupon_copied".into())));
}

fn error_of(text: &str) -> String {
    decode(text).unwrap_err().to_string()
}

#[test]
fn bad_input_is_a_typed_error_naming_the_field() {
    let cases = [
        ("not json", "not a JSON object"),
        ("[1,2]", "not a JSON object"),
        (r#"{"event_id":"e"}"#, "`type`"),
        (
            r#"{"event_id":"e","type":"page_viewed"}"#,
            "missing required field `occurred_at`",
        ),
        (
            r#"{"event_id":"e","type":"page_viewed","occurred_at":"soon","customer_id":"c","page_type":"home"}"#,
            "field `occurred_at`",
        ),
        // A number is refused, not guessed at (the Avro reader's millisecond path is not
        // open to JSON).
        (
            r#"{"event_id":"e","type":"page_viewed","occurred_at":1767225600000,"customer_id":"c","page_type":"home"}"#,
            "field `occurred_at`",
        ),
        (
            r#"{"event_id":"e","type":"page_viewed","occurred_at":"2026-01-01T00:00:00Z","page_type":"home"}"#,
            "`customer_id` or `anonymous_id`",
        ),
        (
            r#"{"event_id":"e","type":"page_viewed","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","page_type":"lobby"}"#,
            "field `page_type`",
        ),
        (
            r#"{"event_id":"e","type":"cart_item_added","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","cart_id":"k","quantity":"two","product":{"sku":"s"}}"#,
            "field `quantity`",
        ),
        (
            r#"{"event_id":"e","type":"cart_item_added","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","cart_id":"k","quantity":-1,"product":{"sku":"s"}}"#,
            "negative quantity",
        ),
        (
            r#"{"event_id":"e","type":"cart_item_added","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","cart_id":"k","quantity":1,"product":{"name":"x"}}"#,
            "field `product`: missing field `sku`",
        ),
        (
            r#"{"event_id":"e","type":"cart_item_added","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","cart_id":"k","quantity":1,"product":{"sku":"s","price":-3}}"#,
            "field `product.price`",
        ),
        (
            r#"{"event_id":"e","type":"signed_in","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c"}"#,
            "missing required field `anonymous_id`",
        ),
        (
            r#"{"event_id":"e","type":"signed_in","occurred_at":"2026-01-01T00:00:00Z","anonymous_id":"a"}"#,
            "missing required field `customer_id`",
        ),
        (
            r#"{"event_id":"e","type":"stock_changed","occurred_at":"2026-01-01T00:00:00Z","sku":"s","quantity":-5}"#,
            "negative quantity -5",
        ),
        (
            r#"{"event_id":"e","type":"order_completed","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","order_id":"o","total":1,"currency":"EUR","items":[{"product":{"sku":"s"},"quantity":0}]}"#,
            "field `items[0].quantity`",
        ),
        (
            r#"{"event_id":"e","type":"consent_changed","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c","email_marketing":"no"}"#,
            "field `email_marketing`",
        ),
        (
            r#"{"event_id":"e","type":"customer_erased","occurred_at":"2026-01-01T00:00:00Z","anonymous_id":"a"}"#,
            "missing required field `customer_id`",
        ),
        (
            r#"{"event_id":"","type":"customer_erased","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c"}"#,
            "field `event_id`: must not be empty",
        ),
    ];
    for (input, expected) in cases {
        let err = error_of(input);
        assert!(
            err.contains(expected),
            "input {input}\n  error {err}\n  expected to contain {expected}"
        );
    }
}

#[test]
fn invalid_utf8_is_a_syntax_error() {
    let mut line = br#"{"event_id":"e","type":"customer_erased","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c"#.to_vec();
    line.extend_from_slice(&[0xff, b'"', b'}']);
    assert!(matches!(decode_json(&line), Err(DecodeError::Syntax(_))));
}

#[test]
fn occurred_at_must_be_an_rfc3339_string_within_the_possible_times() {
    for (occurred_at, why) in [
        ("1767225600000", "RFC 3339 timestamp string"),
        ("9223372036854775807", "RFC 3339 timestamp string"),
        ("-1", "RFC 3339 timestamp string"),
        ("1.5e12", "RFC 3339 timestamp string"),
        (r#""1999-12-31T23:59:59Z""#, "outside the times"),
        (r#""1970-01-01T00:00:00Z""#, "outside the times"),
        (r#""10000-01-01T00:00:00Z""#, "RFC 3339"),
    ] {
        let line = format!(
            r#"{{"event_id":"e","type":"customer_erased","occurred_at":{occurred_at},"customer_id":"c"}}"#
        );
        match decode_json(line.as_bytes()) {
            Err(e) => assert!(
                e.to_string().contains("occurred_at") && e.to_string().contains(why),
                "{occurred_at}: {e}"
            ),
            Ok(decoded) => panic!("{occurred_at} decoded as {decoded:?}"),
        }
    }
    for edge in ["2000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"] {
        let line = format!(
            r#"{{"event_id":"e","type":"customer_erased","occurred_at":"{edge}","customer_id":"c"}}"#
        );
        assert!(decode_json(line.as_bytes()).is_ok(), "{edge}");
    }
}
