//! Helpers for tests against the real Apache Kafka broker that `scripts/kafka` runs:
//! an application with topics of its own, producing events as a shop would, running
//! `personalizer run` as a child process, and reading back what it committed.

use personalizer::config::Config;
use personalizer::decision::{Decision, DecisionType};
// The HTTP helpers live in http.rs; most tests import them from here with the rest.
#[allow(unused_imports)]
pub use super::http::{http_get, metric_sum, wait_for_metric, wait_for_status};
use personalizer::decision_codec::DecisionDecoder;
use personalizer::event::{decode_json, Decoded, InputTopic, RoutingKey};
use personalizer::registry::RegistryClient;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The broker's address: `TEST_KAFKA_BOOTSTRAP` when the test command started
/// it, else `scripts/kafka start` is run (it installs Kafka on first use and reuses a
/// running broker).
pub fn bootstrap() -> String {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS
        .get_or_init(|| {
            if let Ok(address) = std::env::var("TEST_KAFKA_BOOTSTRAP") {
                return address;
            }
            start_broker(None)
        })
        .clone()
}

/// Runs `scripts/kafka start` (with `--port` and `--keep` as given) and returns the
/// bootstrap address it prints last.
pub fn start_broker(args: Option<&[&str]>) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka");
    let output = Command::new(script)
        .arg("start")
        .args(args.unwrap_or_default())
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/kafka runs");
    assert!(output.status.success(), "scripts/kafka start failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("scripts/kafka start prints the bootstrap address last")
        .to_string()
}

pub fn stop_broker(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka");
    let status = Command::new(script)
        .arg("stop")
        .args(args)
        .status()
        .expect("scripts/kafka runs");
    assert!(status.success());
}

/// Where a test event goes: see [`App::route`].
pub struct Routed {
    pub event: personalizer::event::Event,
    pub topic: String,
    pub key: String,
}

const PRODUCT_SIDE_OFF: &str = "[rules.products]\nenabled = false\n";

/// One application on the broker: its own application id and topic names, so tests
/// running at the same time do not see each other.
pub struct App {
    pub name: String,
    pub bootstrap: String,
    pub config: Config,
    pub config_path: PathBuf,
    pub partitions: i32,
    pub dir: tempfile::TempDir,
    /// Processors started with [`App::spawn`]: killed when the app is dropped, so a
    /// failing test leaves none running.
    spawned: std::sync::Mutex<Vec<u32>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tails(self.dir.path());
        }
        let spawned = self.spawned.lock().unwrap_or_else(|e| e.into_inner());
        for pid in spawned.iter() {
            // Only a processor of ours: a pid that ended may have been reused.
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(12).any(|w| w == b"personalizer"));
            if ours {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// The last lines of every processor log (`*.log`) in `dir`, on stderr: what a failing
/// test leaves to explain itself once its directory is gone (CI keeps only the output).
fn print_log_tails(dir: &Path) {
    const LINES: usize = 40;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        eprintln!(
            "--- last {} of {} lines of {} ---\n{}",
            tail.len(),
            lines.len(),
            log.display(),
            tail.join("\n")
        );
    }
}

impl App {
    /// Writes a configuration and creates every topic with `personalizer topics create`.
    pub fn new(test: &str, partitions: i32, extra_toml: &str) -> App {
        Self::on(&bootstrap(), test, partitions, extra_toml)
    }

    pub fn on(bootstrap: &str, test: &str, partitions: i32, extra_toml: &str) -> App {
        // These apps' tests compare every decision with replay's, byte for byte. A
        // product record depends on the order in which messages from several partitions
        // reach its task, which differs live: `tests/live_products.rs` compares those as
        // CONTRACT §5.4 promises, with the product side on.
        Self::build(bootstrap, test, partitions, extra_toml, PRODUCT_SIDE_OFF)
    }

    /// An app with the product side on, and `tables` (TOML tables) in its configuration.
    pub fn with_products(test: &str, partitions: i32, extra_toml: &str, tables: &str) -> App {
        Self::build(&bootstrap(), test, partitions, extra_toml, tables)
    }

    fn build(bootstrap: &str, test: &str, partitions: i32, extra_toml: &str, tables: &str) -> App {
        let name = format!("{test}-{:08x}", rand::random::<u32>());
        let dir = tempfile::tempdir().unwrap();
        let topics = [
            "clickstream",
            "cart",
            "stock",
            "customers",
            "abandoned_cart",
            "back_in_stock",
            "offers",
            "segments",
            "profiles",
            "products",
            "dead_letter",
        ]
        .iter()
        .map(|t| format!("{t} = \"{name}.{t}\"\n"))
        .collect::<String>();
        // The tests' default, unless the test sets its own.
        let commit_interval = if extra_toml.contains("commit_interval") {
            ""
        } else {
            "commit_interval = \"100ms\"\n"
        };
        let text = format!(
            "application_id = \"{name}\"\n\
             [engine]\npartitions = {partitions}\n\
             [kafka]\nbootstrap_servers = \"{bootstrap}\"\ndefault_partitions = {partitions}\n\
             {commit_interval}\
             {extra_toml}\n\
             [kafka.topics]\n{topics}\n\
             {tables}"
        );
        let config_path = dir.path().join("personalizer.toml");
        std::fs::write(&config_path, &text).unwrap();
        let config = Config::load_with_env(Some(&config_path), std::iter::empty())
            .unwrap_or_else(|e| panic!("test config: {e}\n{text}"));
        let app = App {
            name,
            bootstrap: bootstrap.to_string(),
            config,
            config_path,
            partitions,
            dir,
            spawned: Default::default(),
        };
        let output = app
            .command()
            .args(["topics", "create", "--config"])
            .arg(&app.config_path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "topics create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        app
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_personalizer"));
        command.env_remove("PERSONALIZER_KAFKA__BOOTSTRAP_SERVERS");
        command.env("RUST_LOG", "warn,personalizer=info");
        // Many processors run at once: each takes a free port and logs which.
        command.env("PERSONALIZER_HTTP__LISTEN", "127.0.0.1:0");
        command
    }

    /// The HTTP address a processor logging to `log` serves on, once it has said so.
    pub fn http_address(log: &Path, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // Text logs say `addr=…`, JSON logs `"addr":"…"`.
            if let Some(address) = text
                .lines()
                .filter(|l| l.contains("serving /metrics"))
                .filter_map(|l| {
                    l.split("addr=")
                        .nth(1)
                        .or_else(|| l.split("\"addr\":\"").nth(1))
                })
                .map(|rest| {
                    rest.split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or_default()
                })
                .next_back()
            {
                return address.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "the processor did not say where it serves HTTP:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn topic(&self, kind: InputTopic) -> &str {
        let t = &self.config.kafka.topics;
        match kind {
            InputTopic::Clickstream => &t.clickstream,
            InputTopic::Cart => &t.cart,
            InputTopic::Stock => &t.stock,
            InputTopic::Customers => &t.customers,
        }
    }

    /// The four input topics.
    pub fn input_topics(&self) -> [&str; 4] {
        [
            InputTopic::Clickstream,
            InputTopic::Cart,
            InputTopic::Stock,
            InputTopic::Customers,
        ]
        .map(|kind| self.topic(kind))
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            // Java clients' partitioner, as a shop's producers would use.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()
            .unwrap()
    }

    /// A test line as the event it is, with the topic and key a shop's producer sends it
    /// under (as the contract keys it).
    pub fn route(&self, line: &str) -> Routed {
        let Ok(Decoded::Event(event)) = decode_json(line.as_bytes()) else {
            panic!("test events are valid: {line}");
        };
        let (RoutingKey::Shopper(key) | RoutingKey::Sku(key)) = event.routing_key();
        let key = key.to_string();
        Routed {
            topic: self.topic(event.body.topic()).to_string(),
            key,
            event,
        }
    }

    /// Produces event lines to their topics, keyed as the contract says.
    pub fn produce(&self, producer: &BaseProducer, lines: &[String]) {
        self.produce_with(producer, lines, |_, line| line.as_bytes().to_vec());
    }

    /// Produces event lines, each as the bytes `value` makes of it (another format).
    pub fn produce_with(
        &self,
        producer: &BaseProducer,
        lines: &[String],
        mut value: impl FnMut(&Routed, &str) -> Vec<u8>,
    ) {
        for line in lines {
            let routed = self.route(line);
            let bytes = value(&routed, line);
            self.send(producer, &routed.topic, Some(routed.key.as_bytes()), &bytes);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Produces event lines in one transaction, so a running processor sees all of them
    /// at once (a `read_committed` consumer sees none until the commit). Without it, a
    /// partition written a moment later than another looks caught up meanwhile, and the
    /// processor may take a later event from the other one first.
    pub fn produce_atomically(&self, lines: &[String]) {
        self.write_atomically(|producer| self.produce(producer, lines));
    }

    /// Runs `write` inside one transaction of the shop's transactional producer.
    pub fn write_atomically(&self, write: impl FnOnce(&BaseProducer)) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("partitioner", "murmur2_random")
            .set("transactional.id", format!("{}-shop", self.name))
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
        write(&producer);
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    }

    /// Produces `lines` in one transaction while the `running` processors are stopped
    /// (SIGSTOP), and lets them go on once every partition shows the records.
    ///
    /// A transaction's commit markers reach its partitions one after another, so a
    /// processor fetching at that moment can see the new records of one topic while
    /// another topic's partition still looks caught up at its old end; it then merges
    /// them out of event-time order (as Kafka Streams would). Tests that compare with
    /// `replay` need every input to appear at once, as a backlog does.
    pub fn produce_while_paused(&self, running: &[&Child], lines: &[String]) {
        self.write_while_paused(running, |producer| self.produce(producer, lines));
    }

    /// [`App::produce_while_paused`] for records `write` sends itself (another format).
    pub fn write_while_paused(&self, running: &[&Child], write: impl FnOnce(&BaseProducer)) {
        let _paused = Paused::new(running);
        self.write_atomically(write);
        self.wait_until_committed_everywhere();
    }

    pub fn send(&self, producer: &BaseProducer, topic: &str, key: Option<&[u8]>, value: &[u8]) {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        personalizer::load::send_when_room(producer, record).unwrap();
    }

    /// Starts `personalizer run` on a state directory; its log goes to `log`.
    pub fn spawn(&self, state_dir: &Path, log: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = self
            .command()
            .args(["run", "--config"])
            .arg(&self.config_path)
            .arg("--state-dir")
            .arg(state_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child.id());
        child
    }

    pub(super) fn reader(&self, isolation: &str) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("{}-reader", self.name))
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .set("enable.partition.eof", "true")
            .create()
            .unwrap()
    }

    /// Every record of `topics` visible to a consumer with `isolation`, read until the
    /// end of each partition (as it was when reading began).
    pub fn read_all(&self, topics: &[&str], isolation: &str) -> Vec<OwnedMessage> {
        let consumer = self.reader(isolation);
        let mut assignment = TopicPartitionList::new();
        let mut open = 0;
        for topic in topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .unwrap();
            for p in metadata.topics()[0].partitions() {
                assignment
                    .add_partition_offset(topic, p.id(), Offset::Beginning)
                    .unwrap();
                open += 1;
            }
        }
        consumer.assign(&assignment).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while open > 0 && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push(m.detach()),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
                _ => {}
            }
        }
        assert_eq!(
            open, 0,
            "partitions of {topics:?} not read to the end in time"
        );
        out
    }

    pub fn output_topics(&self) -> Vec<&str> {
        DecisionType::ALL
            .iter()
            .map(|t| self.config.kafka.topics.for_decision(*t))
            .collect()
    }

    /// The decisions committed so far. Profile tombstones (a key with no value) are not
    /// among them: see [`App::tombstones`].
    pub fn decisions(&self) -> Vec<Decision> {
        let reader = self.decision_reader();
        self.read_all(&self.output_topics(), "read_committed")
            .iter()
            .filter_map(|m| m.payload())
            .map(|payload| {
                reader
                    .decode(payload)
                    .unwrap_or_else(|e| panic!("an output record that is no decision: {e}"))
            })
            .collect()
    }

    /// Reads output records as the processor writes them: JSON, or Avro with the
    /// writer schemas from the app's registry.
    pub fn decision_reader(&self) -> DecisionDecoder {
        match self.config.schema_registry.url {
            Some(_) => DecisionDecoder::with_lookup(
                personalizer::avro::Catalog::load(),
                Arc::new(RegistryClient::new(&self.config.schema_registry).unwrap()),
            ),
            None => DecisionDecoder::json(),
        }
    }

    /// The keys of the tombstones committed to the profiles topic, sorted.
    pub fn tombstones(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .read_all(&[&self.config.kafka.topics.profiles], "read_committed")
            .iter()
            .filter(|m| m.payload().is_none())
            .map(|m| String::from_utf8(m.key().expect("tombstones have keys").to_vec()).unwrap())
            .collect();
        keys.sort();
        keys
    }

    /// Waits until the committed decisions satisfy `done` and returns them.
    pub fn wait_for_decisions_where(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Decision]) -> bool,
    ) -> Vec<Decision> {
        let deadline = Instant::now() + timeout;
        loop {
            let decisions = self.decisions();
            if done(&decisions) {
                return decisions;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after {timeout:?}: {} decisions",
                decisions.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Waits until at least `count` decisions are committed and returns them. To see
    /// any made after those, stop the processors (SIGTERM commits) and read again
    /// with [`App::decisions`]: that reads to the committed end of the output topics.
    pub fn wait_for_decisions(&self, count: usize, timeout: Duration) -> Vec<Decision> {
        let deadline = Instant::now() + timeout;
        loop {
            let decisions = self.decisions();
            if decisions.len() >= count {
                return decisions;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} decisions after {timeout:?}",
                decisions.len()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Processes stopped with SIGSTOP until this is dropped (also when a test panics, so
/// no stopped process outlives it).
struct Paused(Vec<String>);

impl Paused {
    fn new(running: &[&Child]) -> Paused {
        let paused = Paused(running.iter().map(|c| c.id().to_string()).collect());
        paused.signal("-STOP");
        paused
    }

    fn signal(&self, name: &str) {
        for pid in &self.0 {
            let _ = Command::new("kill").args([name, pid]).status();
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.signal("-CONT");
    }
}

/// The headers of a record (a dead letter's `error`, `error_reason`, `source_*`).
pub fn headers_of(record: &OwnedMessage) -> std::collections::HashMap<String, String> {
    use rdkafka::message::{Headers, Message};
    record
        .headers()
        .expect("dead letters carry headers")
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

/// Asks the process to stop as an operator would (SIGTERM) and returns its exit code.
pub fn terminate(child: &mut Child) -> Option<i32> {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the processor did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decisions as sorted JSON lines, for comparing runs.
pub fn sorted_lines(decisions: &[Decision]) -> Vec<String> {
    let mut lines: Vec<String> = decisions.iter().map(Decision::to_json_line).collect();
    lines.sort();
    lines
}

/// One key per partition (`{prefix}-{n}`), in partition order, for events that must
/// land on every partition of a topic.
pub fn key_per_partition(prefix: &str, partitions: i32) -> Vec<String> {
    use personalizer::engine::partitioner::partition_for;
    let mut keys = vec![None; partitions as usize];
    for i in 0.. {
        let key = format!("{prefix}-{i}");
        let p = usize::from(partition_for(key.as_bytes(), partitions as u16));
        keys[p].get_or_insert(key);
        if keys.iter().all(Option::is_some) {
            break;
        }
    }
    keys.into_iter().map(Option::unwrap).collect()
}

/// Ends a workload with one event per partition of each side at the same late time,
/// which moves every task's clock (and a replay's) to the end of the stream.
pub fn with_sentinels(mut lines: Vec<String>, partitions: i32) -> Vec<String> {
    let end = "2026-01-10T00:00:00Z";
    for (p, key) in key_per_partition("sentinel", partitions)
        .into_iter()
        .enumerate()
    {
        lines.push(format!(
            r#"{{"event_id":"end-view-{p}","type":"page_viewed","occurred_at":"{end}","anonymous_id":"{key}","page_type":"home"}}"#
        ));
        lines.push(format!(
            r#"{{"event_id":"end-stock-{p}","type":"stock_changed","occurred_at":"{end}","sku":"{key}","quantity":1}}"#
        ));
    }
    lines
}
