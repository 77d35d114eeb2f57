//! Why a record is refused: the decode error, naming the field at fault, and the checks
//! made on a record as a whole (its size, a time from the future).

use super::*;
use crate::time::Millis;

/// Why a record could not be turned into an event. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JSON object: {0}")]
    Syntax(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    #[error("avro: {0}")]
    Avro(String),
    #[error(
        "field `occurred_at`: {} is more than `engine.max_clock_skew` after {} (when it was \
         read): an event from the future would move stream time past every pending timer",
        crate::time::format_rfc3339(*occurred_at),
        crate::time::format_rfc3339(*read_at)
    )]
    FromTheFuture {
        occurred_at: Millis,
        read_at: Millis,
    },
    #[error("the record is {bytes} bytes, more than `rules.limits.max_event_bytes` ({limit})")]
    TooLarge { bytes: usize, limit: usize },
}

impl DecodeError {
    pub(super) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        DecodeError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// A short, bounded label for metrics and dead-letter headers.
    pub fn reason_label(&self) -> &'static str {
        match self {
            DecodeError::Syntax(_) => "syntax",
            DecodeError::Missing(_) => "missing_field",
            DecodeError::Invalid { .. } => "invalid_field",
            DecodeError::Avro(_) => "avro",
            DecodeError::FromTheFuture { .. } => "from_the_future",
            DecodeError::TooLarge { .. } => "too_large",
        }
    }
}

/// Refuses a record larger than `limit` bytes before decoding it: every text field it
/// carries into state is bounded by it.
pub fn check_record_size(bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            bytes: bytes.len(),
            limit,
        });
    }
    Ok(())
}

/// Refuses an event stamped more than `max_skew` after `read_at`, the moment it was read
/// (a record's timestamp, or the wall clock).
pub fn check_not_from_the_future(
    event: &Event,
    read_at: Millis,
    max_skew: Millis,
) -> Result<(), DecodeError> {
    if event.occurred_at > read_at.saturating_add(max_skew) {
        return Err(DecodeError::FromTheFuture {
            occurred_at: event.occurred_at,
            read_at,
        });
    }
    Ok(())
}

/// A record decoded: either an event, or a type this version does not know (counted and
/// skipped, not an error, so producers can add types before consumers learn them).
// Decoded once per record and matched at once: boxing the event would cost an
// allocation per record on the hot path for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Event),
    UnknownType(String),
}

/// The earliest event time accepted: 2000-01-01T00:00:00Z.
pub const EARLIEST_EVENT_TIME: Millis = 946_684_800_000;
/// The latest event time accepted: 9999-12-31T23:59:59.999Z, the last RFC 3339 can print.
pub const LATEST_EVENT_TIME: Millis = 253_402_300_799_999;
