//! The Prometheus registry of the metrics the processor exports.
//!
//! Every metric is declared once in [`CATALOG`] (`catalog.rs`: name, type, labels,
//! meaning); the registry is built from it, the README table lists it, and the tests
//! check that the Grafana dashboard and the alert rules name nothing else. Labels are
//! bounded: topics, types, outcomes, processors, partitions and column families, never a
//! shopper or SKU.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use super::catalog::*;

/// Seconds: 10 ms to an hour. Live traffic lands in the low buckets; a backlog being
/// worked off (old event times) in the high ones.
const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Seconds: 1 ms to 30 s (the transaction timeout).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Seconds: 50 µs to 1 s. The read API's goal is a p99 under 2 ms.
const API_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0,
];

pub struct Metrics {
    registry: Registry,
    pub events: IntCounterVec,
    pub decisions: IntCounterVec,
    pub segment_changes: IntCounterVec,
    pub customers_by_lifecycle_stage: IntGaugeVec,
    pub forwarded: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub event_latency: Histogram,
    pub batch_duration: Histogram,
    pub commit_duration: Histogram,
    pub commits: IntCounter,
    pub aborts: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub stream_time_lag: GaugeVec,
    pub tasks_assigned: IntGaugeVec,
    pub tasks_restoring: IntGaugeVec,
    pub restored_records: IntCounterVec,
    pub timers_pending: IntGaugeVec,
    pub input_buffered: IntGaugeVec,
    pub state_keys: IntGaugeVec,
    pub state_written_bytes: IntCounterVec,
    pub rocksdb_sst_bytes: IntGaugeVec,
    pub rocksdb_memtable_bytes: IntGauge,
    pub rocksdb_block_cache_usage: IntGauge,
    pub rocksdb_block_cache_capacity: IntGauge,
    pub rocksdb_pending_compaction: IntGaugeVec,
    pub rebalances: IntCounter,
    pub ready: Gauge,
    pub commit_stall: Gauge,
    pub broker_reachable: Gauge,
    pub product_table_records: IntCounterVec,
    pub product_table_skus: IntGauge,
    pub api_requests: IntCounterVec,
    pub api_request_duration: HistogramVec,
    pub api_forwards: IntCounterVec,
}

fn opts(spec: &Spec) -> Opts {
    Opts::new(spec.name, spec.help)
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let metrics = Metrics {
            events: IntCounterVec::new(opts(&EVENTS), EVENTS.labels).expect("valid"),
            decisions: IntCounterVec::new(opts(&DECISIONS), DECISIONS.labels).expect("valid"),
            segment_changes: IntCounterVec::new(opts(&SEGMENT_CHANGES), SEGMENT_CHANGES.labels)
                .expect("valid"),
            customers_by_lifecycle_stage: IntGaugeVec::new(
                opts(&CUSTOMERS_BY_LIFECYCLE_STAGE),
                CUSTOMERS_BY_LIFECYCLE_STAGE.labels,
            )
            .expect("valid"),
            forwarded: IntCounterVec::new(opts(&FORWARDED), FORWARDED.labels).expect("valid"),
            dead_letters: IntCounterVec::new(opts(&DEAD_LETTERS), DEAD_LETTERS.labels)
                .expect("valid"),
            event_latency: histogram(&EVENT_LATENCY, LATENCY_BUCKETS),
            batch_duration: histogram(&BATCH_DURATION, DURATION_BUCKETS),
            commit_duration: histogram(&COMMIT_DURATION, DURATION_BUCKETS),
            commits: IntCounter::with_opts(opts(&COMMITS)).expect("valid"),
            aborts: IntCounterVec::new(opts(&ABORTS), ABORTS.labels).expect("valid"),
            consumer_lag: IntGaugeVec::new(opts(&CONSUMER_LAG), CONSUMER_LAG.labels)
                .expect("valid"),
            stream_time_lag: GaugeVec::new(opts(&STREAM_TIME_LAG), STREAM_TIME_LAG.labels)
                .expect("valid"),
            tasks_assigned: IntGaugeVec::new(opts(&TASKS_ASSIGNED), TASKS_ASSIGNED.labels)
                .expect("valid"),
            tasks_restoring: IntGaugeVec::new(opts(&TASKS_RESTORING), TASKS_RESTORING.labels)
                .expect("valid"),
            restored_records: IntCounterVec::new(opts(&RESTORED_RECORDS), RESTORED_RECORDS.labels)
                .expect("valid"),
            timers_pending: IntGaugeVec::new(opts(&TIMERS_PENDING), TIMERS_PENDING.labels)
                .expect("valid"),
            input_buffered: IntGaugeVec::new(opts(&INPUT_BUFFERED), INPUT_BUFFERED.labels)
                .expect("valid"),
            state_keys: IntGaugeVec::new(opts(&STATE_KEYS), STATE_KEYS.labels).expect("valid"),
            state_written_bytes: IntCounterVec::new(
                opts(&STATE_WRITTEN_BYTES),
                STATE_WRITTEN_BYTES.labels,
            )
            .expect("valid"),
            rocksdb_sst_bytes: IntGaugeVec::new(opts(&ROCKSDB_SST_BYTES), ROCKSDB_SST_BYTES.labels)
                .expect("valid"),
            rocksdb_memtable_bytes: IntGauge::with_opts(opts(&ROCKSDB_MEMTABLE_BYTES))
                .expect("valid"),
            rocksdb_block_cache_usage: IntGauge::with_opts(opts(&ROCKSDB_BLOCK_CACHE_USAGE))
                .expect("valid"),
            rocksdb_block_cache_capacity: IntGauge::with_opts(opts(&ROCKSDB_BLOCK_CACHE_CAPACITY))
                .expect("valid"),
            rocksdb_pending_compaction: IntGaugeVec::new(
                opts(&ROCKSDB_PENDING_COMPACTION),
                ROCKSDB_PENDING_COMPACTION.labels,
            )
            .expect("valid"),
            rebalances: IntCounter::with_opts(opts(&REBALANCES)).expect("valid"),
            ready: Gauge::with_opts(opts(&READY)).expect("valid"),
            commit_stall: Gauge::with_opts(opts(&COMMIT_STALL)).expect("valid"),
            broker_reachable: Gauge::with_opts(opts(&BROKER_REACHABLE)).expect("valid"),
            product_table_records: IntCounterVec::new(
                opts(&PRODUCT_TABLE_RECORDS),
                PRODUCT_TABLE_RECORDS.labels,
            )
            .expect("valid"),
            product_table_skus: IntGauge::with_opts(opts(&PRODUCT_TABLE_SKUS)).expect("valid"),
            api_requests: IntCounterVec::new(opts(&API_REQUESTS), API_REQUESTS.labels)
                .expect("valid"),
            api_request_duration: HistogramVec::new(
                HistogramOpts::from(opts(&API_REQUEST_DURATION)).buckets(API_BUCKETS.to_vec()),
                API_REQUEST_DURATION.labels,
            )
            .expect("valid"),
            api_forwards: IntCounterVec::new(opts(&API_FORWARDS), API_FORWARDS.labels)
                .expect("valid"),
            registry,
        };
        let build_info =
            IntGaugeVec::new(opts(&BUILD_INFO), BUILD_INFO.labels).expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(build_info),
            Box::new(metrics.events.clone()),
            Box::new(metrics.decisions.clone()),
            Box::new(metrics.segment_changes.clone()),
            Box::new(metrics.customers_by_lifecycle_stage.clone()),
            Box::new(metrics.forwarded.clone()),
            Box::new(metrics.dead_letters.clone()),
            Box::new(metrics.event_latency.clone()),
            Box::new(metrics.batch_duration.clone()),
            Box::new(metrics.commit_duration.clone()),
            Box::new(metrics.commits.clone()),
            Box::new(metrics.aborts.clone()),
            Box::new(metrics.consumer_lag.clone()),
            Box::new(metrics.stream_time_lag.clone()),
            Box::new(metrics.tasks_assigned.clone()),
            Box::new(metrics.tasks_restoring.clone()),
            Box::new(metrics.restored_records.clone()),
            Box::new(metrics.timers_pending.clone()),
            Box::new(metrics.input_buffered.clone()),
            Box::new(metrics.state_keys.clone()),
            Box::new(metrics.state_written_bytes.clone()),
            Box::new(metrics.rocksdb_sst_bytes.clone()),
            Box::new(metrics.rocksdb_memtable_bytes.clone()),
            Box::new(metrics.rocksdb_block_cache_usage.clone()),
            Box::new(metrics.rocksdb_block_cache_capacity.clone()),
            Box::new(metrics.rocksdb_pending_compaction.clone()),
            Box::new(metrics.rebalances.clone()),
            Box::new(metrics.ready.clone()),
            Box::new(metrics.commit_stall.clone()),
            Box::new(metrics.broker_reachable.clone()),
            Box::new(metrics.product_table_records.clone()),
            Box::new(metrics.product_table_skus.clone()),
            Box::new(metrics.api_requests.clone()),
            Box::new(metrics.api_request_duration.clone()),
            Box::new(metrics.api_forwards.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("every metric is registered once");
        }
        metrics
    }

    /// Creates the series whose label values are known up front at zero, so `rate()`
    /// and alerts see them before the first occurrence.
    pub fn initialize_series(
        &self,
        input_topics: &[(&str, &[&'static str])],
        decision_types: &[&str],
        dead_letter_reasons: &[&str],
    ) {
        for outcome in PRODUCT_TABLE_OUTCOMES {
            self.product_table_records.with_label_values(&[outcome]);
        }
        for outcome in API_FORWARD_OUTCOMES {
            self.api_forwards.with_label_values(&[outcome]);
        }
        for route in API_ROUTES {
            self.api_requests.with_label_values(&[route, "200"]);
            self.api_request_duration.with_label_values(&[route]);
        }
        for (topic, types) in input_topics {
            for event_type in *types {
                for outcome in ["processed", "duplicate", "misrouted"] {
                    self.events.with_label_values(&[topic, event_type, outcome]);
                }
            }
            for outcome in ["invalid", "unknown_type"] {
                self.events.with_label_values(&[topic, "unknown", outcome]);
            }
            for reason in dead_letter_reasons {
                self.dead_letters.with_label_values(&[topic, reason]);
            }
        }
        for t in decision_types {
            self.decisions.with_label_values(&[t]);
        }
        for family in crate::decision::SegmentFamily::ALL {
            for change in crate::decision::SegmentChange::ALL {
                self.segment_changes
                    .with_label_values(&[family.label(), change.label()]);
            }
        }
        for stage in crate::decision::LifecycleStage::ALL {
            self.customers_by_lifecycle_stage
                .with_label_values(&[stage.label()]);
        }
        for to in ["shopper", "product"] {
            for route in ["in_process", "topic"] {
                self.forwarded.with_label_values(&[to, route]);
            }
        }
        for reason in ABORT_REASONS {
            self.aborts.with_label_values(&[reason]);
        }
        for family in crate::store::Family::ALL {
            self.state_written_bytes.with_label_values(&[family.name()]);
        }
        for processor in ["customer", "product"] {
            self.tasks_assigned.with_label_values(&[processor]);
            self.tasks_restoring.with_label_values(&[processor]);
            self.restored_records.with_label_values(&[processor]);
            self.timers_pending.with_label_values(&[processor]);
            self.input_buffered.with_label_values(&[processor]);
            self.stream_time_lag.with_label_values(&[processor]);
        }
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("the text encoder writes to memory");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn histogram(spec: &Spec, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(spec.name, spec.help).buckets(buckets.to_vec()))
        .expect("valid histogram")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::HashSet::new();
        for spec in CATALOG {
            assert!(spec.name.starts_with("personalizer_"), "{}", spec.name);
            assert!(seen.insert(spec.name), "{} declared twice", spec.name);
            match spec.kind {
                Kind::Counter => assert!(spec.name.ends_with("_total"), "{}", spec.name),
                Kind::Histogram => assert!(spec.name.ends_with("_seconds"), "{}", spec.name),
                Kind::Gauge => assert!(!spec.name.ends_with("_total"), "{}", spec.name),
            }
            for label in spec.labels {
                assert!(
                    !["customer_id", "sku", "shopper", "key"].contains(label),
                    "{}: unbounded label {label}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn every_catalog_metric_is_exported_once_its_series_exist() {
        let metrics = Metrics::new();
        metrics.initialize_series(
            &[("cart", &["cart_cleared"])],
            &["segment_change"],
            &["syntax"],
        );
        metrics
            .consumer_lag
            .with_label_values(&["cart", "0"])
            .set(3);
        metrics.state_keys.with_label_values(&["shoppers"]);
        metrics.rocksdb_sst_bytes.with_label_values(&["shoppers"]);
        metrics
            .rocksdb_pending_compaction
            .with_label_values(&["shoppers"]);
        let text = metrics.render();
        for spec in CATALOG {
            let kind = format!("# TYPE {} {}", spec.name, spec.kind.name());
            assert!(text.contains(&kind), "missing `{kind}` in\n{text}");
        }
        for name in PROCESS_METRICS {
            assert!(text.contains(&format!("# TYPE {name} ")), "missing {name}");
        }
        assert!(text.contains(r#"personalizer_consumer_lag_records{partition="0",topic="cart"} 3"#));
        assert!(text.contains(&format!(
            r#"personalizer_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )));
    }
}
