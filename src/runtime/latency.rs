//! Event-to-commit latency: from an event's own time to the commit that made its
//! outcome (decisions, state) visible, in 1 ms buckets up to 60 s.
//!
//! Meaningful when events are stamped as they happen (live traffic, `generate --rate`);
//! a backlog of old events lands in the overflow bucket.

const BUCKETS: usize = 60_000;

/// A latency quantile, printed as milliseconds (`>60000` past the last bucket, `none`
/// without samples) so a log line never shows a sentinel number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    NoSamples,
    Millis(i64),
    /// Past the histogram's last bucket, this many milliseconds.
    Beyond(i64),
}

impl std::fmt::Display for Quantile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantile::NoSamples => f.write_str("none"),
            Quantile::Millis(ms) => write!(f, "{ms}"),
            Quantile::Beyond(ms) => write!(f, ">{ms}"),
        }
    }
}

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

    /// The smallest latency at or below which `q` of the samples fall.
    pub fn quantile(&self, q: f64) -> Quantile {
        if self.total == 0 {
            return Quantile::NoSamples;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (millis, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Quantile::Millis(millis as i64);
            }
        }
        Quantile::Beyond(BUCKETS as i64)
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
        assert_eq!(h.quantile(0.5), Quantile::NoSamples);
        assert_eq!(h.quantile(0.5).to_string(), "none");
        for ms in 1..=100 {
            h.record(ms);
        }
        assert_eq!(h.quantile(0.5), Quantile::Millis(50));
        assert_eq!(h.quantile(0.99), Quantile::Millis(99));
        assert_eq!(h.quantile(1.0), Quantile::Millis(100));
        h.record(-5);
        h.record(10_000_000);
        assert_eq!(h.count(), 102);
        assert_eq!(h.quantile(1.0), Quantile::Beyond(60_000));
        assert_eq!(h.quantile(1.0).to_string(), ">60000");
        assert_eq!(h.quantile(0.0), Quantile::Millis(0));
    }
}
