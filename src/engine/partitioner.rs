//! Kafka's default partitioner: `murmur2(key) & 0x7fffffff % partitions`. Using the same
//! function as Java producers means a shopper's state lives in the task that reads the
//! shopper's input partition, in `replay` and live alike.

/// Murmur2 (32-bit) with Kafka's seed, as Kafka's `Utils.murmur2` computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record.
pub fn partition_for(key: &[u8], partitions: u16) -> u16 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    (positive % u32::from(partitions.max(1))) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_reference_values() {
        // The vectors Kafka's own test suite checks `Utils.murmur2` against.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn picks_the_partition_a_java_producer_picks() {
        // Checked against Kafka 4.1's `Utils.toPositive(Utils.murmur2(key)) % 8`.
        assert_eq!(partition_for(b"c-1", 8), 7);
        assert_eq!(partition_for(b"foobar", 8), 6);
        assert_eq!(partition_for(b"abc", 8), 3);
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for n in [1u16, 3, 8, 64] {
            for key in ["", "c-1", "shopper-123456", "é"] {
                let p = partition_for(key.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for(key.as_bytes(), n));
            }
        }
    }
}
