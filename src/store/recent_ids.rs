//! Which event ids an entity (shopper or SKU) has seen within the dedupe window.
//!
//! A redelivered event carries the same key as the original, so it reaches the same
//! entity: the ids can be kept per entity, next to its state in the write-back cache,
//! instead of one store entry per event. A look-up is then a scan of a few memory words.
//! Ids are kept as 64-bit XXH3 hashes; within one entity's window a false match is out
//! of reach (about n/2^64).
//!
//! An entity's ids are stored as chunks ([`SeenIds`]): each commit writes the ids the
//! entity first saw since the last one under a key of its own, and deletes the chunks
//! that fell out of the window. Rewriting one value per entity instead made a commit's
//! bytes grow with everything the entity saw in the window (a shopper with an event a
//! second wrote 16 bytes more at every commit, all day).
//!
//! Stored value (one chunk): version byte (1), newest first-seen time (i64 BE, read by
//! the store's compaction filter to drop chunks of idle entities), then (first seen i64
//! BE, hash u64 BE) pairs. A value written before chunks, under the entity's key alone,
//! has the same layout and is read as the entity's oldest chunk.

use super::keys;
use super::KeyValue;
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

/// A stored chunk of an entity's ids, as the entity remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredChunk {
    key: Vec<u8>,
    first_at: Millis,
    newest_at: Millis,
    ids: usize,
}

/// An entity's seen ids, as loaded from its stored chunks and kept up to date.
///
/// Chunks are merged the way a binary counter carries: a new chunk is merged with the
/// newest stored ones while the newest is no larger than what is being merged. Chunk
/// sizes then at least double from newest to oldest, so an entity has O(log n) chunks
/// to read back when it is loaded, and each id is rewritten O(log n) times over its
/// life instead of at every commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenIds {
    /// Every id within the window, across the stored chunks and the unsaved ones,
    /// in first-seen order.
    ids: RecentIds,
    /// How many of `ids` (the newest) were first seen since the last write.
    unsaved: usize,
    /// The entity's stored chunks, oldest first.
    stored: Vec<StoredChunk>,
    /// Start of the window at the latest look-up: chunks wholly before it are deleted
    /// with the next write.
    horizon: Millis,
}

impl SeenIds {
    /// The entity's ids from its stored chunks (`chunks`: key and value each, in key
    /// order, as a scan of [`keys::dedupe_key`] returns them).
    pub fn load(chunks: Vec<KeyValue>) -> Result<SeenIds, RecentIdsError> {
        let mut seen = SeenIds {
            horizon: Millis::MIN,
            ..SeenIds::default()
        };
        for (key, value) in chunks {
            let chunk = RecentIds::decode(&value)?;
            let first_at = chunk.entries.first().map_or(Millis::MIN, |e| e.0);
            // An empty chunk holds nothing to remember: deleted with the next write.
            let newest_at = chunk.entries.last().map_or(Millis::MIN, |e| e.0);
            seen.stored.push(StoredChunk {
                key,
                first_at,
                newest_at,
                ids: chunk.entries.len(),
            });
            seen.ids.entries.extend(chunk.entries);
        }
        // Chunks hold consecutive stretches of time, so this is sorted already but for
        // ids of one millisecond split across two chunks (which a merge may repeat).
        seen.ids.entries.sort_unstable();
        seen.ids.entries.dedup();
        Ok(seen)
    }

    /// Whether the id was first seen within `window` before `now`; remembers it if not.
    /// Look-ups come in stream-time order (`now` never decreases).
    pub fn seen_before(&mut self, event_id: &str, now: Millis, window: Millis) -> bool {
        self.horizon = self.horizon.max(now.saturating_sub(window));
        if self.ids.seen_before(event_id, now, window) {
            return true;
        }
        // The new id joins at the back; expired ones left from the front (with a window
        // shorter than a commit, unsaved ones among them).
        self.unsaved = (self.unsaved + 1).min(self.ids.entries.len());
        false
    }

    /// Whether ids were first seen since the last [`SeenIds::take_writes`].
    pub fn has_unsaved(&self) -> bool {
        self.unsaved > 0
    }

    /// What the ids take in memory, about: their encoding and the chunk keys.
    pub fn encoded_len(&self) -> usize {
        self.ids.encoded_len()
            + self
                .stored
                .iter()
                .map(|chunk| chunk.key.len() + 32)
                .sum::<usize>()
    }

    /// The store writes that bring the entity's chunks up to date, as (key, value; `None`
    /// deletes) under the entity's dedupe key `prefix`: the ids seen since the last call
    /// as a new chunk, merged with the newest stored chunks while they are no larger
    /// (see [`SeenIds`]), and deletions of the chunks wholly out of the window.
    pub fn take_writes(&mut self, prefix: &[u8], mut write: impl FnMut(Vec<u8>, Option<Vec<u8>>)) {
        let horizon = self.horizon;
        self.stored.retain(|chunk| {
            let expired = chunk.newest_at < horizon;
            if expired {
                write(chunk.key.clone(), None);
            }
            !expired
        });
        if self.unsaved == 0 {
            return;
        }
        let mut merged_ids = self.unsaved;
        let mut replaced = Vec::new();
        while let Some(newest) = self.stored.last() {
            if newest.ids > merged_ids {
                break;
            }
            merged_ids += newest.ids;
            replaced.push(self.stored.pop().expect("checked above"));
        }
        // The new chunk holds the unsaved ids and, when it replaces stored chunks,
        // every id from the first time of the oldest of them on.
        let from = match replaced.last() {
            Some(oldest) => self.ids.entries.partition_point(|e| e.0 < oldest.first_at),
            None => self.ids.entries.len() - self.unsaved,
        };
        let chunk = RecentIds {
            entries: self.ids.entries[from..].to_vec(),
        };
        let (first, newest) = match (chunk.entries.first(), chunk.entries.last()) {
            (Some(&first), Some(&(newest, _))) => (first, newest),
            _ => unreachable!("the unsaved ids are in the chunk"),
        };
        let key = keys::dedupe_chunk_key(prefix, first);
        for old in replaced {
            // A replaced chunk may start with the same id: its key is then written over.
            if old.key != key {
                write(old.key, None);
            }
        }
        write(key.clone(), Some(chunk.encode()));
        self.stored.push(StoredChunk {
            key,
            first_at: first.0,
            newest_at: newest,
            ids: chunk.entries.len(),
        });
        self.unsaved = 0;
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

    /// The writes of one `take_writes`, as (key, value) with `None` for a deletion.
    fn writes(seen: &mut SeenIds, prefix: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        seen.take_writes(prefix, |key, value| out.push((key, value)));
        out
    }

    /// Applies writes to a map standing in for the store, as its scan would return them.
    fn apply(
        store: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) {
        for (key, value) in writes {
            match value {
                Some(value) => store.insert(key, value),
                None => store.remove(&key),
            };
        }
    }

    fn scan(store: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<KeyValue> {
        store.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    const PREFIX: &[u8] = &[0, 1, 2, 3];

    #[test]
    fn chunks_merge_like_a_binary_counter_so_writes_and_reads_stay_logarithmic() {
        let mut store = std::collections::BTreeMap::new();
        let mut seen = SeenIds::default();
        let mut written_ids = 0;
        let commits = 1_000;
        for i in 0..commits {
            assert!(!seen.seen_before(&format!("e{i}"), i * 1_000, 24 * HOUR));
            let writes = writes(&mut seen, PREFIX);
            for (key, value) in &writes {
                assert!(key.starts_with(PREFIX));
                if let Some(value) = value {
                    written_ids += RecentIds::decode(value).unwrap().entries.len();
                }
            }
            apply(&mut store, writes);
            // As many chunks as ones in the binary count of ids.
            assert_eq!(store.len(), (i + 1).count_ones() as usize, "after {i}");
        }
        // Each id is written about log2(1000) = 10 times; rewriting one value per
        // commit would write 500,500.
        assert!(
            written_ids <= commits as usize * 11,
            "{written_ids} ids written"
        );
        assert!(!seen.has_unsaved());
        assert!(
            writes(&mut seen, PREFIX).is_empty(),
            "nothing new, nothing written"
        );
        let mut loaded = SeenIds::load(scan(&store)).unwrap();
        for i in (0..commits).step_by(37) {
            assert!(loaded.seen_before(&format!("e{i}"), commits * 1_000, 24 * HOUR));
        }
    }

    #[test]
    fn ids_read_back_from_the_chunks_are_still_duplicates() {
        let mut store = std::collections::BTreeMap::new();
        let mut seen = SeenIds::default();
        for (i, at) in [(0, 10), (1, 20), (2, 20), (3, 35)] {
            assert!(!seen.seen_before(&format!("e{i}"), at, HOUR));
            if i != 1 {
                apply(&mut store, writes(&mut seen, PREFIX));
            }
        }
        // e0 alone, then e1 and e2 merged with it (one key), then e3 alone.
        assert_eq!(store.len(), 2, "{store:?}");
        let mut loaded = SeenIds::load(scan(&store)).unwrap();
        for i in 0..4 {
            assert!(loaded.seen_before(&format!("e{i}"), 40, HOUR), "e{i}");
        }
        assert!(!loaded.seen_before("e4", 40, HOUR));
        assert_eq!(loaded.unsaved, 1, "only e4 is new");
    }

    #[test]
    fn chunks_out_of_the_window_are_deleted_with_the_next_write() {
        let mut store = std::collections::BTreeMap::new();
        let mut seen = SeenIds::default();
        seen.seen_before("old", 0, HOUR);
        seen.seen_before("older", 0, HOUR);
        apply(&mut store, writes(&mut seen, PREFIX));
        seen.seen_before("newer", HOUR / 2, HOUR);
        apply(&mut store, writes(&mut seen, PREFIX));
        assert_eq!(store.len(), 2, "one id is not merged into two");
        let mut seen = SeenIds::load(scan(&store)).unwrap();
        // The chunk of "old" and "older" (at 0) is out of the window at HOUR + 1;
        // "newer" is not.
        assert!(!seen.seen_before("late", HOUR + 1, HOUR));
        let writes = writes(&mut seen, PREFIX);
        assert_eq!(
            writes.iter().filter(|(_, v)| v.is_none()).count(),
            1,
            "{writes:?}"
        );
        apply(&mut store, writes);
        let mut seen = SeenIds::load(scan(&store)).unwrap();
        assert!(seen.seen_before("newer", HOUR + 2, HOUR));
        assert!(!seen.seen_before("old", HOUR + 2, HOUR));
    }

    #[test]
    fn a_value_written_before_chunks_is_read_as_the_oldest_chunk() {
        let mut before = RecentIds::default();
        before.seen_before("a", 5, HOUR);
        before.seen_before("b", 9, HOUR);
        let mut store = std::collections::BTreeMap::new();
        store.insert(PREFIX.to_vec(), before.encode());
        let mut seen = SeenIds::load(scan(&store)).unwrap();
        assert!(seen.seen_before("a", 10, HOUR));
        assert!(!seen.seen_before("c", 10, HOUR));
        apply(&mut store, writes(&mut seen, PREFIX));
        assert_eq!(
            store.len(),
            2,
            "the old value stays while it is in the window"
        );
        seen.seen_before("d", 2 * HOUR, HOUR);
        apply(&mut store, writes(&mut seen, PREFIX));
        assert!(!store.contains_key(PREFIX), "and goes once it is out of it");
    }

    #[test]
    fn a_bad_chunk_is_an_error() {
        let chunks = vec![(PREFIX.to_vec(), vec![1, 0, 0])];
        assert_eq!(SeenIds::load(chunks), Err(RecentIdsError::Malformed(3)));
        let chunks = vec![(PREFIX.to_vec(), vec![9; 25])];
        assert_eq!(
            SeenIds::load(chunks),
            Err(RecentIdsError::UnknownVersion(9))
        );
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
