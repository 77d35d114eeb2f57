//! Which event ids an entity (shopper or SKU) has seen within the dedupe window.
//!
//! A redelivered event carries the same key as the original, so it reaches the same
//! entity: the ids can be kept per entity, next to its state in the write-back cache,
//! instead of one store entry per event. A look-up is then a scan of a few memory words
//! and a commit writes one small value per entity that changed. Ids are kept as 64-bit
//! XXH3 hashes; within one entity's window a false match is out of reach (about n/2^64).
//!
//! Stored value: version byte (1), newest first-seen time (i64 BE, read by the store's
//! compaction filter to drop idle entities), then (first seen i64 BE, hash u64 BE) pairs.

use crate::time::Millis;

pub const VERSION: u8 = 1;

/// Offset and length of the newest first-seen time in a stored value.
pub const NEWEST_AT: std::ops::Range<usize> = 1..9;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentIds {
    /// (first seen, id hash), oldest first.
    entries: Vec<(Millis, u64)>,
}

pub fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecentIdsError {
    #[error("dedupe value format version {0} is not known to this build")]
    UnknownVersion(u8),
    #[error("dedupe value of {0} bytes is not a whole number of entries")]
    Malformed(usize),
}

impl RecentIds {
    /// Whether the id was first seen within `window` before `now`; remembers it if not.
    /// Entries older than the window are forgotten on the way.
    pub fn seen_before(&mut self, event_id: &str, now: Millis, window: Millis) -> bool {
        let horizon = now.saturating_sub(window);
        let expired = self.entries.partition_point(|(at, _)| *at < horizon);
        self.entries.drain(..expired);
        let hash = id_hash(event_id);
        if self.entries.iter().any(|(_, h)| *h == hash) {
            return true;
        }
        let position = self.entries.partition_point(|(at, _)| *at <= now);
        self.entries.insert(position, (now, hash));
        false
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The length of [`RecentIds::encode`]'s bytes.
    pub fn encoded_len(&self) -> usize {
        9 + 16 * self.entries.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let newest = self.entries.last().map_or(i64::MIN, |(at, _)| *at);
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(VERSION);
        out.extend_from_slice(&newest.to_be_bytes());
        for (at, hash) in &self.entries {
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(&hash.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RecentIds, RecentIdsError> {
        match bytes.first() {
            Some(&VERSION) => {}
            Some(&other) => return Err(RecentIdsError::UnknownVersion(other)),
            None => return Err(RecentIdsError::Malformed(0)),
        }
        if bytes.len() < NEWEST_AT.end || !(bytes.len() - NEWEST_AT.end).is_multiple_of(16) {
            return Err(RecentIdsError::Malformed(bytes.len()));
        }
        let entries = bytes[NEWEST_AT.end..]
            .chunks_exact(16)
            .map(|c| {
                let at = i64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
                let hash = u64::from_be_bytes(c[8..].try_into().expect("8 bytes"));
                (at, hash)
            })
            .collect();
        Ok(RecentIds { entries })
    }
}

/// The newest first-seen time of a stored value, for expiring idle entities.
pub fn newest_seen(bytes: &[u8]) -> Option<Millis> {
    bytes
        .get(NEWEST_AT)
        .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Millis = 3_600_000;

    #[test]
    fn an_id_is_a_duplicate_only_within_the_window() {
        let mut ids = RecentIds::default();
        assert!(!ids.seen_before("e1", 0, 24 * HOUR));
        assert!(ids.seen_before("e1", 24 * HOUR, 24 * HOUR));
        assert!(!ids.seen_before("e1", 24 * HOUR + 1, 24 * HOUR));
        assert!(!ids.seen_before("e2", 24 * HOUR + 1, 24 * HOUR));
    }

    #[test]
    fn old_entries_are_forgotten_when_the_entity_is_touched() {
        let mut ids = RecentIds::default();
        for i in 0..10 {
            ids.seen_before(&format!("e{i}"), i * HOUR, 24 * HOUR);
        }
        ids.seen_before("late", 40 * HOUR, 24 * HOUR);
        assert_eq!(ids.entries.len(), 1);
    }

    #[test]
    fn values_round_trip_and_expose_the_newest_time() {
        let mut ids = RecentIds::default();
        ids.seen_before("a", 5, HOUR);
        ids.seen_before("b", 9, HOUR);
        let bytes = ids.encode();
        assert_eq!(bytes.len(), ids.encoded_len());
        assert_eq!(RecentIds::decode(&bytes), Ok(ids));
        assert_eq!(newest_seen(&bytes), Some(9));
    }

    #[test]
    fn hashes_are_stable_across_builds() {
        // Stored hashes must never change meaning: XXH3-64 of the id's UTF-8 bytes.
        assert_eq!(id_hash(""), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(RecentIds::decode(&[]), Err(RecentIdsError::Malformed(0)));
        assert_eq!(
            RecentIds::decode(&[7, 0]),
            Err(RecentIdsError::UnknownVersion(7))
        );
        let mut bytes = RecentIds::default().encode();
        bytes.push(1);
        assert_eq!(
            RecentIds::decode(&bytes),
            Err(RecentIdsError::Malformed(10))
        );
    }
}
