//! Several stream threads in one process, against a real Apache Kafka broker: the tasks
//! are shared out among the threads, each with its own consumer and transactional
//! producer, and each decides exactly as replay where no message crosses between them.

mod common;

use common::compare::{assert_same_decisions, replay_of, workload, NO_WALL_CLOCK, PARTITIONS};
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

#[test]
fn two_stream_threads_share_the_tasks_and_decide_as_replay() {
    let app = App::new(
        "threads",
        PARTITIONS,
        &format!("stream_threads = 2\n{NO_WALL_CLOCK}"),
    );
    // Without the events whose rules send messages to another task (sign-ins, stock
    // requests, erasures): a message to a task on the other thread travels through an
    // internal topic and reaches it later than replay's, in memory, does, after events
    // replay applies after it (as between instances, or in Kafka Streams). Without them
    // the threads are independent, and each must decide exactly as replay.
    let lines: Vec<String> = workload(4_000, 7)
        .into_iter()
        .filter(|line| {
            ["signed_in", "back_in_stock_requested", "customer_erased"]
                .iter()
                .all(|kind| !line.contains(&format!(r#""type":"{kind}""#)))
        })
        .collect();
    let lines = with_sentinels(lines, PARTITIONS);
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
    app.produce(&app.producer(), &lines);
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
