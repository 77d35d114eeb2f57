//! Comparing the live processor with `replay`: generated workloads, the replay that
//! matches a live run, and assertions that name what differs.
#![allow(dead_code)] // each test binary uses its own subset

use super::live::{sorted_lines, terminate, App};
use personalizer::config::Config;
use personalizer::decision::Decision;
use personalizer::generate::{Generator, GeneratorSettings};
use personalizer::time::parse_rfc3339;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

pub const PARTITIONS: i32 = 4;

/// A generated workload in January 2026: every reminder and expiry in it is long due by
/// the wall clock, so a caught-up processor fires them all, as `replay --until now` does.
///
/// Sorted by event time: the live processor merges its partitions in event-time order,
/// `replay` reads its input in file order, and the two orders agree when the file is
/// sorted (the generator emits a few events late, and stock moves on its own clock).
pub fn workload(events: u64, seed: u64) -> Vec<String> {
    let mut events: Vec<_> = Generator::new(GeneratorSettings {
        shoppers: (events / 12).max(50) as u32,
        events,
        seed,
        start: parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        span: 3 * 86_400_000,
        history: 0,
        products: 60,
        lateness: 0,
    })
    .collect();
    events.sort_by_key(|e| e.occurred_at);
    events.iter().map(|e| e.to_json_line()).collect()
}

/// A workload in which no task forwards anything to another and no event is late.
///
/// With two instances, a message between tasks on different instances travels through
/// an internal topic and reaches its task at a time that depends on both instances'
/// progress, and each instance judges late events at its own stream time: the outcome
/// can then differ from `replay`'s single clock (as with Kafka Streams). The failover
/// test is about exactly-once and restore, so its workload leaves out sign-ins and
/// notify-me requests (the only events that send messages) and late events.
pub fn single_task_workload(events: u64, seed: u64) -> Vec<String> {
    let mut newest = i64::MIN;
    workload(events, seed)
        .into_iter()
        .filter(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let kind = event["type"].as_str().unwrap();
            let at = parse_rfc3339(event["occurred_at"].as_str().unwrap()).unwrap();
            let keep = !matches!(kind, "signed_in" | "back_in_stock_requested") && at >= newest;
            newest = newest.max(at);
            keep
        })
        .collect()
}

/// Minutes from the test epoch to a minute ago: `replay --until` that matches what the
/// live processor's wall-clock advance fires.
pub fn until_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - super::at(0)) / 60_000 - 1
}

/// With events flowing, a caught-up processor must not follow the wall clock (the
/// workload is in the past: it would fire reminders that later events cancel). So these
/// tests set a grace of ten years and end the stream with one event per partition at
/// the same late time, which moves every task's clock, and the replay's, to the end.
pub const NO_WALL_CLOCK: &str = "grace = \"3650d\"";

/// What `replay` decides on `lines` with the app's settings: up to a minute ago when
/// the app follows the wall clock (as a caught-up live processor then does).
/// Profile tombstones are left out (on Kafka they are keys without a value, not
/// decision records): [`replay_with_tombstones_of`] has them.
pub fn replay_of(app: &App, lines: &[String], state_dir: Option<&Path>) -> Vec<Decision> {
    replay_with_tombstones_of(app, lines, state_dir).0
}

/// What `replay` decides, and the keys of the profile tombstones it sends, sorted.
pub fn replay_with_tombstones_of(
    app: &App,
    lines: &[String],
    state_dir: Option<&Path>,
) -> (Vec<Decision>, Vec<String>) {
    let mut config: Config = app.config.clone();
    config.state.dir = state_dir.map(Path::to_path_buf);
    let until = (app.config.kafka.grace.0 < Duration::from_secs(86_400)).then(until_now);
    let (tombstones, decisions): (Vec<Decision>, Vec<Decision>) =
        super::replay_lines(&config, lines, until)
            .decisions
            .into_iter()
            .partition(Decision::is_tombstone);
    let mut keys: Vec<String> = tombstones
        .iter()
        .map(|d| d.record_key().to_string())
        .collect();
    keys.sort();
    (decisions, keys)
}

/// Runs the processor on the app's backlog until `count` decisions are committed, stops
/// it with SIGTERM (which must exit 0) and returns everything it committed.
pub fn run_until_decided(app: &App, count: usize) -> Vec<Decision> {
    let mut child = app.spawn(
        &app.dir.path().join("state"),
        &app.dir.path().join("run.log"),
    );
    app.wait_for_decisions(count, Duration::from_secs(180));
    assert_eq!(terminate(&mut child), Some(0), "SIGTERM exits 0");
    // Read again after the processor's last commit, so nothing it made is missed.
    app.decisions()
}

pub fn assert_exactly_once(decisions: &[Decision]) {
    let mut seen: HashMap<&str, Vec<&Decision>> = HashMap::new();
    for d in decisions {
        seen.entry(&d.decision_id).or_default().push(d);
    }
    let mut repeated: Vec<_> = seen.values().filter(|copies| copies.len() > 1).collect();
    repeated.sort_by_key(|copies| copies[0].decided_at);
    assert!(
        repeated.is_empty(),
        "{} decisions repeated, e.g.: {:#?}",
        repeated.len(),
        &repeated[..repeated.len().min(3)]
    );
}

/// The two runs made the same decisions, byte for byte; else the difference, counted.
pub fn assert_same_decisions(live: &[Decision], replayed: &[Decision]) {
    assert_exactly_once(live);
    let live = sorted_lines(live);
    let replayed = sorted_lines(replayed);
    if live != replayed {
        let live_set: std::collections::HashSet<&String> = live.iter().collect();
        let replay_set: std::collections::HashSet<&String> = replayed.iter().collect();
        let only_live: Vec<_> = live.iter().filter(|l| !replay_set.contains(l)).collect();
        let only_replay: Vec<_> = replayed.iter().filter(|l| !live_set.contains(l)).collect();
        panic!(
            "live ({}) and replay ({}) differ: {} only live, {} only in replay\n\
             only live: {:#?}\nonly replay: {:#?}",
            live.len(),
            replayed.len(),
            only_live.len(),
            only_replay.len(),
            &only_live[..only_live.len().min(5)],
            &only_replay[..only_replay.len().min(5)]
        );
    }
}
