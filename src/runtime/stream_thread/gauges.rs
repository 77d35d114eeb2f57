//! The gauges a stream thread refreshes once a second: consumer lag per assigned
//! partition, stream-time lag, pending timers and buffered input per side (combined with
//! the other threads' through [`Peers`]), and, on thread 0, RocksDB's figures.

use super::{wall_clock_millis, StreamThread};
use crate::decision::LifecycleStage;
use crate::engine::Side;
use crate::runtime::peers::{Peers, ThreadGauges};
use crate::runtime::watermarks::cached_watermarks;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;
use rdkafka::consumer::Consumer;
use rdkafka::Offset;

impl StreamThread<'_> {
    pub(super) fn refresh_gauges(&self) {
        let metrics = &self.telemetry.metrics;
        if let Ok(positions) = self.consumer.position() {
            for e in positions.elements() {
                let (Some(name), Offset::Offset(position)) =
                    (self.topics.c_name(e.topic()), e.offset())
                else {
                    continue;
                };
                if let Some((_, high)) = cached_watermarks(&self.consumer, name, e.partition()) {
                    metrics
                        .consumer_lag
                        .with_label_values(&[e.topic(), &e.partition().to_string()])
                        .set((high - position).max(0));
                }
            }
        }
        let now = wall_clock_millis();
        let mut mine = ThreadGauges::default();
        for side in Side::ALL {
            let i = ThreadGauges::side(side);
            // The task furthest behind among those still reading: a caught-up quiet
            // task's clock stands still by design, which is no lag.
            mine.stream_time_lag[i] = self
                .assignment
                .tasks
                .iter()
                .filter(|((s, _), task)| *s == side && !task.records.fully_caught_up())
                .filter_map(|(id, _)| self.core.stream_time(*id))
                .map(|t| (now - t).max(0))
                .max()
                .unwrap_or(0);
            mine.timers_pending[i] = self.core.pending_timers(side) as i64;
            mine.input_buffered[i] = self.assignment.buffered(side) as i64;
        }
        mine.lifecycle = self.core.lifecycle_counts().0;
        publish_process_gauges(metrics, &self.peers, self.index, mine);
        // The store is the process's: one thread reports it.
        if self.index == 0 {
            publish_store_gauges(metrics, self.store);
        }
    }
}

fn publish_process_gauges(metrics: &Metrics, peers: &Peers, thread: usize, mine: ThreadGauges) {
    let all = peers.report_gauges(thread, mine);
    for side in Side::ALL {
        let i = ThreadGauges::side(side);
        metrics
            .stream_time_lag
            .with_label_values(&[side.name()])
            .set(all.stream_time_lag[i] as f64 / 1000.0);
        metrics
            .timers_pending
            .with_label_values(&[side.name()])
            .set(all.timers_pending[i]);
        metrics
            .input_buffered
            .with_label_values(&[side.name()])
            .set(all.input_buffered[i]);
    }
    for stage in LifecycleStage::ALL {
        // A count starts when a task first runs this version: customers whose state an
        // older one wrote leave stages they were never counted in, so it may dip below 0.
        metrics
            .customers_by_lifecycle_stage
            .with_label_values(&[stage.label()])
            .set(all.lifecycle[stage as usize].max(0));
    }
}

fn publish_store_gauges(metrics: &Metrics, store: &Store) {
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
