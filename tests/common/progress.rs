//! Waiting on a processor's progress as the broker shows it: its group's committed
//! offsets, and transactions still open on the topics.

use super::live::App;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl App {
    /// Whether some output partition holds records of a transaction still open: its
    /// high watermark is above its last stable offset.
    pub fn output_transaction_open(&self) -> bool {
        let committed = self.reader("read_committed");
        let uncommitted = self.reader("read_uncommitted");
        let timeout = Duration::from_secs(10);
        self.output_topics().iter().any(|topic| {
            (0..self.partitions).any(|p| {
                let stable = committed.fetch_watermarks(topic, p, timeout).map(|w| w.1);
                let high = uncommitted.fetch_watermarks(topic, p, timeout).map(|w| w.1);
                matches!((stable, high), (Ok(s), Ok(h)) if h > s)
            })
        })
    }

    /// Waits until every input partition's last stable offset (what a `read_committed`
    /// consumer can reach) is its high watermark: the commit markers are written.
    pub(super) fn wait_until_committed_everywhere(&self) {
        let committed = self.reader("read_committed");
        let uncommitted = self.reader("read_uncommitted");
        let timeout = Duration::from_secs(10);
        let deadline = Instant::now() + Duration::from_secs(30);
        for topic in self.input_topics() {
            for p in 0..self.partitions {
                loop {
                    let (_, stable) = committed.fetch_watermarks(topic, p, timeout).unwrap();
                    let (_, high) = uncommitted.fetch_watermarks(topic, p, timeout).unwrap();
                    if stable >= high {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{topic} partition {p}: the transaction's records are not readable"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Waits until the processor's group has committed every input partition to its end:
    /// everything there is was processed.
    pub fn wait_until_input_processed(&self, within: Duration) {
        self.wait_until_processed(&self.input_topics(), within)
    }

    /// Waits until the processor's group has committed every partition of `topics` to
    /// its end, as it is when the wait begins (topics written without transactions).
    pub fn wait_until_processed(&self, topics: &[&str], within: Duration) {
        let group = self.group_reader();
        let mut ends = TopicPartitionList::new();
        for &topic in topics {
            for p in 0..self.partitions {
                let (_, high) = group
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                ends.add_partition_offset(topic, p, Offset::Offset(high))
                    .unwrap();
            }
        }
        self.wait_until_committed(&group, ends, within);
    }

    /// Waits until the processor's group has committed every partition of `topic`, an
    /// internal topic written in transactions, past its last committed record. (Its high
    /// watermark counts the transaction markers, which a consumer never hands out.)
    pub fn wait_until_internal_processed(&self, topic: &str, within: Duration) {
        let group = self.group_reader();
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for message in self.read_all(&[topic], "read_committed") {
            let next = last.entry(message.partition()).or_default();
            *next = (*next).max(message.offset() + 1);
        }
        let mut ends = TopicPartitionList::new();
        for (p, next) in last {
            ends.add_partition_offset(topic, p, Offset::Offset(next))
                .unwrap();
        }
        self.wait_until_committed(&group, ends, within);
    }

    fn group_reader(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", &self.name)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    }

    fn wait_until_committed(
        &self,
        group: &BaseConsumer,
        ends: TopicPartitionList,
        within: Duration,
    ) {
        let timeout = Duration::from_secs(10);
        let deadline = Instant::now() + within;
        loop {
            let committed = group.committed_offsets(ends.clone(), timeout).unwrap();
            let behind: Vec<String> = ends
                .elements()
                .iter()
                .filter_map(|end| {
                    let at = committed
                        .find_partition(end.topic(), end.partition())
                        .map(|e| e.offset());
                    let reached = match (at, end.offset()) {
                        // Nothing ever written: nothing to process.
                        (_, Offset::Offset(0)) => true,
                        (Some(Offset::Offset(a)), Offset::Offset(h)) => a >= h,
                        _ => false,
                    };
                    (!reached).then(|| {
                        format!(
                            "{}[{}] at {:?} of {:?}",
                            end.topic(),
                            end.partition(),
                            at,
                            end.offset()
                        )
                    })
                })
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "input not processed after {within:?}: {behind:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
