//! Turning a consumed record into something a task can process, or a reason why not.

use crate::event::{decode_json, Decoded, Event, InputTopic};
use crate::rules::Forward;

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

impl Item {
    /// Its event time, or `i64::MIN` for items that need no ordering.
    pub fn time(&self) -> i64 {
        match self {
            Item::Event(event) => event.occurred_at,
            Item::Message(forward) => match forward.as_ref() {
                Forward::ToProduct { at, .. } | Forward::ToShopper { at, .. } => *at,
            },
            Item::UnknownType | Item::Bad(_) => i64::MIN,
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

/// Decodes one record read from `source`. `for_products` says which side reads it, so a
/// forwarded message meant for the other side is refused rather than misapplied.
pub fn decode(
    source: Source,
    for_products: bool,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Item {
    let Some(bytes) = value else {
        return bad("empty", "record has no value".into(), key, value);
    };
    match source {
        Source::Events(topic) => match decode_json(bytes) {
            Ok(Decoded::Event(event)) if event.body.topic() == topic => {
                Item::Event(Box::new(event))
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
            Err(e) => bad(e.reason_label(), e.to_string(), key, value),
        },
        Source::Forwarded => match serde_json::from_slice::<Forward>(bytes) {
            Ok(forward) => {
                let to_products = matches!(forward, Forward::ToProduct { .. });
                if to_products == for_products {
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
            Err(e) => bad("syntax", format!("forwarded message: {e}"), key, value),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ShopperMessage;

    const CART: &str = r#"{"event_id":"e1","type":"cart_cleared","occurred_at":"2026-01-01T00:00:00Z","customer_id":"c1","cart_id":"k"}"#;

    #[test]
    fn events_on_their_topic_decode() {
        let item = decode(
            Source::Events(InputTopic::Cart),
            false,
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
            match decode(*source, false, Some(b"k"), *value) {
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
    fn unknown_types_are_skipped_not_bad() {
        let item = decode(
            Source::Events(InputTopic::Clickstream),
            false,
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
        match decode(Source::Forwarded, false, None, Some(&bytes)) {
            Item::Message(m) => assert_eq!(*m, forward),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(Source::Forwarded, true, None, Some(&bytes)),
            Item::Bad(_)
        ));
    }
}
