//! Component benchmarks: decoding events (JSON, and Avro in the Confluent wire format), and the engine applying them with
//! RocksDB-backed state. The end-to-end figure (1 M events, peak memory) comes from
//! `scripts/bench-replay`; see BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use personalizer::avro::{encode_event, frame, AvroEventDecoder, Catalog, FixedSchemas};
use personalizer::config::Config;
use personalizer::engine::Engine;
use personalizer::event::{decode_json, Decoded, Event};
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::store::Store;
use std::hint::black_box;

const EVENTS: u64 = 50_000;

fn workload() -> (Vec<String>, Vec<Event>) {
    let events: Vec<Event> = Generator::new(GeneratorSettings {
        shoppers: 5_000,
        events: EVENTS,
        ..GeneratorSettings::default()
    })
    .collect();
    let lines = events.iter().map(Event::to_json_line).collect();
    (lines, events)
}

fn decode(c: &mut Criterion) {
    let (lines, events) = workload();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(20);
    group.bench_function("generated_events", |b| {
        b.iter(|| {
            for line in &lines {
                match decode_json(line.as_bytes()) {
                    Ok(Decoded::Event(e)) => {
                        black_box(e);
                    }
                    other => panic!("{other:?}"),
                }
            }
        })
    });
    // The same events in the Confluent wire format, each type's writer schema the
    // project's own (as most producers have it), resolved against ours as live.
    let catalog = Catalog::load();
    let mut schemas = FixedSchemas::default();
    let mut ids = std::collections::HashMap::new();
    for (n, schema) in catalog.events.iter().enumerate() {
        schemas.insert(n as u32 + 1, schema.schema.clone());
        ids.insert(schema.type_name, n as u32 + 1);
    }
    let framed: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let id = ids[e.body.type_name()];
            frame(id, &encode_event(&catalog, e).unwrap())
        })
        .collect();
    let avro = AvroEventDecoder::new(catalog, schemas);
    group.bench_function("generated_events_avro", |b| {
        b.iter(|| {
            for record in &framed {
                match avro.decode(record) {
                    Ok(Decoded::Event(e)) => {
                        black_box(e);
                    }
                    other => panic!("{other:?}"),
                }
            }
        })
    });
    group.finish();
}

fn engine(c: &mut Criterion) {
    let (_, events) = workload();
    let config = Config::default();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("apply_generated_events_rocksdb", |b| {
        b.iter_batched(
            || {
                Engine::open(
                    config.clone(),
                    Store::open_temporary(&config.state).unwrap(),
                )
                .unwrap()
            },
            |mut engine| {
                let mut decisions = Vec::new();
                for event in &events {
                    engine.process(event, &mut decisions).unwrap();
                    decisions.clear();
                }
                engine.commit().unwrap();
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decode, engine);
criterion_main!(benches);
