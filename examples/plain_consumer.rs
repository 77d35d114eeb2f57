//! The ceiling for the live benchmark: a plain librdkafka consumer that reads topics
//! from the beginning to their end, with `read_committed` like the processor, and does
//! nothing with the records. Prints one JSON line: records, seconds, records per second,
//! timed from the first record to the last. With `--values FILE` it also writes each
//! record's value to FILE, one per line (the benchmark compares decisions that way).
//!
//!     cargo run --release --example plain_consumer -- [--values FILE] BOOTSTRAP TOPIC...

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: plain_consumer [--values FILE] BOOTSTRAP TOPIC...";
    let mut args = std::env::args().skip(1).peekable();
    let mut values = None;
    if args.peek().map(String::as_str) == Some("--values") {
        args.next();
        let path = args.next().ok_or(usage)?;
        values = Some(std::io::BufWriter::new(std::fs::File::create(path)?));
    }
    let bootstrap = args.next().ok_or(usage)?;
    let topics: Vec<String> = args.collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "personalizer-bench-ceiling")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in &topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for partition in metadata.topics()[0].partitions() {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
        }
    }
    let mut open = assignment.count();
    consumer.assign(&assignment)?;
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while open > 0 {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(message)) => {
                first.get_or_insert_with(Instant::now);
                records += 1;
                bytes += message.payload_len() as u64;
                if let Some(out) = values.as_mut() {
                    out.write_all(message.payload().unwrap_or_default())?;
                    out.write_all(b"\n")?;
                }
                last = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(e.into()),
            None => return Err("no record for 10 s before the end".into()),
        }
    }
    if let Some(mut out) = values {
        out.flush()?;
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    println!(
        "{{\"records\":{records},\"bytes\":{bytes},\"seconds\":{seconds:.3},\"records_per_second\":{:.0}}}",
        records as f64 / seconds.max(1e-9)
    );
    Ok(())
}
