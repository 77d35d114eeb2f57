//! The catalog of the metrics the processor exports: every metric declared once (name,
//! type, labels, meaning), and the label values known up front. The registry in
//! [`super::metrics`] is built from it; the README table and the dashboard and alert
//! tests read it.

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
pub const INPUT_BUFFERED: Spec = spec(
    "personalizer_input_buffered_records",
    Kind::Gauge,
    &["processor"],
    "Input records read and decoded, waiting for the event-time merge of their task.",
);
pub const STATE_KEYS: Spec = spec(
    "personalizer_state_keys",
    Kind::Gauge,
    &["family"],
    "Keys per RocksDB column family (RocksDB's estimate).",
);
pub const STATE_WRITTEN_BYTES: Spec = spec(
    "personalizer_state_written_bytes_total",
    Kind::Counter,
    &["family"],
    "Bytes of keys and values written to the state store (and the same to its changelog) \
     by committed batches, per column family: a state that is rewritten whole at every \
     commit shows here as write amplification.",
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
     applied, deleted (a tombstone), unreadable (not a product record; skipped), \
     superseded (replaced by a later record for the SKU read before it was applied).",
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
    INPUT_BUFFERED,
    STATE_KEYS,
    STATE_WRITTEN_BYTES,
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
pub const PRODUCT_TABLE_OUTCOMES: [&str; 4] = ["applied", "deleted", "unreadable", "superseded"];
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
