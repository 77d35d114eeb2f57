//! The gauges the stream thread refreshes once a second: consumer lag per assigned
//! partition, stream-time lag and pending timers per side, RocksDB figures.

use super::assignment::{Assignment, Topics};
use super::watermarks::cached_watermarks;
use crate::decision::LifecycleStage;
use crate::engine::{Core, Side};
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::time::Millis;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::Offset;

pub fn refresh<C: ConsumerContext>(
    metrics: &Metrics,
    consumer: &BaseConsumer<C>,
    topics: &Topics,
    assignment: &Assignment,
    core: &Core,
    store: &Store,
    now: Millis,
) {
    if let Ok(positions) = consumer.position() {
        for e in positions.elements() {
            let (Some(name), Offset::Offset(position)) = (topics.c_name(e.topic()), e.offset())
            else {
                continue;
            };
            if let Some((_, high)) = cached_watermarks(consumer, name, e.partition()) {
                metrics
                    .consumer_lag
                    .with_label_values(&[e.topic(), &e.partition().to_string()])
                    .set((high - position).max(0));
            }
        }
    }
    for side in Side::ALL {
        // The task furthest behind among those still reading: a caught-up quiet task's
        // clock stands still by design, which is no lag.
        let behind = assignment
            .tasks
            .iter()
            .filter(|((s, _), task)| *s == side && !task.records.fully_caught_up())
            .filter_map(|(id, _)| core.stream_time(*id))
            .map(|t| (now - t).max(0))
            .max()
            .unwrap_or(0);
        metrics
            .stream_time_lag
            .with_label_values(&[side.name()])
            .set(behind as f64 / 1000.0);
        metrics
            .timers_pending
            .with_label_values(&[side.name()])
            .set(core.pending_timers(side) as i64);
        metrics
            .input_buffered
            .with_label_values(&[side.name()])
            .set(assignment.buffered(side) as i64);
    }
    let lifecycle = core.lifecycle_counts();
    for stage in LifecycleStage::ALL {
        // A count starts when a task first runs this version: customers whose state an
        // older one wrote leave stages they were never counted in, so it may dip below 0.
        metrics
            .customers_by_lifecycle_stage
            .with_label_values(&[stage.label()])
            .set(lifecycle.get(stage).max(0));
    }
    let stats = store.stats();
    let mut memtables = 0;
    for family in &stats.families {
        let name = family.family.name();
        let gauge = |vec: &prometheus::IntGaugeVec, value: u64| {
            vec.with_label_values(&[name]).set(value as i64);
        };
        gauge(&metrics.state_keys, family.keys);
        gauge(&metrics.rocksdb_sst_bytes, family.sst_bytes);
        gauge(
            &metrics.rocksdb_pending_compaction,
            family.pending_compaction_bytes,
        );
        memtables += family.memtable_bytes;
    }
    metrics.rocksdb_memtable_bytes.set(memtables as i64);
    metrics
        .rocksdb_block_cache_usage
        .set(stats.block_cache_usage_bytes as i64);
    metrics
        .rocksdb_block_cache_capacity
        .set(stats.block_cache_capacity_bytes as i64);
}
