//! Changelog records: how a [`StateChange`] travels through a compacted topic.
//!
//! Key: the family's one-byte code, then the store key (which starts with the task's
//! partition). Value: a marker byte `1` then the stored bytes, or no value (a
//! tombstone) for a delete. The marker keeps an empty stored value (timers) apart from
//! a delete, whatever a client does with zero-length payloads.

use crate::store::{Family, StateChange};

const PUT: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChangelogError {
    #[error("changelog record has an empty key")]
    EmptyKey,
    #[error("changelog record names unknown state family {0}")]
    UnknownFamily(u8),
    #[error("changelog record value starts with {0:#04x}, not the put marker")]
    BadMarker(u8),
}

pub fn encode_key(change: &StateChange) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + change.key.len());
    key.push(change.family.code());
    key.extend_from_slice(&change.key);
    key
}

pub fn encode_value(change: &StateChange) -> Option<Vec<u8>> {
    change.value.as_ref().map(|v| {
        let mut out = Vec::with_capacity(1 + v.len());
        out.push(PUT);
        out.extend_from_slice(v);
        out
    })
}

/// A changelog record read in place: slices of the record's key and value.
#[derive(Debug, PartialEq)]
pub struct ChangeRef<'a> {
    pub family: Family,
    pub key: &'a [u8],
    /// `None` for a delete.
    pub value: Option<&'a [u8]>,
}

/// Reads a changelog record back as the change that wrote it, without copying.
pub fn decode_borrowed<'a>(
    key: &'a [u8],
    value: Option<&'a [u8]>,
) -> Result<ChangeRef<'a>, ChangelogError> {
    let (&code, store_key) = key.split_first().ok_or(ChangelogError::EmptyKey)?;
    let family = Family::from_code(code).ok_or(ChangelogError::UnknownFamily(code))?;
    let value = match value {
        None | Some([]) => None,
        Some([PUT, rest @ ..]) => Some(rest),
        Some([other, ..]) => return Err(ChangelogError::BadMarker(*other)),
    };
    Ok(ChangeRef {
        family,
        key: store_key,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_deletes_and_empty_values_round_trip() {
        for change in [
            StateChange {
                family: Family::Shoppers,
                key: vec![0, 3, b'c', b'1'],
                value: Some(vec![1, 2, 3]),
            },
            StateChange {
                family: Family::ShopperTimers,
                key: vec![0, 3, 9],
                value: Some(Vec::new()),
            },
            StateChange {
                family: Family::Meta,
                key: b"task/customer/3/stream_time".to_vec(),
                value: None,
            },
        ] {
            let key = encode_key(&change);
            let value = encode_value(&change);
            let read = decode_borrowed(&key, value.as_deref()).unwrap();
            assert_eq!(read.family, change.family);
            assert_eq!(read.key, change.key.as_slice());
            assert_eq!(read.value, change.value.as_deref());
        }
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        assert_eq!(decode_borrowed(&[], None), Err(ChangelogError::EmptyKey));
        assert_eq!(
            decode_borrowed(&[99, 0], None),
            Err(ChangelogError::UnknownFamily(99))
        );
        assert_eq!(
            decode_borrowed(&[1, 0, 0], Some(&[7, 1])),
            Err(ChangelogError::BadMarker(7))
        );
    }
}
