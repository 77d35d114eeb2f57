//! Key encoding. Every key starts with the task's partition (`u16`, big-endian) so one
//! task's state is one contiguous range: it can be scanned, dropped or restored alone.
//!
//! | family            | key                                              | value                 |
//! |-------------------|--------------------------------------------------|-----------------------|
//! | `shoppers`        | partition · shopper key (UTF-8)                  | versioned ShopperState |
//! | `products`        | partition · SKU (UTF-8)                          | versioned ProductState |
//! | `product_requests` | partition · SKU length (u32 BE) · SKU · shopper key (UTF-8) | one waiting request (version byte, postcard) |
//! | `*_timers`        | partition · due (i64, sign-flipped, BE) · kind (u8) · key | empty        |
//! | `*_dedupe`        | partition · XXH3-128 of the entity key · first seen (i64, sign-flipped, BE) · first id hash (u64 BE) | a chunk of recent event ids (`store::recent_ids`); without the last two parts, a value written before chunks |
//! | `meta`            | name (UTF-8)                                     | i64 BE                |
//!
//! Flipping the sign bit of the due time makes the bytes sort like the numbers, so a
//! forward scan of a partition's timers visits them in due order.

use crate::time::Millis;
use crate::timer::{Timer, TimerKind};

pub fn partition_prefix(partition: u16) -> [u8; 2] {
    partition.to_be_bytes()
}

pub fn entity_key(partition: u16, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + key.len());
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

fn sortable_time(t: Millis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_sortable(bytes: [u8; 8]) -> Millis {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The prefix of an entity's detached entries (see `VersionedState::take_detached`):
/// the partition, the entity key's length and the key, so that one entity's entries
/// are one range that no other entity's key can reach into.
pub fn detached_prefix(partition: u16, key: &str) -> Vec<u8> {
    let length = u32::try_from(key.len()).expect("keys are far shorter than 4 GiB");
    let mut out = Vec::with_capacity(6 + key.len());
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// Length of a [`dedupe_key`]: the prefix every chunk of the entity's ids shares.
pub const DEDUPE_KEY_LEN: usize = 18;

/// Key of an entity's recently seen event ids: the partition and a 128-bit hash of the
/// entity key, so the ids kept after an erasure do not name the customer.
pub fn dedupe_key(partition: u16, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(DEDUPE_KEY_LEN);
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_128(key.as_bytes()).to_be_bytes());
    out
}

/// Key of one chunk of an entity's seen ids: the entity's [`dedupe_key`] and the first
/// (time, id hash) in the chunk, so an entity's chunks sort by time behind its key.
pub fn dedupe_chunk_key(entity: &[u8], first: (Millis, u64)) -> Vec<u8> {
    let mut out = Vec::with_capacity(entity.len() + 16);
    out.extend_from_slice(entity);
    out.extend_from_slice(&sortable_time(first.0));
    out.extend_from_slice(&first.1.to_be_bytes());
    out
}

pub fn timer_key(partition: u16, timer: &Timer) -> Vec<u8> {
    let mut out = Vec::with_capacity(11 + timer.key.len());
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&sortable_time(timer.due));
    out.push(timer.kind as u8);
    out.extend_from_slice(timer.key.as_bytes());
    out
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed key {key:02x?}: {problem}")]
pub struct KeyError {
    pub key: Vec<u8>,
    pub problem: &'static str,
}

pub fn parse_timer_key(key: &[u8]) -> Result<(u16, Timer), KeyError> {
    let error = |problem| KeyError {
        key: key.to_vec(),
        problem,
    };
    if key.len() < 11 {
        return Err(error("shorter than a timer key"));
    }
    let partition = u16::from_be_bytes([key[0], key[1]]);
    let due = time_from_sortable(key[2..10].try_into().expect("8 bytes"));
    let kind = match key[10] {
        1 => TimerKind::CartReminder,
        2 => TimerKind::RequestExpiry,
        3 => TimerKind::ProfilePublish,
        4 => TimerKind::SegmentChange,
        5 => TimerKind::ProductPublish,
        6 => TimerKind::NewArrivalEnds,
        _ => return Err(error("unknown timer kind")),
    };
    let entity = std::str::from_utf8(&key[11..]).map_err(|_| error("entity key is not UTF-8"))?;
    Ok((
        partition,
        Timer {
            due,
            kind,
            key: entity.to_string(),
        },
    ))
}

pub fn encode_millis(t: Millis) -> [u8; 8] {
    t.to_be_bytes()
}

pub fn decode_millis(bytes: &[u8]) -> Option<Millis> {
    bytes.try_into().ok().map(i64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(due: Millis, key: &str) -> Timer {
        Timer {
            due,
            kind: TimerKind::CartReminder,
            key: key.into(),
        }
    }

    #[test]
    fn timer_keys_sort_by_due_time_including_negative_times() {
        let dues = [-5_000, -1, 0, 1, 1_767_225_600_000, i64::MAX];
        let keys: Vec<Vec<u8>> = dues
            .iter()
            .map(|d| timer_key(3, &timer(*d, "zz")))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn timer_keys_round_trip() {
        let t = timer(1_767_225_600_000, "shopper-é");
        assert_eq!(parse_timer_key(&timer_key(7, &t)).unwrap(), (7, t));
    }

    #[test]
    fn malformed_timer_keys_are_errors() {
        assert!(parse_timer_key(&[0, 1, 2]).is_err());
        let mut bad_kind = timer_key(0, &timer(1, "k"));
        bad_kind[10] = 99;
        assert!(parse_timer_key(&bad_kind).is_err());
        let mut bad_utf8 = timer_key(0, &timer(1, "k"));
        bad_utf8.push(0xff);
        assert!(parse_timer_key(&bad_utf8).is_err());
    }

    #[test]
    fn partitions_are_contiguous_ranges() {
        let a = entity_key(1, "zzzz");
        let b = entity_key(2, "");
        assert!(a < b);
        assert!(a.starts_with(&partition_prefix(1)));
    }
}
