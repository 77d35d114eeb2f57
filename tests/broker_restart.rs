//! A broker restart in the middle of the stream: the processor keeps retrying, does not
//! crash, reports itself not ready (but alive) while the broker is away, and once the
//! broker is back it is ready again and every decision appears exactly once.
//!
//! It runs its own broker on another port (started and stopped here), so stopping it
//! cannot disturb the tests that share the suite's broker.

mod common;

use common::compare::replay_with_tombstones_of;
use common::live::{
    http_get, metric_sum, sorted_lines, start_broker, stop_broker, terminate, wait_for_status,
    with_sentinels, App,
};
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::time::parse_rfc3339;
use std::time::Duration;

const PORT: &str = "19192";

struct Broker;

impl Drop for Broker {
    fn drop(&mut self) {
        stop_broker(&["--port", PORT]);
    }
}

#[test]
fn the_processor_rides_out_a_broker_restart() {
    let bootstrap = start_broker(Some(&["--port", PORT]));
    let _broker = Broker;
    let app = App::on(&bootstrap, "restart", 2, "grace = \"3650d\"");
    let lines: Vec<String> = Generator::new(GeneratorSettings {
        shoppers: 300,
        events: 4_000,
        seed: 21,
        start: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        span: 2 * 86_400_000,
        history: 0,
        products: 40,
        lateness: 0,
    })
    .map(|e| e.to_json_line())
    .collect();
    let lines = with_sentinels(lines, 2);
    // Profile tombstones are keys without a value on Kafka: compared apart.
    let (expected, tombstone_keys) = replay_with_tombstones_of(&app, &lines, None);

    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let (first, second) = lines.split_at(lines.len() / 2);
    app.produce(&app.producer(), first);
    let mut child = app.spawn(&state, &log);
    let http = App::http_address(&log, Duration::from_secs(30));
    wait_for_status(&http, "/readyz", 200, Duration::from_secs(60));

    // Down: not ready (naming why), still alive, and the metrics say so.
    stop_broker(&["--port", PORT]);
    let why = wait_for_status(&http, "/readyz", 503, Duration::from_secs(30));
    assert!(why.contains("brokers are not reachable"), "{why}");
    assert_eq!(http_get(&http, "/healthz").0, 200);
    let (_, metrics) = http_get(&http, "/metrics");
    assert_eq!(
        metric_sum(&metrics, "personalizer_broker_reachable", &[]),
        0.0
    );
    assert_eq!(metric_sum(&metrics, "personalizer_ready", &[]), 0.0);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the processor keeps running while the broker is down"
    );
    start_broker(Some(&["--port", PORT, "--keep"]));
    app.produce_while_paused(&[&child], second);
    wait_for_status(&http, "/readyz", 200, Duration::from_secs(90));

    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    assert_eq!(terminate(&mut child), Some(0));
    let live = app.decisions();
    let mut ids: Vec<&str> = live.iter().map(|d| d.decision_id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "no decision repeated");
    assert_eq!(sorted_lines(&live), sorted_lines(&expected));
    assert_eq!(app.tombstones(), tombstone_keys);
}

/// SIGTERM while the processor is still waiting for brokers that never answered is a
/// clean stop: exit 0, as after a normal run.
#[test]
fn sigterm_while_waiting_for_the_brokers_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_personalizer"))
        .args(["run", "--state-dir"])
        .arg(dir.path().join("state"))
        // Nothing listens on port 1: every attempt to reach the brokers fails at once.
        .env("PERSONALIZER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .env("PERSONALIZER_HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn,personalizer=info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("retrying")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no retry logged:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        terminate(&mut child),
        Some(0),
        "SIGTERM during start-up exits 0"
    );
}
