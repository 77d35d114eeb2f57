//! Turning a consumed record into something a task can process, or a reason why not.

use crate::avro::{AvroDecodeError, AvroEventDecoder, Catalog, SchemaLookup};
use crate::config::{Format, TopicFormats};
use crate::engine::Side;
use crate::event::{
    check_not_from_the_future, check_record_size, decode_json, Decoded, Event, InputTopic,
};
use crate::forward::Forward;
use crate::time::Millis;
use std::sync::Arc;

/// How the input topics are read: JSON, or Avro in the Confluent wire format with
/// writer schemas from the Schema Registry (`kafka.formats`).
pub struct InputDecoders {
    formats: TopicFormats,
    avro: Option<AvroEventDecoder<Arc<dyn SchemaLookup>>>,
}

impl InputDecoders {
    /// Every topic JSON.
    pub fn json() -> InputDecoders {
        InputDecoders {
            formats: TopicFormats::default(),
            avro: None,
        }
    }

    /// With writer schemas from `lookup` (the registry's client, or fixed in tests).
    pub fn with_lookup(formats: TopicFormats, lookup: Arc<dyn SchemaLookup>) -> InputDecoders {
        InputDecoders {
            formats,
            avro: Some(AvroEventDecoder::new(Catalog::load(), lookup)),
        }
    }

    fn decode(&self, topic: InputTopic, bytes: &[u8]) -> Result<Decoded, AvroDecodeError> {
        match (self.formats.of(topic), &self.avro) {
            (Format::Avro, Some(avro)) => avro.decode(bytes),
            _ => Ok(decode_json(bytes)?),
        }
    }
}

/// Which of a task's inputs a topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An input topic of events.
    Events(InputTopic),
    /// The internal topic of messages forwarded to this side.
    Forwarded,
}

/// A record, decoded.
#[derive(Debug)]
pub enum Item {
    Event(Box<Event>),
    Message(Box<Forward>),
    /// A type this version does not know: counted and skipped.
    UnknownType,
    /// Bad input: to the dead-letter topic, with the reason.
    Bad(Box<BadRecord>),
    /// Cannot be decoded now (the schema registry does not answer), through no fault of
    /// its own: read it again later, never dead-lettered.
    Wait(String),
}

#[derive(Debug)]
pub struct BadRecord {
    /// A short, bounded label (metrics, the `reason` header).
    pub reason: &'static str,
    /// The whole explanation (the `error` header).
    pub error: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl BadRecord {
    /// An event the engine refused (it would break a bound of `rules.limits`). Its
    /// record's bytes are no longer at hand, so the value is the event in the contract's
    /// JSON form, which decodes to the same event.
    pub fn refused(key: &str, event: &Event, refusal: &crate::rules::Refusal) -> BadRecord {
        BadRecord {
            reason: refusal.reason_label(),
            error: refusal.to_string(),
            key: Some(key.as_bytes().to_vec()),
            value: Some(event.to_json_line().into_bytes()),
        }
    }
}

impl Item {
    /// Its event time, or `i64::MIN` for items that need no ordering.
    pub fn time(&self) -> i64 {
        match self {
            Item::Event(event) => event.occurred_at,
            Item::Message(forward) => match forward.as_ref() {
                Forward::ToProduct { at, .. } | Forward::ToShopper { at, .. } => *at,
            },
            Item::UnknownType | Item::Bad(_) | Item::Wait(_) => i64::MIN,
        }
    }
}

fn bad(reason: &'static str, error: String, key: Option<&[u8]>, value: Option<&[u8]>) -> Item {
    Item::Bad(Box::new(BadRecord {
        reason,
        error,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
    }))
}

/// When a record was read and how far in the future of that its event may be.
#[derive(Debug, Clone, Copy)]
pub struct ReadAt {
    /// The record's timestamp, or the wall clock when it has none.
    pub at: Millis,
    /// `engine.max_clock_skew`.
    pub max_skew: Millis,
    /// `rules.limits.max_event_bytes`.
    pub max_bytes: usize,
}

/// Decodes one record read from `source` by a task of `side`, so a forwarded message
/// meant for the other side is refused rather than misapplied; an event from the future
/// of `read` is refused too.
pub fn decode(
    decoders: &InputDecoders,
    source: Source,
    side: Side,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    read: ReadAt,
) -> Item {
    let Some(bytes) = value else {
        return bad("empty", "record has no value".into(), key, value);
    };
    if let Err(e) = check_record_size(bytes, read.max_bytes) {
        return bad(e.reason_label(), e.to_string(), key, value);
    }
    match source {
        Source::Events(topic) => match decoders.decode(topic, bytes) {
            Ok(Decoded::Event(event)) if event.body.topic() == topic => {
                match check_not_from_the_future(&event, read.at, read.max_skew) {
                    Ok(()) => Item::Event(Box::new(event)),
                    Err(e) => bad(e.reason_label(), e.to_string(), key, value),
                }
            }
            Ok(Decoded::Event(event)) => bad(
                "wrong_topic",
                format!(
                    "a `{}` event belongs on the {} topic, not {}",
                    event.body.type_name(),
                    event.body.topic().name(),
                    topic.name()
                ),
                key,
                value,
            ),
            Ok(Decoded::UnknownType(_)) => Item::UnknownType,
            Err(AvroDecodeError::Bad(e)) => bad(e.reason_label(), e.to_string(), key, value),
            Err(AvroDecodeError::RegistryUnavailable(problem)) => Item::Wait(problem),
        },
        Source::Forwarded => match serde_json::from_slice::<Forward>(bytes) {
            Ok(forward) => {
                if Side::addressee(&forward).0 == side {
                    Item::Message(Box::new(forward))
                } else {
                    bad(
                        "wrong_topic",
                        "forwarded message addressed to the other processor".into(),
                        key,
                        value,
                    )
                }
            }
            // Not a message: an input event passed on by the task it was misrouted to.
            Err(e) => match decode_json(bytes) {
                Ok(Decoded::Event(event)) if Side::of(&event) == side => {
                    Item::Event(Box::new(event))
                }
                Ok(Decoded::Event(_)) => bad(
                    "wrong_topic",
                    "passed-on event belongs to the other processor".into(),
                    key,
                    value,
                ),
                _ => bad("syntax", format!("forwarded message: {e}"), key, value),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn decode_now(source: Source, side: Side, key: Option<&[u8]>, value: Option<&[u8]>) -> Item {
        let read = ReadAt {
            at: NOW,
            max_skew: 300_000,
            max_bytes: 64 * 1024,
        };
        decode(&InputDecoders::json(), source, side, key, value, read)
    }
    use crate::forward::ShopperMessage;

    const CART: &str = r#"{"event_id":"e1","type":"cart_cleared","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c1","cart_id":"k"}"#;

    #[test]
    fn events_on_their_topic_decode_now() {
        let item = decode_now(
            Source::Events(InputTopic::Cart),
            Side::Customer,
            Some(b"c1"),
            Some(CART.as_bytes()),
        );
        assert!(matches!(item, Item::Event(_)), "{item:?}");
        assert_eq!(item.time(), 1_767_225_600_000);
    }

    #[test]
    fn bad_records_carry_reason_and_bytes() {
        let cases: &[(Source, Option<&[u8]>, &str)] = &[
            (Source::Events(InputTopic::Cart), Some(b"{not json"), "syntax"),
            (Source::Events(InputTopic::Cart), None, "empty"),
            (Source::Events(InputTopic::Stock), Some(CART.as_bytes()), "wrong_topic"),
            (
                Source::Events(InputTopic::Cart),
                Some(br#"{"event_id":"e","type":"cart_cleared","occurred_at":"2026-01-01T00:00:00Z"}"#),
                "missing_field",
            ),
            (Source::Forwarded, Some(b"[1,2]"), "syntax"),
        ];
        for (source, value, reason) in cases {
            match decode_now(*source, Side::Customer, Some(b"k"), *value) {
                Item::Bad(record) => {
                    assert_eq!(record.reason, *reason, "{}", record.error);
                    assert_eq!(record.value.as_deref(), *value);
                    assert_eq!(record.key.as_deref(), Some(&b"k"[..]));
                }
                other => panic!("{value:?} decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn a_record_past_the_size_limit_is_too_large_before_it_is_parsed() {
        // A valid event whose cart id alone is 600 KB (too big for any state).
        let huge = CART.replacen(
            r#""cart_id":"k""#,
            &format!(r#""cart_id":"k{}""#, "x".repeat(600_000)),
            1,
        );
        assert!(huge.len() > 600_000);
        match decode_now(
            Source::Events(InputTopic::Cart),
            Side::Customer,
            Some(b"c1"),
            Some(huge.as_bytes()),
        ) {
            Item::Bad(record) => {
                assert_eq!(record.reason, "too_large", "{}", record.error);
                assert!(record.error.contains("max_event_bytes"), "{}", record.error);
                assert_eq!(record.value.as_deref(), Some(huge.as_bytes()));
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn an_event_passed_on_through_the_internal_topic_decodes_as_that_event() {
        let item = decode_now(
            Source::Forwarded,
            Side::Customer,
            Some(b"c1"),
            Some(CART.as_bytes()),
        );
        match item {
            Item::Event(event) => assert_eq!(event.event_id, "e1"),
            other => panic!("decoded as {other:?}"),
        }
        // The product processor's internal topic never carries a shopper's event.
        match decode_now(
            Source::Forwarded,
            Side::Product,
            Some(b"c1"),
            Some(CART.as_bytes()),
        ) {
            Item::Bad(record) => assert_eq!(record.reason, "wrong_topic", "{}", record.error),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn unknown_types_are_skipped_not_bad() {
        let item = decode_now(
            Source::Events(InputTopic::Clickstream),
            Side::Customer,
            None,
            Some(br#"{"event_id":"e","type":"hologram_viewed","occurred_at":"2026-01-01T00:00:00Z"}"#),
        );
        assert!(matches!(item, Item::UnknownType), "{item:?}");
    }

    #[test]
    fn forwarded_messages_round_trip_and_keep_their_side() {
        let forward = Forward::ToShopper {
            key: "c1".into(),
            at: 5,
            message: ShopperMessage::EraseAlias {
                customer_id: "c1".into(),
            },
        };
        let bytes = serde_json::to_vec(&forward).unwrap();
        match decode_now(Source::Forwarded, Side::Customer, None, Some(&bytes)) {
            Item::Message(m) => assert_eq!(*m, forward),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_now(Source::Forwarded, Side::Product, None, Some(&bytes)),
            Item::Bad(_)
        ));
    }

    #[test]
    fn an_event_from_the_future_of_its_record_is_bad() {
        let later = |at: &str| {
            format!(
                r#"{{"event_id":"e1","type":"cart_cleared","occurred_at":"{at}","customer_id":"c1","cart_id":"k"}}"#
            )
        };
        let within = later("2026-01-01T00:05:00Z");
        assert!(matches!(
            decode_now(
                Source::Events(InputTopic::Cart),
                Side::Customer,
                None,
                Some(within.as_bytes())
            ),
            Item::Event(_)
        ));
        for at in ["2026-01-01T00:05:00.001Z", "9999-12-31T23:59:59Z"] {
            let line = later(at);
            match decode_now(
                Source::Events(InputTopic::Cart),
                Side::Customer,
                None,
                Some(line.as_bytes()),
            ) {
                Item::Bad(record) => {
                    assert_eq!(record.reason, "from_the_future");
                    assert!(
                        record.error.contains("engine.max_clock_skew"),
                        "{}",
                        record.error
                    );
                }
                other => panic!("{at}: {other:?}"),
            }
        }
    }
}
