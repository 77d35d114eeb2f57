//! Several stream threads in one process, against a real Apache Kafka broker: the tasks
//! are shared out among the threads, each with its own consumer and transactional
//! producer, and each decides exactly as replay where no message crosses between them.

mod common;

use common::compare::{assert_same_decisions, replay_of, workload, NO_WALL_CLOCK, PARTITIONS};
use common::crash::count_lines;
use common::live::{
    http_get, metric_sum, terminate, wait_for_metric, wait_for_status, with_sentinels, App,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// The threads that the log's "rebalanced" lines assigned tasks to.
fn threads_given_tasks(log: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("rebalanced: restoring the assigned tasks"))
        .filter(|l| !l.contains("customer_tasks=0 product_tasks=0"))
        .map(|l| {
            let field = l
                .split(" thread=")
                .nth(1)
                .expect("the line names its thread");
            field.split(' ').next().unwrap().to_string()
        })
        .collect()
}

/// The test workload without the events whose rules send messages to another task
/// (sign-ins, stock requests, erasures), ended by sentinels. A message to a task on the
/// other thread travels through an internal topic and reaches it later than replay's,
/// in memory, does, after events replay applies after it (as between instances, or in
/// Kafka Streams). Without them the threads are independent, and each must decide
/// exactly as replay.
fn independent_workload(events: u64, seed: u64) -> Vec<String> {
    let lines: Vec<String> = workload(events, seed)
        .into_iter()
        .filter(|line| {
            ["signed_in", "back_in_stock_requested", "customer_erased"]
                .iter()
                .all(|kind| !line.contains(&format!(r#""type":"{kind}""#)))
        })
        .collect();
    with_sentinels(lines, PARTITIONS)
}

#[test]
fn two_stream_threads_share_the_tasks_and_decide_as_replay() {
    let app = App::new(
        "threads",
        PARTITIONS,
        &format!("stream_threads = 2\n{NO_WALL_CLOCK}"),
    );
    let lines = independent_workload(4_000, 7);
    let expected = replay_of(&app, &lines, None);
    assert!(expected.len() > 20, "the workload should decide things");

    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let mut child = app.spawn(&state, &log);
    let address = App::http_address(&log, Duration::from_secs(30));
    // Ready once every thread runs; the first to join may hold every task until the
    // other's join moves half of them.
    wait_for_status(&address, "/readyz", 200, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while threads_given_tasks(&log).len() < 2 {
        assert!(Instant::now() < deadline, "both threads get tasks");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Paused, so every input appears at once, as a backlog does (see the helper).
    app.produce_while_paused(&[&child], &lines);
    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    for side in ["customer", "product"] {
        let label = format!("processor=\"{side}\"");
        // Every task of the process once, whichever thread holds it.
        wait_for_metric(
            std::slice::from_ref(&address),
            "personalizer_tasks_assigned",
            &[&label],
            f64::from(PARTITIONS),
            Duration::from_secs(30),
        );
        let metrics = http_get(&address, "/metrics").1;
        assert_eq!(
            metric_sum(&metrics, "personalizer_tasks_assigned", &[&label]),
            f64::from(PARTITIONS),
            "{side} tasks counted once"
        );
        assert_eq!(
            metric_sum(&metrics, "personalizer_tasks_restoring", &[&label]),
            0.0
        );
    }
    let ready = http_get(&address, "/readyz");
    assert_eq!(ready.0, 200, "every thread runs: {}", ready.1);
    assert_eq!(terminate(&mut child), Some(0), "SIGTERM exits 0");
    assert_same_decisions(&app.decisions(), &expected);
    assert_eq!(threads_given_tasks(&log).len(), 2);
}

#[test]
fn kill_9_of_a_process_with_two_stream_threads_loses_and_repeats_nothing() {
    // One commit a second, so a kill finds a transaction open (see live_kafka.rs's
    // kill -9 test): each thread's next incarnation must fence its own predecessor's,
    // under its own transactional id.
    // A killed process leaves two members in the group, which the next incarnation's
    // join waits for until their sessions expire: 10 s here instead of librdkafka's 45.
    let config = format!(
        "stream_threads = 2\n{NO_WALL_CLOCK}\ncommit_interval = \"1s\"\ncommit_pacing = \"interval\"\n\
         [kafka.properties]\n\"session.timeout.ms\" = \"10000\""
    );
    let app = App::new("threads-kill9", PARTITIONS, &config);
    let lines = independent_workload(20_000, 11);
    let expected = replay_of(&app, &lines, None);
    let state = app.dir.path().join("state");
    let log = app.dir.path().join("run.log");
    let slices: Vec<&[String]> = lines.chunks(lines.len() / 3 + 1).collect();
    let kills = app.kill_while_working_through(&slices, &state, &log, Duration::from_secs(90));
    let mut child = app.spawn(&state, &log);
    app.wait_for_decisions(expected.len(), Duration::from_secs(180));
    assert_eq!(terminate(&mut child), Some(0));
    assert_eq!(kills, 3);
    let live = app.decisions();
    assert_same_decisions(&live, &expected);
    // The kills left transactions open with decisions in them, which the next
    // incarnation's threads aborted: in the log, invisible to read_committed.
    let uncommitted = app.read_all(&app.output_topics(), "read_uncommitted").len();
    assert!(
        uncommitted > live.len(),
        "no aborted decision in the log: {uncommitted} records, {} committed",
        live.len()
    );
    assert!(
        count_lines(&log, "thread=1") > 0,
        "the second thread took part"
    );
}
