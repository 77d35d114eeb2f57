//! Event-to-commit latency: from an event's own time to the commit that made its
//! outcome (decisions, state) visible, in 1 ms buckets up to 60 s.
//!
//! Meaningful when events are stamped as they happen (live traffic, `generate --rate`);
//! a backlog of old events lands in the overflow bucket.

const BUCKETS: usize = 60_000;

#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    overflow: u64,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS],
            overflow: 0,
            total: 0,
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, millis: i64) {
        self.total += 1;
        match usize::try_from(millis.max(0)) {
            Ok(m) if m < BUCKETS => self.counts[m] += 1,
            _ => self.overflow += 1,
        }
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest latency (ms) at or below which `q` of the samples fall; `None` when
    /// empty, `i64::MAX` when the quantile is in the overflow bucket.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (millis, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(millis as i64);
            }
        }
        Some(i64::MAX)
    }

    pub fn add(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.overflow += other.overflow;
        self.total += other.total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_known_samples() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.quantile(0.5), Some(50));
        assert_eq!(h.quantile(0.99), Some(99));
        assert_eq!(h.quantile(1.0), Some(100));
        h.record(-5);
        h.record(10_000_000);
        assert_eq!(h.count(), 102);
        assert_eq!(h.quantile(1.0), Some(i64::MAX));
        assert_eq!(h.quantile(0.0), Some(0));
    }
}
