//! What the open batch did, counted as it happens and published to the metrics only
//! when the batch commits: work that is rolled back was never visible, so it is not
//! counted either.

use super::latency::LatencyHistogram;
use crate::engine::stats::Stats;
use crate::engine::{Delivery, Side};
use crate::telemetry::metrics::Metrics;
use crate::time::Millis;
use rustc_hash::FxHashMap;

/// Which input a record came from: its task's side and the input's index.
pub type InputId = (Side, usize);

/// What became of an input record (the `outcome` label of `personalizer_events_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Processed,
    Duplicate,
    Invalid,
    UnknownType,
    /// Read from a partition its key does not belong to: passed on to the task that
    /// owns the key (through the internal topic) and counted again there.
    Misrouted,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Processed,
        Outcome::Duplicate,
        Outcome::Invalid,
        Outcome::UnknownType,
        Outcome::Misrouted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Invalid => "invalid",
            Outcome::UnknownType => "unknown_type",
            Outcome::Misrouted => "misrouted",
        }
    }
}

/// The `to` label of `personalizer_forwarded_messages_total`.
pub fn side_label(side: Side) -> &'static str {
    match side {
        Side::Customer => "shopper",
        Side::Product => "product",
    }
}

/// The `route` label of `personalizer_forwarded_messages_total`.
pub fn delivery_label(delivery: Delivery) -> &'static str {
    match delivery {
        Delivery::InProcess => "in_process",
        Delivery::Topic => "topic",
    }
}

/// The `type` label of records whose type is not one we know.
const UNKNOWN: &str = "unknown";

#[derive(Debug, Default)]
pub struct BatchCounts {
    /// What the tasks reported (decisions by type, forwards, timers).
    pub stats: Stats,
    events: FxHashMap<(InputId, &'static str, Outcome), u64>,
    dead_letters: FxHashMap<(InputId, &'static str), u64>,
    forwards: FxHashMap<(Side, Delivery), u64>,
    /// Event times of the input events, for the latency histogram.
    event_times: Vec<Millis>,
}

impl BatchCounts {
    pub fn event(
        &mut self,
        input: InputId,
        event_type: &'static str,
        outcome: Outcome,
        occurred_at: Millis,
    ) {
        *self.events.entry((input, event_type, outcome)).or_default() += 1;
        // A misrouted event's latency is measured once, where it is applied.
        if outcome != Outcome::Misrouted {
            self.event_times.push(occurred_at);
        }
    }

    pub fn unknown_type(&mut self, input: InputId) {
        *self
            .events
            .entry((input, UNKNOWN, Outcome::UnknownType))
            .or_default() += 1;
    }

    pub fn dead_letter(&mut self, input: InputId, reason: &'static str) {
        *self
            .events
            .entry((input, UNKNOWN, Outcome::Invalid))
            .or_default() += 1;
        *self.dead_letters.entry((input, reason)).or_default() += 1;
    }

    pub fn forwarded(&mut self, to: Side, delivery: Delivery, count: u64) {
        *self.forwards.entry((to, delivery)).or_default() += count;
    }

    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letters.values().sum()
    }

    /// Forgets the batch (it was rolled back).
    pub fn clear(&mut self) {
        // Keeps the event-time buffer's allocation: it is refilled every batch.
        let mut event_times = std::mem::take(&mut self.event_times);
        event_times.clear();
        *self = BatchCounts {
            event_times,
            ..BatchCounts::default()
        };
    }

    /// Adds the committed batch to the metrics and the latency histogram (`committed_at`
    /// is the wall clock at the commit), then starts afresh. `topic` names an input.
    pub fn publish<'t>(
        &mut self,
        metrics: &Metrics,
        latency: &mut LatencyHistogram,
        committed_at: Millis,
        topic: impl Fn(InputId) -> &'t str,
    ) {
        for (&(input, event_type, outcome), &n) in &self.events {
            metrics
                .events
                .with_label_values(&[topic(input), event_type, outcome.label()])
                .inc_by(n);
        }
        for (&(input, reason), &n) in &self.dead_letters {
            metrics
                .dead_letters
                .with_label_values(&[topic(input), reason])
                .inc_by(n);
        }
        for (kind, &n) in &self.stats.decisions {
            metrics.decisions.with_label_values(&[kind]).inc_by(n);
        }
        for (&(family, change), &n) in &self.stats.segment_changes {
            metrics
                .segment_changes
                .with_label_values(&[family.label(), change.label()])
                .inc_by(n);
        }
        for (&(to, delivery), &n) in &self.forwards {
            metrics
                .forwarded
                .with_label_values(&[side_label(to), delivery_label(delivery)])
                .inc_by(n);
        }
        let local = metrics.event_latency.local();
        for &t in &self.event_times {
            let millis = committed_at - t;
            latency.record(millis);
            local.observe(millis.max(0) as f64 / 1000.0);
        }
        local.flush();
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_batch_reaches_the_metrics_and_a_rolled_back_one_does_not() {
        let metrics = Metrics::new();
        let mut latency = LatencyHistogram::default();
        let mut batch = BatchCounts::default();
        let topic = |(side, input): InputId| match (side, input) {
            (Side::Customer, 1) => "cart",
            (Side::Product, 0) => "stock",
            _ => "other",
        };
        let cart = (Side::Customer, 1);
        let stock = (Side::Product, 0);
        batch.event(cart, "cart_cleared", Outcome::Processed, 1_000);
        batch.dead_letter(stock, "syntax");
        batch.clear();
        batch.event(cart, "cart_cleared", Outcome::Processed, 1_000);
        batch.event(cart, "cart_cleared", Outcome::Duplicate, 1_100);
        batch.unknown_type(stock);
        batch.dead_letter(stock, "syntax");
        batch.forwarded(Side::Product, Delivery::InProcess, 1);
        let samples = crate::samples::one_of_each_decision_type();
        batch.stats.count_decision(&samples[0]);
        let segment_change = samples
            .iter()
            .find(|d| d.decision_type() == crate::decision::DecisionType::SegmentChanged)
            .unwrap();
        batch.stats.count_decision(segment_change);
        batch.publish(&metrics, &mut latency, 1_250, topic);
        let text = metrics.render();
        for line in [
            r#"personalizer_events_total{outcome="processed",topic="cart",type="cart_cleared"} 1"#,
            r#"personalizer_events_total{outcome="duplicate",topic="cart",type="cart_cleared"} 1"#,
            r#"personalizer_events_total{outcome="unknown_type",topic="stock",type="unknown"} 1"#,
            r#"personalizer_events_total{outcome="invalid",topic="stock",type="unknown"} 1"#,
            r#"personalizer_dead_letters_total{reason="syntax",topic="stock"} 1"#,
            r#"personalizer_decisions_total{type="abandoned_cart"} 1"#,
            r#"personalizer_segment_changes_total{change="entered",family="rfm"} 1"#,
            r#"personalizer_forwarded_messages_total{route="in_process",to="product"} 1"#,
            r#"personalizer_event_to_decision_seconds_count 2"#,
            r#"personalizer_event_to_decision_seconds_bucket{le="0.25"} 2"#,
            r#"personalizer_event_to_decision_seconds_bucket{le="0.15"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert_eq!(latency.count(), 2);
        batch.publish(&metrics, &mut latency, 2_000, topic);
        assert!(metrics
            .render()
            .contains(r#"personalizer_decisions_total{type="abandoned_cart"} 1"#));
    }

    #[test]
    fn a_misrouted_event_is_counted_where_it_landed_and_timed_once() {
        let metrics = Metrics::new();
        let mut latency = LatencyHistogram::default();
        let mut batch = BatchCounts::default();
        let cart = (Side::Customer, 1);
        batch.event(cart, "cart_item_added", Outcome::Misrouted, 1_000);
        batch.event(cart, "cart_item_added", Outcome::Processed, 1_000);
        batch.publish(&metrics, &mut latency, 1_100, |_| "cart");
        let text = metrics.render();
        assert!(
            text.contains(r#"personalizer_events_total{outcome="misrouted",topic="cart",type="cart_item_added"} 1"#),
            "{text}"
        );
        assert_eq!(latency.count(), 1, "one event, one latency");
    }
}
