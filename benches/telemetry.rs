//! What the metrics cost the stream thread: counting one event into the open batch,
//! publishing a committed batch, and rendering a scrape.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use personalizer::config::Config;
use personalizer::engine::Side;
use personalizer::event::EVENT_TYPES;
use personalizer::runtime::batch::{BatchCounts, Outcome};
use personalizer::runtime::latency::LatencyHistogram;
use personalizer::telemetry::Telemetry;

const EVENTS: u64 = 10_000;

fn topic(_: (Side, usize)) -> &'static str {
    "clickstream"
}

fn counting(c: &mut Criterion) {
    let mut group = c.benchmark_group("telemetry");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("count 10k events into a batch", |b| {
        b.iter_batched_ref(
            BatchCounts::default,
            |batch| {
                for i in 0..EVENTS {
                    let (event_type, _) = EVENT_TYPES[i as usize % EVENT_TYPES.len()];
                    batch.event(
                        (Side::Customer, i as usize % 3),
                        event_type,
                        Outcome::Processed,
                        i as i64,
                    );
                }
            },
            BatchSize::SmallInput,
        )
    });
    let telemetry = Telemetry::new(&Config::default());
    group.bench_function("publish a batch of 10k events", |b| {
        let mut latency = LatencyHistogram::default();
        b.iter_batched_ref(
            || {
                let mut batch = BatchCounts::default();
                for i in 0..EVENTS {
                    let (event_type, _) = EVENT_TYPES[i as usize % EVENT_TYPES.len()];
                    batch.event(
                        (Side::Customer, i as usize % 3),
                        event_type,
                        Outcome::Processed,
                        i as i64,
                    );
                }
                batch
            },
            |batch| batch.publish(&telemetry.metrics, &mut latency, 20_000, topic),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    c.bench_function("render /metrics", |b| b.iter(|| telemetry.render_metrics()));
}

criterion_group!(benches, counting);
criterion_main!(benches);
