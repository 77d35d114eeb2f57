//! The Prometheus metrics the processor exports, and the catalog that documents them.
//!
//! Every metric is declared once in [`CATALOG`] (name, type, labels, meaning); the
//! registry is built from it, the README table lists it, and the tests check that the
//! Grafana dashboard and the alert rules name nothing else. Labels are bounded: topics,
//! types, outcomes, processors, partitions and column families, never a shopper or SKU.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn spec(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        labels,
        help,
    }
}

pub const BUILD_INFO: Spec = spec(
    "personalizer_build_info",
    Kind::Gauge,
    &["version"],
    "Always 1; the label names the running version.",
);
pub const EVENTS: Spec = spec(
    "personalizer_events_total",
    Kind::Counter,
    &["topic", "type", "outcome"],
    "Input records by topic, event type and outcome (processed, duplicate, invalid, unknown_type); \
     type is `unknown` for invalid records and unknown types. Counted when their batch commits.",
);
pub const DECISIONS: Spec = spec(
    "personalizer_decisions_total",
    Kind::Counter,
    &["type"],
    "Decisions committed to the output topics, by decision type.",
);
pub const SEGMENT_CHANGES: Spec = spec(
    "personalizer_segment_changes_total",
    Kind::Counter,
    &["family", "change"],
    "segment_changed decisions committed, by segment family (lifecycle, rfm, high_value, \
     interest, cart_abandoner) and change (entered, exited).",
);
pub const CUSTOMERS_BY_LIFECYCLE_STAGE: Spec = spec(
    "personalizer_customers_by_lifecycle_stage",
    Kind::Gauge,
    &["stage"],
    "Customers of the assigned tasks in each lifecycle stage (prospect, new, active, \
     at_risk, lapsed), as their lifecycle segment_changed decisions and erasures left them.",
);
pub const FORWARDED: Spec = spec(
    "personalizer_forwarded_messages_total",
    Kind::Counter,
    &["to", "route"],
    "Messages from one task to another (to: shopper or product); route in_process when this \
     thread owns the receiving task, topic when it went through the internal topic.",
);
pub const DEAD_LETTERS: Spec = spec(
    "personalizer_dead_letters_total",
    Kind::Counter,
    &["topic", "reason"],
    "Records written to the dead-letter topic, by source topic and reason.",
);
pub const EVENT_LATENCY: Spec = spec(
    "personalizer_event_to_decision_seconds",
    Kind::Histogram,
    &[],
    "From an event's occurred_at to the commit that made its outcome (decisions, state) visible.",
);
pub const BATCH_DURATION: Spec = spec(
    "personalizer_batch_duration_seconds",
    Kind::Histogram,
    &[],
    "From the first record of a batch to the end of its commit.",
);
pub const COMMIT_DURATION: Spec = spec(
    "personalizer_commit_duration_seconds",
    Kind::Histogram,
    &[],
    "Time to commit a batch: changelog flush, offsets and the end of the transaction.",
);
pub const COMMITS: Spec = spec(
    "personalizer_commits_total",
    Kind::Counter,
    &[],
    "Batches committed (transactions, with exactly-once).",
);
pub const ABORTS: Spec = spec(
    "personalizer_aborts_total",
    Kind::Counter,
    &["reason"],
    "Batches whose uncommitted work was dropped (the transaction aborted), by reason: \
     commit_failed, delivery_failed, produce_failed, rebalance.",
);
pub const CONSUMER_LAG: Spec = spec(
    "personalizer_consumer_lag_records",
    Kind::Gauge,
    &["topic", "partition"],
    "Records between the consumer's position and the partition's high watermark, per \
     assigned input partition.",
);
pub const STREAM_TIME_LAG: Spec = spec(
    "personalizer_stream_time_lag_seconds",
    Kind::Gauge,
    &["processor"],
    "Wall clock minus stream time of the task furthest behind; 0 when every task has read \
     all its input (a quiet task is not behind).",
);
pub const TASKS_ASSIGNED: Spec = spec(
    "personalizer_tasks_assigned",
    Kind::Gauge,
    &["processor"],
    "Tasks (partitions) this instance owns.",
);
pub const TASKS_RESTORING: Spec = spec(
    "personalizer_tasks_restoring",
    Kind::Gauge,
    &["processor"],
    "Assigned tasks still restoring their state from the changelog.",
);
pub const RESTORED_RECORDS: Spec = spec(
    "personalizer_restored_records_total",
    Kind::Counter,
    &["processor"],
    "Changelog records applied while restoring tasks.",
);
pub const TIMERS_PENDING: Spec = spec(
    "personalizer_timers_pending",
    Kind::Gauge,
    &["processor"],
    "Timers (reminders, expiries) waiting in the assigned tasks.",
);
pub const STATE_KEYS: Spec = spec(
    "personalizer_state_keys",
    Kind::Gauge,
    &["family"],
    "Keys per RocksDB column family (RocksDB's estimate).",
);
pub const ROCKSDB_SST_BYTES: Spec = spec(
    "personalizer_rocksdb_sst_bytes",
    Kind::Gauge,
    &["family"],
    "Size of the column family's SST files on disk.",
);
pub const ROCKSDB_MEMTABLE_BYTES: Spec = spec(
    "personalizer_rocksdb_memtable_bytes",
    Kind::Gauge,
    &[],
    "Memory held by RocksDB memtables (bounded by state.write_buffer_bytes).",
);
pub const ROCKSDB_BLOCK_CACHE_USAGE: Spec = spec(
    "personalizer_rocksdb_block_cache_usage_bytes",
    Kind::Gauge,
    &[],
    "Memory used in the shared block cache.",
);
pub const ROCKSDB_BLOCK_CACHE_CAPACITY: Spec = spec(
    "personalizer_rocksdb_block_cache_capacity_bytes",
    Kind::Gauge,
    &[],
    "Size of the shared block cache (state.block_cache_bytes).",
);
pub const ROCKSDB_PENDING_COMPACTION: Spec = spec(
    "personalizer_rocksdb_pending_compaction_bytes",
    Kind::Gauge,
    &["family"],
    "Bytes RocksDB estimates compaction still has to rewrite.",
);
pub const REBALANCES: Spec = spec(
    "personalizer_rebalances_total",
    Kind::Counter,
    &[],
    "Consumer group rebalances this instance took part in.",
);
pub const READY: Spec = spec(
    "personalizer_ready",
    Kind::Gauge,
    &[],
    "1 when /readyz answers ready: broker reachable and every assigned task restored.",
);
pub const COMMIT_STALL: Spec = spec(
    "personalizer_commit_stall_seconds",
    Kind::Gauge,
    &[],
    "How long input has waited with no commit succeeding (0 when everything read is \
     committed); /healthz fails past http.commit_stall_limit.",
);
pub const BROKER_REACHABLE: Spec = spec(
    "personalizer_broker_reachable",
    Kind::Gauge,
    &[],
    "1 when the last metadata request to the brokers succeeded.",
);

pub const PRODUCT_TABLE_RECORDS: Spec = spec(
    "personalizer_product_table_records_total",
    Kind::Counter,
    &["outcome"],
    "Records read from the products topic into the local product table, by outcome: \
     applied, deleted (a tombstone), unreadable (not a product record; skipped).",
);
pub const PRODUCT_TABLE_SKUS: Spec = spec(
    "personalizer_product_table_skus",
    Kind::Gauge,
    &[],
    "SKUs in this instance's product table (the global table of the products topic).",
);

pub const API_REQUESTS: Spec = spec(
    "personalizer_api_requests_total",
    Kind::Counter,
    &["route", "status"],
    "Read API requests answered, by route (profile, recommendations, search_order, \
     activity, other) and HTTP status code.",
);
pub const API_REQUEST_DURATION: Spec = spec(
    "personalizer_api_request_duration_seconds",
    Kind::Histogram,
    &["route"],
    "Time to answer a read API request, by route.",
);

pub const API_FORWARDS: Spec = spec(
    "personalizer_api_forwards_total",
    Kind::Counter,
    &["outcome"],
    "Read API requests about a shopper another instance owns, by outcome: answered (by \
     the owner), no_owner (none known: a rebalance under way), owner_unreachable.",
);

/// Every metric the binary exports under `personalizer_`.
pub const CATALOG: &[Spec] = &[
    BUILD_INFO,
    EVENTS,
    DECISIONS,
    SEGMENT_CHANGES,
    CUSTOMERS_BY_LIFECYCLE_STAGE,
    FORWARDED,
    DEAD_LETTERS,
    EVENT_LATENCY,
    BATCH_DURATION,
    COMMIT_DURATION,
    COMMITS,
    ABORTS,
    CONSUMER_LAG,
    STREAM_TIME_LAG,
    TASKS_ASSIGNED,
    TASKS_RESTORING,
    RESTORED_RECORDS,
    TIMERS_PENDING,
    STATE_KEYS,
    ROCKSDB_SST_BYTES,
    ROCKSDB_MEMTABLE_BYTES,
    ROCKSDB_BLOCK_CACHE_USAGE,
    ROCKSDB_BLOCK_CACHE_CAPACITY,
    ROCKSDB_PENDING_COMPACTION,
    REBALANCES,
    READY,
    COMMIT_STALL,
    BROKER_REACHABLE,
    PRODUCT_TABLE_RECORDS,
    PRODUCT_TABLE_SKUS,
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_FORWARDS,
];

/// The standard process metrics (Prometheus' process collector) exported beside ours.
pub const PROCESS_METRICS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// Abort reasons, as the `reason` label of [`ABORTS`].
pub const ABORT_REASONS: [&str; 4] = [
    "commit_failed",
    "delivery_failed",
    "produce_failed",
    "rebalance",
];

/// Outcomes of a record read into the product table, as the `outcome` label of
/// [`PRODUCT_TABLE_RECORDS`].
pub const PRODUCT_TABLE_OUTCOMES: [&str; 3] = ["applied", "deleted", "unreadable"];
/// The `outcome` label of `personalizer_api_forwards_total`.
pub const API_FORWARD_OUTCOMES: [&str; 3] = ["answered", "no_owner", "owner_unreachable"];
/// The `route` label of the read API's metrics.
pub const API_ROUTES: [&str; 5] = [
    "profile",
    "recommendations",
    "search_order",
    "activity",
    "other",
];

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
    pub state_keys: IntGaugeVec,
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
            state_keys: IntGaugeVec::new(opts(&STATE_KEYS), STATE_KEYS.labels).expect("valid"),
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
            Box::new(metrics.state_keys.clone()),
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
        for processor in ["customer", "product"] {
            self.tasks_assigned.with_label_values(&[processor]);
            self.tasks_restoring.with_label_values(&[processor]);
            self.restored_records.with_label_values(&[processor]);
            self.timers_pending.with_label_values(&[processor]);
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
